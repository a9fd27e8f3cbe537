"""IMAP for the mail provider: logged-in sessions in a small pool, the commands the tools need, and IDLE.

Blocking (stdlib `imaplib`), run in worker threads. Every failure becomes a `MailError` that says which
account, which server and what went wrong, and never carries a password or token.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hub.provider import ToolError

log = logging.getLogger("junction.mail")

TLS_MODES = ("ssl", "starttls", "none")
ROLES = ("\\Drafts", "\\Sent", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged")
SUMMARY_HEADERS = "FROM TO CC SUBJECT DATE MESSAGE-ID"
_CONNECTION_ERRORS = (imaplib.IMAP4.abort, OSError, EOFError)


class MailError(ToolError):
    """A refusal or failure the caller should read: what, where, why."""


@dataclass(frozen=True)
class Server:
    """Where and how to connect (IMAP or SMTP)."""

    account: str
    kind: str  # "IMAP" or "SMTP"
    host: str
    port: int
    tls: str
    username: str
    password: str = field(repr=False)
    auth: str = "password"  # or "xoauth2" (password is then the access token)
    ca_file: str = ""
    timeout: float = 20.0

    @property
    def where(self) -> str:
        return f"{self.kind} server {self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file or None)

    def fail(self, what: str) -> MailError:
        return MailError(f"mail account '{self.account}': {self.where}: {what}")

    def xoauth2(self) -> bytes:
        return f"user={self.username}\x01auth=Bearer {self.password}\x01\x01".encode()


def _reason(exc: BaseException) -> str:
    """A server's answer or a socket error as readable text."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "no answer in time"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message}); set ca_file for a private CA"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror})"
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text).strip() or exc.__class__.__name__
    if isinstance(exc, imaplib.IMAP4.abort) or isinstance(exc, OSError | EOFError):
        return f"the connection broke ({text})"
    return text


# modified UTF-7 (RFC 3501 5.1.3) for folder names --------------------------------------------------
def encode_folder(name: str) -> str:
    out, pending = [], ""

    def flush() -> None:
        nonlocal pending
        if pending:
            chunk = base64.b64encode(pending.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append(f"&{chunk}-")
            pending = ""

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending += ch
    flush()
    return "".join(out)


def decode_folder(name: str) -> str:
    def piece(match: re.Match[str]) -> str:
        body = match.group(1)
        if not body:
            return "&"
        data = body.replace(",", "/")
        return base64.b64decode(data + "=" * (-len(data) % 4)).decode("utf-16-be", "replace")

    return re.sub(r"&([^-]*)-", piece, name)


def quote(value: str | bytes) -> bytes:
    """An IMAP quoted string (folder names, search words). Line breaks and NUL are refused by the caller."""
    raw = value.encode() if isinstance(value, str) else value
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def check_text(value: str, what: str) -> str:
    if any(ch in value for ch in "\r\n\x00"):
        raise MailError(f"{what}: line breaks and NUL are not allowed")
    return value


def folder_arg(name: str) -> bytes:
    check_text(name, "folder")
    if not name or len(name) > 500:
        raise MailError("folder: a folder name of 1-500 characters is expected")
    return quote(encode_folder(name))


@dataclass
class Folder:
    name: str
    role: str | None
    flags: list[str]
    separator: str | None


_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?P<sep>"(?:[^"\\]|\\.)*"|NIL) (?P<name>.*)$', re.S)


def parse_list(data: list[Any]) -> list[Folder]:
    folders: list[Folder] = []
    items = iter(data)
    for item in items:
        if item is None:
            continue
        if isinstance(item, tuple):  # the name came as a literal
            line, name = item[0], item[1]
        else:
            line, name = item, None
        match = _LIST_LINE.match(line.strip() if name is None else line.rstrip())
        if not match:
            continue
        flags = match.group("flags").decode(errors="replace").split()
        sep = match.group("sep")
        separator = None if sep == b"NIL" else sep[1:-1].replace(b"\\\\", b"\\").decode()
        if name is None:
            raw = match.group("name").strip()
            if raw.startswith(b'"') and raw.endswith(b'"'):
                raw = re.sub(rb"\\(.)", rb"\1", raw[1:-1])
            name = raw
        decoded = decode_folder(name.decode("utf-8", "replace"))
        role = next((f for f in flags if f.lower() in {r.lower() for r in ROLES}), None)
        if role is None and decoded.upper() == "INBOX":
            role = "\\Inbox"
        folders.append(Folder(decoded, role, flags, separator))
    return folders


