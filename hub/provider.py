"""The provider contract: everything a plugin author needs to read.

A provider contributes tools, resources, resource templates, prompts and
completions to the hub and answers calls for them. The hub's own tools and
every linked upstream MCP server are providers. Providers are found through the
`junction.providers` entry point group (or a `module = "pkg.mod:Class"` line in
the config) and enabled per provider in the config:

    [providers.files]
    enabled = true
    prefix = "files"          # public names become files__read, files__write, ...
    root = "~/Documents"      # anything else is the provider's own settings

Names a provider returns are *local*; the hub prefixes tool and prompt names
with `PREFIX__` (an empty prefix keeps them as they are). Resource URIs are
never rewritten: a provider must use URIs it owns (its own scheme, or
`junction://NAME/...`).

Catalog lists are cached by the hub. When a provider's catalog changes at run
time it calls `host.catalog_changed()`; the hub re-reads the lists and tells
every connected client in the form its protocol era needs. `host.resource_updated(uri)`
tells clients subscribed to that resource.

Handlers receive a `CallContext`. Asking the client for input
(`ctx.elicit`, `ctx.sample`, `ctx.list_roots`, `ctx.request_input`) works in
both protocol eras: on a 2025 session it is a live request to the client; on a
2026-07-28 request the hub answers `InputRequiredResult` and runs the handler
again when the client retries with the answers. A handler that asks for input
must therefore be safe to re-run up to the point where it asks (do side effects
after the answers are in), and must ask in the same order on every run.
`ctx.state` (a JSON-able dict) survives between those rounds.

Blocking work belongs in `ctx.run_sync(fn, ...)` (a worker thread); a long loop
should check `ctx.cancelled` or `await ctx.checkpoint()`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, cast

import mcp_types as types
import msgspec

from hub.security.auth import Principal
from hub.security.outbound import OutboundPolicy

if TYPE_CHECKING:
    from hub.db import Database
    from hub.security.secrets import SecretStore
    from hub.security.vault import Vault

T = TypeVar("T")

InputRequest = types.ElicitRequest | types.CreateMessageRequest | types.ListRootsRequest
InputResult = types.ElicitResult | types.CreateMessageResult | types.ListRootsResult


class ProviderState(str, enum.Enum):
    """What `hub__status` and `/readyz` report for a provider."""

    STARTING = "starting"
    UP = "up"
    DOWN = "down"
    STOPPED = "stopped"


class InputUnavailable(Exception):
    """The client cannot answer an input request (no capability, or no channel back to it).

    Unless the provider catches it, the caller gets a JSON-RPC error: -32021
    (missing required client capability, naming `capability`) when the client
    did not declare the capability.
    """

    def __init__(self, message: str, capability: str | None = None) -> None:
        super().__init__(message)
        self.capability = capability


class ToolError(Exception):
    """A tool call that failed for a reason its caller can read and act on (a bad argument, a thing that is not
    there, a refusal): raise it, or a subclass, from `call_tool` or anything it calls.

    The hub answers it as a tool error result (`isError: true`) whose text is the message, and logs nothing: it
    is an answer, not a fault. Anything else a handler raises is a fault, logged with its traceback and answered
    `Tool NAME failed: ...`; a provider whose handlers raise a library's exceptions for the caller to read lists
    them in `Provider.tool_errors` instead of catching them. Say what was wrong and where (`root: no root named
    'x' (roots: a, b)`), never a secret."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__

    @classmethod
    def of(cls, exc: BaseException) -> ToolError:
        """`exc` as a tool error, with its message (a `KeyError`'s without the quotes `str` adds)."""
        if isinstance(exc, ToolError):
            return exc
        return cls(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc))

    def result(self) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=self.message)], is_error=True)


class UnknownTool(ToolError):
    """The provider has no tool by that local name (its catalog changed under the caller)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown tool {name!r}")


class InvalidArguments(ToolError, ValueError):
    """An argument is missing, of the wrong kind or out of range: the message names it and says why."""


@dataclass(frozen=True)
class MetricSample:
    """One value of a provider's own series (`Provider.metric_samples`); the hub names it `junction_NAME`."""

    name: str
    help: str
    kind: Literal["gauge", "counter"]
    labels: Mapping[str, str]
    value: float


class RelayDeclined(Exception):
    """Raised by a relay (see `Provider.relay_request`) before it sent the client anything: the hub then
    serves the request the usual way (`Provider.call_tool`, `read_resource`, ...)."""


