"""Shared fixtures: a real hub process on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import RunningHub, serve_hub


@pytest.fixture(scope="module")
def bare_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """`junction serve` with no config file at all."""
    with serve_hub(tmp_path_factory.mktemp("bare")) as hub:
        yield hub


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


