"""The vector index: chromadb, two collections per (structure, user).

Per-user collections keep every query unfiltered by user: a chromadb metadata filter that
keeps ~1% of a large collection is slow and loses recall (see benchmarks/), and dropping a
user's collections is a complete erasure. For the same reason each (structure, user) has
two partitions: the *current* collection holds the vectors of items that are current, and
the *history* collection those of invalidated items. A year of conversation invalidates
most of what it said; kept in one collection, a query for current items would have to
filter (48-105 ms a call at 100k items) or look far past stale neighbours, where the
current partition answers unfiltered in a few ms. Invalidating an item moves its vector
(buffered, see :meth:`VectorIndex.update_metadata`); history and ``as_of`` queries search
both partitions.

An embedded index (a folder, or in memory) also answers unfiltered queries of partitions up
to ``exact_limit`` vectors (:attr:`VectorIndex.EXACT_LIMIT` by default) by exact search
over an in-process copy of their vectors (the idea of Qdrant's ``full_scan_threshold``): a
matrix product over 20,000 vectors takes ~2.5 ms on two cores against ~8 ms for chromadb's
HNSW query and its count, and it cannot miss (HNSW's recall@10 is 0.96-0.98 at
``ef_search`` 100-400 on a user's turns, as it loses near-duplicates). The folder lock
makes this process the only writer, so the copy is kept exact by the same calls that write
chromadb; the copies are bounded by :attr:`VectorIndex.EXACT_BUDGET` vectors in all, least
recently used first out. Larger partitions, filtered queries and a Chroma server use
chromadb's search.

chromadb commits each upsert on its own (~13 ms whatever its size), so an embedded index
writes vectors behind: journaled first in ``agentmem-pending.sqlite`` beside chromadb
(WAL, well under a millisecond), seen at once by searches (through the copies) and
:meth:`VectorIndex.get`, and written to chromadb in batches before anything reads chromadb
for that structure and user. The next open writes what a killed process left journaled.

Telemetry is off and our own embedding function is always attached, so
chromadb never downloads its default model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings
from chromadb.utils.embedding_functions import register_embedding_function

from agentmem.errors import ConfigError, StorageError
from agentmem.protocols import Embedder
from agentmem.storage.locking import FolderLock

logger = logging.getLogger(__name__)

#: Stand-in for "never invalidated" in numeric metadata filters.
NEVER = 1.0e12
_PREFIX = "am"
_HISTORY_PREFIX = "ah"


def timestamp(moment: datetime | None, default: float = 0.0) -> float:
    """Return ``moment`` as seconds since the epoch (naive times are UTC)."""
    if moment is None:
        return default
    return (moment - datetime(1970, 1, 1)).total_seconds()


@register_embedding_function
class AgentMemEmbeddingFunction(EmbeddingFunction[Documents]):
    """Adapts an agentmem :class:`Embedder` to chromadb, so chromadb never uses its default."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self._embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 (chromadb's name)
        if self._embedder is None:
            from agentmem.models.embeddings import MiniLMEmbedder

            self._embedder = MiniLMEmbedder()
        return list(self._embedder.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "agentmem"

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        return {"embedder": self._embedder.name if self._embedder else "minilm"}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> AgentMemEmbeddingFunction:
        return AgentMemEmbeddingFunction()


@dataclass(frozen=True)
class Hit:
    """A vector search result: an item id, its cosine similarity and stored metadata."""

    id: str
    similarity: float
    metadata: Mapping[str, Any]


def collection_name(store: str, user_id: str, *, history: bool = False) -> str:
    """Return the chromadb collection name of one structure's vectors for one user.

    ``history=True`` names the partition that holds invalidated items' vectors.
    """
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:24]
    safe_store = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in store)[:64]
    return f"{_HISTORY_PREFIX if history else _PREFIX}-{safe_store}-{digest}"


def is_current(metadata: Mapping[str, Any]) -> bool:
    """Return whether vector metadata puts its item in the current partition."""
    return bool(metadata.get("current", True))


def _by_partition(metadatas: Sequence[Mapping[str, Any]]) -> list[tuple[bool, list[int]]]:
    """Return ``(history, row numbers)`` for each partition the metadata sends rows to."""
    groups: dict[bool, list[int]] = {}
    for n, metadata in enumerate(metadatas):
        groups.setdefault(not is_current(metadata), []).append(n)
    return sorted(groups.items())


