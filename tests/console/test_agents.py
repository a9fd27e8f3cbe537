"""The Agents and Chat pages in a real browser (Chromium): a user makes an agent from a preset, edits it, talks to it
(the answer appears with the tool call it made, and the conversation is in their list) and deletes it. The model is
the scripted OpenAI-compatible server of tests/fixtures/fake_llm.py (real HTTP, streamed), run in a thread of its own
beside the browser; the agent's tool is the hub's own `hub__connectors`."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.fake_llm import FakeLLM
from tests.helpers import (
    NODE_MODULES,
    RunningHub,
    add_users,
    browse,
    browsed_cleanly,
    serve_hub,
    set_secret,
    sign_in_steps,
    token_for,
)
from tests.security.test_console_connectors_attacks import mcp_call

pytestmark = pytest.mark.skipif(not (NODE_MODULES / "playwright-core").exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")

USERS = {"root": ("admin", "root-password-1"), "alice": ("user", "alice-password-22"),
         "bob": ("user", "bob-password-333")}
CONFIG = """
[auth]
mode = "tokens"
[providers.agents]
[providers.agents.models.llm]
base_url = "URL"
model = "default"
api_key = "${secret:llm}"
allowed_models = ["*"]
[providers.agents.agents.greeter]
instructions = "Greet."
models = [{use = "llm", model = "greeter"}]
[providers.rag]
embedder = "none"
sample = false
"""


@dataclass
class ChatHub:
    hub: RunningHub
    llm: FakeLLM
    tmp: Path


@pytest.fixture(scope="module")
def chat_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatHub]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    llm = asyncio.run_coroutine_threadsafe(FakeLLM().start(), loop).result(timeout=60)
    tmp = tmp_path_factory.mktemp("console-agents")
    config = CONFIG.replace("URL", llm.url)
    (tmp / "junction.toml").write_text(config)
    set_secret(tmp, "llm", llm.api_key)
    add_users(tmp, USERS)
    try:
        with serve_hub(tmp, config) as hub:
            yield ChatHub(hub, llm, tmp)
    finally:
        asyncio.run_coroutine_threadsafe(llm.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)


def test_make_an_agent_from_a_preset_edit_it_talk_to_it_and_delete_it(chat_hub: ChatHub, tmp_path: Path) -> None:
    chat_hub.llm.script("chat-1", [{"tool_calls": [{"name": "hub__connectors", "arguments": {}}]},
                                   # the answer takes a while: the tool step shows while the agent works
                                   {"delay": 4, "content": "This hub links no MCP server yet."}])
    base = chat_hub.hub.base
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "alice", USERS["alice"][1]),
        {"click": "header nav a[href='/agents']"},
        {"wait": "#agents tr[data-agent=greeter]"},
        {"select": "#preset-pick", "value": "customer_support"},
        {"wait": "#agent-form p.small", "text": "customer_support"},
        {"value": "#agent-instructions", "as": "instructions"},
        {"fill": "#agent-name", "value": "helper"},
        {"fill": "#agent-patterns", "value": ""},
        {"check": "#agent-form input[name=tools][value=hub__connectors]"},
        {"fill": "#agent-model-id", "value": "chat-1"},
        {"click": "#agent-form button[type=submit]"},
        {"wait": "h1", "text": "helper"},
        {"text": "#agent-facts", "as": "facts"},
        {"fill": "#agent-description", "value": "Says what the hub links."},
        {"click": "#agent-form button[type=submit]"},
        {"wait": "#agent-notice"},
        {"text": "#agent-facts", "as": "edited"},
        {"click": "a[href='/chat/helper']"},
        {"wait": "#send"},
        {"fill": "#message", "value": "What does this hub link?"},
        {"click": "#send button[type=submit]"},
        {"wait": "#working"},
        {"wait": "#conversation[data-status=running] li[data-tool=hub__connectors]"},
        {"wait": "#conversation[data-status=ok] .answer"},
        {"text": "#conversation .answer", "as": "answer"},
        # once it has answered, the conversation's own links are there without a reload
        {"wait": "#chat-actions #new-conversation"},
        {"count": "#chat-actions #delete-conversation", "as": "deletable"},
        {"click": "#conversation li[data-tool=hub__connectors] summary"},
        {"text": "#conversation li[data-tool=hub__connectors]", "as": "tool_step"},
        {"text": "#conversation .step-model", "as": "model_step"},
        {"wait": "#conversations li[data-conversation]"},
        {"text": "#conversations", "as": "listed"},
        {"url": "chat_url"},
        {"goto": f"{base}/agents/helper"},
        {"click": "#delete-agent"},
        {"wait": "#agents tr[data-agent=greeter]"},
        {"count": "#agents tr[data-agent=helper]", "as": "left"},
    ]))
    assert values["instructions"].startswith("You are a customer support agent.")
    assert "llm (openai:chat-1)" in values["facts"] and "hub__connectors" in values["facts"]
    assert "Says what the hub links." in values["edited"]
    assert values["answer"] == "helper: This hub links no MCP server yet."
    assert values["deletable"] == 1
    assert "called hub__connectors" in values["tool_step"] and '"connectors": []' in values["tool_step"]
    assert "llm (openai:chat-1)" in values["model_step"] and "tokens in" in values["model_step"]
    assert "What does this hub link?" in values["listed"] and "ok" in values["listed"]
    assert values["chat_url"].startswith(f"{base}/chat/helper/")
    assert values["left"] == 0
    sent = chat_hub.llm.requests_for("chat-1")
    # the preset's own tool (the knowledge base's search, ticked for her) and the one she ticked
    assert sorted(t["function"]["name"] for t in sent[0]["tools"]) == ["hub__connectors", "rag__search"]


def test_an_agents_knowledge_is_chosen_from_the_namespaces_one_may_search(chat_hub: ChatHub, tmp_path: Path) -> None:
    """The form offers alice's own namespaces (never bob's) as boxes to tick; what she ticks is the agent's
    knowledge, and editing it shows them ticked."""
    url = chat_hub.hub.url
    for user, namespace in (("alice", "alice-notes"), ("alice", "alice-faq"), ("bob", "bob-private")):
        made = mcp_call(url, token_for(chat_hub.tmp, user), "rag__create_namespace", {"namespace": namespace})
        assert not made.get("isError"), made
    base = chat_hub.hub.base
    values = browsed_cleanly(browse(tmp_path, [
        *sign_in_steps(base, "alice", USERS["alice"][1], then="/agents"),
        {"wait": "#agent-form fieldset.knowledge-choice"},
        {"text": "#agent-form fieldset.knowledge-choice", "as": "offered"},
        {"fill": "#agent-name", "value": "librarian"},
        {"fill": "#agent-instructions", "value": "Answer from the FAQ."},
        {"check": "#agent-form input[name=knowledge][value=alice-faq]"},
        {"click": "#agent-form button[type=submit]"},
        {"wait": "h1", "text": "librarian"},
        {"count": "#agent-form input[name=knowledge]:checked", "as": "checked"},
        {"attr": "#agent-form input[name=knowledge]:checked", "name": "value", "as": "checked_value"},
    ]))
    assert "alice-notes" in values["offered"] and "alice-faq" in values["offered"]
    assert "bob-private" not in values["offered"]
    assert (values["checked"], values["checked_value"]) == (1, "alice-faq")
    listed = mcp_call(url, token_for(chat_hub.tmp, "alice"), "agents__list", {})["structuredContent"]["agents"]
    assert next(a for a in listed if a["name"] == "librarian")["knowledge"] == ["alice-faq"]
