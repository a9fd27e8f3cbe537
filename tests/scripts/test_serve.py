"""`scripts/serve.sh`, the README's first command, on a fresh copy of the project: the first run says what it
installs before the install's minute (it was silent, then printed a setuptools warning), keeps pip's chatter in a
log, and starts the hub; a second run starts at once without installing. A real install into a new venv (pip
takes the wheels from its cache when `scripts/test.sh` has just installed the same ones)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.helpers import ROOT


def copy_of_the_project(to: Path) -> Path:
    """The project's files as git knows them (a clone would miss what is not committed yet)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not name.startswith("tests/"):
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, to / name)
    return to


def serve(project: Path, home: Path, timeout: float) -> tuple[list[str], str | None]:
    """Run serve.sh until the hub prints its MCP URL (or the deadline); its output lines and that URL."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUNCTION", "VIRTUAL_ENV", "PYTHON", "PIP_REQUIRE"))}
    env.update(XDG_DATA_HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(["bash", "scripts/serve.sh", "--port", "0"], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    found: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            match = re.search(r"MCP endpoint \(Streamable HTTP, both protocol eras\): (\S+)", line)
            if match:
                found.append(match.group(1))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
    return lines, (found[0] if found else None)


def test_the_first_run_says_what_it_installs_and_the_second_starts_at_once(tmp_path: Path) -> None:
    project = copy_of_the_project(tmp_path / "junction")
    started = time.monotonic()
    lines, url = serve(project, tmp_path / "home", timeout=900)
    assert url is not None and url.startswith("http://127.0.0.1:"), "\n".join(lines[-40:])
    first = lines[0]
    assert first.startswith("junction: installing Junction into .venv with what it needs (mcp, "), lines[:3]
    assert "takes a minute or two, once" in first
    install_lines = lines[:next(i for i, line in enumerate(lines) if "starting the hub" in line) + 1]
    assert len(install_lines) == 2, install_lines  # what it installs, then that it did: pip's output is in the log
    assert re.match(r"junction: installed in \d+ s \(pip's output: \.venv/install\.log\); starting the hub",
                    install_lines[1]), install_lines
    assert not any("setuptools" in line or "Warning" in line for line in lines), lines
    assert (project / ".venv" / "install.log").is_file()

    again, url = serve(project, tmp_path / "home", timeout=max(120.0, time.monotonic() - started))
    assert url is not None, "\n".join(again[-40:])
    assert not any("installing" in line or "installed in" in line for line in again), again[:5]
