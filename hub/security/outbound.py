"""The outbound policy: every HTTP request the hub makes on a caller's behalf goes through here.

Owns: deciding which destinations such a request may reach (`[outbound]` in the config, plus the
exceptions a provider's own settings grant), and making the request so that the decision holds:

- only http and https; no proxy from the environment; no cookies kept between requests;
- every host name is resolved once, every address it resolves to is checked, and the connection
  goes to one of the checked addresses (the connector gets the checked list, never a second
  lookup: a name that answers differently the next time, DNS rebinding, changes nothing);
- IP literals (which aiohttp connects to without asking a resolver) are checked as written, and
  non-canonical IPv4 forms (`2130706433`, `0177.0.0.1`, `127.1`) are refused outright;
- redirects are followed here, not by aiohttp: each hop's scheme, host and addresses are checked
  the same way, at most `max_redirects` of them, and headers the caller set go only to the origin
  the caller named (a hop to another origin keeps only the harmless ones);
- the body is read under a size cap (never more than `max_bytes + 1` bytes held) and the whole
  exchange, redirects and body included, under one time limit;
- an error answer is summarised (`OutboundResponse.summary`), never passed on whole.

Refused by default: loopback, private (RFC 1918, IPv6 ULA, site-local), shared (CGNAT), link-local
(169.254.0.0/16, fe80::/10), cloud metadata addresses, the unspecified address, multicast,
reserved and anything else `ipaddress` does not call global, also when written as IPv4-mapped,
IPv4-compatible, NAT64 or 6to4 IPv6. `allow_private` opens loopback, private and shared addresses
only; link-local, metadata and the rest need an explicit `allowed_networks` entry.

Must not: hold state between requests (each request has its own connector), log or return a
header value or a response body, or import aiohttp before a request is made (the CLI reads the
config without it).
"""

from __future__ import annotations

import asyncio
import http
import ipaddress
import json as jsonlib
import re
import socket
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from yarl import URL

from hub.config import (
    Config,
    HostRule,
    IPAddress,
    IPNetwork,
    OutboundConfig,
    literal_address,
    parse_host_rule,
    parse_network,
)

if TYPE_CHECKING:
    import aiohttp


