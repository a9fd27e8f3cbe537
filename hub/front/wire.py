"""The one parser of what clients send: bytes to a JSON-RPC message, strictly, once.

Every message a client sends the hub (an HTTP POST body in either era, a line on stdio) is
decoded here and nowhere else. What this parser refuses gets a JSON-RPC error that says what was
wrong and where (-32700 for bytes that are not strict JSON, -32600 for JSON that is not one
JSON-RPC message), and reaches nothing else. What it accepts is the message the hub authorizes
and runs; the SDK's transports, which parse again with more lenient parsers (Python's `json`
takes `NaN`, a byte-order mark and UTF-16; pydantic takes `Infinity`), only ever see
`canonical(message)`, bytes this module wrote, so no two parts of the hub can read one request
two ways.

Strict means RFC 8259 as I-JSON (RFC 7493) narrows it: UTF-8 without a byte-order mark, no
`NaN`/`Infinity`, numbers that fit a double, no lone surrogates, nothing after the value, and at
most `MAX_DEPTH` levels of nesting. Duplicate member names keep the last value (the canonical
bytes then hold that value only).
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
import msgspec

MAX_DEPTH = 64
"""Arrays and objects nested deeper than this are refused (-32600), before anything else looks at them."""

PARSE_ERROR = types.PARSE_ERROR
INVALID_REQUEST = types.INVALID_REQUEST

_decode = msgspec.json.Decoder().decode
canonical = msgspec.json.Encoder().encode
"""The bytes the rest of the hub (the SDK's transports) is given for an accepted message."""


class WireRefusal(Exception):
    """A message the hub will not read: `error` is the JSON-RPC error object to answer with."""

    def __init__(self, code: int, message: str, request_id: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    @property
    def response(self) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": self.request_id, "error": {"code": self.code, "message": self.message}}


def decode(data: bytes) -> Any:
    """Strict JSON to Python values, or `WireRefusal` (-32700 / -32600 for nesting) saying where it fails."""
    if data[:3] == b"\xef\xbb\xbf":
        raise WireRefusal(PARSE_ERROR, "Parse error: the body starts with a byte-order mark (send UTF-8 JSON "
                                       "without one)")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) > 1 and (data[0] == 0 or data[1] == 0)):
        raise WireRefusal(PARSE_ERROR, "Parse error: the body is not UTF-8 (UTF-16 or UTF-32?); send UTF-8 JSON")
    try:
        value = _decode(data)
    except msgspec.DecodeError as exc:
        raise WireRefusal(PARSE_ERROR, f"Parse error: {_reason(exc, data)}") from None
    except RecursionError:
        raise _too_deep() from None
    # Cheap first: a body with fewer brackets than the limit cannot nest deeper than it.
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _depth(value, MAX_DEPTH + 1) > MAX_DEPTH:
        raise _too_deep()
    return value


def parse_message(data: bytes) -> dict[str, Any]:
    """One JSON-RPC 2.0 message (request, notification or response) as a dict, or `WireRefusal`."""
    return check_message(decode(data))


def check_message(message: Any) -> dict[str, Any]:
    """`message` if it is one JSON-RPC 2.0 message object, else `WireRefusal` (-32600) naming the member."""
    if isinstance(message, list):
        raise _invalid(None, "batch requests are not supported; send one JSON-RPC message per request")
    if not isinstance(message, dict):
        raise _invalid(None, f"the body must be a JSON-RPC message object, got a JSON {_json_type(message)}")
    raw_id = message.get("id")
    valid_id = raw_id if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None
    if message.get("jsonrpc") != "2.0":
        raise _invalid(valid_id, 'member "jsonrpc" must be "2.0"')
    if "id" in message and (raw_id is None or valid_id is None):
        raise _invalid(None, 'member "id" must be a string or an integer')
    if "method" not in message:
        if "result" in message or "error" in message:
            if "id" not in message:
                raise _invalid(None, 'a response needs the "id" of the request it answers')
            return message  # a response to one of the hub's own requests
        raise _invalid(valid_id, 'member "method" is missing')
    if not isinstance(message["method"], str):
        raise _invalid(valid_id, 'member "method" must be a string')
    if "params" in message and not isinstance(message["params"], dict):
        raise _invalid(valid_id, 'member "params" must be an object')
    return message


def _invalid(request_id: str | int | None, reason: str) -> WireRefusal:
    return WireRefusal(INVALID_REQUEST, f"Invalid Request: {reason}", request_id)


def _too_deep() -> WireRefusal:
    return WireRefusal(INVALID_REQUEST, f"Invalid Request: arrays and objects are nested more than {MAX_DEPTH} "
                                        "levels deep (the hub's limit)")


def _depth(value: Any, stop: int) -> int:
    """How deep `value` nests (counting stops at `stop`), without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest >= stop:
            return deepest
        pending.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _reason(exc: msgspec.DecodeError, data: bytes) -> str:
    text = str(exc)
    if "truncated" in text and b"\\u" in data and _lone_surrogate(data):
        return "a \\u escape names half of a UTF-16 surrogate pair without the other half (not a character)"
    if "Number out of range" in text:
        return "a number is too large for a double (I-JSON numbers must fit one)"
    if "truncated" in text:
        return "the JSON ends before the value does"
    return text


def _lone_surrogate(data: bytes) -> bool:
    import re

    for match in re.finditer(rb"\\u([dD][89abAB][0-9a-fA-F]{2})(\\u([dD][c-fC-F][0-9a-fA-F]{2}))?", data):
        if match.group(2) is None:
            return True
    return bool(re.search(rb"(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}", data))


def _json_type(value: Any) -> str:
    return {str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__)
