"""The PostgreSQL and Redis the replica tests share (tests/fixtures/services.py) are what a team's deploy/ runs: a
server on loopback that takes its role's password and nothing else. Checked here once, so a later failure of a
replica test is never the fixtures'."""

from __future__ import annotations

import os

import pytest

from tests.fixtures.services import postgres_missing, postgres_server, redis_missing, redis_server

pytestmark = pytest.mark.skipif(bool(postgres_missing() or redis_missing()) and not os.environ.get("CI"),
                                reason="PostgreSQL or Redis not installed (run scripts/test.sh)")


def test_postgres_takes_its_password_and_nothing_else() -> None:
    import psycopg

    with postgres_server() as pg:
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == ("junction", "junction")
        other = pg.create_database("replica_test")
        with psycopg.connect(other) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("replica_test",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(pg.url.replace(pg.password, "wrong-password")).close()


def test_redis_takes_its_password_and_nothing_else() -> None:
    import redis

    with redis_server() as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(server.url.replace(server.password, "wrong")).ping()
