"""Identities that would stand for someone else: a user of an external provider named like the local user owns
nothing of the local user's (the name is refused)."""

from __future__ import annotations

from hub.config import AuthConfig, ExternalAuthConfig
from hub.security.auth import LOCAL_OWNER, ExternalVerifier, Policy


def test_an_external_user_named_like_the_local_user_is_refused() -> None:
    verifier = ExternalVerifier(ExternalAuthConfig(issuer="https://login.example.test"), Policy(AuthConfig(), []),
                                "http://127.0.0.1:8765/mcp")
    principal, why = verifier._principal({"sub": LOCAL_OWNER})
    assert principal is None and f"the token's user name {LOCAL_OWNER!r} is reserved" in why
    someone, _ = verifier._principal({"sub": "alice"})
    assert someone is not None and someone.owner == "alice"