class _Exact:
    """An in-process copy of one partition's vectors, for exact search.

    Rows are unit-normalised (chromadb's cosine distance is 1 - the cosine). Appends
    write past ``n`` and removals build new arrays, so a reader that took ``(matrix, n,
    ids, metadatas)`` under the index's lock can search them after letting go of it.
    """

    def __init__(
        self,
        ids: list[str],
        vectors: np.ndarray,
        metadatas: list[dict[str, Any]],
        lock: threading.RLock,
    ) -> None:
        self.lock = lock  # the copies' lock, held by every change
        self.ids = list(ids)
        self.metadatas = list(metadatas)
        self.position = {item_id: n for n, item_id in enumerate(self.ids)}
        self.n = len(self.ids)
        self.matrix = _unit(vectors) if self.n else np.zeros((0, 0), dtype=np.float32)

    def put(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[Mapping[str, Any]]):
        """Insert or replace rows."""
        vectors = _unit(vectors)
        if self.matrix.shape[1] != vectors.shape[1]:
            if self.n:
                raise StorageError("vectors of a new length in an existing collection")
            self.matrix = np.zeros((0, vectors.shape[1]), dtype=np.float32)
        for item_id, vector, metadata in zip(ids, vectors, metadatas, strict=True):
            row = self.position.get(item_id)
            if row is not None:  # chromadb merges the metadata of an id it holds
                self.matrix[row] = vector
                self.metadatas[row] = {**self.metadatas[row], **metadata}
                continue
            if self.n == len(self.matrix):
                grown = np.zeros((max(64, 2 * self.n), self.matrix.shape[1]), dtype=np.float32)
                grown[: self.n] = self.matrix[: self.n]
                self.matrix = grown
            self.matrix[self.n] = vector
            self.ids.append(item_id)
            self.metadatas.append(dict(metadata))
            self.position[item_id] = self.n
            self.n += 1

    def set_metadata(self, ids: Sequence[str], metadatas: Sequence[Mapping[str, Any]]) -> None:
        for item_id, metadata in zip(ids, metadatas, strict=True):
            row = self.position.get(item_id)
            if row is not None:
                self.metadatas[row] = {**self.metadatas[row], **metadata}

    def remove(self, ids: Sequence[str]) -> None:
        rows = {self.position[i] for i in ids if i in self.position}
        if not rows:
            return
        keep = [n for n in range(self.n) if n not in rows]
        self.matrix = self.matrix[keep]
        self.ids = [self.ids[n] for n in keep]
        self.metadatas = [self.metadatas[n] for n in keep]
        self.position = {item_id: n for n, item_id in enumerate(self.ids)}
        self.n = len(self.ids)

    def snapshot(self) -> tuple[np.ndarray, int, list[str], list[dict[str, Any]]]:
        return self.matrix, self.n, self.ids, self.metadatas


def _unit(vectors: np.ndarray) -> np.ndarray:
    matrix = np.array(vectors, dtype=np.float32, ndmin=2)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