Resolve = Callable[[str, int], Awaitable[Sequence[str]]]
"""`resolve(host, port)`: the addresses (as text; IPv6 may carry a `%scope`) a host name stands for."""

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_REDIRECTS = 5
SUMMARY_CHARS = 200
"""At most this much of a remote error message reaches a caller."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-language", "user-agent"})
"""The only caller headers a redirect to another origin keeps (credentials stay with the origin named)."""
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|session|password", re.IGNORECASE)
_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle instance metadata
    "169.254.170.2",    # AWS ECS task credentials
    "fd00:ec2::254",    # AWS instance metadata over IPv6
    "100.100.100.200",  # Alibaba Cloud metadata (inside CGNAT space, which allow_private opens)
    "168.63.129.16",    # Azure WireServer (a global address that is the host's own service)
))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
"""RFC 1918 and IPv6 unique local addresses (ULA)."""
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


class OutboundError(Exception):
    """An outbound request that did not give an answer: cannot resolve or connect, too slow, too large,
    too many redirects. The message names the host and, for a limit, the config key; never a header
    value or a response body."""


class OutboundRefused(OutboundError):
    """The policy refused a destination: a scheme other than http(s), or an address that is not public
    and not allowed. The message names the URL's host, the address, why, and the setting that would
    allow it."""

    def __init__(self, message: str, *, url: str, host: str = "", address: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.url, self.host, self.address, self.reason = url, host, address, reason


# what an address is --------------------------------------------------------------------------------

@dataclass(frozen=True)
class AddressProblem:
    """Why an address is not public: `reason` reads after "is" ("a loopback address"); `private` says
    whether `allow_private` opens it."""

    reason: str
    private: bool


def address_problem(address: IPAddress) -> AddressProblem | None:
    """None for a public address; else why it is not one. IPv6 forms that carry an IPv4 address
    (mapped, compatible, NAT64, 6to4) are judged by the IPv4 address they lead to."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = address_problem(embedded)
        if inner is not None:
            return AddressProblem(f"{inner.reason} ({embedded} written as IPv6)", inner.private)
        if address in _IPV4_COMPATIBLE:
            return AddressProblem("an IPv4-compatible IPv6 address (deprecated, ::/96)", False)
        return None
    if address in _METADATA:
        return AddressProblem("a cloud metadata address", False)
    if address.is_unspecified:
        return AddressProblem("the unspecified address", False)
    if address.is_loopback:
        return AddressProblem("a loopback address", True)
    if address.is_link_local:
        return AddressProblem("a link-local address (where cloud metadata services answer)", False)
    if address.is_multicast:
        return AddressProblem("a multicast address", False)
    if address.version == 4 and address in _CGNAT:
        return AddressProblem("a shared address (CGNAT, 100.64.0.0/10)", True)
    if address.version == 6 and address in _SITE_LOCAL:
        return AddressProblem("a site-local address (deprecated, fec0::/10)", True)
    if any(address in net for net in _PRIVATE):
        return AddressProblem("a private address", True)
    if not address.is_global or address.is_reserved:
        return AddressProblem("a reserved or special-purpose address", False)
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if address.version != 6:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    plain = ipaddress.IPv6Address(address.packed)  # without a %scope
    if plain.ipv4_mapped is not None:
        return plain.ipv4_mapped
    if plain in _IPV4_COMPATIBLE and int(plain) > 1:  # not :: or ::1
        return ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF)
    if any(plain in net for net in _NAT64):
        return ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF)
    return plain.sixtofour


# the policy -------------------------------------------------------------------------------------

async def system_resolve(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo), as aiohttp's default resolver asks it."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError(f"cannot resolve {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    found: list[str] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        text = str(sockaddr[0])
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3] and "%" not in text:
            text = f"{text}%{sockaddr[3]}"
        if text not in found:
            found.append(text)
    return found


