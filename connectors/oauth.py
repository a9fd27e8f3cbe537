"""Each user's own account at an OAuth-protected upstream (`auth = "oauth"`), through the SDK's OAuth client.

Owns: where a user's tokens for a connector live (the vault, entry "oauth": the token, when it expires, the
authorization server's endpoints) and the client registered for it (the vault too, unless the config names a
pre-registered client); `LinkedAuth`, one per user and connector and shared by that user's sessions, which
sends their token, refreshes it (with `resource`) before it expires and once when the upstream refuses it early,
and never starts an authorization by itself: a session of a user who has not linked fails with `NotLinked`;
`link`: the authorization code flow with PKCE S256 and `resource`, whose redirect comes back to a loopback listener
of the process that runs it; `unlink`: revocation (RFC 7009) where the server offers it, then forgetting.
Must not: choose which session serves whom (connectors/routing.py), or hand a token to anything but the upstream
it was issued for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.auth.utils import union_scopes
from mcp.shared.auth import (
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)
from pydantic import ValidationError

from connectors.personal import NotLinked, not_linked

if TYPE_CHECKING:
    from connectors.settings import UpstreamSettings
    from hub.provider import LinkRedirect, ProviderHost

logger = logging.getLogger("junction.connectors")

TOKENS = "oauth"
"""The vault entry that holds a user's tokens for a connector."""
CLIENT = "oauth-client"
"""The vault entry that holds the client the hub registered for that user's link (each link its own: a registration
made for another user's link never replaces the one a user's refresh token was issued to)."""
SCOPE = "oauth-scope"
"""The vault entry that holds the scope a user's next link must ask for, when the upstream wanted more than their
link grants (403 `insufficient_scope`: a step-up); gone once they linked again."""
SESSION_REDIRECT = "http://127.0.0.1/callback"
"""The redirect URI a session's client metadata names (a session never authorizes: only `link` does)."""
LINK_TIMEOUT = 600.0
"""Seconds `link` waits for the person to consent."""


class VaultTokens:
    """The SDK's `TokenStorage` over the vault (a user's tokens) and the secret store (the connector's client)."""

    def __init__(self, host: ProviderHost, settings: UpstreamSettings, user: str, redirect_uri: str = SESSION_REDIRECT,
                 *, fresh: bool = False) -> None:
        self.host, self.settings, self.user, self.redirect_uri = host, settings, user, redirect_uri
        self.fresh = fresh  # linking: whatever is stored is replaced, never used
        self.expires_at: float | None = None
        self.meta: dict[str, Any] = {}

    async def get_tokens(self) -> OAuthToken | None:
        if self.fresh:
            return None
        raw = self.host.vault().get(self.user, self.host.name, TOKENS)
        if raw is None:
            return None
        stored = json.loads(raw)
        self.expires_at, self.meta = stored.get("expires_at"), stored.get("meta") or {}
        return OAuthToken.model_validate(stored["token"])

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.fresh = False
        self.expires_at = time.time() + tokens.expires_in if tokens.expires_in else None
        value = json.dumps({"token": tokens.model_dump(mode="json", exclude_none=True), "expires_at": self.expires_at,
                            "meta": self.meta})
        # One row replaced in one statement: a rotated refresh token is never half stored.
        self.host.vault().set(self.user, self.host.name, TOKENS, value, kind="oauth",
                              meta={"scope": tokens.scope, "issuer": self.meta.get("issuer")}, expires=self.expires_at)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        s = self.settings
        if s.oauth_client_id:  # pre-registered: the config's, never replaced
            return OAuthClientInformationFull(
                client_id=s.oauth_client_id, client_secret=s.oauth_client_secret or None,
                redirect_uris=[self.redirect_uri],  # type: ignore[list-item]
                token_endpoint_auth_method="client_secret_basic" if s.oauth_client_secret else "none",
                grant_types=["authorization_code", "refresh_token"], response_types=["code"])
        raw = self.host.vault().get(self.user, self.host.name, CLIENT)
        if raw is None:
            return None
        try:
            info = OAuthClientInformationFull.model_validate_json(raw)
        except ValidationError:
            return None
        if self.fresh and self.redirect_uri not in [str(u) for u in info.redirect_uris or ()]:
            return None  # registered for another redirect: register again for this one
        return info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        if not self.settings.oauth_client_id:
            self.host.vault().set(self.user, self.host.name, CLIENT, client_info.model_dump_json(exclude_none=True),
                                  kind="oauth-client")