class _Journal:
    """Vectors accepted but not yet written to chromadb, in a SQLite file beside it.

    chromadb commits every upsert on its own, ~13 ms whatever its size: a third of ingest
    time went there (benchmarks/README.md). So vectors are written behind, in large
    batches, and journaled here first, in a WAL-mode commit of well under a millisecond:
    a process killed before its batch went out loses none, since the next open writes it.
    """

    FILE = "agentmem-pending.sqlite"

    def __init__(self, folder: Path) -> None:
        self._db = sqlite3.connect(
            str(folder / self.FILE), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed, not power loss.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " store TEXT NOT NULL, user_id TEXT NOT NULL, item_id TEXT NOT NULL,"
            " vector BLOB NOT NULL, metadata TEXT NOT NULL)"
        )
        self._lock = threading.Lock()

    def append(
        self, store: str, user_id: str, rows: Sequence[tuple[str, np.ndarray, Mapping[str, Any]]]
    ) -> int:
        """Journal vectors; return the sequence number of the last one."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO pending (store, user_id, item_id, vector, metadata)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            store,
                            user_id,
                            item_id,
                            vector.astype(np.float32).tobytes(),
                            json.dumps(m),
                        )
                        for item_id, vector, m in rows
                    ],
                )
                last = self._db.execute("SELECT max(seq) FROM pending").fetchone()[0]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return int(last)

    def remove(self, store: str, user_id: str, upto: int) -> None:
        """Forget a structure's journaled vectors for a user, up to a sequence number."""
        with self._lock:
            self._db.execute(
                "DELETE FROM pending WHERE store = ? AND user_id = ? AND seq <= ?",
                (store, user_id, upto),
            )

    def rows(self) -> list[tuple[int, str, str, str, np.ndarray, dict[str, Any]]]:
        """Return every journaled vector, oldest first."""
        with self._lock:
            found = self._db.execute(
                "SELECT seq, store, user_id, item_id, vector, metadata FROM pending ORDER BY seq"
            ).fetchall()
        return [
            (seq, store, user, item, np.frombuffer(blob, dtype=np.float32).copy(), json.loads(m))
            for seq, store, user, item, blob, m in found
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Shared:
    """What the indexes a process opens on one chromadb system share.

    chromadb shares a system between the clients a process opens on the same folder (and
    between all its in-memory clients), so what stands in front of it is shared the same
    way: the exact-search copies and the vectors waiting to be written (see
    :meth:`VectorIndex.upsert`), so a write through one :class:`VectorIndex` is seen by
    the searches of another.
    """

    def __init__(self, journal: _Journal | None) -> None:
        self.lock = threading.RLock()
        # collection name -> copy, most recently used last
        self.copies: OrderedDict[str, _Exact] = OrderedDict()
        # collections found too large to copy
        self.too_large: set[str] = set()
        # (store, user) -> {item id: (vector, metadata)} not yet written to chromadb
        self.pending: dict[tuple[str, str], dict[str, tuple[np.ndarray, dict[str, Any]]]] = {}
        # (store, user) -> the journal's sequence number of the last pending vector
        self.seq: dict[tuple[str, str], int] = {}
        self.journal = journal
        self.users = 0


_SHARED: dict[str, _Shared] = {}
_SHARED_LOCK = threading.Lock()


def _open_shared(key: str, folder: Path | None) -> tuple[_Shared, bool]:
    """Return the shared state of a system, and whether this call created it."""
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        created = shared is None
        if shared is None:
            shared = _SHARED[key] = _Shared(_Journal(folder) if folder is not None else None)
        shared.users += 1
        return shared, created


def _close_shared(key: str) -> None:
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is not None:
            shared.users -= 1
            if shared.users <= 0:
                del _SHARED[key]
                if shared.journal is not None:
                    shared.journal.close()


class VectorIndex:
    """Item vectors in chromadb, scoped by structure and user.

    Args:
        embedder: The embedder whose vectors are stored (attached to every collection).
        path: A folder for an embedded persistent chromadb; ``None`` for an in-memory one.
        url: A Chroma server URL (``http://host:port``) instead of an embedded client.
        hnsw: Extra HNSW settings (``ef_search``, ``max_neighbors``, ...).
        exact_limit: Search partitions up to this many vectors exactly, in process
            (embedded indexes only; ``0`` leaves every search to chromadb).
    """

    #: Buffered metadata updates of one collection that trigger a write.
    METADATA_BATCH = 512
    #: Vectors of one (structure, user) waiting to be written that trigger a write.
    UPSERT_BATCH = 2048
    #: Vectors waiting to be written, over all structures and users, that trigger a flush.
    PENDING_LIMIT = 20_000
    #: Partitions up to this many vectors are searched exactly, in process (embedded only).
    EXACT_LIMIT = 50_000
    #: At most this many vectors are copied for exact search, over all partitions
    #: (about 150 MB at MiniLM's 384 dimensions).
    EXACT_BUDGET = 100_000

    def __init__(
        self,
        embedder: Embedder,
        *,
        path: str | Path | None = None,
        url: str | None = None,
        hnsw: Mapping[str, Any] | None = None,
        exact_limit: int | None = None,
    ) -> None:
        self.embedder = embedder
        self._function = AgentMemEmbeddingFunction(embedder)
        # ef_search 400: at 100k vectors a collection's recall@10 against exact search is
        # 0.97-0.98 at chromadb's 100 and 0.98-1.0 at 400, for about 1 ms more a query
        # (benchmarks/bench_scale.py recall). It applies to collections created from now.
        self._hnsw: dict[str, Any] = {"space": "cosine", "ef_search": 400, "ef_construction": 200}
        self._hnsw.update(hnsw or {})
        settings = Settings(anonymized_telemetry=False, allow_reset=True)
        self._folder_lock: FolderLock | None = None
        self._collections: dict[str, Any] = {}
        self._lock = threading.RLock()
        # collection name -> (store, user, {item id: metadata}): see update_metadata.
        self._pending_metadata: dict[str, tuple[str, str, dict[str, dict[str, Any]]]] = {}
        # Exact-search copies and vectors waiting to be written (embedded indexes only),
        # shared with the other indexes of the same system in this process.
        self._shared: _Shared | None = None
        self.exact_limit = self.EXACT_LIMIT if exact_limit is None else max(0, exact_limit)
        self._shared_key = ""
        if not url:
            self._shared_key = "memory:" if path is None else f"path:{Path(path).resolve()}"
        try:
            if url:
                from urllib.parse import urlparse

                parsed = urlparse(url)
                if not parsed.hostname:
                    raise ConfigError(f"bad Chroma server URL {url!r}", hint="use http://host:port")
                self.client: Any = chromadb.HttpClient(
                    host=parsed.hostname,
                    port=parsed.port or 8000,
                    ssl=parsed.scheme == "https",
                    settings=settings,
                )
            elif path is not None:
                # Before chromadb touches the folder: one process at a time writes it.
                self._folder_lock = FolderLock(path)
                # An index dropped without close() lets go when it is collected.
                weakref.finalize(self, self._folder_lock.release)
                self.client = chromadb.PersistentClient(path=str(path), settings=settings)
            else:
                self.client = chromadb.EphemeralClient(settings=settings)
            if self._shared_key:
                folder = Path(path) if path is not None else None
                self._shared, created = _open_shared(self._shared_key, folder)
                self._release_shared = weakref.finalize(self, _close_shared, self._shared_key)
                if created:
                    self._replay_journal()
        except (ConfigError, StorageError):
            raise
        except Exception as exc:
            self.close()
            raise StorageError(f"cannot open the vector index: {exc}") from exc

    def close(self) -> None:
        """Write buffered metadata and let another process open the folder; idempotent.

        chromadb keeps no file handles worth closing between calls; what matters is the
        folder lock (see :mod:`agentmem.storage.locking`), which also ends with the process.
        """
        self.flush()
        if self._shared is not None:
            self._shared = None
            self._release_shared()
        if self._folder_lock is not None:
            self._folder_lock.release()
            self._folder_lock = None

    def _collection(
        self, store: str, user_id: str, *, create: bool = True, history: bool = False
    ) -> Any:
        name = collection_name(store, user_id, history=history)
        with self._lock:
            found = self._collections.get(name)
            if found is not None:
                return found
            try:
                if create:
                    found = self.client.get_or_create_collection(
                        name,
                        embedding_function=self._function,
                        configuration={"hnsw": dict(self._hnsw)},
                        metadata={"store": store, "partition": "history" if history else "current"},
                    )
                else:
                    found = self.client.get_collection(name, embedding_function=self._function)
            except Exception as exc:
                if not create:
                    return None
                raise StorageError(f"cannot open vector collection {name}: {exc}") from exc
            self._collections[name] = found
            return found

    def _partitions(self, store: str, user_id: str) -> list[Any]:
        """Return the user's existing collections of one structure: current, then history."""
        found = [
            self._collection(store, user_id, create=False, history=history)
            for history in (False, True)
        ]
        return [c for c in found if c is not None]

    def upsert(
        self,
        store: str,
        user_id: str,
        ids: Sequence[str],
        embeddings: np.ndarray,
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Insert or replace vectors with their metadata (scalars only).

        A vector goes to the current or the history partition by its metadata's
        ``current`` flag (missing means current), and leaves the other one if it was there.

        An embedded index writes behind: the vectors are journaled (a folder's index) and
        seen at once by every search and :meth:`get`, and go to chromadb in batches of up
        to :attr:`UPSERT_BATCH`, before anything reads chromadb for that structure and
        user, and on :meth:`flush` and :meth:`close`. A killed process loses none: the next
        open writes what the journal holds. A Chroma server, which other processes read,
        is written at once.
        """
        if len(ids) == 0:
            return
        vectors = np.asarray(embeddings, dtype=np.float32)
        stored = [dict(m) or {"_": 0} for m in metadatas]
        self._forget_pending(collection_name(store, user_id), ids)  # superseded by these
        shared = self._shared
        if shared is None:
            self._write(store, user_id, list(ids), vectors, stored)
            return
        key = (store, user_id)
        with shared.lock:
            if shared.journal is not None:
                try:
                    rows = list(zip(ids, vectors, stored, strict=True))
                    shared.seq[key] = shared.journal.append(store, user_id, rows)
                except sqlite3.Error as exc:
                    raise StorageError(f"cannot journal vectors: {exc}") from exc
            waiting = shared.pending.setdefault(key, {})
            for item_id, vector, metadata in zip(ids, vectors, stored, strict=True):
                waiting[item_id] = (vector, metadata)
            for history, rows_in in _by_partition(stored):
                chosen = [ids[n] for n in rows_in]
                self._exact_put(
                    store, user_id, history, chosen, vectors[rows_in], [stored[n] for n in rows_in]
                )
                self._exact_remove(store, user_id, not history, chosen)
            full = len(waiting) >= self.UPSERT_BATCH
            everyone = sum(len(w) for w in shared.pending.values()) >= self.PENDING_LIMIT
        if everyone:
            self.flush()
        elif full:
            self._flush_upserts(store, user_id)

    def _write(
        self,
        store: str,
        user_id: str,
        ids: list[str],
        vectors: np.ndarray,
        stored: list[dict[str, Any]],
    ) -> None:
        """Write vectors to chromadb, each to its partition, out of the other one."""
        for history, rows in _by_partition(stored):
            chosen = [ids[n] for n in rows]
            target = self._collection(store, user_id, history=history)
            other = self._collection(store, user_id, create=False, history=not history)
            try:
                target.upsert(
                    ids=chosen, embeddings=vectors[rows], metadatas=[stored[n] for n in rows]
                )
                if other is not None:
                    stray = list(other.get(ids=chosen, include=[])["ids"])
                    if stray:
                        other.delete(ids=stray)
            except StorageError:
                raise
            except Exception as exc:
                raise StorageError(f"vector upsert failed: {exc}") from exc

    def _flush_all_upserts(self) -> None:
        shared = self._shared
        if shared is not None:
            with shared.lock:
                keys = list(shared.pending)
            for store, user_id in keys:
                self._flush_upserts(store, user_id)

    def _flush_upserts(self, store: str, user_id: str) -> None:
        """Write a structure's waiting vectors for a user to chromadb, then unjournal them."""
        shared = self._shared
        if shared is None:
            return
        key = (store, user_id)
        with shared.lock:
            waiting = shared.pending.pop(key, None)
            seq = shared.seq.pop(key, None)
            if not waiting:
                return
            ids = list(waiting)
            try:
                self._write(
                    store,
                    user_id,
                    ids,
                    np.stack([waiting[i][0] for i in ids]),
                    [waiting[i][1] for i in ids],
                )
            except BaseException:
                # Still waiting (and journaled): a later flush, or the next open, retries.
                back = shared.pending.setdefault(key, {})
                for item_id in ids:
                    back.setdefault(item_id, waiting[item_id])
                if seq is not None:
                    shared.seq[key] = max(seq, shared.seq.get(key, seq))
                raise
            if shared.journal is not None and seq is not None:
                shared.journal.remove(store, user_id, upto=seq)

    def _replay_journal(self) -> None:
        """Write what a killed process journaled but never wrote (on open)."""
        shared = self._shared
        if shared is None or shared.journal is None:
            return
        rows = shared.journal.rows()
        if not rows:
            return
        with shared.lock:
            for seq, store, user_id, item_id, vector, metadata in rows:
                shared.pending.setdefault((store, user_id), {})[item_id] = (vector, metadata)
                shared.seq[(store, user_id)] = seq
        logger.info("writing %d journaled vectors left by an earlier process", len(rows))
        self._flush_all_upserts()

    def update_metadata(
        self, store: str, user_id: str, ids: Sequence[str], metadatas: Sequence[Mapping[str, Any]]
    ) -> None:
        """Replace the metadata of existing vectors, moving them between partitions.

        The update is buffered (a chromadb write costs 10-30 ms whatever its size, and
        invalidations come one small batch at a time) and written before anything reads
        that collection's metadata or history: a filtered or history query, :meth:`flush`,
        :meth:`close`, or once :attr:`METADATA_BATCH` updates wait. Queries
        of the current partition see the buffered values at once. The records database
        stays the source of truth: a crash that loses buffered updates leaves stale vectors
        in the current partition, which every search judges by their record (and
        :class:`agentmem.storage.items.ItemIndex` moves them on when it meets them), never
        a wrong answer.
        """
        if len(ids) == 0:
            return
        name = collection_name(store, user_id)
        with self._lock:
            waiting = self._pending_metadata.setdefault(name, (store, user_id, {}))[2]
            for item_id, metadata in zip(ids, metadatas, strict=True):
                waiting[item_id] = dict(metadata)
            full = len(waiting) >= self.METADATA_BATCH
        if full:
            self._flush_metadata(name)

    def _leaving(self, name: str) -> frozenset[str]:
        """Return the ids of a current partition whose buffered metadata moves them out."""
        with self._lock:
            entry = self._pending_metadata.get(name)
            if entry is None:
                return frozenset()
            return frozenset(i for i, m in entry[2].items() if not is_current(m))

    def pending(self, store: str, user_id: str) -> frozenset[str]:
        """Return the ids whose metadata update is still buffered."""
        with self._lock:
            entry = self._pending_metadata.get(collection_name(store, user_id))
            return frozenset(entry[2]) if entry else frozenset()

    def flush(self) -> None:
        """Write every waiting vector and buffered metadata update."""
        self._flush_all_upserts()
        with self._lock:
            names = list(self._pending_metadata)
        for name in names:
            self._flush_metadata(name)

    def _flush_metadata(self, name: str) -> None:
        with self._lock:
            entry = self._pending_metadata.pop(name, None)
        if entry is None or not entry[2]:
            return
        store, user_id, waiting = entry
        self._flush_upserts(store, user_id)  # a move reads the vectors from chromadb
        ids, metadatas = list(waiting), list(waiting.values())
        try:
            for history, rows in _by_partition(metadatas):
                self._place(store, user_id, {ids[n]: metadatas[n] for n in rows}, history=history)
        except Exception as exc:
            raise StorageError(f"vector metadata update failed: {exc}") from exc

    def _place(
        self, store: str, user_id: str, wanted: dict[str, dict[str, Any]], *, history: bool
    ) -> None:
        """Give vectors new metadata in one partition, moving them there if need be.

        A move writes the target before deleting the source: a crash in between leaves
        the vector in both partitions, which search tolerates, never in neither.
        """
        target = self._collection(store, user_id, history=history)
        source = self._collection(store, user_id, create=False, history=not history)
        ids = list(wanted)
        moving = source.get(ids=ids, include=["embeddings"]) if source is not None else None
        if moving is not None and moving["ids"]:
            moved = list(moving["ids"])
            embeddings = np.asarray(moving["embeddings"], dtype=np.float32)
            stored = [wanted[i] or {"_": 0} for i in moved]
            target.upsert(ids=moved, embeddings=embeddings, metadatas=stored)
            self._exact_put(store, user_id, history, moved, embeddings, stored)
            source.delete(ids=moved)
            self._exact_remove(store, user_id, not history, moved)
            ids = [i for i in ids if i not in set(moved)]
        if ids:
            staying = list(target.get(ids=ids, include=[])["ids"])
            if staying:
                stored = [wanted[i] or {"_": 0} for i in staying]
                target.update(ids=staying, metadatas=stored)
                self._exact_edit(
                    store, user_id, history, lambda exact: exact.set_metadata(staying, stored)
                )

    def _overlay(self, name: str, hits: list[Hit]) -> list[Hit]:
        """Return hits with buffered metadata updates applied."""
        with self._lock:
            entry = self._pending_metadata.get(name)
            if entry is None:
                return hits
            waiting = entry[2]
            return [Hit(h.id, h.similarity, waiting.get(h.id, h.metadata)) for h in hits]

    def _forget_pending(self, name: str, ids: Sequence[str] | None = None) -> None:
        with self._lock:
            entry = self._pending_metadata.get(name)
            if entry is None:
                return
            if ids is None:
                del self._pending_metadata[name]
            else:
                for item_id in ids:
                    entry[2].pop(item_id, None)

    def query(
        self,
        store: str,
        user_id: str,
        embedding: np.ndarray,
        k: int,
        *,
        where: Mapping[str, Any] | None = None,
        history: bool = False,
    ) -> list[Hit]:
        """Return up to ``k`` nearest vectors of one structure for one user.

        Args:
            where: A chromadb metadata filter (slower: chromadb scans the matching rows).
            history: Search invalidated items' vectors too; otherwise only the current
                partition is searched (which may still hold a few stale vectors whose
                move is buffered or was lost in a crash: judge hits by their records).
        """
        if k <= 0:
            return []
        name = collection_name(store, user_id)
        if where or history:
            self._flush_metadata(name)  # the filter and the history must see every update
        # Vectors whose move to the history is still buffered are left out at once, so
        # what a search returns does not hang on when the buffer is written.
        leaving = frozenset() if history else self._leaving(name)
        wanted = k + len(leaving)
        hits: list[Hit] = []
        for partition in (False, True) if history else (False,):
            exact = None if where else self._exact_for(store, user_id, partition)
            if exact is not None:
                hits += self._search_exact(exact, embedding, wanted)
                continue
            self._flush_upserts(store, user_id)
            collection = self._collection(store, user_id, create=False, history=partition)
            if collection is not None:
                hits += self._search(collection, embedding, wanted, where)
        if leaving:
            hits = [h for h in hits if h.id not in leaving][:k]
        if history:
            best: dict[str, Hit] = {}
            for hit in hits:  # a vector caught mid-move is in both partitions
                if hit.id not in best or hit.similarity > best[hit.id].similarity:
                    best[hit.id] = hit
            hits = sorted(best.values(), key=lambda h: -h.similarity)[:k]
        return self._overlay(name, hits)

    def _search_exact(self, exact: _Exact, embedding: np.ndarray, k: int) -> list[Hit]:
        with exact.lock:
            matrix, n, ids, metadatas = exact.snapshot()
        if n == 0:
            return []
        similarities = matrix[:n] @ _unit(embedding)[0]
        k = min(k, n)
        if k < n:  # every row as near as the k-th, ties included
            kth = np.partition(similarities, n - k)[n - k]
            near = np.flatnonzero(similarities >= kth)
        else:
            near = np.arange(n)
        # Ties (a line said twice has one vector) go by id, so the order never hangs on
        # where rows sit in the copy, which moves and removals change.
        best = sorted(near.tolist(), key=lambda row: (-similarities[row], ids[row]))[:k]
        return [Hit(ids[row], float(similarities[row]), metadatas[row]) for row in best]

    @staticmethod
    def _search(
        collection: Any, embedding: np.ndarray, k: int, where: Mapping[str, Any] | None
    ) -> list[Hit]:
        try:
            # chromadb returns fewer than n_results when the collection holds fewer.
            result = collection.query(
                query_embeddings=np.asarray(embedding, dtype=np.float32).reshape(1, -1),
                n_results=k,
                where=dict(where) if where else None,
                include=["metadatas", "distances"],
            )
        except Exception as exc:
            raise StorageError(f"vector query failed: {exc}") from exc
        return [
            Hit(item_id, 1.0 - float(distance), metadata or {})
            for item_id, distance, metadata in zip(
                result["ids"][0], result["distances"][0], result["metadatas"][0], strict=True
            )
        ]

    def _exact_for(self, store: str, user_id: str, history: bool) -> _Exact | None:
        """Return the partition's exact-search copy, loading it first; ``None`` if none.

        Loading writes the waiting vectors, then reads the whole partition (about 1 s for
        20,000 vectors) under the shared lock, so that no write slips between the read and
        the copy taking over: writers change the copy under the same lock.
        """
        copies = self._shared
        if copies is None or not self.exact_limit:
            return None
        name = collection_name(store, user_id, history=history)
        with copies.lock:
            exact = copies.copies.get(name)
            if exact is not None:
                copies.copies.move_to_end(name)
                return exact
            if name in copies.too_large or not self.exact_limit:
                return None
        self._flush_upserts(store, user_id)  # the copy is read from chromadb
        collection = self._collection(store, user_id, create=False, history=history)
        if collection is None:
            return None
        with copies.lock:
            if name in copies.copies:
                return copies.copies[name]
            if int(collection.count()) > min(self.exact_limit, self.EXACT_BUDGET):
                copies.too_large.add(name)
                return None
            stored = collection.get(include=["embeddings", "metadatas"])
            exact = _Exact(
                list(stored["ids"]),
                np.asarray(stored["embeddings"], dtype=np.float32),
                [dict(m or {}) for m in stored["metadatas"]],
                copies.lock,
            )
            copies.copies[name] = exact
            self._evict(copies, keep=name)
            return exact

    def _evict(self, copies: _Shared, keep: str) -> None:
        """Drop least recently used copies until the copies fit the budget."""
        total = sum(e.n for e in copies.copies.values())
        for name in list(copies.copies):
            if total <= self.EXACT_BUDGET:
                break
            if name != keep:
                total -= copies.copies.pop(name).n

    def _exact_put(
        self,
        store: str,
        user_id: str,
        history: bool,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Mirror a chromadb upsert into the partition's copy, if it has one."""
        copies = self._shared
        if copies is None:
            return
        name = collection_name(store, user_id, history=history)
        with copies.lock:
            exact = copies.copies.get(name)
            if exact is None:
                return
            exact.put(ids, vectors, metadatas)
            if exact.n > self.exact_limit:
                copies.too_large.add(name)
                del copies.copies[name]
            else:
                self._evict(copies, keep=name)

    def _exact_remove(self, store: str, user_id: str, history: bool, ids: Sequence[str]) -> None:
        """Mirror a chromadb delete into the partition's copy, if it has one."""
        self._exact_edit(store, user_id, history, lambda exact: exact.remove(ids))

    def _exact_edit(self, store: str, user_id: str, history: bool, edit: Any) -> None:
        copies = self._shared
        if copies is None:
            return
        with copies.lock:
            exact = copies.copies.get(collection_name(store, user_id, history=history))
            if exact is not None:
                edit(exact)

    def get(self, store: str, user_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Return stored vectors by id, from either partition (missing ids are left out)."""
        if not ids:
            return {}
        found: dict[str, np.ndarray] = {}
        shared = self._shared
        if shared is not None:
            with shared.lock:
                waiting = shared.pending.get((store, user_id), {})
                for item_id in ids:
                    if item_id in waiting:
                        found[item_id] = waiting[item_id][0].copy()
        for collection in self._partitions(store, user_id):
            missing = [i for i in ids if i not in found]
            if not missing:
                break
            result = collection.get(ids=missing, include=["embeddings"])
            for item_id, vector in zip(result["ids"], result["embeddings"], strict=True):
                found[item_id] = np.asarray(vector, dtype=np.float32)
        return found

    def delete(self, store: str, user_id: str, ids: Sequence[str]) -> None:
        """Remove vectors by id, from both partitions."""
        if not ids:
            return
        self._forget_pending(collection_name(store, user_id), ids)
        self._flush_upserts(store, user_id)
        for history in (False, True):
            collection = self._collection(store, user_id, create=False, history=history)
            if collection is not None:
                collection.delete(ids=list(ids))
                self._exact_remove(store, user_id, history, ids)

    def count(self, store: str, user_id: str, *, history: bool | None = None) -> int:
        """Return how many vectors one structure holds for one user.

        Args:
            history: ``None`` counts both partitions, ``False`` the current one, ``True``
                the history one.
        """
        self._flush_upserts(store, user_id)
        total = 0
        for partition in (False, True):
            if history is None or history == partition:
                collection = self._collection(store, user_id, create=False, history=partition)
                total += 0 if collection is None else int(collection.count())
        return total

    def drop(self, store: str, user_id: str) -> int:
        """Delete one structure's collections for a user; return how many vectors they held."""
        self._flush_upserts(store, user_id)
        held = 0
        names = [collection_name(store, user_id, history=h) for h in (False, True)]
        shared = self._shared
        if shared is not None:
            with shared.lock:
                for name in names:
                    shared.copies.pop(name, None)
                    shared.too_large.discard(name)
        with self._lock:
            self._pending_metadata.pop(names[0], None)
            for history, name in zip((False, True), names, strict=True):
                collection = self._collection(store, user_id, create=False, history=history)
                if collection is None:
                    continue
                held += int(collection.count())
                self.client.delete_collection(name)
                self._collections.pop(name, None)
        return held

    def collection_names(self) -> list[str]:
        """Return the names of every collection in the index (for audits and tests)."""
        self._flush_all_upserts()  # waiting vectors may be all a collection will hold
        return sorted(
            c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()
        )
