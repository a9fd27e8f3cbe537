"""Who is calling, and what they may do: principals, roles, scopes, API tokens and the front's check.

Owns: the policy over public names (a scope is a set of glob patterns over tool and prompt
names and resource URIs; a role grants scopes; `hub:admin` items need `hub:admin` whatever else
matches), API tokens (random, shown once, stored as SHA-256, revocable, expiring), and the
authentication step in front of the MCP endpoint: 401 with `WWW-Authenticate` pointing at the
protected resource metadata (RFC 9728) when a token is missing or bad, the principal on the
request scope (and as the SDK's `AuthenticatedUser`, which binds 2025 sessions and sealed
`requestState` to it) when it is good. Tokens for the hub never leave it: connectors send only
their own configured headers upstream.

Mode `none` (loopback only) and the stdio transport run as the local user, who is an admin.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hub.config import BUILTIN_SCOPES, AuthConfig, Config, ExternalAuthConfig
from hub.store import Store

if TYPE_CHECKING:  # the SDK's auth types are imported where they are used: the CLI's commands never load the SDK
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from starlette.authentication import AuthCredentials

TOKEN_PREFIX = "jct_"
OAUTH_ACCESS_PREFIX = "jca_"
"""Access tokens of the hub's own authorization server (hub/security/signin.py)."""
BUILTIN_ROLES = ("admin", "user", "agent")
PRINCIPAL_KEY = "junction.principal"
"""Where the front puts the caller's `Principal` in the ASGI scope."""
LOCAL_OWNER = "(local)"
"""The owner of what the local user (stdio, a hub without sign-in) creates; no user name can be this."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user of the hub (by name), with the scopes this call may use."""

    name: str | None
    """None: the local user (no authentication configured, or stdio)."""
    role: str
    scopes: frozenset[str]
    token_id: str | None = None
    subject_token: str | None = field(default=None, repr=False, compare=False)
    """The caller's own access token, when it is one of the identity provider's (`external` mode): what a connector
    with `auth = "exchange"` exchanges (RFC 8693) at that provider for one issued for its upstream (it keeps the latest
    in memory for the rest of that user's session). Never written anywhere, logged, or sent anywhere else; a job
    acting for the user has none."""

    @property
    def is_local(self) -> bool:
        return self.name is None

    @property
    def owner(self) -> str:
        """How what this caller creates is owned: the user's name, or `LOCAL_OWNER`."""
        return self.name if self.name is not None else LOCAL_OWNER

    @property
    def is_admin(self) -> bool:
        """The local user, or a caller whose token carries `hub:admin` (an admin's token cut down to other
        scopes is not): may reach what other users own."""
        return self.name is None or "hub:admin" in self.scopes


class Policy:
    """Scopes (patterns over public names) and roles (sets of scopes), from `[auth]`."""

    def __init__(self, auth: AuthConfig, admin_patterns: list[str]) -> None:
        self.scopes: dict[str, tuple[str, ...]] = {"mcp": ("*",), "hub:admin": tuple(admin_patterns)}
        self.scopes.update({name: tuple(patterns) for name, patterns in auth.scopes.items()})
        everything = frozenset(self.scopes)
        self.roles: dict[str, frozenset[str]] = {
            "admin": everything,
            "user": everything - {"hub:admin"},
            "agent": frozenset({"mcp"}),
        }
        for role, spec in auth.roles.items():
            self.roles[role] = frozenset(spec.scopes)
        self.local = Principal(None, "admin", everything)
        self._cache: dict[tuple[frozenset[str], str], bool] = {}

    def role_scopes(self, role: str) -> frozenset[str]:
        return self.roles.get(role, frozenset())

    def _matches(self, scope: str, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.scopes.get(scope, ()))

    def allows(self, principal: Principal, name: str) -> bool:
        """May `principal` see and use the tool, prompt or resource published as `name`?"""
        key = (principal.scopes, name)
        hit = self._cache.get(key)
        if hit is None:
            if self._matches("hub:admin", name):
                hit = "hub:admin" in principal.scopes
            else:
                hit = any(self._matches(scope, name) for scope in principal.scopes if scope != "hub:admin")
            if len(name) <= 256:  # a name a caller made up that long is not worth keeping
                if len(self._cache) > 50_000:
                    self._cache.clear()
                self._cache[key] = hit
        return hit

    def scope_for(self, name: str, within: frozenset[str] | None = None) -> str | None:
        """The narrowest scope that allows `name` (what a client must ask for to call it); with `within` (a role's
        scopes), only one of those: None when no token of that role could ever allow it."""
        if self._matches("hub:admin", name):
            return "hub:admin" if within is None or "hub:admin" in within else None
        fitting = [s for s in self.scopes if s != "hub:admin" and self._matches(s, name)
                   and (within is None or s in within)]
        fitting.sort(key=lambda s: (s in BUILTIN_SCOPES, len(self.scopes[s])))
        return fitting[0] if fitting else None


