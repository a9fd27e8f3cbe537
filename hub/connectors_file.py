"""The `[connectors.NAME]` tables of the config file, as people add and remove them: `junction connector add|remove`
and the admin tools `hub__add_connector` / `hub__remove_connector` (the console's Connectors page).

Owns: turning what someone asked for (a server of the catalog, a URL, a command) into a connector's table
(`table_for`), and writing or removing one in the file, keeping its comments and layout, only after the result
validated as `junction serve` would read it, replacing the file atomically. Must not: start or stop connectors
(`Hub.reload_connectors` brings the running hub in line with the file) or reach the servers.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from hub.config import Config, ConfigError, connector_settings, load_config

_NAME_REF = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_CREDENTIAL_NAME = re.compile(
    r"auth|cookie|token|secret|pass|pwd|private|credential|signature|api[_-]?key|[_-]key$|^key$|[_-]pat$|^pat$|dsn",
    re.I)
"""Header and environment names whose values are credentials: they are written as references, never in clear."""
_ANY_REFERENCE = re.compile(r"\$\{(?:(secret|user_secret):)?([^}]*)\}")
_SCHEME_ONLY = re.compile(r"\s*(?:(?:bearer|basic|token)\s*)?", re.I)
INTERNAL_SECRETS = ("oauth.", "automation.")
"""Secrets the hub keeps for itself (OAuth clients' secrets, jobs' webhook secrets): never a connector's to send."""


class RequestError(ValueError):
    """What was asked cannot become a connector (the message says what to change, in the asker's own terms)."""


@dataclass
class Wanted:
    """What someone asked for: exactly one of a catalog server (`entry`, or neither `url` nor `program`), a remote
    server (`url`), a stdio program (`program`: the command and its arguments)."""

    name: str
    url: str = ""
    program: list[str] = field(default_factory=list)
    entry: str = ""
    """The catalog's server (default: `name`, when neither `url` nor `program` is given)."""
    oauth: bool = False
    client_id: str = ""
    client_secret: str = ""
    """The name of the app's secret in the secret store."""
    scopes: list[str] = field(default_factory=list)
    with_key: str = ""
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    prefix: str | None = None
    protocol: str = ""


CLI_SPELLING = {"url": "--url", "program": "`-- COMMAND [ARGS...]`", "entry": "--from", "oauth": "--oauth",
                "client_id": "--client-id", "client_secret": "--client-secret", "scopes": "--scope",
                "with_key": "--with-key", "env": "--env", "headers": "--header", "cwd": "--cwd"}
"""How `junction connector add` names each field in what it says."""


