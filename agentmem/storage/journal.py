"""Vectors written behind: a SQLite journal, and the state one chromadb system shares.

chromadb commits each upsert on its own, ~13 ms whatever its size: a third of ingest time
went there (benchmarks/README.md). So an embedded index writes vectors behind, in large
batches, and journals them first in ``agentmem-pending.sqlite`` beside chromadb, a WAL
commit of well under a millisecond: a process killed before its batch went out loses
none, since the next open writes what the journal holds. Measured (bench_scale ingest,
400 turns, 20 a write, pre-embedded, 2026-12-03): 156 turns/s written behind against
68 with every upsert written at once.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from agentmem.errors import StorageError
from agentmem.storage.chroma import storage_error
from agentmem.storage.exact import ExactCopies

T = TypeVar("T")

#: What :meth:`Journal.rows` returns for one vector: sequence number, structure, user,
#: item id, vector, metadata.
JournalRow = tuple[int, str, str, str, np.ndarray, dict[str, Any]]


class Journal:
    """Vectors accepted but not yet written to chromadb, in a SQLite file beside it.

    Args:
        folder: The chromadb folder the journal lives in.

    Raises:
        StorageError: The journal cannot be opened (damaged, not writable).
    """

    FILE = "agentmem-pending.sqlite"

    def __init__(self, folder: Path) -> None:
        self._where = str(folder / self.FILE)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._db = self._guard("opening the vector journal", self._open)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._where, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives the process being killed, not power loss.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " store TEXT NOT NULL, user_id TEXT NOT NULL, item_id TEXT NOT NULL,"
                " vector BLOB NOT NULL, metadata TEXT NOT NULL)"
            )
            # Flags about the folder as a whole: see Shared (OPEN, REPAIR).
            db.execute("CREATE TABLE IF NOT EXISTS flags (name TEXT PRIMARY KEY)")
        except BaseException:
            db.close()
            raise
        return db

    def _guard(self, action: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(action, exc, where=self._where) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the journal is closed")
        return self._db

    def append(
        self, store: str, user_id: str, rows: Sequence[tuple[str, np.ndarray, Mapping[str, Any]]]
    ) -> int:
        """Journal vectors; return the sequence number of the last one.

        Raises:
            StorageError: The journal could not be written (nothing of ``rows`` was).
        """
        encoded = [
            (store, user_id, item_id, vector.astype(np.float32).tobytes(), json.dumps(m))
            for item_id, vector, m in rows
        ]

        def write() -> int:
            db = self._connection()
            db.execute("BEGIN")
            try:
                db.executemany(
                    "INSERT INTO pending (store, user_id, item_id, vector, metadata)"
                    " VALUES (?, ?, ?, ?, ?)",
                    encoded,
                )
                last = db.execute("SELECT max(seq) FROM pending").fetchone()[0]
                db.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back after some errors (a full disk): a second
                # ROLLBACK would raise "no transaction is active" over the real cause.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return int(last)

        with self._lock:
            return self._guard("journal write", write)

    def remove(self, store: str, user_id: str, upto: int) -> None:
        """Forget a structure's journaled vectors for a user, up to a sequence number.

        Raises:
            StorageError: The journal could not be written.
        """
        with self._lock:
            self._guard(
                "journal cleanup",
                lambda: self._connection().execute(
                    "DELETE FROM pending WHERE store = ? AND user_id = ? AND seq <= ?",
                    (store, user_id, upto),
                ),
            )

    def rows(self) -> list[JournalRow]:
        """Return every journaled vector, oldest first.

        Raises:
            StorageError: The journal could not be read.
        """
        with self._lock:
            found = self._guard(
                "journal read",
                lambda: (
                    self._connection()
                    .execute(
                        "SELECT seq, store, user_id, item_id, vector, metadata FROM pending"
                        " ORDER BY seq"
                    )
                    .fetchall()
                ),
            )
        return [
            (seq, store, user, item, np.frombuffer(blob, dtype=np.float32).copy(), json.loads(m))
            for seq, store, user, item, blob, m in found
        ]

    def compact(self) -> None:
        """Rebuild the file and truncate its log, so deleted vectors leave no copy in them.

        Raises:
            StorageError: The journal could not be rewritten.
        """

        def rewrite() -> None:
            db = self._connection()
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        with self._lock:
            self._guard("journal compaction", rewrite)

    def flagged(self, name: str) -> bool:
        """Return whether a flag is set.

        Raises:
            StorageError: The journal could not be read.
        """
        with self._lock:
            found = self._guard(
                "journal read",
                lambda: (
                    self._connection()
                    .execute("SELECT 1 FROM flags WHERE name = ?", (name,))
                    .fetchone()
                ),
            )
        return found is not None

    def flag(self, name: str, *, on: bool = True) -> None:
        """Set (or clear) a flag.

        Raises:
            StorageError: The journal could not be written.
        """
        statement = (
            "INSERT OR IGNORE INTO flags (name) VALUES (?)"
            if on
            else "DELETE FROM flags WHERE name = ?"
        )
        with self._lock:
            self._guard("journal write", lambda: self._connection().execute(statement, (name,)))

    def close(self) -> None:
        """Close the file; idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


Key = tuple[str, str]  # (structure, user)
Waiting = dict[str, tuple[np.ndarray, dict[str, Any]]]  # item id -> (vector, metadata)


