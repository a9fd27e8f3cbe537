"""The files tools' path gate against attacks: every case must be refused with its reason, and
nothing outside the root is read, even when the attack is set up on the disk. Every disk test runs twice:
with openat2 (where this kernel has it) and with the per-component walk that replaces it elsewhere."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tools.files import paths
from tools.files.paths import PathRefused, Root, check_syntax, read_bytes, stat_path, write_file

SYNTAX = [  # (path, part of the reason)
    ("a\x00b", "NUL"), ("notes\x00.txt", "NUL"), ("a\nb", "control characters"), ("a\x1bb", "control characters"),
    ("a\x7fb", "control characters"),
    ("/etc/passwd", "absolute paths"), ("//server/share", "absolute paths"), ("/", "absolute paths"),
    ("~/secret", "~ (a home folder)"), ("~root/.ssh", "~ (a home folder)"), ("~", "~ (a home folder)"),
    ("..", "'..' is refused"), ("../etc/passwd", "'..' is refused"), ("a/../../b", "'..' is refused"),
    ("a/..", "'..' is refused"), ("./../x", "'..' is refused"), ("a/b/../../../c", "'..' is refused"),
    ("..\\windows", "backslashes"), ("a\\b", "backslashes"), ("\\\\server\\share", "backslashes"),
    ("C:/Windows", "drive letters"), ("c:secret", "drive letters"), ("Z:", "drive letters"),
    ("file.txt:stream", "alternate data streams"), ("a/b:$DATA", "alternate data streams"),
    ("CON", "reserved"), ("nul.txt", "reserved"), ("com1", "reserved"), ("LPT9.log", "reserved"),
    ("notes.", "reserved or ambiguous"), ("trailing ", "reserved or ambiguous"),
    ("x" * 256, "longer than 255 bytes"), ("é" * 128, "longer than 255 bytes"),
    ("/".join(["d" * 200] * 25), "longer than 4096 bytes"),
    ("\udcff.txt", "lone surrogate"), ("a/\ud800/b", "lone surrogate"), ("x\udfffy", "lone surrogate"),
    (".junction-write-0123456789abcdef.tmp", "a write in progress"),
]


@pytest.mark.parametrize(("given", "why"), SYNTAX)
def test_refused_as_written(tmp_path: Path, given: str, why: str) -> None:
    root = Root("docs", tmp_path)
    with pytest.raises(PathRefused) as err:
        check_syntax(given, root)
    assert why in str(err.value) and "root 'docs'" in str(err.value)


@pytest.fixture(params=["openat2", "walk"])
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of resolving without following links; openat2 only where this kernel has it."""
    if request.param == "walk":
        monkeypatch.setattr(paths.OPENAT2, "usable", False)
    elif not paths.OPENAT2.usable:
        pytest.skip("openat2 is not available here")
    return request.param


@pytest.fixture
def world(tmp_path: Path, strategy: str) -> tuple[Root, Path]:
    root_dir, outside = tmp_path / "root", tmp_path / "outside"
    root_dir.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("the outside secret")
    (root_dir / "ok.txt").write_text("inside")
    (root_dir / "sub").mkdir()
    (root_dir / "sub" / "deep.txt").write_text("deeper")
    os.symlink(outside / "secret.txt", root_dir / "link-to-secret.txt")
    os.symlink(outside, root_dir / "link-to-outside")
    os.symlink("../outside/secret.txt", root_dir / "relative-link.txt")
    os.symlink("/etc/passwd", root_dir / "passwd")
    os.symlink(root_dir / "loop-b", root_dir / "loop-a")
    os.symlink(root_dir / "loop-a", root_dir / "loop-b")
    os.symlink(root_dir / "ok.txt", root_dir / "inside-link.txt")  # stays inside: allowed
    os.link(outside / "secret.txt", root_dir / "hardlink.txt")
    os.mkfifo(root_dir / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root_dir / "sock"))
    sock.close()
    with open(root_dir / "big.bin", "wb") as fh:
        fh.truncate(3 * 1024 * 1024)
    return Root("docs", root_dir, writable=False, max_bytes=2 * 1024 * 1024), outside


