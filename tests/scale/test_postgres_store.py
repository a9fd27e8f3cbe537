"""The store on PostgreSQL (`[store] url`): the same migrations and the same answers as on SQLite, one schema per
part of the hub, replicas that start together, and refusals that say what is wrong without the password."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hub.config import ConfigError, load_config
from hub.db import DatabaseError, IntegrityError, PostgresDatabase, SqliteDatabase, to_postgres
from hub.security.auth import create_token, hash_token, policy_for, verify_token
from hub.store import MIGRATIONS, CallRecord, Store
from tests.fixtures.services import Postgres
from tools.automation.store import JobStore
from tools.rag.store import RagStore


def record(tool: str, ts: float, error: str | None = None, principal: str | None = "ann") -> CallRecord:
    return CallRecord(ts=ts, request_id="7", principal=principal, client="c/1", protocol_version="2025-11-25",
                      tool=tool, provider="x", outcome="ok" if error is None else "tool_error", error=error,
                      duration_ms=1.25, args_bytes=10, result_bytes=20)


def workload(store: Store) -> list[Any]:
    """Everything the hub asks of its store, in an order that makes each answer depend on the ones before."""
    seen: list[Any] = []
    store.add_user("ann", "admin", "scrypt$hash")
    store.add_user("bob", "user")
    with pytest.raises(KeyError, match="already exists"):
        store.add_user("ann", "user")
    seen.append(store.user_rows() and [row[:2] + row[3:4] for row in store.user_rows()])
    seen.append(store.set_role("bob", "viewer"))
    seen.append(store.set_disabled("bob", True))
    seen.append(store.user_role("bob"))
    seen.append(store.user("bob")[0])
    seen.append(store.set_disabled("bob", False))
    store.add_token("t1", "ann", "laptop", "hash-1", json.dumps(["mcp"]), None)
    store.add_token("t2", "bob", "ci", "hash-2", None, time.time() + 60)
    seen.append([row[:4] for row in store.tokens()])
    seen.append(store.find_token("hash-2")[:4])
    seen.append((store.revoke_token("t2"), store.revoke_token("t2")))
    seen.append(store.token_state("t2")[0])
    # secrets and the vault keep bytes exactly
    store.put_secret("github", "k1", b"\x00\x01wrapped", b"\xffcipher\x00")
    store.put_secret("github", "k2", b"wrapped-2", b"cipher-2")  # replaced, not duplicated
    seen.append(store.get_secret("github"))
    seen.append([name for name, _ in store.secret_names()])
    store.put_vault("ann", "gh", "token", "oauth", ("k1", b"w", b"c\x00"), "{}", None)
    store.put_vault("ann", "gh", "token", "oauth", ("k1", b"w2", b"c2"), '{"a": 1}', 5.5)
    seen.append(store.get_vault("ann", "gh", "token"))
    seen.append([row[:6] for row in store.vault_entries(user="ann")])
    store.replace_wrapped_keys([("github", "k3", b"w3")], [(("ann", "gh", "token"), "k3", b"w4")])
    seen.append((sorted(store.all_wrapped_keys()), sorted(store.all_vault_wrapped_keys())))
    # call records: whatever bytes a caller sent, the row is written and read back
    now = time.time()
    store.record_call(record("files__read", now - 10))
    store.record_call(record("lone\ud800surrogate", now - 5, error="nul \x00 inside, and 100% sure"))
    store.record_call(record("x__y", now - 100 * 86400))
    store.flush()
    calls = store.recent_calls(tool="files__read")
    seen.append([(c.tool, c.principal, c.duration_ms) for c in calls])
    seen.append(len(store.recent_calls(since=now - 60)))
    seen.append([c[2] for c in store.call_timings(now - 60)])
    seen.append(store.prune_calls(30))
    store.set_meta("state-key", "a")
    store.set_meta("state-key", "b")
    seen.append((store.get_meta("state-key"), store.get_meta("other")))
    seen.append(store.fetchall("SELECT name FROM users WHERE name LIKE 'a%' ORDER BY name"))
    # removing a user takes everything of theirs
    seen.append((store.remove_user("ann"), store.tokens("ann"), store.vault_entries(user="ann")))
    return seen


def test_the_store_gives_the_same_answers_on_both_engines(tmp_path: Path, pg_url: str) -> None:
    answers = []
    for url in ("", pg_url):
        store = Store(tmp_path / "junction.db", url)
        store.open()
        assert store.engine == ("postgresql" if url else "sqlite")
        assert store.schema_version == len(MIGRATIONS)
        answers.append(workload(store))
        store.close()
    sqlite_answers, pg_answers = answers
    assert pg_answers == sqlite_answers
    assert pg_answers[-1] == (True, [], [])


def test_timestamps_keep_their_fraction_of_a_second(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL's REAL has 24 bits: a timestamp there would be off by minutes. The migrations' REAL is a double."""
    store = Store(tmp_path / "x.db", pg_url)
    store.open()
    store.record_call(record("t", 1_765_000_000.123456))
    store.flush()
    assert store.recent_calls()[0].ts == 1_765_000_000.123456
    store.close()
    later = PostgresDatabase(pg_url, "later")  # a column a provider adds to an older table is a double too
    later.script("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)")
    later.execute("ALTER TABLE t ADD COLUMN at REAL")
    later.execute("INSERT INTO t (k, at) VALUES (?, ?)", ("a", 1_765_000_000.123456))
    assert later.rows("SELECT at FROM t") == [(1_765_000_000.123456,)]
    later.close()


