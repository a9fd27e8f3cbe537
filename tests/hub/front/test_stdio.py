"""The hub over stdio (hub/front/stdio.py, `junction stdio`): the same catalog as over HTTP, input rounds in both
protocol eras."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.helpers import HUB_TOOLS, JUNCTION, ROOT, hub_env, without_knowledge_base

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "2026-07-28"]


@pytest.mark.parametrize("mode", ERAS)
async def test_stdio_same_catalog_and_input_rounds(tmp_path: Path, mode: str) -> None:
    import mcp_types as types

    cfg = tmp_path / "j.toml"
    cfg.write_text(without_knowledge_base('[providers.t]\nmodule = "tests.fixtures.conformance:ConformanceProvider"\n'))
    params = StdioServerParameters(command=JUNCTION[0], args=[*JUNCTION[1:], "stdio", "--config", str(cfg)],
                                   env=hub_env(tmp_path), cwd=str(ROOT))

    async def on_elicit(ctx, p: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Stdio Sam"})

    with anyio.fail_after(120):  # a whole hub starts on stdio first
        async with Client(params, mode=mode, elicitation_callback=on_elicit) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert names[0] == "t__test_simple_text" and names[-len(HUB_TOOLS):] == HUB_TOOLS
            result = await client.call_tool("hub__status", {})
            states = {p["name"]: p["state"] for p in result.structured_content["providers"]}
            assert states == {"t": "up", "hub": "up", "files": "up", "mail": "up"}  # no roots, no accounts: no tools
            asked = await client.call_tool("t__test_input_required_result_elicitation", {})
            assert asked.content[0].text == "Hello, Stdio Sam!"
