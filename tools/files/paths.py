"""Paths a client gives, turned into places inside a root, or refused with the reason; and every disk
action the files tools take there.

The one gate every files tool goes through, and the only module that touches a root's disk. A client's
path is relative to a named root and uses `/`. Refused before touching the disk: NUL and other control
characters, lone surrogates (not characters: they would become bytes that are not UTF-8), absolute
paths, `~`, Windows forms (drive letters, backslashes, UNC, reserved device names, alternate data
streams), `..`, names longer than the file system allows. Refused after looking: symbolic links (any
of them, anywhere on the path: they are never followed, whether they lead inside the root or out),
files with more than one hard link (another name for the same data may be outside), device files,
FIFOs and sockets, files over the size limit, and writes to a read-only root.

What is guaranteed, and how: a path is never looked up as a string from `/`. The root is opened once
per call; every folder on the way is opened relative to the folder before it, with
`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has it (Linux 5.6+; not refused by a
seccomp filter), else one `openat(O_NOFOLLOW | O_DIRECTORY)` per component; both refuse a link at any
component atomically. What the call then does (open, create, rename, remove, mkdir) is done by name
inside the last folder's descriptor (`dir_fd`), so a folder swapped for a symbolic link at any moment
makes the call fail or act on the folder it already holds; it never reaches what the link points at.
Files are checked again on the open descriptor (`fstat`). Moves and restores never replace anything
(`renameat2(RENAME_NOREPLACE)`; where the system lacks it, a check just before the rename).

Not guaranteed: a folder that someone with write access to the disk *moves* (renames) from inside the
root to outside while a call holds it: the call finishes in that folder, wherever it now is. That takes
write access to both places; what a client sends cannot cause it.

Writes go to a temp file named `.junction-write-<16 hex>.tmp` in the same folder (locked while it is
written), then are renamed over the target. Listings never show such files, and `clean_temp_files`
removes the ones a killed write left (the ones no live writer holds locked).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import platform
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hub.provider import ToolError

log = logging.getLogger("junction.files")
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_DEPTH = 100
"""Folders deeper than this under the folder a walk starts at are not entered (nor cleaned of temp files)."""
TEMP_NAME = re.compile(r"^\.junction-write-[0-9a-f]{16}\.tmp$")
TRASH = ".trash"
_DRIVE = re.compile(r"^[A-Za-z]:")
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | _CLOEXEC
_KINDS = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO",
          stat.S_IFSOCK: "a socket"}
LINK_REFUSED = "is a symbolic link; the files tools never follow links (a link can lead outside the root)"


class PathRefused(ToolError):
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


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def shown(name: str) -> str:
    """A name read from the disk as text that can always be encoded: bytes that are not UTF-8 as `\\xff`."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def check_syntax(given: str, root: Root) -> list[str]:
    """The path's parts, or `PathRefused` for what is wrong with how it is written."""
    if not isinstance(given, str):
        raise PathRefused(f"the path must be a string, got {type(given).__name__}")
    where = f"{given!r} (root '{root.name}')"
    if "\x00" in given:
        raise PathRefused(f"{where}: a path cannot contain a NUL character")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in given):
        raise PathRefused(f"{where}: a path cannot contain control characters")
    surrogate = _SURROGATE.search(given)
    if surrogate:
        raise PathRefused(f"{where}: {surrogate.group()!r} at character {surrogate.start()} is a lone surrogate, "
                          "not a character (it would become a name that is not UTF-8); send valid Unicode")
    if "\\" in given:
        raise PathRefused(f"{where}: use / between folders (backslashes are refused)")
    if given.startswith("/"):
        raise PathRefused(f"{where}: absolute paths are refused; give a path inside the root")
    if given.startswith("~"):
        raise PathRefused(f"{where}: ~ (a home folder) is refused; give a path inside the root")
    if _DRIVE.match(given):
        raise PathRefused(f"{where}: drive letters are refused; give a path inside the root")
    if len(given.encode("utf-8")) > MAX_PATH_BYTES:
        raise PathRefused(f"{given[:40]!r}... (root '{root.name}'): the path is longer than {MAX_PATH_BYTES} bytes")
    parts = [p for p in given.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            raise PathRefused(f"{where}: '..' is refused; paths stay inside the root")
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise PathRefused(f"{given[:40]!r}... (root '{root.name}'): a name is longer than {MAX_NAME_BYTES} bytes")
        if ":" in part:
            raise PathRefused(f"{where}: ':' in a name is refused (alternate data streams)")
        if _RESERVED.match(part) or part.endswith((".", " ")) and part.strip(". "):
            raise PathRefused(f"{where}: {part!r} is a reserved or ambiguous name on some systems")
        if TEMP_NAME.match(part):
            raise PathRefused(f"{where}: {part!r} is the name of a write in progress")
    return parts


# resolving without following links --------------------------------------------------------------------
def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()


class _Openat2:
    """openat2(2) through ctypes, resolving a relative path beneath a folder descriptor without following
    any link. `usable` turns False for good when the kernel (or a seccomp filter) says no."""

    SYSCALL = 437  # the same number on every architecture with the unified table (added in Linux 5.6)
    ARCHES = frozenset({"x86_64", "amd64", "aarch64", "arm64", "armv7l", "armv8l", "riscv64", "ppc64le", "s390x", "i686",
              "i386", "loongarch64"})
    RESOLVE = 0x02 | 0x04 | 0x08  # RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH

    class How(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

    def __init__(self) -> None:
        self.usable = (_LIBC is not None and platform.system() == "Linux"
                       and platform.machine().lower() in self.ARCHES)

    def open(self, dir_fd: int, path: str, flags: int) -> int | None:
        """A descriptor, None when openat2 cannot be used here (the caller walks instead), or OSError."""
        if not self.usable or _LIBC is None:
            return None
        how = self.How(flags, 0, self.RESOLVE)
        fd = _LIBC.syscall(ctypes.c_long(self.SYSCALL), ctypes.c_int(dir_fd), ctypes.c_char_p(os.fsencode(path)),
                                ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EPERM, errno.E2BIG):  # an old kernel, or a seccomp filter
            self.usable = False
            log.info("files: openat2 is not available here (%s); paths are resolved one folder at a time",
                     errno.errorcode.get(code, code))
            return None
        raise OSError(code, os.strerror(code), path)


OPENAT2 = _Openat2()
"""Tests switch `OPENAT2.usable` off to exercise the per-component walk."""


def _renameat2_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """Rename that fails with FileExistsError instead of replacing `dst`."""
    rename = getattr(_LIBC, "renameat2", None) if _LIBC is not None else None
    if rename is not None:
        if rename(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), 1) == 0:  # RENAME_NOREPLACE
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.EPERM):  # EINVAL: the file system cannot do it
            raise OSError(code, os.strerror(code), dst)
    if _lstat(dst_fd, dst) is not None:  # a check, then the rename: the best a system without renameat2 allows
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _where(root: Root, given: str) -> str:
    return f"{given!r} (root '{root.name}')"