LINK = "is a symbolic link; the files tools never follow links"
DISK = [
    ("link-to-secret.txt", LINK), ("link-to-outside/secret.txt", LINK), ("link-to-outside", LINK),
    ("relative-link.txt", LINK), ("passwd", LINK), ("loop-a", LINK), ("inside-link.txt", LINK),
    ("hardlink.txt", "other hard links"), ("fifo", "a FIFO"), ("sock", "a socket"),
    ("big.bin", "over the limit of 2 MB"), ("sub", "it is a folder"), ("missing.txt", "no such file"),
    ("missing/x.txt", "no such folder 'missing'"), ("ok.txt/x", "'ok.txt' is not a folder"),
]


@pytest.mark.parametrize(("given", "why"), DISK)
def test_refused_after_looking(world: tuple[Root, Path], given: str, why: str) -> None:
    root, _ = world
    with pytest.raises(PathRefused) as err:
        read_bytes(root, given)
    assert why in str(err.value), str(err.value)


def test_what_is_inside_is_read(world: tuple[Root, Path]) -> None:
    root, _ = world
    assert read_bytes(root, "ok.txt") == b"inside"
    assert read_bytes(root, "./sub//deep.txt") == b"deeper"
    assert stat_path(root, "").st_ino == root.real.stat().st_ino and stat_path(root, "sub/deep.txt").st_size == 6


def test_device_files_and_read_only_roots(world: tuple[Root, Path]) -> None:
    root, _ = world
    devroot = Root("dev", Path("/dev"))
    with pytest.raises(PathRefused, match="a character device"):
        read_bytes(devroot, "null")
    with pytest.raises(PathRefused, match="the root 'docs' is read-only"):
        write_file(root, "new.txt", b"x")
    writable = Root("docs", root.path, writable=True)
    assert write_file(writable, "new/file.txt", b"made") is False and read_bytes(writable, "new/file.txt") == b"made"
    for given in ("link-to-outside/planted.txt", "link-to-outside/deeper/planted.txt", "inside-link.txt"):
        with pytest.raises(PathRefused, match="symbolic link"):
            write_file(writable, given, b"x")
    assert sorted(p.name for p in (root.path.parent / "outside").iterdir()) == ["secret.txt"]


def test_at_least_forty_attacks() -> None:
    assert len(SYNTAX) + len(DISK) >= 40


def test_where_openat2_is_refused_the_walk_takes_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An old kernel or a seccomp filter answers openat2 with ENOSYS or EPERM (neither can be had on this
    machine, so that answer is simulated): the gate switches to the walk for good, refuses the same things,
    and moves still never overwrite (without renameat2 too)."""
    import ctypes
    import errno

    class Refusing:
        def syscall(self, *args: object) -> int:
            ctypes.set_errno(errno.ENOSYS)
            return -1

    monkeypatch.setattr(paths, "_LIBC", Refusing())
    gate = paths._Openat2()
    monkeypatch.setattr(paths, "OPENAT2", gate)
    (tmp_path / "r" / "sub").mkdir(parents=True)
    (tmp_path / "r" / "sub" / "a.txt").write_text("a")
    (tmp_path / "r" / "b.txt").write_text("b")
    os.symlink(tmp_path, tmp_path / "r" / "up")
    root = Root("r", tmp_path / "r", writable=True)
    assert read_bytes(root, "sub/a.txt") == b"a" and gate.usable is False
    with pytest.raises(PathRefused, match="'up' is a symbolic link"):
        read_bytes(root, "up/r/b.txt")
    with pytest.raises(PathRefused, match="moves never overwrite"):
        paths.move(root, "b.txt", "sub/a.txt")
    paths.move(root, "b.txt", "sub/b.txt")
    assert read_bytes(root, "sub/b.txt") == b"b" and read_bytes(root, "sub/a.txt") == b"a"
