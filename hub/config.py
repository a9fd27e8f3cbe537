"""The hub's configuration: one TOML file parsed into `msgspec.Struct`s.

Owns: the config structs (whose JSON Schema is checked in as
`schemas/config.schema.json`), finding the file (`--config`, `JUNCTION_CONFIG`,
or none at all), environment overrides, and turning every mistake into a
`ConfigError` that names the key path and the reason. Must not start anything.

Environment overrides:
- `JUNCTION__SECTION__KEY=value` sets `[section] key` (any depth; the value is
  read as a TOML value when it parses as one, else as a string);
- `${NAME}` in a string value (the whole value, or part of it as in
  `"Bearer ${TOKEN}"`) is replaced by the environment variable NAME, so secrets need
  not sit in the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import msgspec
from yarl import URL

ENV_PREFIX = "JUNCTION__"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_REF = re.compile(r"\$\{secret:([A-Za-z0-9_.-]{1,100})\}")
_PREFIX_RE = r"^[a-zA-Z0-9_-]{0,40}$"


class ConfigError(Exception):
    """A config mistake: `path` is the dotted key path (may be empty), `reason` what is wrong."""

    def __init__(self, source: str, path: str, reason: str) -> None:
        self.source, self.path, self.reason = source, path, reason
        where = f"{source}: {path}" if path else source
        super().__init__(f"config error in {where}: {reason}")


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[server]`: where and how the HTTP front listens."""

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8765
    path: Annotated[str, msgspec.Meta(pattern=r"^/[A-Za-z0-9_./-]*$")] = "/mcp"
    public_url: str = ""
    """The URL clients use, when it differs from http://HOST:PORT/PATH (reverse proxy)."""
    allowed_hosts: list[str] = []
    """Extra `Host` header values accepted (DNS-rebinding protection), e.g. `hub.example.com:*`."""
    allowed_origins: list[str] = []
    """Extra `Origin` values accepted, e.g. `https://hub.example.com`."""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 4 * 1024 * 1024
    session_idle_timeout: Annotated[float, msgspec.Meta(gt=0)] = 1800.0
    max_sessions: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    max_sessions_per_user: Annotated[int, msgspec.Meta(ge=1)] = 200
    """Open 2025 sessions one authenticated user may hold; `initialize` beyond it gets 429."""
    max_listens_per_user: Annotated[int, msgspec.Meta(ge=1)] = 32
    """Open 2026 `subscriptions/listen` streams one authenticated user may hold."""
    header_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Seconds a client has to send a request's headers, once it has started (a half-sent request is closed)."""
    body_timeout: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    """Seconds a client has to send a POST body to the MCP endpoint (408 after that)."""
    resume_buffer_events: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    """Events kept for resuming 2025 SSE streams (`Last-Event-ID`); 0 turns resumability off."""
    resume_buffer_ttl: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    """Seconds an event stays replayable."""
    sse_retry_ms: Annotated[int, msgspec.Meta(ge=0)] = 1000
    """The `retry` hint sent on resumable streams: how soon a client reconnects after a drop."""
    page_size: Annotated[int, msgspec.Meta(ge=1)] = 1000
    """Items per page in list results."""
    metrics: bool = True
    """Count tool calls and serve `/metrics` in the Prometheus format (for an admin's token once sign-in is on)."""
    console: bool = True
    """Serve the web console at `/` (people sign in with their password or an API token; MCP stays at `path`)."""


class TracingConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[tracing]`: OpenTelemetry spans of requests, tool calls, upstream and model calls, sent over OTLP/HTTP."""

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    """The collector's OTLP/HTTP traces URL (an OpenTelemetry Collector, Jaeger, Tempo...)."""
    service_name: str = "junction"
    sample_ratio: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    """Share of new traces kept; a request that arrives in a sampled trace (its traceparent) is always kept."""
    headers: dict[str, str] = {}
    """Headers sent to the collector (an API key, say)."""
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Seconds an export may take."""
    flush_ms: Annotated[float, msgspec.Meta(gt=0)] = 2000.0
    """Milliseconds between exports of finished spans."""


class StoreConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[store]`: where the hub keeps its state."""

    data_dir: str = ""
    """Defaults to `$XDG_DATA_HOME/junction` or `~/.local/share/junction`."""
    call_retention_days: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    """Call records older than this are deleted (0 keeps them forever)."""
    url: str = ""
    """Empty: SQLite files under `data_dir`. `postgresql://USER:${PGPASSWORD}@HOST:PORT/DATABASE`: every table on
    that PostgreSQL server (each part of the hub in a schema of its own), shared by every replica that names it;
    needs `pip install 'mcp-junction[replicas]'`. The password comes from the environment, never the file."""
    redis_url: str = ""
    """`redis://[:${REDISPASSWORD}@]HOST:PORT/DB`: what replicas share beyond the database (rate limits, failed
    sign-ins); empty: each process counts on its own."""


class LogConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[log]`: the hub's own log (stderr)."""

    level: Annotated[str, msgspec.Meta(pattern=r"^(?i:debug|info|warning|error|critical)$")] = "info"


_SCOPE_RE = r"^[a-zA-Z0-9_.:-]{1,60}$"


class RoleConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[auth.roles.NAME]`: what a user with this role may do."""

    scopes: list[Annotated[str, msgspec.Meta(pattern=_SCOPE_RE)]] = []
    """The scopes the role grants (built-in `mcp`, `hub:admin`, or one from `[auth.scopes]`)."""


class RateLimitConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[auth.rate_limits]`: a token bucket per rule and caller (0 turns a limit off); a call must fit
    every rule that matches it."""

    calls_per_minute: Annotated[float, msgspec.Meta(ge=0)] = 0
    """Tool calls per minute per caller, all tools together."""
    burst: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Calls that may come at once before the rate applies, for each rule (default: the rule's
    minute's worth, at least one)."""
    tools: dict[str, Annotated[float, msgspec.Meta(gt=0)]] = {}
    """More rules: glob pattern over public tool names -> calls per minute per caller, e.g.
    `"github__*" = 30` (30 calls of all `github__` tools together; name one tool to limit it alone)."""


class ExternalAuthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[auth.external]`: the hub as a resource server of an existing OpenID / OAuth provider."""

    issuer: str = ""
    """The provider's issuer URL (its metadata is read from there); tokens must name it as `iss`."""
    audience: str = ""
    """What tokens must be issued for (`aud`); default: the hub's MCP URL (the RFC 8707 resource)."""
    jwks_url: str = ""
    """Where the signing keys are (default: `jwks_uri` from the issuer's metadata)."""
    introspection_url: str = ""
    """RFC 7662 endpoint for opaque tokens (default: from the metadata); needs client_id/client_secret."""
    client_id: str = ""
    client_secret: str = ""
    """The hub's credentials for introspection (use "${secret:NAME}")."""
    user_claim: str = "sub"
    """The claim that names the user."""
    role_claim: str = ""
    """A claim carrying the user's role (else `default_role`)."""
    default_role: str = "user"
    clock_skew: Annotated[float, msgspec.Meta(ge=0, le=300)] = 30.0
    """Seconds of clock difference tolerated for `exp` / `nbf` / `iat`."""


class OAuthServerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[auth.oauth]`: the hub's own OAuth 2.1 authorization server (`[auth] mode = "oauth"`)."""

    issuer: str = ""
    """The authorization server's issuer URL; default: the origin of the hub's public URL. Must be
    https unless the hub is on loopback."""
    access_token_ttl: Annotated[int, msgspec.Meta(ge=60, le=86400)] = 3600
    """Seconds an access token is good for."""
    refresh_token_ttl: Annotated[int, msgspec.Meta(ge=300, le=31536000)] = 2592000
    """Seconds a refresh token is good for (each use rotates it)."""
    registration: bool = True
    """Dynamic client registration (RFC 7591) open to any client; off: only Client ID Metadata
    Documents and clients added with `junction oauth client add`."""
    client_metadata_documents: bool = True
    """Accept https URLs as client IDs and read the client's metadata from there."""
    redirect_schemes: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9+.-]{2,40}$")]] = []
    """Private-use URI schemes a native client may redirect to (e.g. `cursor`), besides https and
    loopback http. `javascript`, `data`, `file` and the like are never allowed."""
    failed_sign_ins: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    """Wrong passwords for one user from one client address before that address waits (for that
    user only: the user still signs in from anywhere else)."""
    failed_sign_ins_per_address: Annotated[int, msgspec.Meta(ge=1, le=100000)] = 20
    """Wrong passwords from one client address, whatever the user names, before it waits for all
    of them (an IPv6 address counts by its /64)."""
    lockout: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 900
    """Seconds a failed sign-in is counted for: a locked address may try again once enough of its
    failures are this old."""


class AuthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[auth]`: who may call the hub, and what."""

    mode: Literal["none", "tokens", "oauth", "external"] = "none"
    """`none`: no authentication (only on a loopback address); `tokens`: API tokens from
    `junction token create`; `external`: access tokens of an existing OpenID provider
    (`[auth.external]`), API tokens too; `oauth`: the hub's own authorization server (`[auth.oauth]`:
    clients sign users in on the hub's login page), API tokens too."""
    scopes: dict[Annotated[str, msgspec.Meta(pattern=_SCOPE_RE)], list[str]] = {}
    """Extra scopes: name -> glob patterns over public tool and prompt names and resource URIs,
    e.g. `"files:read" = ["files__read*", "files__list*"]`."""
    roles: dict[Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_-]{1,40}$")], RoleConfig] = {}
    """Roles and their scopes. Built in: `admin` (every scope), `user` (every scope but `hub:admin`),
    `agent` (`mcp` unless set here)."""
    rate_limits: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)
    external: ExternalAuthConfig = msgspec.field(default_factory=ExternalAuthConfig)
    oauth: OAuthServerConfig = msgspec.field(default_factory=OAuthServerConfig)


class OutboundConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[outbound]`: the requests the hub makes for its callers (URL ingest, model endpoints, metadata
    documents): where they may go and how long and large they may be (see hub/security/outbound.py)."""

    allow_private: bool = False
    """Let them reach loopback, private (RFC 1918, IPv6 ULA) and shared (CGNAT) addresses. Link-local and
    cloud metadata addresses (169.254.169.254) still need an `allowed_networks` entry."""
    allowed_hosts: list[str] = []
    """Hosts whose addresses are not checked: `wiki.corp.example`, `wiki.corp.example:8443`,
    `*.corp.example` (every name under it), `10.0.0.5:80`."""
    allowed_networks: list[str] = []
    """Addresses that may be reached although they are not public: `10.0.0.0/8`, `127.0.0.1/32`, `fd00::/8`."""
    max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 10 * 1024 * 1024
    """The largest answer read (a request may set its own)."""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    """The longest a request takes, redirects and reading the answer included (a request may set its own)."""
    max_redirects: Annotated[int, msgspec.Meta(ge=0, le=20)] = 5
    """Redirects followed, each checked like the first URL (0: none)."""


class ProviderConfig(msgspec.Struct, forbid_unknown_fields=False, kw_only=True):
    """`[providers.NAME]`: switches every provider has; other keys are the provider's own settings."""

    enabled: bool = True
    prefix: Annotated[str, msgspec.Meta(pattern=_PREFIX_RE)] | None = None
    """Public names become `PREFIX__name`; defaults to NAME; `""` keeps local names."""
    module: str = ""
    """Load the provider class from `package.module:Class` instead of an entry point."""


