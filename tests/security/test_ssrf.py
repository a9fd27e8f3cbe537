"""SSRF through the knowledge base's URL ingest, against a real hub: a caller asks `rag__ingest` for a URL
on an allowed server that redirects (once or along a chain, 302 or 307) to an internal server holding a
secret, written every way an address can be written; or asks for the internal URL directly. The hub must
refuse, say which host, address and setting, never reach the internal server, never store or echo the
secret, and keep serving.

Nothing public is reachable here, so the "public" server is a loopback port the hub's config allows as
if it were public, the way an admin grants an intranet host: `[outbound] allowed_hosts =
["127.0.0.1:PORT"]`. The exception names one port; the internal server on another loopback port stays
behind the default rules, so every refusal below is the policy's own, through the hub's real resolver
and connector. (DNS rebinding needs a name whose answers change between lookups, which the OS cannot give
here; tests/hub/security/test_outbound.py covers it with an injected resolver.) A second hub with `[providers.rag]
allow_private_urls = true` shows the explicitly allowed case: the same redirect is followed, while cloud
metadata addresses stay refused.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from mcp import Client

from tests.helpers import RunningHub, recorded_calls, serve_hub

pytestmark = pytest.mark.anyio
SECRET = f"payroll-db-password-{secrets.token_hex(8)}"


@dataclass
class Server:
    """A real HTTP server on 127.0.0.1 (in a thread): `/page` a page, `/r?u=URL&status=302` a redirect,
    `/loop` a redirect to itself, `/secret` the internal secret. It records the paths asked for."""

    hits: list[str] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return self.httpd.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                hits.append(parts.path)
                query = parse_qs(parts.query)
                if parts.path == "/r":
                    self.send_response(int(query.get("status", ["302"])[0]))
                    self.send_header("Location", query["u"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if parts.path == "/loop":
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = {"/page": "<html><body><h1>Lighthouse hours</h1><p>The lighthouse opens at nine.</p></body></html>",
                        "/secret": f"<html><body><p>internal only: {SECRET}</p></body></html>"}.get(parts.path)
                self.send_response(200 if body else 404)
                data = (body or "not found").encode()
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET  # a 307 keeps the method

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    public, internal = Server().start(), Server().start()
    yield public, internal
    public.stop()
    internal.stop()


def rag_config(extra: str) -> str:
    return f"""
