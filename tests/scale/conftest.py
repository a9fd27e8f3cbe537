"""One PostgreSQL server per test worker, and an empty database of its own for each test that asks for one."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from tests.fixtures.services import Postgres, postgres_missing, postgres_server

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    why = postgres_missing()
    if why and not os.environ.get("CI"):
        pytest.skip(why)
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(pg: Postgres) -> str:
    """The URL of a new, empty database on the worker's server."""
    return pg.create_database(f"t{os.getpid()}_{next(_numbers)}")
