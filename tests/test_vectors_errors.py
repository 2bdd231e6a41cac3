"""Backend failures reach the caller as typed agentmem errors with a hint.

Each test damages a real chromadb folder, journal or lock file, or uses a closed index,
and checks the error is a :class:`StorageError` that says how to fix it and whether a
retry can help; no chromadb or sqlite3 exception escapes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from agentmem.errors import DiskFullError, StorageError
from agentmem.storage.journal import Journal
from agentmem.storage.vectors import VectorIndex

DIM = 8


class _Vectors:
    """Stands in for an embedder: these tests give every vector themselves."""

    name = "given"
    dimension = DIM

    def embed(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - never called
        raise AssertionError("vectors are given")


def open_index(folder: Path) -> VectorIndex:
    return VectorIndex(_Vectors(), path=folder)  # type: ignore[arg-type]


def filled(folder: Path) -> None:
    """Leave three vectors written to chromadb in ``folder``."""
    index = open_index(folder)
    vectors = np.eye(3, DIM, dtype=np.float32)
    index.upsert("s", "u", ["a", "b", "c"], vectors, [{"n": n} for n in range(3)])
    index.close()


def test_a_damaged_chromadb_folder_raises_a_typed_error_with_a_hint(tmp_path: Path) -> None:
    folder = tmp_path / "chroma"
    filled(folder)
    # Another program empties chromadb's own tables: the collections are still listed,
    # their vectors are gone.
    database = sqlite3.connect(folder / "chroma.sqlite3")
    database.execute("DROP TABLE embeddings")
    database.commit()
    database.close()

    index = open_index(folder)
    try:
        for call in (
            lambda: index.get("s", "u", ["a"]),
            lambda: index.count("s", "u"),
            lambda: index.delete("s", "u", ["a"]),
            lambda: index.query("s", "u", np.ones(DIM, dtype=np.float32), 2),
        ):
            with pytest.raises(StorageError) as caught:
                call()
            assert "damaged" in caught.value.hint
            assert caught.value.retryable is False
            assert isinstance(caught.value.__cause__, Exception)
    finally:
        index.close()


def test_a_damaged_journal_raises_a_typed_error_and_lets_go_of_the_folder(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "chroma"
    filled(folder)
    journal = folder / "agentmem-pending.sqlite"
    for leftover in folder.glob("agentmem-pending.sqlite-*"):
        leftover.unlink()
    journal.write_bytes(b"not a database, " * 512)

    with pytest.raises(StorageError) as caught:
        open_index(folder)
    assert "damaged" in caught.value.hint and not caught.value.retryable
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)

    # The failed open released the folder: once the journal is moved away, it opens.
    journal.unlink()
    index = open_index(folder)
    try:
        assert index.count("s", "u") == 3
    finally:
        index.close()


def test_a_full_journal_is_disk_full_not_damage_and_takes_writes_again(tmp_path: Path) -> None:
    """SQLite rolls a full write back itself; the journal's own ROLLBACK then raised "no
    transaction is active", reported as a damaged index to restore from a backup."""
    journal = Journal(tmp_path)
    try:
        rows = [(f"i{n}", np.ones(384, dtype=np.float32), {"n": n}) for n in range(50)]
        journal.append("s", "u", rows[:1])
        # SQLite's page cap gives the SQLITE_FULL a full disk gives (tests/test_disk_full.py
        # fills a real one); it is set on the journal's own connection, the one that writes.
        database = journal._connection()
        pages = database.execute("PRAGMA page_count").fetchone()[0]
        database.execute(f"PRAGMA max_page_count={pages + 1}")
        with pytest.raises(DiskFullError) as caught:
            journal.append("s", "u", rows)
        error = caught.value
        assert error.retryable and "the disk is full" in str(error)
        assert "free space" in error.hint and "damaged" not in error.hint
        assert [row[3] for row in journal.rows()] == ["i0"]  # nothing half-written

        database.execute("PRAGMA max_page_count=1073741823")  # space freed
        journal.append("s", "u", rows)
        assert len(journal.rows()) == 51
    finally:
        journal.close()


def test_a_closed_index_refuses_to_write_instead_of_writing_unlocked(tmp_path: Path) -> None:
    folder = tmp_path / "chroma"
    index = open_index(folder)
    index.close()

    with pytest.raises(StorageError) as caught:
        index.upsert("s", "u", ["a"], np.ones((1, DIM), dtype=np.float32), [{}])
    assert "closed" in str(caught.value) and caught.value.hint
    with pytest.raises(StorageError):
        index.count("s", "u")
    index.close()  # still idempotent

    other = open_index(folder)  # the closed index neither holds nor wrote the folder
    try:
        assert other.count("s", "u") == 0
    finally:
        other.close()


def test_a_lock_file_that_cannot_be_opened_raises_a_typed_error(tmp_path: Path) -> None:
    folder = tmp_path / "chroma"
    (folder / "agentmem.lock").mkdir(parents=True)  # a folder where the lock file goes

    with pytest.raises(StorageError) as caught:
        open_index(folder)
    assert caught.value.hint
    assert isinstance(caught.value.__cause__, OSError)