class ConnectorSwitches(msgspec.Struct, forbid_unknown_fields=False, kw_only=True):
    """`[connectors.NAME]`: switches every connector has; other keys are the connector type's settings."""

    enabled: bool = True
    prefix: Annotated[str, msgspec.Meta(pattern=_PREFIX_RE)] | None = None
    """Public names become `PREFIX__name`; defaults to NAME; `""` keeps upstream names."""
    type: Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_-]{1,40}$")] = "mcp"
    """Which connector implementation (entry point group `junction.connectors`); `mcp` links an MCP server."""


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The whole config file."""

    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    tracing: TracingConfig = msgspec.field(default_factory=TracingConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    outbound: OutboundConfig = msgspec.field(default_factory=OutboundConfig)
    providers: dict[Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_-]{1,40}$")], ProviderConfig] = {}
    connectors: dict[Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_-]{1,40}$")], ConnectorSwitches] = {}
    source: str = ""
    """Where this config came from (set by the loader; not a file key)."""
    raw_providers: dict[str, dict[str, Any]] = {}
    """The provider tables as written (set by the loader; not a file key)."""
    raw_connectors: dict[str, dict[str, Any]] = {}
    """The connector tables as written (set by the loader; not a file key)."""
    sources: dict[str, str] = {}
    """Where each key that is not at its default was set, by dotted path: `file PATH`, `environment variable
    JUNCTION__...`, `command-line flag --port` (set by the loader and `junction serve`; not a file key)."""
    written: dict[str, str] = {}
    """String values as written before `${NAME}` and `${secret:NAME}` were replaced, by dotted path, a list's items
    as `PATH[N]` (what may be shown of them; set by the loader; not a file key)."""

    def provider_prefix(self, name: str) -> str:
        """The public name prefix of provider `name`: `[providers.NAME] prefix`, else its name ("" publishes
        its tools under their own names)."""
        table = self.providers.get(name)
        return table.prefix if table is not None and table.prefix is not None else name

    def data_dir(self) -> Path:
        if self.store.data_dir:
            return Path(os.path.expanduser(self.store.data_dir))
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        return Path(base) / "junction"

    def oauth_issuer(self) -> str:
        """The built-in authorization server's issuer: `[auth.oauth] issuer`, else the hub's origin."""
        if self.auth.oauth.issuer:
            return self.auth.oauth.issuer.rstrip("/")
        parts = urlsplit(self.mcp_url())
        return f"{parts.scheme}://{parts.netloc}"

    def web_url(self, path: str) -> str:
        """The address of the hub's page `path` (say `/connect/github`) as a person's browser reaches it: beside the
        MCP endpoint, under `public_url`'s prefix if it has one."""
        url = self.mcp_url()
        base = url[: len(url) - len(self.server.path)] if url.endswith(self.server.path) else url.rstrip("/")
        return base + path

    def mcp_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}{self.server.path}"


_LOADER_ONLY = ("source", "raw_providers", "raw_connectors", "sources", "written")


