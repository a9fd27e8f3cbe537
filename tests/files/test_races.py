"""The path gate against a local attacker who races it: a thread swaps a folder in the middle of the path
for a symbolic link to a folder outside the root, over and over, while another thread reads, writes, makes
folders, moves, deletes and lists through the gate. Nothing outside may be read or touched, ever; both
states of the swap must have been met (else the race did not happen). Runs with openat2 and with the walk."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.swapper import Swapper, outside_state
from tools.files import paths
from tools.files.paths import PathRefused, Root

ATTEMPTS = 1500
SECRET = b"OUTSIDE-SECRET"


@pytest.fixture(params=["openat2", "walk"])
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "walk":
        monkeypatch.setattr(paths.OPENAT2, "usable", False)
    elif not paths.OPENAT2.usable:
        pytest.skip("openat2 is not available here")
    return request.param


def test_swapping_a_middle_folder_for_a_link_never_escapes(tmp_path: Path, strategy: str) -> None:
    root_dir, outside = tmp_path / "root", tmp_path / "outside"
    (root_dir / "a" / "b").mkdir(parents=True)
    (outside / "b").mkdir(parents=True)
    (root_dir / "a" / "b" / "f.txt").write_bytes(b"inside")
    (outside / "b" / "f.txt").write_bytes(SECRET)  # the same names outside, so a followed link would succeed
    (outside / "b" / "victim.txt").write_bytes(SECRET)
    before = outside_state(outside)
    root = Root("race", root_dir, writable=True)

    def one(number: int) -> bytes | None:
        kind = number % 7
        if kind == 0:
            return paths.read_bytes(root, "a/b/f.txt")
        if kind == 1:
            paths.write_file(root, f"a/b/new-{number}.txt", b"written")
        elif kind == 2:
            paths.make_folder(root, f"a/b/dir-{number}")
        elif kind == 3:
            paths.write_file(root, f"a/b/m-{number}.txt", b"m")
            paths.move(root, f"a/b/m-{number}.txt", f"a/b/moved-{number}.txt")
        elif kind == 4:
            paths.trash(root, "a/b/victim.txt")
        elif kind == 5:
            return b"".join(found.read(root.max_bytes) for found in paths.Walk(root, "a") if found.kind == "file")
        else:
            paths.stat_path(root, "a/b/f.txt")
        return None

    swapper = Swapper(root_dir, outside)
    swapper.start()
    refused = done = 0
    leaked: list[str] = []
    try:
        deadline = time.monotonic() + 120
        number = 0
        while number < ATTEMPTS or not (refused and done):
            assert time.monotonic() < deadline, f"the race did not happen: {done} done, {refused} refused"
            try:
                data = one(number)
                done += 1
                if data is not None and SECRET in data:
                    leaked.append(f"attempt {number}")
            except PathRefused:
                refused += 1
            except OSError:  # the swap moved a name away mid-call (ENOENT and the like): not an escape
                refused += 1
            number += 1
    finally:
        swapper.stop()
    print(f"{strategy}: {number} attempts, {done} done, {refused} refused, {swapper.swaps} swaps, "
          f"{len(leaked)} read from outside, outside changed: {outside_state(outside) != before}")
    assert not leaked
    assert outside_state(outside) == before, "something was created, changed or removed outside the root"
    assert not (root_dir / "a").is_symlink()
