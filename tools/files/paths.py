"""Paths a client gives, turned into files inside a root, or refused with the reason.

The one gate every files tool goes through. A client's path is relative to a named root and uses
`/`. Refused before touching the disk: NUL and other control characters, absolute paths, `~`,
Windows forms (drive letters, backslashes, UNC, reserved device names, alternate data streams),
`..`, names longer than the file system allows. Refused after looking: anything whose real path
(symlinks followed) leaves the root, files with more than one hard link (another name for the same
data may be outside), device files, FIFOs and sockets, files over the size limit, and writes to a
read-only root. Files are opened with `O_NOFOLLOW` and checked again on the open descriptor, so a
symlink swapped in between the check and the open is refused too.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_DRIVE = re.compile(r"^[A-Za-z]:")
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


class PathRefused(Exception):
    """A path the files tools will not touch; the message says which path and why."""


@dataclass(frozen=True)
class Root:
    name: str
    path: Path
    writable: bool = False
    max_bytes: int = 50 * 1024 * 1024

    @property
    def real(self) -> Path:
        return Path(os.path.realpath(self.path))


def check_syntax(given: str, root: Root) -> list[str]:
    """The path's parts, or `PathRefused` for what is wrong with how it is written."""
    where = f"{given!r} (root '{root.name}')"
    if not isinstance(given, str):
        raise PathRefused(f"the path must be a string, got {type(given).__name__}")
    if "\x00" in given:
        raise PathRefused(f"{where}: a path cannot contain a NUL character")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in given):
        raise PathRefused(f"{where}: a path cannot contain control characters")
    if "\\" in given:
        raise PathRefused(f"{where}: use / between folders (backslashes are refused)")
    if given.startswith("/"):
        raise PathRefused(f"{where}: absolute paths are refused; give a path inside the root")
    if given.startswith("~"):
        raise PathRefused(f"{where}: ~ (a home folder) is refused; give a path inside the root")
    if _DRIVE.match(given):
        raise PathRefused(f"{where}: drive letters are refused; give a path inside the root")
    if len(given.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise PathRefused(f"{given[:40]!r}... (root '{root.name}'): the path is longer than {MAX_PATH_BYTES} bytes")
    parts = [p for p in given.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            raise PathRefused(f"{where}: '..' is refused; paths stay inside the root")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise PathRefused(f"{given[:40]!r}... (root '{root.name}'): a name is longer than {MAX_NAME_BYTES} bytes")
        if ":" in part:
            raise PathRefused(f"{where}: ':' in a name is refused (alternate data streams)")
        if _RESERVED.match(part) or part.endswith((".", " ")) and part.strip(". "):
            raise PathRefused(f"{where}: {part!r} is a reserved or ambiguous name on some systems")
    return parts


def resolve(root: Root, given: str, *, write: bool = False) -> Path:
    """The path inside `root` that `given` names (it may not exist yet), or `PathRefused`."""
    parts = check_syntax(given, root)
    where = f"{given!r} (root '{root.name}')"
    if write and not root.writable:
        raise PathRefused(f"{where}: the root '{root.name}' is read-only")
    real_root = root.real
    target = real_root.joinpath(*parts)
    # Follow symlinks as far as the path exists; what is left may not exist yet (a new file).
    real = Path(os.path.realpath(target))
    if real != real_root and not real.is_relative_to(real_root):
        raise PathRefused(f"{where}: it leads outside the root (through a symbolic link)")
    if real.exists():
        info = os.stat(real)
        kind = stat.S_IFMT(info.st_mode)
        if kind not in (stat.S_IFREG, stat.S_IFDIR):
            names = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO",
                     stat.S_IFSOCK: "a socket"}
            raise PathRefused(f"{where}: it is {names.get(kind, 'not a regular file')}, not a file or folder")
        if kind == stat.S_IFREG and info.st_nlink > 1:
            raise PathRefused(f"{where}: the file has other hard links (another name for it may be outside "
                              "the root)")
    return real


def entry(root: Root, given: str, *, write: bool = False) -> Path:
    """The directory entry `given` names, not followed: its folder goes through `resolve`, its own name is
    taken as it is. For moving and deleting, which act on a symbolic link itself, never on its target."""
    parts = check_syntax(given, root)
    if not parts:
        return resolve(root, "", write=write)
    parent = resolve(root, "/".join(parts[:-1]), write=write)
    return parent / parts[-1]


def open_file(root: Root, given: str) -> tuple[int, os.stat_result]:
    """A file inside the root opened for reading: (descriptor, its stat), after every check."""
    path = resolve(root, given)
    where = f"{given!r} (root '{root.name}')"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise PathRefused(f"{where}: no such file") from None
    except IsADirectoryError:
        raise PathRefused(f"{where}: it is a folder, not a file") from None
    except OSError as exc:
        raise PathRefused(f"{where}: cannot open it ({exc.strerror})") from None
    info = os.fstat(fd)
    problem = None
    if stat.S_ISDIR(info.st_mode):
        problem = "it is a folder, not a file"
    elif not stat.S_ISREG(info.st_mode):
        problem = "it is not a regular file"
    elif info.st_nlink > 1:
        problem = "the file has other hard links (another name for it may be outside the root)"
    elif info.st_size > root.max_bytes:
        problem = f"it is {info.st_size / 2**20:.1f} MB, over the limit of {root.max_bytes / 2**20:g} MB"
    if problem:
        os.close(fd)
        raise PathRefused(f"{where}: {problem}")
    return fd, info


def read_bytes(root: Root, given: str) -> bytes:
    fd, info = open_file(root, given)
    try:
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(root.max_bytes + 1)
    finally:
        os.close(fd)