class LinkedAuth(OAuthClientProvider):
    """A user's OAuth for one connector: their token on every request of their sessions, refreshed when it is due or
    when the upstream refuses it before its time; an authorization only when `link` supplies the handlers."""

    def __init__(self, host: ProviderHost, settings: UpstreamSettings, storage: VaultTokens, *,
                 redirect_handler: Callable[[str], Any] | None = None,
                 callback_handler: Callable[[], Any] | None = None) -> None:
        self.host, self.storage = host, storage
        metadata = OAuthClientMetadata(
            client_name=f"Junction ({host.name})",
            redirect_uris=[storage.redirect_uri],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"], response_types=["code"],
            token_endpoint_auth_method="client_secret_basic" if settings.oauth_client_secret else "none")
        super().__init__(settings.url, metadata, storage, redirect_handler or self._not_linked,
                         callback_handler or self._no_callback, client_metadata_url=client_document_url(host, settings))
        self.settings = settings
        self.stepping_up = False
        """Whether the upstream's last answer was 403 `insufficient_scope` (the SDK then asks for a wider link)."""
        self.refusal: NotLinked | None = None
        """Why a request of a session failed for want of a (wider) link: the SDK's transport ends the session on it,
        and the call that made it is told this rather than "connection closed" (`Routing.forward`)."""
        # RFC 8707 `resource` on every token request, refreshes included, also when this process has not
        # discovered the resource's metadata (a refresh after a restart): docker/mcp-gateway#563.
        self.context.should_include_resource_param = lambda protocol_version=None: True  # type: ignore[method-assign]

    @property
    def access_token(self) -> str | None:
        tokens = self.context.current_tokens
        return tokens.access_token if tokens is not None and self.context.is_token_valid() else None

    def expire(self) -> None:
        """The upstream refused the token before its time: the next request refreshes first."""
        if self.context.current_tokens is not None:
            self.context.token_expiry_time = 1.0

    async def _initialize(self) -> None:
        await super()._initialize()
        if self.context.current_tokens is None:
            return
        # What the SDK keeps only in memory: when the stored token expires, and the servers found when it was issued
        # (so that a refresh after a restart goes to the right token endpoint, for the right resource).
        self.context.token_expiry_time = self.storage.expires_at
        meta = self.storage.meta
        try:
            if meta.get("server") and self.context.oauth_metadata is None:
                self.context.oauth_metadata = OAuthMetadata.model_validate(meta["server"])
            if meta.get("resource") and self.context.protected_resource_metadata is None:
                self.context.protected_resource_metadata = ProtectedResourceMetadata.model_validate(meta["resource"])
        except ValidationError:
            pass  # as the SDK would start: it finds them again on the next 401

    async def _handle_token_response(self, response: httpx2.Response) -> None:
        server, resource = self.context.oauth_metadata, self.context.protected_resource_metadata
        if server is not None:  # kept beside the tokens for refresh and revocation after a restart
            self.storage.meta = {
                "issuer": str(server.issuer), "server": server.model_dump(mode="json", exclude_none=True),
                "resource": resource.model_dump(mode="json", exclude_none=True) if resource is not None else None}
        await super()._handle_token_response(response)

    async def _auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        flow = super()._auth_flow(request)
        retried = False
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                self.stepping_up = response.status_code == 403 and "insufficient_scope" in response.headers.get(
                    "WWW-Authenticate", "")
                if (outgoing is request and response.status_code == 401 and not retried
                        and self.context.can_refresh_token()):
                    # Refused before its time (revoked, or a clock ahead): refresh once and send again, rather than
                    # the SDK's full authorization, which only `link` can do.
                    retried = True
                    await flow.aclose()
                    self.expire()
                    flow = super()._auth_flow(request)
                    outgoing = await flow.__anext__()
                    continue
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        finally:
            await flow.aclose()

    async def _perform_authorization_code_grant(self) -> tuple[str, str]:
        # What is asked for: the connector's own `oauth_scopes` where it names them, else what the upstream's
        # challenge or metadata named (the SDK's choice); with what a step-up asked for on top.
        metadata = self.context.client_metadata
        if self.settings.oauth_scopes:
            metadata.scope = " ".join(self.settings.oauth_scopes)
        metadata.scope = union_scopes(metadata.scope, self.host.vault().get(self.storage.user, self.host.name, SCOPE))
        return await super()._perform_authorization_code_grant()

    async def _not_linked(self, url: str) -> None:
        wanted = (parse_qs(urlsplit(url).query).get("scope") or [""])[0]
        if self.stepping_up and wanted:
            # A step-up (403 insufficient_scope): the SDK asks for what was granted and what the upstream wants now.
            # Only a person can grant it, at their next link; until then the call says so.
            self.host.vault().set(self.storage.user, self.host.name, SCOPE, wanted, kind="oauth-scope")
            self.refusal = not_linked(self.host, self.storage.user, [TOKENS], more_scope=wanted)
        else:
            self.refusal = not_linked(self.host, self.storage.user, [TOKENS])
        raise self.refusal

    async def _no_callback(self) -> AuthorizationCodeResult:
        raise not_linked(self.host, self.storage.user, [TOKENS])


