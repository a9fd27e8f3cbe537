"""`scripts/screenshots.py`, which takes the README's pictures of the console, still runs: each page it names is
reached as a signed-in admin and saved as a PNG of the browser's width."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import NODE_MODULES, ROOT

pytestmark = pytest.mark.skipif(not (NODE_MODULES / "playwright-core").exists() and not os.environ.get("CI"),
                                reason="npm test tools not installed (run scripts/test.sh)")


def test_the_screenshots_script_saves_each_page(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "scripts/screenshots.py", "--out", str(tmp_path), "--only",
                           "overview,connectors"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [str(tmp_path / "overview.png"), str(tmp_path / "connectors.png")]
    for name in ("overview", "connectors"):
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width == 1280 and height >= 600, (name, width, height)
    wrong = subprocess.run([sys.executable, "scripts/screenshots.py", "--only", "nothing"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "--only names no page; the pages are overview, " in wrong.stderr
