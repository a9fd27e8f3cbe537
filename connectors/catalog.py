"""The well-known remote MCP servers (`catalog.toml` beside this file) that `junction connector add NAME` knows.

Owns: reading the catalog and turning one entry into a connector's settings. Must not: write the config (the CLI
does, with its checks) or reach the servers.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from typing import Any, Literal

import msgspec


class CatalogError(ValueError):
    """An entry cannot become a connector as asked (what is missing is in the message)."""


class Entry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One well-known server: where it is and how its users link their accounts there."""

    title: str
    url: str
    registration: Literal["dynamic", "pre-registered"]
    """`dynamic`: the hub registers itself (or names its metadata document); `pre-registered`: the vendor takes only
    an app created with them first, whose id (and secret) the connector names."""
    scopes: list[str] = []
    key_header: str = ""
    """Where the service also takes a personal key instead of a sign-in: the header that carries it."""
    key_format: str = ""
    """That header's value, `{key}` standing for the user's own key."""
    docs: str = ""
    note: str = ""

    def settings(self, name: str, *, client_id: str = "", client_secret: str = "", key: str = "",
                 scopes: list[str] | None = None, entry: str = "") -> dict[str, Any]:
        """The `[connectors.NAME]` table for this server: each user links their own account (`auth = "oauth"`), or,
        with `key`, gives their own key (`${user_secret:KEY}` in the header the service reads). `entry`: this entry's
        name, when the connector has another (for the command a refusal suggests)."""
        if key:
            if not self.key_header:
                raise CatalogError(f"{self.title} takes no personal key through the hub, only its sign-in: leave out "
                                   f"--with-key")
            value = self.key_format.replace("{key}", "${user_secret:" + key + "}")
            return {"url": self.url, "headers": {self.key_header: value}}
        if self.registration == "pre-registered" and not client_id:
            raise CatalogError(
                f"{self.title} needs an app registered with it before anyone can link: {self.note} Then run "
                f"`junction connector add {name}{f' --from {entry}' if entry and entry != name else ''} --client-id ID "
                f"--client-secret NAME` (NAME: the app's secret, kept "
                f"with `junction secret set NAME`)" + (f"; see {self.docs}" if self.docs else ""))
        table: dict[str, Any] = {"url": self.url, "auth": "oauth"}
        if client_id:
            table["oauth_client_id"] = client_id
        if client_secret:
            table["oauth_client_secret"] = "${secret:" + client_secret + "}"
        if scopes or self.scopes:
            table["oauth_scopes"] = list(scopes or self.scopes)
        return table


def entries() -> dict[str, Entry]:
    """Every entry of the shipped catalog, by name."""
    raw = tomllib.loads((files("connectors") / "catalog.toml").read_text(encoding="utf-8"))
    return {name: msgspec.convert(value, Entry) for name, value in raw.items()}