def table_for(wanted: Wanted, catalog: Mapping[str, Any], web_url: Callable[[str], str] | None,
              spell: Mapping[str, str], *, allow_env: bool = True) -> tuple[dict[str, Any], str, str]:
    """The `[connectors.NAME]` table for `wanted`, what it reaches (a URL or a command line) and, for a catalog
    server, how its users link their accounts (else ""). `catalog`: the catalog's entries by name; `web_url`: the hub's public address of a path, if known;
    `spell`: how the asker names each field (refusals use it); `allow_env`: whether values may name the hub's
    environment variables (`${NAME}`: yes from the command line, whose user has the environment anyway; no through
    the hub's tools, where they would send the hub's environment wherever the caller says)."""
    def s(key: str) -> str:
        return spell.get(key, key)

    w = wanted
    if w.program and w.url:
        raise RequestError(f"give either {s('program')} (a stdio server) or {s('url')} (a remote server), not both")
    oauth_only = [key for key in ("client_id", "client_secret", "scopes") if getattr(w, key)]
    if (w.program or (w.url and not w.oauth and not w.entry)) and oauth_only:
        raise RequestError(f"{s(oauth_only[0])} is for a server people sign in to: add {s('oauth')} (with "
                           f"{s('url')}), or name a catalog server")
    from_catalog = bool(w.entry) or not (w.program or w.url)
    if w.program and (w.entry or w.with_key):
        raise RequestError(f"{s('entry') if w.entry else s('with_key')} names a catalog server: leave out "
                           f"{s('program')}")
    if w.with_key and not from_catalog:
        raise RequestError(f"{s('with_key')} names a catalog server's key: give {s('entry')} too, or "
                           f"{s('headers')} for another server")
    if w.oauth and (from_catalog or not w.url):
        raise RequestError(f"{s('oauth')} goes with {s('url')} (a catalog server is already set up for signing in)")
    if w.with_key and oauth_only:
        raise RequestError(f"{s(oauth_only[0])} is for signing in, and {s('with_key')} means each user gives a key "
                           "instead: choose one")
    if w.client_secret and not w.client_id:
        raise RequestError(f"{s('client_secret')} is the secret of the app {s('client_id')} names: give "
                           f"{s('client_id')} too")
    if not w.program and (w.env or w.cwd):
        raise RequestError(f"{s('env') if w.env else s('cwd')} is for a stdio server ({s('program')})")
    if w.program and w.headers:
        raise RequestError(f"{s('headers')} is for a remote server ({s('url')})")
    _refuse_clear_credentials(w, s, allow_env)
    for key in ("client_secret", "with_key"):
        value = getattr(w, key)
        if value and not _NAME_REF.fullmatch(value):
            raise RequestError(f"{s(key)} takes a name (letters, digits, _ . -, 1-100 characters), not {value!r}")
    table: dict[str, Any] = {}
    hint = ""
    target = w.url or " ".join(w.program)
    if from_catalog:
        table, hint = _from_catalog(w, catalog, web_url, s)
        if w.url:  # the same service elsewhere (an enterprise or sandbox address)
            table["url"] = w.url
        target = table["url"]
        if w.headers:
            table["headers"] = {**table.get("headers", {}), **w.headers}
    elif w.program:
        table["command"] = w.program[0]
        table["args"] = list(w.program[1:])
        if w.cwd:
            table["cwd"] = w.cwd
        if w.env:
            table["env"] = dict(w.env)
    else:
        table["url"] = w.url
        if w.headers:
            table["headers"] = dict(w.headers)
        if w.oauth:
            table["auth"] = "oauth"
            if w.client_id:
                table["oauth_client_id"] = w.client_id
            if w.client_secret:
                table["oauth_client_secret"] = "${secret:" + w.client_secret + "}"
            if w.scopes:
                table["oauth_scopes"] = list(w.scopes)
    if w.prefix is not None:
        table["prefix"] = w.prefix
    if w.protocol:
        table["protocol"] = w.protocol
    return table, target, hint


_CLEAR = ("a credential written in clear would be kept in the config file: store it as a secret and write "
          "\"${secret:NAME}\" (the same value for everyone), or write \"${user_secret:KEY}\" for each user's own value")


def _refuse_clear_credentials(w: Wanted, s: Callable[[str], str], allow_env: bool) -> None:
    from hub.settings import CREDENTIAL_FLAG, masked_text

    def references(where: str, value: str) -> str:
        """`value` with its references taken out, once each is one that may be written here."""
        for match in _ANY_REFERENCE.finditer(value):
            kind, name = match.group(1), match.group(2)
            if kind is None and not allow_env:
                raise RequestError(f"{where}: \"${{{name}}}\" names an environment variable of the hub; through the "
                                   "hub's tools write \"${secret:NAME}\" instead (environment variables are for "
                                   "the config file an operator edits)")
            if kind == "secret" and name.startswith(INTERNAL_SECRETS):
                raise RequestError(f"{where}: the secret {name!r} is one the hub keeps for itself, never sent to a "
                                   "connector")
        return _ANY_REFERENCE.sub("", value)

    for key, values in (("headers", w.headers), ("env", w.env)):
        for item, value in values.items():
            rest = references(f"{s(key)} {item}", value)
            if _CREDENTIAL_NAME.search(item) and not _SCHEME_ONLY.fullmatch(rest):
                raise RequestError(f"{s(key)} {item}: {_CLEAR}")
            if masked_text(rest) != rest:
                raise RequestError(f"{s(key)} {item}: its value holds a credential; {_CLEAR}")
    for key, value in (("url", w.url), ("cwd", w.cwd)):
        if value and masked_text(references(s(key), value)) != references(s(key), value):
            raise RequestError(f"{s(key)}: it holds a credential (a password in the address, or a key in its query); "
                               f"{_CLEAR}")
    for number, value in enumerate(w.program):
        rest = references(s("program"), value)
        after_flag = number > 0 and bool(CREDENTIAL_FLAG.match(w.program[number - 1]))
        if masked_text(rest) != rest or (after_flag and rest.strip() and not rest.startswith("-")):
            raise RequestError(f"{s('program')}: argument {number} holds a credential; {_CLEAR}")


