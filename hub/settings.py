"""The effective config as an administrator may see it (`hub__settings`, the console's Settings page): every key
with its value, its default, its description (the field's docstring, as `junction init` writes it) and where its
value came from (`Config.sources`: the default, the config file, an environment variable, a command-line flag).

Must not: show a secret. A value written with a reference (`${secret:NAME}`, `${NAME}`) is shown as written,
never resolved; a key that holds a credential (a password, a token, a client secret, an API key, headers, a
program's environment) is masked when it is given literally.
"""

from __future__ import annotations

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


def shown(config: Config, path: str, value: Any) -> Any:
    """What may be shown of `value` at `path`: as written when it had a reference, masked when it is a credential
    given literally."""
    if path in config.written:
        return config.written[path]
    if holds_credential(path) and value not in ("", None, {}, []):
        if isinstance(value, dict):
            return {key: shown(config, f"{path}.{key}", inner) for key, inner in value.items()}
        if isinstance(value, (str, list)):
            return MASK
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
