"""Agents across replicas on one PostgreSQL: an agent made through one replica is a tool on the others within a
second, runs there (with the model key kept once in the shared secret store), and goes from all when it is deleted
through any of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.services import Postgres
from tests.helpers import remember_secret, stateless_call, wait_until_async
from tests.scale.test_balanced import replicas, shared_env, team_cli


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(llm: FakeLLM) -> str:
    return f"""
[providers.agents]

[providers.agents.models.llm]
base_url = "{llm.url}"
model = "default"
api_key = "${{secret:llm}}"
allowed_models = ["*"]
"""


async def call(url: str, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    status, answer = await anyio.to_thread.run_sync(partial(stateless_call, url, name, arguments or {}))
    assert status == 200 and "result" in answer, answer
    return answer["result"]


@pytest.mark.anyio
async def test_an_agent_made_through_one_replica_runs_on_the_others(tmp_path: Path, pg: Postgres, llm: FakeLLM
                                                                     ) -> None:
    env = shared_env(pg.create_database("agents_across"))
    remember_secret(llm.api_key)
    team_cli(tmp_path / "cli", config(llm), env)("secret", "set", "llm", stdin=llm.api_key + "\n")
    llm.script("helper", [{"content": "Hello from the model."}])
    with replicas(tmp_path, 2, config(llm), env) as (one, two):
        made = await call(one.url, "agents__create", {"name": "helper", "instructions": "Be brief.",
                                                      "models": [{"use": "llm", "model": "helper"}]})
        assert not made.get("isError"), made

        async def offered_on_two() -> bool:
            answer = (await anyio.to_thread.run_sync(partial(stateless_call, two.url, "agents__list", {})))[1]
            return "helper" in str(answer.get("result"))

        await wait_until_async(offered_on_two, "the agent listed on the other replica", 60)
        ran = await call(two.url, "agents__helper", {"message": "hi"})
        assert not ran.get("isError") and "Hello from the model." in str(ran["content"]), ran
        assert llm.requests_for("helper"), "the model was asked through the other replica"
        gone = await call(two.url, "agents__delete", {"name": "helper"})
        assert not gone.get("isError"), gone

        async def gone_from_one() -> bool:
            answer = (await anyio.to_thread.run_sync(partial(stateless_call, one.url, "agents__helper",
                                                             {"message": "hi"})))[1]
            return "helper" in str(answer) and ("error" in answer or answer.get("result", {}).get("isError"))

        await wait_until_async(gone_from_one, "the agent gone from the first replica", 60)
