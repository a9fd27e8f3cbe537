"""The outbound policy against real HTTP servers on loopback: which addresses it refuses and why, every
redirect hop checked, one resolution per host (DNS rebinding), size and time caps, credentials kept to
their origin, no proxy from the environment, and error answers summarised instead of passed on.

Nothing public is reachable here, so a "public" server is a loopback one the policy is told to treat as
allowed, exactly as an admin's exception would: `allowed_hosts = ["127.0.0.1:PORT"]` (that one port) or
`allowed_networks = ["::1/128"]` (that one address). Everything else on loopback stays refused, which
is what the tests check. For DNS rebinding the policy gets an injected resolver (its `resolve` hook),
the one thing a test cannot get from the OS here: a name whose answer changes between lookups.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest
from aiohttp import web

from hub.security.outbound import (
    OutboundError,
    OutboundPolicy,
    OutboundRefused,
    address_problem,
    display_url,
    host_of,
    parse_host_rule,
    parse_network,
    summarize_error,
)

pytestmark = pytest.mark.anyio
SECRET = "the-internal-secret-4f1c9a"


@dataclass
class Site:
    """A real HTTP server on a loopback address with the routes the tests need; it records each request."""

    host: str
    port: int = 0
    hits: list[str] = field(default_factory=list)
    seen: list[dict[str, str]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base(self) -> str:
        return f"http://[{self.host}]:{self.port}" if ":" in self.host else f"http://{self.host}:{self.port}"

    async def start(self) -> Site:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        self.seen.append(dict(request.headers))
        path = request.path
        if path == "/secret":
            return web.Response(text=f"internal only: {SECRET}")
        if path == "/page":
            return web.Response(text=f"a public page served from {self.host}")
        if path == "/to":  # a redirect to ?u=, with ?status= (default 302)
            raise _redirect(int(request.query.get("status", "302")), request.query["u"])
        if path == "/loop":
            raise _redirect(302, "/loop")
        if path == "/echo":
            body = await request.read()
            return web.json_response({"method": request.method, "body": body.decode(),
                                      "authorization": request.headers.get("Authorization", "")})
        if path == "/endless":
            response = web.StreamResponse()
            await response.prepare(request)
            try:
                while not self.release.is_set():
                    await response.write(b"x" * 65536)
            except ConnectionError:  # the client stopped reading, as it should
                pass
            return response
        if path == "/silent":  # never answers
            await self.release.wait()
            return web.Response(text="too late")
        if path == "/trickle":  # headers and a little, then nothing
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"first part\n")
            await self.release.wait()
            return response
        if path == "/events":
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for n in range(3):
                await response.write(f"data: {{\"n\": {n}}}\r\n\r\n".encode())
            await response.write(b"data: [DONE]\n\n")
            return response
        if path == "/error":
            key = request.headers.get("Authorization", "")
            return web.json_response({"error": {"message": f"invalid key {key}\n\x1b[31m" + "detail " * 100}},
                                     status=401)
        if path == "/html-error":
            return web.Response(text=f"<html><body>stack trace {SECRET}</body></html>", status=500,
                                content_type="text/html")
        raise web.HTTPNotFound()


def _redirect(status: int, location: str) -> web.HTTPException:
    return {301: web.HTTPMovedPermanently, 302: web.HTTPFound, 303: web.HTTPSeeOther,
            307: web.HTTPTemporaryRedirect, 308: web.HTTPPermanentRedirect}[status](location)


@pytest.fixture
async def public() -> AsyncIterator[Site]:
    """The stand-in for a public server: allowed by its one port (see the module docstring)."""
    site = await Site("127.0.0.1").start()
    yield site
    await site.stop()


@pytest.fixture
async def internal() -> AsyncIterator[Site]:
    """An internal server holding a secret: nothing may reach it."""
    site = await Site("127.0.0.1").start()
    yield site
    await site.stop()


def policy_for(site: Site, **kwargs: object) -> OutboundPolicy:
    return OutboundPolicy(**kwargs).granting(hosts=[f"127.0.0.1:{site.port}"])  # type: ignore[arg-type]


async def fetch(policy: OutboundPolicy, url: str, **kwargs: object) -> tuple[int, bytes]:
    with anyio.fail_after(60):
        async with policy.request("GET", url, **kwargs) as response:  # type: ignore[arg-type]
            return response.status, await response.read()


# what an address is -------------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "a loopback address"), ("127.8.9.10", "a loopback address"), ("::1", "a loopback address"),
    ("10.1.2.3", "a private address"), ("172.16.0.1", "a private address"), ("192.168.1.1", "a private address"),
    ("fd12:3456::1", "a private address"), ("fec0::1", "a site-local address"),
    ("100.64.0.1", "a shared address (CGNAT"), ("169.254.169.254", "a cloud metadata address"),
    ("fd00:ec2::254", "a cloud metadata address"), ("100.100.100.200", "a cloud metadata address"),
    ("168.63.129.16", "a cloud metadata address"), ("169.254.1.1", "a link-local address"),
    ("fe80::1", "a link-local address"), ("fe80::1%2", "a link-local address"),
    ("0.0.0.0", "the unspecified address"), ("::", "the unspecified address"),
    ("224.0.0.1", "a multicast address"), ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved"), ("255.255.255.255", "a reserved"), ("192.0.2.1", "a reserved"),
    ("198.18.0.1", "a reserved"), ("0.1.2.3", "a reserved"), ("2001:db8::1", "a reserved"), ("2001::1", "a reserved"),
    ("::ffff:127.0.0.1", "a loopback address (127.0.0.1 written as IPv6)"),
    ("::ffff:10.0.0.1", "a private address (10.0.0.1 written as IPv6)"),
    ("::ffff:169.254.169.254", "a cloud metadata address"),
    ("::127.0.0.1", "a loopback address (127.0.0.1 written as IPv6)"),
    ("::8.8.8.8", "an IPv4-compatible IPv6 address"),
    ("64:ff9b::10.0.0.1", "a private address (10.0.0.1 written as IPv6)"),
    ("64:ff9b::127.0.0.1", "a loopback address"), ("64:ff9b:1::a9fe:a9fe", "a cloud metadata address"),
    ("2002:7f00:1::", "a loopback address"), ("2002:a9fe:a9fe::", "a cloud metadata address"),
    ("8.8.8.8", None), ("93.184.216.34", None), ("2606:4700::1111", None), ("::ffff:8.8.8.8", None),
    ("64:ff9b::8.8.8.8", None), ("2002:808:808::", None),
])
async def test_what_is_not_public_and_why(address: str, why: str | None) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    if why is None:
        assert problem is None, problem
    else:
        assert problem is not None and problem.reason.startswith(why), (address, problem)


async def test_allow_private_opens_private_networks_but_not_metadata_or_link_local() -> None:
    opened = OutboundPolicy(allow_private=True)
    assert [opened._problem(ipaddress.ip_address(a)) for a in ("127.0.0.1", "10.0.0.1", "100.64.1.1", "fd00::1")] \
        == [None] * 4
    for address in ("169.254.169.254", "fd00:ec2::254", "fe80::1", "0.0.0.0", "224.0.0.1", "::ffff:169.254.169.254"):
        assert opened._problem(ipaddress.ip_address(address)) is not None, address


async def test_exceptions_are_parsed_and_bad_ones_say_why() -> None:
    assert parse_host_rule("Wiki.Corp.Example:8443") == parse_host_rule("wiki.corp.example:8443")
    assert parse_host_rule("*.corp.example").matches("a.b.corp.example", 80)
    assert not parse_host_rule("*.corp.example").matches("corp.example", 80)
    assert not parse_host_rule("wiki:80").matches("wiki", 8080)
    assert parse_host_rule("[::1]:99").matches("::1", 99)
    assert parse_host_rule("münchen.example").host == "xn--mnchen-3ya.example"
    assert str(parse_network("127.0.0.1")) == "127.0.0.1/32"
    for bad, why in [("wiki:0", "the port must be"), ("*.10.0.0.1", "'*.' goes before a host name"),
                     ("bad host", "is not a host name"), ("0177.0.0.1", "is not a canonical IPv4 address"),
                     ("[::1", "expected [IPv6]")]:
        with pytest.raises(ValueError, match=None) as err:
            parse_host_rule(bad)
        assert why in str(err.value), (bad, err.value)
    with pytest.raises(ValueError) as err:
        parse_network("10.0.0.1/8")
    assert "write 10.0.0.0/8" in str(err.value)
    assert host_of("https://api.example/v1") == "api.example:443" and host_of("http://[::1]:8/") == "[::1]:8"


# refusals ----------------------------------------------------------------------------------------

async def test_loopback_is_refused_and_the_message_says_where_why_and_how_to_allow(internal: Site) -> None:
    policy = OutboundPolicy()
    with pytest.raises(OutboundRefused) as err:
        await fetch(policy, f"http://localhost:{internal.port}/secret?token=abcdefghij")
    message = str(err.value)
    assert message.startswith(f"refused http://localhost:{internal.port}/secret?…: localhost resolves to ")
    assert "a loopback address" in message and 'add "localhost" to [outbound] allowed_hosts' in message
    assert "to [outbound] allowed_networks" in message and "set [outbound] allow_private = true" in message
    assert "abcdefghij" not in message and internal.hits == []
    assert (err.value.host, err.value.reason) == ("localhost", "a loopback address")
    with pytest.raises(OutboundRefused) as err:
        await fetch(policy.granting(setting="[providers.rag] allow_private_urls"),
                    f"http://user:hunter2hunter2@127.0.0.1:{internal.port}/secret")
    assert str(err.value) == (f"refused http://127.0.0.1:{internal.port}/secret: 127.0.0.1 is a loopback address; "
                              'to allow it, add "127.0.0.1/32" to [outbound] allowed_networks or set '
                              "[providers.rag] allow_private_urls = true")
    assert internal.hits == []


@pytest.mark.parametrize("url", [
    "http://2130706433:{port}/secret", "http://0177.0.0.1:{port}/secret", "http://127.1:{port}/secret",
    "http://0x7f.0.0.1:{port}/secret", "http://[::ffff:127.0.0.1]:{port}/secret", "http://[::1]:{port}/secret",
    "http://0.0.0.0:{port}/secret", "http://[::]:{port}/secret", "http://localhost.:{port}/secret",
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/meta-data/",
    "file:///etc/passwd", "gopher://127.0.0.1:{port}/secret", "http:///secret",
])
async def test_every_form_of_an_internal_address_is_refused(internal: Site, url: str) -> None:
    with pytest.raises(OutboundRefused) as err:
        await fetch(OutboundPolicy(), url.format(port=internal.port))
    assert internal.hits == [] and SECRET not in str(err.value)


async def test_allowed_networks_hosts_and_allow_private_are_exceptions(public: Site, internal: Site) -> None:
    assert await fetch(OutboundPolicy().granting(networks=["127.0.0.0/8"]), f"{public.base}/page") == (
        200, b"a public page served from 127.0.0.1")
    assert (await fetch(OutboundPolicy(allow_private=True), f"{public.base}/page"))[0] == 200
    assert (await fetch(OutboundPolicy().granting(allow_private=True), f"http://localhost:{public.port}/page"))[0] == 200
    by_port = policy_for(public)
    assert (await fetch(by_port, f"{public.base}/page"))[0] == 200
    with pytest.raises(OutboundRefused):  # the exception is for that port only
        await fetch(by_port, f"{internal.base}/secret")
    assert internal.hits == []
    from hub.config import OutboundConfig

    configured = OutboundPolicy.from_config(OutboundConfig(allowed_networks=["127.0.0.1/32"], max_redirects=0))
    assert (await fetch(configured, f"{public.base}/to?u=/page"))[0] == 302  # 0 redirects: the 3xx is the answer


# redirects -------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{port}/secret", "http://localhost:{port}/secret", "http://[::ffff:127.0.0.1]:{port}/secret",
    "http://[::ffff:7f00:1]:{port}/secret", "http://[::1]:{port}/secret", "http://2130706433:{port}/secret",
    "http://0177.0.0.1:{port}/secret", "http://0x7f.1:{port}/secret", "http://0.0.0.0:{port}/secret",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/", "http://[fd00:ec2::254]/latest/",
    "http://[64:ff9b::7f00:1]:{port}/secret", "http://10.0.0.1/", "http://100.64.0.1/", "file:///etc/passwd",
    "ftp://127.0.0.1:{port}/secret",
])
@pytest.mark.parametrize("status", [302, 307])
async def test_every_redirect_hop_is_checked(public: Site, internal: Site, target: str, status: int) -> None:
    aimed = target.format(port=internal.port)
    # two hops: an allowed redirect first, then the one to the internal address
    url = f"{public.base}/to?u={quote(f'{public.base}/to?status={status}&u={quote(aimed)}')}"
    with pytest.raises(OutboundRefused) as err:
        await fetch(policy_for(public), url)
    assert str(err.value).startswith(f"refused the redirect from {public.base}/to?… to ")
    assert internal.hits == [] and SECRET not in str(err.value)
    assert public.hits == ["/to", "/to"]


async def test_a_redirect_loop_stops_at_max_redirects(public: Site) -> None:
    with pytest.raises(OutboundError) as err:
        await fetch(policy_for(public), f"{public.base}/loop")
    assert str(err.value) == f"{public.base}/loop redirected more than 5 times ([outbound] max_redirects)"
    assert len(public.hits) == 6


async def test_redirects_keep_credentials_on_their_origin_and_change_the_method_as_http_says(
        public: Site, internal: Site) -> None:
    other = await Site("127.0.0.1").start()
    try:
        policy = policy_for(public).granting(hosts=[f"127.0.0.1:{other.port}"])
        headers = {"Authorization": "Bearer sk-live-0123456789", "X-Api-Key": "key-0123456789"}
        async with policy.request("POST", f"{public.base}/to?status=307&u=/echo", headers=headers,
                                  json={"q": 1}) as response:
            assert await response.json() == {"method": "POST", "body": '{"q":1}',
                                             "authorization": "Bearer sk-live-0123456789"}
        async with policy.request("POST", f"{public.base}/to?status=303&u=/echo", headers=headers,
                                  data=b"payload") as response:
            assert await response.json() == {"method": "GET", "body": "", "authorization": "Bearer sk-live-0123456789"}
        away = f"{other.base}/to?status=307&u={public.base}/echo"  # to another origin, and back again
        async with policy.request("POST", f"{public.base}/to?status=307&u={quote(away)}", headers=headers,
                                  json={"q": 2}) as response:
            assert await response.json() == {"method": "POST", "body": '{"q":2}', "authorization": ""}
        assert all("Authorization" not in seen and "X-Api-Key" not in seen for seen in other.seen)
        assert "Authorization" not in public.seen[-1] and public.seen[-1]["Content-Type"] == "application/json"
    finally:
        await other.stop()


# DNS rebinding -------------------------------------------------------------------------------------

async def _same_port_on_both_loopbacks() -> tuple[Site, Site]:
    for _ in range(20):
        secret = await Site("127.0.0.1").start()
        try:
            return secret, await Site("::1", secret.port).start()
        except OSError as exc:
            await secret.stop()
            if exc.errno != errno.EADDRINUSE:
                raise
    raise AssertionError("no port free on both 127.0.0.1 and ::1")


async def test_a_name_is_resolved_once_and_the_connection_goes_to_the_checked_address() -> None:
    """`rebind.test` answers ::1 (allowed, standing in for a public address) on the first lookup and
    127.0.0.1 on every later one. The policy asks once per request, checks the answer and connects to it:
    both hops of a redirect reach the ::1 server, never the one on 127.0.0.1 at the same port."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 loopback")
    internal, public = await _same_port_on_both_loopbacks()
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["::1"] if len(lookups) == 1 else ["127.0.0.1"]

    try:
        policy = OutboundPolicy(resolve=rebinding).granting(networks=["::1/128"])
        status, body = await fetch(policy, f"http://rebind.test:{public.port}/to?u=/page")
        assert (status, body) == (200, b"a public page served from ::1")
        assert lookups == ["rebind.test"] and public.hits == ["/to", "/page"] and internal.hits == []
        with pytest.raises(OutboundRefused) as err:  # a new request asks again, and the new answer is checked
            await fetch(policy, f"http://rebind.test:{public.port}/secret")
        assert "rebind.test resolves to 127.0.0.1, a loopback address" in str(err.value)
        assert internal.hits == []
    finally:
        await internal.stop()
        await public.stop()