def test_replicas_starting_together_migrate_once(pg_url: str, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    stores = [Store(tmp_path / f"{n}.db", pg_url) for n in range(4)]
    start = threading.Barrier(len(stores))

    def open_one(store: Store) -> None:
        try:
            start.wait()
            store.open()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert [s.schema_version for s in stores] == [len(MIGRATIONS)] * 4
    stores[0].add_user("ann", "admin")
    assert [s.user_role("ann") for s in stores] == ["admin"] * 4  # one database, seen by all
    for s in stores:
        s.close()


def test_a_token_issued_through_one_replica_works_on_another(pg_url: str, tmp_path: Path) -> None:
    first, second = Store(tmp_path / "1.db", pg_url), Store(tmp_path / "2.db", pg_url)
    first.open()
    second.open()
    policy = policy_for(load_config(None, env={}))
    first.add_user("ann", "user")
    _, token = create_token(first, policy, "ann", "laptop", None, None)
    principal, why = verify_token(second, policy, token)
    assert principal is not None and principal.name == "ann", why
    assert second.find_token(hash_token(token))[1] == "ann"
    first.set_disabled("ann", True)
    assert verify_token(second, policy, token) == (None, "the user 'ann' is disabled")
    first.close()
    second.close()


def test_a_newer_database_is_refused_clearly(pg_url: str, tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db", pg_url)
    store.open()
    store.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 3,))
    store.close()
    with pytest.raises(RuntimeError, match="newer than this Junction understands.*upgrade Junction"):
        Store(tmp_path / "x.db", pg_url).open()


