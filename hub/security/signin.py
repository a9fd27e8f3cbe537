"""The hub's own OAuth 2.1 authorization server (`[auth] mode = "oauth"`).

Owns: the authorization server metadata (RFC 8414), the login and consent page, clients (dynamic
registration per RFC 7591, Client ID Metadata Documents, clients added by an admin), authorization
codes, access and refresh tokens, and revocation. The SDK's handlers (`mcp.server.auth.handlers`)
parse and check the protocol requests (PKCE S256 only, redirect URI matching, client
authentication, token and revocation forms); this module is their `OAuthAuthorizationServerProvider`
and keeps everything in the hub's store:

- a client's secret is kept in the secret store (AES-GCM), never in clear;
- codes, tokens and login sessions are random strings stored only as SHA-256 hashes;
- a code works once: a second use revokes every token issued from it;
- refresh tokens rotate on each use: presenting a used one revokes the whole family (every
  access and refresh token descended from the same sign-in);
- tokens are bound to the hub's MCP URL (the RFC 8707 resource) and checked on every request;
- a redirect URI is one string from registration to /token: it must read as itself through the
  SDK's URL parser (`redirect_uri_problem`), so the SDK's comparisons after parsing are exact;
- consent comes only from a POST of the page that showed it, in the browser it was shown to
  (`_login_post`); wrong passwords are counted per user and client address (`hub.security.lockout`).

Users sign in with the passwords `junction user add --password` / `junction user passwd` set.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import (
    AuthenticationError,
    ClientAuthenticator,
)
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    IdentityAssertionParams,
    RefreshToken,
    RegistrationError,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.settings import ClientRegistrationOptions
from mcp.server.transport_security import (
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    RequestBodyLimitMiddleware,
)
from mcp.shared.auth import (
    InvalidRedirectUriError,
    OAuthClientInformationFull,
    OAuthToken,
)
from pydantic import AnyUrl, ConfigDict, TypeAdapter, ValidationError
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, request_response

from hub.config import FORBIDDEN_REDIRECT_SCHEMES, Config
from hub.security.auth import OAUTH_ACCESS_PREFIX as ACCESS_PREFIX
from hub.security.auth import TOKEN_PREFIX, Policy, Principal, hash_token, verify_token
from hub.security.lockout import sign_in_throttle
from hub.security.outbound import OutboundError, OutboundPolicy, display_url
from hub.security.secrets import SecretError, SecretStore
from hub.security.sessions import Sessions, foreign_post, origin_of, page
from hub.shared import Shared
from hub.store import Store

logger = logging.getLogger("junction.oauth")

REFRESH_PREFIX = "jcr_"
OFFLINE_ACCESS = "offline_access"
REQUEST_TTL = 600.0  # seconds a user has to sign in
CODE_TTL = 300.0
MAX_REDIRECT_URI = 2000
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_METADATA_DOCUMENT = 5 * 1024  # bytes; what the Client ID Metadata Document draft suggests
METADATA_DOCUMENT_TTL = 3600.0
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# How the SDK's models read URLs: the authorization and token requests with pydantic's defaults, client
# metadata keeping an empty path empty. A redirect URI must read as itself through both.
_URL_READERS = (TypeAdapter(AnyUrl), TypeAdapter(AnyUrl, config=ConfigDict(url_preserve_empty_path=True)))


@dataclass(frozen=True)
class _Registration:
    """What the register route saw of a dynamic registration before the SDK's handler parsed it."""

    redirect_uris: list[str]
    """As sent: what is stored must be these very strings."""
    owner: str | None
    """The user whose bearer token came with it (RFC 7591's initial access token), if one did."""


_registration: contextvars.ContextVar[_Registration | None] = contextvars.ContextVar("junction_oauth_registration",
                                                                                     default=None)


def _secret_name(client_id: str) -> str:
    return "oauth.client." + hashlib.sha256(client_id.encode()).hexdigest()[:24]


