"""A job triggered by mail delivered to the real Dovecot: IDLE sees it, the job reads it through the hub."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.fixtures.mail_hub import ALICE, PASSWORDS, account_toml, all_watching, mail_hub
from tests.fixtures.mail_server import MailServer
from tests.helpers import wait_until_async

pytestmark = pytest.mark.anyio


async def test_new_mail_triggers_a_job(empty_mail: MailServer, tmp_path: Path) -> None:
    mail = empty_mail
    share = tmp_path / "share"
    share.mkdir()
    config = (account_toml(mail, "alice", ALICE) + "[providers.automation]\n"
              + f'[providers.files.roots.share]\npath = "{share}"\nwritable = true\n')
    with mail_hub(tmp_path / "hub", mail, config, {"alice": PASSWORDS["alice"]}) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            created = await client.call_tool("automation__create", {
                "name": "file-invoices", "trigger": {"type": "mail", "account": "alice", "folder": "INBOX"},
                "action": {"steps": [
                    {"name": "mail", "tool": "mail__read", "arguments": {"account": "alice",
                                                                         "uid": "{{ trigger.uids.0 }}"}},
                    {"tool": "files__write", "arguments": {"root": "share", "path": "last-subject.txt",
                                                           "content": "{{ steps.mail.structured.subject }}"}}]}})
            assert not created.is_error, created.content[0].text
            not_watched = await client.call_tool("automation__create", {
                "name": "x", "trigger": {"type": "mail", "account": "alice", "folder": "Archive"},
                "action": {"tool": "mail__search", "arguments": {"account": "alice"}}})
            assert not_watched.is_error and "does not watch 'Archive'" in not_watched.content[0].text
            await wait_until_async(lambda: all_watching(client), "the IDLE watcher listening")  # IDLE is listening: new mail will be seen
            mail.deliver_lmtp(ALICE, b"From: billing@elsewhere.test\r\nSubject: Invoice 2026-117\r\n\r\nPay.\r\n")
            await wait_until_async((share / "last-subject.txt").exists, "the job's last-subject.txt")
            assert (share / "last-subject.txt").read_text() == "Invoice 2026-117"
            runs = (await client.call_tool("automation__runs", {"name": "file-invoices"})).structured_content["runs"]
            assert runs[0]["status"] == "ok" and runs[0]["trigger"]["type"] == "mail"
            assert [c["tool"] for c in runs[0]["calls"]] == ["mail__read", "files__write"]
