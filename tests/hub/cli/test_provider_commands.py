"""Providers' own subcommands (`junction rag`, `junction jobs`) come from their `junction.cli` entry points and
follow the provider's configured prefix, against a real hub on loopback and in the local mode."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import junction, serve_hub

CONFIG = """
[providers.rag]
prefix = "kb"
embedder = "hashing"
[providers.automation]
prefix = "cron"
"""



def test_rag_and_jobs_commands_use_the_configured_prefix(tmp_path: Path) -> None:
    with serve_hub(tmp_path, CONFIG, timeout=120) as hub:
        made = junction(tmp_path, "rag", "ingest", "--ns", "notes", "--text", "the glacier retreated 40 m", "--url", hub.url)
        assert made.returncode == 0, made.stderr
        found = junction(tmp_path, "rag", "search", "glacier", "--ns", "notes", "--json", "--url", hub.url)
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["results"][0]["namespace"] == "notes"
        listed = junction(tmp_path, "jobs", "list", "--url", hub.url)
        assert listed.returncode == 0, listed.stderr
        job = junction(tmp_path, "jobs", "create", "nightly", "--url", hub.url, "--trigger",
                  '{"type": "cron", "cron": "30 2 * * *"}', "--action", '{"tool": "hub__status"}')
        assert job.returncode == 0 and "job nightly created" in job.stdout, job.stderr
    # What the hub recorded: the commands called kb__* and cron__* (no rag__ or automation__ name exists here).
    log = junction(tmp_path, "audit", "--json")
    assert log.returncode == 0, log.stderr
    tools = {json.loads(line)["tool"] for line in log.stdout.splitlines() if line.strip()}
    assert {"kb__ingest", "kb__search", "cron__list", "cron__create"} <= tools, tools


def test_the_local_knowledge_base_mode_uses_the_configured_provider(tmp_path: Path) -> None:
    (tmp_path / "junction.toml").write_text(CONFIG)
    made = junction(tmp_path, "rag", "ingest", "--ns", "local", "--text", "moraine and till", "--local")
    assert made.returncode == 0, made.stderr
    stats = junction(tmp_path, "rag", "namespaces", "--local", "--json")
    assert stats.returncode == 0, stats.stderr
    assert "local" in {n["namespace"] for n in json.loads(stats.stdout)["namespaces"]}