def redirect_uri_problem(uri: object, extra_schemes: list[str] | tuple[str, ...] = ()) -> str | None:
    """Why `uri`, exactly as a client wrote it, may not be a redirect target, or None.

    https anywhere, http only on loopback (RFC 8252), private-use schemes only when configured; never
    `javascript:`, `data:` and the like; no fragment, no user name or password, a host for http(s).
    And it must already be written the way it will be used: the SDK compares redirect URIs after
    pydantic's URL parser has normalised them (`https:///cb` reads as `https://cb/`, `HTTP://` as
    `http://`, `/a/../b` as `/b`, a default port disappears), so a URI that normalises to anything
    but itself is refused. What is registered, asked for at /authorize and sent to /token is then
    one string, compared exactly (a loopback redirect's port is the one difference allowed)."""
    if not isinstance(uri, str):
        return f"a redirect URI must be a string, not {type(uri).__name__}"
    if len(uri) > MAX_REDIRECT_URI:
        return f"a redirect URI must be at most {MAX_REDIRECT_URI} characters (this one has {len(uri)})"
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        return f"{uri!r} is not a URL ({exc})"
    scheme = parts.scheme
    web = scheme in ("http", "https")  # (also in FORBIDDEN_REDIRECT_SCHEMES: never an *extra* scheme)
    if not scheme:
        return f"{uri!r}: a redirect URI needs a scheme (https://, or http:// on loopback)"
    if not web and scheme in FORBIDDEN_REDIRECT_SCHEMES:
        return f"{uri!r}: '{scheme}:' redirect URIs are never allowed"
    if not web and scheme not in extra_schemes:
        return (f"{uri!r}: the scheme '{scheme}:' is not allowed (https, loopback http, or a scheme listed in "
                "[auth.oauth] redirect_schemes)")
    if "#" in uri:
        return f"{uri!r}: a redirect URI must not have a fragment"
    if "@" in parts.netloc:
        return f"{uri!r}: a redirect URI must not carry a user name or password"
    if web:
        if not parts.netloc or not parts.hostname:
            return f"{uri!r}: an {scheme} redirect URI needs a host (nothing stands between '//' and the path)"
        if scheme == "http" and parts.hostname.lower() not in LOOPBACK_HOSTS:
            return (f"{uri!r}: http redirect URIs must point at loopback (127.0.0.1, [::1] or localhost); "
                    "anything else must be https")
    try:
        read = {str(adapter.validate_python(uri)) for adapter in _URL_READERS}
    except ValidationError as exc:
        return f"{uri!r} is not a URL ({exc.errors()[0]['msg']})"
    if read != {uri}:
        other = min(read - {uri})
        return (f"{uri!r} is not written the way it would be used: it reads as {other!r}. "
                "Register (and send) the redirect URI exactly in that form")
    return None


def same_redirect_uri(uri: str) -> bool:
    """Whether `uri` reads as itself, so that the SDK's comparison after parsing is an exact one."""
    try:
        return all(str(adapter.validate_python(uri)) == uri for adapter in _URL_READERS)
    except ValidationError:
        return False


def _loopback_match(asked: str, registered: str) -> bool:
    """RFC 8252 §7.3: a native app's loopback redirect may use any port."""
    a, r = urlsplit(asked), urlsplit(registered)
    return (a.scheme == r.scheme == "http" and (a.hostname or "") in LOOPBACK_HOSTS and a.hostname == r.hostname
            and a.path == r.path and a.query == r.query)


class HubClient(OAuthClientInformationFull):
    """A registered client: a redirect URI asked for must be one registered, as the same string
    (the authorize route has checked it reads as itself); a loopback one may differ in its port."""

    def validate_redirect_uri(self, redirect_uri: AnyUrl | None) -> AnyUrl:
        if redirect_uri is not None and self.redirect_uris:
            asked, registered = str(redirect_uri), [str(r) for r in self.redirect_uris]
            if asked in registered or any(_loopback_match(asked, r) for r in registered):
                return redirect_uri
            raise InvalidRedirectUriError(f"Redirect URI '{asked}' not registered for client")
        return super().validate_redirect_uri(redirect_uri)


class HubCode(AuthorizationCode):
    family: str
    user: str


class HubRefreshToken(RefreshToken):
    family: str
    user: str


class HubAccessToken(AccessToken):
    family: str
    user: str


@dataclass
class _Pending:
    id: str
    client_id: str
    params: AuthorizationParams
    form_key: str
    """A random key of this request alone: the page's form token is an HMAC of the browser and the
    account shown under it, so it is good for one request, in one browser, for one account."""


