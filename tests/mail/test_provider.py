"""The mail provider through the hub's MCP endpoint, against the real Dovecot + Postfix of tests/mail/conftest.py."""

from __future__ import annotations

import email
import email.policy
import subprocess
import time
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from tests.fixtures.mail_hub import ALICE, BOB, PASSWORDS, account_toml, all_watching, mail_hub, two_accounts
from tests.fixtures.mail_server import MailServer
from tests.helpers import JUNCTION, ROOT, hub_env, set_secret, wait_until_async

pytestmark = pytest.mark.anyio


def folder_messages(mail: MailServer, user: str, folder: str) -> list[email.message.EmailMessage]:
    """What is really in a mailbox, read with plain imaplib (not through the hub), oldest first."""
    import imaplib
    import ssl

    imap = imaplib.IMAP4_SSL("127.0.0.1", mail.ports["IMAPS"],
                             ssl_context=ssl.create_default_context(cafile=str(mail.ca_file)))
    try:
        imap.login(user, mail.users[user])
        imap.select(folder, readonly=True)
        _, numbers = imap.search(None, "ALL")
        out = []
        for number in numbers[0].split():
            _, data = imap.fetch(number, "(BODY.PEEK[])")
            out.append(email.message_from_bytes(data[0][1], policy=email.policy.default))
        return out
    finally:
        imap.logout()