def default_config_path() -> Path:
    """`$XDG_CONFIG_HOME/junction/junction.toml` (or `~/.config/...`): where `junction init` writes."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "junction" / "junction.toml"


def find_config_path(explicit: str | None) -> Path | None:
    """The config file to read: `--config`, else `$JUNCTION_CONFIG`, else the default path if it exists,
    else none (built-in defaults)."""
    chosen = explicit or os.environ.get("JUNCTION_CONFIG")
    if chosen:
        return Path(chosen).expanduser()
    default = default_config_path()
    return default if default.exists() else None


def load_config(path: Path | None, env: dict[str, str] | None = None, *, require_env: bool = True,
                secret: Any = None) -> Config:
    """Read, override from the environment, and validate. Raises `ConfigError`.

    `require_env=False` leaves a `${NAME}` whose variable is not set as it is (for commands that
    do not use those values, e.g. managing users, which should not need every connector's secret).
    `secret(NAME)` resolves `${secret:NAME}` from the secret store; without it they stay as written."""
    env = dict(os.environ if env is None else env)
    source = str(path) if path else "built-in defaults"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(source, "", "file not found (run `junction init` to write a commented default)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(source, "", f"cannot read the file: {exc}") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    for key in _LOADER_ONLY:
        if key in raw:
            raise ConfigError(source, key, "unknown key")
    sources = {key: f"file {source}" for key in _leaves(raw)}
    sources.update(_apply_env_overrides(raw, env, source))
    for section in ("providers", "connectors"):
        _refuse_clear_secrets(raw.get(section), source, section)
    for key, example in (("url", "postgresql://USER:${PGPASSWORD}@HOST/DATABASE"),
                         ("redis_url", "redis://:${REDISPASSWORD}@HOST:6379/0")):
        if sources.get(f"store.{key}", "").startswith("file ") and _password_in_clear(raw["store"][key]):
            raise ConfigError(source, f"store.{key}", f"the password is written in clear: write it as ${{ENV_VAR}} "
                              f"({example}), or set the whole URL in JUNCTION__STORE__{key.upper()}")
    written = _written_refs(raw)
    _expand_env_refs(raw, env, source, "", require_env, secret)
    tables: dict[str, dict[str, Any]] = {}
    for section in ("providers", "connectors"):
        tables[section] = _named_tables(raw.pop(section, {}), section, source)
    config = _convert(raw, Config, source, "")
    _check_auth(config.auth, source)
    _check_outbound(config.outbound, source)
    if config.store.redis_url and not config.store.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(source, "store.redis_url", "expected redis://HOST:PORT/DB (or rediss:// for TLS)")
    if config.store.url and not config.store.url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(source, "store.url", f"unknown kind of database '{config.store.url.split(':', 1)[0]}' "
                          "(postgresql://USER:${PGPASSWORD}@HOST:PORT/DATABASE, or leave it out for SQLite)")
    providers = {n: _convert(t, ProviderConfig, source, f"providers.{n}") for n, t in tables["providers"].items()}
    connectors = {n: _convert(t, ConnectorSwitches, source, f"connectors.{n}") for n, t in tables["connectors"].items()}
    for name in connectors:
        if name in providers:
            raise ConfigError(source, f"connectors.{name}", f"a provider is also named '{name}'; names must be unique")
    return msgspec.structs.replace(
        config, providers=providers, connectors=connectors, source=source,
        raw_providers=tables["providers"], raw_connectors=tables["connectors"], sources=sources, written=written,
    )


def _leaves(node: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Every value of a table that is not itself a table, by dotted path (`server.port`, `auth.roles.ops.scopes`)."""
    found: dict[str, Any] = {}
    for key, value in node.items():
        here = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict) and value:
            found.update(_leaves(value, here))
        else:
            found[here] = value
    return found


def _written_refs(node: Any, path: str = "") -> dict[str, str]:
    """Every string with a `${...}` reference, by the path `_expand_env_refs` names it with (`a.b`, `a.args[1]`)."""
    found: dict[str, str] = {}
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        here = f"{path}.{key}" if path and isinstance(key, str) else (f"{path}[{key}]" if path else str(key))
        if isinstance(value, str):
            if "${" in value:
                found[here] = value
        else:
            found.update(_written_refs(value, here))
    return found


BUILTIN_SCOPES = ("mcp", "hub:admin")
FORBIDDEN_REDIRECT_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about", "filesystem",
                                        "http", "https", "ftp", "ws", "wss"})
"""Never extra redirect schemes: script and local-content schemes, and the web schemes (which have
their own rules: https anywhere, http only on loopback)."""