@dataclass(frozen=True)
class OutboundPolicy:
    """Where outbound requests may go, and the limits they run under; `request` makes one.

    Build it with `from_config` (the hub has one, `ProviderHost.outbound`); a provider whose own
    settings grant more (a knowledge base allowed to read private URLs, a model endpoint the admin
    configured on loopback) derives its policy with `granting`."""

    allow_private: bool = False
    allowed_hosts: tuple[HostRule, ...] = ()
    allowed_networks: tuple[IPNetwork, ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout: float = DEFAULT_TIMEOUT
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    private_setting: str = ""
    """A provider's own switch for private addresses (e.g. `[providers.rag] allow_private_urls`), named in
    refusals beside `[outbound] allow_private`."""
    resolve: Resolve = field(default=system_resolve, repr=False)
    """How host names become addresses (tests inject their own; the default asks the OS)."""

    @classmethod
    def from_config(cls, config: Config | OutboundConfig, *, resolve: Resolve | None = None) -> OutboundPolicy:
        """The policy of `[outbound]` (a whole `Config` or its `outbound` table; both are validated)."""
        from hub.config import OutboundConfig

        table = config if isinstance(config, OutboundConfig) else config.outbound
        return cls(allow_private=table.allow_private,
                   allowed_hosts=tuple(parse_host_rule(h) for h in table.allowed_hosts),
                   allowed_networks=tuple(parse_network(n) for n in table.allowed_networks),
                   max_bytes=table.max_bytes, timeout=table.timeout_seconds, max_redirects=table.max_redirects,
                   resolve=resolve or system_resolve)

    def granting(self, *, allow_private: bool = False, hosts: Iterable[str] = (), networks: Iterable[str] = (),
                 setting: str = "") -> OutboundPolicy:
        """This policy with more allowed (never less): `allow_private` as a provider's setting grants it
        (`setting` names that key, for refusals), `hosts` and `networks` as in `allowed_hosts` and
        `allowed_networks`. For a URL the admin configured (a model endpoint), grant its host:
        `policy.granting(hosts=[host_of(url)])`."""
        return replace(
            self, allow_private=self.allow_private or allow_private,
            allowed_hosts=self.allowed_hosts + tuple(parse_host_rule(h) for h in hosts),
            allowed_networks=self.allowed_networks + tuple(parse_network(n) for n in networks),
            private_setting=setting or self.private_setting)

    async def check(self, url: str) -> list[str]:
        """Whether a request to `url` may start: the addresses it would connect to, or `OutboundRefused` /
        `OutboundError`. (Redirects are checked when they happen; `request` checks again itself.)"""
        target = _parse(url)
        return await self._admit(target, {}, None)

    @asynccontextmanager
    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, json: Any = None,
                      data: bytes | str | None = None, max_bytes: int | None = None, timeout: float | None = None,
                      max_redirects: int | None = None) -> AsyncIterator[OutboundResponse]:
        """Make a request under this policy; `async with policy.request("GET", url) as response:`.

        Redirects are followed (at most `max_redirects`, 0: the 3xx answer is the response) with every
        hop checked; 303, and 301/302 after a POST, continue as GET without the body. `timeout` covers
        everything until the block ends (connecting, redirects, reading the body); `max_bytes` caps the
        body. Both default to the policy's. `json` is sent encoded (with its content type) instead of
        `data`. Raises `OutboundRefused` / `OutboundError`; the response's reads raise `OutboundError`."""
        import aiohttp

        max_bytes_given, max_bytes = max_bytes, self.max_bytes if max_bytes is None else max_bytes
        limit = self.timeout if timeout is None else timeout
        hops_left = self.max_redirects if max_redirects is None else max_redirects
        sent = dict(headers or {})
        body: bytes | None = data.encode() if isinstance(data, str) else data
        if json is not None:
            import msgspec

            body = msgspec.json.encode(json)
            if not any(k.lower() == "content-type" for k in sent):
                sent["Content-Type"] = "application/json"
        if not any(k.lower() == "user-agent" for k in sent):
            sent["User-Agent"] = "Junction (outbound)"
        redact = _secret_values(sent)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        checked: dict[str, list[str]] = {}
        target = _parse(url)
        origin = _origin(target)
        previous: URL | None = None
        keep_headers = _CROSS_ORIGIN_HEADERS | {"content-type"}
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=cast("aiohttp.abc.AbstractResolver", _CheckedResolver(checked)),
                                           use_dns_cache=False, force_close=True),
            trust_env=False, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True)
        try:
            hop = 0
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._admit(target, checked, previous)
                except TimeoutError:
                    raise self._too_slow(target, limit, timeout is None) from None
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise self._too_slow(target, limit, timeout is None)
                if _origin(target) != origin:  # and for the rest of the chain, as the Fetch standard does
                    sent = {k: v for k, v in sent.items() if k.lower() in keep_headers}
                try:
                    raw = await session.request(method, target, headers=sent, data=body, allow_redirects=False,
                                                timeout=aiohttp.ClientTimeout(total=remaining))
                except TimeoutError:
                    raise self._too_slow(target, limit, timeout is None) from None
                except aiohttp.ClientError as exc:
                    raise _failure(target, exc) from None
                location = raw.headers.get("Location")
                if raw.status not in _REDIRECTS or not location or hops_left == 0:
                    break
                raw.close()
                hop += 1
                if hop > hops_left:
                    raise OutboundError(f"{_display(URL(url))} redirected more than {hops_left} times "
                                        "([outbound] max_redirects)")
                try:
                    following = target.join(URL(location)).with_fragment(None)
                except ValueError:
                    raise OutboundError(f"{_display(target)} redirected to an invalid URL") from None
                if raw.status == 303 or (raw.status in (301, 302) and method.upper() == "POST"):
                    if method.upper() != "HEAD":
                        method = "GET"
                    body = None
                    sent = {k: v for k, v in sent.items() if k.lower() != "content-type"}
                previous, target = target, following
            response = OutboundResponse(raw, str(target), max_bytes, limit, redact,
                                        size_key=max_bytes_given is None, time_key=timeout is None)
            try:
                yield response
            finally:
                raw.close()
        finally:
            await session.close()

    # checks --------------------------------------------------------------------------------------
    async def _admit(self, target: URL, checked: dict[str, list[str]], previous: URL | None) -> list[str]:
        """Check one hop: its scheme, its host, every address the host stands for; the addresses go into
        `checked`, which is all the connector will use."""
        where = (f"the redirect from {_display(previous)} to {_display(target)}" if previous is not None
                 else _display(target))
        shown = _display(target)
        if target.scheme not in ("http", "https"):
            raise OutboundRefused(f"refused {where}: only http and https URLs can be fetched", url=shown,
                                  reason="scheme")
        host = _host_key(target)
        if not host:
            raise OutboundRefused(f"refused {where}: the URL has no host", url=shown, reason="no host")
        port = target.port or (443 if target.scheme == "https" else 80)
        looks_literal = ":" in host or host.replace(".", "").isdigit()  # what aiohttp takes for an address
        literal = literal_address(host) if looks_literal else None
        if looks_literal and literal is None:
            # aiohttp connects to these without asking a resolver, and the OS reads 2130706433 or 0177.0.0.1
            # as 127.0.0.1: only an address in its canonical form is checked, and accepted.
            meaning = _inet_aton(host)
            raise OutboundRefused(
                f"refused {where}: {host!r} is not a canonical IP address" + (f" (it means {meaning})" if meaning else "")
                + ("" if ":" in host else "; write it as four decimal numbers"), url=shown, host=host,
                reason="not canonical")
        addresses = [host] if literal is not None else await self._resolved(host, port, checked)
        name = literal.compressed if literal is not None else host
        if not any(rule.matches(name, port) for rule in self.allowed_hosts):
            for text in addresses:
                address = literal_address(text)
                if address is None:
                    raise OutboundRefused(f"refused {where}: {host} resolved to {text!r}, not an IP address",
                                          url=shown, host=host, address=text, reason="not an address")
                problem = self._problem(address)
                if problem is not None:
                    raise self._refusal(where, shown, host, literal is not None, address, problem)
        checked[host] = addresses
        return addresses

    async def _resolved(self, host: str, port: int, checked: dict[str, list[str]]) -> list[str]:
        if host in checked:  # the same host again within one request: the same, already checked, answer
            return checked[host]
        found = [str(a) for a in await self.resolve(host, port)]
        if not found:
            raise OutboundError(f"cannot resolve {host!r}: no addresses")
        return found

    def _problem(self, address: IPAddress) -> AddressProblem | None:
        problem = address_problem(address)
        if problem is None:
            return None
        plain = ipaddress.ip_address(address.packed)
        embedded = _embedded_ipv4(address)
        for net in self.allowed_networks:
            if plain in net or (embedded is not None and embedded in net):
                return None
        if problem.private and self.allow_private:
            return None
        return problem

    def _refusal(self, where: str, url: str, host: str, literal: bool, address: IPAddress,
                 problem: AddressProblem) -> OutboundRefused:
        plain = _embedded_ipv4(address) or ipaddress.ip_address(address.packed)
        ways = [] if literal else [f'add "{host}" to [outbound] allowed_hosts']
        ways.append(f'add "{plain}/{plain.max_prefixlen}" to [outbound] allowed_networks')
        if problem.private:
            ways.append(f"set {self.private_setting} = true" if self.private_setting
                        else "set [outbound] allow_private = true")
        what = f"{host} is {problem.reason}" if literal else f"{host} resolves to {address}, {problem.reason}"
        how = ways[0] if len(ways) == 1 else ", ".join(ways[:-1]) + " or " + ways[-1]
        return OutboundRefused(f"refused {where}: {what}; to allow it, {how}", url=url, host=host,
                               address=str(address), reason=problem.reason)

    def _too_slow(self, target: URL, limit: float, from_config: bool) -> OutboundError:
        return OutboundError(f"{_display(target)} did not answer within {limit:g} s"
                             + (" ([outbound] timeout_seconds)" if from_config else ""))