async def test_search_read_reply_send_and_delivery(empty_mail: MailServer, tmp_path: Path) -> None:
    mail = empty_mail
    mail.deliver(ALICE, b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nCc: carol@elsewhere.test\r\n"
                        b"Subject: Quarterly numbers\r\nMessage-ID: <q3@example.test>\r\n"
                        b"References: <q2@example.test>\r\n\r\nAlice,\r\nthe Q3 numbers are in.\r\n")
    mail.deliver(ALICE, b"From: news@elsewhere.test\r\nSubject: Weekly digest\r\n\r\nnothing\r\n")
    asked: list[str] = []

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"send": True})

    with mail_hub(tmp_path, mail, two_accounts(mail), PASSWORDS) as hub:
        async with Client(hub.url, mode="legacy", elicitation_callback=on_elicit) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"mail__search", "mail__read", "mail__draft", "mail__send", "mail__folders", "mail__move",
                    "mail__flag", "mail__mark_read", "mail__delete", "mail__attachment"} <= tools

            async def inbox_total() -> int:
                found = await client.call_tool("mail__search", {"account": "alice"})
                return found.structured_content["total"] == 2
            await wait_until_async(inbox_total, "two messages in alice's INBOX")

            folders = (await client.call_tool("mail__folders", {"account": "alice"})).structured_content["folders"]
            roles = {f["role"]: f["name"] for f in folders}
            assert roles["\\Drafts"] == "Drafts" and roles["\\Sent"] == "Sent" and roles["\\Trash"] == "Trash"
            assert next(f for f in folders if f["name"] == "INBOX")["unseen"] == 2

            found = await client.call_tool("mail__search", {"account": "alice", "from": "bob", "subject": "quarterly"})
            assert not found.is_error, found.content[0].text
            hits = found.structured_content["messages"]
            assert [m["subject"] for m in hits] == ["Quarterly numbers"] and "\\Seen" not in hits[0]["flags"]
            uid = hits[0]["uid"]
            paged = await client.call_tool("mail__search", {"account": "alice", "limit": 1})
            assert paged.structured_content["next_offset"] == 1 and len(paged.structured_content["messages"]) == 1

            read = await client.call_tool("mail__read", {"account": "alice", "uid": uid})
            view = read.structured_content
            assert view["subject"] == "Quarterly numbers" and view["from"] == ["Bob <bob@example.test>"]
            assert "the Q3 numbers are in." in view["text"] and "the Q3 numbers are in." in read.content[0].text
            assert (await client.call_tool("mail__search", {"account": "alice", "unseen": True})
                    ).structured_content["total"] == 2  # reading did not mark it read

            draft = await client.call_tool("mail__draft", {"account": "alice", "mode": "reply_all", "uid": uid,
                                                           "body": "Thanks, looks good."})
            assert not draft.is_error, draft.content[0].text
            info = draft.structured_content
            assert info["folder"] == "Drafts" and info["subject"] == "Re: Quarterly numbers"
            saved = folder_messages(mail, ALICE, "Drafts")
            assert len(saved) == 1
            reply = saved[0]
            assert reply["In-Reply-To"] == "<q3@example.test>"
            assert reply["References"] == "<q2@example.test> <q3@example.test>"
            assert reply["To"] == "Bob <bob@example.test>" and reply["Cc"] == "carol@elsewhere.test"
            body = reply.get_body(("plain",)).get_content()
            assert body.startswith("Thanks, looks good.") and "> the Q3 numbers are in." in body

            sent = await client.call_tool("mail__send", {"account": "alice", "draft_uid": info["uid"]})
            assert not sent.is_error, sent.content[0].text
            assert asked and "Re: Quarterly numbers" in asked[0] and "bob@example.test" in asked[0]
            assert sorted(sent.structured_content["recipients"]) == ["Bob <bob@example.test>", "carol@elsewhere.test"]

            async def bob_has_it() -> bool:
                result = await client.call_tool("mail__search", {"account": "bob", "subject": "Re: Quarterly"})
                return result.structured_content["total"] == 1
            await wait_until_async(bob_has_it, "the reply in bob's INBOX")
            arrived = folder_messages(mail, BOB, "INBOX")[0]
            assert arrived["In-Reply-To"] == "<q3@example.test>" and arrived["From"] == ALICE
            in_sent = await client.call_tool("mail__search", {"account": "alice", "folder": "Sent"})
            assert [m["subject"] for m in in_sent.structured_content["messages"]] == ["Re: Quarterly numbers"]
            assert folder_messages(mail, ALICE, "Drafts") == []  # the sent draft is gone
            # carol is elsewhere: the catch-all box stands in for the internet
            await wait_until_async(lambda: folder_messages(mail, "catchall@example.test", "INBOX"), "mail for carol")
            assert folder_messages(mail, "catchall@example.test", "INBOX")[0]["Subject"] == "Re: Quarterly numbers"

            # forward with a new message, then file things away
            forward = await client.call_tool("mail__draft", {"account": "alice", "mode": "forward", "uid": uid,
                                                             "to": [BOB], "body": "FYI"})
            assert forward.structured_content["subject"] == "Fwd: Quarterly numbers"
            forwarded = folder_messages(mail, ALICE, "Drafts")[0].get_body(("plain",)).get_content()
            assert "---------- Forwarded message ----------" in forwarded and "the Q3 numbers are in." in forwarded
            assert not (await client.call_tool("mail__mark_read", {"account": "alice", "uids": [uid]})).is_error
            assert not (await client.call_tool("mail__flag", {"account": "alice", "uids": [uid]})).is_error
            flagged = await client.call_tool("mail__search", {"account": "alice", "flagged": True, "unseen": False})
            assert [m["uid"] for m in flagged.structured_content["messages"]] == [uid]
            moved = await client.call_tool("mail__move", {"account": "alice", "uids": [uid], "to": "Archive"})
            assert not moved.is_error, moved.content[0].text
            assert [m["Subject"] for m in folder_messages(mail, ALICE, "Archive")] == ["Quarterly numbers"]
            archived = (await client.call_tool("mail__search", {"account": "alice", "folder": "Archive"})
                        ).structured_content["messages"][0]["uid"]
            deleted = await client.call_tool("mail__delete", {"account": "alice", "folder": "Archive",
                                                              "uids": [archived]})
            assert "moved to Trash" in deleted.content[0].text
            assert [m["Subject"] for m in folder_messages(mail, ALICE, "Trash")] == ["Quarterly numbers"]
            in_trash = (await client.call_tool("mail__search", {"account": "alice", "folder": "Trash"})
                        ).structured_content["messages"][0]["uid"]
            gone = await client.call_tool("mail__delete", {"account": "alice", "folder": "Trash", "uids": [in_trash]})
            assert "deleted for good" in gone.content[0].text and folder_messages(mail, ALICE, "Trash") == []

            # the message as a resource
            resource = await client.read_resource(f"mail://alice/INBOX/{hits[0]['uid'] + 1}")
            assert "Weekly digest" in resource.contents[0].text
            missing = await client.call_tool("mail__read", {"account": "alice", "uid": 999})
            assert missing.is_error and "no message 999 in 'INBOX'" in missing.content[0].text
            nowhere = await client.call_tool("mail__search", {"account": "alice", "folder": "Nope"})
            assert nowhere.is_error and "'Nope'" in nowhere.content[0].text