def policy_for(config: Config) -> Policy:
    """The access policy of a config: `hub:admin` covers the built-in provider's administration items."""
    prefix = config.provider_prefix("hub")
    users, secrets, restart = ((f"{prefix}__users", f"{prefix}__secrets", f"{prefix}__restart") if prefix
                               else ("users", "secrets", "restart"))
    connectors = [f"{prefix}__{n}" if prefix else n for n in ("add_connector", "remove_connector",
                                                                   "reload_connectors")]
    return Policy(config.auth, [f"{prefix}__audit*" if prefix else "audit*", users, secrets, restart, *connectors,
                                f"{prefix}__settings*" if prefix else "settings*", "junction://audit*",
                                "junction://catalog"])


# acting for someone ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delegation:
    """Whom something acts for when nobody is calling (a job): the user, their role and the scopes of the token
    that made it, and that token. At run time it is worth the token's scopes within the user's role *then*, and
    nothing once the token is revoked or expired, the sign-in revoked, or the user removed (`act_for`)."""

    user: str | None
    """None: the local user."""
    role: str
    """The role when it was made (what counts for users of an external provider, whom the hub cannot look up)."""
    scopes: tuple[str, ...] | None
    """The token's scopes; None for records made before tokens were kept (the role's scopes then)."""
    token: str | None
    """`Principal.token_id`: an API token's id, `oauth:FAMILY` for a sign-in, `ISSUER#ID` for an external token."""

    @classmethod
    def of(cls, principal: Principal) -> Delegation:
        return cls(principal.name, principal.role, tuple(sorted(principal.scopes)), principal.token_id)

    def dumps(self) -> str:
        return json.dumps({"user": self.user, "role": self.role, "scopes": self.scopes, "token": self.token},
                          separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None) -> Delegation:
        """From `dumps`, or from the `NAME|SCOPE,SCOPE` form jobs were stored in before (no token known)."""
        if not text:
            return cls(None, "admin", None, None)
        if text.startswith("{"):
            data = json.loads(text)
            scopes = data.get("scopes")
            return cls(data.get("user"), data.get("role") or "", tuple(scopes) if scopes is not None else None,
                       data.get("token"))
        name, _, scopes = text.partition("|")
        return cls(name or None, "", tuple(scopes.split(",")) if scopes else None, None)


def act_for(store: Store, policy: Policy, delegation: Delegation, now: float | None = None
            ) -> tuple[Principal | None, str]:
    """The principal a delegation is worth now, or (None, why it is worth nothing)."""
    user, token = delegation.user, delegation.token
    if user is None:
        return policy.local, ""
    now = time.time() if now is None else now
    if token is not None and token.startswith("oauth:"):
        live = store.fetchone("SELECT COUNT(*) FROM oauth_tokens WHERE family = ? AND user = ? AND revoked IS NULL "
                              "AND expires > ?", (token[6:], user, now))
        if not live or not live[0]:
            return None, f"the sign-in of '{user}' that made it was revoked or has expired"
        role = store.user_role(user)
    elif token is not None and "#" in token:
        role = delegation.role  # an external provider's user: the hub cannot ask it again
        if _disabled_here(store, user):
            return None, f"the user '{user}' is disabled"
    elif token is not None:
        state = store.token_state(token)
        if state is None or state[0] != user:
            return None, f"the API token {token} of '{user}' that made it no longer exists"
        _, expires, revoked = state
        if revoked is not None:
            return None, f"the API token {token} of '{user}' that made it was revoked"
        if expires is not None and expires <= now:
            return None, f"the API token {token} of '{user}' that made it has expired"
        role = store.user_role(user)
    else:
        role = store.user_role(user)
    if role is None:
        return None, f"'{user}' is no longer a user of this hub"
    granted = policy.role_scopes(role)
    if delegation.scopes is not None:
        granted = granted & frozenset(delegation.scopes)
    return Principal(user, role, granted, token), ""


