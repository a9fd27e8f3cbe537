"""Mail accounts as MCP tools and resources (`[providers.mail]`), over IMAP and SMTP.

```toml
[providers.mail.accounts.work]
address = "me@example.com"
username = "me@example.com"
password = "${secret:work-mail}"      # `junction secret set work-mail`; never the password itself
imap_host = "imap.example.com"        # imap_port/imap_tls: 993 "ssl" (or 143 "starttls")
smtp_host = "smtp.example.com"        # smtp_port/smtp_tls: 465 "ssl" (or 587 "starttls")
send = true                           # false: drafts only, nothing leaves
```

Tools (prefix `mail`): accounts, folders, search, read, attachment, draft, send, move, flag, mark_read,
delete. Messages are resources `mail://ACCOUNT/FOLDER/UID`, folders `mail://ACCOUNT/FOLDER`; IMAP IDLE on
the watched folders (INBOX by default) sends `resources/updated` for the folder and `list_changed` when
mail arrives. Sending always asks for confirmation: an elicitation when the client can answer one, else
the caller must pass `confirm: true`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import email.utils
import ipaddress
import logging
import mimetypes
import smtplib
import ssl
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import quote as url_quote
from urllib.parse import unquote, urlsplit

import anyio
import mcp_types as types
import msgspec

from hub.provider import CallContext, ChangeFeed, InputUnavailable, Provider, ToolSet
from tools.mail import messages
from tools.mail.imap import SUMMARY_HEADERS, MailError, Pool, Server, Session, Watcher, check_text, quote

log = logging.getLogger("junction.mail")
RECENT = 20
"""Messages per watched folder listed as resources."""


class AccountConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    username: str
    password: str = ""
    """Use "${secret:NAME}" (set with `junction secret set NAME`); a password in clear is refused."""
    auth: Literal["password", "xoauth2"] = "password"
    """`xoauth2`: `password` holds an OAuth access token (Gmail, Outlook)."""
    address: str = ""
    """The From address (default: the username when it is one)."""
    name: str = ""
    """The display name on sent mail."""
    imap_host: str
    imap_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    imap_tls: Literal["ssl", "starttls", "none"] = "ssl"
    smtp_host: str = ""
    """Default: imap_host."""
    smtp_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    smtp_tls: Literal["ssl", "starttls", "none"] = "ssl"
    ca_file: str = ""
    """A CA bundle for servers with a private certificate."""
    send: bool = True
    """False: drafts can be written, nothing is ever sent from this account."""
    watch: list[str] = msgspec.field(default_factory=lambda: ["INBOX"])
    """Folders watched with IMAP IDLE for new mail."""
    drafts: str = ""
    sent: str = ""
    trash: str = ""
    """Folder names; default: the folder the server marks \\Drafts, \\Sent, \\Trash (else that name)."""
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 20.0


class MailConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[providers.mail]`: accounts; with none, the provider offers nothing."""

    accounts: dict[Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")], AccountConfig] = {}
    max_message_mb: Annotated[float, msgspec.Meta(gt=0, le=1024)] = 50.0
    """Messages larger than this are not read in full (their size is reported instead)."""


def _text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Account:
    """One configured mailbox: its servers, a pool of IMAP sessions, its folder roles, its watchers."""

    def __init__(self, name: str, config: AccountConfig) -> None:
        self.name = name
        self.config = config
        for kind, tls, host in (("imap", config.imap_tls, config.imap_host),
                                ("smtp", config.smtp_tls, config.smtp_host or config.imap_host)):
            if tls == "none" and not _loopback(host):
                raise ValueError(f"accounts.{name}.{kind}_tls: \"none\" sends the password in clear; it is only "
                                 "allowed for a server on this machine (use \"ssl\" or \"starttls\")")
        self.address = config.address or (config.username if "@" in config.username else "")
        if not self.address:
            raise ValueError(f"accounts.{name}.address: the From address is needed (the username is not one)")
        messages.clean_addresses([self.address], f"accounts.{name}.address")
        self.imap = Server(name, "IMAP", config.imap_host,
                           config.imap_port or (993 if config.imap_tls == "ssl" else 143), config.imap_tls,
                           config.username, config.password, config.auth, config.ca_file, config.timeout)
        smtp_port = config.smtp_port or {"ssl": 465, "starttls": 587, "none": 25}[config.smtp_tls]
        self.smtp = Server(name, "SMTP", config.smtp_host or config.imap_host, smtp_port, config.smtp_tls,
                           config.username, config.password, config.auth, config.ca_file, config.timeout)
        self.pool = Pool(self.imap)
        self.roles: dict[str, str] = {}
        self.watchers: list[Watcher] = []
        self.watch_error: str | None = None
        self.recent: dict[str, list[dict[str, Any]]] = {}

    def role(self, session: Session, role: str) -> str:
        """The folder for `\\Drafts`, `\\Sent` or `\\Trash`: configured, else marked by the server, else named."""
        configured = {"\\Drafts": self.config.drafts, "\\Sent": self.config.sent, "\\Trash": self.config.trash}[role]
        if configured:
            return configured
        if not self.roles:
            self.roles = {f.role: f.name for f in session.folders() if f.role}
        return self.roles.get(role, role.lstrip("\\"))

    def sender(self) -> str:
        return email.utils.formataddr((self.config.name, self.address)) if self.config.name else self.address


class MailProvider(Provider):
    config_type = MailConfig
    description = "Mail accounts (IMAP/SMTP): search, read, draft, send, file away; new mail announced"
    tool_errors = (ValueError,)  # an address, date or header the parsers refuse

    def __init__(self, host: Any, config: MailConfig | None = None) -> None:
        super().__init__(host, config or MailConfig())
        self.accounts = {name: Account(name, c) for name, c in self.config.accounts.items()}
        self.max_bytes = int(self.config.max_message_mb * 2**20)
        self.listeners: list[Callable[[str, str, list[int]], Any]] = []
        """Called as `listener(account, folder, new_uids)` on the event loop when mail arrives (automation)."""
        host.offer("mail.arrivals", ChangeFeed(self.listeners, {name: tuple(a.config.watch) for name, a
                                                                in self.accounts.items()}, ToolSet(host.prefix)))
        self._loop: asyncio.AbstractEventLoop | None = None

    # lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for account in self.accounts.values():
            for folder in account.config.watch:
                watcher = Watcher(account.imap, folder, self._from_thread(self._arrived, account, folder),
                                  self._from_thread(self._changed, account, folder),
                                  self._from_thread(self._watch_state, account, folder))
                account.watchers.append(watcher)
                watcher.start()

    async def stop(self) -> None:
        def close() -> None:
            for account in self.accounts.values():
                for watcher in account.watchers:
                    watcher.stop()
                account.pool.close()

        await anyio.to_thread.run_sync(close)

    def _from_thread(self, fn: Callable[..., Any], *bound: Any) -> Callable[..., None]:
        def call(*args: Any) -> None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop is shutting down
                    loop.call_soon_threadsafe(fn, *bound, *args)
        return call

    def _arrived(self, account: Account, folder: str, uids: list[int]) -> None:
        log.info("mail: %d new message(s) in %s/%s", len(uids), account.name, folder)
        self.host.spawn(self._refresh_recent, account, folder)
        self.host.resource_updated(self.folder_uri(account.name, folder))
        for listener in list(self.listeners):
            try:
                result = listener(account.name, folder, uids)
                if asyncio.iscoroutine(result):
                    self.host.spawn(lambda r=result: r)
            except Exception:
                log.exception("mail listener failed")

    def _changed(self, account: Account, folder: str) -> None:
        self.host.resource_updated(self.folder_uri(account.name, folder))
        self.host.spawn(self._refresh_recent, account, folder)

    def _watch_state(self, account: Account, folder: str, error: str | None) -> None:
        first = folder not in account.recent
        account.watch_error = error
        if error is None and first:
            self.host.spawn(self._refresh_recent, account, folder)

    async def _refresh_recent(self, account: Account, folder: str) -> None:
        """Keep the newest messages of a watched folder as listed resources; the hub re-reads the list."""
        def newest(session: Session) -> list[dict[str, Any]]:
            session.select(folder, readonly=True)
            uids = session.search([b"ALL"])[-RECENT:]
            return self._summaries(session, uids)
        try:
            account.recent[folder] = await anyio.to_thread.run_sync(account.pool.call, newest)
        except MailError as exc:
            log.warning("%s", exc)
            return
        self.host.catalog_changed()

    # resources ---------------------------------------------------------------------------------------
    @staticmethod
    def folder_uri(account: str, folder: str) -> str:
        return f"mail://{account}/{url_quote(folder, safe='/')}"

    def message_uri(self, account: str, folder: str, uid: int) -> str:
        return f"{self.folder_uri(account, folder)}/{uid}"

    def _locate(self, uri: str) -> tuple[Account, str, int | None] | None:
        parts = urlsplit(uri)
        if parts.scheme != "mail" or parts.netloc not in self.accounts:
            return None
        path = unquote(parts.path).strip("/")
        if not path:
            return None
        account = self.accounts[parts.netloc]
        if path in account.config.watch:  # a watched folder named like "Archive/2024" is a folder, not a UID
            return account, path, None
        head, _, last = path.rpartition("/")
        if head and last.isdigit():
            return self.accounts[parts.netloc], head, int(last)
        return self.accounts[parts.netloc], path, None

    def owns_uri(self, uri: str) -> bool:
        return self._locate(uri) is not None

    async def list_resources(self) -> list[types.Resource]:
        out: list[types.Resource] = []
        for account in self.accounts.values():
            for folder in account.config.watch:
                out.append(types.Resource(uri=self.folder_uri(account.name, folder),
                                          name=f"{account.name}: {folder}", mime_type="application/json",
                                          description=f"the newest messages in {folder}"))
                for summary in account.recent.get(folder, []):  # newest first
                    out.append(types.Resource(
                        uri=self.message_uri(account.name, folder, summary["uid"]),
                        name=f"{account.name}/{folder}: {summary['subject'] or '(no subject)'}"[:200],
                        mime_type="text/plain", size=summary.get("size")))
        return out

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        return [types.ResourceTemplate(uri_template=f"mail://{name}/{{+folder}}/{{uid}}",
                                       name=f"messages of {name}", mime_type="text/plain",
                                       description=f"a message of the account '{name}' by folder and UID")
                for name in self.accounts]

    async def read_resource(self, uri: str, ctx: CallContext) -> types.ReadResourceResult:
        import json

        located = self._locate(uri)
        if located is None:
            raise ValueError(f"{uri}: not a message or folder of a configured mail account")
        account, folder, uid = located
        if uid is None:
            listing = await self._search(account, folder, {}, 0, 50)
            return types.ReadResourceResult(contents=[types.TextResourceContents(
                uri=uri, mime_type="application/json", text=json.dumps(listing, ensure_ascii=False))])
        view = await self._read(account, folder, uid, False)
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="text/plain", text=self._render(view))])

    # tools -------------------------------------------------------------------------------------------
    async def list_tools(self) -> list[types.Tool]:
        if not self.accounts:
            return []
        account = {"type": "string", "enum": sorted(self.accounts), "description": "which account"}
        folder = {"type": "string", "default": "INBOX", "description": "a folder name as `folders` lists it"}
        uid = {"type": "integer", "minimum": 1, "description": "the message's UID in the folder"}
        uids = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 1000}
        addresses = {"type": "array", "items": {"type": "string"}, "maxItems": 100}
        ro = types.ToolAnnotations(read_only_hint=True, open_world_hint=True)
        change = types.ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
        date = {"type": "string", "format": "date", "description": "YYYY-MM-DD"}
        content = {
            "to": addresses, "cc": addresses, "bcc": addresses, "subject": {"type": "string", "maxLength": 998},
            "body": {"type": "string", "description": "plain text"},
            "html": {"type": "string", "description": "an HTML alternative (optional)"},
            "attachments": {"type": "array", "maxItems": 20, "description": "files from a files root",
                            "items": {"type": "object", "required": ["root", "path"], "properties": {
                                "root": {"type": "string"}, "path": {"type": "string"}}}},
        }
        tools = [
            types.Tool(name="accounts", description="The mail accounts: address, whether they can send, whether "
                       "new mail is being watched (and the last error).",
                       input_schema={"type": "object", "properties": {}}, annotations=ro),
            types.Tool(name="folders", description="An account's folders with their roles (\\Drafts, \\Sent, "
                       "\\Trash, ...) and message counts.",
                       input_schema={"type": "object", "required": ["account"], "properties": {
                           "account": account, "counts": {"type": "boolean", "default": True}}}, annotations=ro),
            types.Tool(name="search", description="Find messages in a folder, newest first, a page at a time. All "
                       "given criteria must match.",
                       input_schema={"type": "object", "required": ["account"], "properties": {
                           "account": account, "folder": folder,
                           "from": {"type": "string"}, "to": {"type": "string"}, "subject": {"type": "string"},
                           "text": {"type": "string", "description": "words in the body"},
                           "since": date, "before": date,
                           "unseen": {"type": "boolean"}, "flagged": {"type": "boolean"},
                           "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
                           "offset": {"type": "integer", "minimum": 0, "default": 0}}}, annotations=ro),
            types.Tool(name="read", description="Read a message: headers, text, HTML converted to text (never "
                       "rendered), the list of attachments.",
                       input_schema={"type": "object", "required": ["account", "uid"], "properties": {
                           "account": account, "folder": folder, "uid": uid,
                           "mark_read": {"type": "boolean", "default": False}}}, annotations=ro),
            types.Tool(name="attachment", description="Get an attachment (by the index `read` lists): as a blob, "
                       "or saved into a files root when `save_root` and `save_path` are given.",
                       input_schema={"type": "object", "required": ["account", "uid", "index"], "properties": {
                           "account": account, "folder": folder, "uid": uid,
                           "index": {"type": "integer", "minimum": 0},
                           "save_root": {"type": "string"}, "save_path": {"type": "string"}}}, annotations=ro),
            types.Tool(name="draft", description="Write a draft and save it in Drafts: a new message, a reply, a "
                       "reply to all, or a forward of the message `uid` in `folder` (threading headers and quoting "
                       "are added).",
                       input_schema={"type": "object", "required": ["account"], "properties": {
                           "account": account, "mode": {"type": "string", "enum": ["new", "reply", "reply_all",
                                                                                   "forward"], "default": "new"},
                           "folder": folder, "uid": {**uid, "description": "the message replied to or forwarded"},
                           **content}}, annotations=change),
            types.Tool(name="move", description="Move messages to another folder.",
                       input_schema={"type": "object", "required": ["account", "uids", "to"], "properties": {
                           "account": account, "folder": folder, "uids": uids, "to": {"type": "string"}}},
                       annotations=change),
            types.Tool(name="flag", description="Set or clear the flag (star) on messages.",
                       input_schema={"type": "object", "required": ["account", "uids"], "properties": {
                           "account": account, "folder": folder, "uids": uids,
                           "flagged": {"type": "boolean", "default": True}}}, annotations=change),
            types.Tool(name="mark_read", description="Mark messages read or unread.",
                       input_schema={"type": "object", "required": ["account", "uids"], "properties": {
                           "account": account, "folder": folder, "uids": uids,
                           "read": {"type": "boolean", "default": True}}}, annotations=change),
            types.Tool(name="delete", description="Move messages to Trash (in Trash itself: delete them for good).",
                       input_schema={"type": "object", "required": ["account", "uids"], "properties": {
                           "account": account, "folder": folder, "uids": uids}},
                       annotations=types.ToolAnnotations(destructive_hint=True, open_world_hint=True)),
        ]
        senders = sorted(name for name, a in self.accounts.items() if a.config.send)
        if senders:
            tools.append(types.Tool(
                name="send", description="Send a draft (`draft_uid`, from Drafts) or a new message, after the user "
                "confirms; a copy is saved in Sent. Clients that cannot ask the user must pass confirm: true, and "
                "only after the user said so.",
                input_schema={"type": "object", "required": ["account"], "properties": {
                    "account": {**account, "enum": senders}, "draft_uid": {"type": "integer", "minimum": 1},
                    **content, "confirm": {"type": "boolean", "default": False}}},
                annotations=types.ToolAnnotations(destructive_hint=True, open_world_hint=True)))
        return tools

    def _account(self, args: dict[str, Any]) -> Account:
        name = args.get("account")
        if name not in self.accounts:
            raise MailError(f"account: no mail account named {name!r} (accounts: {', '.join(sorted(self.accounts))})")
        return self.accounts[name]

    @staticmethod
    def _folder(args: dict[str, Any], key: str = "folder") -> str:
        value = args.get(key, "INBOX")
        if not isinstance(value, str) or not value:
            raise MailError(f"{key}: a folder name is expected")
        return check_text(value, key)

    @staticmethod
    def _uids(args: dict[str, Any]) -> list[int]:
        uids = args.get("uids")
        if not isinstance(uids, list) or not uids or len(uids) > 1000 or not all(
                isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in uids):
            raise MailError("uids: a list of 1-1000 message UIDs is expected")
        return uids

    @staticmethod
    def _uid(args: dict[str, Any], key: str = "uid") -> int:
        uid = args.get(key)
        if not isinstance(uid, int) or isinstance(uid, bool) or uid < 1:
            raise MailError(f"{key}: a message UID (a positive integer) is expected")
        return uid

    async def _imap(self, account: Account, fn: Callable[[Session], Any], retry: bool = True) -> Any:
        return await anyio.to_thread.run_sync(lambda: account.pool.call(fn, retry=retry))

    async def _tool_accounts(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        rows = [{"account": a.name, "address": a.address, "can_send": a.config.send,
                 "imap": f"{a.imap.host}:{a.imap.port} ({a.imap.tls})", "smtp": f"{a.smtp.host}:{a.smtp.port} "
                 f"({a.smtp.tls})", "watching": [w.folder for w in a.watchers if w.connected],
                 "error": a.watch_error or a.pool.last_error} for a in self.accounts.values()]
        text = "\n".join(f"{r['account']}: {r['address']}" + ("" if r["can_send"] else " (sending off)")
                         + (f" - {r['error']}" if r["error"] else "") for r in rows)
        return types.CallToolResult(content=[_text(text)], structured_content={"accounts": rows})

    async def _tool_folders(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        account = self._account(args)
        counts = args.get("counts", True)

        def listing(session: Session) -> list[dict[str, Any]]:
            rows = []
            for f in session.folders():
                row: dict[str, Any] = {"name": f.name, "role": f.role}
                if counts and "\\Noselect" not in f.flags and "\\NonExistent" not in f.flags:
                    status = session.status(f.name)
                    row.update(messages=status.get("messages"), unseen=status.get("unseen"))
                rows.append(row)
            return rows

        rows = await self._imap(account, listing)
        text = "\n".join(f"{r['name']}" + (f" [{r['role']}]" if r["role"] else "")
                         + (f": {r['messages']} messages, {r['unseen']} unseen" if "messages" in r else "")
                         for r in rows)
        return types.CallToolResult(content=[_text(text)], structured_content={"account": account.name,
                                                                               "folders": rows})

    # searching and reading ---------------------------------------------------------------------------
    @staticmethod
    def _criteria(args: dict[str, Any]) -> list[bytes]:
        criteria: list[bytes] = []
        for key, word in (("from", b"FROM"), ("to", b"TO"), ("subject", b"SUBJECT"), ("text", b"BODY")):
            value = args.get(key)
            if value is None or value == "":
                continue
            if not isinstance(value, str) or len(value) > 500:
                raise MailError(f"{key}: text of up to 500 characters is expected")
            check_text(value, key)
            criteria += [word, quote(value)]
        for key, word in (("since", b"SINCE"), ("before", b"BEFORE")):
            value = args.get(key)
            if value:
                try:
                    day = dt.date.fromisoformat(str(value))
                except ValueError:
                    raise MailError(f"{key}: {value!r} is not a date (YYYY-MM-DD)") from None
                criteria += [word, day.strftime("%d-%b-%Y").encode()]
        for key, yes, no in (("unseen", b"UNSEEN", b"SEEN"), ("flagged", b"FLAGGED", b"UNFLAGGED")):
            value = args.get(key)
            if value is not None:
                criteria.append(yes if value else no)
        return criteria

    def _summaries(self, session: Session, uids: list[int]) -> list[dict[str, Any]]:
        fetched = session.fetch(uids, f"(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS "
                                      f"({SUMMARY_HEADERS})])")
        out = []
        for uid in sorted(fetched, reverse=True):
            item = fetched[uid]
            out.append({"uid": uid, **messages.summary(item.get("body") or b""), "flags": item.get("flags", []),
                        "size": item.get("size")})
        return out

    async def _search(self, account: Account, folder: str, args: dict[str, Any], offset: int,
                      limit: int) -> dict[str, Any]:
        criteria = self._criteria(args)

        def run(session: Session) -> dict[str, Any]:
            session.select(folder, readonly=True)
            found = session.search(criteria)
            found.reverse()  # newest first
            page = found[offset:offset + limit]
            return {"account": account.name, "folder": folder, "total": len(found), "offset": offset,
                    "next_offset": offset + limit if offset + limit < len(found) else None,
                    "messages": self._summaries(session, page)}

        return await self._imap(account, run)

    async def _tool_search(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        account = self._account(args)
        folder = self._folder(args)
        limit, offset = args.get("limit", 20), args.get("offset", 0)
        if not isinstance(limit, int) or not 1 <= limit <= 200:
            raise MailError("limit: 1-200")
        if not isinstance(offset, int) or offset < 0:
            raise MailError("offset: 0 or more")
        result = await self._search(account, folder, args, offset, limit)
        lines = [f"{m['uid']}: {m['date']} | {', '.join(m['from'])} | {m['subject']}"
                 + (" (unread)" if "\\Seen" not in m["flags"] else "") for m in result["messages"]]
        head = f"{result['total']} message(s) in {folder}" + (
            f"; showing {offset + 1}-{offset + len(lines)}" if lines else "")
        return types.CallToolResult(content=[_text("\n".join([head, *lines]))], structured_content=result)

    def _raw(self, session: Session, folder: str, uid: int, mark_read: bool = False) -> bytes:
        """A message's bytes; one FETCH that never transfers more than the size limit (plus one byte)."""
        session.select(folder, readonly=not mark_read)
        body = "BODY" if mark_read else "BODY.PEEK"
        item = session.fetch([uid], f"(UID RFC822.SIZE {body}[]<0.{self.max_bytes + 1}>)").get(uid)
        if item is None:
            raise MailError(f"mail account '{session.server.account}': no message {uid} in {folder!r}")
        size = item.get("size") or 0
        if size > self.max_bytes:
            raise MailError(f"message {uid} in {folder!r} is {size / 2**20:.1f} MB, over the limit of "
                            f"{self.config.max_message_mb:g} MB (max_message_mb)")
        return item.get("body") or b""

    async def _message(self, account: Account, folder: str, uid: int, mark_read: bool = False
                       ) -> tuple[bytes, messages.Reading]:
        """A message's bytes and its parse (the parse in a thread of its own: the IMAP session is free again)."""
        raw = await self._imap(account, lambda s: self._raw(s, folder, uid, mark_read))
        return raw, await anyio.to_thread.run_sync(messages.read, raw)

    async def _read(self, account: Account, folder: str, uid: int, mark_read: bool) -> dict[str, Any]:
        raw, reading = await self._message(account, folder, uid, mark_read)
        return {"account": account.name, "folder": folder, "uid": uid,
                "uri": self.message_uri(account.name, folder, uid), "size": len(raw), **reading.view()}

    @staticmethod
    def _render(view: dict[str, Any]) -> str:
        lines = [f"Subject: {view['subject']}", f"From: {', '.join(view['from'])}", f"To: {', '.join(view['to'])}"]
        if view["cc"]:
            lines.append(f"Cc: {', '.join(view['cc'])}")
        lines += [f"Date: {view['date']}", ""]
        lines.append(view["text"] or view["html_as_text"] or "(no text)")
        if view["attachments"]:
            lines += ["", "Attachments:"] + [f"  [{a['index']}] {a['filename']} ({a['content_type']}, about "
                                             f"{a['size']} bytes)" for a in view["attachments"]]
        return "\n".join(lines)

    async def _tool_read(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        account = self._account(args)
        view = await self._read(account, self._folder(args), self._uid(args), bool(args.get("mark_read")))
        return types.CallToolResult(content=[_text(self._render(view))], structured_content=view)

    async def _tool_attachment(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        account = self._account(args)
        folder, uid = self._folder(args), self._uid(args)
        index = args.get("index")
        _, reading = await self._message(account, folder, uid)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(reading.attachments):
            raise MailError(f"index: message {uid} has {len(reading.attachments)} attachment(s) (0-based index)")
        attachment = reading.attachments[index]
        data = await anyio.to_thread.run_sync(messages.attachment_bytes, attachment)
        info = {"filename": attachment.filename, "content_type": attachment.content_type, "size": len(data)}
        if args.get("save_root") or args.get("save_path"):
            # through the files tools, as the caller: their right to write there is checked and on record
            root, path = str(args.get("save_root", "")), str(args.get("save_path", ""))
            written = await self._files_call("write", {"root": root, "path": path, "create": True, "base64": True,
                                                       "content": base64.b64encode(data).decode()}, ctx, "save_path")
            saved = {"root": root, "path": path, "bytes": len(data),
                     "version": (written.structured_content or {}).get("version")}
            return types.CallToolResult(content=[_text(f"saved {attachment.filename} as {path} in the root "
                                                       f"'{root}' ({len(data)} bytes)")],
                                        structured_content={**info, **saved})
        uri = f"{self.message_uri(account.name, folder, uid)}/attachments/{index}"
        return types.CallToolResult(content=[
            _text(f"{attachment.filename} ({attachment.content_type}, {len(data)} bytes)"),
            types.EmbeddedResource(type="resource", resource=types.BlobResourceContents(
                uri=uri, mime_type=attachment.content_type, blob=base64.b64encode(data).decode()))],
            structured_content=info)

    async def _files_call(self, tool: str, arguments: dict[str, Any], ctx: CallContext, where: str
                          ) -> types.CallToolResult:
        """A files tool called for the caller (their rights, the audit trail); its refusal as a `MailError`."""
        files = self.host.service("files.tools", ToolSet)
        if files is None:
            raise MailError(f"{where}: files need the files provider with a root ([providers.files])")
        public = files.public(tool)
        result = await self.host.call_tool(public, arguments, caller=ctx, client=f"junction:{self.host.name}")
        if result.is_error:
            raise MailError(f"{where}: " + " ".join(c.text for c in result.content if isinstance(c, types.TextContent)))
        return result

    # writing -----------------------------------------------------------------------------------------
    async def _compose(self, account: Account, args: dict[str, Any], mode: str, ctx: CallContext) -> Any:
        """Check every caller value, fetch the original for replies and forwards, and build the message."""
        if mode not in ("new", "reply", "reply_all", "forward"):
            raise MailError("mode: one of new, reply, reply_all, forward")
        to = messages.clean_addresses(args.get("to"), "to")
        cc = messages.clean_addresses(args.get("cc"), "cc")
        bcc = messages.clean_addresses(args.get("bcc"), "bcc")
        subject = messages.clean_header(args.get("subject", ""), "subject")
        body = args.get("body", "")
        html = args.get("html")
        if not isinstance(body, str) or (html is not None and not isinstance(html, str)):
            raise MailError("body and html: text is expected")
        if len(body) > 2_000_000 or len(html or "") > 2_000_000:
            raise MailError("body: over 2,000,000 characters")
        original = None
        if mode != "new":
            folder, uid = self._folder(args), self._uid(args)
            _, original = await self._message(account, folder, uid)
            was = original.headers
            if not subject:
                subject = messages.reply_subject(was["subject"], "Fwd" if mode == "forward" else "Re")
            if mode in ("reply", "reply_all") and not to:
                to = was["reply_to"] or was["from"]
                if mode == "reply_all":
                    me = account.address.lower()
                    seen = {email.utils.parseaddr(a)[1].lower() for a in to}
                    for address in was["to"] + was["cc"]:
                        bare = email.utils.parseaddr(address)[1].lower()
                        if bare != me and bare not in seen:
                            seen.add(bare)
                            cc.append(address)
                to = messages.clean_addresses(to, "to (from the original)") if to else []
                cc = messages.clean_addresses(cc, "cc (from the original)")
        attachments = await self._attachments(args.get("attachments"), ctx)
        domain = account.address.rpartition("@")[2] or "junction.local"
        return await anyio.to_thread.run_sync(lambda: messages.compose(
            sender=account.sender(), to=to, cc=cc, bcc=bcc, subject=subject, body=body, html=html,
            original=original, mode=mode, attachments=attachments, domain=domain))

    async def _attachments(self, given: Any, ctx: CallContext) -> list[tuple[str, str, bytes]]:
        if not given:
            return []
        if not isinstance(given, list) or len(given) > 20:
            raise MailError("attachments: a list of up to 20 {root, path} objects is expected")
        out = []
        for number, item in enumerate(given):
            if not isinstance(item, dict):
                raise MailError(f"attachments[{number}]: expected {{root, path}}")
            # through the files tools, as the caller: their right to read the file is checked and on record
            read = await self._files_call("read", {"root": str(item.get("root", "")), "path": str(item.get("path", "")),
                                                   "raw": True}, ctx, f"attachments[{number}]")
            blob = next((c.resource for c in read.content if isinstance(c, types.EmbeddedResource)), None)
            if not isinstance(blob, types.BlobResourceContents):
                raise MailError(f"attachments[{number}]: the files provider gave no bytes for it")
            data = base64.b64decode(blob.blob)
            name = str(item.get("path", "")).rsplit("/", 1)[-1]
            out.append((name, mimetypes.guess_type(name)[0] or "application/octet-stream", data))
        return out

    async def _tool_draft(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        account = self._account(args)
        mode = str(args.get("mode", "new"))
        message = await self._compose(account, args, mode, ctx)
        data = messages.to_bytes(message)

        def save(session: Session) -> tuple[str, int | None]:
            drafts = account.role(session, "\\Drafts")
            return drafts, session.append(drafts, "(\\Draft \\Seen)", data)

        drafts, uid = await self._imap(account, save, retry=False)
        info = {"account": account.name, "folder": drafts, "uid": uid, "subject": message["Subject"],
                "to": [str(a) for a in message.get_all("To", [])], "message_id": message["Message-ID"],
                "in_reply_to": message["In-Reply-To"], "references": message["References"]}
        return types.CallToolResult(content=[_text(f"draft saved in {drafts} (uid {uid}): {message['Subject']}")],
                                    structured_content=info)

    async def _tool_send(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        account = self._account(args)
        if not account.config.send:
            raise MailError(f"account '{account.name}': sending is switched off (send = false); save a draft instead")
        draft_uid = args.get("draft_uid")
        if draft_uid is not None:
            uid = self._uid(args, "draft_uid")
            raw = await self._imap(account, lambda s: self._raw(s, account.role(s, "\\Drafts"), uid))
            message, data = messages.parse(raw), raw
            for key in ("to", "cc", "bcc", "subject"):
                if args.get(key):
                    raise MailError(f"{key}: give either draft_uid or the message's content, not both")
        else:
            if not args.get("to") and not args.get("cc") and not args.get("bcc"):
                raise MailError("to: at least one recipient is needed")
            message = await self._compose(account, args, "new", ctx)
            data = messages.to_bytes(message)
        recipients = [a for key in ("to", "cc", "bcc") for a in messages.addresses(message, key)]
        if not recipients:
            raise MailError("the message has no recipients (to, cc or bcc)")
        subject = messages.header(message, "subject")
        summary = f"Send the e-mail \"{subject}\" from {account.address} to {', '.join(recipients)}?"
        if not await self._confirmed(summary, args, ctx):
            return types.CallToolResult(content=[_text("not sent: the user did not confirm")], is_error=True,
                                        structured_content={"sent": False})
        refused = await anyio.to_thread.run_sync(self._smtp_send, account, message, recipients)

        def file_copy(session: Session) -> tuple[str, int | None]:
            sent = account.role(session, "\\Sent")
            copied = session.append(sent, "(\\Seen)", data)
            if draft_uid is not None:
                session.select(account.role(session, "\\Drafts"))
                session.store([int(draft_uid)], "+FLAGS.SILENT", "(\\Deleted)")
                session.expunge([int(draft_uid)])
            return sent, copied

        try:
            sent_folder, sent_uid = await self._imap(account, file_copy, retry=False)
            note = f"; a copy is in {sent_folder}"
        except MailError as exc:  # the mail went out: say so, and that the copy failed
            sent_folder, sent_uid, note = None, None, f"; but the copy for Sent failed: {exc}"
        if refused:
            note += "; refused by the server: " + "; ".join(f"{r}: {why}" for r, why in refused.items())
        return types.CallToolResult(content=[_text(f"sent \"{subject}\" to {', '.join(recipients)}{note}")],
                                    structured_content={"sent": True, "recipients": recipients, "refused": refused,
                                                        "message_id": messages.header(message, "message-id"),
                                                        "sent_folder": sent_folder, "sent_uid": sent_uid})

    async def _confirmed(self, summary: str, args: dict[str, Any], ctx: CallContext) -> bool:
        capabilities = ctx.client_capabilities
        if capabilities is not None and capabilities.elicitation is not None:
            try:
                answer = await ctx.elicit(summary, {"type": "object", "required": ["send"], "properties": {
                    "send": {"type": "boolean", "title": "Send it", "description": "yes: send now"}}})
            except InputUnavailable:
                pass
            else:
                return answer.action == "accept" and bool((answer.content or {}).get("send"))
        if args.get("confirm") is True:
            return True
        raise MailError("sending needs the user's confirmation: this client cannot be asked (no elicitation), so "
                        f"show the user this and call again with confirm: true if they agree. {summary}")

    def _smtp_send(self, account: Account, message: Any, recipients: list[str]) -> dict[str, str]:
        """Send over SMTP; returns the recipients the server refused (when it took the others)."""
        server = account.smtp
        bare = [email.utils.parseaddr(r)[1] for r in recipients]
        try:
            if server.tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout,
                                                      context=server.ssl_context())
            else:
                smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
                if server.tls == "starttls":
                    smtp.starttls(context=server.ssl_context())
        except (OSError, smtplib.SMTPException) as exc:
            raise server.fail(f"cannot connect: {self._smtp_reason(exc)}") from None
        try:
            try:
                if server.auth == "xoauth2":
                    smtp.ehlo()
                    smtp.auth("XOAUTH2", lambda challenge=None: server.xoauth2().decode(), initial_response_ok=True)
                else:
                    smtp.login(server.username, server.password)
            except smtplib.SMTPException as exc:
                raise server.fail(f"the server refused the login of {server.username!r}: {self._smtp_reason(exc)}") \
                    from None
            try:
                refused = smtp.send_message(message, from_addr=account.address, to_addrs=bare)
            except smtplib.SMTPRecipientsRefused as exc:
                raise server.fail("every recipient was refused: " + "; ".join(
                    f"{r}: {self._smtp_reason(e)}" for r, e in exc.recipients.items())) from None
            except (smtplib.SMTPException, OSError) as exc:
                raise server.fail(f"sending failed: {self._smtp_reason(exc)}") from None
            return {r: self._smtp_reason(e) for r, e in refused.items()}
        finally:
            with contextlib.suppress(Exception):
                smtp.quit()

    @staticmethod
    def _smtp_reason(exc: Any) -> str:
        if isinstance(exc, tuple) and len(exc) == 2:
            code, text = exc
        else:
            code, text = getattr(exc, "smtp_code", None), getattr(exc, "smtp_error", None)
        if code is not None and text is not None:
            return f"{code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused (is the server running?)"
        if isinstance(exc, ssl.SSLError):
            return f"TLS failed ({exc.reason or exc})"
        return str(exc) or exc.__class__.__name__

    # filing ------------------------------------------------------------------------------------------
    async def _tool_move(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        account = self._account(args)
        folder, uids, target = self._folder(args), self._uids(args), self._folder(args, "to")

        def run(session: Session) -> None:
            session.select(folder)
            session.move(uids, target)

        await self._imap(account, run, retry=False)
        return types.CallToolResult(content=[_text(f"moved {len(uids)} message(s) from {folder} to {target}")],
                                    structured_content={"moved": len(uids), "from": folder, "to": target})

    async def _set_flag(self, args: dict[str, Any], flag: str, on: bool) -> int:
        account = self._account(args)
        folder, uids = self._folder(args), self._uids(args)

        def run(session: Session) -> None:
            session.select(folder)
            session.store(uids, "+FLAGS.SILENT" if on else "-FLAGS.SILENT", f"({flag})")

        await self._imap(account, run)
        return len(uids)

    async def _tool_flag(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        on = args.get("flagged", True) is not False
        count = await self._set_flag(args, "\\Flagged", on)
        return types.CallToolResult(content=[_text(f"{'flagged' if on else 'unflagged'} {count} message(s)")],
                                    structured_content={"changed": count, "flagged": on})

    async def _tool_mark_read(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        on = args.get("read", True) is not False
        count = await self._set_flag(args, "\\Seen", on)
        return types.CallToolResult(content=[_text(f"marked {count} message(s) {'read' if on else 'unread'}")],
                                    structured_content={"changed": count, "read": on})

    async def _tool_delete(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        account = self._account(args)
        folder, uids = self._folder(args), self._uids(args)

        def run(session: Session) -> str:
            trash = account.role(session, "\\Trash")
            session.select(folder)
            if folder == trash:
                session.store(uids, "+FLAGS.SILENT", "(\\Deleted)")
                session.expunge(uids)
                return "deleted for good"
            session.move(uids, trash)
            return f"moved to {trash}"

        what = await self._imap(account, run, retry=False)
        return types.CallToolResult(content=[_text(f"{len(uids)} message(s) {what}")],
                                    structured_content={"count": len(uids), "result": what})
