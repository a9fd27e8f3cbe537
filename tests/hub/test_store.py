"""Store: WAL SQLite with migrations; call records survive, argument values never stored."""

from __future__ import annotations

import sqlite3
import time

import pytest

from hub.store import MIGRATIONS, CallRecord, Store


def record(tool: str = "x__y", ts: float | None = None) -> CallRecord:
    return CallRecord(ts=ts or time.time(), request_id="1", principal=None, client="c/1", protocol_version="2025-11-25",
                      tool=tool, provider="x", outcome="ok", error=None, duration_ms=1.5, args_bytes=10, result_bytes=20)


def test_fresh_store_is_migrated_to_the_latest_schema_in_wal(tmp_path) -> None:
    store = Store(tmp_path / "j.db")
    store.open()
    assert store.schema_version == len(MIGRATIONS)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.record_call(record())
    store.close()
    reopened = Store(tmp_path / "j.db")
    reopened.open()  # re-opening migrates nothing and loses nothing
    assert [r.tool for r in reopened.recent_calls()] == ["x__y"]
    reopened.close()


def test_a_newer_database_is_refused_clearly(tmp_path) -> None:
    db = sqlite3.connect(tmp_path / "j.db")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this Junction understands"):
        Store(tmp_path / "j.db").open()


def test_retention_prunes_only_old_records(tmp_path) -> None:
    store = Store(tmp_path / "j.db")
    store.open()
    store.record_call(record("old", ts=time.time() - 40 * 86400))
    store.record_call(record("new"))
    store.flush()
    assert store.prune_calls(30) == 1
    assert [r.tool for r in store.recent_calls()] == ["new"]
    store.close()
