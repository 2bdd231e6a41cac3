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

In front of chromadb, for an embedded index only (a Chroma server is written and searched
directly), three pieces; each was turned off in ``benchmarks/bench_scale.py`` to see what
it buys (benchmarks/README.md, "Vector index: what each piece buys", 2026-12-03):

* exact search over in-process copies of partitions up to ``exact_limit`` vectors
  (:mod:`agentmem.storage.exact`): recall@10 1.000 where HNSW gives 0.924-0.998 at 100k
  items, and ingest 156 turns/s against 104 without (searches during ingest no longer
  flush the vectors written behind); no faster a query at this size, and the first
  recall of a process loads the copies (12.3 s against 5.7 s);
* write-behind, journaled in ``agentmem-pending.sqlite`` (:mod:`agentmem.storage.journal`):
  ingest 156 turns/s against 68 writing each upsert at once; vectors are seen at once by
  searches (through the copies) and :meth:`VectorIndex.get`, and written to chromadb in
  batches before anything reads chromadb for that structure and user; the next open
  writes what a killed process left journaled (tests/test_crash_safety.py);
* both, and the collection handles, shared by every index a process opens on one folder,
  as chromadb shares its system: without it a second index on the folder misses the
  first's waiting vectors and searches dropped collections (tests/test_vectors_exact.py).

Every chromadb call goes through :func:`agentmem.storage.chroma.guarded`: failures reach
the caller as :class:`~agentmem.errors.StorageError` with a hint and ``retryable``.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from agentmem.errors import ConfigError, DataDirLockedError, StorageError
from agentmem.protocols import Embedder
from agentmem.storage import exact as exact_search
from agentmem.storage.chroma import (
    AgentMemEmbeddingFunction,
    Hit,
    Partitions,
    Placed,
    Stored,
    by_partition,
    collection_name,
    compact_folder,
    is_current,
    open_client,
)
from agentmem.storage.exact import ExactCopy
from agentmem.storage.journal import Shared, close_shared, is_shared, open_shared
from agentmem.storage.locking import LOCK_NAME, FolderLock
from agentmem.storage.snapshot import private_copy

__all__ = [
    "NEVER",
    "AgentMemEmbeddingFunction",
    "Hit",
    "Stored",
    "VectorIndex",
    "collection_name",
    "is_current",
    "timestamp",
]

logger = logging.getLogger(__name__)

#: Stand-in for "never invalidated" in numeric metadata filters.
NEVER = 1.0e12


def timestamp(moment: datetime | None, default: float = 0.0) -> float:
    """Return ``moment`` as seconds since the epoch (naive times are UTC)."""
    if moment is None:
        return default
    return (moment - datetime(1970, 1, 1)).total_seconds()