_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_FETCH_DATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')


def parse_fetch(data: list[Any]) -> dict[int, dict[str, Any]]:
    """`UID FETCH` answers by UID: `flags`, `size`, `internaldate` and `body` (the literal, if any)."""
    out: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    meta = b""
    for item in data:
        if isinstance(item, tuple):
            if current is not None:
                _finish(current, meta, out)
            meta, current = item[0], {"body": item[1]}
        elif isinstance(item, bytes):
            if current is not None:
                meta += b" " + item
                _finish(current, meta, out)
                current, meta = None, b""
            elif item:  # a FETCH without a literal
                current = {}
                _finish(current, item, out)
                current, meta = None, b""
    if current is not None:
        _finish(current, meta, out)
    return out


def _finish(entry: dict[str, Any], meta: bytes, out: dict[int, dict[str, Any]]) -> None:
    uid = _FETCH_UID.search(meta)
    if not uid:
        return
    flags = _FETCH_FLAGS.search(meta)
    size = _FETCH_SIZE.search(meta)
    date = _FETCH_DATE.search(meta)
    record = out.setdefault(int(uid.group(1)), {})
    if flags:
        record["flags"] = flags.group(1).decode(errors="replace").split()
    if size:
        record["size"] = int(size.group(1))
    if date:
        record["internaldate"] = date.group(1).decode()
    if "body" in entry:
        record["body"] = entry["body"]


def uid_set(uids: list[int]) -> str:
    if not uids or not all(isinstance(u, int) and not isinstance(u, bool) and 0 < u < 2**32 for u in uids):
        raise MailError("uids: positive message UIDs are expected")
    return ",".join(str(u) for u in sorted(set(uids)))


