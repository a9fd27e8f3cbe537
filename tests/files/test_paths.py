"""The files tools' path gate against attacks: every case must be refused with its reason, and
nothing outside the root is read, even when the attack is set up on the disk."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tools.files.paths import PathRefused, Root, check_syntax, read_bytes, resolve

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
]


@pytest.mark.parametrize(("given", "why"), SYNTAX)
def test_refused_as_written(tmp_path: Path, given: str, why: str) -> None:
    root = Root("docs", tmp_path)
    with pytest.raises(PathRefused) as err:
        check_syntax(given, root)
    assert why in str(err.value) and "root 'docs'" in str(err.value)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Root, Path]:
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


DISK = [
    ("link-to-secret.txt", "leads outside the root"), ("link-to-outside/secret.txt", "leads outside the root"),
    ("link-to-outside", "leads outside the root"), ("relative-link.txt", "leads outside the root"),
    ("passwd", "leads outside the root"), ("loop-a", "Too many levels of symbolic links"),
    ("hardlink.txt", "other hard links"), ("fifo", "a FIFO"), ("sock", "a socket"),
    ("big.bin", "over the limit of 2 MB"), ("sub", "it is a folder"), ("missing.txt", "no such file"),
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
    assert read_bytes(root, "inside-link.txt") == b"inside"  # a link that stays inside the root is fine
    assert resolve(root, "") == root.real and resolve(root, "new/file.txt") == root.real / "new" / "file.txt"


def test_device_files_and_read_only_roots(world: tuple[Root, Path]) -> None:
    root, _ = world
    devroot = Root("dev", Path("/dev"))
    with pytest.raises(PathRefused, match="a character device"):
        read_bytes(devroot, "null")
    with pytest.raises(PathRefused, match="the root 'docs' is read-only"):
        resolve(root, "new.txt", write=True)
    writable = Root("docs", root.path, writable=True)
    assert resolve(writable, "new.txt", write=True).name == "new.txt"


def test_a_symlink_swapped_in_after_the_check_is_not_followed(world: tuple[Root, Path]) -> None:
    root, outside = world
    target = root.path / "swap.txt"
    target.write_text("fine")
    assert resolve(root, "swap.txt") == root.real / "swap.txt"
    target.unlink()
    os.symlink(outside / "secret.txt", target)  # the race: replaced between check and open
    from tools.files import paths

    original = paths.resolve
    paths.resolve = lambda r, g, write=False: r.real / g  # the check already passed
    try:
        with pytest.raises(PathRefused, match="cannot open it|leads outside"):
            paths.open_file(root, "swap.txt")
    finally:
        paths.resolve = original


def test_at_least_forty_attacks() -> None:
    assert len(SYNTAX) + len(DISK) >= 40