RELAYED = frozenset({"tools/call", "resources/read", "prompts/get", "completion/complete"})
"""The requests the hub offers to `Provider.relay_request`."""


class Relay(Protocol):
    """A request handed to a provider as raw JSON-RPC (see `Provider.relay_request`)."""

    request: dict[str, Any]
    """The client's JSON-RPC request as decoded: its own `id`; the name in it is the provider's local one
    (`params.name` of `tools/call` and `prompts/get`, `params.ref.name` of a prompt's `completion/complete`;
    a URI stays as it is); `params._meta` as the client sent it. The provider may change it."""
    protocol_version: str
    modern: bool
    caller_key: str | None
    """As `CallContext.caller_key`."""
    @property
    def client_capabilities(self) -> Mapping[str, Any]:
        """The capabilities the client declared, in wire form (`{"elicitation": {...}, ...}`)."""

    @property
    def param_headers(self) -> Sequence[tuple[str, str]]:
        """2026-07-28: the request's `Mcp-Param-*` headers (already checked against the tool's schema)."""
    log_level: str | None
    """As `CallContext.log_level`."""

    async def notify(self, message: dict[str, Any]) -> None:
        """Send a notification (`notifications/progress`, `notifications/message`) on the call's stream.
        Log messages below the client's level are dropped by the hub."""

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        """2025 sessions only: send a server-to-client request on the call's stream (the hub gives it an
        id of its own) and wait for the client's response message (with `result` or `error`)."""


class LinkRedirect(Protocol):
    """The hub's own callback for a link its `/connect/NAME` page started (see `Provider.link`)."""

    uri: str
    """The redirect URI the authorization server sends the person's browser back to."""

    async def wait(self) -> Mapping[str, str]:
        """The query of that request (`code` and `state`, or `error`), once the browser is back."""