class AuthorizationServer:
    """`OAuthAuthorizationServerProvider` over the hub's store, plus the login page and the routes."""

    def __init__(self, config: Config, store: Store, policy: Policy, resource: str,
                 outbound: OutboundPolicy | None = None, shared: Shared | None = None) -> None:
        self.config = config
        self.settings = config.auth.oauth
        self.store = store
        self.policy = policy
        self.resource = resource
        self.issuer = config.oauth_issuer()
        self.secrets = SecretStore(store, config.data_dir())
        self.dev = (urlsplit(self.issuer).hostname or "") in LOOPBACK_HOSTS
        self.origin = origin_of(self.issuer)
        self.secure = self.issuer.startswith("https://")
        self.throttle = sign_in_throttle(self.settings.failed_sign_ins, self.settings.failed_sign_ins_per_address,
                                         float(self.settings.lockout), shared)
        self.sessions = Sessions(store, self.throttle, self.origin)
        self.browser_cookie = self.sessions.browser_cookie
        self.outbound = outbound if outbound is not None else OutboundPolicy.from_config(config)
        """Where metadata documents may be fetched from: the hub's outbound policy (on a loopback issuer, the
        development set-up, loopback documents too)."""

    # metadata ------------------------------------------------------------------------------------
    def valid_scopes(self) -> list[str]:
        return sorted(self.policy.scopes) + [OFFLINE_ACCESS]

    def metadata(self) -> dict[str, Any]:
        auth_methods = ["none", "client_secret_post", "client_secret_basic"]
        meta: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "revocation_endpoint": self.issuer + "/revoke",
            "scopes_supported": self.valid_scopes(),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": self.settings.client_metadata_documents,
        }
        if self.settings.registration:
            meta["registration_endpoint"] = self.issuer + "/register"
        return meta

    # clients -------------------------------------------------------------------------------------
    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        client, why = await self.find_client(client_id)
        if client is None and why:
            logger.warning("client %s refused: %s", client_id[:200], why)
        return client

    async def find_client(self, client_id: str) -> tuple[HubClient | None, str]:
        """The client, or (None, why not): an unknown id, or a metadata document that does not pass."""
        row = self.store.fetchone("SELECT metadata, source, fetched FROM oauth_clients WHERE client_id = ?",
                                  (client_id,))
        if row is not None and row[1] == "cimd" and time.time() - (row[2] or 0) > METADATA_DOCUMENT_TTL:
            row = None  # read the document again
        if row is None:
            if self._is_document_url(client_id):
                return await self.fetch_client_document(client_id)
            return None, ""
        info = json.loads(row[0])
        if info.get("token_endpoint_auth_method") not in (None, "none"):
            try:
                info["client_secret"] = self.secrets.get(_secret_name(client_id))
            except SecretError as exc:  # the client cannot authenticate any more
                return None, f"its secret cannot be read ({exc})"
        return HubClient.model_validate(info), ""

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        # The register route checked the URIs as sent; these are as the SDK parsed them: the same strings or nothing.
        sent = _registration.get()
        parsed = [str(uri) for uri in client_info.redirect_uris or []]
        if sent is None or parsed != sent.redirect_uris:
            raise RegistrationError("invalid_redirect_uri", "the redirect_uris do not read as they were sent")
        for uri in parsed:
            problem = redirect_uri_problem(uri, self.settings.redirect_schemes)
            if problem:
                raise RegistrationError("invalid_redirect_uri", problem)
        owner = sent.owner
        self.save_client(client_info, "dcr", owner)
        logger.info("client registered: %s (%s) by %s", client_info.client_id, client_info.client_name or "no name",
                    owner or "an anonymous caller")

    def _registrant(self, request: Request) -> tuple[str | None, str]:
        """Who registers a client: (the user of the bearer token that came with the registration, or None
        for an anonymous one; why the token was refused, or "")."""
        header = request.headers.get("authorization")
        if header is None:
            return None, ""
        if header[:7].lower() != "bearer ":
            return None, "a registration may carry a bearer token (Authorization: Bearer ...), nothing else"
        token = header[7:].strip()
        if token.startswith(ACCESS_PREFIX):
            principal, why = self.verify(token)
        elif token.startswith(TOKEN_PREFIX):
            principal, why = verify_token(self.store, self.policy, token)
        else:
            principal, why = None, "not a token of this hub"
        return (principal.name, "") if principal is not None else (None, why)

    def save_client(self, client_info: OAuthClientInformationFull, source: str, owner: str | None = None) -> None:
        """Store a client. `owner`: the user who registered it, when known; None for clients an admin
        added, clients known by their metadata document, and anonymous dynamic registrations."""
        info = client_info.model_dump(mode="json", exclude_none=True)
        secret = info.pop("client_secret", None)
        if secret:
            self.secrets.set(_secret_name(client_info.client_id), secret)
        now = time.time()
        self.store.execute("INSERT INTO oauth_clients (client_id, metadata, source, created, fetched, owner) "
                           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET metadata = "
                           "excluded.metadata, source = excluded.source, created = excluded.created, fetched = "
                           "excluded.fetched, owner = excluded.owner, last_used = NULL", (client_info.client_id, json.dumps(info), source, now,
                                                                now if source == "cimd" else None, owner))

    def _is_document_url(self, client_id: str) -> bool:
        if not self.settings.client_metadata_documents:
            return False
        parts = urlsplit(client_id)
        if parts.scheme == "https":
            return True
        return self.dev and parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS

    async def fetch_client_document(self, url: str) -> tuple[HubClient | None, str]:
        """Read a Client ID Metadata Document: the client's metadata, published at its client ID."""
        parts = urlsplit(url)
        if parts.path in ("", "/") or parts.fragment or parts.username or parts.password:
            return None, "a client ID URL needs a path and no fragment or credentials"
        policy = self.outbound.granting(allow_private=True, setting="an issuer on loopback") if self.dev \
            else self.outbound
        try:
            async with policy.request("GET", url, headers={"Accept": "application/json"}, max_redirects=0,
                                      max_bytes=MAX_METADATA_DOCUMENT, timeout=5) as resp:
                if resp.status != 200:
                    return None, f"{display_url(url)} answered HTTP {resp.status}"
                body = await resp.read()
        except OutboundError as exc:
            if "sent more than" in str(exc):
                return None, f"the document at {display_url(url)} is larger than {MAX_METADATA_DOCUMENT} bytes"
            return None, f"cannot read the client's metadata document: {exc}"
        try:
            doc = json.loads(body)
        except ValueError:
            return None, f"the document at {url} is not JSON"
        if not isinstance(doc, dict) or doc.get("client_id") != url:
            return None, f"the document at {url} must be a JSON object whose client_id is exactly that URL"
        method = doc.get("token_endpoint_auth_method") or "none"
        if method != "none":
            return None, f"a client known by its metadata document has no shared secret ({method!r} is not possible)"
        for uri in doc.get("redirect_uris") or []:
            problem = redirect_uri_problem(str(uri), self.settings.redirect_schemes)
            if problem:
                return None, problem
        doc = {k: v for k, v in doc.items() if k not in ("client_secret", "client_secret_expires_at")}
        doc["token_endpoint_auth_method"] = "none"
        doc.setdefault("scope", " ".join(self.valid_scopes()))
        try:
            client = HubClient.model_validate(doc)
        except ValidationError as exc:
            return None, f"the document at {url} is not valid client metadata: {exc.errors()[0]['msg']}"
        if not client.redirect_uris:
            return None, f"the document at {url} lists no redirect_uris"
        if "authorization_code" not in client.grant_types:
            return None, f"the document at {url} does not ask for the authorization_code grant"
        self.save_client(client, "cimd")
        return client, ""

    async def close(self) -> None:
        """Nothing to release: outbound requests hold no connections between them."""

    # authorization -------------------------------------------------------------------------------
    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if params.resource is not None and params.resource.rstrip("/") != self.resource.rstrip("/"):
            raise AuthorizeError("invalid_target", f"this server issues tokens for {self.resource} only, "
                                 f"not {params.resource}")
        request_id, form_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._prune()
        # (the form key lives in the column `csrf`: it is no token by itself, only with the browser's cookie)
        self.store.execute("INSERT INTO oauth_requests (id, client_id, params, csrf, expires) VALUES (?, ?, ?, ?, ?)",
                           (hash_token(request_id), client.client_id, params.model_dump_json(), form_key,
                            time.time() + REQUEST_TTL))
        return f"{self.issuer}/oauth/login?" + urlencode({"request": request_id})

    def _pending(self, request_id: str) -> _Pending | None:
        row = self.store.fetchone("SELECT client_id, params, csrf, expires FROM oauth_requests WHERE id = ?",
                                  (hash_token(request_id),))
        if row is None or row[3] < time.time():
            return None
        return _Pending(request_id, row[0], AuthorizationParams.model_validate_json(row[1]), row[2])

    def _finish(self, pending: _Pending, **result: str | None) -> Response:
        self.store.execute("DELETE FROM oauth_requests WHERE id = ?", (hash_token(pending.id),))
        url = construct_redirect_uri(str(pending.params.redirect_uri), state=pending.params.state, iss=self.issuer,
                                     **result)
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    def _grant(self, pending: _Pending, user: str, role: str) -> Response:
        allowed = self.policy.role_scopes(role)
        asked = [s for s in pending.params.scopes or () if s != OFFLINE_ACCESS]
        if not asked:  # no scope named (or only offline_access): what the user's role allows
            granted = sorted(allowed) + [OFFLINE_ACCESS]
        else:
            granted = [s for s in asked if s in allowed] + [OFFLINE_ACCESS]
            if len(granted) == 1:
                return self._finish(pending, error="invalid_scope", error_description=(
                    f"the role '{role}' of user '{user}' grants none of {', '.join(asked)}"))
        code = secrets.token_urlsafe(32)
        params = pending.params
        self.store.execute(
            "INSERT INTO oauth_codes (code_hash, client_id, user, scopes, params, family, expires) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (hash_token(code), pending.client_id, user, json.dumps(granted), json.dumps({
                "code_challenge": params.code_challenge, "redirect_uri": str(params.redirect_uri),
                "explicit": params.redirect_uri_provided_explicitly, "resource": self.resource}),
             secrets.token_hex(12), time.time() + CODE_TTL))
        logger.info("user %s authorized client %s (scopes: %s)", user, pending.client_id, " ".join(granted))
        return self._finish(pending, code=code)

    async def load_authorization_code(self, client: OAuthClientInformationFull, authorization_code: str
                                      ) -> HubCode | None:
        # A code works once: it is spent here, before the PKCE check, so a guessed verifier burns it too.
        code_hash = hash_token(authorization_code)
        row = self.store.fetchone("SELECT client_id, user, scopes, params, family, expires, used FROM oauth_codes "
                                  "WHERE code_hash = ?", (code_hash,))
        if row is None:
            return None
        client_id, user, scopes, params_json, family, expires, used = row
        if used is not None or not self.store.execute(
                "UPDATE oauth_codes SET used = ? WHERE code_hash = ? AND used IS NULL", (time.time(), code_hash)):
            revoked = self._revoke_family(family)
            logger.warning("authorization code for client %s used twice: %d tokens from it revoked", client_id, revoked)
            return None
        params = json.loads(params_json)
        return HubCode(code=authorization_code, scopes=json.loads(scopes), expires_at=expires, client_id=client_id,
                       code_challenge=params["code_challenge"], redirect_uri=AnyUrl(params["redirect_uri"]),
                       redirect_uri_provided_explicitly=params["explicit"], resource=params["resource"],
                       subject=user, family=family, user=user)

    async def exchange_authorization_code(self, client: OAuthClientInformationFull,
                                          authorization_code: HubCode) -> OAuthToken:
        if self.store.user_role(authorization_code.user) is None:
            raise TokenError("invalid_grant", f"the user '{authorization_code.user}' no longer exists")
        return self._issue(client, authorization_code.user, authorization_code.scopes, authorization_code.family,
                           authorization_code.resource)

    def _issue(self, client: OAuthClientInformationFull, user: str, scopes: list[str], family: str,
               resource: str | None) -> OAuthToken:
        now = time.time()
        access = ACCESS_PREFIX + secrets.token_urlsafe(32)
        rows = [(hash_token(access), "access", family, client.client_id, user, json.dumps(scopes), resource, now,
                 now + self.settings.access_token_ttl)]
        refresh = None
        if "refresh_token" in client.grant_types:
            refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
            rows.append((hash_token(refresh), "refresh", family, client.client_id, user, json.dumps(scopes), resource,
                         now, now + self.settings.refresh_token_ttl))
        for row in rows:
            self.store.execute("INSERT INTO oauth_tokens (token_hash, kind, family, client_id, user, scopes, resource, "
                               "created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        self.store.execute("UPDATE oauth_clients SET last_used = ? WHERE client_id = ?", (now, client.client_id))
        return OAuthToken(access_token=access, expires_in=self.settings.access_token_ttl, scope=" ".join(scopes),
                          refresh_token=refresh)

    # tokens --------------------------------------------------------------------------------------
    def _token_row(self, token: str, kind: str) -> tuple[Any, ...] | None:
        return self.store.fetchone(
            "SELECT family, client_id, user, scopes, resource, expires, used, revoked FROM oauth_tokens "
            "WHERE token_hash = ? AND kind = ?", (hash_token(token), kind))

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str
                                 ) -> HubRefreshToken | None:
        row = self._token_row(refresh_token, "refresh")
        if row is None:
            return None
        family, client_id, user, scopes, resource, expires, used, revoked = row
        if revoked is not None:
            return None
        if used is not None:
            count = self._revoke_family(family)
            logger.warning("a used refresh token of user %s (client %s) came back: its family of %d tokens is "
                           "revoked", user, client_id, count)
            return None
        return HubRefreshToken(token=refresh_token, client_id=client_id, scopes=json.loads(scopes),
                               expires_at=int(expires), resource=resource, subject=user, family=family, user=user)

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, refresh_token: HubRefreshToken,
                                     scopes: list[str]) -> OAuthToken:
        if not self.store.execute("UPDATE oauth_tokens SET used = ? WHERE token_hash = ? AND used IS NULL",
                                  (time.time(), hash_token(refresh_token.token))):
            self._revoke_family(refresh_token.family)  # two uses raced: treat as reuse
            raise TokenError("invalid_grant", "the refresh token was already used")
        if self.store.user_role(refresh_token.user) is None:
            raise TokenError("invalid_grant", f"the user '{refresh_token.user}' no longer exists")
        self._prune()
        return self._issue(client, refresh_token.user, scopes, refresh_token.family, refresh_token.resource)

    async def load_access_token(self, token: str) -> HubAccessToken | None:
        row = self._token_row(token, "access")
        if row is None:
            return None
        family, client_id, user, scopes, resource, expires, _used, revoked = row
        if revoked is not None or expires <= time.time():
            return None
        return HubAccessToken(token=token, client_id=client_id, scopes=json.loads(scopes), expires_at=int(expires),
                              resource=resource, subject=user, family=family, user=user)

    async def exchange_identity_assertion(self, client: OAuthClientInformationFull,
                                          params: IdentityAssertionParams) -> OAuthToken:
        # Part of the SDK's provider protocol; its token handler calls it only when the identity-assertion grant is
        # enabled, which the hub never does. Refused as the SDK's own default refuses it.
        raise TokenError("unsupported_grant_type", "the JWT bearer grant is not supported by this hub")

    async def revoke_token(self, token: HubAccessToken | HubRefreshToken) -> None:
        count = self._revoke_family(token.family)
        logger.info("client %s revoked a token of user %s (%d tokens of that sign-in)", token.client_id, token.user,
                    count)

    def _revoke_family(self, family: str) -> int:
        return self.store.execute("UPDATE oauth_tokens SET revoked = ? WHERE family = ? AND revoked IS NULL",
                                  (time.time(), family))

    def verify(self, token: str) -> tuple[Principal | None, str]:
        """The principal an access token stands for, or (None, why not): for the MCP endpoint."""
        # one lookup per request: the token and its user's current role together
        row = self.store.fetchone(
            "SELECT t.family, t.user, t.scopes, t.resource, t.expires, t.revoked, u.role FROM oauth_tokens t "
            "LEFT JOIN users u ON u.name = t.user AND u.disabled IS NULL WHERE t.token_hash = ? AND t.kind = 'access'", (hash_token(token),))
        if row is None:
            return None, "unknown token"
        family, user, scopes, resource, expires, revoked, role = row
        if revoked is not None:
            return None, "the token was revoked"
        if expires <= time.time():
            return None, "the token expired"
        if (resource or "").rstrip("/") != self.resource.rstrip("/"):
            return None, "the token was issued for another resource"
        if role is None:
            return None, f"the user '{user}' no longer exists or is disabled"
        return Principal(user, role, self.policy.role_scopes(role) & frozenset(json.loads(scopes)),
                         f"oauth:{family}"), ""

    def revoke_grants(self, user: str | None = None, client_id: str | None = None) -> int:
        """Admin: revoke every token of a user and/or a client."""
        sql = "UPDATE oauth_tokens SET revoked = ? WHERE revoked IS NULL"
        args: list[Any] = [time.time()]
        if user is not None:
            sql, args = sql + " AND user = ?", [*args, user]
        if client_id is not None:
            sql, args = sql + " AND client_id = ?", [*args, client_id]
        return self.store.execute(sql, args)

    def clients(self, owner: str | None = None) -> list[tuple[Any, ...]]:
        """(client_id, metadata JSON, source, created, last_used, live sign-ins, owner) per client; only
        those `owner` registered when that is given."""
        sql = ("SELECT c.client_id, c.metadata, c.source, c.created, c.last_used, (SELECT COUNT(DISTINCT family) FROM "
               "oauth_tokens t WHERE t.client_id = c.client_id AND t.revoked IS NULL AND t.expires > ?), c.owner "
               "FROM oauth_clients c")
        args: list[object] = [time.time()]
        if owner is not None:
            sql, args = sql + " WHERE c.owner = ?", [*args, owner]
        return self.store.fetchall(sql + " ORDER BY c.created DESC", args)

    def remove_client(self, client_id: str) -> bool:
        self.revoke_grants(client_id=client_id)
        with contextlib.suppress(Exception):
            self.secrets.remove(_secret_name(client_id))
        return bool(self.store.execute("DELETE FROM oauth_clients WHERE client_id = ?", (client_id,)))

    def sign_ins(self, user: str | None = None) -> list[tuple[Any, ...]]:
        """(family, user, client_id, scopes, first issued, last expiry) per live sign-in, newest first."""
        # a family is one sign-in: its tokens share user, client and scopes (MIN picks that one value)
        sql = ("SELECT family, MIN(user), MIN(client_id), MIN(scopes), MIN(created), MAX(expires) FROM oauth_tokens "
               "WHERE revoked IS NULL AND used IS NULL AND expires > ?")
        args: list[object] = [time.time()]
        if user is not None:
            sql, args = sql + " AND user = ?", [*args, user]
        return self.store.fetchall(sql + " GROUP BY family ORDER BY MIN(created) DESC", args)

    def _prune(self) -> None:
        now = time.time()
        self.store.execute("DELETE FROM oauth_requests WHERE expires < ?", (now,))
        self.store.execute("DELETE FROM oauth_codes WHERE expires < ?", (now - 86400,))
        self.store.execute("DELETE FROM oauth_tokens WHERE expires < ?", (now - 86400,))
        self.store.execute("DELETE FROM login_sessions WHERE expires < ?", (now,))

    # the login and consent page ------------------------------------------------------------------
    # Consent is given only by a POST of the page that showed it: the form carries a token that is an
    # HMAC, under the pending request's own key, of the browser's cookie and of the account the page
    # showed. Anyone else who fetches the page (say a script of another page of the same site, with
    # its own cookies or none) gets a token that is good for that fetch's browser only, so posting it
    # with the victim's cookies is refused; and a POST whose Origin (or Referer) is not the hub, or that
    # the browser itself calls cross-site (Sec-Fetch-Site), is refused before anything is looked at.
    def _session_user(self, request: Request) -> str | None:
        return self.sessions.user(request)

    def _browser(self, request: Request) -> str | None:
        value = request.cookies.get(self.browser_cookie)
        return value if value and _BROWSER_ID.fullmatch(value) else None

    @staticmethod
    def _form_token(pending: _Pending, browser: str, shown: str) -> str:
        message = f"{browser}\n{shown}".encode()
        return hmac.new(pending.form_key.encode(), message, hashlib.sha256).hexdigest()

    def _foreign_post(self, request: Request) -> str | None:
        return foreign_post(request, self.origin)

    async def login_page(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._login_post(request)
        # A GET only ever shows the page: whatever else its URL carries, nothing is granted here.
        pending = self._pending(request.query_params.get("request", ""))
        if pending is None:
            return _expired_page()
        browser = self._browser(request)
        fresh = browser is None
        browser = browser or secrets.token_urlsafe(32)
        response = await self._login_form(pending, browser, self._session_user(request))
        if fresh:
            # Lax: it comes along when the app sends the browser here (a top-level GET), never with a
            # cross-site POST; a session cookie, gone when the browser closes.
            response.set_cookie(self.browser_cookie, browser, path="/", httponly=True,
                                samesite="lax", secure=self.secure)
        return response

    async def _login_form(self, pending: _Pending, browser: str, user: str | None, error: str = "",
                          status: int = 200, headers: dict[str, str] | None = None) -> Response:
        client = await self.get_client(pending.client_id)
        name = (client.client_name if client else None) or pending.client_id
        target = urlsplit(str(pending.params.redirect_uri))
        scopes = pending.params.scopes or sorted(self.policy.scopes)
        items = "".join(f"<li><code>{html.escape(s)}</code> {html.escape(_SCOPE_TEXT.get(s, ''))}</li>" for s in scopes)
        who = (f'<p>Signed in as <b>{html.escape(user)}</b>.</p>' if user else
               '<label>User name <input name="username" autocomplete="username" required autofocus></label>'
               '<label>Password <input name="password" type="password" autocomplete="current-password" required>'
               '</label>')
        body = f"""
<p><b>{html.escape(name)}</b> wants to use this Junction hub as you.</p>
<p class="small">It will be sent back to <code>{html.escape(target.scheme)}://{html.escape(target.netloc)}</code>
and may use:</p>
<ul>{items}</ul>
{f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ''}
<form method="post" action="{html.escape(self.issuer)}/oauth/login">
<input type="hidden" name="request" value="{html.escape(pending.id)}">
<input type="hidden" name="shown" value="{html.escape(user or '')}">
<input type="hidden" name="csrf" value="{self._form_token(pending, browser, user or '')}">
{who}
<button name="action" value="allow" type="submit">Allow</button>
<button name="action" value="deny" type="submit" formnovalidate>Deny</button>
</form>"""
        response = page("Sign in to Junction", body, status)
        response.headers.update(headers or {})
        return response

    async def _login_post(self, request: Request) -> Response:
        foreign = self._foreign_post(request)
        if foreign is not None:
            logger.warning("sign-in form refused: %s", foreign)
            return page("Refused", f"<p>This sign-in was refused: {html.escape(foreign)}. Start again from the app "
                         "that sent you here.</p>", 403)
        form = await request.form()
        pending = self._pending(str(form.get("request", "")))
        if pending is None:
            return _expired_page()
        browser = self._browser(request)
        shown = str(form.get("shown", ""))
        if browser is None or not hmac.compare_digest(str(form.get("csrf", "")),
                                                      self._form_token(pending, browser, shown)):
            logger.warning("sign-in form for client %s refused: its token is not this browser's", pending.client_id)
            return page("Refused", "<p>The form did not come from this sign-in page in this browser. Start again "
                         "from the app that sent you here.</p>", 403)
        session_user = self._session_user(request)
        if (session_user or "") != shown:  # signed in or out in another tab since the page was shown
            return await self._login_form(
                pending, browser, session_user, "Who is signed in here changed since this page was shown: check "
                "and choose again.", 409)
        if form.get("action") == "deny":
            logger.info("sign-in for client %s denied by the user", pending.client_id)
            return self._finish(pending, error="access_denied", error_description="the user denied access")
        if form.get("action") != "allow":
            return await self._login_form(pending, browser, session_user, "Choose Allow or Deny.", 400)
        user = session_user
        new_session = False
        if user is None:
            user = str(form.get("username", "")).strip()[:200]
            refused = await self.sessions.check(user, str(form.get("password", "")), request,
                                                f"client {pending.client_id}")
            if refused is not None:
                return await self._login_form(pending, browser, None, refused.message, refused.status,
                                              refused.headers)
            new_session = True
        role = self.store.user_role(user)
        if role is None:
            return await self._login_form(pending, browser, None, "Wrong user name or password.", 401)
        response = self._grant(pending, user, role)
        if new_session:
            self.sessions.open(response, user)
        return response

    # routes --------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """The sign-in server's endpoints: metadata (RFC 8414), authorize, token, revoke (RFC 7009), the login page,
        and dynamic client registration when it is on. The SDK's handlers do the protocol; ours check first what
        they would normalise away (repeated or inexact parameters, redirect URIs as sent)."""
        self._client_auth = ClientAuthenticator(self)
        self._sdk_authorize = AuthorizationHandler(self)
        self._sdk_token = TokenHandler(self, self._client_auth)
        options = ClientRegistrationOptions(enabled=True, valid_scopes=self.valid_scopes(),
                                            default_scopes=self.valid_scopes())
        self._sdk_register = RegistrationHandler(self, options)
        get, post = ["GET", "OPTIONS"], ["POST", "OPTIONS"]
        routes = [
            Route("/.well-known/oauth-authorization-server", _cors(request_response(self._serve_metadata), get),
                  methods=get),
            Route("/authorize", _limited(request_response(self._serve_authorize)), methods=["GET", "POST"]),
            Route("/token", _cors(_limited(request_response(self._serve_token)), post), methods=post),
            Route("/revoke", _cors(_limited(request_response(self._serve_revoke)), post), methods=post),
            Route("/oauth/login", _limited(request_response(self.login_page)), methods=["GET", "POST"]),
        ]
        if self.settings.registration:
            routes.append(Route("/register", _cors(_limited(request_response(self._serve_register)), post),
                                methods=post))
        return routes

    async def _serve_metadata(self, request: Request) -> Response:
        return JSONResponse(self.metadata(), headers={"Cache-Control": "max-age=300"})

    async def _serve_authorize(self, request: Request) -> Response:
        params = request.query_params if request.method == "GET" else await request.form()
        refused = _repeated(params) or _inexact_redirect_uri(params.get("redirect_uri"))
        if refused:  # not sent back to a redirect URI that is itself in question
            return _oauth_error("invalid_request", refused)
        # A URL client ID is read first, so that a document we refuse is explained, not "not found".
        client_id = params.get("client_id")
        if isinstance(client_id, str) and self._is_document_url(client_id):
            client, why = await self.find_client(client_id)
            if client is None:
                return _oauth_error("invalid_client", why)
        return await self._sdk_authorize.handle(request)  # reads the same parsed form (Starlette keeps it)

    async def _serve_token(self, request: Request) -> Response:
        form = await request.form()
        refused = _repeated(form)
        raw = form.get("redirect_uri")
        if not refused and form.get("grant_type") == "authorization_code" and raw is not None and (
                not isinstance(raw, str) or not same_redirect_uri(raw)):
            # The SDK compares the parsed URIs; one that reads as itself is compared as sent.
            refused = ("redirect_uri did not match the one used when creating auth code: send it exactly as "
                       "in the authorization request")
        if refused:
            return _oauth_error("invalid_request", refused, {"Pragma": "no-cache"})
        return await self._sdk_token.handle(request)

    async def _serve_register(self, request: Request) -> Response:
        # The SDK's handler parses the body with pydantic, which normalises URLs: the redirect URIs are
        # checked here as sent, and the handler is given this parse re-encoded, so that it reads the
        # very document that was checked (no second reading of the client's bytes).
        try:
            doc = _strict_json(await request.body())
        except ValueError as exc:
            return _oauth_error("invalid_client_metadata", str(exc))
        uris = doc.get("redirect_uris")
        for uri in uris if isinstance(uris, list) else ():
            problem = redirect_uri_problem(uri, self.settings.redirect_schemes)
            if problem:
                return _oauth_error("invalid_redirect_uri", problem)
        owner, why = self._registrant(request)
        if why:
            return JSONResponse({"error": "invalid_token", "error_description": why}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        sent = _Registration([u for u in uris if isinstance(u, str)] if isinstance(uris, list) else [], owner)
        reset = _registration.set(sent)
        try:
            return await self._sdk_register.handle(_with_body(request, json.dumps(doc).encode()))
        finally:
            _registration.reset(reset)

    async def _serve_revoke(self, request: Request) -> Response:
        # RFC 7009. Not the SDK's handler: it demands a client_secret field even from public clients.
        try:
            client = await self._client_auth.authenticate_request(request)
        except AuthenticationError as exc:
            return JSONResponse({"error": "invalid_client", "error_description": exc.message}, status_code=401)
        token = (await request.form()).get("token")
        if not isinstance(token, str) or not token:
            return JSONResponse({"error": "invalid_request", "error_description": "the form has no token"},
                                status_code=400)
        found = await self.load_access_token(token) or await self.load_refresh_token(client, token)
        if found is not None and found.client_id == client.client_id:
            await self.revoke_token(found)
        return Response(status_code=200, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


_SCOPE_TEXT = {
    "mcp": "call the tools, read the resources and use the prompts your role allows",
    "hub:admin": "administer the hub (audit log, catalog)",
    OFFLINE_ACCESS: "stay signed in (refresh tokens)",
}


def _cors(app: Any, methods: list[str]) -> Any:
    return CORSMiddleware(app=app, allow_origins="*", allow_methods=methods,
                          allow_headers=["mcp-protocol-version", "authorization", "content-type"])


def _limited(app: Any) -> Any:
    return RequestBodyLimitMiddleware(app, DEFAULT_MAX_REQUEST_BODY_SIZE)


def _oauth_error(error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400,
                        headers={"Cache-Control": "no-store", **(headers or {})})


def _repeated(params: Any) -> str | None:
    """RFC 6749 §3.1: a parameter sent more than once is an error (not "the last one wins")."""
    for key in params:
        if len(params.getlist(key)) > 1:
            return f"the request sends {key[:60]!r} more than once"
    return None


def _inexact_redirect_uri(raw: object) -> str | None:
    if raw is None or (isinstance(raw, str) and same_redirect_uri(raw)):
        return None
    return (f"redirect_uri {str(raw)[:MAX_REDIRECT_URI]!r} is not registered for this client: redirect URIs are "
            "compared exactly as written, and this one does not read as itself (send the registered URI exactly)")


def _strict_json(body: bytes) -> dict[str, Any]:
    """A JSON object, read strictly: UTF-8, no repeated keys, no NaN or Infinity."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        doc = dict(items)
        if len(doc) != len(items):  # a name given twice (found in one pass: a body may hold many names)
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    raise ValueError(f"the client metadata names {key[:60]!r} more than once")
                seen.add(key)
        return doc

    def constant(name: str) -> Any:
        raise ValueError(f"the client metadata holds {name}, which is not JSON")

    try:
        doc = json.loads(body.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except UnicodeDecodeError:
        raise ValueError("the client metadata is not UTF-8 text") from None
    except RecursionError:
        raise ValueError("the client metadata is nested too deeply") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ValueError(f"the client metadata is not JSON ({exc.msg}, {where})") from None
    if not isinstance(doc, dict):
        raise ValueError("the client metadata must be a JSON object")
    return doc


def _with_body(request: Request, body: bytes) -> Request:
    """The same request with another body (one already read cannot be read again from the wire)."""
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def _expired_page() -> HTMLResponse:
    return page("Sign-in link expired", "<p>This sign-in link has expired or was already used. Start again from the "
                 "app that sent you here.</p>", 400)