def test_each_part_of_the_hub_has_a_schema_of_its_own(pg_url: str, tmp_path: Path) -> None:
    """Providers' tables never meet the hub's or each other's: a provider's `jobs` cannot be another's."""
    store = Store(tmp_path / "x.db", pg_url)
    store.open()
    jobs = JobStore(PostgresDatabase(pg_url, "jobs_automation"))
    rag = RagStore(PostgresDatabase(pg_url, "kb_rag"))
    jobs.put_job("nightly", {"every": "1d"}, "ann", "tool", "ann")
    rag.put_namespace("docs", {}, "tool", "ann")
    import psycopg

    with psycopg.connect(pg_url) as conn:
        tables = set(conn.execute("SELECT table_schema, table_name FROM information_schema.tables WHERE "
                                  "table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall())
    assert {("junction", "users"), ("junction", "tool_calls"), ("jobs_automation", "jobs"),
            ("jobs_automation", "runs"), ("kb_rag", "documents"), ("kb_rag", "ops")} <= tables
    assert not {t for t in tables if t[0] == "public"}
    jobs.close()
    rag.close()
    store.close()


def test_job_runs_and_knowledge_rows_get_ids_on_both_engines(pg_url: str, tmp_path: Path) -> None:
    for db in (SqliteDatabase(tmp_path / "a.db"), PostgresDatabase(pg_url, "jobs")):
        jobs = JobStore(db)
        jobs.put_job("j", {}, None, "config", None)
        first = jobs.start_run("j", {"kind": "schedule"})
        second = jobs.record_run("j", {"kind": "schedule"}, "skipped", "busy")
        assert second == first + 1
        jobs.end_run(first, "ok", 1, {"n": 1}, None, [])
        assert [r["status"] for r in jobs.runs("j")] == ["skipped", "ok"]
        assert jobs.run_counts() == {"ok": 1, "skipped": 1}
        jobs.close()
    for db in (SqliteDatabase(tmp_path / "r.db"), PostgresDatabase(pg_url, "rag")):
        rag = RagStore(db)
        rag.put_namespace("docs", {}, "tool")
        doc = {"key": "a.md", "title": "A", "source": "a.md", "mime": "text/markdown", "mtime": 1.5, "tags": [],
               "hash": "h", "size": 12}
        doc_id, old, new, seq = rag.write_document("docs", doc, [(0, ["A"], "text \x00 with a NUL", "th")],
                                                   {"th": b"\x00\x01"}, "minilm")
        assert (old, len(new), seq) == ([], 1, rag.last_seq("docs"))
        assert rag.stats("docs") == {"documents": 1, "bytes": 12, "chunks": 1}
        assert rag.known_vectors("minilm", ["th", "other"]) == {"th"}
        assert rag.document_keys("docs", "a")["a.md"][0] == doc_id
        again = rag.write_document("docs", doc, [(0, ["A"], "new text", "th2")], {}, "minilm")
        assert again[1] == new and again[3] > seq
        assert rag.ops_after("docs", seq) == [doc_id]
        rag.close()


def test_statements_become_postgres_sql_without_touching_literals() -> None:
    assert to_postgres("SELECT user, name FROM t WHERE user = ? AND k LIKE 'user%?'") == \
        "SELECT \"user\", name FROM t WHERE \"user\" = %s AND k LIKE 'user%%?'"
    assert to_postgres("SELECT 'it''s ? %' , \"user\" FROM users WHERE x = ?") == \
        "SELECT 'it''s ? %%' , \"user\" FROM users WHERE x = %s"


def test_a_duplicate_is_an_integrity_error_on_both(pg_url: str, tmp_path: Path) -> None:
    for db in (SqliteDatabase(tmp_path / "d.db"), PostgresDatabase(pg_url, "dup")):
        db.script("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)")
        db.execute("INSERT INTO t (k) VALUES (?)", ("a",))
        with pytest.raises(IntegrityError):
            db.execute("INSERT INTO t (k) VALUES (?)", ("a",))
        with pytest.raises(DatabaseError, match="no_such_table|does not exist"):
            db.execute("SELECT * FROM no_such_table")
        assert db.rows("SELECT k FROM t") == [("a",)]  # the refusal lost nothing, and the next statement works
        db.close()


# refusals ----------------------------------------------------------------------------------------------------
def test_a_wrong_password_or_an_absent_server_is_said_without_the_password(pg: Postgres, tmp_path: Path) -> None:
    wrong = pg.url.replace(pg.password, "not-the-password-42")
    with pytest.raises(DatabaseError) as refused:
        Store(tmp_path / "x.db", wrong).open()
    message = str(refused.value)
    assert "password authentication failed" in message
    assert f"127.0.0.1:{pg.port}/junction" in message
    assert "not-the-password-42" not in message and pg.password not in message
    from tests.helpers import free_port

    with pytest.raises(DatabaseError, match="cannot reach the database at postgresql://127.0.0.1:") as refused:
        Store(tmp_path / "x.db", f"postgresql://junction:secret-pw@127.0.0.1:{free_port()}/junction").open()
    assert "secret-pw" not in str(refused.value)


def test_the_config_refuses_a_password_in_clear_and_unknown_databases(tmp_path: Path) -> None:
    config = tmp_path / "junction.toml"
    config.write_text('[store]\nurl = "postgresql://junction:hunter2hunter2@db.internal/junction"\n')
    with pytest.raises(ConfigError, match=r"store\.url.*password is written in clear") as refused:
        load_config(config, env={})
    assert "hunter2" not in str(refused.value)
    config.write_text('[store]\nurl = "postgresql://junction:${PGPASSWORD}@db.internal/junction"\n')
    assert load_config(config, env={"PGPASSWORD": "pw"}).store.url == "postgresql://junction:pw@db.internal/junction"
    # the whole URL from the environment is how deploy/ passes it
    assert load_config(None, env={"JUNCTION__STORE__URL": "postgresql://a:b@h/d"}).store.url == "postgresql://a:b@h/d"
    config.write_text('[store]\nurl = "mysql://root@db/junction"\n')
    with pytest.raises(ConfigError, match=r"store\.url.*unknown kind of database 'mysql'"):
        load_config(config, env={})