class _CheckedResolver:
    """The connector's resolver (`aiohttp.abc.AbstractResolver`): it answers only with addresses the
    policy checked for this request, and refuses any host it was not told about."""

    def __init__(self, checked: dict[str, list[str]]) -> None:
        self._checked = checked

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_UNSPEC) -> list[dict[str, Any]]:
        addresses = self._checked.get(host.lower().rstrip("."))
        if not addresses:
            raise OSError(f"{host} was not checked by the outbound policy")
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV} for a in addresses]

    async def close(self) -> None:
        pass


# the response -----------------------------------------------------------------------------------

class OutboundResponse:
    """An answer under the policy: `status`, `headers`, `url` (after redirects), and a body read at
    most once through `read`, `text`, `json`, `lines` or `chunks`, all under the size cap and the
    time limit of the request (going over either raises `OutboundError`)."""

    def __init__(self, raw: aiohttp.ClientResponse, url: str, max_bytes: int, limit: float, redact: list[str], *,
                 size_key: bool, time_key: bool) -> None:
        self._raw = raw
        self._max, self._limit = max_bytes, limit
        self._size_key, self._time_key = size_key, time_key  # whether the limits are the config's (then named)
        self._redact = redact
        self._taken = 0
        self.url = url
        self.status: int = raw.status
        self.headers: Mapping[str, str] = raw.headers

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters (`text/html`)."""
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        import aiohttp

        try:
            async for chunk in self._raw.content.iter_any():
                self._taken += len(chunk)
                if self._taken > self._max:
                    raise OutboundError(f"{_display(URL(self.url))} sent more than {self._max} bytes"
                                        + (" ([outbound] max_bytes)" if self._size_key else ""))
                yield chunk
        except TimeoutError:
            raise OutboundError(f"{_display(URL(self.url))} did not answer within {self._limit:g} s"
                                + (" ([outbound] timeout_seconds)" if self._time_key else "")) from None
        except aiohttp.ClientError as exc:
            raise _failure(URL(self.url), exc) from None

    async def read(self) -> bytes:
        """The whole body (at most the size cap)."""
        parts = [chunk async for chunk in self.chunks()]
        return b"".join(parts)

    async def text(self) -> str:
        """The body as text (its declared charset, else UTF-8; undecodable bytes replaced)."""
        data = await self.read()
        charset = self._raw.charset or "utf-8"
        try:
            return data.decode(charset, errors="replace")
        except LookupError:
            return data.decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body as JSON; `OutboundError` if it is not."""
        data = await self.read()
        try:
            return jsonlib.loads(data)
        except ValueError:
            raise OutboundError(f"{_display(URL(self.url))} answered with something that is not JSON") from None

    async def lines(self) -> AsyncIterator[bytes]:
        """The body line by line, without the line ends: for `text/event-stream` and JSON lines."""
        pending = b""
        async for chunk in self.chunks():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.removesuffix(b"\r")
        if pending:
            yield pending.removesuffix(b"\r")

    async def summary(self) -> str:
        """What a caller may be told about this answer: `HTTP 401 Unauthorized: <reason>`, the reason at
        most a short single line taken from a JSON error message or a plain-text first line, with every
        credential the request sent masked. Reads at most 16 KiB of the body."""
        import aiohttp

        data = b""
        try:
            while len(data) < 16384:
                chunk = await self._raw.content.read(16384 - len(data))
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, aiohttp.ClientError):
            pass
        return summarize_error(self.status, self.content_type, data, self._redact)


