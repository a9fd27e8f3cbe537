"""One real Dovecot + Postfix for every mail test (started once, emptied between tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fixtures.mail_server import MailServer, available


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    why = available()
    if why and not os.environ.get("CI"):  # in CI a missing mail server is a failure, not a skip
        for item in items:
            if "tests/mail/" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(pytest.mark.skip(reason=f"no mail server here: {why}"))


@pytest.fixture(scope="session")
def mail() -> Iterator[MailServer]:
    server = MailServer.create().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def empty_mail(mail: MailServer) -> MailServer:
    """The server with every user's folders emptied (tests start from nothing)."""
    for user in mail.users:
        mail.doveadm("expunge", "-u", user, "mailbox", "*", "all")
    return mail