[providers.rag]
embedder = "none"
sample = false
{extra}
"""


async def ingest(hub: RunningHub, url: str, namespace: str = "web") -> tuple[bool, str]:
    async with Client(hub.url, mode="2026-07-28") as client:
        listed = await client.call_tool("rag__list_namespaces", {})
        if namespace not in str(listed.structured_content):
            await client.call_tool("rag__create_namespace", {"namespace": namespace})
        result = await client.call_tool("rag__ingest", {"namespace": namespace, "url": url})
    return bool(result.is_error), result.content[0].text


async def documents(hub: RunningHub, namespace: str) -> int:
    async with Client(hub.url, mode="2026-07-28") as client:
        stats = await client.call_tool("rag__stats", {"namespace": namespace})
    return stats.structured_content["documents"] if not stats.is_error else 0


def secret_in_data(data_dir: Path) -> list[str]:
    return [str(p) for p in data_dir.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, servers: tuple[Server, Server]) -> Iterator[RunningHub]:
    public, _ = servers
    extra = f'[outbound]\nallowed_hosts = ["127.0.0.1:{public.port}"]\n'
    with serve_hub(tmp_path_factory.mktemp("ssrf"), rag_config(extra), timeout=60) as running:
        yield running


ATTACKS = {  # where the redirect points -> what the refusal says
    "http://127.0.0.1:{port}/secret": "127.0.0.1 is a loopback address",
    "http://localhost:{port}/secret": "localhost resolves to",
    "http://[::1]:{port}/secret": "::1 is a loopback address",
    "http://[::ffff:127.0.0.1]:{port}/secret": "a loopback address (127.0.0.1 written as IPv6)",
    "http://[::127.0.0.1]:{port}/secret": "a loopback address (127.0.0.1 written as IPv6)",
    "http://[64:ff9b::7f00:1]:{port}/secret": "a loopback address (127.0.0.1 written as IPv6)",
    "http://2130706433:{port}/secret": "is not a canonical IP address (it means 127.0.0.1)",
    "http://0177.0.0.1:{port}/secret": "is not a canonical IP address (it means 127.0.0.1)",
    "http://127.1:{port}/secret": "is not a canonical IP address (it means 127.0.0.1)",
    "http://0x7f.0.0.1:{port}/secret": "0x7f.0.0.1 resolves to 127.0.0.1, a loopback address",
    "http://0.0.0.0:{port}/secret": "0.0.0.0 is the unspecified address",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/": "169.254.169.254 is a cloud metadata address",
    "http://[fd00:ec2::254]/latest/meta-data/": "fd00:ec2::254 is a cloud metadata address",
    "http://10.0.0.1/admin": "10.0.0.1 is a private address",
    "file:///etc/passwd": "only http and https URLs can be fetched",
}


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("target", list(ATTACKS))
async def test_a_redirect_to_an_internal_address_is_refused(hub: RunningHub, servers: tuple[Server, Server],
                                                            target: str, status: int) -> None:
    public, internal = servers
    aimed = target.format(port=internal.port)
    refused, text = await ingest(hub, f"{public.base}/r?status={status}&u={quote(aimed)}")
    assert refused and text.startswith(f"refused the redirect from {public.base}/r?… to "), text
    assert ATTACKS[target] in text, text
    assert SECRET not in text and "/secret" not in internal.hits
    assert await documents(hub, "web") == 0


async def test_a_chain_of_allowed_redirects_ending_inside_is_refused(hub: RunningHub,
                                                                     servers: tuple[Server, Server]) -> None:
    public, internal = servers
    inner = f"{public.base}/r?u={quote(f'{internal.base}/secret')}"
    refused, text = await ingest(hub, f"{public.base}/r?u={quote(f'{public.base}/r?u={quote(inner)}')}")
    assert refused and "127.0.0.1 is a loopback address" in text and SECRET not in text
    assert "/secret" not in internal.hits and await documents(hub, "web") == 0


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/secret", "http://localhost:{port}/secret",
                                 "http://[::ffff:127.0.0.1]:{port}/secret", "http://2130706433:{port}/secret"])
async def test_an_internal_url_is_refused_and_the_setting_that_allows_it_is_named(
        hub: RunningHub, servers: tuple[Server, Server], url: str) -> None:
    _, internal = servers
    refused, text = await ingest(hub, url.format(port=internal.port))
    assert refused and text.startswith("refused http://"), text
    if "canonical" not in text:
        assert "set [providers.rag] allow_private_urls = true" in text and "to [outbound] allowed_networks" in text
    assert SECRET not in text and "/secret" not in internal.hits


async def test_a_redirect_loop_ends(hub: RunningHub, servers: tuple[Server, Server]) -> None:
    public, _ = servers
    refused, text = await ingest(hub, f"{public.base}/loop")
    assert refused and text == f"{public.base}/loop redirected more than 5 times ([outbound] max_redirects)"


async def test_the_hub_still_serves_and_kept_no_secret(hub: RunningHub, servers: tuple[Server, Server]) -> None:
    public, internal = servers
    refused, text = await ingest(hub, f"{public.base}/r?u=/page", namespace="allowed")
    assert not refused, text
    assert await documents(hub, "allowed") == 1
    async with Client(hub.url, mode="2026-07-28") as client:
        found = await client.call_tool("rag__search", {"query": "lighthouse opens", "namespaces": ["allowed"]})
    assert "nine" in found.structured_content["results"][0]["text"]
    assert "/secret" not in internal.hits
    assert secret_in_data(hub.data_dir) == []
    assert all(SECRET not in (row[5] or "") for row in recorded_calls(hub.data_dir, "rag__ingest"))


@pytest.fixture(scope="module")
def private_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with serve_hub(tmp_path_factory.mktemp("ssrf-private"), rag_config("allow_private_urls = true"),
                   timeout=60) as running:
        yield running


async def test_allow_private_urls_follows_the_same_redirect_but_never_to_metadata(
        private_hub: RunningHub, servers: tuple[Server, Server]) -> None:
    public, _ = servers
    internal = Server().start()  # its own, so that the shared one is never reached by any test
    try:
        refused, text = await ingest(private_hub, f"{public.base}/r?u={quote(f'{internal.base}/secret')}")
    finally:
        internal.stop()
    assert not refused, text
    assert internal.hits == ["/secret"]
    async with Client(private_hub.url, mode="2026-07-28") as client:
        found = await client.call_tool("rag__search", {"query": "internal only", "namespaces": ["web"]})
    assert SECRET in found.structured_content["results"][0]["text"]  # what the admin allowed
    for aimed, why in [("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
                       ("http://[fd00:ec2::254]/latest/", "fd00:ec2::254 is a cloud metadata address"),
                       ("file:///etc/passwd", "only http and https URLs can be fetched")]:
        refused, text = await ingest(private_hub, f"{public.base}/r?u={quote(aimed)}")
        assert refused and why in text, text
        assert "allow_private_urls" not in text  # that switch does not open these