def _disabled_here(store: Store, user: str) -> bool:
    """Whether the hub has disabled its own user of that name. An external provider names its users and the hub
    need not know them, but one it knows and has disabled (`junction user disable`) is refused as in every other
    mode: else disabling would stop nothing there."""
    found = store.user(user)
    return found is not None and found[1] is not None


# API tokens ----------------------------------------------------------------------------------------
def hash_token(token: str) -> str:
    # A token is 256 random bits: a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, policy: Policy, user: str, name: str, scopes: list[str] | None,
                 expires: float | None) -> tuple[str, str]:
    """Create a token for `user`; returns (id, the token itself: shown once, never stored)."""
    role = store.user_role(user)
    if role is None:
        raise KeyError(f"no user named '{user}' (add one with `junction user add`)")
    if scopes is not None:
        allowed = policy.role_scopes(role)
        for scope in scopes:
            if scope not in policy.scopes:
                raise ValueError(f"unknown scope '{scope}' (known: {', '.join(sorted(policy.scopes))})")
            if scope not in allowed:
                raise ValueError(f"role '{role}' of user '{user}' does not grant scope '{scope}'")
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    store.add_token(token_id, user, name, hash_token(token), json.dumps(sorted(scopes)) if scopes is not None else None,
                    expires)
    return token_id, token


def verify_token(store: Store, policy: Policy, token: str) -> tuple[Principal | None, str]:
    """The principal a token stands for, or (None, why not)."""
    if not token.startswith(TOKEN_PREFIX):
        return None, "not a Junction API token"
    row = store.find_token(hash_token(token))
    if row is None:
        return None, "unknown token"
    token_id, user, role, scopes_json, expires, revoked, disabled = row
    if revoked is not None:
        return None, "the token was revoked"
    if disabled is not None:
        return None, f"the user '{user}' is disabled"
    if expires is not None and expires <= time.time():
        return None, "the token expired"
    granted = policy.role_scopes(role)
    if scopes_json is not None:
        granted = granted & frozenset(json.loads(scopes_json))
    return Principal(user, role, granted, token_id), ""