def summarize_error(status: int, content_type: str, body: bytes, redact: Iterable[str] = ()) -> str:
    """`HTTP STATUS PHRASE[: reason]` for an error answer: the reason from a JSON body's `error.message`,
    `error`, `message`, `detail`, `error_description` or `title`, or a `text/plain` first line; single
    line, printable, `redact` values masked, at most `SUMMARY_CHARS`. Never more of the body."""
    try:
        phrase = http.HTTPStatus(status).phrase  # ours, not the remote's reason phrase
    except ValueError:
        phrase = ""
    reason = ""
    text = body.decode("utf-8", errors="replace")
    if content_type.endswith("json") or text.lstrip().startswith("{"):
        try:
            reason = _json_reason(jsonlib.loads(text))
        except ValueError:
            reason = ""
    elif content_type == "text/plain":
        reason = next((line for line in text.splitlines() if line.strip()), "")
    reason = _one_line(reason, redact)
    return f"HTTP {status}" + (f" {phrase}" if phrase else "") + (f": {reason}" if reason else "")


def _json_reason(doc: Any) -> str:
    if not isinstance(doc, dict):
        return ""
    error = doc.get("error")
    if isinstance(error, dict):
        for key in ("message", "detail", "description"):
            if isinstance(error.get(key), str):
                return error[key]
    for key in ("error_description", "message", "detail", "error", "title"):
        if isinstance(doc.get(key), str):
            return doc[key]
    return ""


