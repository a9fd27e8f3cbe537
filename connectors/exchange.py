"""Token exchange (RFC 8693) for upstreams in the hub's own identity domain (`auth = "exchange"`).

When the hub takes its callers' tokens from an identity provider (`[auth] mode = "external"`) and an upstream trusts
the same provider, nobody needs to link anything: each caller's own token is exchanged at that provider's token
endpoint for one issued for the upstream (`resource`, and `audience` where configured), and that user's upstream
session carries it. The session that reads the catalog authenticates as the hub itself (client credentials, for the
same resource). The token endpoint is `oauth_token_url`, else found as the MCP authorization spec finds it: the
upstream's protected resource metadata (RFC 9728), then its authorization server's (RFC 8414, then OpenID).

Owns: the exchanges and the tokens they gave, and each user's latest own token for exchanges later in their session
(in memory only: short-lived, nothing to keep; a user's go when they are removed or their session closes). Must not:
send a caller's token anywhere but that token endpoint, write either kind of token anywhere, or log one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, TypeVar

import httpx2
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    issuers_match,
)
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata
from pydantic import ValidationError

if TYPE_CHECKING:
    from connectors.settings import UpstreamSettings
    from hub.provider import ProviderHost

logger = logging.getLogger("junction.connectors.exchange")
Metadata = TypeVar("Metadata", ProtectedResourceMetadata, OAuthMetadata)

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
MARGIN = 30.0
"""Seconds before its expiry a token counts as expired (it must still be good when the upstream reads it)."""


class ExchangeError(Exception):
    """An exchange that did not give a token; the message says why, for the caller to read (never a token)."""


class Exchanger:
    """A connector's exchanges: each user's latest own token (the subject), what the provider gave for it, and the
    hub's own token for the catalog."""

    def __init__(self, host: ProviderHost, settings: UpstreamSettings) -> None:
        self.host, self.settings = host, settings
        self.subjects: dict[str, str] = {}
        self.tokens: dict[str | None, tuple[str, float]] = {}  # user (None: the hub itself) -> (token, expires at)
        self._endpoint = settings.oauth_token_url or None
        self._locks: dict[str | None, asyncio.Lock] = {}

    def token(self, user: str | None) -> str | None:
        held = self.tokens.get(user)
        return held[0] if held is not None and held[1] > time.time() + MARGIN else None

    async def ensure(self, user: str | None, subject: str | None = None) -> str:
        """A good token for `user`'s session (None: the hub's own), exchanged now if there is none; `subject` is
        the caller's own token of this call (the latest is kept for exchanges later in the session)."""
        if subject is not None and user is not None:
            self.subjects[user] = subject
        lock = self._locks.setdefault(user, asyncio.Lock())
        async with lock:
            token = self.token(user)
            if token is None:
                token = await self._obtain(user)
            return token

    def drop(self, user: str | None, token: str) -> None:
        """The upstream refused `token`: the next request exchanges again (unless another has done so already)."""
        held = self.tokens.get(user)
        if held is not None and held[0] == token:
            del self.tokens[user]

    def forget(self, user: str) -> None:
        self.tokens.pop(user, None)
        self.subjects.pop(user, None)

    async def _obtain(self, user: str | None) -> str:
        s = self.settings
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0)) as http:
            endpoint = await self._token_endpoint(http)
            form = {"resource": s.url}
            if s.oauth_scopes:
                form["scope"] = " ".join(s.oauth_scopes)
            if user is None:
                form["grant_type"] = "client_credentials"
            else:
                subject = self.subjects.get(user)
                if subject is None:
                    raise ExchangeError("the call came with no token of the identity provider to exchange")
                form.update(grant_type=TOKEN_EXCHANGE, subject_token=subject, subject_token_type=ACCESS_TOKEN,
                            requested_token_type=ACCESS_TOKEN)
                if s.exchange_audience:
                    form["audience"] = s.exchange_audience
            auth: tuple[str, str] | None = None
            if s.oauth_client_secret:
                auth = (s.oauth_client_id, s.oauth_client_secret)
            else:
                form["client_id"] = s.oauth_client_id
            try:
                answer = await http.post(endpoint, data=form, auth=auth or httpx2.USE_CLIENT_DEFAULT,
                                         headers={"Accept": "application/json"})
            except httpx2.HTTPError as exc:
                raise ExchangeError(f"cannot reach the token endpoint {endpoint}: {exc}") from None
        what = "the hub's own token (client credentials)" if user is None else f"{user}'s token"
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            detail = body.get("error_description") if isinstance(body, dict) else None
            reason = f"{error}: {str(detail)[:200]}" if error and detail else str(error or f"HTTP {answer.status_code}")
            logger.warning("connector '%s': exchanging %s at %s was refused (%s)", self.host.name, what, endpoint,
                           reason)
            raise ExchangeError(f"the identity provider refused to exchange {what} for one for this server ({reason})")
        ttl = body.get("expires_in")
        expires = time.time() + (float(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else 300.0)
        self.tokens[user] = (body["access_token"], expires)
        return body["access_token"]

    async def _token_endpoint(self, http: httpx2.AsyncClient) -> str:
        if self._endpoint is not None:
            return self._endpoint
        url = self.settings.url
        resource: ProtectedResourceMetadata | None = None
        for address in build_protected_resource_metadata_discovery_urls(None, url):
            resource = _parsed(ProtectedResourceMetadata, await _get(http, address))
            if resource is not None:
                break
        if resource is None or not resource.authorization_servers:
            raise ExchangeError(f"{url} publishes no protected resource metadata naming its authorization server "
                                "(set oauth_token_url)")
        issuer = str(resource.authorization_servers[0])
        ours = self.host.identity_issuer
        if ours is None or not issuers_match(issuer, ours):
            # Callers' tokens and the hub's client secret go only to the hub's own identity provider: an upstream's
            # metadata must not be able to send them anywhere it likes (nor is anything fetched from elsewhere).
            raise ExchangeError(f"the upstream trusts the authorization server {issuer}, not the hub's identity "
                                f"provider ({ours or 'none: [auth] mode is not external'}); nothing is sent there "
                                "(set oauth_token_url to exchange at a token endpoint of your choice)")
        server: OAuthMetadata | None = None
        for address in build_oauth_authorization_server_metadata_discovery_urls(issuer, url):
            server = _parsed(OAuthMetadata, await _get(http, address))
            if server is not None:
                break
        if server is None:
            raise ExchangeError(f"the authorization server {issuer} publishes no metadata (set oauth_token_url)")
        if not issuers_match(str(server.issuer), issuer):  # RFC 8414 3.3: the document must be that issuer's own
            raise ExchangeError(f"the metadata at {issuer} names another issuer ({server.issuer}); nothing is sent "
                                "there")
        offered = server.grant_types_supported
        if offered is not None and TOKEN_EXCHANGE not in offered:
            raise ExchangeError(f"the authorization server {issuer} does not offer token exchange (RFC 8693)")
        self._endpoint = str(server.token_endpoint)
        return self._endpoint


class ExchangeAuth(httpx2.Auth):
    """One user's (or the hub's own) token on every request of their upstream session, exchanged again when it
    expires and once when the upstream refuses it."""

    def __init__(self, exchanger: Exchanger, user: str | None) -> None:
        self.exchanger, self.user = exchanger, user

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        # A call's token was exchanged before it was sent (`UpstreamProvider._exchange_for`); here it is done again
        # only when it expired during a session, or was refused. An exchange refused then lets the upstream's 401
        # through (its reason is logged, and the caller is told the upstream refused them).
        try:
            token = await self.exchanger.ensure(self.user)
        except ExchangeError as exc:
            logger.warning("connector '%s': %s", self.exchanger.host.name, exc)
            yield request
            return
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.exchanger.drop(self.user, token)
            try:
                request.headers["Authorization"] = f"Bearer {await self.exchanger.ensure(self.user)}"
            except ExchangeError as exc:
                logger.warning("connector '%s': %s", self.exchanger.host.name, exc)
                return
            yield request


async def _get(http: httpx2.AsyncClient, url: str) -> bytes | None:
    try:
        answer = await http.get(url, headers={"Accept": "application/json"})
    except httpx2.HTTPError:
        return None
    return answer.content if answer.status_code == 200 else None


def _parsed(model: type[Metadata], raw: bytes | None) -> Metadata | None:
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        return None
