"""Failures of the records database reach the caller typed, with a hint, on real SQLite.

Each failure is provoked for real: a second sqlite3 connection holding the write lock, a
file opened read-only, a damaged file. No caller should ever need to catch ``sqlite3``
or ``sqlalchemy`` exceptions.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from agentmem.errors import (
    ConstraintViolationError,
    DatabaseBusyError,
    DataDirLockedError,
    DiskFullError,
    StorageError,
)
from agentmem.storage.records import Records, new_item_id
from agentmem.types import MemoryItem


def fact(user_id: str, text: str, item_id: str | None = None) -> MemoryItem:
    return MemoryItem(
        id=item_id or new_item_id(),
        store="facts",
        kind="fact",
        user_id=user_id,
        text=text,
        source_turn_ids=(),
    )


def test_a_duplicate_item_id_is_a_constraint_violation_and_stores_nothing(
    records: Records,
) -> None:
    (first,) = records.add_items([fact("alice", "Alice lives in Denver.")])

    with pytest.raises(ConstraintViolationError) as caught:
        records.add_items(
            [fact("alice", "Alice plays chess."), fact("alice", "Alice moved.", first.id)]
        )

    error = caught.value
    assert isinstance(error, StorageError) and not error.retryable
    assert "UNIQUE constraint failed: memory_items.id" in str(error)
    assert "already stored" in error.hint
    # All or nothing: neither item of the failed batch, nor any event, was written.
    assert [i.text for i in records.store_items("facts", "alice")] == ["Alice lives in Denver."]
    assert [e.action for e in records.history(first.id)] == ["ADD"]


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Return a plain sqlite3 connection to the records file, outside agentmem."""
    connection = sqlite3.connect(tmp_path / "records.db", isolation_level=None)
    yield connection
    connection.close()


def test_a_database_another_connection_is_writing_is_busy_and_retryable(
    tmp_path: Path, writer: sqlite3.Connection
) -> None:
    records = Records(f"sqlite:///{tmp_path / 'records.db'}?timeout=0.2")
    try:
        records.start_session("alice", session_id="s1")
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock until it ends
        writer.execute("INSERT INTO users (id, created_at) VALUES ('bob', '2024-01-01')")

        started = time.monotonic()
        with pytest.raises(DatabaseBusyError) as caught:
            records.add_turn("alice", "s1", "Alice", "user", "I adopted a beagle.")
        waited = time.monotonic() - started

        error = caught.value
        assert isinstance(error, StorageError) and not isinstance(error, DataDirLockedError)
        assert error.retryable
        assert str(error).startswith("the records database is busy")
        assert "0.2 s" in str(error)
        assert "another process holds" not in str(error) and "--data-dir" not in error.hint
        assert "another writer" in error.hint
        assert waited < 10  # the URL's timeout, not the default half minute

        writer.execute("COMMIT")
        # Retryable means it: once the other writer is done, the same call succeeds.
        records.add_turn("alice", "s1", "Alice", "user", "I adopted a beagle.")
        assert records.count_turns("alice") == 1
    finally:
        records.close()


def test_a_read_only_database_refuses_writes_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data" / "records.db"
    writable = Records(path)
    writable.add_turn("alice", "s1", "Alice", "user", "I adopted a beagle.")
    monkeypatch.chdir(tmp_path)  # where a misread ``file:`` URI would make a folder

    read_only = Records(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        assert [t.text for t in read_only.turns("alice")] == ["I adopted a beagle."]
        with pytest.raises(StorageError) as caught:
            read_only.add_turn("alice", "s1", "Alice", "user", "And a cat.")
    finally:
        read_only.close()
        writable.close()

    error = caught.value
    assert "read-only" in str(error) and not error.retryable
    assert "writable" in error.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_full_database_is_disk_full_retryable_and_intact_once_there_is_room(
    tmp_path: Path,
) -> None:
    """SQLite's page cap gives the SQLITE_FULL a full disk gives (tests/test_disk_full.py
    fills a real one): a typed, retryable error, and the earlier turns kept."""
    records = Records(tmp_path / "records.db")
    try:
        records.add_turn("alice", "s1", "Alice", "user", "I adopted a beagle.")

        def cap(connection: sqlite3.Connection, _record: object) -> None:
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count={pages + 2}")

        event.listen(records.engine, "connect", cap)
        records.engine.dispose()  # the next connection is capped
        with pytest.raises(DiskFullError) as caught:
            records.add_turn("alice", "s1", "Alice", "user", "beagles " * 20_000)
        error = caught.value
        assert isinstance(error, StorageError) and error.retryable
        assert str(error).startswith("the disk is full") and "free space" in error.hint
        assert "damaged" not in str(error)
        assert [t.text for t in records.turns("alice")] == ["I adopted a beagle."]

        event.remove(records.engine, "connect", cap)
        records.engine.dispose()  # room again: the same call succeeds
        records.add_turn("alice", "s1", "Alice", "user", "beagles " * 20_000)
        assert records.count_turns("alice") == 2
    finally:
        records.close()


@pytest.mark.parametrize(
    ("damage", "hint"),
    [
        pytest.param(lambda p: p.write_bytes(b"not a database " * 512), "backup", id="garbage"),
        pytest.param(lambda p: p.mkdir(), "folder exists", id="a-folder"),
    ],
)
def test_a_file_that_is_not_a_database_fails_to_open_with_a_hint(
    tmp_path: Path, damage, hint: str
) -> None:
    path = tmp_path / "records.db"
    damage(path)

    with pytest.raises(StorageError) as caught:
        Records(path)

    assert hint in caught.value.hint
    assert not caught.value.retryable
