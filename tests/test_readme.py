"""The README's "Writing a provider" example runs: its code block, as the README has it now, is written to a module
of its own, loaded by a real hub through `module = "..."`, and its tool is called in both protocol eras.

Nothing of the example is copied here: the test reads the section (its first ```python block, the entry point in
its ```toml block, the public name it says the hub publishes), so the README cannot drift from what works."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from tests.helpers import ROOT, serve_hub

pytestmark = pytest.mark.anyio
SECTION = "## Writing a provider"


def section(heading: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end != -1 else len(text)]


def code_block(text: str, language: str) -> str:
    found = re.search(rf"^```{language}\n(.*?)^```$", text, re.M | re.S)
    assert found, f"no ```{language} block in the README's {SECTION!r}"
    return found.group(1)


def example_value(schema: dict[str, Any]) -> Any:
    """A value a user could give for `schema`: the first of an enum, else something of its type."""
    if schema.get("enum"):
        return schema["enum"][0]
    return {"string": "Oslo", "number": 1.5, "integer": 1, "boolean": True}.get(schema.get("type", "string"), "x")


def filled(schema: dict[str, Any]) -> dict[str, Any]:
    return {name: example_value(prop) for name, prop in (schema.get("properties") or {}).items()}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_writing_a_provider_example_runs_in_a_hub(tmp_path: Path, mode: str) -> None:
    text = section(SECTION)
    entry = re.search(r'^(\w+) = "([\w.]+):(\w+)"$', code_block(text, "toml"), re.M)
    assert entry, "no entry point line (NAME = \"module:Class\") in the section's toml block"
    name, _, class_name = entry.groups()
    published = re.search(r"the hub publishes `(\w+)`", text)
    assert published, "the section no longer says which tool name the hub publishes"

    package = tmp_path / "example"
    package.mkdir()
    (package / "readme_provider.py").write_text(code_block(text, "python"), encoding="utf-8")
    config = f'[providers.{name}]\nmodule = "readme_provider:{class_name}"\n'
    answered: list[Any] = []

    async def on_elicit(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        content = filled(params.requested_schema)
        answered.extend(content.values())
        return types.ElicitResult(action="accept", content=content)

    env = {"PYTHONPATH": os.pathsep.join([str(package), str(ROOT)])}
    with serve_hub(tmp_path / "hub", config, env=env) as hub:
        async with Client(hub.url, mode=mode, elicitation_callback=on_elicit) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert published.group(1) in tools, (published.group(1), list(tools))
            tool = tools[published.group(1)]
            result = await client.call_tool(tool.name, filled(tool.input_schema))
    assert result.is_error is not True, result.content
    answer = result.content[0].text  # type: ignore[union-attr]
    assert answer, result
    if answered:  # the example asks its user: what it returns is made of the answer
        assert any(str(value) in answer for value in answered), (answered, answer)


@pytest.mark.parametrize("mode", ["tokens", "oauth"])
def test_every_http_route_is_in_the_readme(tmp_path: Path, mode: str) -> None:
    """Each route the hub serves, in each auth mode, is named in the README's "HTTP endpoints" (with NAME for a
    path parameter, PATH for one that spans folders): the list once left out sign-in, tokens, registration,
    `/.well-known/*` and `/hooks/NAME`."""
    from hub.app import Hub
    from hub.config import load_config

    (tmp_path / "j.toml").write_text(f'[auth]\nmode = "{mode}"\n[store]\ndata_dir = "{tmp_path / "data"}"\n')
    front = Hub(load_config(tmp_path / "j.toml", env={})).http_app()
    listed = section("## HTTP endpoints")
    paths = [re.sub(r"\{[a-z_]+\}", "NAME", re.sub(r"\{[a-z_]+:path\}", "PATH", route.path))
             for route in front.app.routes]
    assert "/healthz" in paths and len(paths) > 5
    missing = [path for path in paths + [front.path] if f"{path}`" not in listed and f"{path} " not in listed]
    assert not missing, f"routes the README's HTTP endpoints do not name: {missing}"
