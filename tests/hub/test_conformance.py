"""The official MCP conformance suite (npm @modelcontextprotocol/conformance, Node 24) against the hub.

Both frozen requirement sets must pass in full with no expected-failures file, plus the
pending/unscored header, schema and SSE-polling scenarios the hub also implements. The
fixtures the suite calls come from `tests/fixtures/conformance.py`, a provider like any other.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.conformance_suite import CONFORMANCE, check_problems, required_scenarios, run_conformance
from tests.helpers import RunningHub, serve_hub

CONFIG = """
[providers.conformance]
module = "tests.fixtures.conformance:ConformanceProvider"
prefix = ""
"""

pytestmark = pytest.mark.skipif(not CONFORMANCE.exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")


@pytest.fixture(scope="module")
def conformance_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with serve_hub(tmp_path_factory.mktemp("conformance"), CONFIG) as hub:
        yield hub


@pytest.mark.parametrize(("revision", "count"), [("2025-11-25", 30), ("2026-07-28", 37)])
def test_requirement_set_passes_in_full(conformance_hub: RunningHub, tmp_path: Path, revision: str, count: int) -> None:
    required = required_scenarios(revision)
    assert len(required) == count
    code, output = run_conformance(["--url", conformance_hub.url, "--requirements", revision], tmp_path)
    passed = set(re.findall(r"^✓ (\S+): \d+ passed, 0 failed$", output, re.M))
    assert not set(required) - passed, f"scenarios not passing: {set(required) - passed}\n{output[-4000:]}"
    assert code == 0, output[-4000:]
    assert not check_problems(tmp_path), "\n".join(check_problems(tmp_path))


@pytest.mark.parametrize(
    ("scenario", "spec_version"),
    [
        ("http-header-validation", "2026-07-28"),
        ("http-custom-header-server-validation", "2026-07-28"),
        ("json-schema-2020-12", "2026-07-28"),
        ("json-schema-2020-12", "2025-11-25"),
        ("server-sse-polling", "2025-11-25"),
        ("server-session-lifecycle", "2025-11-25"),
    ],
)
def test_unscored_scenarios_we_implement(conformance_hub: RunningHub, tmp_path: Path, scenario: str,
                                         spec_version: str) -> None:
    code, output = run_conformance(["--url", conformance_hub.url, "--scenario", scenario, "--spec-version", spec_version],
                        tmp_path)
    assert code == 0 and re.search(r"Passed: (\d+)/\1, 0 failed, 0 warnings", output), output[-3000:]
    assert not check_problems(tmp_path, skip=()), "\n".join(check_problems(tmp_path, skip=()))
