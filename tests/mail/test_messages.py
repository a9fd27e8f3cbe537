"""The pieces under the mail provider: IMAP wire parsing, folder-name encoding, composing and reading."""

from __future__ import annotations

import email
import email.policy

import pytest

from tools.mail import messages
from tools.mail.imap import MailError, decode_folder, encode_folder, parse_fetch, parse_list, quote


@pytest.mark.parametrize("name, wire", [("INBOX", "INBOX"), ("Entwürfe", "Entw&APw-rfe"), ("A & B", "A &- B"),
                                        ("日本語", "&ZeVnLIqe-"), ("Sent/2026", "Sent/2026")])
def test_folder_names_in_modified_utf7(name: str, wire: str) -> None:
    assert encode_folder(name) == wire and decode_folder(wire) == name


def test_list_and_fetch_answers_are_parsed() -> None:
    folders = parse_list([b'(\\HasNoChildren \\Drafts) "/" Drafts', b'(\\HasNoChildren) "/" "My \\"Folder\\""',
                          (b'(\\HasNoChildren \\Sent) "/" {4}', b"Sent"), b'(\\Noselect) NIL "Entw&APw-rfe"', None])
    assert [(f.name, f.role, f.separator) for f in folders] == [
        ("Drafts", "\\Drafts", "/"), ('My "Folder"', None, "/"), ("Sent", "\\Sent", "/"), ("Entwürfe", None, None)]
    fetched = parse_fetch([(b"1 (UID 7 RFC822.SIZE 120 FLAGS (\\Seen \\Flagged) BODY[HEADER.FIELDS (SUBJECT)] {14}",
                            b"Subject: hi\r\n\r\n"), b")",
                           (b"2 (UID 9 BODY[HEADER.FIELDS (SUBJECT)] {4}", b"\r\n\r\n"), b" FLAGS ())",
                           b"3 (UID 11 FLAGS (\\Deleted))"])
    assert fetched[7] == {"flags": ["\\Seen", "\\Flagged"], "size": 120, "body": b"Subject: hi\r\n\r\n"}
    assert fetched[9] == {"flags": [], "body": b"\r\n\r\n"} and fetched[11] == {"flags": ["\\Deleted"]}
    assert quote('say "hi" \\ bye') == b'"say \\"hi\\" \\\\ bye"'


ORIGINAL = (b"From: Bob <bob@example.test>\r\nTo: alice@example.test, Carol <carol@example.test>\r\n"
            b"Cc: dave@example.test\r\nSubject: Plans\r\nDate: Mon, 1 Jun 2026 09:00:00 +0000\r\n"
            b"Message-ID: <p2@example.test>\r\nReferences: <p0@example.test> <p1@example.test>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nFirst line\r\n\r\nSecond line\r\n--b\r\n"
            b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=plan.pdf\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--b--\r\n")


def test_a_reply_threads_and_quotes() -> None:
    reply = messages.compose(sender="alice@example.test", to=["Bob <bob@example.test>"], cc=[], bcc=[],
                             subject="Re: Plans", body="Agreed.", original=messages.read(ORIGINAL), mode="reply",
                             domain="example.test")
    parsed = email.message_from_bytes(messages.to_bytes(reply), policy=email.policy.default)
    assert parsed["In-Reply-To"] == "<p2@example.test>"
    assert parsed["References"] == "<p0@example.test> <p1@example.test> <p2@example.test>"
    assert parsed["Message-ID"].endswith("@example.test>")
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Agreed.\n\nOn Mon, 01 Jun 2026 09:00:00 +0000, Bob <bob@example.test> wrote:\n")
    assert "> First line\n>\n> Second line" in text
    assert list(parsed.iter_attachments()) == []  # replies do not carry the attachments back


def test_a_forward_carries_the_text_and_the_attachments() -> None:
    forward = messages.compose(sender="alice@example.test", to=["erin@example.test"], cc=[], bcc=[],
                               subject="Fwd: Plans", body="FYI", original=messages.read(ORIGINAL), mode="forward")
    parsed = email.message_from_bytes(messages.to_bytes(forward), policy=email.policy.default)
    assert parsed["In-Reply-To"] is None
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "---------- Forwarded message ----------\nFrom: Bob <bob@example.test>" in text and "Second line" in text
    attachment = next(parsed.iter_attachments())
    assert attachment.get_filename() == "plan.pdf" and attachment.get_content() == b"%PDF-1.4"


def test_what_a_caller_writes_is_checked() -> None:
    assert messages.clean_addresses(["Bob <bob@example.test>", "x@y.test"], "to") == ["Bob <bob@example.test>",
                                                                                      "x@y.test"]
    for bad, why in (("a@b.test\r\nBcc: c@d.test", "line breaks"), ("a@b.test, c@d.test", "not one e-mail address"),
                     ("nobody", "not one e-mail address"), ("<a@b>", "not one e-mail address")):
        with pytest.raises(MailError, match=why):
            messages.clean_addresses([bad], "to")
    with pytest.raises(MailError, match="subject: line breaks"):
        messages.clean_header("x\nBcc: y", "subject")
    assert messages.reply_subject("RE: Plans", "Re") == "RE: Plans" and messages.reply_subject("Plans", "Fwd") == \
        "Fwd: Plans"


def test_listing_headers_are_decoded_and_kept_on_one_line() -> None:
    head = (b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@example.test>, \"Doe, Jane\" <jane@example.test>\r\n"
            b"Subject: =?utf-8?b?R3LDvMOfZQ0KQmNjOiB4QHkudGVzdA==?=\r\n\r\n")
    summary = messages.summary(head)
    assert summary["from"] == ["Jürgen Müller <j@example.test>", '"Doe, Jane" <jane@example.test>']
    assert summary["subject"] == "Grüße Bcc: x@y.test"
