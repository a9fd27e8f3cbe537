"""Ready-to-paste client configuration for the hub.

The snippets live as JSON templates in `clients/snippets/` (`{{url}}` is the
hub's MCP URL, `{{junction}}` the path of the `junction` command), with a
`STEM.tokens.json` variant where a client must send an API token itself (`[auth]
mode = "tokens"`: a header with a placeholder); in `oauth` and `external` modes
clients sign in by themselves and get the plain URL. `render_snippets(url,
auth=...)` fills them in. `junction clients` and `junction serve` print them.
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


AUTH_NOTES = {
    "none": "Auth: none (the hub only listens on loopback; every caller is the local user).",
    "tokens": "Auth: API tokens. Make one with `junction token create --user NAME` and put it where the snippets "
              "say <token ...>.",
    "oauth": "Auth: OAuth. Clients sign in through the hub's own sign-in page; the plain URL is all they need.",
    "external": "Auth: your identity provider's tokens (OAuth clients sign in there by themselves; hub API tokens "
                "work too, as a Bearer header).",
}


def render_snippets(url: str, junction: str | None = None, auth: str = "none") -> dict[str, str]:
    """`{stem: filled-in JSON text}` for every client snippet, as the hub's auth mode wants them."""
    junction = junction or junction_command()
    out: dict[str, str] = {}
    folder = resources.files(__package__).joinpath("snippets")
    for stem, _, _ in SNIPPETS:
        variant = folder.joinpath(f"{stem}.tokens.json")
        chosen = variant if auth == "tokens" and variant.is_file() else folder.joinpath(f"{stem}.json")
        template = chosen.read_text(encoding="utf-8")
        # json.dumps()[1:-1] escapes the values for a JSON string context.
        text = template.replace("{{url}}", json.dumps(url)[1:-1]).replace("{{junction}}", json.dumps(junction)[1:-1])
        json.loads(text)  # a broken template must fail here, not in the user's client
        out[stem] = text
    return out


def format_snippets(url: str, junction: str | None = None, auth: str = "none") -> str:
    rendered = render_snippets(url, junction, auth)
    parts = [f"MCP endpoint (Streamable HTTP, both protocol eras): {url}", AUTH_NOTES.get(auth, f"Auth: {auth}"), ""]
    for stem, heading, where in SNIPPETS:
        parts.append(f"--- {heading}: {where}")
        parts.append(rendered[stem].rstrip())
        parts.append("")
    return "\n".join(parts)
