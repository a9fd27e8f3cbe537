"""One SQL database, on SQLite (the default: a file under the data directory) or PostgreSQL (`[store] url`).

Owns: the connection (SQLite: one, in WAL mode, behind a lock; PostgreSQL: a psycopg pool), the few words in which
the two engines' SQL differs, schema scripts run once however many replicas start at the same moment, and the
versioned migrations of a component. Everything above this module writes SQLite's SQL once:

- placeholders are `?` (turned into psycopg's `%s`, and a literal `%` doubled);
- a column named `user` (a reserved word in PostgreSQL, where a bare `user` is the current role) is quoted;
- in `CREATE TABLE` and `ALTER TABLE`: `INTEGER PRIMARY KEY [AUTOINCREMENT]` becomes an identity column, `INTEGER`
  `BIGINT`, `REAL` `DOUBLE PRECISION` (PostgreSQL's `REAL` is 4 bytes: timestamps would lose their seconds) and
  `BLOB` `BYTEA`;
- new ids come back with `INSERT ... RETURNING id`, upserts are `ON CONFLICT (...) DO UPDATE|NOTHING`, and
  aggregates name every column they group by: SQL both engines run, never a second statement for one of them.

The interface is synchronous, as SQLite's is: statements on PostgreSQL are a round trip on a local network, and the
hub's request path reads at most one row (a token) per request. Each component (the hub, each provider) gets its
own schema on PostgreSQL and its own file on SQLite, so table names never collide.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

logger = logging.getLogger("junction.db")


class DatabaseError(Exception):
    """The database refused a statement or could not be reached (the engine's own message, never the values)."""


class IntegrityError(DatabaseError):
    """A unique key or another constraint refused the row."""


class Rows:
    """What a statement gave back: its rows (all of them, already fetched) and how many rows it changed."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)


class Session(Protocol):
    """Statements inside one transaction (`Database.transaction()`)."""

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...


class Database:
    """The interface both engines give; `open_database` picks one."""

    engine: str
    """`sqlite` or `postgresql`."""
    where: str
    """What to name in a message about this database: a file, or a server and schema (never a password)."""

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        """One statement in a transaction of its own."""
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """One statement for many rows, in one transaction."""
        with self.transaction() as tx:
            tx.executemany(sql, rows)

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.execute(sql, args).fetchall()

    def one(self, sql: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        return self.execute(sql, args).fetchone()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Statements that land together or not at all (a write lock for the whole block on SQLite)."""
        raise NotImplementedError
        yield

    def columns(self, table: str) -> set[str]:
        """The column names of one of this component's tables (empty if it does not exist)."""
        raise NotImplementedError

    def serialize(self, tx: Session, key: str) -> None:
        """Inside a transaction: wait for every other transaction that serializes on `key` to end first, so rows
        numbered in one are committed in that order (SQLite's write lock already does this)."""

    def script(self, script: str) -> None:
        """Statements that make sure a schema exists (`CREATE TABLE IF NOT EXISTS ...`), run by one starting
        process at a time."""
        raise NotImplementedError

    def migrate(self, migrations: Sequence[str]) -> int:
        """Move this component's schema forward through `migrations` (each entry a script, never edited once
        shipped) and return the version it is at. A database newer than `migrations` is refused."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def open_database(url: str, *, file: Path, schema: str) -> Database:
    """The database of one component: `url` empty or `sqlite` keeps it in `file`; `postgresql://...` in the
    server's schema `schema` (made if missing)."""
    if not url or url == "sqlite":
        return SqliteDatabase(file)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, schema)
    raise ValueError(f"unknown kind of database '{url.split(':', 1)[0]}' in [store] url "
                     "(use postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or leave it out for SQLite)")


def provider_database(url: str, data_dir: Path, provider: str, name: str) -> Database:
    """Provider `provider`'s database `name`: `DATA_DIR/NAME.db` on SQLite; on PostgreSQL the schema
    `PROVIDER_NAME` (lower case, `_` for anything else), which every replica shares."""
    schema = re.sub(r"[^a-z0-9_]", "_", f"{provider}_{name}".lower())[:63]
    if schema[0].isdigit():
        schema = f"p{schema}"[:63]
    return open_database(url, file=data_dir / f"{name}.db", schema=schema)