class VectorIndex:
    """Item vectors in chromadb, scoped by structure and user.

    Args:
        embedder: The embedder whose vectors are stored (attached to every collection).
        path: A folder for an embedded persistent chromadb; ``None`` for an in-memory one.
        url: A Chroma server URL (``http://host:port``) instead of an embedded client.
        hnsw: Extra HNSW settings (``ef_search``, ``max_neighbors``, ...).
        exact_limit: Search partitions up to this many vectors exactly, in process
            (embedded indexes only; ``0`` leaves every search to chromadb).
        read_only: Read ``path`` without writing it, even where this process may not
            write: the folder is held shared (readers together, no writer) and chromadb
            opens a private copy of it, since chromadb cannot open a folder it cannot
            write (it creates its migrations table and writes on open, whatever its
            settings). The copy costs the folder's size in the temporary directory while
            the index is open; what is written to the index goes to the copy and is gone
            on :meth:`close`. Embedded indexes only. Where a writer holds the folder (the
            chat app), the copy is a snapshot of the moment it was opened, taken without
            the lock (:attr:`beside`); what the writer writes later is not seen.

    Raises:
        ConfigError: ``url`` is malformed, or given with ``read_only``.
        DataDirLockedError: Another process holds the folder (to write it; or, to take
            it for writing, to read it).
        StorageError: chromadb or the journal cannot be opened.
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
        read_only: bool = False,
    ) -> None:
        self.embedder = embedder
        # The folder compact() rewrites: an embedded index's own, never a private copy.
        self._path = Path(path) if path is not None and not url and not read_only else None
        self._key = ""
        self.read_only = read_only
        self._copy: tempfile.TemporaryDirectory[str] | None = None
        self._function = AgentMemEmbeddingFunction(embedder)
        # ef_search 400: at 100k vectors a collection's recall@10 against exact search is
        # 0.97-0.98 at chromadb's 100 and 0.98-1.0 at 400, for about 1 ms more a query
        # (benchmarks/bench_scale.py recall). It applies to collections created from now.
        self._hnsw: dict[str, Any] = {"space": "cosine", "ef_search": 400, "ef_construction": 200}
        self._hnsw.update(hnsw or {})
        self._folder_lock: FolderLock | None = None
        #: Why the folder was read without its lock (a writer holds it), or ``None``.
        self.beside: str | None = None
        self._lock = threading.RLock()
        # collection name -> (store, user, {item id: metadata}): see update_metadata.
        self._pending_metadata: dict[str, tuple[str, str, dict[str, dict[str, Any]]]] = {}
        # Exact-search copies and vectors waiting to be written (embedded indexes only),
        # shared with the other indexes of the same system in this process.
        self._shared: Shared | None = None
        self.exact_limit = self.EXACT_LIMIT if exact_limit is None else max(0, exact_limit)
        where = url or (str(path) if path is not None else "memory")
        try:
            if read_only and (url or path is None):
                raise ConfigError(
                    "read-only memory needs the vector index in a folder",
                    hint="with a Chroma server, give the user read-only rights there instead",
                )
            if path is not None and not url:
                # Before chromadb touches the folder: one process at a time writes it.
                self._hold(Path(path), read_only)
                if read_only:
                    live = self.beside is not None
                    self._copy = private_copy(Path(path), where, leave_out=LOCK_NAME, live=live)
                    path = Path(self._copy.name)
            self.client = open_client(path, url)
            handles: dict[str, Any] = {}
            created = False
            if not url:
                key = self._key = "memory:" if path is None else f"path:{Path(path).resolve()}"
                folder = Path(path) if path is not None else None
                self._shared, created = open_shared(key, folder, self.EXACT_BUDGET)
                self._release_shared = weakref.finalize(self, close_shared, key)
                handles = self._shared.collections
            self._chroma = Partitions(self.client, self._function, self._hnsw, where, handles)
            if self._shared is not None and created:
                self._sweep_dropped()
                self._replay_journal()
        except (ConfigError, StorageError):
            self._let_go()
            raise

    def _sweep_dropped(self) -> None:
        """Remove index files of collections dropped by an earlier process (first open).

        A process that erased vectors removes the dropped collections' files, but chromadb
        may write them again from its memory as the process ends (or the process is killed
        before its close sweeps them): the next process to open the folder removes them
        before anything else, so an erased vector outlives its process by no more than
        that (tests/test_erasure.py).
        """
        if self._path is None:
            return
        try:
            # Only after an earlier process dropped collections is there anything to
            # zero in the live files: reading every one on each start would cost start-up.
            removed = compact_folder(self._path, vacuum=False, scrub=False)
            if removed:
                compact_folder(self._path, vacuum=False)
        except StorageError as exc:
            logger.warning("could not remove dropped collections' files: %s", exc)
            return
        if removed:
            logger.info("removed the index files of %d dropped collection(s)", removed)

    def _hold(self, folder: Path, read_only: bool) -> None:
        """Take the folder's lock; reading, read beside a writer that holds it instead."""
        try:
            self._folder_lock = FolderLock(folder, shared=read_only)
        except DataDirLockedError as exc:
            if not read_only:
                raise
            # The chat app holds its folder while it runs, which is when a user wants to
            # look at memory (issue 35): a snapshot read beside it risks nothing of its.
            self.beside = str(exc.args[0])
            logger.info("%s: reading a snapshot of it", self.beside)
            return
        # An index dropped without close() lets go when it is collected.
        weakref.finalize(self, self._folder_lock.release)

    def _let_go(self) -> None:
        dropped = False
        if self._shared is not None:
            dropped = self._shared.dropped
            self._shared = None
            self._release_shared()
        # chromadb shares one system per folder in a process and stops it when its last
        # client closes. Left running, a system whose write failed (a full disk) kept a
        # lock its Rust side never released, and the next index opened on the folder in
        # this process hung on its first call (tests/test_disk_full.py, 1 run in 2). A
        # healthy system is left running: stopping it writes the index files of the
        # collections dropped in this process again, from its memory.
        failed = getattr(getattr(self, "_chroma", None), "failed", False)
        close = getattr(getattr(self, "client", None), "close", None) if failed else None
        if self._copy is not None:  # the copy's system: let go before deleting the copy
            close = getattr(getattr(self, "client", None), "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # closing must let go of the folder whatever happens
                logger.warning("chromadb did not close cleanly: %s", exc)
        if dropped and self._path is not None and not is_shared(self._key):
            # Stopping the system wrote the index files of collections dropped in this
            # process again (from its memory): remove them once more.
            try:
                compact_folder(self._path, vacuum=False)
            except StorageError as exc:
                logger.warning("could not remove dropped collections' files: %s", exc)
        if self._folder_lock is not None:
            self._folder_lock.release()
            self._folder_lock = None
        if self._copy is not None:
            self._copy.cleanup()
            self._copy = None

    def close(self) -> None:
        """Write buffered metadata and let another process open the folder; idempotent.

        chromadb keeps no file handles worth closing between calls; what matters is the
        folder lock (see :mod:`agentmem.storage.locking`), which also ends with the process.

        Raises:
            StorageError: Buffered writes could not be written (they stay journaled).
        """
        if self._chroma.closed:
            return
        try:
            if not self.read_only:  # a read-only index's writes went to its copy
                self.flush()
            if self._shared is not None:
                with self._shared.lock:  # nothing of this index's was lost
                    self._shared.unclosed -= 1
        finally:
            self._chroma.closed = True
            self._let_go()

    @property
    def needs_repair(self) -> bool:
        """Whether a process killed while it had the folder open may have left the vectors
        behind the records (metadata updates still buffered, vectors of records never
        committed): :func:`agentmem.storage.repair.repair_vectors` brings them in line.

        Raises:
            StorageError: The journal could not be read.
        """
        return self._shared is not None and self._shared.needs_repair()

    def repaired(self) -> None:
        """Note that the vectors were brought in line with the records (see :attr:`needs_repair`).

        Raises:
            StorageError: The journal could not be written.
        """
        if self._shared is not None:
            self._shared.repaired()

    def stored(self, *, embeddings: bool = False) -> Iterator[Stored]:
        """Yield every partition of the index as chromadb holds it, once all that waits is written.

        For audits and repairs: every collection agentmem made (those it did not make are
        left out), whatever structure or user it is of.

        Raises:
            StorageError: chromadb failed.
        """
        self.flush()
        for name in self.collection_names():
            found = self._chroma.stored(name, embeddings=embeddings)
            if found is not None:
                yield found

    def discard(self, name: str, ids: Sequence[str]) -> None:
        """Remove vectors from one collection, by its name (see :meth:`stored`).

        Raises:
            StorageError: chromadb failed.
        """
        collection = self._chroma.named(name)
        if collection is None or not ids:
            return
        self._chroma.call("vector delete", collection.delete, ids=list(ids))
        if self._shared is not None:
            self._shared.copies.edit(name, partial(ExactCopy.remove, ids=ids))

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

        Raises:
            StorageError: The journal or chromadb failed; nothing was accepted.
        """
        if len(ids) == 0:
            return
        vectors = np.asarray(embeddings, dtype=np.float32)
        stored = [dict(m) or {"_": 0} for m in metadatas]
        self._forget_pending(collection_name(store, user_id), ids)  # superseded by these
        shared = self._shared
        if shared is None:
            self._chroma.write(store, user_id, list(ids), vectors, stored)
            return
        with shared.lock:
            mine, everyone = shared.accept((store, user_id), ids, vectors, stored)
            for history, rows_in in by_partition(stored):
                chosen = [ids[n] for n in rows_in]
                shared.copies.put(
                    collection_name(store, user_id, history=history),
                    self.exact_limit,
                    chosen,
                    vectors[rows_in],
                    [stored[n] for n in rows_in],
                )
                self._exact_edit(store, user_id, not history, partial(ExactCopy.remove, ids=chosen))
        if everyone >= self.PENDING_LIMIT:
            self.flush()
        elif mine >= self.UPSERT_BATCH:
            self._flush_upserts(store, user_id)

    def _flush_all_upserts(self) -> None:
        if self._shared is not None:
            for store, user_id in self._shared.owners():
                self._flush_upserts(store, user_id)

    def _flush_upserts(self, store: str, user_id: str) -> None:
        """Write a structure's waiting vectors for a user to chromadb, then unjournal them."""
        if self._shared is not None:
            self._shared.write((store, user_id), partial(self._chroma.write, store, user_id))

    def _replay_journal(self) -> None:
        """Write what a killed process journaled but never wrote (on open)."""
        if self._shared is not None and (found := self._shared.recover()):
            logger.info("writing %d journaled vectors left by an earlier process", found)
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

        Raises:
            StorageError: A full buffer could not be written (it is kept for a retry).
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
        """Write every waiting vector and buffered metadata update.

        Raises:
            StorageError: chromadb or the journal failed; what was not written waits.
        """
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
        try:
            self._flush_upserts(store, user_id)  # a move reads the vectors from chromadb
            ids, metadatas = list(waiting), list(waiting.values())
            for history, rows in by_partition(metadatas):
                wanted = {ids[n]: metadatas[n] for n in rows}
                placed = self._chroma.place(store, user_id, wanted, history=history)
                if placed.moved:
                    self._copies_put(store, user_id, history, placed)
                    self._exact_edit(
                        store, user_id, not history, partial(ExactCopy.remove, ids=placed.moved)
                    )
                if placed.updated:
                    change = partial(
                        ExactCopy.set_metadata,
                        ids=placed.updated,
                        metadatas=placed.updated_metadata,
                    )
                    self._exact_edit(store, user_id, history, change)
        except BaseException:
            with self._lock:  # kept for a retry, under what was buffered meanwhile
                later = self._pending_metadata.setdefault(name, (store, user_id, {}))[2]
                self._pending_metadata[name] = (store, user_id, {**waiting, **later})
            raise

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

        Raises:
            StorageError: chromadb failed.
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
            copy = None if where else self._exact_for(store, user_id, partition)
            if copy is not None:
                with self._lock if self._shared is None else self._shared.lock:
                    snapshot = copy.snapshot()
                hits += [Hit(*found) for found in exact_search.search(snapshot, embedding, wanted)]
                continue
            self._flush_upserts(store, user_id)
            collection = self._chroma.collection(store, user_id, create=False, history=partition)
            if collection is not None:
                hits += self._chroma.search(collection, embedding, wanted, where)
        if leaving:
            hits = [h for h in hits if h.id not in leaving][:k]
        if history:
            best: dict[str, Hit] = {}
            for hit in hits:  # a vector caught mid-move is in both partitions
                if hit.id not in best or hit.similarity > best[hit.id].similarity:
                    best[hit.id] = hit
            hits = sorted(best.values(), key=lambda h: -h.similarity)[:k]
        return self._overlay(name, hits)

    def _exact_for(self, store: str, user_id: str, history: bool) -> ExactCopy | None:
        """Return the partition's exact-search copy, loading it first; ``None`` if none.

        Loading writes the waiting vectors, then reads the whole partition (about 1 s for
        20,000 vectors) under the shared lock, so that no write slips between the read and
        the copy taking over: writers change the copy under the same lock.
        """
        shared = self._shared
        if shared is None or not self.exact_limit:
            return None
        name = collection_name(store, user_id, history=history)
        found = shared.copies.find(name)
        if found is not None or shared.copies.too_large(name):
            return found
        self._flush_upserts(store, user_id)  # the copy is read from chromadb
        collection = self._chroma.collection(store, user_id, create=False, history=history)
        if collection is None:
            return None

        def read() -> ExactCopy:
            everything = ["embeddings", "metadatas"]
            stored = self._chroma.call("vector read", collection.get, include=everything)
            return ExactCopy(
                list(stored["ids"]),
                np.asarray(stored["embeddings"], dtype=np.float32),
                [dict(m or {}) for m in stored["metadatas"]],
            )

        count = partial(self._chroma.call, "vector count", collection.count)
        return shared.copies.load(name, self.exact_limit, count, read)

    def _copies_put(self, store: str, user_id: str, history: bool, placed: Placed) -> None:
        if self._shared is not None:
            name = collection_name(store, user_id, history=history)
            self._shared.copies.put(
                name, self.exact_limit, placed.moved, placed.vectors, placed.moved_metadata
            )

    def _exact_edit(
        self, store: str, user_id: str, history: bool, change: Callable[[ExactCopy], None]
    ) -> None:
        if self._shared is not None:
            self._shared.copies.edit(collection_name(store, user_id, history=history), change)

    def get(self, store: str, user_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Return stored vectors by id, from either partition (missing ids are left out).

        Raises:
            StorageError: chromadb failed.
        """
        if not ids:
            return {}
        found = self._shared.waiting((store, user_id), ids) if self._shared else {}
        for _, collection in self._chroma.existing(store, user_id):
            missing = [i for i in ids if i not in found]
            if not missing:
                break
            result = self._chroma.call(
                "vector read", collection.get, ids=missing, include=["embeddings"]
            )
            for item_id, vector in zip(result["ids"], result["embeddings"], strict=True):
                found[item_id] = np.asarray(vector, dtype=np.float32)
        return found

    def delete(self, store: str, user_id: str, ids: Sequence[str]) -> None:
        """Remove vectors by id, from both partitions.

        Raises:
            StorageError: chromadb failed.
        """
        if not ids:
            return
        self._forget_pending(collection_name(store, user_id), ids)
        self._flush_upserts(store, user_id)
        for history, collection in self._chroma.existing(store, user_id):
            self._chroma.call("vector delete", collection.delete, ids=list(ids))
            self._exact_edit(store, user_id, history, partial(ExactCopy.remove, ids=ids))

    def count(self, store: str, user_id: str, *, history: bool | None = None) -> int:
        """Return how many vectors one structure holds for one user.

        Args:
            history: ``None`` counts both partitions, ``False`` the current one, ``True``
                the history one.

        Raises:
            StorageError: chromadb failed.
        """
        self._flush_upserts(store, user_id)
        return sum(
            int(self._chroma.call("vector count", collection.count))
            for partition, collection in self._chroma.existing(store, user_id)
            if history is None or history == partition
        )

    def drop(self, store: str, user_id: str) -> int:
        """Delete one structure's collections for a user; return how many vectors they held.

        Raises:
            StorageError: chromadb failed.
        """
        self._flush_upserts(store, user_id)
        held = 0
        names = [collection_name(store, user_id, history=h) for h in (False, True)]
        if self._shared is not None:
            self._shared.dropped = True
            for name in names:
                self._shared.copies.forget(name)
        with self._lock:
            self._pending_metadata.pop(names[0], None)
            for history, collection in self._chroma.existing(store, user_id):
                name = names[history]
                held += int(self._chroma.call("vector count", collection.count))
                self._chroma.call(
                    "dropping a vector collection", self.client.delete_collection, name
                )
                self._chroma.forget(name)
        return held

    def erase(self, user_id: str, ids: Collection[str]) -> int:
        """Remove a user's vectors by id from every structure, leaving no copy in the files.

        A deleted HNSW element keeps its vector in the index file (it is only marked
        deleted), so each collection that held one of ``ids`` is rebuilt from what it keeps;
        :meth:`compact` then removes the old files. Return how many vectors were erased.

        Raises:
            StorageError: chromadb failed.
        """
        wanted = set(ids)
        if not wanted:
            return 0
        self.flush()
        erased = 0
        for store in self.user_stores(user_id):
            kept_ids: list[str] = []
            kept_vectors: list[np.ndarray] = []
            kept_metadata: list[dict[str, Any]] = []
            found = 0
            for _history, collection in self._chroma.existing(store, user_id):
                everything = ["embeddings", "metadatas"]
                stored = self._chroma.call("vector read", collection.get, include=everything)
                for item_id, vector, metadata in zip(
                    stored["ids"], stored["embeddings"], stored["metadatas"], strict=True
                ):
                    if item_id in wanted:
                        found += 1
                        continue
                    kept_ids.append(item_id)
                    kept_vectors.append(np.asarray(vector, dtype=np.float32))
                    kept_metadata.append(dict(metadata or {}))
            if not found:
                continue
            erased += found
            self.drop(store, user_id)
            if kept_ids:
                self._chroma.write(store, user_id, kept_ids, np.stack(kept_vectors), kept_metadata)
        return erased

    def user_stores(self, user_id: str) -> list[str]:
        """Return the structures (vector collection names) holding vectors of a user.

        Raises:
            StorageError: chromadb failed.
        """
        self._flush_all_upserts()
        suffix = "-" + collection_name("", user_id).rsplit("-", 1)[1]
        listed = self._chroma.call("listing vector collections", self.client.list_collections)
        stores = set()
        for entry in listed:
            name = entry.name if hasattr(entry, "name") else str(entry)
            if not name.endswith(suffix):
                continue
            found = self._chroma.call(
                f"opening vector collection {name}", self._chroma.existing_named, name
            )
            if found is not None:
                stores.add(str((found.metadata or {}).get("store", "")))
        return sorted(s for s in stores if s)

    def compact(self) -> list[str]:
        """Rewrite the folder's files so that no erased vector stays in them.

        chromadb leaves a dropped collection's index files behind (no longer referenced,
        but holding every vector), and its SQLite file and our journal keep deleted rows in
        free pages. The unreferenced index folders are removed, and both SQLite files are
        rebuilt (``VACUUM``). A Chroma server rewrites its own files; nothing is done here.
        Return what was rewritten, in words.

        Raises:
            StorageError: A file could not be rewritten.
        """
        if self._path is None:
            return []
        self.flush()
        done = []
        with self._lock:
            removed = compact_folder(self._path)
        if removed:
            done.append(f"vector index files of {removed} dropped collection(s) (removed)")
        done.append("the unused room of the live index files (zeroed)")
        done.append("the vector index database (VACUUM)")
        if self._shared is not None and self._shared.journal is not None:
            self._shared.journal.compact()
            done.append("the vector journal (VACUUM, log truncated)")
        return done

    def copied(self) -> dict[str, int]:
        """Return the partitions held for exact search: collection name -> vectors.

        Shared by every index this process opened on the same folder (for audits,
        benchmarks and tests; empty for a Chroma server).
        """
        if self._shared is None:
            return {}
        return self._shared.copies.sizes()

    def collection_names(self) -> list[str]:
        """Return the names of every collection in the index (for audits and tests).

        Raises:
            StorageError: chromadb failed.
        """
        self._flush_all_upserts()  # waiting vectors may be all a collection will hold
        listed = self._chroma.call("listing vector collections", self.client.list_collections)
        return sorted(c.name if hasattr(c, "name") else str(c) for c in listed)
