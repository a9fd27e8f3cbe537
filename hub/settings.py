"""The effective config as an administrator may see it (`hub__settings`, the console's Settings page): every key
with its value, its default, its description (the field's docstring, as `junction init` writes it) and where its
value came from (`Config.sources`: the default, the config file, an environment variable, a command-line flag).

Must not: show a secret. A value written with a reference (`${secret:NAME}`, `${NAME}`) is shown as written,
never resolved; a key that holds a credential (a password, a token, a client secret, an API key, headers, a
program's environment) is masked when it is given literally. A credential inside any other value is masked too,
whatever its key is called: what follows a flag named like one in a program's `args` (`--token X`,
`--api-key=X`), a header on a command line (`Authorization: Bearer X`), a URL's user name and password, and a
query parameter named like one (`?access_token=X`, `&key=X`). A reference stays as written in all of these.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import msgspec.inspect as mi

from hub.config import Config, ConnectorSwitches, ProviderConfig
from hub.config_template import _field_docs, _unwrap

MASK = "(set; hidden)"
_CREDENTIAL_NAMES = ("password", "token", "secret", "api_key", "apikey", "credential", "private_key")
_CREDENTIAL_TABLES = ("headers", "env")
_LOADER_ONLY = {"source", "raw_providers", "raw_connectors", "sources", "written"}


def holds_credential(path: str) -> bool:
    """Whether the key at dotted `path` holds a credential: its name says so (`client_secret`, `api_key`; not
    `access_token_ttl`), or it sits in a table of headers or a program's environment."""
    parts = path.lower().split(".")
    last = parts[-1]
    if any(part in _CREDENTIAL_TABLES for part in parts[:-1]) or last in _CREDENTIAL_TABLES:
        return True
    return any(last == name or last.endswith("_" + name) for name in _CREDENTIAL_NAMES)


_WORD = r"[\w.-]*(?:token|key|secret|passw(?:or)?d|pwd|credential|auth|signature|sig)[\w.-]*"
"""A name that says its value is a credential (`--api-key`, `access_token`, `password`; also `keyword`: masking a
harmless value is the cheaper mistake)."""
CREDENTIAL_FLAG = re.compile(rf"^--?{_WORD}$", re.I)
"""A command-line flag whose next argument is a credential (`--token`, `--api-key`)."""
_REFERENCE = re.compile(r"^\$\{[^}]+\}$")
_SCHEME = re.compile(r"^(?:bearer|basic)\s+", re.I)
_IN_TEXT = (
    # a URL's user name and password: https://user:pass@host
    re.compile(r"(?P<pre>\b[a-z][a-z0-9+.-]*://)(?P<value>[^/?#@\s]+)(?=@)", re.I),
    # NAME=VALUE after a flag's dashes, a query's ? or &, or a space: --api-key=X, ?access_token=X, API_KEY=X
    re.compile(rf"(?P<pre>(?:^|[\s?&;])(?:--?)?{_WORD}=)(?P<value>[^\s&#;]+)", re.I),
    # a flag and its value in one string: "--token X"
    re.compile(rf"(?P<pre>(?:^|\s)--?{_WORD}\s+)(?P<value>[^\s-][^\s]*)", re.I),
    # a header as a command line passes it: "Authorization: Bearer X", "X-Api-Key: X" (a space after the colon,
    # and no dot in the name: "auth.example.com:443" is a host and its port)
    re.compile(r"(?P<pre>(?:^|\s)(?:cookie|[\w-]*(?:token|key|secret|passw(?:or)?d|auth)[\w-]*)\s*:\s+)"
               r"(?P<value>\S.*)$", re.I),
    # a bearer or basic credential anywhere else
    re.compile(r"(?P<pre>\b(?:bearer|basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]{6,})", re.I),
)


def masked_text(text: str) -> str:
    """`text` with every credential inside it masked (references kept as written)."""
    def hide(match: re.Match[str]) -> str:
        value = match.group("value")
        kept = _REFERENCE.match(_SCHEME.sub("", value)) or value.startswith(MASK)
        return match.group("pre") + (value if kept else MASK)

    for pattern in _IN_TEXT:
        text = pattern.sub(hide, text)
    return text


def shown(config: Config, path: str, value: Any) -> Any:
    """What may be shown of `value` at `path`: as written when it had a reference, masked when it is a credential
    given literally, and any credential inside it masked."""
    if path in config.written:
        return masked_text(config.written[path])
    if holds_credential(path) and value not in ("", None, {}, []):
        if isinstance(value, dict):
            return {key: shown(config, f"{path}.{key}", inner) for key, inner in value.items()}
        if isinstance(value, (str, list)):
            return MASK
    if isinstance(value, str):
        return masked_text(value)
    if isinstance(value, dict):
        return {key: shown(config, f"{path}.{key}", inner) for key, inner in value.items()}
    if isinstance(value, list):
        items = []
        for number, inner in enumerate(value):
            after_flag = number > 0 and isinstance(value[number - 1], str) and bool(CREDENTIAL_FLAG.match(value[number - 1]))
            item = shown(config, f"{path}[{number}]", inner)
            if after_flag and isinstance(item, str) and not _REFERENCE.match(item) and not item.startswith("-"):
                item = MASK  # the value of `--token` in a program's arguments
            items.append(item)
        return items
    return value


def effective_settings(config: Config) -> list[dict[str, Any]]:
    """One row per key: section, key (dotted), value, default, description, source."""
    rows: list[dict[str, Any]] = []
    _struct_rows(rows, config, Config, config, "")
    for section, tables, switches in (("providers", config.raw_providers, ProviderConfig),
                                      ("connectors", config.raw_connectors, ConnectorSwitches)):
        docs = _field_docs(switches)
        for name, table in sorted(tables.items()):
            for key, value in sorted(_flat(table).items()):
                path = f"{section}.{name}.{key}"
                rows.append({"section": f"{section}.{name}", "key": path, "value": shown(config, path, value),
                             "default": None, "description": docs.get(key, ""),
                             "source": config.sources.get(path, "default")})
    return rows


def _struct_rows(rows: list[dict[str, Any]], config: Config, cls: type, value: Any, path: str) -> None:
    docs = _field_docs(cls)
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    for field in info.fields:
        if field.name in _LOADER_ONLY or (not path and field.name in ("providers", "connectors")):
            continue
        here = f"{path}.{field.encode_name}" if path else field.encode_name
        current = getattr(value, field.name)
        inner = _unwrap(field.type)
        if isinstance(inner, mi.StructType):
            _struct_rows(rows, config, inner.cls, current, here)
            continue
        if field.default is not mi.NODEFAULT:
            default = field.default
        elif field.default_factory is not mi.NODEFAULT:
            default = field.default_factory()
        else:
            default = None
        plain = msgspec.to_builtins(current)
        source = config.sources.get(here) or next(
            (v for k, v in config.sources.items() if k.startswith(here + ".")), "default")
        rows.append({"section": path or "(top)", "key": here, "value": shown(config, here, plain),
                     "default": shown(config, here, msgspec.to_builtins(default)),
                     "description": docs.get(field.name, ""), "source": source})


def _flat(table: dict[str, Any], path: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in table.items():
        here = f"{path}.{key}" if path else key
        if isinstance(value, dict) and value and key not in _CREDENTIAL_TABLES:
            found.update(_flat(value, here))
        else:
            found[here] = value
    return found