def _one_line(text: str, redact: Iterable[str]) -> str:
    for secret in sorted(redact, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    text = _TERMINAL_ESCAPE.sub(" ", text)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1].rstrip() + "…"


def _secret_values(headers: Mapping[str, str]) -> list[str]:
    """The credential values the request carries (whole, and each word of them, e.g. after "Bearer")."""
    found: list[str] = []
    for name, value in headers.items():
        if _SECRET_HEADER.search(name):
            found += [part for part in (value, *value.split()) if len(part) >= 8]
    return found


# URLs in messages ---------------------------------------------------------------------------------

def _parse(url: str) -> URL:
    try:
        return URL(url)
    except (ValueError, TypeError):
        raise OutboundRefused(f"refused {url[:100]!r}: not a URL", url=url[:100], reason="not a URL") from None


def _host_key(url: URL) -> str:
    """The host as the connector will ask for it, lower case and without a trailing dot."""
    return (url.raw_host or "").lower().rstrip(".")


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme, _host_key(url), url.port)


def display_url(url: str) -> str:
    """A URL as messages show it: without credentials, query or fragment (any of which may hold a
    secret), the path cut short."""
    try:
        return _display(URL(url))
    except (ValueError, TypeError):
        return "the URL"


def _display(url: URL) -> str:
    try:
        host = url.raw_host or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{url.explicit_port}" if url.explicit_port is not None else ""
        path = url.raw_path
        shown = f"{url.scheme}://{host}{port}{path[:100]}" + ("…" if len(path) > 100 else "")
        return shown + ("?…" if url.raw_query_string else "")
    except (ValueError, TypeError):
        return "the URL"


def _inet_aton(host: str) -> str:
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return ""


def _failure(target: URL, exc: Exception) -> OutboundError:
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        why = exc.os_error.strerror or str(exc.os_error)[:120] or exc.os_error.__class__.__name__
        return OutboundError(f"cannot connect to {_display(target)}: {why}")
    detail = " ".join(str(exc).split())[:120]
    return OutboundError(f"{_display(target)} failed: {exc.__class__.__name__}" + (f" ({detail})" if detail else ""))


def host_of(url: str) -> str:
    """`host:port` of a URL, as an `allowed_hosts` entry (for granting the host of a configured URL)."""
    target = _parse(url)
    host = target.raw_host or ""
    port = target.port or (443 if target.scheme == "https" else 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