async def test_new_mail_is_announced(empty_mail: MailServer, tmp_path: Path) -> None:
    # That the announcement comes within about a second (README) is measured by tests/bench/mail_bench.py
    # (new_mail, hub against a raw IDLE connection); asserted here on wall-clock time, it would fail on a
    # loaded machine. Here: it comes, pushed by IDLE (nothing here reads the mailbox before it arrives).
    mail = empty_mail
    updates: list[tuple[float, str]] = []
    list_changes: list[float] = []

    async def on_message(message: object) -> None:
        if isinstance(message, types.ServerNotification):
            if message.method == "notifications/resources/updated":
                updates.append((time.monotonic(), str(message.params.uri)))
            elif message.method == "notifications/resources/list_changed":
                list_changes.append(time.monotonic())

    with mail_hub(tmp_path, mail, two_accounts(mail), PASSWORDS) as hub:
        async with Client(hub.url, mode="legacy", message_handler=on_message) as client:
            accounts = await wait_until_async(lambda: all_watching(client), "both IDLE watchers listening")
            assert accounts
            await client.subscribe_resource("mail://alice/INBOX")
            delivered = time.monotonic()
            mail.deliver_lmtp(ALICE, b"From: carol@example.test\r\nSubject: ping\r\n\r\nnew mail\r\n")
            await wait_until_async(lambda: _has(updates, "mail://alice/INBOX"), "an update of alice's INBOX")
            await wait_until_async(lambda: _after(list_changes, delivered), "a list_changed after the delivery")
            uid = (await client.call_tool("mail__search", {"account": "alice", "subject": "ping"})
                   ).structured_content["messages"][0]["uid"]
            resources = {str(r.uri): r.name for r in (await client.list_resources()).resources}
            assert "mail://alice/INBOX" in resources and resources[f"mail://alice/INBOX/{uid}"] == "alice/INBOX: ping"
            templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
            assert "mail://alice/{+folder}/{uid}" in templates


async def _has(updates: list[tuple[float, str]], uri: str) -> bool:
    return any(u == uri for _, u in updates)


async def _after(times: list[float], moment: float) -> bool:
    return any(t >= moment for t in times)


async def test_confirmation_and_the_send_switch(empty_mail: MailServer, tmp_path: Path) -> None:
    mail = empty_mail
    answers = {"action": "decline"}

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action=answers["action"], content={"send": True})

    config = two_accounts(mail, bob_extra="send = false")
    with mail_hub(tmp_path, mail, config, PASSWORDS) as hub:
        message = {"account": "alice", "to": [BOB], "subject": "Are we on?", "body": "Tomorrow at 10."}
        # a client that cannot be asked: `confirm` is required
        async with Client(hub.url, mode="2026-07-28") as plain:
            refused = await plain.call_tool("mail__send", message)
            assert refused.is_error and "confirm: true" in refused.content[0].text
            send_tool = next(t for t in (await plain.list_tools()).tools if t.name == "mail__send")
            assert send_tool.input_schema["properties"]["account"]["enum"] == ["alice"]
            off = await plain.call_tool("mail__send", {**message, "account": "bob", "confirm": True})
            assert off.is_error and "sending is switched off (send = false)" in off.content[0].text
        # a client that can be asked: the user decides, in both protocol eras
        for mode in ("2026-07-28", "legacy"):
            async with Client(hub.url, mode=mode, elicitation_callback=on_elicit) as client:
                answers["action"] = "decline"
                declined = await client.call_tool("mail__send", {**message, "confirm": True})
                assert declined.is_error and "did not confirm" in declined.content[0].text
                answers["action"] = "accept"
                accepted = await client.call_tool("mail__send", {**message, "subject": f"sent over {mode}"})
                assert not accepted.is_error, accepted.content[0].text
        await wait_until_async(lambda: len(folder_messages(mail, BOB, "INBOX")) >= 2, "two messages in bob's INBOX")
        assert sorted(m["Subject"] for m in folder_messages(mail, BOB, "INBOX")) == [
            "sent over 2026-07-28", "sent over legacy"]
        assert len(folder_messages(mail, ALICE, "Sent")) == 2