# passwords (for the hub's own login page, `[auth] mode = "oauth"`) ------------------------------------------
MIN_PASSWORD = 10
_SCRYPT = (2**15, 8, 1)  # n, r, p: about 32 MiB and 50-100 ms per check on this machine kind


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash` (base64); the password itself is never stored."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    n, r, p = _SCRYPT
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2**26, dklen=32)
    return "$".join(["scrypt", str(n), str(r), str(p), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str | None) -> bool:
    try:
        kind, n, r, p, salt, digest = (stored or "").split("$")
        if kind != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        got = hashlib.scrypt(password.encode(), salt=base64.urlsafe_b64decode(salt + "=="), n=int(n), r=int(r),
                             p=int(p), maxmem=2**26, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: float, *, ago: bool = False) -> float:
    """`30d`, `12h`, `90m` from `now` (or before it), or an ISO date/time (UTC unless it says) -> epoch time.
    Raises `ValueError` when it is neither."""
    match = _DURATION.match(text.strip().lower())
    if match:
        span = float(match.group(1)) * _UNITS[match.group(2)]
        return now - span if ago else now + span
    from datetime import datetime, timezone

    when = datetime.fromisoformat(text.strip())
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def parse_expiry(text: str | None, now: float | None = None) -> float | None:
    """`30d`, `12h`, `90m`, `never`, or an ISO date/time -> an epoch time (None: never)."""
    if text is None or text.strip().lower() in ("", "never"):
        return None
    now = time.time() if now is None else now
    try:
        when = parse_time(text, now)
    except ValueError:
        raise ValueError(f"cannot read the expiry {text!r}: use e.g. 30d, 12h, 90m, never, or 2027-01-31") from None
    if when <= now:
        raise ValueError(f"the expiry {text!r} is in the past")
    return when


# an existing OpenID provider's tokens ---------------------------------------------------------------
_JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class ExternalVerifier:
    """Access tokens of an existing provider: JWTs checked with its JWKS (signature, `iss`, `aud`, `exp`),
    opaque ones by RFC 7662 introspection. Keys and metadata are fetched when first needed and the keys
    again when a token names a key id not seen yet (at most every 30 s)."""

    def __init__(self, config: ExternalAuthConfig, policy: Policy, resource: str) -> None:
        self.config = config
        self.policy = policy
        audience = (config.audience or resource).rstrip("/")
        self.audiences = [audience, audience + "/"]
        self.issuers = [config.issuer.rstrip("/"), config.issuer.rstrip("/") + "/"]
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str | None, Any] = {}
        self._keys_at = 0.0
        self._http: Any = None

    def _client(self) -> Any:
        import httpx2

        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=10.0, follow_redirects=False)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _provider_metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            base = self.config.issuer.rstrip("/")
            for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
                response = await self._client().get(base + path)
                if response.status_code == 200:
                    self._metadata = response.json()
                    break
            else:
                raise ConnectionError(f"no metadata at {base}/.well-known/ (openid-configuration or "
                                      "oauth-authorization-server)")
        return self._metadata

    async def _key(self, kid: str | None) -> Any:
        from jwt import PyJWKSet

        if kid not in self._keys and time.monotonic() - self._keys_at > 30:
            url = self.config.jwks_url or (await self._provider_metadata()).get("jwks_uri")
            if not url:
                raise ConnectionError("the provider publishes no jwks_uri; set [auth.external] jwks_url")
            response = await self._client().get(url)
            response.raise_for_status()
            keys = PyJWKSet.from_dict(response.json()).keys
            self._keys = {k.key_id: k for k in keys}
            self._keys_at = time.monotonic()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def verify(self, token: str) -> tuple[Principal | None, str]:
        try:
            claims = await (self._jwt(token) if token.count(".") == 2 else self._introspect(token))
        except _Rejected as exc:
            return None, str(exc)
        except Exception as exc:  # the provider is unreachable or answers nonsense: refuse, say why
            return None, f"cannot check the token with {self.config.issuer}: {type(exc).__name__}"
        return self._principal(claims)

    async def _jwt(self, token: str) -> dict[str, Any]:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _Rejected("the token is not a well-formed JWT") from None
        key = await self._key(header.get("kid"))
        if key is None:
            raise _Rejected("the token is signed with a key the provider does not publish")
        try:
            return jwt.decode(token, key.key, algorithms=_JWT_ALGORITHMS, audience=self.audiences,
                              issuer=self.issuers, leeway=self.config.clock_skew,
                              options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise _Rejected("the token expired") from None
        except jwt.InvalidAudienceError:
            raise _Rejected("the token was issued for another resource (aud)") from None
        except jwt.InvalidIssuerError:
            raise _Rejected("the token was issued by another provider (iss)") from None
        except jwt.PyJWTError as exc:
            raise _Rejected(f"the token does not verify ({type(exc).__name__})") from None

    async def _introspect(self, token: str) -> dict[str, Any]:
        cfg = self.config
        url = cfg.introspection_url or (await self._provider_metadata()).get("introspection_endpoint")
        if not url or not cfg.client_id:
            raise _Rejected("not a JWT, and no introspection is configured for opaque tokens")
        response = await self._client().post(url, data={"token": token}, auth=(cfg.client_id, cfg.client_secret))
        if response.status_code != 200:
            raise ConnectionError(f"introspection answered HTTP {response.status_code}")
        claims = response.json()
        if not claims.get("active"):
            raise _Rejected("the token is not active (revoked, expired or unknown)")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(a in self.audiences for a in audiences if isinstance(a, str)):
            raise _Rejected("the token was issued for another resource (aud)")
        if "iss" in claims and claims["iss"] not in self.issuers:
            raise _Rejected("the token was issued by another provider (iss)")
        if isinstance(claims.get("exp"), int | float) and claims["exp"] < time.time() - cfg.clock_skew:
            raise _Rejected("the token expired")
        return claims

    def _principal(self, claims: dict[str, Any]) -> tuple[Principal | None, str]:
        cfg = self.config
        name = claims.get(cfg.user_claim)
        if not isinstance(name, str) or not name:
            return None, f"the token names no user (claim '{cfg.user_claim}')"
        if name == LOCAL_OWNER:  # would own what the local user made
            return None, f"the token's user name {name!r} is reserved on this hub"
        role = claims.get(cfg.role_claim) if cfg.role_claim else cfg.default_role
        if not isinstance(role, str) or role not in self.policy.roles:
            return None, f"the token's role {role!r} is not a role of this hub"
        granted = self.policy.role_scopes(role)
        scope = claims.get("scope")
        if isinstance(scope, str):
            granted = granted & frozenset(scope.split())
        return Principal(name, role, granted, f"{cfg.issuer}#{claims.get('jti') or name}"), ""


class _Rejected(Exception):
    """A token that is not acceptable (the message says why, for the 401)."""


# the front's check -----------------------------------------------------------------------------------
class Authenticator:
    """Turns a request's `Authorization` header into a `Principal`, or the 401 that says what to do."""

    def __init__(self, mode: str, store: Store, policy: Policy, resource: str, metadata_url: str,
                 external: ExternalVerifier | None = None, oauth: Any = None) -> None:
        self.mode = mode
        self.store = store
        self.policy = policy
        self.resource = resource
        self.metadata_url = metadata_url
        self.external = external
        self.oauth = oauth
        """The built-in authorization server (`hub.security.signin.AuthorizationServer`) in mode `oauth`."""
        self._touched: dict[str, float] = {}  # API token id -> when its last use was written down

    def challenge(self, error: str | None = None, description: str | None = None, scope: str | None = None) -> str:
        """`WWW-Authenticate` for a refusal. Without a token, every scope the hub has is named: clients ask
        for what the challenge names, and the authorization server grants what the user's role allows."""
        if scope is None:
            scope = " ".join(sorted(self.policy.scopes))
        parts = []
        if error:
            parts.append(f'error="{error}"')
        if description:
            # A header value: printable ASCII only (a tool name in the description may hold anything a caller sent).
            printable = "".join(c if " " <= c <= "~" else "?" for c in description[:300])
            parts.append('error_description="{}"'.format(printable.replace('"', "'").replace("\\", "/")))
        parts.append(f'resource_metadata="{self.metadata_url}"')
        parts.append(f'scope="{scope}"')
        return "Bearer " + ", ".join(parts)

    async def authenticate(self, scope: dict[str, Any]) -> tuple[Principal | None, tuple[int, bytes, str] | None]:
        """(principal, None), or (None, (status, JSON body, WWW-Authenticate)) to refuse with."""
        if self.mode == "none":
            return self.policy.local, None
        header = None
        for key, value in scope.get("headers") or ():
            if key == b"authorization":
                header = value.decode("latin-1")
                break
        if header is None or not header[:7].lower() == "bearer ":
            return None, _refusal(401, "invalid_request", "this hub needs a bearer token (Authorization: Bearer ...)",
                                  self.challenge())
        token = header[7:].strip()
        if self.oauth is not None and token.startswith(OAUTH_ACCESS_PREFIX):
            principal, why = self.oauth.verify(token)
        elif self.external is not None and not token.startswith(TOKEN_PREFIX):
            principal, why = await self.external.verify(token)
            if principal is not None and principal.name is not None and _disabled_here(self.store, principal.name):
                why, principal = f"the user '{principal.name}' is disabled", None
            elif principal is not None:
                principal = replace(principal, subject_token=token)
        else:
            principal, why = verify_token(self.store, self.policy, token)
            if principal is not None and principal.token_id is not None:
                self._note_use(principal.token_id)
        if principal is None:
            return None, _refusal(401, "invalid_token", why, self.challenge("invalid_token", why))
        return principal, None

    def _note_use(self, token_id: str) -> None:
        """`token list` shows when a token was last used: written at most once a minute per token."""
        now = time.monotonic()
        if now - self._touched.get(token_id, -120.0) >= 60.0:
            self._touched[token_id] = now
            self.store.touch_token(token_id)

    def user_for(self, principal: Principal) -> AuthenticatedUser:
        """The SDK's view of the principal: it binds 2025 sessions and sealed `requestState` to it."""
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken

        token = AccessToken(token=f"id:{principal.token_id}", client_id=f"junction:{principal.name}",
                            scopes=sorted(principal.scopes), resource=self.resource, subject=principal.name,
                            claims={"iss": "junction"})
        return AuthenticatedUser(token)

    @staticmethod
    def credentials(principal: Principal) -> AuthCredentials:
        from starlette.authentication import AuthCredentials

        return AuthCredentials(sorted(principal.scopes))


def _refusal(status: int, error: str, description: str, challenge: str) -> tuple[int, bytes, str]:
    body = json.dumps({"error": error, "error_description": description}).encode()
    return status, body, challenge
