"""The hub's own tables: users, tokens, sign-ins, secrets, the vault and the record of every tool call.

Owns: their schema migrations (the same on both engines, see hub/db.py: SQLite under the data directory by default,
PostgreSQL's schema `junction` with `[store] url`) and the call records, written by a background writer in batches
so the request path never waits on the disk. Argument values are never stored (they may hold secrets): only sizes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec

from hub.db import (
    Database,
    DatabaseError,
    IntegrityError,
    SqliteDatabase,
    open_database,
)

logger = logging.getLogger("junction.store")

# Each entry moves the schema one version forward; never edit a shipped one.
MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE tool_calls (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        request_id TEXT,
        principal TEXT,
        client TEXT,
        protocol_version TEXT,
        tool TEXT NOT NULL,
        provider TEXT,
        outcome TEXT NOT NULL,
        error TEXT,
        duration_ms REAL NOT NULL,
        args_bytes INTEGER NOT NULL,
        result_bytes INTEGER NOT NULL
    );
    CREATE INDEX tool_calls_ts ON tool_calls (ts);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    ALTER TABLE tool_calls ADD COLUMN decision TEXT NOT NULL DEFAULT 'allowed';
    CREATE INDEX tool_calls_principal ON tool_calls (principal, ts);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT,
        created REAL NOT NULL
    );
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        scopes TEXT,
        created REAL NOT NULL,
        expires REAL,
        revoked REAL,
        last_used REAL
    );
    """,
    """
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        wrapped_key BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        updated REAL NOT NULL
    );
    """,
    """
    CREATE TABLE oauth_clients (
        client_id TEXT PRIMARY KEY,
        metadata TEXT NOT NULL,
        source TEXT NOT NULL,
        created REAL NOT NULL,
        fetched REAL,
        last_used REAL
    );
    CREATE TABLE oauth_requests (
        id TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        params TEXT NOT NULL,
        csrf TEXT NOT NULL,
        expires REAL NOT NULL
    );
    CREATE TABLE oauth_codes (
        code_hash TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        user TEXT NOT NULL,
        scopes TEXT NOT NULL,
        params TEXT NOT NULL,
        family TEXT NOT NULL,
        expires REAL NOT NULL,
        used REAL
    );
    CREATE TABLE oauth_tokens (
        token_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        family TEXT NOT NULL,
        client_id TEXT NOT NULL,
        user TEXT NOT NULL,
        scopes TEXT NOT NULL,
        resource TEXT,
        created REAL NOT NULL,
        expires REAL NOT NULL,
        used REAL,
        revoked REAL
    );
    CREATE INDEX oauth_tokens_family ON oauth_tokens (family);
    CREATE INDEX oauth_tokens_user ON oauth_tokens (user);
    CREATE TABLE login_sessions (
        id_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        expires REAL NOT NULL
    );
    """,
    """
    ALTER TABLE oauth_clients ADD COLUMN owner TEXT;
    """,
    """
    CREATE TABLE vault (
        user TEXT NOT NULL,
        connector TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        key_id TEXT NOT NULL,
        wrapped_key BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        expires REAL,
        updated REAL NOT NULL,
        PRIMARY KEY (user, connector, name)
    );
    """,
    """
    ALTER TABLE login_sessions ADD COLUMN delegation TEXT;
    """,
    """
    ALTER TABLE users ADD COLUMN last_sign_in REAL;
    ALTER TABLE users ADD COLUMN disabled REAL;
    """,
)


_INSERT_CALL = ("INSERT INTO tool_calls (ts, request_id, principal, client, protocol_version, tool, provider, outcome, "
                "error, duration_ms, args_bytes, result_bytes, decision) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")


