"""Catalog: prefixes, collisions and invalid names reported at start-up, broken providers isolated."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.helpers import HUB_TOOLS, serve_hub

pytestmark = pytest.mark.anyio

CONFIG = """
[providers.alpha]
module = "tests.fixtures.small_providers:EchoProvider"
prefix = "same"
greeting = "hi"
repeat = 2

[providers.beta]
module = "tests.fixtures.small_providers:EchoProvider"
prefix = "same"

[providers.broken]
module = "tests.fixtures.small_providers:BrokenProvider"
"""


async def test_collisions_invalid_names_and_a_broken_provider(tmp_path) -> None:
    with serve_hub(tmp_path, CONFIG) as hub:
        banner = hub.log()
        assert ("Catalog problem: tool name 'same__echo' collides: provider 'beta' and provider 'alpha' both offer it; "
                "'alpha' keeps it") in banner
        assert "would be published as 'same__bad name!', which is not a valid name" in banner
        assert "provider 'broken' failed to start: ConnectionError: upstream refused the connection" in banner
        for mode in ("legacy", "2026-07-28"):
            async with Client(hub.url, mode=mode) as client:
                names = [t.name for t in (await client.list_tools()).tools]
                assert names == ["same__echo", *HUB_TOOLS]
                echoed = await client.call_tool("same__echo", {"text": "there"})
                assert echoed.content[0].text == "hi hi there"  # alpha's settings: alpha kept the name
                failed = await client.call_tool("same__echo", {"explode": True})
                assert failed.is_error is True
                assert failed.content[0].text == "Tool same__echo failed: the echo chamber collapsed"
                status = (await client.call_tool("hub__status", {})).structured_content
                states = {p["name"]: (p["state"], p["error"]) for p in status["providers"]}
                assert states["broken"] == ("down", "ConnectionError: upstream refused the connection")
                assert states["alpha"] == ("up", None)


async def test_provider_settings_are_validated_with_their_path(tmp_path) -> None:
    import subprocess

    from tests.helpers import JUNCTION, ROOT, hub_env

    cfg = tmp_path / "c.toml"
    cfg.write_text('[providers.alpha]\nmodule = "tests.fixtures.small_providers:EchoProvider"\nrepeat = "twice"\n')
    proc = subprocess.run([*JUNCTION, "serve", "--config", str(cfg), "--port", "0"], cwd=ROOT,
                          env=hub_env(tmp_path / "d"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"junction: config error in {cfg}: providers.alpha.repeat: expected `int`, got `str`"



async def test_lists_are_paged(tmp_path) -> None:
    config = '[server]\npage_size = 1\n[providers.alpha]\nmodule = "tests.fixtures.small_providers:EchoProvider"\n'
    with serve_hub(tmp_path, config) as hub:
        for mode in ("legacy", "2026-07-28"):
            async with Client(hub.url, mode=mode) as client:
                first = await client.list_tools()
                assert [t.name for t in first.tools] == ["alpha__echo"] and first.next_cursor
                second = await client.list_tools(cursor=first.next_cursor)
                assert [t.name for t in second.tools] == ["hub__status"] and second.next_cursor
                third = await client.list_tools(cursor=second.next_cursor)
                assert [t.name for t in third.tools] == ["hub__connectors"] and third.next_cursor
                fourth = await client.list_tools(cursor=third.next_cursor)
                assert [t.name for t in fourth.tools] == ["hub__audit"] and fourth.next_cursor
                fifth = await client.list_tools(cursor=fourth.next_cursor)
                assert [t.name for t in fifth.tools] == ["hub__unlink"] and fifth.next_cursor
                cursor, rest = fifth.next_cursor, []
                while cursor:
                    page = await client.list_tools(cursor=cursor)
                    assert len(page.tools) == 1
                    rest.append(page.tools[0].name)
                    cursor = page.next_cursor
                assert rest == HUB_TOOLS[4:]
                with pytest.raises(MCPError, match="Invalid cursor"):
                    await client.list_tools(cursor="not-a-cursor")