class CallContext(Protocol):
    """Per-call context handed to provider handlers."""

    # The facts of the call are read-only to a provider (properties: a context may compute them when asked).
    @property
    def protocol_version(self) -> str:
        """The caller's protocol version (`2024-11-05` ... `2026-07-28`)."""

    @property
    def request_id(self) -> str | int | None: ...

    @property
    def client_info(self) -> types.Implementation | None: ...

    @property
    def client_capabilities(self) -> types.ClientCapabilities | None: ...

    @property
    def principal(self) -> str | None:
        """Who is calling, when the hub knows (authentication); `None` for the local user."""

    @property
    def identity(self) -> Principal:
        """Who is calling in full: name, role and the scopes this call may use (`hub.security.auth.Principal`)."""

    @property
    def caller_key(self) -> str | None:
        """A stable key for per-caller state: the principal if known, else the 2025 session; `None` for
        anonymous stateless (2026-07-28) callers, who cannot be told apart without authentication."""
    state: dict[str, Any]
    """Provider scratch state that survives the input-required rounds of one call."""
    input_responses: Mapping[str, Any] | None
    """Raw `inputResponses` of a 2026-07-28 retry (for providers that pass rounds through)."""
    request_state: str | None
    """Raw plaintext `requestState` of a 2026-07-28 retry (for providers that pass rounds through)."""

    @property
    def modern(self) -> bool:
        """True for the stateless 2026-07-28 era."""

    @property
    def cancelled(self) -> bool:
        """True once the client cancelled this call (for loops in worker threads)."""

    @property
    def log_level(self) -> types.LoggingLevel | None:
        """The lowest log level the caller wants for this call (`None`: no log messages at all)."""

    async def checkpoint(self) -> None:
        """Yield to the event loop; raises the cancellation if the call was cancelled."""

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Send `notifications/progress` (a no-op when the caller sent no progress token)."""

    async def log(self, level: types.LoggingLevel, data: Any, logger: str | None = None) -> None:
        """Send a `notifications/message` log entry on this call's stream (subject to the client's level)."""

    async def request_input(self, requests: Mapping[str, InputRequest]) -> dict[str, InputResult]:
        """Ask the client for several inputs at once; returns one result per key."""

    async def elicit(self, message: str, requested_schema: Mapping[str, Any]) -> types.ElicitResult:
        """Ask the user to fill a form (`elicitation/create`, form mode)."""

    async def elicit_url(self, message: str, url: str, elicitation_id: str) -> types.ElicitResult:
        """Send the user to a URL (`elicitation/create`, url mode)."""

    async def sample(self, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        """Ask the client's model for a completion (`sampling/createMessage`)."""

    async def list_roots(self) -> types.ListRootsResult:
        """Ask the client for its roots (`roots/list`)."""

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking `fn(*args)` in a worker thread; `ctx.cancelled` turns true if the call is cancelled."""

    async def release_stream(self) -> bool:
        """Close this call's SSE response stream early so the client reconnects and polls (SEP-1699).

        Only possible on resumable 2025-11-25 sessions; returns False (and does nothing) elsewhere.
        Later notifications and the result are replayed to the client when it reconnects.
        """


class ProviderHost(Protocol):
    """What the hub offers a provider (handed to its constructor)."""

    name: str
    """The provider's configured name (the `[providers.NAME]` key)."""
    data_dir: str
    """A directory the provider may keep files in (not created until the provider creates it)."""

    def database(self, name: str) -> Database:
        """The provider's own SQL database `name` (`hub.db`: SQLite's dialect, on SQLite or PostgreSQL as the hub's
        `[store]` says); the provider closes it when it stops."""
    @property
    def outbound(self) -> OutboundPolicy:
        """The policy every HTTP request made for a caller goes through (`hub.security.outbound`; `[outbound]` in the
        config)."""

    def catalog_changed(self) -> None:
        """Re-read this provider's lists and send `list_changed` to every client."""

    def resource_updated(self, uri: str) -> None:
        """Tell clients subscribed to `uri` that it changed."""

    def hub_info(self) -> Mapping[str, Any]:
        """Read-only facts about the hub: version, uptime, providers and their state, catalog size."""

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run `fn(*args)` as a background task for the hub's lifetime (cancelled when the hub stops)."""

    def report_state(self, state: ProviderState, error: str | None = None, **details: Any) -> None:
        """Tell the hub this provider's state changed at run time (e.g. an upstream went down, or came back)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], *, caller: CallContext | None = None,
                        principal: Principal | None = None, client: str = "",
                        progress: Callable[[float, float | None, str | None], Awaitable[None]] | None = None,
                        via: str | None = None) -> types.CallToolResult:
        """Call any catalog tool (public name) from inside the hub: a job's action, an agent's tool use.

        The permissions are `principal`'s (a `hub.security.auth.Principal`, see `act_for()`), else those of the
        client behind `caller` (an agent acts for whoever called it). The policy applies and the audit
        records the call (with `client` as the client's name). Nothing can be asked of a user, so tools that
        need elicitation or sampling fail with a message saying so. `via` names the tool making the call;
        a chain that comes back to a tool already on it, or nests too deep, is refused. Progress the tool
        reports goes to `progress(progress, total, message)`. Failures come back as error results."""

    @property
    def prefix(self) -> str:
        """The provider's public name prefix (`[providers.NAME] prefix`; tools are published as PREFIX__name)."""

    def tools(self) -> list[types.Tool]:
        """The hub's whole tool catalog (public names), as clients see it without a policy."""

    def caller(self, ctx: CallContext | None) -> Principal:
        """The `Principal` (with its scopes) behind a call: who an agent acts for."""

    def delegation(self, ctx: CallContext) -> str:
        """A record of whom something made in this call acts for later, when nobody is calling (a job): the caller
        and the token they called with. Keep it (it is text, no secret) and hand it to `act_for` at run time."""

    def act_for(self, delegation: str | None) -> Principal:
        """The `Principal` a `delegation` is worth now: the token's scopes within the user's role today (None: the
        local admin). Raises `PermissionError` saying why when the token was revoked or expired, the sign-in
        revoked or the user removed."""

    def allows(self, principal: Principal, name: str) -> bool:
        """Whether `principal` may use the tool published as `name`: the policy, and the owner of what a user made."""

    def secrets(self) -> SecretStore:
        """The hub's encrypted secret store (`hub.security.secrets.SecretStore`: get, set, remove by name)."""

    def web_url(self, path: str) -> str:
        """The address of the hub's page `path` (`/connect/NAME`) as a person's browser reaches it."""

    @property
    def identity_issuer(self) -> str | None:
        """The issuer of the identity provider whose tokens the hub takes (`[auth] mode = "external"`), else None."""

    def vault(self) -> Vault:
        """Each user's own connector credentials (`hub.security.vault.Vault`: get, set, remove by user, connector and
        name). Only ever read for the user a call is made for."""

    def offer(self, name: str, service: object) -> None:
        """Offer a service to the other providers under `name` (call it in the constructor, so that every
        provider's `start` finds it). Names are the hub's: offering a taken one raises `ValueError`."""

    def service(self, name: str, kind: type[S]) -> S | None:
        """The service another provider offered under `name`, if it is a `kind` (e.g. `ChangeFeed`); else None.
        Providers meet only through these, never by importing each other."""


# services providers offer each other (through `ProviderHost.offer` / `service`) ------------------------------
S = TypeVar("S")


@dataclass(frozen=True)
class ToolSet:
    """Where another provider's tools are published (`files.tools`), to call them through `call_tool`."""

    prefix: str

    def public(self, tool: str) -> str:
        """The public name of one of its tools."""
        return f"{self.prefix}__{tool}" if self.prefix else tool


@dataclass(frozen=True)
class ChangeFeed:
    """Something that changes, for other providers to follow (automation's triggers): each callable in
    `listeners` is called on every change (`files.changes`: `(root, path, change)`; `mail.arrivals`:
    `(account, folder, uids)`). `sources` says what changes can come from (files: each root, with no
    parts; mail: each account with the folders it watches); `tools` where the offering provider's tools are."""

    listeners: list[Callable[..., Any]]
    sources: Mapping[str, Sequence[str]]
    tools: ToolSet


class Provider:
    """Base class for providers; override the hooks for what you contribute.

    `config_type` (a `msgspec.Struct` with `forbid_unknown_fields=True`) describes
    the provider's own settings; the hub converts the provider's config table into
    it and reports bad keys with their full path.
    """

    config_type: ClassVar[type[msgspec.Struct] | None] = None
    description: ClassVar[str] = ""
    tool_errors: ClassVar[tuple[type[Exception], ...]] = ()
    """Exceptions besides `ToolError` that this provider's tool handlers raise for the caller to read (e.g. a
    parser's `ValueError`): the hub answers them as it answers a `ToolError`, with their message."""

    def __init__(self, host: ProviderHost, config: Any = None) -> None:
        self.host = host
        self.config = config

    # lifecycle
    async def start(self) -> None:
        """Open connections, start watchers. Raising marks the provider down; the hub still serves."""

    async def stop(self) -> None:
        """Release everything `start` acquired."""

    # catalog (local names; cached by the hub until `host.catalog_changed()`)
    async def list_tools(self) -> Sequence[types.Tool]:
        return ()

    async def list_resources(self) -> Sequence[types.Resource]:
        return ()

    async def list_resource_templates(self) -> Sequence[types.ResourceTemplate]:
        return ()

    async def list_prompts(self) -> Sequence[types.Prompt]:
        return ()

    def owns_uri(self, uri: str) -> bool:
        """Whether a `resources/read` for `uri` (not in the listed resources) is this provider's."""
        return False

    # calls
    async def call_tool(
        self, name: str, arguments: dict[str, Any], ctx: CallContext
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Serve a `tools/call` for the local tool `name`: by default with the provider's method
        `_tool_NAME(arguments, ctx)` (see `tool_handler`). Failures the caller should read are `ToolError`s."""
        return await self.tool_handler(name)(arguments, ctx)

    def tool_handler(self, name: str) -> Handler:
        """The method serving the local tool `name` (`_tool_NAME`); raises `UnknownTool` if there is none."""
        handler = getattr(self, f"_tool_{name}", None) if name.isidentifier() else None
        if handler is None:
            raise UnknownTool(name)
        return cast(Handler, handler)

    async def read_resource(self, uri: str, ctx: CallContext) -> types.ReadResourceResult | types.InputRequiredResult:
        raise NotImplementedError(uri)

    async def get_prompt(
        self, name: str, arguments: dict[str, str], ctx: CallContext
    ) -> types.GetPromptResult | types.InputRequiredResult:
        raise NotImplementedError(name)

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
        ctx: CallContext,
    ) -> types.Completion:
        """Complete a prompt or resource-template argument (`ref` carries the local name / template URI)."""
        return types.Completion(values=[])

    def relay_request(self, method: str, target: str, relay: Relay) -> Awaitable[dict[str, Any]] | None:
        """Optional fast path for providers that pass requests through to another MCP server.

        The hub offers every request of this provider whose method is in `RELAYED` here first, as raw
        JSON-RPC, before building any models; `target` is the local tool or prompt name, or the resource
        URI. Return None to have it served the usual way (`call_tool`, `read_resource`, `get_prompt`,
        `complete`); else an awaitable of the JSON-RPC response message for the client (`jsonrpc`, the
        request's `id`, and `result` or `error`). Raising `RelayDeclined` before anything was sent also
        falls back to the usual way. Cancellation (the client cancelled or went away) arrives as the
        awaitable being cancelled. The hub still checks the request (and records a tool call).
        """
        return None

    def link_target(self) -> str | None:
        """Where a user links their own account for this provider (a connector with `auth = "oauth"`: the upstream's
        address), shown on the hub's `/connect/NAME` page; None when it has no accounts to link."""
        return None

    async def link(self, user: str, show: Callable[[str], None], redirect: LinkRedirect | None = None,
                   elicitation: str | None = None) -> str:
        """Link `user`'s own account at what this provider reaches: `show` gets the address the person opens to sign
        in there; returns once their tokens are kept (what was granted). The authorization server sends the browser
        back to `redirect` (the hub's page) when given, else to a listener of this process's own on loopback.
        `elicitation` is the id of the request for input that sent the person here, if one did: a link started
        from another user's is refused. Raises `ToolError` saying why when there is nothing to link or linking did
        not finish."""
        raise ToolError(f"'{self.host.name}' has no accounts to link")

    async def unlink(self, user: str) -> bool:
        """Forget `user`'s link (revoking it where it was issued, if it can be); whether there was one."""
        raise ToolError(f"'{self.host.name}' has no accounts to link")

    async def forget_user(self, user: str) -> Mapping[str, int]:
        """`user` is being removed from the hub: delete what they own here (what they made with this provider's tools:
        `Principal.owner` is their name), so that a user added later under the same name inherits none of it. How
        many of each kind went (`{"job": 2}`, singular nouns); {} when this provider keeps nothing of a user's."""
        return {}

    def recent_output(self) -> Sequence[str]:
        """The last lines this provider's program printed (a stdio connector's stderr), for administrators to
        diagnose it; () when it has none."""
        return ()

    async def restart(self, why: str, timeout: float) -> bool:
        """End this provider's session with its upstream and open a new one now (an administrator asked: `why`
        says who); whether it is up again within `timeout` seconds. Only connectors have one."""
        raise ToolError(f"'{self.host.name}' is one of the hub's own providers: it has no upstream to restart")

    def metric_samples(self) -> Sequence[MetricSample]:
        """This provider's own series for `/metrics`, read at each scrape (keep it cheap; never a user's name or
        anything a caller chose as a label)."""
        return ()

    def http_routes(self) -> Sequence[Any]:
        """Starlette routes the hub serves beside the MCP endpoint (e.g. `POST /hooks/{job}`). They are not
        behind the hub's bearer authentication: the provider checks its requests itself."""
        return ()

    async def subscribe(self, uri: str) -> None:
        """A client subscribed to `uri` (first subscriber). Start watching it if needed."""

    async def unsubscribe(self, uri: str) -> None:
        """The last subscriber of `uri` left."""


async def run_tool(provider: Provider, name: str, arguments: dict[str, Any], ctx: CallContext
                   ) -> types.CallToolResult | types.InputRequiredResult:
    """Run a provider's tool as the hub does: the one place where the failures it means for the caller to read (a
    `ToolError`, or one of its `tool_errors`) become an error result with their message. Anything else it raises
    goes on up: the caller logs it as a fault. Whatever runs a provider outside the hub (the CLI's local mode, a
    test) calls its tools through this too."""
    try:
        return await provider.call_tool(name, arguments, ctx)
    except ToolError as exc:
        return exc.result()
    except provider.tool_errors as exc:
        return ToolError.of(exc).result()


_RESULT_TYPES: dict[str, Any] = {
    "elicitation/create": types.ElicitResult,
    "sampling/createMessage": types.CreateMessageResult | types.CreateMessageResultWithTools,
    "roots/list": types.ListRootsResult,
}
_ADAPTERS: dict[str, Any] = {}


def parse_input_response(key: str, request: InputRequest, raw: Any) -> InputResult:
    """Validate a client's answer (`inputResponses[key]`) against the request it answers.

    Raises `ValueError` naming the key and what is wrong.
    """
    from pydantic import TypeAdapter, ValidationError

    adapter = _ADAPTERS.get(request.method)
    if adapter is None:
        adapter = _ADAPTERS[request.method] = TypeAdapter(_RESULT_TYPES[request.method])
    if hasattr(raw, "model_dump"):
        raw = raw.model_dump(by_alias=True, mode="json", exclude_none=True)
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        raise ValueError(
            f"inputResponses.{key} is not a valid {request.method} result: {exc.errors()[0].get('msg', 'invalid')}"
        ) from None


ProviderFactory = Callable[[ProviderHost, Any], Provider]
Handler = Callable[..., Awaitable[Any]]
