"""The TypeScript SDK client (npm @modelcontextprotocol/sdk, run on Node 24) against the hub."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.helpers import NODE_MODULES, ROOT, node_bin, serve_hub

TS_SDK = NODE_MODULES / "@modelcontextprotocol" / "sdk"
# In CI a missing install must fail, not skip.
pytestmark = pytest.mark.skipif(not TS_SDK.exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")

CONFIG = """
[providers.conformance]
module = "tests.fixtures.conformance:ConformanceProvider"
prefix = "t"
"""


def test_typescript_sdk_client(tmp_path) -> None:
    with serve_hub(tmp_path, CONFIG) as hub:
        proc = subprocess.run([str(node_bin()), str(ROOT / "tests" / "node" / "ts_client.mjs"), hub.url, "t"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT / "tests" / "node")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    first, tools, call, progress, elicitation, prompt, catalog = lines
    assert first["server"]["name"] == "junction" and first["protocol"] == "2025-11-25" and first["session"] is True
    assert "hub__status" in tools["tools"] and "t__test_simple_text" in tools["tools"]
    assert call["call"]["isError"] is False
    assert [p["name"] for p in call["call"]["structuredContent"]["providers"]] == ["conformance", "files", "hub", "mail"]
    assert progress == {"progress": [0, 50, 100], "text": "Progress test completed"}
    assert elicitation["elicitation"] == (
        'User response: action=accept, content={"username": "ts-user", "email": "ts@example.test"}')
    assert prompt == {"prompt": "This is a simple prompt for testing."}
    assert catalog["catalog"] == len(tools["tools"])
