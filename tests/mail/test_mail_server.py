"""The mail test fixture itself: a real Dovecot + Postfix on loopback, as the mail provider's tests will use it."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
from pathlib import Path

import pytest

from tests.fixtures.mail_server import MailServer
from tests.helpers import wait_until


def inbox_subjects(mail: MailServer, user: str) -> list[str]:
    imap = imaplib.IMAP4("127.0.0.1", mail.ports["IMAP"])
    try:
        imap.starttls(ssl.create_default_context(cafile=str(mail.ca_file)))
        imap.login(user, mail.users[user])
        imap.select("INBOX")
        _, data = imap.search(None, "ALL")
        subjects = []
        for num in data[0].split():
            _, fetched = imap.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(fetched[0][1].decode().strip().removeprefix("Subject: "))
        return subjects
    finally:
        imap.logout()


def test_submission_delivers_and_imap_reads(empty_mail: MailServer) -> None:
    mail = empty_mail
    context = ssl.create_default_context(cafile=str(mail.ca_file))
    with smtplib.SMTP("127.0.0.1", mail.ports["SUBMISSION"], timeout=10) as smtp:
        smtp.starttls(context=context)
        smtp.login("alice@example.test", mail.users["alice@example.test"])
        smtp.sendmail("alice@example.test", ["bob@example.test", "someone@elsewhere.invalid"],
                      b"From: alice@example.test\r\nSubject: lunch at noon\r\n\r\nSee you.\r\n")
    assert wait_until(lambda: "lunch at noon" in inbox_subjects(mail, "bob@example.test"), "the mail in bob's INBOX",
                      10, interval=0.1)
    # mail for other domains stays on this machine, in the catch-all box
    assert wait_until(lambda: "lunch at noon" in inbox_subjects(mail, "catchall@example.test"),
                      "the mail in the catch-all INBOX", 10, interval=0.1)


def test_refusals_are_real(empty_mail: MailServer) -> None:
    mail = empty_mail
    with pytest.raises(smtplib.SMTPAuthenticationError):
        with smtplib.SMTP("127.0.0.1", mail.ports["SUBMISSION"], timeout=10) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(mail.ca_file)))
            smtp.login("alice@example.test", "wrong-password")
    with pytest.raises(imaplib.IMAP4.error):
        imap = imaplib.IMAP4("127.0.0.1", mail.ports["IMAP"])
        try:
            imap.login("alice@example.test", "wrong-password")
        finally:
            imap.shutdown()
    # The per-IP penalty after a failed login is off: Dovecot's anvil holds none for 127.0.0.1 that would hold
    # up the next login (asked of Dovecot, not timed: on a loaded machine any login can be slow).
    assert "127.0.0.1" not in mail.doveadm("penalty")
    assert isinstance(inbox_subjects(mail, "alice@example.test"), list)


def test_incoming_mail_and_special_folders(empty_mail: MailServer) -> None:
    mail = empty_mail
    mail.deliver("alice@example.test", b"From: news@elsewhere.test\r\nSubject: weekly digest\r\n\r\nhello\r\n")
    assert wait_until(lambda: "weekly digest" in inbox_subjects(mail, "alice@example.test"),
                      "the digest in alice's INBOX", 10, interval=0.1)
    imap = imaplib.IMAP4_SSL("127.0.0.1", mail.ports["IMAPS"],
                             ssl_context=ssl.create_default_context(cafile=str(mail.ca_file)))
    try:
        imap.login("alice@example.test", mail.users["alice@example.test"])
        _, folders = imap.list()
        listing = b"\n".join(folders).decode()
        for role in ("\\Drafts", "\\Sent", "\\Trash", "\\Junk", "\\Archive"):
            assert role in listing
    finally:
        imap.logout()
    assert Path(mail.ca_file).exists()
