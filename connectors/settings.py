"""What `[connectors.NAME]` says about one linked MCP server (everything but enabled, prefix and type).

Owns: the settings and their checks. Must not: start or talk to anything.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from hub.security.vault import user_secret_names


class UpstreamSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of an MCP connector (everything in `[connectors.NAME]` but enabled/prefix/type)."""

    command: str = ""
    """Program to launch (stdio upstream)."""
    args: list[str] = []
    env: dict[str, str] = {}
    """Extra environment for the program (on top of a minimal safe environment); "${user_secret:NAME}" as in
    `headers`."""
    cwd: str = ""
    url: str = ""
    """Streamable HTTP endpoint (remote upstream)."""
    headers: dict[str, str] = {}
    """Extra HTTP headers sent upstream (e.g. an API key: use "${ENV_VAR}" or "${secret:NAME}" to keep it out of the
    file; "${user_secret:NAME}" is the calling user's own value, see `per_user`)."""
    protocol: Literal["auto", "legacy", "2026-07-28"] = "auto"
    """Protocol era spoken upstream: `auto` probes 2026-07-28 first and falls back to initialize."""
    include: list[str] = []
    """Only tools whose upstream name matches one of these glob patterns (default: all)."""
    exclude: list[str] = []
    """Drop tools whose upstream name matches one of these glob patterns."""
    rename: dict[str, str] = {}
    """Upstream tool name -> local name (the public name is then PREFIX__local)."""
    descriptions: dict[str, str] = {}
    """Upstream tool name -> description shown to clients instead of the upstream's."""
    call_timeout: float = 300.0
    """Seconds a call may take before the caller gets a timeout error."""
    connect_timeout: float = 60.0
    """Seconds to wait for the upstream to start and answer its first lists."""
    start: Literal["eager", "lazy"] = "eager"
    """`lazy`: read the catalog at start, then run the upstream only while it is used (see idle_stop)."""
    shared: bool = True
    """`false`: one upstream session per caller (principal, or 2025 session) for servers that keep
    per-user state; the shared session then only serves the catalog."""
    auth: Literal["headers", "oauth", "exchange"] = "headers"
    """`oauth`: every user links their own account at the upstream (the MCP authorization spec: discovery, then a
    pre-registered client, or dynamic registration; authorization code with PKCE and `resource`), with `junction
    connector link NAME`; the hub keeps and refreshes each user's tokens. `exchange`: for an upstream that trusts the
    hub's own identity provider (`[auth] mode = "external"`), each caller's token is exchanged there (RFC 8693) for one
    issued for the upstream, with the client `oauth_client_id`; nobody links. `headers`: only `headers` authenticate."""
    oauth_client_id: str = ""
    """A client registered with the upstream's authorization server beforehand (else the hub registers one); with
    `auth = "exchange"`, the hub's client at the identity provider (required)."""
    oauth_client_secret: str = ""
    """That client's secret, if it has one (use "${secret:NAME}")."""
    oauth_token_url: str = ""
    """`auth = "exchange"`: the identity provider's token endpoint (default: found from the upstream's protected
    resource metadata and its authorization server's metadata)."""
    exchange_audience: str = ""
    """`auth = "exchange"`: the `audience` asked for, where the provider wants one besides `resource` (the URL)."""
    oauth_scopes: list[str] = []
    """`auth = "oauth"`: the scopes a link asks for (default: what the upstream's challenge or metadata names); a
    scope the upstream asks for later (403 `insufficient_scope`) is added at the user's next link."""
    link_wait: float = 300.0
    """`auth = "oauth"`: seconds a call of a user who has not linked waits, once they agreed to open the hub's
    `/connect/NAME` page (URL elicitation), for the link to finish before it goes on (0: it fails at once)."""
    catalog_as: str = ""
    """For a `per_user` connector: the user whose own values the shared session (which reads the catalog) uses;
    empty: the first user (by name) who gave them all, and until somebody has, none (the session goes without)."""
    idle_stop: float = 300.0
    """Seconds after which an unused session is closed: per-caller ones, and with `start = "lazy"` the
    shared one too (it reopens on the next call); 0 keeps them open."""

    @property
    def per_user(self) -> bool:
        """Whether a header or environment value is a user's own ("${user_secret:NAME}"): then every user has an
        upstream session (or program) of their own that carries their values and nobody else's (`shared = false`)."""
        return self.auth != "headers" or bool(self.user_values)

    @property
    def user_values(self) -> list[str]:
        """The `${user_secret:NAME}` names the headers and environment use."""
        return user_secret_names(self.headers, self.env)

    def __post_init__(self) -> None:
        if self.per_user:
            self.shared = False
        if self.auth != "headers" and not self.url:
            raise ValueError(f"`auth = \"{self.auth}\"` is for a remote server (`url`)")
        if self.auth == "exchange" and not self.oauth_client_id:
            raise ValueError("`auth = \"exchange\"` needs `oauth_client_id`: the hub's client at the identity provider, "
                             "allowed to exchange tokens there")
        if bool(self.command) == bool(self.url):
            raise ValueError("give either `command` (a stdio program) or `url` (a Streamable HTTP endpoint)")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"`url` must start with http:// or https://, got {self.url!r}")
        if self.call_timeout <= 0 or self.connect_timeout <= 0 or self.idle_stop < 0 or self.link_wait < 0:
            raise ValueError("timeouts must be positive numbers of seconds")