def _from_catalog(w: Wanted, catalog: Mapping[str, Any], web_url: Callable[[str], str] | None,
                  s: Callable[[str], str]) -> tuple[dict[str, Any], str]:
    wanted = w.entry or w.name
    entry = catalog.get(wanted)
    if entry is None:
        raise RequestError(f"'{wanted}' is not in the catalog (known: {', '.join(catalog)}); give {s('url')} or "
                           f"{s('program')} for another server")
    try:
        table = entry.settings(w.name, client_id=w.client_id, client_secret=w.client_secret, key=w.with_key,
                               scopes=w.scopes, entry=wanted)
    except ValueError as exc:
        callback = f" (the hub's /connect/callback is {web_url('/connect/callback')})" if web_url else ""
        raise RequestError(f"{exc}{callback}") from None
    if w.with_key:
        return table, (f"Each user gives their own {entry.title} key: `junction connector secret set {w.name} "
                       f"{w.with_key} --user USER`.")
    page = web_url(f"/connect/{w.name}") if web_url else f"/connect/{w.name}"
    return table, (f"Each user links their own {entry.title} account: at {page}, when they first call one of its "
                   f"tools, or with `junction connector link {w.name} --user USER`.")


# the file ---------------------------------------------------------------------------------------------------
def write_connector(path: Path, name: str, table: Mapping[str, Any], *, replace: bool = False) -> None:
    """Put `[connectors.NAME]` = `table` in the config file at `path` (made if missing). Raises `RequestError` if
    a connector has that name and not `replace`; `ConfigError` (naming the file) if the result would not load."""
    doc = _read(path)
    connectors = doc.setdefault("connectors", tomlkit.table(is_super_table=True))
    if name in connectors and not replace:
        raise RequestError(f"connector '{name}' already exists in {path}")
    item = tomlkit.table()
    for key, value in table.items():
        item[key] = value
    connectors[name] = item
    _write_checked(path, doc, name)


def remove_connector(path: Path, name: str) -> None:
    """Take `[connectors.NAME]` out of the config file. Raises `RequestError` if it has none of that name."""
    doc = _read(path)
    connectors = doc.get("connectors")
    if connectors is None or name not in connectors:
        raise RequestError(f"there is no connector '{name}' in {path}")
    del connectors[name]
    if not connectors:
        del doc["connectors"]
    _write_checked(path, doc, None)


def _read(path: Path) -> tomlkit.TOMLDocument:
    if not path.exists():
        return tomlkit.document()
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except Exception as exc:
        raise ConfigError(str(path), "", f"not valid TOML: {exc}") from None


def _write_checked(path: Path, doc: tomlkit.TOMLDocument, name: str | None) -> None:
    """Validate the edited config as `serve` would, then replace the file atomically (keeping its mode)."""
    text = tomlkit.dumps(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".junction-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        config = load_config(Path(tmp), require_env=False)
        if name is not None:
            check_connector(config, name)
        os.replace(tmp, path)
    except ConfigError as exc:
        raise ConfigError(str(path), exc.path, exc.reason) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_connector(config: Config, name: str) -> None:
    """Raise `ConfigError` unless connector `name`'s settings are what its type takes."""
    from hub.host import load_connector_class

    cls = load_connector_class(name, config.connectors[name].type)
    connector_settings(config, name, getattr(cls, "config_type", None))
