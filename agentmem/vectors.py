"""The vector index: chromadb, one collection per (structure, user).

Per-user collections keep every query unfiltered by user: a chromadb metadata filter that
keeps ~1% of a large collection is slow and loses recall (see benchmarks/), and dropping a
user's collections is a complete erasure. Telemetry is off and our own embedding function
is always attached, so chromadb never downloads its default model.
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


def collection_name(store: str, user_id: str) -> str:
    """Return the chromadb collection name of one structure's vectors for one user."""
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:24]
    safe_store = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in store)[:64]
    return f"{_PREFIX}-{safe_store}-{digest}"


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

    def _collection(self, store: str, user_id: str, *, create: bool = True) -> Any:
        name = collection_name(store, user_id)
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
                        metadata={"store": store},
                    )
                else:
                    found = self.client.get_collection(name, embedding_function=self._function)
            except Exception as exc:
                if not create:
                    return None
                raise StorageError(f"cannot open vector collection {name}: {exc}") from exc
            self._collections[name] = found
            return found

    def upsert(
        self,
        store: str,
        user_id: str,
        ids: Sequence[str],
        embeddings: np.ndarray,
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Insert or replace vectors with their metadata (scalars only)."""
        if len(ids) == 0:
            return
        collection = self._collection(store, user_id)
        self._forget_pending(collection_name(store, user_id), ids)  # superseded by these
        try:
            collection.upsert(
                ids=list(ids),
                embeddings=np.asarray(embeddings, dtype=np.float32),
                metadatas=[dict(m) or {"_": 0} for m in metadatas],
            )
        except Exception as exc:
            raise StorageError(f"vector upsert failed: {exc}") from exc

    def update_metadata(
        self, store: str, user_id: str, ids: Sequence[str], metadatas: Sequence[Mapping[str, Any]]
    ) -> None:
        """Replace the metadata of existing vectors.

        The update is buffered (a chromadb write costs 10-30 ms whatever its size, and
        invalidations come one small batch at a time) and written before anything reads
        that collection's metadata: a filtered query, :meth:`flush`, :meth:`close`, or
        once :attr:`METADATA_BATCH` updates wait. Unfiltered queries see the buffered
        values at once. The records database stays the source of truth: a crash that
        loses buffered updates can cost a filtered query some recall, never validity,
        since every hit is judged by its record.
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
        collection = self._collection(store, user_id)
        try:
            collection.update(ids=list(waiting), metadatas=list(waiting.values()))
        except Exception as exc:
            raise StorageError(f"vector metadata update failed: {exc}") from exc

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
    ) -> list[Hit]:
        """Return up to ``k`` nearest vectors of one structure for one user."""
        collection = self._collection(store, user_id, create=False)
        if collection is None or k <= 0:
            return []
        name = collection_name(store, user_id)
        if where:
            self._flush_metadata(name)  # the filter must see every update
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
        ids = result["ids"][0]
        distances = result["distances"][0]
        metadatas = result["metadatas"][0]
        hits = [
            Hit(item_id, 1.0 - float(distance), metadata or {})
            for item_id, distance, metadata in zip(ids, distances, metadatas, strict=True)
        ]
        return self._overlay(name, hits)

    def get(self, store: str, user_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Return stored vectors by id (missing ids are left out)."""
        collection = self._collection(store, user_id, create=False)
        if collection is None or not ids:
            return {}
        result = collection.get(ids=list(ids), include=["embeddings"])
        return {
            i: np.asarray(e, dtype=np.float32)
            for i, e in zip(result["ids"], result["embeddings"], strict=True)
        }

    def delete(self, store: str, user_id: str, ids: Sequence[str]) -> None:
        """Remove vectors by id."""
        collection = self._collection(store, user_id, create=False)
        if collection is not None and ids:
            self._forget_pending(collection_name(store, user_id), ids)
            collection.delete(ids=list(ids))

    def count(self, store: str, user_id: str) -> int:
        """Return how many vectors one structure holds for one user."""
        collection = self._collection(store, user_id, create=False)
        return 0 if collection is None else int(collection.count())

    def drop(self, store: str, user_id: str) -> int:
        """Delete one structure's collection for a user; return how many vectors it held."""
        name = collection_name(store, user_id)
        with self._lock:
            collection = self._collection(store, user_id, create=False)
            if collection is None:
                return 0
            held = int(collection.count())
            self.client.delete_collection(name)
            self._collections.pop(name, None)
            self._pending_metadata.pop(name, None)
            return held

    def collection_names(self) -> list[str]:
        """Return the names of every collection in the index (for audits and tests)."""
        return sorted(
            c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()
        )