async def test_a_name_with_any_internal_address_is_refused(internal: Site) -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "127.0.0.1"]

    with pytest.raises(OutboundRefused) as err:
        await fetch(OutboundPolicy(resolve=mixed), f"http://mixed.test:{internal.port}/secret")
    assert "mixed.test resolves to 127.0.0.1, a loopback address" in str(err.value) and internal.hits == []


# caps --------------------------------------------------------------------------------------------

async def test_a_body_over_the_cap_is_cut_off_and_named(public: Site) -> None:
    policy = policy_for(public, max_bytes=1024 * 1024)
    with pytest.raises(OutboundError) as err:
        await fetch(policy, f"{public.base}/endless")
    assert str(err.value) == f"{public.base}/endless sent more than 1048576 bytes ([outbound] max_bytes)"
    with pytest.raises(OutboundError) as err:
        await fetch(policy, f"{public.base}/endless", max_bytes=4096)
    assert str(err.value) == f"{public.base}/endless sent more than 4096 bytes"


@pytest.mark.parametrize("path", ["/silent", "/trickle"])
async def test_a_slow_server_runs_into_the_time_limit(public: Site, path: str) -> None:
    with pytest.raises(OutboundError) as err:
        await fetch(policy_for(public, timeout=0.5), f"{public.base}{path}")
    assert str(err.value) == f"{public.base}{path} did not answer within 0.5 s ([outbound] timeout_seconds)"


