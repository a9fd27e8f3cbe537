"""A user removed and a new one added later under the same name: the new one inherits nothing. What the old one
owned is owned by name (jobs, agents and their conversations, knowledge namespaces, a webhook job's secret), so it
goes with them, and the answer says what went; what other users own stays."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import junction, remember_secret, serve_hub, token_for
from tests.security.test_console_connectors_attacks import mcp_call

CONFIG = """
[auth]
mode = "tokens"
[providers.automation]
enabled = true
[providers.agents]
enabled = true
[providers.rag]
embedder = "hashing"
sample = false
"""


def ok(answer: dict) -> dict:
    assert not answer.get("isError"), answer
    return answer["structuredContent"]


def test_a_new_user_under_a_removed_ones_name_inherits_nothing(tmp_path: Path) -> None:
    (tmp_path / "junction.toml").write_text(CONFIG)
    for user, role in (("root", "admin"), ("alice", "user"), ("bob", "user")):
        assert junction(tmp_path, "user", "add", user, "--role", role).returncode == 0
    root, alice, bob = token_for(tmp_path, "root"), token_for(tmp_path, "alice"), token_for(tmp_path, "bob")
    job = {"trigger": {"type": "cron", "cron": "0 1 * * *"}, "action": {"tool": "automation__list"}}
    with serve_hub(tmp_path, CONFIG) as hub:
        ok(mcp_call(hub.url, alice, "automation__create", {"name": "nightly", **job}))
        ok(mcp_call(hub.url, alice, "automation__create", {"name": "hook", "trigger": {"type": "webhook"},
                                                           "action": {"tool": "automation__list"}}))
        ok(mcp_call(hub.url, alice, "agents__create", {"name": "helper", "instructions": "x",
                                                       "models": [{"backend": "sampling"}]}))
        ok(mcp_call(hub.url, alice, "rag__create_namespace", {"namespace": "notes"}))
        ok(mcp_call(hub.url, bob, "automation__create", {"name": "bobs", **job}))
        secrets = {s["name"] for s in ok(mcp_call(hub.url, root, "hub__secrets", {}))["secrets"]}
        assert "automation.webhook.hook" in secrets

        removed = mcp_call(hub.url, root, "hub__users", {"action": "remove", "name": "alice"})
        assert removed["content"][0]["text"] == (
            "Removed user alice with their tokens and sign-ins, and their 1 agent, 2 jobs, 1 namespace.")
        assert ok(removed)["deleted"] == {"agent": 1, "job": 2, "namespace": 1}

        ok(mcp_call(hub.url, root, "hub__users", {"action": "add", "name": "alice", "role": "user"}))
        made = ok(mcp_call(hub.url, root, "hub__tokens", {"action": "create", "user": "alice", "name": "again"}))
        again = made["value"]
        remember_secret(again)
        assert ok(mcp_call(hub.url, again, "automation__list", {}))["jobs"] == []
        assert [a for a in ok(mcp_call(hub.url, again, "agents__list", {}))["agents"] if a["owner"]] == []
        assert ok(mcp_call(hub.url, again, "rag__list_namespaces", {}))["namespaces"] == []
        refused = mcp_call(hub.url, again, "automation__run_now", {"name": "nightly"})
        assert refused["isError"] and "no job named 'nightly'" in refused["content"][0]["text"], refused
        # the admins see them gone too; bob's job and the config's things stay
        assert [j["name"] for j in ok(mcp_call(hub.url, root, "automation__list", {"all": True}))["jobs"]] == ["bobs"]
        assert "helper" not in {a["name"] for a in ok(mcp_call(hub.url, root, "agents__list", {"all": True}))["agents"]}
        assert "notes" not in {n["namespace"] for n in
                               ok(mcp_call(hub.url, root, "rag__list_namespaces", {"all": True}))["namespaces"]}
        secrets = {s["name"] for s in ok(mcp_call(hub.url, root, "hub__secrets", {}))["secrets"]}
        assert "automation.webhook.hook" not in secrets
        # the names are free again, for the new alice
        ok(mcp_call(hub.url, again, "rag__create_namespace", {"namespace": "notes"}))
        ok(mcp_call(hub.url, again, "automation__create", {"name": "nightly", **job}))