class Shared:
    """What the indexes a process opens on one chromadb system share.

    chromadb shares a system between the clients a process opens on the same folder (and
    between all its in-memory clients), so what stands in front of it is shared the same
    way: collection handles, the exact-search copies and the vectors waiting to be
    written, so a write through one ``VectorIndex`` is seen by the searches of another
    (tests/test_concurrency.py, tests/test_vectors_exact.py).
    """

    #: Set while a process has the folder open; found set on open, the last process
    #: ended without closing the index (killed), and may have left buffered work undone.
    OPEN = "open"
    #: Set from then until the records and the vectors are reconciled
    #: (:func:`agentmem.storage.repair.repair_vectors`).
    REPAIR = "repair"

    def __init__(self, journal: Journal | None, budget: int) -> None:
        self.copies = ExactCopies(budget)
        # One lock for the copies and the waiting vectors: a flush must not let a copy
        # load between writing chromadb and unjournaling.
        self.lock = self.copies.lock
        # collection name -> chromadb handle: shared, so a collection one index drops is
        # not used again through another index's stale handle.
        self.collections: dict[str, Any] = {}
        self.journal = journal
        self.users = 0
        #: Whether a collection was dropped or rebuilt: chromadb writes a dropped
        #: collection's index files again when its system stops (see VectorIndex close).
        self.dropped = False
        #: Indexes of this process on the folder not yet closed cleanly (see OPEN).
        self.unclosed = 0
        self._pending: dict[Key, Waiting] = {}
        self._seq: dict[Key, int] = {}  # the journal's number of a key's last vector

    def accept(
        self, key: Key, ids: Sequence[str], vectors: np.ndarray, stored: Sequence[dict[str, Any]]
    ) -> tuple[int, int]:
        """Journal vectors and hold them; return how many wait for ``key`` and in all.

        Raises:
            StorageError: The journal could not be written (nothing was accepted).
        """
        with self.lock:
            if self.journal is not None:
                rows = list(zip(ids, vectors, stored, strict=True))
                self._seq[key] = self.journal.append(*key, rows)
            waiting = self._pending.setdefault(key, {})
            for item_id, vector, metadata in zip(ids, vectors, stored, strict=True):
                waiting[item_id] = (vector, metadata)
            return len(waiting), sum(len(w) for w in self._pending.values())

    def waiting(self, key: Key, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the vectors of ``ids`` still waiting to be written (copies)."""
        with self.lock:
            held = self._pending.get(key, {})
            return {i: held[i][0].copy() for i in ids if i in held}

    def owners(self) -> list[Key]:
        """Return every (structure, user) with vectors waiting."""
        with self.lock:
            return list(self._pending)

    def write(self, key: Key, write: Callable[[list[str], np.ndarray, list[dict]], None]) -> None:
        """Write a key's waiting vectors with ``write``, then unjournal them.

        If ``write`` raises, the vectors wait (and stay journaled) for a later flush or
        the next open.
        """
        with self.lock:
            waiting = self._pending.pop(key, None)
            seq = self._seq.pop(key, None)
            if not waiting:
                return
            ids = list(waiting)
            try:
                write(ids, np.stack([waiting[i][0] for i in ids]), [waiting[i][1] for i in ids])
            except BaseException:
                back = self._pending.setdefault(key, {})
                for item_id in ids:
                    back.setdefault(item_id, waiting[item_id])
                if seq is not None:
                    self._seq[key] = max(seq, self._seq.get(key, seq))
                raise
            if self.journal is not None and seq is not None:
                self.journal.remove(*key, upto=seq)

    def opened(self) -> None:
        """Note that the folder is in use; flag a repair if the last user never closed it.

        Raises:
            StorageError: The journal could not be read or written.
        """
        if self.journal is not None:
            if self.journal.flagged(self.OPEN):
                self.journal.flag(self.REPAIR)
            self.journal.flag(self.OPEN)

    def needs_repair(self) -> bool:
        """Return whether a killed process may have left the vectors behind the records."""
        return self.journal is not None and self.journal.flagged(self.REPAIR)

    def repaired(self) -> None:
        """Note that the vectors were reconciled with the records."""
        if self.journal is not None:
            self.journal.flag(self.REPAIR, on=False)

    def recover(self) -> int:
        """Hold what a killed process journaled but never wrote; return how many vectors."""
        rows = self.journal.rows() if self.journal is not None else []
        with self.lock:
            for seq, store, user_id, item_id, vector, metadata in rows:
                self._pending.setdefault((store, user_id), {})[item_id] = (vector, metadata)
                self._seq[(store, user_id)] = seq
        return len(rows)


_SHARED: dict[str, Shared] = {}
# Reentrant: a finalizer of a dropped index (close_shared) may run, when the garbage
# collector strikes, inside open_shared on the same thread; a plain lock deadlocked there.
_SHARED_LOCK = threading.RLock()


def open_shared(key: str, folder: Path | None, budget: int) -> tuple[Shared, bool]:
    """Return the shared state of a system, and whether this call created it.

    Raises:
        StorageError: The journal of ``folder`` cannot be opened.
    """
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        created = shared is None
        if shared is None:
            journal = Journal(folder) if folder is not None else None
            shared = Shared(journal, budget)
            try:
                shared.opened()
            except StorageError:
                if journal is not None:
                    journal.close()
                raise
            _SHARED[key] = shared
        shared.users += 1
        shared.unclosed += 1
        return shared, created


def is_shared(key: str) -> bool:
    """Whether some index of this process still holds the system ``key``."""
    with _SHARED_LOCK:
        return key in _SHARED


def close_shared(key: str) -> None:
    """Let go of a system's shared state; the last user closes its journal."""
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is not None:
            shared.users -= 1
            if shared.users <= 0:
                del _SHARED[key]
                if shared.journal is not None:
                    if shared.unclosed <= 0 and not shared.owners():
                        # Every index closed cleanly: nothing buffered was lost.
                        with contextlib.suppress(StorageError):
                            shared.journal.flag(Shared.OPEN, on=False)
                    shared.journal.close()