async def test_header_injection_and_bad_arguments_are_refused(empty_mail: MailServer, tmp_path: Path) -> None:
    mail = empty_mail
    with mail_hub(tmp_path, mail, two_accounts(mail), PASSWORDS) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            cases = {
                "subject": ({"subject": "Hi\r\nBcc: victim@elsewhere.test"}, "subject: line breaks are not allowed"),
                "to": ({"to": ["bob@example.test\r\nBcc: victim@elsewhere.test"]}, "to[0]: line breaks"),
                "to-list": ({"to": ["bob@example.test, victim@elsewhere.test"]}, "is not one e-mail address"),
                "cc-bare-lf": ({"cc": ["x@example.test\nX-Evil: 1"]}, "cc[0]: line breaks"),
                "bcc-nul": ({"bcc": ["x@example.test\x00"]}, "bcc[0]: line breaks"),
                "not-address": ({"to": ["not an address"]}, "to[0]: 'not an address' is not one e-mail address"),
                "folder": ({"mode": "reply", "uid": 1, "folder": "INBOX\r\nA1 DELETE INBOX"}, "folder: line breaks"),
                "mode": ({"mode": "explode"}, "mode: one of new, reply, reply_all, forward"),
            }
            for case, (extra, why) in cases.items():
                result = await client.call_tool("mail__draft", {"account": "alice", "body": "x", **extra})
                assert result.is_error and why in result.content[0].text, (case, result.content[0].text)
            search = await client.call_tool("mail__search", {"account": "alice", "subject": "a\r\nb"})
            assert search.is_error and "subject: line breaks" in search.content[0].text
            bad_date = await client.call_tool("mail__search", {"account": "alice", "since": "last week"})
            assert bad_date.is_error and "since: 'last week' is not a date" in bad_date.content[0].text
            nobody = await client.call_tool("mail__search", {"account": "carol"})
            assert nobody.is_error and "no mail account named 'carol'" in nobody.content[0].text
            assert folder_messages(mail, ALICE, "Drafts") == []  # nothing was written
            ok = await client.call_tool("mail__draft", {"account": "alice", "to": [BOB], "subject": "Fine",
                                                        "body": "fine"})
            assert not ok.is_error and [m["Subject"] for m in folder_messages(mail, ALICE, "Drafts")] == ["Fine"]


async def test_wrong_password_and_a_server_that_goes_away(empty_mail: MailServer, tmp_path: Path) -> None:
    mail = empty_mail
    passwords = {"alice": "alice-password-1", "bob": "not-bobs-password"}
    updates: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, types.ServerNotification) and message.method == "notifications/resources/updated":
            updates.append(str(message.params.uri))

    with mail_hub(tmp_path, mail, two_accounts(mail), passwords) as hub:
        async with Client(hub.url, mode="legacy", message_handler=on_message) as client:
            wrong = await client.call_tool("mail__folders", {"account": "bob"})
            assert wrong.is_error
            text = wrong.content[0].text
            assert "mail account 'bob': IMAP server 127.0.0.1:" in text and "refused the login of " \
                "'bob@example.test'" in text and "junction secret set" in text, text
            assert "not-bobs-password" not in text
            assert not (await client.call_tool("mail__folders", {"account": "alice"})).is_error  # others still work
            send = await client.call_tool("mail__send", {"account": "bob", "to": [ALICE], "subject": "x", "body": "y",
                                                         "confirm": True})
            assert send.is_error and "SMTP server 127.0.0.1:" in send.content[0].text and "535" in \
                send.content[0].text
            await wait_until_async(lambda: _watching_one(client, "alice"), "alice's IDLE watcher listening")
            await client.subscribe_resource("mail://alice/INBOX")

            mail.stop_imap()
            try:
                down = await client.call_tool("mail__search", {"account": "alice"})
                assert down.is_error and "mail account 'alice': IMAP server 127.0.0.1:" in down.content[0].text
                assert "connection refused" in down.content[0].text or "connection broke" in down.content[0].text
                accounts = (await client.call_tool("mail__accounts", {})).structured_content["accounts"]
                assert next(a for a in accounts if a["account"] == "alice")["error"]
            finally:
                mail.start_imap()
            back = await client.call_tool("mail__search", {"account": "alice"})
            assert not back.is_error, back.content[0].text
            # the IDLE watcher reconnected on its own: new mail is announced again (its backoff doubles up to
            # 60 s while the server is away, which on a loaded machine can be a while)
            await wait_until_async(lambda: _watching_one(client, "alice"), "alice's IDLE watcher back", 120)
            updates.clear()
            mail.deliver_lmtp(ALICE, b"From: carol@example.test\r\nSubject: after the outage\r\n\r\nhi\r\n")
            await wait_until_async(lambda: "mail://alice/INBOX" in updates, "an update of alice's INBOX")
            assert (await client.call_tool("mail__search", {"account": "alice", "subject": "outage"})
                    ).structured_content["total"] == 1
    assert "not-bobs-password" not in hub.log() and "alice-password-1" not in hub.log()