def _check_auth(auth: AuthConfig, source: str) -> None:
    if auth.oauth.issuer and not auth.oauth.issuer.startswith(("http://", "https://")):
        raise ConfigError(source, "auth.oauth.issuer", f"expected an http(s) URL, got {auth.oauth.issuer!r}")
    if auth.oauth.issuer.rstrip("/").count("/") > 2 or "?" in auth.oauth.issuer or "#" in auth.oauth.issuer:
        raise ConfigError(source, "auth.oauth.issuer", "the issuer is an origin (scheme, host, port): no path, "
                          "query or fragment")
    for scheme in auth.oauth.redirect_schemes:
        if scheme in FORBIDDEN_REDIRECT_SCHEMES:
            raise ConfigError(source, "auth.oauth.redirect_schemes", f"'{scheme}:' can never be a redirect target")
    if auth.mode == "external":
        ext = auth.external
        if not ext.issuer.startswith(("http://", "https://")):
            raise ConfigError(source, "auth.external.issuer", "the OpenID provider's issuer URL is required "
                              "(http:// or https://)")
        if ext.introspection_url and not (ext.client_id and ext.client_secret):
            raise ConfigError(source, "auth.external.client_id", "introspection needs client_id and client_secret")
    for name in auth.scopes:
        if name in BUILTIN_SCOPES:
            raise ConfigError(source, f"auth.scopes.{name}", "a built-in scope cannot be redefined")
    known = set(BUILTIN_SCOPES) | set(auth.scopes)
    for role, spec in auth.roles.items():
        for scope in spec.scopes:
            if scope not in known:
                raise ConfigError(source, f"auth.roles.{role}.scopes", f"unknown scope '{scope}' (known: "
                                  f"{', '.join(sorted(known))})")


# [outbound] values: host rules and networks as the admin writes them (hub.security.outbound applies them)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


@dataclass(frozen=True)
class HostRule:
    """An `allowed_hosts` entry: a host (name or IP literal) whose addresses are not checked, on any
    port or one (`name:port`); `*.example.internal` stands for every name under example.internal."""

    host: str
    port: int | None = None
    subdomains: bool = False

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.subdomains:
            return host.endswith("." + self.host)
        return host == self.host


def parse_host_rule(text: str) -> HostRule:
    """`wiki.corp.example`, `wiki.corp.example:8443`, `*.corp.example`, `10.0.0.5:80`, `[fd00::5]:443`.
    Raises `ValueError` saying what is wrong."""
    rule = text.strip().lower()
    subdomains = rule.startswith("*.")
    rule = rule.removeprefix("*.")
    port: int | None = None
    if rule.startswith("["):
        host, sep, rest = rule[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPv6] or [IPv6]:PORT")
        rest = rest[1:]
    elif rule.count(":") == 1:
        host, _, rest = rule.partition(":")
    else:
        host, rest = rule, ""
    if rest:
        if not rest.isdigit() or not 0 < int(rest) < 65536:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
        port = int(rest)
    address = literal_address(host)
    if address is not None:
        if subdomains:
            raise ValueError(f"{text!r}: '*.' goes before a host name, not an address")
        return HostRule(address.compressed, port)
    try:
        name = URL.build(scheme="http", host=host).raw_host or ""
    except (ValueError, UnicodeError):
        name = ""
    name = name.rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{text!r} is not a host name (or NAME:PORT, *.NAME, an IP address)")
    if name.replace(".", "").isdigit():
        raise ValueError(f"{text!r} is not a canonical IPv4 address (write it as four decimal numbers)")
    return HostRule(name, port, subdomains)


def parse_network(text: str) -> IPNetwork:
    """`10.0.0.0/8`, `127.0.0.1/32`, `fd00::/8` (a bare address is a network of one). Raises `ValueError`."""
    try:
        return ipaddress.ip_network(text.strip())
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP network (write e.g. 10.0.0.0/8 or 127.0.0.1/32): {exc}") from None
        raise ValueError(f"{text!r} has bits set beyond its prefix length: write {loose}") from None


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_outbound(outbound: OutboundConfig, source: str) -> None:
    for key, parse in (("allowed_hosts", parse_host_rule), ("allowed_networks", parse_network)):
        for number, entry in enumerate(getattr(outbound, key)):
            try:
                parse(entry)
            except ValueError as exc:
                raise ConfigError(source, f"outbound.{key}[{number}]", str(exc)) from None


