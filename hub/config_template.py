"""The config file `junction init` writes: every key there is, commented out, with its default and what it does.

Owns: walking the config's types (the hub's own tables, each installed provider's `config_type`, the `mcp`
connector type's settings) and writing them as TOML comments. The descriptions are the fields' docstrings, as in
the source. Must not: hold a second copy of any default (they come from the types themselves).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from importlib.metadata import entry_points
from typing import Any

import msgspec
import msgspec.inspect as mi

HEAD = """\
# Junction hub configuration, as `junction init` writes it: every key there is, commented out, with its
# default. A file that says nothing means the same as this one; uncomment what you change (and its [table]).
# Schema: schemas/config.schema.json. Environment overrides: JUNCTION__SERVER__PORT=9000, and "${NAME}" in any
# string reads the environment variable NAME ("${secret:NAME}" the secret store: keep secrets out of this file).
"""
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def config_template() -> str:
    from hub.config import Config, ConnectorSwitches, ProviderConfig

    lines = [HEAD]
    _table(lines, "", Config, skip={"providers", "connectors", "source", "raw_providers", "raw_connectors", "sources", "written"})
    lines += ["", "# Providers: the hub's own tools and installed plugins (entry points `junction.providers`)."]
    for ep in sorted(entry_points(group="junction.providers"), key=lambda e: e.name):
        own = getattr(ep.load(), "config_type", None)
        _table(lines, f"providers.{ep.name}", ProviderConfig, extra=own)
    lines += ["", "# Connectors: MCP servers linked to the hub, one table each (`junction connector add` writes them)."]
    for ep in entry_points(group="junction.connectors"):
        if ep.name == "mcp":
            _table(lines, "connectors.NAME", ConnectorSwitches, extra=getattr(ep.load(), "config_type", None))
    return "\n".join(lines).rstrip() + "\n"


def _table(lines: list[str], header: str, cls: type, extra: type | None = None,
           skip: frozenset[str] | set[str] = frozenset()) -> None:
    """`[header]` (commented) with every scalar key of `cls` (and `extra`), then its nested tables."""
    nested: list[tuple[str, type]] = []
    body: list[str] = []
    for kind in (cls, extra):
        if kind is None:
            continue
        docs = _field_docs(kind)
        info = mi.type_info(kind)
        assert isinstance(info, mi.StructType)
        for f in info.fields:
            if f.name in skip:
                continue
            inner = _unwrap(f.type)
            if isinstance(inner, mi.StructType):
                nested.append((_join(header, f.encode_name), inner.cls))
                continue
            if isinstance(inner, mi.DictType) and isinstance(_unwrap(inner.value_type), mi.StructType):
                value = _unwrap(inner.value_type)
                assert isinstance(value, mi.StructType)
                nested.append((_join(header, f"{f.encode_name}.NAME"), value.cls))
                continue
            for text in textwrap.wrap(docs.get(f.name, ""), 110):
                body.append(f"#   {text}")
            body.append(f"# {_key(f.encode_name)} = {_value(f)}")
    if header:
        lines += ["", f"# [{header}]"]
    lines += body
    for sub_header, sub in nested:
        _table(lines, sub_header, sub)


def _unwrap(t: mi.Type) -> mi.Type:
    """The type itself, for `X | None` and `Annotated[X, ...]` (what the file can say)."""
    if isinstance(t, mi.UnionType):
        rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(rest) == 1:
            return _unwrap(rest[0])
    return t


def _value(f: mi.Field) -> str:
    if f.default is not mi.NODEFAULT:
        default = f.default
    elif f.default_factory is not mi.NODEFAULT:
        default = f.default_factory()
    else:
        return "(required)"
    if default is None:
        return "(not set)"
    return _literal(msgspec.to_builtins(default))


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_literal(v)}" for k, v in value.items()) + "}" if value else "{}"
    return json.dumps(str(value))


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _join(header: str, key: str) -> str:
    return f"{header}.{key}" if header else key


def _field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string right after it in the class body), on one line."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs
