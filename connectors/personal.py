"""A connector's values that are each user's own (`${user_secret:NAME}` in its headers or environment).

Owns: which user a caller is for such a connector, a user's values put into the headers or environment of their own
upstream session (from the vault, `hub.security.vault`), and what a user who has not given a value is told.
Must not: decide which session serves whom (connectors/routing.py does, by the user named here), or hand a value to
anything but the upstream session opened for that very user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import mcp_types as types
from mcp.shared.exceptions import MCPError

from hub.security.auth import LOCAL_OWNER
from hub.security.vault import USER_SECRET_REF

if TYPE_CHECKING:
    from connectors.settings import UpstreamSettings
    from hub.provider import ProviderHost


class NotLinked(MCPError):
    """The caller has not given a value this connector needs of them; the message says which and how."""

    missing: tuple[str, ...] = ()
    """The names of the values (`oauth`: the link itself)."""


def user_of(caller_key: str | None) -> str:
    """The user a caller is: its principal's name; without authentication, the local user."""
    if caller_key is not None and caller_key.startswith("principal:"):
        return caller_key.removeprefix("principal:")
    return LOCAL_OWNER


def missing_values(host: ProviderHost, settings: UpstreamSettings, user: str) -> list[str]:
    """The names of this user's own values the connector needs and the vault does not hold (`oauth`: their link)."""
    vault = host.vault()
    missing = [name for name in settings.user_values if vault.get(user, host.name, name) is None]
    if settings.auth == "oauth" and not any(entry.name == "oauth" for entry in vault.entries(user, host.name)):
        missing.append("oauth")
    return missing


def catalog_user(host: ProviderHost, settings: UpstreamSettings) -> str | None:
    """Whose values the shared session of a per-user connector reads the catalog with, when `catalog_as` does not
    say: the first user (by name) who gave every value the connector needs, and linked it if it is `oauth`."""
    needed = set(settings.user_values) | ({"oauth"} if settings.auth == "oauth" else set())
    given: dict[str, set[str]] = {}
    for entry in host.vault().entries(connector=host.name):
        given.setdefault(entry.user, set()).add(entry.name)
    return next((user for user in sorted(given) if needed <= given[user]), None)


def not_linked(host: ProviderHost, user: str, missing: list[str], more_scope: str | None = None) -> NotLinked:
    who = "" if user == LOCAL_OWNER else f" --user {user}"
    if more_scope:
        error = NotLinked(code=types.INVALID_REQUEST, message=(
            f"connector '{host.name}' needs more access to your account there than your link grants (it asks for "
            f"the scope '{more_scope[:200]}'): open {host.web_url(connect_path(host))} to grant it (or run "
            f"`junction connector link {host.name}{who}`), then call again"))
    elif "oauth" in missing:
        error = NotLinked(code=types.INVALID_REQUEST, message=(
            f"connector '{host.name}' is not linked to your account there yet: open {host.web_url(connect_path(host))} "
            f"to link it (or run `junction connector link {host.name}{who}`), then call again"))
    else:
        error = NotLinked(code=types.INVALID_REQUEST, message=(
            f"connector '{host.name}' needs your own {', '.join(missing)} (each user gives theirs): "
            f"`junction connector secret set {host.name} {missing[0]}{who}` stores it"))
    error.missing = tuple(missing)
    return error


def connect_path(host: ProviderHost, elicitation: str | None = None) -> str:
    """The path of the hub's page where a user links their account for this connector."""
    path = "/connect/" + quote(host.name, safe="")
    return path + ("?" + urlencode({"elicitation": elicitation}) if elicitation else "")


def refused_values(host: ProviderHost, settings: UpstreamSettings, user: str, status: int) -> NotLinked:
    names = settings.user_values
    who = "" if user == LOCAL_OWNER else f" --user {user}"
    if settings.auth == "oauth":
        return NotLinked(code=types.INVALID_REQUEST, message=(
            f"connector '{host.name}' refused your linked account (the upstream answered HTTP {status}): link it "
            f"again at {host.web_url(connect_path(host))} (or `junction connector link {host.name}{who}`)"))
    if settings.auth == "exchange" or not names:  # what was refused is the token the hub got for them
        return NotLinked(code=types.INVALID_REQUEST, message=(
            f"connector '{host.name}' refused the token the hub presented for you (the upstream answered HTTP "
            f"{status}); the hub's log says more"))
    return NotLinked(code=types.INVALID_REQUEST, message=(
        f"connector '{host.name}' refused your own {', '.join(names)} (the upstream answered HTTP {status}): "
        f"`junction connector secret set {host.name} {names[0]}{who}` replaces it"))


def personal_values(host: ProviderHost, values: Mapping[str, str], user: str | None) -> dict[str, str]:
    """`values` with `${user_secret:NAME}` replaced by `user`'s own; for no user, the entries that hold one are left
    out. A value the user has not given raises `NotLinked`."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if "${user_secret:" not in value:
            out[key] = value
        elif user is not None:
            out[key] = _filled(host, value, user)
    return out


def _filled(host: ProviderHost, value: str, user: str) -> str:
    vault = host.vault()
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        found = vault.get(user, host.name, match.group(1))
        if found is None:
            missing.append(match.group(1))
            return ""
        return found

    filled = USER_SECRET_REF.sub(fill, value)
    if missing:
        raise not_linked(host, user, missing)
    return filled


def not_linked_in(exc: BaseException | None) -> NotLinked | None:
    """The `NotLinked` that made a session fail, wherever the transport wrapped it."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        found = todo.pop()
        if found is None or id(found) in seen:
            continue
        seen.add(id(found))
        if isinstance(found, NotLinked):
            return found
        if isinstance(found, BaseExceptionGroup):
            todo.extend(found.exceptions)
        todo.extend((found.__cause__, found.__context__))
    return None
