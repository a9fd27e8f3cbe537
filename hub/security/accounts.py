"""Managing the hub's users, their API tokens and the secret store: what `junction user|token|secret` and the
built-in provider's `hub__users`, `hub__tokens` and `hub__secrets` tools (and so the console's pages) do, in one
place, with the caller's rights checked here.

Owns: the rules of that management, whoever asks:
- users and secrets are for administrators (`Principal.is_admin`: the local operator at the CLI, or a caller with
  `hub:admin`); a user manages only their own tokens, an administrator anyone's;
- a token is shown once, when it is made, and never listed, logged or returned again; a secret's value is never
  read back through here at all (names and dates only);
- a token made by a caller who is themselves acting through a token (an API token, an app's OAuth sign-in, a
  console session opened with a token) would outlive that token's revocation and could carry more than it: such a
  caller who is no administrator cannot make tokens, and an administrator's token makes them for its own user only
  within its own scopes;
- a caller gives no one more than it carries itself (`Principal.scopes`: all of an admin's role when signed in with
  a password or at the CLI, less through a cut-down token): a token made for another user carries at most the
  caller's scopes (within that user's role), and a role given with `add_user` or `set_role`, or a password set on a
  user, must grant nothing the caller lacks: else an admin's token cut down to `hub:admin` would mint the rest of
  its role through another admin, or through a user it adds with a password it knows;
- a named user (not the operator at the CLI, who can always add an admin again) cannot leave the hub without an
  enabled user whose role grants `hub:admin`: demoting, disabling or removing the last one is refused;
- disabling a user ends their login sessions and the hub's OAuth sign-ins now, and refuses their API tokens until
  they are enabled again (`Store.set_disabled`, `Store.user_role`).

Must not: reach the network (removing a user's links at upstreams is the caller's: `check_removal` first, then
revoke them, then `remove_user`), or return, log or put in an error message any password, token or secret value.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from hub.security.auth import (
    LOCAL_OWNER,
    Policy,
    Principal,
    create_token,
    hash_password,
    parse_expiry,
)

if TYPE_CHECKING:
    from hub.security.secrets import SecretStore
    from hub.store import Store

USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MAX_TOKEN_NAME = 200
MAX_SECRET_VALUE = 64 * 1024


class AccountError(Exception):
    """A change that was refused or cannot be made; the message says why and what to do (never a value)."""


class User(msgspec.Struct, frozen=True):
    name: str
    role: str
    created: float
    password: bool
    """Whether they have a password (for the hub's sign-in pages)."""
    last_sign_in: float | None
    """When they last signed in on one of the hub's pages (the console, `/connect/NAME`, an app's sign-in)."""
    disabled: float | None
    """Since when they are disabled (None: enabled)."""
    admin: bool
    """Whether their role grants `hub:admin`."""


class Token(msgspec.Struct, frozen=True):
    id: str
    user: str
    name: str
    scopes: list[str] | None
    """None: whatever the user's role grants at the time of each call."""
    created: float
    expires: float | None
    revoked: float | None
    last_used: float | None
    state: str
    """`active`, `revoked` or `expired`."""


class Secret(msgspec.Struct, frozen=True):
    name: str
    updated: float


class Accounts:
    """Users, tokens and secrets of one hub's store, managed for a caller (see the module docstring)."""

    def __init__(self, store: Store, policy: Policy, secrets: Callable[[], SecretStore] | None = None) -> None:
        self.store, self.policy = store, policy
        self._secrets = secrets

    # users --------------------------------------------------------------------------------------------------
    def users(self, caller: Principal) -> list[User]:
        _need_admin(caller, "list the users")
        return [User(name, role, created, bool(has_password), last, disabled, self._grants_admin(role))
                for name, role, created, has_password, last, disabled in self.store.user_rows()]

    def user(self, caller: Principal, name: str) -> User:
        _need_admin(caller, "see a user")
        for user in self.users(caller):
            if user.name == name:
                return user
        raise AccountError(f"no user named {name[:64]!r}")

    def add_user(self, caller: Principal, name: str, role: str, password: str | None = None) -> User:
        """Add a user; `password` (for the sign-in pages) is stored only as its scrypt hash (50-100 ms: call this
        off the event loop when there is one)."""
        _need_admin(caller, "add users")
        if not isinstance(name, str) or not USER_NAME.match(name) or name == LOCAL_OWNER:
            raise AccountError(f"user names use letters, digits and _ . @ - (1-64 characters), not {str(name)[:80]!r}")
        self._check_role(role)
        self._within_caller(caller, role, f"add {name} with the role {role}")
        try:
            password_hash = hash_password(password) if password else None
        except ValueError as exc:
            raise AccountError(str(exc)) from None
        try:
            self.store.add_user(name, role, password_hash)
        except KeyError as exc:
            raise AccountError(str(exc.args[0])) from None
        return self.user(caller, name)

    def set_password(self, caller: Principal, name: str, password: str) -> None:
        _need_admin(caller, "set passwords")
        role, _ = self._existing(name)
        self._within_caller(caller, role, f"set the password of {name}")
        try:
            self.store.set_password(name, hash_password(password))
        except ValueError as exc:
            raise AccountError(str(exc)) from None

    def set_role(self, caller: Principal, name: str, role: str) -> User:
        _need_admin(caller, "change roles")
        self._existing(name)
        self._check_role(role)
        self._within_caller(caller, role, f"give {name} the role {role}")
        if not self._grants_admin(role):
            self._keep_an_admin(caller, name, f"give {name} the role {role}")
        self.store.set_role(name, role)
        return self.user(caller, name)

    def set_disabled(self, caller: Principal, name: str, disabled: bool) -> User:
        _need_admin(caller, "disable or enable users")
        self._existing(name)
        if disabled:
            self._keep_an_admin(caller, name, f"disable {name}")
        self.store.set_disabled(name, disabled)
        return self.user(caller, name)

    def check_removal(self, caller: Principal, name: str) -> None:
        """Raises when `caller` may not remove `name` (before anything of theirs is revoked anywhere)."""
        _need_admin(caller, "remove users")
        self._existing(name)
        self._keep_an_admin(caller, name, f"remove {name}")

    def remove_user(self, caller: Principal, name: str) -> None:
        """Remove a user with their tokens, sign-ins and vault entries (revoke their links upstream first)."""
        self.check_removal(caller, name)
        self.store.remove_user(name)

    def _existing(self, name: object) -> tuple[str, float | None]:
        found = self.store.user(name) if isinstance(name, str) else None
        if found is None:
            raise AccountError(f"no user named {str(name)[:64]!r}")
        return found

    def _check_role(self, role: object) -> None:
        if not isinstance(role, str) or role not in self.policy.roles:
            raise AccountError(f"unknown role {str(role)[:64]!r} (known: {', '.join(sorted(self.policy.roles))})")

    def _within_caller(self, caller: Principal, role: str, what: str) -> None:
        """Refuses to give a role (or a password for one) that grants a scope the caller does not carry."""
        wider = sorted(self.policy.role_scopes(role) - caller.scopes)
        if wider:
            raise AccountError(f"cannot {what}: the role grants {', '.join(wider)}, which your token does not carry "
                               "(sign in with your password, or use the CLI)")

    def _grants_admin(self, role: str) -> bool:
        return "hub:admin" in self.policy.role_scopes(role)

    def _keep_an_admin(self, caller: Principal, name: str, what: str) -> None:
        if caller.name is None:
            return  # the operator at the CLI (or a hub without sign-in) can always add an admin again
        found = self.store.user(name)
        if found is None or found[1] is not None or not self._grants_admin(found[0]):
            return  # not an administrator now: no administrator is lost
        others = [n for n, role, _, _, _, disabled in self.store.user_rows()
                  if n != name and disabled is None and self._grants_admin(role)]
        if not others:
            raise AccountError(f"cannot {what}: the hub would have no enabled administrator left (make another "
                               "user an admin first)")

    # API tokens ---------------------------------------------------------------------------------------------
    def tokens(self, caller: Principal, user: str | None = None) -> list[Token]:
        """An administrator's: everyone's (or `user`'s); anyone else's: their own."""
        if not caller.is_admin:
            if user is not None and user != caller.name:
                raise AccountError("you may list only your own tokens (an administrator lists anyone's)")
            user = caller.name
            if user is None:
                return []
        return [_token(row) for row in self.store.tokens(user)]

    def create_token(self, caller: Principal, user: str | None, name: str, scopes: list[str] | None,
                     expires: str | float | None) -> tuple[Token, str]:
        """A new token for `user` (default: the caller): (its listing, the token itself, to be shown once).
        `expires`: `30d`, `12h`, `never`, an ISO date, or an epoch time; `scopes` None: the role's (a caller
        acting through a token: that token's)."""
        user = user if user is not None else caller.name
        if user is None:
            raise AccountError("say which user the token is for (the local user has no tokens)")
        if not isinstance(name, str) or len(name) > MAX_TOKEN_NAME:
            raise AccountError(f"a token's name is text of at most {MAX_TOKEN_NAME} characters")
        if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
            raise AccountError("scopes must be a list of scope names")
        if not caller.is_admin:
            if user != caller.name:
                raise AccountError("you may make tokens only for yourself (an administrator makes anyone's)")
            if caller.token_id is not None:
                raise AccountError("a token cannot make tokens: sign in with your password (a token it made would "
                                   "outlive it being revoked)")
        found = self.store.user(user)
        if found is None:
            raise AccountError(f"no user named {user[:64]!r} (add one with `junction user add`)")
        if found[1] is not None:
            raise AccountError(f"{user} is disabled: enable them first")
        # never more than the caller carries, for whomever it is (see the module docstring)
        # (a scope no one has is refused below as unknown)
        wider = sorted(set(scopes) & set(self.policy.scopes) - caller.scopes) if scopes is not None else []
        if wider:
            raise AccountError(f"your token does not carry the scope(s) {', '.join(wider)}")
        granted = self.policy.role_scopes(found[0])
        if scopes is None and caller.token_id is not None and user == caller.name:
            scopes = sorted(caller.scopes)  # an administrator's token, for its own user: what the token carries
        elif scopes is None and not granted <= caller.scopes:
            scopes = sorted(granted & caller.scopes)
            if not scopes:
                raise AccountError(f"your token carries none of the scopes of {user}'s role {found[0]}: there is "
                                   "nothing it may give them (sign in with your password, or use the CLI)")
        try:
            when = expires if isinstance(expires, int | float) or expires is None else parse_expiry(expires)
            if isinstance(when, int | float) and when <= time.time():
                raise ValueError("the expiry is in the past")
            token_id, value = create_token(self.store, self.policy, user, name, scopes, when)
        except (KeyError, ValueError) as exc:
            raise AccountError(str(exc.args[0])) from None
        row = self.store.token(token_id)
        assert row is not None
        return _token(row), value

    def revoke_token(self, caller: Principal, token_id: str) -> Token:
        row = self.store.token(token_id) if isinstance(token_id, str) else None
        if row is None or (not caller.is_admin and row[1] != caller.name):
            raise AccountError(f"no token of yours with id {str(token_id)[:40]!r}" if not caller.is_admin
                               else f"no token with id {str(token_id)[:40]!r}")
        if row[6] is not None:
            raise AccountError(f"token {token_id} was already revoked")
        self.store.revoke_token(token_id)
        found = self.store.token(token_id)
        assert found is not None
        return _token(found)

    # the secret store ---------------------------------------------------------------------------------------
    def secrets(self, caller: Principal) -> list[Secret]:
        _need_admin(caller, "list secrets")
        return [Secret(name, updated) for name, updated in self.store.secret_names()]

    def set_secret(self, caller: Principal, name: str, value: str) -> Secret:
        from hub.security.secrets import SecretError, SecretStore

        _need_admin(caller, "set secrets")
        try:
            SecretStore.check_name(name)
        except SecretError as exc:
            raise AccountError(str(exc)) from None
        if not isinstance(value, str) or not value:
            raise AccountError("a secret's value is text, and not empty")
        if len(value) > MAX_SECRET_VALUE:
            raise AccountError(f"a secret's value is at most {MAX_SECRET_VALUE // 1024} KiB")
        try:
            self._secret_store().set(name, value)
        except SecretError as exc:
            raise AccountError(str(exc)) from None
        return next(s for s in self.secrets(caller) if s.name == name)

    def delete_secret(self, caller: Principal, name: str) -> None:
        _need_admin(caller, "delete secrets")
        if not isinstance(name, str) or not self.store.delete_secret(name):
            raise AccountError(f"no secret named {str(name)[:100]!r}")

    def _secret_store(self) -> SecretStore:
        if self._secrets is None:
            raise AccountError("this hub has no secret store")
        return self._secrets()


def _need_admin(caller: Principal, what: str) -> None:
    if not caller.is_admin:
        raise AccountError(f"only an administrator (hub:admin) may {what}")


def _token(row: tuple[object, ...]) -> Token:
    token_id, user, name, scopes, created, expires, revoked, last_used = row
    now = time.time()
    state = "revoked" if revoked else "expired" if expires is not None and expires <= now else "active"  # type: ignore[operator]
    return Token(str(token_id), str(user), str(name), json.loads(scopes) if scopes else None,  # type: ignore[arg-type]
                 created, expires, revoked, last_used, state)  # type: ignore[arg-type]