async def _watching_one(client: Client, name: str) -> bool:
    rows = (await client.call_tool("mail__accounts", {})).structured_content["accounts"]
    row = next(r for r in rows if r["account"] == name)
    return row["watching"] == ["INBOX"] and not row["error"]


async def test_attachments_as_blobs_and_into_a_files_root(empty_mail: MailServer, tmp_path: Path) -> None:
    import base64

    mail = empty_mail
    share = tmp_path / "share"
    share.mkdir()
    (share / "report.csv").write_text("a,b\n1,2\n")
    pdf = b"%PDF-1.4 pretend" + bytes(range(256))
    message = email.message.EmailMessage()
    message["From"], message["To"], message["Subject"] = "carol@example.test", ALICE, "the files"
    message.set_content("see attached")
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename="../../etc/passwd")
    message.add_attachment("hello", filename="note.txt")
    mail.deliver_lmtp(ALICE, message.as_bytes())
    config = two_accounts(mail) + f'[providers.files.roots.share]\npath = "{share}"\nwritable = true\n'
    with mail_hub(tmp_path, mail, config, PASSWORDS) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            uid = (await client.call_tool("mail__search", {"account": "alice"})).structured_content["messages"][0]["uid"]
            view = (await client.call_tool("mail__read", {"account": "alice", "uid": uid})).structured_content
            names = [a["filename"] for a in view["attachments"]]
            assert names == [".._.._etc_passwd", "note.txt"]  # no path survives in a name
            blob = await client.call_tool("mail__attachment", {"account": "alice", "uid": uid, "index": 0})
            assert base64.b64decode(blob.content[1].resource.blob) == pdf
            assert blob.content[1].resource.mime_type == "application/pdf"
            saved = await client.call_tool("mail__attachment", {"account": "alice", "uid": uid, "index": 0,
                                                                "save_root": "share", "save_path": "in/doc.pdf"})
            assert not saved.is_error, saved.content[0].text
            assert (share / "in" / "doc.pdf").read_bytes() == pdf
            again = await client.call_tool("mail__attachment", {"account": "alice", "uid": uid, "index": 0,
                                                                "save_root": "share", "save_path": "in/doc.pdf"})
            assert again.is_error and "already exists" in again.content[0].text
            escape = await client.call_tool("mail__attachment", {"account": "alice", "uid": uid, "index": 0,
                                                                 "save_root": "share", "save_path": "../doc.pdf"})
            assert escape.is_error and "'..' is refused" in escape.content[0].text
            assert not (tmp_path / "doc.pdf").exists()
            bad_index = await client.call_tool("mail__attachment", {"account": "alice", "uid": uid, "index": 5})
            assert bad_index.is_error and "has 2 attachment(s)" in bad_index.content[0].text
            # sending with an attachment from a root
            draft = await client.call_tool("mail__draft", {"account": "alice", "to": [BOB], "subject": "numbers",
                                                           "body": "attached", "attachments": [
                                                               {"root": "share", "path": "report.csv"}]})
            assert not draft.is_error, draft.content[0].text
            attached = folder_messages(mail, ALICE, "Drafts")[0]
            part = next(attached.iter_attachments())
            assert part.get_filename() == "report.csv" and part.get_content() == "a,b\n1,2\n"
            outside = await client.call_tool("mail__draft", {"account": "alice", "to": [BOB], "subject": "x",
                                                             "attachments": [{"root": "share", "path": "/etc/passwd"}]})
            assert outside.is_error and "attachments[0]" in outside.content[0].text