def server_of(url: str) -> str:
    """`postgresql://HOST:PORT/DATABASE`: a URL as a message may show it (no user, no password, no options)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def split_script(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


# SQLite ---------------------------------------------------------------------------------------------------------
class _SqliteSession:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        try:
            cursor = self._conn.execute(sql, args)
            return Rows(cursor.fetchall(), cursor.rowcount)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from exc


class SqliteDatabase(Database):
    """One file in WAL mode, one connection shared by the event loop and threads behind a (re-entrant) lock."""

    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.where = str(path)
        try:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the database {path}: {exc}") from exc
        self._conn = conn
        self._session = _SqliteSession(conn)
        self._lock = threading.RLock()

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        with self._lock:
            return self._session.execute(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._session
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.rows(f"PRAGMA table_info({table})")}

    def script(self, script: str) -> None:
        with self.transaction() as tx:
            for statement in split_script(script):
                tx.execute(statement)

    @property
    def version(self) -> int:
        return int(self.rows("PRAGMA user_version")[0][0])

    def migrate(self, migrations: Sequence[str]) -> int:
        current = self.version
        if current > len(migrations):
            raise RuntimeError(
                f"the database {self.path} has schema version {current}, newer than this Junction "
                f"understands ({len(migrations)}); upgrade Junction or use another data directory")
        for version in range(current, len(migrations)):
            with self.transaction() as tx:
                for statement in split_script(migrations[version]):
                    tx.execute(statement)
                tx.execute(f"PRAGMA user_version = {version + 1}")
        return len(migrations)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# PostgreSQL -----------------------------------------------------------------------------------------------------
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@functools.lru_cache(maxsize=4096)
def to_postgres(sql: str) -> str:
    """SQLite's SQL as psycopg takes it: `?` -> `%s`, `%` -> `%%`, a bare `user` quoted (string literals and
    quoted names are left as they are), and PostgreSQL's types in `CREATE TABLE` and `ALTER TABLE`."""
    sql = ddl_to_postgres(sql)
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = sql.find(ch, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == ch:  # '' inside a literal
                end = sql.find(ch, end + 2)
            end = n - 1 if end == -1 else end
            out.append(sql[i:end + 1].replace("%", "%%"))
            i = end + 1
        elif ch == "?":
            out.append("%s")
            i += 1
        elif ch == "%":
            out.append("%%")
            i += 1
        elif ch.isalpha() or ch == "_":
            word = _WORD.match(sql, i)
            assert word is not None
            text = word.group()
            out.append('"user"' if text.lower() == "user" else text)
            i = word.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


_DDL = re.compile(r"^\s*(CREATE\s+TABLE|ALTER\s+TABLE)", re.I)
_TYPES = ((re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", re.I),
           "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
          (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
          (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
          (re.compile(r"\bBLOB\b", re.I), "BYTEA"))


def ddl_to_postgres(statement: str) -> str:
    """A schema statement with PostgreSQL's types (only `CREATE TABLE` and `ALTER TABLE` change)."""
    if _DDL.match(statement):
        for pattern, replacement in _TYPES:
            statement = pattern.sub(replacement, statement)
    return statement


def _pg_value(value: object) -> object:
    """Text as PostgreSQL can store it: no NUL characters, no lone surrogates (SQLite takes both)."""
    if type(value) is str and ("\x00" in value or not value.isascii()):
        value = value.replace("\x00", "\ufffd")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _pg_args(args: Sequence[object]) -> Sequence[object]:
    return [_pg_value(a) for a in args] if args else args


class _PostgresSession:
    def __init__(self, conn: Any, errors: Any) -> None:
        self._conn = conn
        self._errors = errors

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        with _translated(self._errors):
            cursor = self._conn.execute(to_postgres(sql), _pg_args(args))
            return Rows(cursor.fetchall() if cursor.description is not None else [], cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        with _translated(self._errors), self._conn.cursor() as cursor:
            cursor.executemany(to_postgres(sql), [_pg_args(r) for r in rows])


@contextmanager
def _translated(errors: Any) -> Iterator[None]:
    try:
        yield
    except errors.IntegrityError as exc:
        raise IntegrityError(_first_line(exc)) from exc
    except errors.Error as exc:
        raise DatabaseError(_first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class PostgresDatabase(Database):
    """A psycopg pool whose connections work in one schema (`search_path`), autocommit outside transactions. At most
    `max_size` connections each: a replica has one pool per part (the hub, each provider), so three replicas use
    at most 60 of PostgreSQL's default 100."""

    engine = "postgresql"

    def __init__(self, url: str, schema: str, *, max_size: int = 5, timeout: float = 30.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(f"'{schema}' is not a schema name this hub makes (lower-case letters, digits, _)")
        self.schema = schema
        self.where = f"{server_of(url)} (schema {schema})"
        self._psycopg = psycopg
        self._made = False
        try:  # one plain connection first: its error says what is wrong (the pool's would only time out)
            psycopg.connect(url, connect_timeout=int(min(timeout, 10))).close()
        except psycopg.Error as exc:  # psycopg's message never holds the password
            raise DatabaseError(f"cannot reach the database at {self.where}: {_first_line(exc)}") from None
        self._pool = ConnectionPool(url, min_size=1, max_size=max_size, timeout=timeout, open=False,
                                    kwargs={"autocommit": True, "options": f"-c search_path={schema}"},
                                    configure=self._configure, name=f"junction-{schema}")
        try:
            self._pool.open(wait=True, timeout=timeout)
        except Exception as exc:
            self._pool.close()
            raise DatabaseError(f"cannot reach the database at {self.where}: {_first_line(exc)}") from None

    def _configure(self, conn: Any) -> None:
        if not self._made:  # the schema must exist before anything runs in it; once per process is enough
            try:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            except self._psycopg.errors.UniqueViolation:
                pass  # another replica made it at the same moment
            self._made = True

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        with self._connection() as conn:
            return _PostgresSession(conn, self._psycopg).execute(sql, args)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except self._psycopg.OperationalError as exc:
            raise DatabaseError(f"the database at {self.where}: {_first_line(exc)}") from exc
        except Exception as exc:
            if type(exc).__name__ == "PoolTimeout":
                raise DatabaseError(f"no connection to the database at {self.where} came free in time") from exc
            raise

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._connection() as conn, conn.transaction():
            yield _PostgresSession(conn, self._psycopg)

    def columns(self, table: str) -> set[str]:
        return {row[0] for row in self.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            (self.schema, table))}

    def serialize(self, tx: Session, key: str) -> None:
        number = int.from_bytes(hashlib.blake2b(f"junction:{self.schema}:{key}".encode(), digest_size=8).digest(),
                                "big", signed=True)
        tx.execute("SELECT pg_advisory_xact_lock(?)", (number,))

    def _locked(self, tx: Session) -> None:
        """Hold the schema's lock for the rest of the transaction: replicas starting together take turns."""
        self.serialize(tx, "(schema)")

    def script(self, script: str) -> None:
        with self.transaction() as tx:
            self._locked(tx)
            for statement in split_script(script):
                tx.execute(statement)

    def migrate(self, migrations: Sequence[str]) -> int:
        with self.transaction() as tx:
            self._locked(tx)
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            row = tx.execute("SELECT version FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
            if row is None:
                tx.execute("INSERT INTO schema_version (version) VALUES (0)")
            if current > len(migrations):
                raise RuntimeError(
                    f"the database at {self.where} has schema version {current}, newer than this Junction "
                    f"understands ({len(migrations)}); upgrade Junction (every replica) first")
            for version in range(current, len(migrations)):
                for statement in split_script(migrations[version]):
                    tx.execute(statement)
            tx.execute("UPDATE schema_version SET version = ?", (len(migrations),))
        return len(migrations)

    def close(self) -> None:
        self._pool.close()
