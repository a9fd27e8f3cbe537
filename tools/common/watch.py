"""Watching folders for changes, so that no name on the disk and no failure of the watcher stops it.

watchfiles carries names as UTF-8 text: one name that is not UTF-8 (a local process can make any bytes
a name) makes its Rust side raise `WatchfilesRustInternalError`, and the watcher that raised then raises
on every call; a folder with such a name breaks the native (inotify) watcher as soon as it starts.
`FolderWatch` is what the files provider and the knowledge base watch with, instead of watchfiles
directly:

- a watcher that fails, for any reason, is restarted after a backoff (doubling, up to a minute); each
  distinct failure is logged once, not once per retry;
- what changed while it was down is not lost: a snapshot of the folders, kept current from the changes
  reported, is compared with a fresh scan just before the restart, and the difference is reported as
  changes (without a snapshot, or past `MAX_SNAPSHOT` entries, a `rescan` of each folder is reported
  instead, for the consumer to look again);
- a native watcher that fails twice in a row as it starts (before reporting anything, within
  `QUICK_FAILURE` seconds) is replaced by polling (`force_polling`), which survives such folders and
  fails only when such a name itself changes.

A change is `(kind, path)`: kind "added", "modified", "deleted" or "rescan"; `path` is absolute text, with
bytes that are not UTF-8 as surrogate escapes (`os.fsdecode`), for the consumer to skip or show escaped.
What `skip` matches (any name on the way) is neither reported nor kept in the snapshot. The handler's own
errors are logged (once each) and never end the watch. It must not rely on the hub's background tasks
surviving an exception: nothing but cancellation leaves `run`.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio

log = logging.getLogger("junction.watch")
QUICK_FAILURE = 2.0
MAX_SNAPSHOT = 50_000  # about 15 MB at most; past it, a restart asks for a rescan
Change = tuple[str, str]
_Entry = tuple[int, int, int, int]  # kind bits, mtime_ns, size, inode


class FolderWatch:
    def __init__(self, folders: Sequence[Path], *, label: str, skip: Callable[[str], bool] = lambda name: False,
                 snapshot: bool = True, debounce_ms: int = 300, step_ms: int = 50,
                 stop_event: anyio.Event | None = None, backoff: tuple[float, float] = (0.5, 60.0),
                 poll_delay_ms: int = 1000, force_polling: bool | None = None,
                 quick_failure: float = QUICK_FAILURE) -> None:
        self.folders = [str(Path(f).resolve()) for f in folders]
        self.label = label
        self.skip = skip
        self.keep_snapshot = snapshot
        self.debounce_ms, self.step_ms, self.poll_delay_ms = debounce_ms, step_ms, poll_delay_ms
        self.stop_event = stop_event
        self.backoff = backoff
        self.polling = force_polling
        self.quick_failure = quick_failure
        self.restarts = 0
        """How many times a failed watcher was replaced (for tests and the log)."""
        self._snapshot: dict[str, _Entry] | None = None
        self._told: set[str] = set()
        import watchfiles

        self._filter = watchfiles.DefaultFilter()

    # the loop ---------------------------------------------------------------------------------------
    async def run(self, handle: Callable[[list[Change]], Awaitable[None]]) -> None:
        """Report changes to `handle` until `stop_event` is set (or the task is cancelled)."""
        import watchfiles

        if self.keep_snapshot:
            self._snapshot = await anyio.to_thread.run_sync(self._scan)
        delay = self.backoff[0]
        silent_failures = 0
        while not self._stopped():
            delivered = 0
            started = time.monotonic()
            try:
                async for raw in watchfiles.awatch(*self.folders, debounce=self.debounce_ms, step=self.step_ms,
                                                   stop_event=self.stop_event, recursive=True,
                                                   force_polling=self.polling, poll_delay_ms=self.poll_delay_ms):
                    delivered += 1
                    delay, silent_failures = self.backoff[0], 0
                    changes = sorted((change.name, path) for change, path in raw if not self._skipped(path))
                    if self._snapshot is not None:
                        await anyio.to_thread.run_sync(self._follow, changes)
                    if changes:
                        await self._deliver(handle, changes)
                if self._stopped():
                    return
                raise RuntimeError("the watcher ended by itself")
            except Exception as caught:  # anything: a watcher that fails is replaced, never left dead
                exc: BaseException = caught
                while isinstance(exc, BaseExceptionGroup) and exc.exceptions:  # awatch's task group wraps it
                    exc = exc.exceptions[0]
                self._tell(f"{self.label}: watching {', '.join(self.folders)} failed ({exc.__class__.__name__}: "
                           f"{exc}); it is restarted (with a backoff) and changes meanwhile are found by a rescan")
            if not self.polling:
                quick = not delivered and time.monotonic() - started < self.quick_failure
                silent_failures = silent_failures + 1 if quick else 0
                if silent_failures >= 2:
                    self.polling = True
                    self._tell(f"{self.label}: the native watcher cannot run here; polling every "
                               f"{self.poll_delay_ms} ms instead")
            with anyio.move_on_after(delay):
                if self.stop_event is not None:
                    await self.stop_event.wait()
                else:
                    await anyio.sleep(delay)
            if self._stopped():
                return
            delay = min(delay * 2, self.backoff[1])
            self.restarts += 1
            try:
                missed = await anyio.to_thread.run_sync(self._catch_up)
            except Exception as exc:  # a folder that cannot be scanned now: the next watcher tells
                self._tell(f"{self.label}: cannot rescan after a restart ({exc.__class__.__name__}: {exc})")
                missed = [("rescan", folder) for folder in self.folders]
            if missed:
                await self._deliver(handle, missed)

    def _stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    async def _deliver(self, handle: Callable[[list[Change]], Awaitable[None]], changes: list[Change]) -> None:
        try:
            await handle(changes)
        except Exception as exc:  # the consumer's bug must not end the watch
            self._tell(f"{self.label}: handling a change failed ({exc.__class__.__name__}: {exc})", exc)

    def _tell(self, message: str, exc: BaseException | None = None) -> None:
        """Log each distinct problem once; retries of the same one go to the debug log."""
        if message in self._told:
            log.debug("%s", message)
            return
        if len(self._told) < 256:
            self._told.add(message)
        log.error("%s", message, exc_info=exc)

    # the snapshot -----------------------------------------------------------------------------------
    def _skipped(self, path: str) -> bool:
        for folder in self.folders:
            if path == folder or path.startswith(folder.rstrip("/") + "/"):
                return any(self.skip(name) for name in path[len(folder):].split("/") if name)
        return False

    @staticmethod
    def _entry(info: os.stat_result) -> _Entry:
        return stat.S_IFMT(info.st_mode), info.st_mtime_ns, info.st_size, info.st_ino

    def _scan_into(self, top: str, into: dict[str, _Entry]) -> bool:
        """Every entry under `top` (links not followed, skipped names left out); False past MAX_SNAPSHOT."""
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    children = list(it)
            except OSError:
                continue
            for child in children:
                if self.skip(child.name):
                    continue
                try:
                    info = child.stat(follow_symlinks=False)
                except OSError:
                    continue
                into[child.path] = self._entry(info)
                if len(into) > MAX_SNAPSHOT:
                    return False
                if stat.S_ISDIR(info.st_mode):
                    stack.append(child.path)
        return True

    def _scan(self) -> dict[str, _Entry] | None:
        found: dict[str, _Entry] = {}
        for folder in self.folders:
            if not self._scan_into(folder, found):
                self._tell(f"{self.label}: more than {MAX_SNAPSHOT} entries; after a watcher restart the whole "
                           "folder is looked at again instead")
                return None
        return found

    def _follow(self, changes: list[Change]) -> None:
        """Bring the snapshot up to date with changes the watcher reported."""
        snap = self._snapshot
        if snap is None:
            return
        for _, path in changes:
            before = snap.pop(path, None)
            if before is not None and stat.S_ISDIR(before[0]):
                prefix = path.rstrip("/") + "/"
                for key in [k for k in snap if k.startswith(prefix)]:
                    del snap[key]
            try:
                info = os.lstat(path)
            except OSError:
                continue
            snap[path] = self._entry(info)
            if stat.S_ISDIR(info.st_mode) and not self._scan_into(path, snap):
                self._snapshot = None
                return

    def _catch_up(self) -> list[Change]:
        """What changed since the snapshot (then the snapshot is the disk as it is now)."""
        if self._snapshot is None:
            if self.keep_snapshot:
                self._snapshot = self._scan()
            return [("rescan", folder) for folder in self.folders]
        now = self._scan()
        if now is None:
            self._snapshot = None
            return [("rescan", folder) for folder in self.folders]
        before, self._snapshot = self._snapshot, now
        import watchfiles

        changes: list[Change] = []
        for path, entry in now.items():
            old = before.get(path)
            if old is None:
                changes.append(("added", path))
            elif old != entry and not stat.S_ISDIR(entry[0]):
                changes.append(("modified" if old[0] == entry[0] else "added", path))
        changes += [("deleted", path) for path in before if path not in now]
        kinds = {"added": watchfiles.Change.added, "modified": watchfiles.Change.modified,
                 "deleted": watchfiles.Change.deleted}
        return sorted((kind, path) for kind, path in changes if self._filter(kinds[kind], path))
