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
both partitions. Telemetry is off and our own embedding function is always attached, so
chromadb never downloads its default model.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
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
from agentmem.locking import FolderLock
from agentmem.protocols import Embedder

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
            from agentmem.embeddings import MiniLMEmbedder

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


class VectorIndex:
    """Item vectors in chromadb, scoped by structure and user.

    Args:
        embedder: The embedder whose vectors are stored (attached to every collection).
        path: A folder for an embedded persistent chromadb; ``None`` for an in-memory one.
        url: A Chroma server URL (``http://host:port``) instead of an embedded client.
        hnsw: Extra HNSW settings (``ef_search``, ``max_neighbors``, ...).
    """

    #: Buffered metadata updates of one collection that trigger a write.
    METADATA_BATCH = 512

    def __init__(
        self,
        embedder: Embedder,
        *,
        path: str | Path | None = None,
        url: str | None = None,
        hnsw: Mapping[str, Any] | None = None,
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
        except (ConfigError, StorageError):
            raise
        except Exception as exc:
            self.close()
            raise StorageError(f"cannot open the vector index: {exc}") from exc

    def close(self) -> None:
        """Write buffered metadata and let another process open the folder; idempotent.

        chromadb keeps no file handles worth closing between calls; what matters is the
        folder lock (see :mod:`agentmem.locking`), which also ends with the process.
        """
        self.flush()
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
        """
        if len(ids) == 0:
            return
        self._forget_pending(collection_name(store, user_id), ids)  # superseded by these
        vectors = np.asarray(embeddings, dtype=np.float32)
        for history in (False, True):
            rows = [n for n, m in enumerate(metadatas) if is_current(m) != history]
            if not rows:
                continue
            chosen = [ids[n] for n in rows]
            target = self._collection(store, user_id, history=history)
            other = self._collection(store, user_id, create=False, history=not history)
            try:
                target.upsert(
                    ids=chosen,
                    embeddings=vectors[rows],
                    metadatas=[dict(metadatas[n]) or {"_": 0} for n in rows],
                )
                if other is not None:
                    stray = other.get(ids=chosen, include=[])["ids"]
                    if stray:
                        other.delete(ids=list(stray))
            except Exception as exc:
                raise StorageError(f"vector upsert failed: {exc}") from exc

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
        :class:`agentmem.items.ItemIndex` moves them on when it meets them), never
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

    def pending(self, store: str, user_id: str) -> frozenset[str]:
        """Return the ids whose metadata update is still buffered."""
        with self._lock:
            entry = self._pending_metadata.get(collection_name(store, user_id))
            return frozenset(entry[2]) if entry else frozenset()

    def flush(self) -> None:
        """Write every buffered metadata update."""
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
            for history in (False, True):
                wanted = {i: m for i, m in waiting.items() if is_current(m) != history}
                if wanted:
                    self._place(store, user_id, wanted, history=history)
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
            target.upsert(
                ids=moved,
                embeddings=np.asarray(moving["embeddings"], dtype=np.float32),
                metadatas=[wanted[i] or {"_": 0} for i in moved],
            )
            source.delete(ids=moved)
            ids = [i for i in ids if i not in set(moved)]
        if ids:
            staying = list(target.get(ids=ids, include=[])["ids"])
            if staying:
                target.update(ids=staying, metadatas=[wanted[i] or {"_": 0} for i in staying])

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
        hits: list[Hit] = []
        for partition in (False, True) if history else (False,):
            collection = self._collection(store, user_id, create=False, history=partition)
            if collection is not None:
                hits += self._search(collection, embedding, k, where)
        if history:
            best: dict[str, Hit] = {}
            for hit in hits:  # a vector caught mid-move is in both partitions
                if hit.id not in best or hit.similarity > best[hit.id].similarity:
                    best[hit.id] = hit
            hits = sorted(best.values(), key=lambda h: -h.similarity)[:k]
        return self._overlay(name, hits)

    @staticmethod
    def _search(
        collection: Any, embedding: np.ndarray, k: int, where: Mapping[str, Any] | None
    ) -> list[Hit]:
        try:
            size = collection.count()
            if size == 0:
                return []
            result = collection.query(
                query_embeddings=np.asarray(embedding, dtype=np.float32).reshape(1, -1),
                n_results=min(k, size),
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

    def get(self, store: str, user_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Return stored vectors by id, from either partition (missing ids are left out)."""
        if not ids:
            return {}
        found: dict[str, np.ndarray] = {}
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
        for collection in self._partitions(store, user_id):
            collection.delete(ids=list(ids))

    def count(self, store: str, user_id: str, *, history: bool | None = None) -> int:
        """Return how many vectors one structure holds for one user.

        Args:
            history: ``None`` counts both partitions, ``False`` the current one, ``True``
                the history one.
        """
        total = 0
        for partition in (False, True):
            if history is None or history == partition:
                collection = self._collection(store, user_id, create=False, history=partition)
                total += 0 if collection is None else int(collection.count())
        return total

    def drop(self, store: str, user_id: str) -> int:
        """Delete one structure's collections for a user; return how many vectors they held."""
        held = 0
        with self._lock:
            self._pending_metadata.pop(collection_name(store, user_id), None)
            for history in (False, True):
                name = collection_name(store, user_id, history=history)
                collection = self._collection(store, user_id, create=False, history=history)
                if collection is None:
                    continue
                held += int(collection.count())
                self.client.delete_collection(name)
                self._collections.pop(name, None)
        return held

    def collection_names(self) -> list[str]:
        """Return the names of every collection in the index (for audits and tests)."""
        return sorted(
            c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()
        )