def _open_root(root: Root) -> int:
    try:
        return os.open(root.real, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    except OSError as exc:
        raise PathRefused(f"root '{root.name}': cannot open {root.path} ({exc.strerror})") from None


def _why_not_a_folder(dir_fd: int, parts: list[str], given: str, root: Root) -> PathRefused:
    """Which component stopped the walk, and why: looked up again only to word the refusal."""
    fd = os.dup(dir_fd)
    try:
        for number, part in enumerate(parts):
            at = "/".join(parts[:number + 1])
            info = _lstat(fd, part)
            if info is None:
                return PathRefused(f"{_where(root, given)}: no such folder {at!r}")
            if stat.S_ISLNK(info.st_mode):
                return PathRefused(f"{_where(root, given)}: {at!r} {LINK_REFUSED}")
            if not stat.S_ISDIR(info.st_mode):
                return PathRefused(f"{_where(root, given)}: {at!r} is not a folder")
            try:
                inner = os.open(part, _O_FOLDER, dir_fd=fd)
            except OSError as exc:
                return PathRefused(f"{_where(root, given)}: cannot open the folder {at!r} ({exc.strerror})")
            os.close(fd)
            fd = inner
        return PathRefused(f"{_where(root, given)}: a folder on the way changed while it was opened")
    finally:
        os.close(fd)


def _open_folder_fd(root_fd: int, parts: list[str], given: str, root: Root, *, create: bool = False) -> int:
    """A descriptor of the folder `parts` names beneath `root_fd`, no link followed (made if `create`)."""
    if not parts:
        return os.dup(root_fd)
    if not create:
        try:
            fd = OPENAT2.open(root_fd, "/".join(parts), _O_FOLDER)
        except OSError:
            raise _why_not_a_folder(root_fd, parts, given, root) from None
        if fd is not None:
            return fd
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                inner = os.open(part, _O_FOLDER, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):  # made meanwhile: the open below checks what it is
                    os.mkdir(part, 0o755, dir_fd=fd)
                inner = os.open(part, _O_FOLDER, dir_fd=fd)
            os.close(fd)
            fd = inner
        return fd
    except OSError:
        os.close(fd)
        raise _why_not_a_folder(root_fd, parts, given, root) from None


@dataclass
class Place:
    """Where a path leads: the folder holding it (open, no link followed on the way) and its name there
    (None for the root itself). Acting on it is done by name inside `folder`: nothing is looked up twice."""

    root: Root
    given: str
    parts: list[str]
    folder: int
    name: str | None

    @property
    def where(self) -> str:
        return _where(self.root, self.given)

    def lstat(self) -> os.stat_result | None:
        return os.fstat(self.folder) if self.name is None else _lstat(self.folder, self.name)


@contextlib.contextmanager
def place(root: Root, given: str, *, write: bool = False, create: bool = False) -> Iterator[Place]:
    """The `Place` that `given` names (it may not exist yet), its folder closed afterwards; `create` makes
    the folders on the way."""
    parts = check_syntax(given, root)
    if write and not root.writable:
        raise PathRefused(f"{_where(root, given)}: the root '{root.name}' is read-only")
    root_fd = _open_root(root)
    try:
        folder = _open_folder_fd(root_fd, parts[:-1], given, root, create=create)
    finally:
        os.close(root_fd)
    try:
        yield Place(root, given, parts, folder, parts[-1] if parts else None)
    finally:
        os.close(folder)


def _refuse_kind(where: str, info: os.stat_result, *, files_only: bool = False) -> None:
    kind = stat.S_IFMT(info.st_mode)
    if kind == stat.S_IFLNK:
        raise PathRefused(f"{where}: it {LINK_REFUSED}")
    if kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise PathRefused(f"{where}: it is {_KINDS.get(kind, 'not a regular file')}, not a file or folder")
    if kind == stat.S_IFDIR and files_only:
        raise PathRefused(f"{where}: it is a folder, not a file")
    if kind == stat.S_IFREG and info.st_nlink > 1:
        raise PathRefused(f"{where}: the file has other hard links (another name for it may be outside the root)")


def _open_regular(dir_fd: int, name: str, where: str, max_bytes: int) -> tuple[int, os.stat_result]:
    """A regular file in `dir_fd` opened for reading, or `PathRefused`. Looked at before opening (a device is
    never opened) and checked again on the descriptor (what was opened is what is read)."""
    info = _lstat(dir_fd, name)
    if info is None:
        raise PathRefused(f"{where}: no such file")
    _refuse_kind(where, info, files_only=True)
    try:
        fd = os.open(name, _O_READ, dir_fd=dir_fd)
    except FileNotFoundError:
        raise PathRefused(f"{where}: no such file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathRefused(f"{where}: it {LINK_REFUSED}") from None
        raise PathRefused(f"{where}: cannot open it ({exc.strerror})") from None
    info = os.fstat(fd)
    try:
        _refuse_kind(where, info, files_only=True)
        if info.st_size > max_bytes:
            raise PathRefused(f"{where}: it is {info.st_size / 2**20:.1f} MB, over the limit of "
                              f"{max_bytes / 2**20:g} MB")
    except PathRefused:
        os.close(fd)
        raise
    return fd, info


def _read_fd(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def open_file(root: Root, given: str) -> tuple[int, os.stat_result]:
    """A file inside the root opened for reading: (descriptor, its stat), after every check."""
    with place(root, given) as where:
        if where.name is None:
            raise PathRefused(f"{where.where}: it is a folder, not a file")
        return _open_regular(where.folder, where.name, where.where, root.max_bytes)


def read_bytes(root: Root, given: str) -> bytes:
    fd, _ = open_file(root, given)
    try:
        return _read_fd(fd, root.max_bytes)
    finally:
        os.close(fd)


def read_if_there(root: Root, given: str) -> bytes | None:
    """`read_bytes`, or None when nothing is there (the name, or a folder on the way, does not exist)."""
    parts = check_syntax(given, root)
    root_fd = _open_root(root)
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            info = _lstat(fd, part)
            if info is None:
                return None
            if not stat.S_ISDIR(info.st_mode):
                break  # read_bytes below says what is wrong
            try:
                inner = os.open(part, _O_FOLDER, dir_fd=fd)
            except OSError:
                break
            os.close(fd)
            fd = inner
        else:
            if parts and _lstat(fd, parts[-1]) is None:
                return None
    finally:
        os.close(fd)
        os.close(root_fd)
    return read_bytes(root, given)


def stat_path(root: Root, given: str) -> os.stat_result:
    """What `given` is (a file or a folder; links, devices and hard-linked files refused), not followed."""
    with place(root, given) as where:
        info = where.lstat()
        if info is None:
            raise PathRefused(f"{where.where}: no such file or folder")
        _refuse_kind(where.where, info)
        return info


# listing ------------------------------------------------------------------------------------------------
@dataclass
class Found:
    """One entry a walk met: its path inside the root, what it is (never followed) and, while the walk is at
    it, the descriptor of its folder."""

    rel: str
    name: str
    kind: str  # "folder", "file", "link" or "other"
    info: os.stat_result
    folder: int

    def read(self, max_bytes: int) -> bytes:
        """The file's bytes, opened by name in its folder with the same checks as `read_bytes`."""
        fd, _ = _open_regular(self.folder, self.name, repr(self.rel), max_bytes)
        try:
            return _read_fd(fd, max_bytes)
        finally:
            os.close(fd)


@dataclass
class Walk:
    """Entries under a folder of a root, folder by folder (each sorted by name), without following links.
    Names that are not UTF-8 cannot be named back by a client: they are not yielded but collected, shown
    escaped, in `unreadable`. Writes in progress (temp files) are never yielded."""

    root: Root
    given: str = ""
    depth: int | None = None
    skip: Callable[[str], bool] = lambda name: False
    unreadable: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Found]:
        with place(self.root, self.given) as where:
            info = where.lstat()
            if info is None:
                raise PathRefused(f"{where.where}: no such folder")
            if not stat.S_ISDIR(info.st_mode):
                raise PathRefused(f"{where.where}: it is not a folder" if not stat.S_ISLNK(info.st_mode) else
                                  f"{where.where}: it {LINK_REFUSED}")
            if where.name is None:
                yield from self._folder(os.dup(where.folder), "", 1)
                return
            try:
                fd = os.open(where.name, _O_FOLDER, dir_fd=where.folder)
            except OSError:
                raise PathRefused(f"{where.where}: it is not a folder (or it changed)") from None
            yield from self._folder(fd, "/".join(where.parts), 1)

    def _folder(self, fd: int, rel: str, level: int) -> Iterator[Found]:
        try:
            try:
                with os.scandir(fd) as it:
                    children = sorted(it, key=lambda e: e.name)
            except OSError:
                return
            inner: list[tuple[str, str]] = []
            for child in children:
                name = child.name
                if TEMP_NAME.match(name) or self.skip(name):
                    continue
                path = f"{rel}/{name}" if rel else name
                if has_surrogate(name):
                    self.unreadable.append(shown(path))
                    continue
                try:
                    info = child.stat(follow_symlinks=False)
                except OSError:
                    continue
                kind = "folder" if stat.S_ISDIR(info.st_mode) else "file" if stat.S_ISREG(info.st_mode) else \
                    "link" if stat.S_ISLNK(info.st_mode) else "other"
                yield Found(path, name, kind, info, fd)
                if kind == "folder" and level < min(self.depth or MAX_DEPTH, MAX_DEPTH):
                    inner.append((name, path))
            for name, path in inner:
                try:
                    child_fd = os.open(name, _O_FOLDER, dir_fd=fd)
                except OSError:  # gone, or swapped for a link since it was listed: not entered
                    continue
                yield from self._folder(child_fd, path, level + 1)
        finally:
            os.close(fd)


# writing --------------------------------------------------------------------------------------------------
def _temp_name() -> str:
    return f".junction-write-{secrets.token_hex(8)}.tmp"


@contextlib.contextmanager
def _temp_file(dir_fd: int, data: bytes, mode: int | None = None) -> Iterator[str]:
    """A temp file with `data` in `dir_fd`, synced, for the block to rename into place; removed if the block
    does not. Locked until the block ends, so `clean_temp_files` (of this hub or another on the same root)
    tells a killed write's leftover from a live one. `mode`: the replaced file's."""
    name = _temp_name()
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        with contextlib.suppress(OSError):  # a file system without locks: the cleaner then leaves it alone
            fcntl.flock(fd, fcntl.LOCK_EX)
        if mode is not None:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        yield name
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)
        raise
    finally:
        os.close(fd)


def write_file(root: Root, given: str, data: bytes, *, exclusive: bool = False) -> bool:
    """Write `data` atomically (temp file, fsync, rename in the same folder; folders on the way are made):
    readers see the old file or the new one, never half. Returns whether it replaced a file; `exclusive`
    refuses to replace one, atomically."""
    if len(data) > root.max_bytes:
        raise PathRefused(f"{_where(root, given)}: {len(data) / 2**20:.1f} MB is over the limit of "
                          f"{root.max_bytes / 2**20:g} MB")
    with place(root, given, write=True, create=True) as where:
        if where.name is None:
            raise PathRefused(f"{where.where}: that is the root folder, not a file")
        existing = where.lstat()
        if existing is not None:
            if exclusive:
                raise PathRefused(f"{where.where}: it already exists")
            _refuse_kind(where.where, existing)
            if stat.S_ISDIR(existing.st_mode):
                raise PathRefused(f"{where.where}: it is a folder")
        try:
            with _temp_file(where.folder, data, stat.S_IMODE(existing.st_mode) if existing else None) as temp:
                if exclusive:
                    _renameat2_noreplace(where.folder, temp, where.folder, where.name)
                else:
                    os.rename(temp, where.name, src_dir_fd=where.folder, dst_dir_fd=where.folder)
        except FileExistsError:
            raise PathRefused(f"{where.where}: it already exists") from None
        except IsADirectoryError:
            raise PathRefused(f"{where.where}: it is a folder") from None
        with contextlib.suppress(OSError):  # the rename itself survives a crash (where the system can)
            os.fsync(where.folder)
        return existing is not None


def make_folder(root: Root, given: str) -> None:
    """The folder `given` (and its parents), made if missing."""
    with place(root, given, write=True, create=True) as where:
        if where.name is None:
            return
        info = where.lstat()
        if info is not None and not stat.S_ISDIR(info.st_mode):
            raise PathRefused(f"{where.where}: it is a file" if stat.S_ISREG(info.st_mode)
                              else f"{where.where}: it {LINK_REFUSED}" if stat.S_ISLNK(info.st_mode)
                              else f"{where.where}: it is {_KINDS.get(stat.S_IFMT(info.st_mode), 'not a folder')}")
        with contextlib.suppress(FileExistsError):
            os.mkdir(where.name, 0o755, dir_fd=where.folder)
        os.close(os.open(where.name, _O_FOLDER, dir_fd=where.folder))  # a folder, not a link made meanwhile


def move(root: Root, given: str, to: str) -> None:
    """Move a file, folder or link (the link itself) to `to`, never over anything."""
    source_parts, target_parts = check_syntax(given, root), check_syntax(to, root)
    if not source_parts:
        raise PathRefused("the root itself cannot be moved")
    if not target_parts:
        raise PathRefused(f"{_where(root, to)}: that is the root folder; give a new path")
    if target_parts[:len(source_parts)] == source_parts:
        raise PathRefused(f"{to!r} is inside {given!r}")
    with place(root, given, write=True) as source:
        assert source.name is not None
        if source.lstat() is None:
            raise PathRefused(f"{source.where}: no such file or folder")
        with place(root, to, write=True, create=True) as target:
            assert target.name is not None
            try:
                _renameat2_noreplace(source.folder, source.name, target.folder, target.name)
            except FileExistsError:
                raise PathRefused(f"{target.where} already exists; moves never overwrite") from None
            except FileNotFoundError:
                raise PathRefused(f"{source.where}: no such file or folder") from None


def _trash_folder(root_fd: int, root: Root) -> int:
    return _open_folder_fd(root_fd, [TRASH], TRASH, root, create=True)


def trash(root: Root, given: str) -> str:
    """Move `given` (a link itself, never its target) to the root's trash; returns the trash id."""
    parts = check_syntax(given, root)
    if not parts:
        raise PathRefused("the root itself cannot be deleted")
    if parts == [TRASH]:
        raise PathRefused(f"{_where(root, given)}: the trash itself cannot be deleted")
    trash_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    with place(root, given, write=True) as source:
        assert source.name is not None
        if source.lstat() is None:
            raise PathRefused(f"{source.where}: no such file or folder")
        root_fd = _open_root(root)
        try:
            bin_fd = _trash_folder(root_fd, root)
        finally:
            os.close(root_fd)
        try:
            record = json.dumps({"path": "/".join(parts), "deleted": time.time()}).encode()
            with _temp_file(bin_fd, record) as temp:
                os.rename(temp, f"{trash_id}.json", src_dir_fd=bin_fd, dst_dir_fd=bin_fd)
            try:
                _renameat2_noreplace(source.folder, source.name, bin_fd, trash_id)
            except FileNotFoundError:
                os.unlink(f"{trash_id}.json", dir_fd=bin_fd)
                raise PathRefused(f"{source.where}: no such file or folder") from None
        finally:
            os.close(bin_fd)
    return trash_id


def restore(root: Root, trash_id: str) -> str:
    """Put what `trash_id` names back where it was (never over something there again); returns that path."""
    if not re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{6}", trash_id):
        raise PathRefused(f"trash_id: {trash_id!r} is not a trash id")
    if not root.writable:
        raise PathRefused(f"the root '{root.name}' is read-only")
    root_fd = _open_root(root)
    try:
        try:
            bin_fd = OPENAT2.open(root_fd, TRASH, _O_FOLDER)
            if bin_fd is None:
                bin_fd = os.open(TRASH, _O_FOLDER, dir_fd=root_fd)
        except OSError:
            raise PathRefused(f"trash_id: nothing in the trash of '{root.name}' is {trash_id}") from None
    finally:
        os.close(root_fd)
    try:
        try:
            fd, _ = _open_regular(bin_fd, f"{trash_id}.json", f"trash record {trash_id}", 1 << 20)
        except PathRefused:
            raise PathRefused(f"trash_id: nothing in the trash of '{root.name}' is {trash_id}") from None
        try:
            original = json.loads(_read_fd(fd, 1 << 20))["path"]
        except (ValueError, KeyError, TypeError):
            raise PathRefused(f"trash_id: the trash record of {trash_id} is damaged") from None
        finally:
            os.close(fd)
        if not isinstance(original, str):
            raise PathRefused(f"trash_id: the trash record of {trash_id} is damaged")
        with place(root, original, write=True, create=True) as target:
            if target.name is None:
                raise PathRefused(f"trash_id: the trash record of {trash_id} names the root")
            try:
                _renameat2_noreplace(bin_fd, trash_id, target.folder, target.name)
            except FileExistsError:
                raise PathRefused(f"{original!r} exists again; move it away first") from None
            except FileNotFoundError:
                raise PathRefused(f"trash_id: nothing in the trash of '{root.name}' is {trash_id}") from None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{trash_id}.json", dir_fd=bin_fd)
        return original
    finally:
        os.close(bin_fd)


def clean_temp_files(root: Root, limit: int = 1_000_000) -> int:
    """Remove the temp files killed writes left under `root` (no live writer holds them locked); returns how
    many. Other files are never touched, whatever they are called."""
    removed = 0
    seen = 0

    def folder(fd: int, level: int) -> None:
        nonlocal removed, seen
        try:
            with os.scandir(fd) as it:
                children = list(it)
            for child in children:
                seen += 1
                if seen > limit:
                    return
                if TEMP_NAME.match(child.name) and child.is_file(follow_symlinks=False):
                    removed += _remove_if_abandoned(fd, child.name)
                elif child.is_dir(follow_symlinks=False) and level < MAX_DEPTH:
                    try:
                        inner = os.open(child.name, _O_FOLDER, dir_fd=fd)
                    except OSError:
                        continue
                    folder(inner, level + 1)
        finally:
            os.close(fd)

    folder(_open_root(root), 1)
    return removed


def _remove_if_abandoned(dir_fd: int, name: str) -> int:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a write in progress (this process or another hub on the same root)
            return 0
        now = _lstat(dir_fd, name)
        if now is None or not os.path.samestat(now, os.fstat(fd)):
            return 0
        os.unlink(name, dir_fd=dir_fd)
        return 1
    finally:
        os.close(fd)