class CallRecord(msgspec.Struct, frozen=True):
    """One tool call as the store keeps it."""

    ts: float
    request_id: str | None
    principal: str | None
    client: str | None
    protocol_version: str
    tool: str
    provider: str | None
    outcome: str
    """`ok`, `tool_error` (isError result), `input_required`, `error` (protocol error), `cancelled`."""
    error: str | None
    duration_ms: float
    args_bytes: int
    result_bytes: int
    decision: str = "allowed"
    """`allowed`; `denied` (the policy refused it) or `limited` (a rate limit did): it never reached a provider."""


class Store:
    """The hub's tables (`hub.db`: SQLite by default, PostgreSQL with `[store] url`); `open()` migrates,
    `run_writer()` is the call records' batch writer."""

    def __init__(self, path: Path, url: str = "") -> None:
        self.path = path
        """The SQLite file (when `url` does not name a PostgreSQL server)."""
        self.url = url
        self._database: Database | None = None
        self._pending: list[CallRecord] = []
        self._wake = anyio.Event()

    def open(self) -> None:
        self._database = open_database(self.url, file=self.path, schema="junction")
        try:
            version = self._database.migrate(MIGRATIONS)
        except BaseException:
            self._database.close()
            self._database = None
            raise
        logger.debug("store at schema version %d (%s)", version, self._database.where)

    @property
    def is_open(self) -> bool:
        return self._database is not None

    @property
    def database(self) -> Database:
        """The open database (for modules that own tables in it: hub/security/signin.py)."""
        if self._database is None:
            raise RuntimeError("store is not open")
        return self._database

    @property
    def engine(self) -> str:
        return self.database.engine

    _db = database

    @property
    def schema_version(self) -> int:
        if isinstance(self.database, SqliteDatabase):
            return self.database.version
        row = self._db.one("SELECT version FROM schema_version")
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.flush()
        if self._database is not None:
            self._database.close()
            self._database = None

    # call records
    def record_call(self, record: CallRecord) -> None:
        """Queue a record; the writer stores it within a fraction of a second."""
        self._pending.append(record)
        if len(self._pending) == 1:
            self._wake.set()

    def flush(self) -> None:
        """Write queued records now (blocking). Whatever a caller's bytes put into a record (a tool name or an
        error message with a lone surrogate), the row is written: text the engine cannot store is escaped."""
        batch, self._pending = self._pending, []
        if not batch or self._database is None:
            return
        rows = [tuple(_storable(v) for v in msgspec.structs.astuple(r)) for r in batch]
        # One transaction per batch: autocommit would make every row its own commit (5x the CPU).
        try:
            self._db.executemany(_INSERT_CALL, rows)
        except DatabaseError as exc:
            logger.error("could not store %d call records at once (%s); storing them one by one", len(rows), exc)
            self._insert_each(rows)

    def _insert_each(self, rows: list[tuple[Any, ...]]) -> None:
        for row in rows:
            try:
                self._db.execute(_INSERT_CALL, row)
            except DatabaseError as exc:  # never the values: they name what a caller called, with its error text
                logger.error("lost the call record of a %s call at %s: %s", row[5], row[0], exc)

    async def run_writer(self, interval: float = 0.5) -> None:
        """Background task: flush queued records in batches until cancelled."""
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                await anyio.sleep(interval)
                try:
                    await anyio.to_thread.run_sync(self.flush)
                except Exception:  # a disk problem must not stop the hub; the next batch tries again
                    logger.exception("could not write call records")
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.flush)

    def recent_calls(self, limit: int = 100, tool: str | None = None, principal: str | None = None,
                     since: float | None = None, until: float | None = None, decision: str | None = None
                     ) -> list[CallRecord]:
        """The newest calls first, filtered by exact tool / principal / decision and a time range."""
        self.flush()
        sql = (
            "SELECT ts, request_id, principal, client, protocol_version, tool, provider, outcome, error, "
            "duration_ms, args_bytes, result_bytes, decision FROM tool_calls"
        )
        where, args = [], []
        for clause, value in (("tool = ?", tool), ("principal = ?", principal), ("ts >= ?", since),
                              ("ts < ?", until), ("decision = ?", decision)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        return [CallRecord(*row) for row in self._db.rows(sql, (*args, limit))]

    def call_timings(self, since: float, principal: str | None = None, limit: int = 200_000
                     ) -> list[tuple[float, float, str, str]]:
        """(ts, duration_ms, outcome, decision) of the calls since `since`, oldest first (at most `limit`, the
        newest): what the console's charts are drawn from."""
        self.flush()
        sql = "SELECT ts, duration_ms, outcome, decision FROM tool_calls WHERE ts >= ?"
        args: list[object] = [since]
        if principal is not None:
            sql += " AND principal = ?"
            args.append(principal)
        rows = self._db.rows(f"SELECT ts, duration_ms, outcome, decision FROM ({sql} ORDER BY id DESC LIMIT ?) "
                             "AS newest ORDER BY ts", (*args, limit))
        return [tuple(row) for row in rows]

    def prune_calls(self, retention_days: float) -> int:
        if retention_days <= 0:
            return 0
        cutoff = time.time() - retention_days * 86400
        return self._db.execute("DELETE FROM tool_calls WHERE ts < ?", (cutoff,)).rowcount

    # small key/value facts (e.g. the request-state key id)
    def get_meta(self, key: str) -> str | None:
        row = self._db.one("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                         "value = excluded.value", (key, value))


    # users and API tokens (see hub/security/auth.py for what they mean)
    def add_user(self, name: str, role: str, password_hash: str | None = None) -> None:
        try:
            self._db.execute("INSERT INTO users (name, role, password_hash, created) VALUES (?, ?, ?, ?)",
                             (name, role, password_hash, time.time()))
        except IntegrityError:
            raise KeyError(f"a user named '{name}' already exists") from None

    def users(self) -> list[tuple[Any, ...]]:
        """(name, role, created) per user, by name."""
        return self._db.rows("SELECT name, role, created FROM users ORDER BY name")

    def user_rows(self) -> list[tuple[Any, ...]]:
        """(name, role, created, has a password, last sign-in, disabled since) per user, by name."""
        return [(name, role, created, bool(has_password), last, disabled) for name, role, created, has_password,
                last, disabled in self._db.rows("SELECT name, role, created, password_hash IS NOT NULL, "
                                                "last_sign_in, disabled FROM users ORDER BY name")]

    def user(self, name: str) -> tuple[Any, ...] | None:
        """(role, disabled since) of a user, disabled or not; None: no such user."""
        return self._db.one("SELECT role, disabled FROM users WHERE name = ?", (name,))

    def set_role(self, name: str, role: str) -> bool:
        return bool(self._db.execute("UPDATE users SET role = ? WHERE name = ?", (role, name)).rowcount)

    def set_disabled(self, name: str, disabled: bool) -> bool:
        """Disable a user (their login sessions and the hub's OAuth sign-ins end now; their API tokens are refused
        while they are disabled) or enable them again."""
        now = time.time()
        with self._db.transaction() as tx:
            changed = tx.execute("UPDATE users SET disabled = ? WHERE name = ?",
                                 (now if disabled else None, name)).rowcount
            if disabled:
                tx.execute("DELETE FROM login_sessions WHERE user = ?", (name,))
                tx.execute("UPDATE oauth_tokens SET revoked = ? WHERE user = ? AND revoked IS NULL", (now, name))
        return bool(changed)

    def note_sign_in(self, name: str) -> None:
        self._db.execute("UPDATE users SET last_sign_in = ? WHERE name = ?", (time.time(), name))

    def set_password(self, name: str, password_hash: str) -> bool:
        return bool(self._db.execute("UPDATE users SET password_hash = ? WHERE name = ?",
                                     (password_hash, name)).rowcount)

    def password_hash(self, name: str) -> str | None:
        row = self._db.one("SELECT password_hash FROM users WHERE name = ?", (name,))
        return row[0] if row else None

    def user_role(self, name: str) -> str | None:
        """The role of a user who may use the hub now: None for no such user, and for a disabled one."""
        row = self._db.one("SELECT role FROM users WHERE name = ? AND disabled IS NULL", (name,))
        return row[0] if row else None

    def remove_user(self, name: str) -> bool:
        """Remove a user, every token of theirs and their vault entries (revoke those upstream first). OAuth clients
        they registered stay (others may sign in with them), with no owner: a later user of the name owns none."""
        with self._db.transaction() as tx:
            for table in ("api_tokens", "oauth_tokens", "oauth_codes", "login_sessions", "vault"):
                tx.execute(f"DELETE FROM {table} WHERE user = ?", (name,))
            tx.execute("UPDATE oauth_clients SET owner = NULL WHERE owner = ?", (name,))
            removed = tx.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount
        return bool(removed)

    def add_token(self, token_id: str, user: str, name: str, token_hash: str, scopes: str | None,
                  expires: float | None) -> None:
        self._db.execute(
            "INSERT INTO api_tokens (id, user, name, token_hash, scopes, created, expires) VALUES (?,?,?,?,?,?,?)",
            (token_id, user, name, token_hash, scopes, time.time(), expires))

    def tokens(self, user: str | None = None) -> list[tuple[Any, ...]]:
        """(id, user, name, scopes, created, expires, revoked, last_used) per token, newest first."""
        sql = "SELECT id, user, name, scopes, created, expires, revoked, last_used FROM api_tokens"
        args: tuple[Any, ...] = ()
        if user is not None:
            sql += " WHERE user = ?"
            args = (user,)
        return self._db.rows(sql + " ORDER BY created DESC", args)

    def revoke_token(self, token_id: str) -> bool:
        return bool(self._db.execute("UPDATE api_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                                     (time.time(), token_id)).rowcount)

    def find_token(self, token_hash: str) -> tuple[Any, ...] | None:
        """(id, user, role, scopes, expires, revoked, user disabled since) of the token with this hash, if any."""
        return self._db.one(
            "SELECT t.id, t.user, u.role, t.scopes, t.expires, t.revoked, u.disabled FROM api_tokens t "
            "JOIN users u ON u.name = t.user WHERE t.token_hash = ?", (token_hash,))

    def token(self, token_id: str) -> tuple[Any, ...] | None:
        """(id, user, name, scopes, created, expires, revoked, last_used) of one token, as `tokens` lists them."""
        return self._db.one("SELECT id, user, name, scopes, created, expires, revoked, last_used FROM "
                            "api_tokens WHERE id = ?", (token_id,))

    def token_state(self, token_id: str) -> tuple[Any, ...] | None:
        """(user, expires, revoked) of an API token by id."""
        return self._db.one("SELECT user, expires, revoked FROM api_tokens WHERE id = ?", (token_id,))

    def touch_token(self, token_id: str) -> None:
        self._db.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (time.time(), token_id))


    # plain statements, for modules that own their tables (hub/security/signin.py)
    def execute(self, sql: str, args: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return self._db.execute(sql, args).rowcount

    def fetchone(self, sql: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        return self._db.one(sql, args)

    def fetchall(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._db.rows(sql, args)

    # encrypted secrets (see hub/security/secrets.py; nothing here is in clear)
    def put_secret(self, name: str, key_id: str, wrapped_key: bytes, ciphertext: bytes) -> None:
        self._db.execute("INSERT INTO secrets (name, key_id, wrapped_key, ciphertext, updated) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, wrapped_key = "
                         "excluded.wrapped_key, ciphertext = excluded.ciphertext, updated = excluded.updated",
                         (name, key_id, wrapped_key, ciphertext, time.time()))

    def get_secret(self, name: str) -> tuple[Any, ...] | None:
        """(key id, wrapped key, ciphertext) of one secret."""
        return self._db.one("SELECT key_id, wrapped_key, ciphertext FROM secrets WHERE name = ?", (name,))

    def secret_names(self) -> list[tuple[Any, ...]]:
        return self._db.rows("SELECT name, updated FROM secrets ORDER BY name")

    def delete_secret(self, name: str) -> bool:
        return bool(self._db.execute("DELETE FROM secrets WHERE name = ?", (name,)).rowcount)

    def all_wrapped_keys(self) -> list[tuple[Any, ...]]:
        return self._db.rows("SELECT name, key_id, wrapped_key FROM secrets")

    def all_vault_wrapped_keys(self) -> list[tuple[Any, ...]]:
        return self._db.rows("SELECT user, connector, name, key_id, wrapped_key FROM vault")

    def replace_wrapped_keys(self, rows: list[tuple[str, str, bytes]],
                             vault_rows: Sequence[tuple[tuple[str, str, str], str, bytes]] = ()) -> None:
        """Swap the wrapped data keys of secrets and vault entries in one transaction (key rotation)."""
        with self._db.transaction() as tx:
            tx.executemany("UPDATE secrets SET key_id = ?, wrapped_key = ? WHERE name = ?",
                           [(kid, wrapped, name) for name, kid, wrapped in rows])
            tx.executemany("UPDATE vault SET key_id = ?, wrapped_key = ? WHERE user = ? AND connector = ? AND name = ?",
                           [(kid, wrapped, *key) for key, kid, wrapped in vault_rows])


    # each user's own connector credentials (see hub/security/vault.py; sealed like secrets)
    def put_vault(self, user: str, connector: str, name: str, kind: str, sealed: tuple[str, bytes, bytes],
                  meta: str, expires: float | None) -> None:
        self._db.execute(
            "INSERT INTO vault (user, connector, name, kind, key_id, wrapped_key, ciphertext, meta, expires, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user, connector, name) DO UPDATE SET "
            "kind = excluded.kind, key_id = excluded.key_id, wrapped_key = excluded.wrapped_key, "
            "ciphertext = excluded.ciphertext, meta = excluded.meta, expires = excluded.expires, "
            "updated = excluded.updated",
            (user, connector, name, kind, *sealed, meta, expires, time.time()))

    def get_vault(self, user: str, connector: str, name: str) -> tuple[Any, ...] | None:
        """(key_id, wrapped_key, ciphertext, kind, meta, expires) of one entry."""
        return self._db.one("SELECT key_id, wrapped_key, ciphertext, kind, meta, expires FROM vault "
                            "WHERE user = ? AND connector = ? AND name = ?", (user, connector, name))

    def vault_entries(self, user: str | None = None, connector: str | None = None) -> list[tuple[Any, ...]]:
        """(user, connector, name, kind, meta, expires, updated) per entry: never a value."""
        sql = "SELECT user, connector, name, kind, meta, expires, updated FROM vault"
        where, args = [], []
        if user is not None:
            where.append("user = ?")
            args.append(user)
        if connector is not None:
            where.append("connector = ?")
            args.append(connector)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._db.rows(sql + " ORDER BY user, connector, name", args)

    def delete_vault(self, user: str, connector: str, name: str | None = None) -> int:
        if name is None:
            return self._db.execute("DELETE FROM vault WHERE user = ? AND connector = ?", (user, connector)).rowcount
        return self._db.execute("DELETE FROM vault WHERE user = ? AND connector = ? AND name = ?",
                                (user, connector, name)).rowcount


    def forget_connector(self, connector: str) -> int:
        """Every user's links and own values for `connector` (it is gone, or it now reaches another server)."""
        return self._db.execute("DELETE FROM vault WHERE connector = ?", (connector,)).rowcount


def _storable(value: object) -> object:
    """Text as SQLite can store it: lone surrogates (which UTF-8 cannot hold) become `\\udXXX` escapes."""
    if type(value) is not str or value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value
