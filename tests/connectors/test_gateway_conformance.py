"""The hub is transparent: the conformance fixtures run in a separate upstream process (another
Junction, over stdio or Streamable HTTP), linked as a connector, and both requirement sets still
pass in full against the front hub."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.fixtures.conformance_suite import CONFORMANCE, check_problems, required_scenarios, run_conformance
from tests.fixtures.upstreams import CONFORMANCE_UPSTREAM, stdio_connector
from tests.helpers import serve_hub

pytestmark = pytest.mark.skipif(not CONFORMANCE.exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")

def assert_passes(url: str, revision: str, out: Path) -> None:
    code, output = run_conformance(["--url", url, "--requirements", revision], out)
    passed = set(re.findall(r"^✓ (\S+): \d+ passed, 0 failed$", output, re.M))
    missing = set(required_scenarios(revision)) - passed
    assert not missing, f"scenarios not passing through the gateway: {missing}\n{output[-4000:]}"
    assert code == 0, output[-4000:]
    assert not check_problems(out), "\n".join(check_problems(out))


@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
def test_stdio_upstream_is_transparent(tmp_path: Path, revision: str) -> None:
    with serve_hub(tmp_path / "front", stdio_connector(tmp_path, "auto")) as front:
        assert_passes(front.url, revision, tmp_path / "out")


@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
def test_http_upstream_is_transparent(tmp_path: Path, revision: str) -> None:
    with serve_hub(tmp_path / "upstream", CONFORMANCE_UPSTREAM) as upstream:
        connector = f'[connectors.up]\nurl = "{upstream.url}"\nprefix = ""\n'
        with serve_hub(tmp_path / "front", connector) as front:
            assert_passes(front.url, revision, tmp_path / "out")


def test_2025_clients_through_a_2025_upstream(tmp_path: Path) -> None:
    with serve_hub(tmp_path / "front", stdio_connector(tmp_path, "legacy")) as front:
        assert_passes(front.url, "2025-11-25", tmp_path / "out")


def test_2025_clients_through_a_2025_http_upstream(tmp_path: Path) -> None:
    """Relayed calls joining the hub's upstream session: ids, server requests, resumption all mapped."""
    with serve_hub(tmp_path / "upstream", CONFORMANCE_UPSTREAM) as upstream:
        connector = f'[connectors.up]\nurl = "{upstream.url}"\nprefix = ""\nprotocol = "legacy"\n'
        with serve_hub(tmp_path / "front", connector) as front:
            assert_passes(front.url, "2025-11-25", tmp_path / "out")


# A 2025 upstream decides what to ask from the capabilities its session declared. Over HTTP the hub
# opens a session declaring only the caller's capabilities; a stdio upstream's session is a process
# of its own (its state would drift from the shared one), so there the upstream may ask for what the
# caller lacks, and the caller gets -32021 instead of the input round it expected.
KNOWN_GAPS_2025_STDIO_UPSTREAM = {"input-required-result-capability-check"}


def assert_passes_except(url: str, out: Path, gaps: set[str]) -> None:
    code, output = run_conformance(["--url", url, "--requirements", "2026-07-28"], out)
    passed = set(re.findall(r"^✓ (\S+): \d+ passed, 0 failed$", output, re.M))
    missing = set(required_scenarios("2026-07-28")) - passed
    assert missing == gaps, f"{missing}\n{output[-4000:]}"
    problems = [p for p in check_problems(out) if not any(gap in p for gap in gaps)]
    assert not problems, "\n".join(problems)


def test_2026_clients_through_a_2025_http_upstream(tmp_path: Path) -> None:
    """Era bridging with the upstream's live requests parked and turned into InputRequiredResult rounds."""
    with serve_hub(tmp_path / "upstream", CONFORMANCE_UPSTREAM) as upstream:
        connector = f'[connectors.up]\nurl = "{upstream.url}"\nprefix = ""\nprotocol = "legacy"\n'
        with serve_hub(tmp_path / "front", connector) as front:
            assert_passes_except(front.url, tmp_path / "out", set())


def test_2026_clients_through_a_2025_stdio_upstream(tmp_path: Path) -> None:
    with serve_hub(tmp_path / "front", stdio_connector(tmp_path, "legacy")) as front:
        assert_passes_except(front.url, tmp_path / "out", KNOWN_GAPS_2025_STDIO_UPSTREAM)