class Session:
    """One logged-in IMAP connection (used by one thread at a time)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.imap = self._connect()
        self.selected: tuple[str, bool] | None = None
        self.capabilities = {c.upper() for c in self.imap.capabilities}

    def _connect(self) -> imaplib.IMAP4:
        s = self.server
        try:
            if s.tls == "ssl":
                imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=s.ssl_context(), timeout=s.timeout)
            else:
                imap = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
                if s.tls == "starttls":
                    imap.starttls(s.ssl_context())
        except imaplib.IMAP4.error as exc:
            raise s.fail(f"cannot start TLS: {_reason(exc)}") from None
        except (OSError, EOFError) as exc:
            raise s.fail(f"cannot connect: {_reason(exc)}") from None
        try:
            if s.auth == "xoauth2":
                imap.authenticate("XOAUTH2", lambda _: s.xoauth2())
            else:
                imap.login(s.username, s.password)
        except imaplib.IMAP4.error as exc:
            with contextlib.suppress(Exception):
                imap.shutdown()
            if isinstance(exc, imaplib.IMAP4.abort):
                raise s.fail(f"cannot log in: {_reason(exc)}") from None
            raise s.fail(f"the server refused the login of {s.username!r}: {_reason(exc)} "
                         f"(check the password: `junction secret set`)") from None
        except (OSError, EOFError) as exc:
            with contextlib.suppress(Exception):
                imap.shutdown()
            raise s.fail(f"cannot log in: {_reason(exc)}") from None
        return imap

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.imap.logout()
        with contextlib.suppress(Exception):
            self.imap.shutdown()

    def check(self, typ: str, data: list[Any], what: str) -> list[Any]:
        if typ != "OK":
            text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise self.server.fail(f"{what}: {text or typ}")
        return data

    def run(self, what: str, command: str, *args: Any) -> list[Any]:
        """A plain (non-UID) command by its imaplib method name."""
        try:
            typ, data = getattr(self.imap, command.lower())(*args)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            raise self.server.fail(f"{what}: {_reason(exc)}") from None
        return self.check(typ, data, what)

    def select(self, folder: str, readonly: bool = False) -> int:
        if self.selected == (folder, readonly):
            self.run("NOOP", "NOOP")  # the server reports what changed since (new mail, expunges)
            return -1
        try:
            typ, data = self.imap.select(folder_arg(folder).decode(), readonly=readonly)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            raise self.server.fail(f"cannot open folder {folder!r}: {_reason(exc)}") from None
        if typ != "OK":
            self.selected = None
            text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise MailError(f"mail account '{self.server.account}': no folder {folder!r} ({text.strip()})")
        self.selected = (folder, readonly)
        return int(data[0] or 0)

    def folders(self) -> list[Folder]:
        return parse_list(self.run("LIST", "LIST", '""', "*"))

    def status(self, folder: str) -> dict[str, int]:
        data = self.run(f"STATUS {folder!r}", "STATUS", folder_arg(folder).decode(), "(MESSAGES UNSEEN UIDNEXT)")
        line = data[0] if isinstance(data[0], bytes) else data[0][0]
        return {k.decode().lower(): int(v) for k, v in re.findall(rb"(MESSAGES|UNSEEN|UIDNEXT) (\d+)", line)}

    def uid(self, what: str, command: str, *args: Any) -> list[Any]:
        try:
            typ, data = self.imap.uid(command, *args)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            raise self.server.fail(f"{what}: {_reason(exc)}") from None
        return self.check(typ, data, what)

    def search(self, criteria: list[bytes]) -> list[int]:
        charset = any(any(b > 127 for b in c) for c in criteria)
        args: list[Any] = (["CHARSET", "UTF-8"] if charset else []) + (criteria or [b"ALL"])
        data = self.uid("SEARCH", "SEARCH", *args)
        return sorted(int(x) for x in (data[0] or b"").split())

    def fetch(self, uids: list[int], items: str) -> dict[int, dict[str, Any]]:
        if not uids:
            return {}
        return parse_fetch(self.uid("FETCH", "FETCH", uid_set(uids), items))

    def append(self, folder: str, flags: str, message: bytes) -> int | None:
        try:
            typ, data = self.imap.append(folder_arg(folder).decode(), flags, None, message)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            raise self.server.fail(f"cannot save to {folder!r}: {_reason(exc)}") from None
        self.check(typ, data, f"cannot save to {folder!r}")
        match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        return int(match.group(1)) if match else None

    def store(self, uids: list[int], change: str, flags: str) -> None:
        self.uid("STORE", "STORE", uid_set(uids), change, flags)

    def expunge(self, uids: list[int]) -> None:
        if "UIDPLUS" in self.capabilities:
            self.uid("EXPUNGE", "EXPUNGE", uid_set(uids))
        else:
            self.run("EXPUNGE", "EXPUNGE")

    def move(self, uids: list[int], target: str) -> None:
        if "MOVE" in self.capabilities:
            self.uid(f"move to {target!r}", "MOVE", uid_set(uids), folder_arg(target).decode())
        else:
            self.uid(f"copy to {target!r}", "COPY", uid_set(uids), folder_arg(target).decode())
            self.store(uids, "+FLAGS.SILENT", "(\\Deleted)")
            self.expunge(uids)


class Pool:
    """A few logged-in sessions per account, opened on demand and dropped when their connection breaks."""

    def __init__(self, server: Server, size: int = 3) -> None:
        self.server = server
        self.size = size
        self._idle: list[Session] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self.last_error: str | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        if not self._slots.acquire(timeout=self.server.timeout * 2):
            raise self.server.fail("all connections are busy; try again")
        try:
            with self._lock:
                session = self._idle.pop() if self._idle else None
            if session is None:
                try:
                    session = Session(self.server)
                except MailError as exc:
                    self.last_error = str(exc)
                    raise
            self.last_error = None
            try:
                yield session
            except _CONNECTION_ERRORS:
                session.close()
                self.close()  # the server went away: the other idle sessions are dead too
                raise
            except BaseException:
                with self._lock:
                    self._idle.append(session)
                raise
            with self._lock:
                self._idle.append(session)
        finally:
            self._slots.release()

    def call(self, fn: Callable[[Session], Any], *, retry: bool = True) -> Any:
        """Run `fn(session)`; a broken connection is replaced and `fn` tried once more (when `retry`)."""
        for attempt in (1, 2):
            try:
                with self.session() as session:
                    return fn(session)
            except _CONNECTION_ERRORS as exc:
                self.last_error = self.server.fail(_reason(exc)).args[0]
                if attempt == 2 or not retry:
                    raise self.server.fail(f"{_reason(exc)}; try again when the server is back") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            sessions, self._idle = self._idle, []
        for session in sessions:
            session.close()


class Watcher:
    """IMAP IDLE on one folder in a thread: calls `on_new(uids)` for mail that arrived, `on_change()` for
    expunges and flag changes; reconnects with backoff (1 s doubling to 60 s) when the connection drops."""

    RENEW = 25 * 60  # RFC 2177: re-issue IDLE before the server's 30-minute inactivity timeout

    def __init__(self, server: Server, folder: str, on_new: Callable[[list[int]], None],
                 on_change: Callable[[], None], on_state: Callable[[str | None], None]) -> None:
        self.server = server
        self.folder = folder
        self.on_new, self.on_change, self.on_state = on_new, on_change, on_state
        self._stop = threading.Event()
        self._session: Session | None = None
        self._thread = threading.Thread(target=self._run, name=f"imap-idle-{server.account}-{folder}", daemon=True)
        self.uidnext: int | None = None
        self.connected = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        session = self._session
        if session is not None:
            with contextlib.suppress(OSError):
                session.imap.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self._session = Session(self.server)
                self._session.imap.sock.settimeout(self.RENEW + 60)
                if "IDLE" not in self._session.capabilities:
                    self.on_state(self.server.fail("no IDLE support; new mail is not announced").args[0])
                    return
                self._watch(self._session)
            except MailError as exc:
                self._report(str(exc))
            except Exception as exc:  # broken connection, server shutting down, protocol surprise
                if not self._stop.is_set():
                    self._report(self.server.fail(f"watching {self.folder!r}: {_reason(exc)}").args[0])
            finally:
                if self._session is not None:
                    self._session.close()
                    self._session = None
            if self.connected:
                delay = 1.0
            self.connected = False
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, 60.0)

    def _report(self, error: str) -> None:
        if not self._stop.is_set():
            log.warning("%s (retrying)", error)
            self.on_state(error)

    def _watch(self, session: Session) -> None:
        imap = session.imap
        session.select(self.folder, readonly=True)
        status = session.status(self.folder)
        first = self.uidnext is None
        missed = [] if first else [u for u in session.search([b"UID", f"{self.uidnext}:*".encode()])
                                   if u >= (self.uidnext or 0)]
        self.uidnext = status.get("uidnext", self.uidnext)
        self.connected = True
        self.on_state(None)
        if missed:  # arrived while we were disconnected
            self.on_new(missed)
        while not self._stop.is_set():
            tag = imap._new_tag()  # imaplib (3.11) has no IDLE command: speak it directly (RFC 2177)
            imap.send(tag + b" IDLE\r\n")
            line = imap._get_line()
            if not line.startswith(b"+"):
                raise MailError(self.server.fail(f"IDLE refused: {line.decode(errors='replace')}").args[0])
            events = self._wait(imap)
            imap.send(b"DONE\r\n")
            while True:  # the rest of the untagged answers, then the tagged end of IDLE
                line = imap._get_line()
                if line.startswith(tag):
                    break
                events |= self._classify(line)
            if "exists" in events:
                new = [u for u in session.search([b"UID", f"{self.uidnext}:*".encode()]) if u >= (self.uidnext or 0)]
                if new:
                    self.uidnext = max(new) + 1
                    self.on_new(new)
            if events - {"exists"}:
                self.on_change()

    def _wait(self, imap: imaplib.IMAP4) -> set[str]:
        started = time.monotonic()
        while not self._stop.is_set():
            line = imap._get_line()  # blocks; stop() shuts the socket down, the server's BYE ends it too
            events = self._classify(line)
            if events:
                return events
            if time.monotonic() - started > self.RENEW:
                return set()
        return set()

    @staticmethod
    def _classify(line: bytes) -> set[str]:
        if line.startswith(b"* BYE"):
            raise imaplib.IMAP4.abort(line.decode(errors="replace"))
        match = re.match(rb"\* \d+ (EXISTS|EXPUNGE|FETCH)", line)
        return {match.group(1).decode().lower()} if match else set()
