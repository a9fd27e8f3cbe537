"""24 hostile or broken messages delivered to a real mailbox and read through the hub: no crash, no hang, no
script text, no header smuggled through, no path in an attachment name."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.fixtures.mail_hostile import corpus
from tests.fixtures.mail_hub import ALICE, PASSWORDS, mail_hub, two_accounts
from tests.fixtures.mail_server import MailServer

pytestmark = pytest.mark.anyio


async def test_hostile_messages_are_read_without_harm(empty_mail: MailServer, tmp_path: Path) -> None:
    mail = empty_mail
    messages = corpus()
    assert len(messages) >= 20
    for _, raw in messages:
        mail.deliver_lmtp(ALICE, raw)
    with mail_hub(tmp_path, mail, two_accounts(mail), PASSWORDS) as hub:
        async with Client(hub.url, mode="2026-07-28", read_timeout_seconds=60) as client:
            with anyio.fail_after(60):
                listing = await client.call_tool("mail__search", {"account": "alice", "limit": 200})
            assert not listing.is_error, listing.content[0].text
            found = listing.structured_content["messages"]
            assert len(found) == len(messages)
            views = {}
            for summary in found:
                with anyio.fail_after(60):  # a slow parse would be a hang for the user
                    result = await client.call_tool("mail__read", {"account": "alice", "uid": summary["uid"]})
                assert not result.is_error, (summary, result.content[0].text)
                view = result.structured_content
                for key in ("subject", "date", "message_id"):
                    assert "\r" not in view[key] and "\n" not in view[key], (key, view[key])
                views[view["subject"]] = view

            html = views["html with scripts"]
            assert "Dear customer" in html["html_as_text"]
            for never in ("alert(", "steal()", "display:none", "javascript:", "tracker.invalid"):
                assert never not in html["html_as_text"]
            smuggled = next(v for s, v in views.items() if s.startswith("hello"))
            assert smuggled["subject"] == "hello Bcc: victim@elsewhere.test"  # one line, never a header
            names = [a["filename"] for a in views["path names"]["attachments"]]
            assert names[0] == ".._.._.bashrc" and all("/" not in n and "\\" not in n and "\x00" not in n
                                                         and "\r" not in n and "\n" not in n for n in names), names
            huge = views["huge attachment"]
            assert huge["attachments"][0]["filename"] == "big.bin"
            assert 20 * 2**20 <= huge["attachments"][0]["size"] <= 21 * 2**20 and huge["size"] > 27 * 2**20
            assert views["deep nesting"]["truncated"] is True and views["many parts"]["truncated"] is True
            assert views["rfc822 russian doll"]["truncated"] is True  # bounded, said so, and served
            assert views["lying charset"]["text"].strip() == "café crème brûlée"  # latin-1 labelled utf-8
            assert views["klingon"]["text"].startswith("Qapla’")  # an unknown charset falls back to UTF-8
            assert views["bad addresses"]["to"][:2] == ["user0@example.test", "user1@example.test"]
            long_subject = next(s for s in views if s.startswith("long "))
            assert len(long_subject) == 2000  # capped, not dropped
            assert views["broken alternative"]["text"] == "日本語"  # UTF-7 decoded

            # replying to hostile mail: the quoting and headers stay well-formed
            target = next(s["uid"] for s in found if s["subject"] == "html with scripts")
            reply = await client.call_tool("mail__draft", {"account": "alice", "mode": "reply", "uid": target,
                                                           "body": "Not clicking."})
            assert not reply.is_error, reply.content[0].text
            assert reply.structured_content["in_reply_to"] == "<html-with-scripts@elsewhere.test>"
            injected = next(s["uid"] for s in found if s["subject"].startswith("hello"))
            forward = await client.call_tool("mail__draft", {"account": "alice", "mode": "forward", "uid": injected,
                                                             "to": ["bob@example.test"]})
            assert not forward.is_error and "\n" not in forward.structured_content["subject"]
            big = next(s["uid"] for s in found if s["subject"] == "huge attachment")
            blob = await client.call_tool("mail__attachment", {"account": "alice", "uid": big, "index": 0})
            assert not blob.is_error and blob.structured_content["size"] == 20 * 2**20
            # and everyone else is still served
            assert not (await client.call_tool("mail__accounts", {})).is_error
            assert not (await client.call_tool("mail__search", {"account": "bob"})).is_error
