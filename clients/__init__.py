"""Ready-to-paste client configuration for the hub.

The snippets live as JSON templates in `clients/snippets/` (`{{url}}` is the
hub's MCP URL, `{{junction}}` the path of the `junction` command);
`render_snippets(url)` fills them in. `junction clients` prints them.
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib import resources
from pathlib import Path

# (file stem, heading, where the client reads it)
SNIPPETS: tuple[tuple[str, str, str], ...] = (
    ("claude_desktop", "Claude Desktop", "claude_desktop_config.json (Settings > Developer > Edit Config)"),
    ("cursor", "Cursor", "~/.cursor/mcp.json or .cursor/mcp.json in a project"),
    ("vscode", "VS Code", ".vscode/mcp.json in a workspace (or `MCP: Open User Configuration`)"),
    ("stdio", "Any client that only launches stdio servers", "the client's MCP server list"),
)


def junction_command() -> str:
    found = shutil.which("junction")
    if found:
        return found
    return str(Path(sys.executable).with_name("junction"))


def render_snippets(url: str, junction: str | None = None) -> dict[str, str]:
    """`{stem: filled-in JSON text}` for every client snippet."""
    junction = junction or junction_command()
    out: dict[str, str] = {}
    for stem, _, _ in SNIPPETS:
        template = resources.files(__package__).joinpath("snippets", f"{stem}.json").read_text(encoding="utf-8")
        # json.dumps()[1:-1] escapes the values for a JSON string context.
        text = template.replace("{{url}}", json.dumps(url)[1:-1]).replace("{{junction}}", json.dumps(junction)[1:-1])
        json.loads(text)  # a broken template must fail here, not in the user's client
        out[stem] = text
    return out


def format_snippets(url: str, junction: str | None = None) -> str:
    rendered = render_snippets(url, junction)
    parts = [f"MCP endpoint (Streamable HTTP, both protocol eras): {url}", ""]
    for stem, heading, where in SNIPPETS:
        parts.append(f"--- {heading}: {where}")
        parts.append(rendered[stem].rstrip())
        parts.append("")
    return "\n".join(parts)