class Auths:
    """A connector's `LinkedAuth` per user (one per user, so two sessions of one user never refresh at once with
    the same refresh token, which a rotating server takes for theft)."""

    def __init__(self, host: ProviderHost, settings: UpstreamSettings) -> None:
        self.host, self.settings = host, settings
        self.by_user: dict[str, LinkedAuth] = {}

    def linked(self, user: str) -> bool:
        """Whether `user` has linked, with every scope the upstream asked of them so far."""
        vault = self.host.vault()
        return vault.get(user, self.host.name, TOKENS) is not None and vault.get(user, self.host.name, SCOPE) is None

    def of(self, user: str) -> LinkedAuth:
        auth = self.by_user.get(user)
        if auth is None:
            auth = self.by_user[user] = LinkedAuth(self.host, self.settings, VaultTokens(self.host, self.settings, user))
        return auth

    def forget(self, user: str) -> None:
        self.by_user.pop(user, None)


class LinkRequests:
    """The hub's `/connect/NAME` addresses this connector sent users who had not linked (URL elicitation), by id,
    and the calls of theirs that wait for the link to finish."""

    KEEP = 10_000  # ids remembered; the oldest are forgotten first

    def __init__(self) -> None:
        self.asked: dict[str, str] = {}
        self.events: dict[str, asyncio.Event] = {}

    def ask(self, user: str, elicitation: str | None = None) -> str:
        """An id for a request to `user` (the one given, if it was theirs: a retried round keeps its id)."""
        if elicitation is None or self.asked.get(elicitation) != user:
            elicitation = secrets.token_urlsafe(16)
        self.asked.pop(elicitation, None)
        self.asked[elicitation] = user
        while len(self.asked) > self.KEEP:
            self.asked.pop(next(iter(self.asked)))
        return elicitation

    def for_other(self, elicitation: str | None, user: str) -> bool:
        """Whether `elicitation` was sent to another user than `user` (the page refuses to link from it)."""
        return elicitation is not None and self.asked.get(elicitation, user) != user

    def done(self, user: str) -> None:
        event = self.events.pop(user, None)
        if event is not None:
            event.set()

    async def wait(self, user: str, timeout: float, linked: Callable[[], bool]) -> bool:
        """Wait up to `timeout` s for `user`'s link: told by `done` (a link made by this process) or seen in the vault
        (made by another replica), checked every few seconds."""
        deadline = time.monotonic() + timeout
        while not linked():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            event = self.events.setdefault(user, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(left, 5.0))
        return True