def test_a_password_in_clear_is_refused(mail: MailServer, tmp_path: Path) -> None:
    config = account_toml(mail, "alice", ALICE).replace('"${secret:alice-mail}"', '"alice-password-1"')
    (tmp_path / "junction.toml").write_text(config)
    done = subprocess.run([*JUNCTION, "serve", "--port", "0", "--config", str(tmp_path / "junction.toml")],
                          cwd=ROOT, env=hub_env(tmp_path / "data"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "providers.mail.accounts.alice.password: a secret written in clear" in done.stderr
    assert "alice-password-1" not in done.stderr
    plain = account_toml(mail, "remote", ALICE).replace('imap_host = "127.0.0.1"', 'imap_host = "imap.example.com"')
    (tmp_path / "junction.toml").write_text(plain.replace('imap_tls = "starttls"', 'imap_tls = "none"'))
    set_secret(tmp_path, "remote-mail", "x-password")
    done = subprocess.run([*JUNCTION, "serve", "--port", "0", "--config", str(tmp_path / "junction.toml")],
                          cwd=ROOT, env=hub_env(tmp_path / "data"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "providers.mail.accounts.remote.imap_tls: \"none\" sends the password in " \
        "clear" in done.stderr, done.stderr


async def test_non_ascii_folders_and_searches(empty_mail: MailServer, tmp_path: Path) -> None:
    mail = empty_mail
    if "Entwürfe & Co" not in mail.doveadm("mailbox", "list", "-u", ALICE):
        mail.doveadm("mailbox", "create", "-u", ALICE, "Entwürfe & Co")
    letter = email.message.EmailMessage()
    letter["From"], letter["To"], letter["Subject"] = "Jürgen <j@elsewhere.test>", ALICE, "Grüße aus Köln"
    letter.set_content("Schöne Grüße vom Rhein")
    mail.deliver_lmtp(ALICE, letter.as_bytes())
    with mail_hub(tmp_path, mail, account_toml(mail, "alice", ALICE), {"alice": PASSWORDS["alice"]}) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            names = [f["name"] for f in (await client.call_tool("mail__folders", {"account": "alice"})
                                         ).structured_content["folders"]]
            assert "Entwürfe & Co" in names
            found = await client.call_tool("mail__search", {"account": "alice", "subject": "grüße", "from": "jürgen",
                                                            "text": "Rhein"})
            assert [m["subject"] for m in found.structured_content["messages"]] == ["Grüße aus Köln"]
            uid = found.structured_content["messages"][0]["uid"]
            moved = await client.call_tool("mail__move", {"account": "alice", "uids": [uid], "to": "Entwürfe & Co"})
            assert not moved.is_error, moved.content[0].text
            there = await client.call_tool("mail__search", {"account": "alice", "folder": "Entwürfe & Co"})
            assert there.structured_content["messages"][0]["from"] == ["Jürgen <j@elsewhere.test>"]
            resource = await client.read_resource(f"mail://alice/Entw%C3%BCrfe%20%26%20Co/"
                                                  f"{there.structured_content['messages'][0]['uid']}")
            assert "Schöne Grüße vom Rhein" in resource.contents[0].text


async def test_an_oauth_access_token_instead_of_a_password(empty_mail: MailServer, tmp_path: Path) -> None:
    """XOAUTH2 for IMAP and SMTP (Gmail's and Outlook's way), with the token in the secret store."""
    mail = empty_mail
    token = mail.oauth_token(ALICE)
    config = account_toml(mail, "alice", ALICE, extra='auth = "xoauth2"')
    with mail_hub(tmp_path / "good", mail, config, {"alice": token}) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            folders = await client.call_tool("mail__folders", {"account": "alice"})
            assert not folders.is_error, folders.content[0].text
            sent = await client.call_tool("mail__send", {"account": "alice", "to": [BOB], "subject": "by token",
                                                         "body": "no password involved", "confirm": True})
            assert not sent.is_error, sent.content[0].text
    await wait_until_async(lambda: [m["Subject"] for m in folder_messages(mail, BOB, "INBOX")] == ["by token"],
                           "the message sent by token in bob's INBOX")
    expired = mail.oauth_token(ALICE, lifetime=-60)
    with mail_hub(tmp_path / "expired", mail, config, {"alice": expired}) as hub:
        async with Client(hub.url, mode="2026-07-28") as client:
            refused = await client.call_tool("mail__folders", {"account": "alice"})
            assert refused.is_error and "refused the login of 'alice@example.test'" in refused.content[0].text
            assert expired not in refused.content[0].text
