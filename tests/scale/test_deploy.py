"""deploy/ is what the tests run: the replicas get the environment deploy/docker-compose.yml gives them (its host
names put on loopback), behind deploy/haproxy.cfg, on a PostgreSQL and a Redis set up as the file sets them up; a
user made once with the CLI calls tools through the balancer, a caller without a token is refused."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.services import Postgres, haproxy, redis_missing, redis_server
from tests.helpers import ROOT, free_port, remember_secret, stateless_call
from tests.scale.test_balanced import balancer_config, replicas, team_cli

pytestmark = pytest.mark.skipif(redis_missing() is not None, reason="Redis not installed (run scripts/test.sh)")

COMPOSE = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def substituted(value: str, variables: dict[str, str]) -> str:
    """`${NAME}` and `${NAME:-default}` as Compose fills them in."""
    return _VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(2) or ""), value)


def test_the_compose_file_and_the_balancer_name_the_same_replicas() -> None:
    services = COMPOSE["services"]
    hubs = sorted(name for name in services if name.startswith("hub"))
    assert hubs == ["hub1", "hub2", "hub3"] and {"postgres", "redis", "haproxy"} <= set(services)
    servers = re.findall(r"^\s*server (\S+) (\S+):(\d+) check", (ROOT / "deploy" / "haproxy.cfg").read_text(), re.M)
    assert [(name, host) for name, host, _ in servers] == [(h, h) for h in hubs]
    for name in hubs:
        command = services[name]["command"]
        assert command[command.index("--port") + 1] == servers[0][2]  # the port HAProxy sends to
    environment = services["hub1"]["environment"]
    store = environment["JUNCTION__STORE__URL"]
    postgres = services["postgres"]["environment"]
    assert f"//{postgres['POSTGRES_USER']}:${{POSTGRES_PASSWORD}}@postgres:5432/{postgres['POSTGRES_DB']}" in store
    assert "${REDIS_PASSWORD}" in environment["JUNCTION__STORE__REDIS_URL"]
    assert "${REDIS_PASSWORD}" in services["redis"]["command"]
    assert services["haproxy"]["ports"] == ["8080:8080"] and "bind *:8080" in (ROOT / "deploy" / "haproxy.cfg").read_text()
    example = dict(line.split("=", 1) for line in (ROOT / "deploy" / "env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    used = {name for name, _ in _VARIABLE.findall(yaml.safe_dump(COMPOSE))}
    assert used and used <= set(example)  # every variable the file uses is in the example .env


def compose_environment(pg: Postgres, database: str, redis: Any, lb_port: int) -> dict[str, str]:
    """hub1's environment from the compose file, its host names and secrets those of the servers on loopback."""
    variables = {"POSTGRES_PASSWORD": pg.password, "REDIS_PASSWORD": redis.password,
                 "JUNCTION_SECRET_KEY": secrets.token_hex(32), "JUNCTION_STATE_KEY": secrets.token_hex(32),
                 "PUBLIC_URL": f"http://127.0.0.1:{lb_port}/mcp", "ALLOWED_HOSTS": f'["127.0.0.1:{lb_port}"]'}
    out = {}
    for name, value in COMPOSE["services"]["hub1"]["environment"].items():
        value = substituted(str(value), variables)
        value = value.replace("@postgres:5432/junction", f"@127.0.0.1:{pg.port}/{database}")
        out[name] = value.replace("@redis:6379", f"@127.0.0.1:{redis.port}")
    return out


def test_the_compose_environment_runs_a_team_hub(tmp_path: Path, pg: Postgres) -> None:
    lb_port = free_port()
    database = "deployed"
    pg.create_database(database)
    with redis_server() as redis:
        env = compose_environment(pg, database, redis, lb_port)
        cli = team_cli(tmp_path / "cli", "", env)
        cli("user", "add", "alice", "--role", "admin")
        token = cli("token", "create", "--user", "alice").strip()
        remember_secret(token)
        with replicas(tmp_path, 3, "", env) as hubs, haproxy(balancer_config(hubs), lb_port) as lb:
            for _ in hubs:
                status, answer = stateless_call(f"{lb.base}/mcp", "hub__status", token=token)
                assert status == 200 and "result" in answer, answer
            assert stateless_call(f"{lb.base}/mcp", "hub__status")[0] == 401
            assert all("Listening on 127.0.0.1:" in hub.log() for hub in hubs)