def check_auth_binding(config: Config) -> None:
    """`[auth] mode = "none"` serves anyone who can connect: only on a loopback address."""
    if config.auth.mode == "none" and config.server.host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(config.source, "auth.mode", f"'none' (no authentication) is only allowed when the hub "
                          f"listens on a loopback address, not {config.server.host!r}; set [auth] mode = \"tokens\" "
                          "and create tokens with `junction token create`")
    if config.auth.mode == "oauth":
        issuer = config.oauth_issuer()
        host = (urlsplit(issuer).hostname or "").lower()
        on_loopback = config.server.host in ("127.0.0.1", "localhost", "::1") and host in ("127.0.0.1", "localhost", "::1")
        if not issuer.startswith("https://") and not on_loopback:
            raise ConfigError(config.source, "auth.oauth.issuer", f"the authorization server's issuer {issuer!r} must "
                              "be https unless the hub is only on loopback: set [server] public_url (or [auth.oauth] issuer) to "
                              "the https address clients reach the hub at")


def _named_tables(value: Any, section: str, source: str) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ConfigError(source, section, f"expected a table, got {type(value).__name__}")
    for name, table in value.items():
        if not re.match(r"^[a-zA-Z0-9_-]{1,40}$", name):
            raise ConfigError(source, f"{section}.{name}", "names may use only letters, digits, _ and - (1-40)")
        if not isinstance(table, dict):
            raise ConfigError(source, f"{section}.{name}", f"expected a table, got {type(table).__name__}")
    return {name: dict(table) for name, table in value.items()}


def _convert(raw: Any, type_: Any, source: str, base: str) -> Any:
    try:
        return msgspec.convert(raw, type_, strict=True)
    except msgspec.ValidationError as exc:
        path_text, reason = _split_msgspec_error(str(exc))
        full = ".".join(p for p in (base, path_text) if p)
        raise ConfigError(source, full, reason) from None


def provider_settings(config: Config, name: str, settings_type: type[msgspec.Struct] | None) -> Any:
    """Convert a provider's own keys (everything but the shared switches) into its settings struct."""
    return _settings(config, "providers", name, config.raw_providers.get(name, {}),
                     ProviderConfig.__struct_fields__, settings_type)


def connector_settings(config: Config, name: str, settings_type: type[msgspec.Struct] | None) -> Any:
    """Convert a connector's own keys (everything but the shared switches) into its settings struct."""
    return _settings(config, "connectors", name, config.raw_connectors.get(name, {}),
                     ConnectorSwitches.__struct_fields__, settings_type)


def _settings(config: Config, section: str, name: str, raw: dict[str, Any], switches: tuple[str, ...],
              settings_type: type[msgspec.Struct] | None) -> Any:
    table = {k: v for k, v in raw.items() if k not in switches}
    if settings_type is None:
        if table:
            key = next(iter(table))
            raise ConfigError(config.source, f"{section}.{name}.{key}", "unknown key (this one takes no settings)")
        return None
    return _convert(table, settings_type, config.source, f"{section}.{name}")


def _apply_env_overrides(raw: dict[str, Any], env: dict[str, str], source: str) -> dict[str, str]:
    """Set what `JUNCTION__...` variables say; returns which variable set each key."""
    sources: dict[str, str] = {}
    for key, value in sorted(env.items()):
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p for p in key[len(ENV_PREFIX) :].lower().split("__")]
        if not all(parts):
            raise ConfigError(f"environment variable {key}", "", "empty key segment")
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {key}", ".".join(parts), "overrides a value that is not a table")
            node = child
        node[parts[-1]] = _parse_env_value(value)
        here = ".".join(parts)
        for stale in [k for k in sources if k == here or k.startswith(here + ".")]:
            del sources[stale]
        set_to = node[parts[-1]]
        sources.update({k: f"environment variable {key}" for k in
                        (_leaves(set_to, here) if isinstance(set_to, dict) and set_to else [here])})
    return sources