# linking and unlinking (run by `junction connector link|unlink`, or the hub's `/connect/NAME` page) -------------------------------------------------
async def link(host: ProviderHost, settings: UpstreamSettings, user: str, show: Callable[[str], None],
               timeout: float = LINK_TIMEOUT, redirect: LinkRedirect | None = None) -> str:
    """Link `user`'s account at the upstream: `show` gets the address to open; returns the scope granted once the
    authorization server sent the browser back (to `redirect`, the hub's page, else to a loopback listener here)
    and the tokens are stored."""
    async with contextlib.AsyncExitStack() as stack:
        if redirect is None:
            codes: asyncio.Queue[dict[str, str]] = asyncio.Queue()
            server = await asyncio.start_server(lambda r, w: _callback(r, w, codes), "127.0.0.1", 0)
            await stack.enter_async_context(server)
            redirect_uri = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/callback"
            wait: Callable[[], Awaitable[Mapping[str, str]]] = codes.get
        else:
            redirect_uri, wait = redirect.uri, redirect.wait
        storage = VaultTokens(host, settings, user, redirect_uri, fresh=True)

        async def redirect_handler(url: str) -> None:
            show(url)

        async def callback_handler() -> AuthorizationCodeResult:
            got = await wait()
            if "error" in got:
                raise LinkError(f"the authorization server said {got['error']}: "
                                f"{got.get('error_description', '')}".strip())
            return AuthorizationCodeResult(code=got.get("code", ""), state=got.get("state"), iss=got.get("iss"))

        auth = LinkedAuth(host, settings, storage, redirect_handler=redirect_handler,
                          callback_handler=callback_handler)
        probe = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "junction-link", "version": "1"}}}
        headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25",
                   **{k: v for k, v in settings.headers.items() if "${user_secret:" not in v}}
        try:
            async with httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30.0)) as http:
                async with asyncio.timeout(timeout):
                    answer = await http.post(settings.url, json=probe, headers=headers)
                    if storage.fresh:
                        # The upstream lets anyone initialize and wants a token for the rest: ask for its tools.
                        session = answer.headers.get("mcp-session-id")
                        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
                        await http.post(settings.url, json=listing, headers={
                            **headers, **({"Mcp-Session-Id": session} if session else {})})
        except TimeoutError:
            raise LinkError(f"nobody finished signing in within {timeout:.0f} s") from None
        except httpx2.HTTPError as exc:
            raise LinkError(f"cannot reach {settings.url}: {exc}") from None
    tokens = await VaultTokens(host, settings, user).get_tokens()
    if tokens is None or storage.fresh:
        raise LinkError("the upstream did not ask for authorization, or gave no tokens (is it OAuth-protected?)")
    host.vault().remove(user, host.name, SCOPE)  # asked for and granted (or the person chose to grant less)
    return tokens.scope or ""


def client_document_url(host: ProviderHost, settings: UpstreamSettings) -> str | None:
    """The address of the hub's Client ID Metadata Document for this connector (`/connect/NAME/client.json`, served by
    hub/front/connect.py),
    which an authorization server that takes them uses as the client's id instead of a registration; only on an https
    public address (the SDK, and the draft, want https) and when no client was registered beforehand."""
    if settings.oauth_client_id:
        return None
    url = host.web_url(f"/connect/{host.name}/client.json")
    return url if url.startswith("https://") else None


async def unlink(host: ProviderHost, settings: UpstreamSettings, user: str) -> bool:
    """Revoke `user`'s tokens at the authorization server where it offers revocation, then forget them; whether
    there was anything to unlink."""
    storage = VaultTokens(host, settings, user)
    tokens = await storage.get_tokens()
    if tokens is None:
        return False
    endpoint = (storage.meta.get("server") or {}).get("revocation_endpoint")
    client = await storage.get_client_info()
    if endpoint and client is not None:
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(15.0)) as http:
            for token, hint in ((tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")):
                if not token:
                    continue
                form = {"token": token, "token_type_hint": hint}
                basic = None  # the client authenticates as at the token endpoint
                if client.client_secret and client.token_endpoint_auth_method == "client_secret_basic":
                    basic = (client.client_id, client.client_secret)
                else:
                    form["client_id"] = client.client_id
                    if client.client_secret:
                        form["client_secret"] = client.client_secret
                try:
                    answer = await http.post(endpoint, data=form, auth=basic or httpx2.USE_CLIENT_DEFAULT)
                    if answer.status_code >= 400:
                        logger.warning("connector '%s': revoking %s's %s answered HTTP %s", host.name, user, hint,
                                       answer.status_code)
                except httpx2.HTTPError as exc:
                    logger.warning("connector '%s': cannot revoke %s's %s: %s", host.name, user, hint, exc)
    for name in (TOKENS, CLIENT, SCOPE):
        host.vault().remove(user, host.name, name)
    return True


class LinkError(Exception):
    """Linking did not finish; the message says why (never a token)."""


async def _callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    codes: asyncio.Queue[dict[str, str]]) -> None:
    """The loopback redirect target: `GET /callback?code=…&state=…` (or `error=…`)."""
    try:
        async with asyncio.timeout(30):
            head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        parts = urlsplit(target)
        if method != "GET" or parts.path != "/callback":
            body, status = b"Not found", b"404 Not Found"
        else:
            got = {k: v[0] for k, v in parse_qs(parts.query).items()}
            await codes.put(got)
            failed = "error" in got
            body = (b"Junction: the account was not linked; see the terminal." if failed
                    else b"Junction: linked. You can close this window.")
            status = b"200 OK"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        pass
    finally:
        writer.close()
