"""Shared fixtures: a real hub process on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import SECRETS_USED, RunningHub, secret_leaks, serve_hub


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_clear(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole run: no password, token or secret a test gave a hub is in any data directory
    or hub log in clear."""
    yield
    if SECRETS_USED:
        leaks = secret_leaks(tmp_path_factory.getbasetemp())
        assert not leaks, "secrets in clear:\n" + "\n".join(leaks)


@pytest.fixture(scope="module")
def bare_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """`junction serve` with no config file at all."""
    with serve_hub(tmp_path_factory.mktemp("bare")) as hub:
        yield hub


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