async def test_proxies_from_the_environment_are_not_used(public: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = await Site("127.0.0.1").start()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.base)
        assert (await fetch(policy_for(public), f"{public.base}/page"))[0] == 200
        assert proxy.hits == [] and public.hits == ["/page"]
    finally:
        await proxy.stop()


# answers ----------------------------------------------------------------------------------------

async def test_streamed_answers_come_line_by_line(public: Site) -> None:
    async with policy_for(public).request("GET", f"{public.base}/events") as response:
        assert response.content_type == "text/event-stream"
        lines = [line async for line in response.lines()]
    assert [json.loads(line[5:]) for line in lines if line.startswith(b"data: {")] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert lines[-2:] == [b"data: [DONE]", b""]


async def test_an_error_answer_is_summarised_never_passed_on(public: Site) -> None:
    policy = policy_for(public)
    async with policy.request("GET", f"{public.base}/error", headers={"Authorization": "Bearer sk-live-0123456789"}) \
            as response:
        summary = await response.summary()
    assert summary.startswith("HTTP 401 Unauthorized: invalid key [redacted] detail detail")
    assert "sk-live" not in summary and summary.endswith("…")
    assert len(summary) <= len("HTTP 401 Unauthorized: ") + 200 and "\n" not in summary and "\x1b" not in summary
    async with policy.request("GET", f"{public.base}/html-error") as response:
        assert await response.summary() == "HTTP 500 Internal Server Error"
    assert summarize_error(404, "text/plain", b"\n  no such model: llama9\nTraceback ...") == \
        "HTTP 404 Not Found: no such model: llama9"
    assert summarize_error(400, "application/json", b'{"message": "bad field", "error": "x"}') == \
        "HTTP 400 Bad Request: bad field"
    assert summarize_error(502, "application/json", b"not json") == "HTTP 502 Bad Gateway"
    assert summarize_error(599, "", b"") == "HTTP 599"


async def test_check_and_display() -> None:
    async def public_name(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    assert await OutboundPolicy(resolve=public_name).check("https://docs.example/page") == ["93.184.216.34"]
    with pytest.raises(OutboundRefused):
        await OutboundPolicy().check("http://127.0.0.1/")
    assert display_url("https://user:pw@docs.example:8443/a/b?token=x#frag") == "https://docs.example:8443/a/b?…"


async def test_the_readme_example_is_a_valid_config(tmp_path: Path) -> None:
    from hub.config import load_config

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = next(b.split("```")[0] for b in readme.split("```toml\n") if b.startswith("[outbound]"))
    (tmp_path / "junction.toml").write_text(block)
    policy = OutboundPolicy.from_config(load_config(tmp_path / "junction.toml", env={}))
    assert policy.allowed_hosts[1].matches("build.corp.example", 443) and policy.max_redirects == 5