SECRET_KEYS = frozenset({"password", "api_key", "client_secret", "access_token", "oauth_token", "oauth_client_secret"})
"""Keys whose values must come from the secret store or the environment, never from the file itself."""


def _refuse_clear_secrets(node: Any, source: str, path: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if key in SECRET_KEYS and isinstance(value, str) and value and "${" not in value:
                raise ConfigError(source, here, "a secret written in clear in the config: store it with "
                                  "`junction secret set NAME` and write \"${secret:NAME}\" (or \"${ENV_VAR}\")")
            _refuse_clear_secrets(value, source, here)
    elif isinstance(node, list):
        for number, value in enumerate(node):
            _refuse_clear_secrets(value, source, f"{path}[{number}]")


def _password_in_clear(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    given = [parts.password or ""] + [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
    return any(p and "${" not in p for p in given)


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _expand_env_refs(node: Any, env: dict[str, str], source: str, path: str, required: bool = True,
                     secret: Any = None) -> None:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        here = f"{path}.{key}" if path and isinstance(key, str) else (f"{path}[{key}]" if path else str(key))
        if isinstance(value, str):
            missing = [name for name in _ENV_REF.findall(value) if name not in env]
            if missing and required:
                raise ConfigError(source, here, f"environment variable {missing[0]} is not set")
            if "${" in value:  # whole values ("${TOKEN}") and parts of them ("Bearer ${TOKEN}")
                value = node[key] = _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)
            if secret is not None and "${secret:" in value:
                try:
                    node[key] = _SECRET_REF.sub(lambda m: secret(m.group(1)), value)
                except Exception as exc:  # the secret store's message names the secret, never a value
                    raise ConfigError(source, here, str(exc)) from None
        else:
            _expand_env_refs(value, env, source, here, required, secret)


_MSGSPEC_PATH = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def _split_msgspec_error(message: str) -> tuple[str, str]:
    """`"Expected `int`, got `str` - at `$.server.port`"` -> `("server.port", "expected `int`, got `str`")`."""
    match = _MSGSPEC_PATH.match(message)
    assert match is not None
    reason = match.group("reason")
    path = (match.group("path") or "").lstrip(".")
    unknown = re.match(r"Object contains unknown field `([^`]+)`", reason)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        reason = "unknown key"
    return path, reason[:1].lower() + reason[1:]


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (checked in as schemas/config.schema.json)."""
    schema = msgspec.json.schema(Config)
    defs = schema.get("$defs", {})
    config_def = defs.get("Config", schema)
    for key in _LOADER_ONLY:
        config_def.get("properties", {}).pop(key, None)
    _add_connector_settings(schema)
    schema["title"] = "Junction hub configuration"
    return schema


def _add_connector_settings(schema: dict[str, Any]) -> None:
    """Describe `[connectors.NAME]` with the switches plus the settings of the installed `mcp` connector type."""
    from importlib.metadata import entry_points

    kinds = {ep.name: ep for ep in entry_points(group="junction.connectors")}
    if "mcp" not in kinds:
        return
    settings_type = getattr(kinds["mcp"].load(), "config_type", None)
    if settings_type is None:
        return
    fields = [(f.name, f.type, f.default) for f in msgspec.structs.fields(ConnectorSwitches)]
    fields += [(f.name, f.type, f.default if f.default is not msgspec.NODEFAULT else msgspec.field(
        default_factory=f.default_factory)) for f in msgspec.structs.fields(settings_type)]
    merged = msgspec.defstruct("MCPConnector", fields, kw_only=True, forbid_unknown_fields=True)
    part = msgspec.json.schema(merged)
    defs = schema.setdefault("$defs", {})
    defs.update(part.get("$defs", {}))
    defs["Config"]["properties"]["connectors"]["additionalProperties"] = {"$ref": "#/$defs/MCPConnector"}
