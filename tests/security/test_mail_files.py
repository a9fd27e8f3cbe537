"""Mail tools reach files roots only as their caller could: a user whose scopes cover mail but not files cannot
read a file by attaching it to a draft, nor write one by saving an attachment into a root (both go through the
files tools, with the caller's rights, on record). Against a real hub, Dovecot and Postfix."""

from __future__ import annotations

import email
import email.message
import os
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.fixtures.mail_server import MailServer, available
from tests.helpers import junction_cli, remember_secret, serve_hub, set_secret

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(bool(available()) and not os.environ.get("CI"), reason=f"{available()}")]
ALICE = "alice@example.test"


@pytest.fixture(scope="module")
def mail() -> Iterator[MailServer]:
    server = MailServer.create().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def client(url: str, token: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    return Client(streamable_http_client(url, http_client=http), mode="2026-07-28")  # type: ignore[arg-type]


def text(result: object) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)  # type: ignore[attr-defined]


async def test_mail_tools_do_not_open_files_roots_to_a_mail_only_user(mail: MailServer, tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.mkdir()
    (box / "salaries.txt").write_text("the CEO earns 9,999,999")
    message = email.message.EmailMessage()
    message["From"], message["To"], message["Subject"] = "carol@example.test", ALICE, "a file"
    message.set_content("see attached")
    message.add_attachment("planted content", filename="planted.txt")
    mail.deliver_lmtp(ALICE, message.as_bytes())
    config = f"""
[auth]
mode = "tokens"
[auth.scopes]
"mail" = ["mail__*"]
[auth.roles.mailer]
scopes = ["mail"]
[providers.files.roots.box]
path = "{box}"
writable = true
[providers.mail.accounts.alice]
username = "{ALICE}"
password = "${{secret:alice-mail}}"
imap_host = "127.0.0.1"
imap_port = {mail.ports["IMAP"]}
imap_tls = "starttls"
smtp_port = {mail.ports["SUBMISSION"]}
smtp_tls = "starttls"
ca_file = "{mail.ca_file}"
"""
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    (hub_dir / "junction.toml").write_text(config)
    set_secret(hub_dir, "alice-mail", mail.users[ALICE])
    junction_cli(hub_dir, "user", "add", "mel", "--role", "mailer")
    junction_cli(hub_dir, "user", "add", "fay", "--role", "user")
    mel, fay = junction_cli(hub_dir, "token", "create", "--user", "mel"), junction_cli(hub_dir, "token", "create",
                                                                                        "--user", "fay")
    remember_secret(mel, fay)
    with serve_hub(hub_dir, config) as hub:
        async with client(hub.url, mel) as attacker:
            uid = (await attacker.call_tool("mail__search", {"account": "alice"})).structured_content["messages"][0][
                "uid"]
            leak = await attacker.call_tool("mail__draft", {"account": "alice", "to": [ALICE], "subject": "x",
                                                            "attachments": [{"root": "box", "path": "salaries.txt"}]})
            assert leak.is_error and "may not call 'files__read'" in text(leak), text(leak)
            plant = await attacker.call_tool("mail__attachment", {"account": "alice", "uid": uid, "index": 0,
                                                                  "save_root": "box", "save_path": "planted.txt"})
            assert plant.is_error and "may not call 'files__write'" in text(plant), text(plant)
        assert not (box / "planted.txt").exists()
        drafts = await _drafts_with_attachments(mail)
        assert drafts == 0, "a draft carrying the file was saved"
        # someone who may use the files tools still attaches and saves, on record as themselves
        async with client(hub.url, fay) as allowed:
            saved = await allowed.call_tool("mail__attachment", {"account": "alice", "uid": uid, "index": 0,
                                                                 "save_root": "box", "save_path": "planted.txt"})
            assert not saved.is_error, text(saved)
        assert (box / "planted.txt").read_text().strip() == "planted content"
    calls = junction_cli(hub_dir, "audit", "--tool", "files__write", "--json")
    assert '"principal": "fay"' in calls and '"client": "junction:mail"' in calls


async def _drafts_with_attachments(mail: MailServer) -> int:
    import imaplib
    import ssl

    imap = imaplib.IMAP4_SSL("127.0.0.1", mail.ports["IMAPS"],
                             ssl_context=ssl.create_default_context(cafile=str(mail.ca_file)))
    try:
        imap.login(ALICE, mail.users[ALICE])
        status, _ = imap.select("Drafts", readonly=True)
        if status != "OK":
            return 0
        _, found = imap.search(None, "ALL")
        return len(found[0].split())
    finally:
        imap.logout()
