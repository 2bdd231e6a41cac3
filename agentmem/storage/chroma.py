"""The boundary with chromadb: collections per (structure, user), typed errors.

:class:`Partitions` keeps each structure's vectors for a user in two collections (see
:mod:`agentmem.storage.vectors`). Every chromadb call goes through :func:`guarded`, so
a chromadb, SQLite or HTTP failure reaches the caller as a
:class:`~agentmem.errors.StorageError` that says what failed, how to fix it and whether
a retry can help, never as a chromadb exception.

Telemetry is off and our own embedding function is always attached, so chromadb never
downloads its default model.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import chromadb
import numpy as np
from chromadb import errors as chromadb_errors
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings
from chromadb.utils.embedding_functions import register_embedding_function

from agentmem.errors import AgentMemError, ConfigError, DiskFullError, ReadOnlyError, StorageError
from agentmem.protocols import Embedder

T = TypeVar("T")
logger = logging.getLogger(__name__)

#: Words of an error that say the same call may succeed later (a busy database, a server
#: restarting, a dropped connection).
_TRANSIENT = ("locked", "busy", "timed out", "timeout", "connect", "unavailable", "refused")
_PREFIX = "am"
_HISTORY_PREFIX = "ah"


@dataclass(frozen=True)
class Hit:
    """A vector search result: an item id, its cosine similarity and stored metadata."""

    id: str
    similarity: float
    metadata: Mapping[str, Any]


#: A collection handle's stand-in for "there is no such collection" (see
#: :meth:`Partitions.collection`).
_MISSING: Any = object()


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


def by_partition(metadatas: Sequence[Mapping[str, Any]]) -> list[tuple[bool, list[int]]]:
    """Return ``(history, row numbers)`` for each partition the metadata sends rows to."""
    groups: dict[bool, list[int]] = {}
    for n, metadata in enumerate(metadatas):
        groups.setdefault(not is_current(metadata), []).append(n)
    return sorted(groups.items())


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


def storage_error(action: str, exc: BaseException, *, where: str) -> StorageError:
    """Return the typed error for a failed vector-index or journal call.

    Args:
        action: What was being done ("vector query", "journal write", ...).
        exc: The provider's exception.
        where: The folder or server URL of the index, for the message and the hint.
    """
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    server = where.startswith(("http://", "https://"))
    if is_disk_full(exc):
        # SQLite rolls a full write back and chromadb's own files are written whole or not
        # at all, so nothing is damaged: after freeing space the same call succeeds.
        return DiskFullError(
            f"{action} failed: the disk is full ({text})",
            hint=f"free space on the disk that holds {where}, then retry; what was "
            "stored before is intact",
        )
    if not server and (
        isinstance(exc, PermissionError) or "readonly" in lowered or "read-only" in lowered
    ):
        return ReadOnlyError(f"{action} failed: {text}", hint=f"make {where} writable by this user")
    transient = isinstance(exc, ConnectionError | TimeoutError) or any(
        word in lowered for word in _TRANSIENT
    )
    if transient and server:
        hint = f"check that the Chroma server at {where} is running and reachable, then retry"
    elif transient:
        hint = "another thread or process is using the index; retry in a moment"
    elif isinstance(exc, sqlite3.DatabaseError) or "no such table" in lowered:
        hint = (
            f"the vector index in {where} is damaged or was changed by another program: "
            "restore the folder from a backup, or start a new --data-dir"
        )
    elif server:
        hint = f"the Chroma server at {where} refused the call; see its log"
    else:
        hint = f"the vector index in {where} failed; see the cause above"
    return StorageError(f"{action} failed: {text}", hint=hint, retryable=transient)


def is_disk_full(exc: BaseException) -> bool:
    """Return whether ``exc`` says the disk (or a size limit) left no room for a write.

    SQLite says "database or disk is full" (result code 13, SQLITE_FULL), through Python's
    sqlite3 and through chromadb's Rust bindings alike; a file write says ENOSPC.
    """
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == 13:
        return True
    lowered = str(exc).lower()
    return "disk is full" in lowered or "no space left on device" in lowered


def guarded(action: str, where: str, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Return ``call(*args, **kwargs)``, raising :class:`StorageError` (with a hint) if it fails.

    Raises:
        StorageError: The call failed; ``retryable`` says whether trying again may help.
    """
    try:
        return call(*args, **kwargs)
    except AgentMemError:
        raise
    except Exception as exc:
        raise storage_error(action, exc, where=where) from exc


def open_client(path: str | Path | None, url: str | None) -> Any:
    """Return a chromadb client: a server's, a folder's, or an in-memory one.

    Raises:
        ConfigError: ``url`` is not a ``http(s)://host:port`` URL.
        StorageError: chromadb could not open the folder or reach the server.
    """
    settings = Settings(anonymized_telemetry=False, allow_reset=True)
    if url:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        if not parsed.hostname:
            raise ConfigError(f"bad Chroma server URL {url!r}", hint="use http://host:port")
        return guarded(
            "opening the vector index",
            url,
            lambda: chromadb.HttpClient(
                host=str(parsed.hostname),
                port=parsed.port or 8000,
                ssl=parsed.scheme == "https",
                settings=settings,
            ),
        )
    if path is not None:
        return guarded(
            "opening the vector index",
            str(path),
            lambda: chromadb.PersistentClient(path=str(path), settings=settings),
        )
    return guarded(
        "opening the vector index", "memory", lambda: chromadb.EphemeralClient(settings=settings)
    )


@dataclass(frozen=True)
class Stored:
    """One partition's vectors as chromadb holds them (see ``VectorIndex.stored``).

    Attributes:
        name: The collection's name.
        store: The structure it was made for (``graph-fact`` for the graph's facts).
        history: Whether it is a history partition (invalidated items).
        ids: The item ids.
        metadatas: Each one's metadata.
        embeddings: The vectors, when asked for.
    """

    name: str
    store: str
    history: bool
    ids: list[str]
    metadatas: list[dict[str, Any]]
    embeddings: np.ndarray | None = None


@dataclass
class Placed:
    """What :meth:`Partitions.place` changed, for the exact-search copies to follow."""

    moved: list[str]
    vectors: np.ndarray
    moved_metadata: list[dict[str, Any]]
    updated: list[str]
    updated_metadata: list[dict[str, Any]]


class Partitions:
    """The current and history collections of every (structure, user) on one client.

    Args:
        client: A chromadb client (see :func:`open_client`).
        function: The embedding function attached to every collection.
        hnsw: HNSW settings of the collections created from now.
        where: The folder or server URL, for errors.
        handles: Collection handles by name, shared by the indexes of one system.
    """

    def __init__(
        self,
        client: Any,
        function: AgentMemEmbeddingFunction,
        hnsw: Mapping[str, Any],
        where: str,
        handles: dict[str, Any],
    ) -> None:
        self.client = client
        self.closed = False
        #: A call failed for want of disk (see :meth:`call`).
        self.failed = False
        self._function = function
        self._hnsw = dict(hnsw)
        self._where = where
        self._handles = handles

    def check_room(self, size: int) -> None:
        """Refuse a write the folder's disk has no room for, before chromadb tries it.

        chromadb 1.5's Rust side can wedge when a write meets a full disk: the next call,
        even after space was freed, waited forever (tests/test_disk_full.py, 1 run in 2).
        So an embedded index checks first that the disk holds :data:`ROOM_FACTOR` times
        the vectors' size (its write log, the index files, SQLite's journal) plus
        :data:`ROOM_MARGIN`; the vectors stay journaled, and the write is retried later.

        Raises:
            DiskFullError: The room is not there.
        """
        if self._where.startswith(("http://", "https://")) or self._where == "memory":
            return
        try:
            free = shutil.disk_usage(self._where).free
        except OSError:
            return  # the write itself will say what is wrong
        needed = ROOM_FACTOR * size + ROOM_MARGIN
        if free < needed:
            self.failed = True
            raise DiskFullError(
                f"vector write refused: {free} bytes free where it needs {needed}",
                hint=f"free space on the disk that holds {self._where}, then retry; the "
                "vectors wait in the journal and nothing stored is lost",
            )

    def call(self, action: str, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a chromadb call, typed errors out; refuse once the index is closed.

        A call that fails for want of disk marks the system as failed: its Rust side may
        hold a lock it never releases, so closing the index stops the system.
        """
        if self.closed:
            raise StorageError(
                f"{action} on a closed vector index",
                hint="open a new VectorIndex; a closed one holds no lock on its folder",
            )
        try:
            return guarded(action, self._where, call, *args, **kwargs)
        except DiskFullError:
            self.failed = True
            raise

    def collection(
        self, store: str, user_id: str, *, create: bool = True, history: bool = False
    ) -> Any:
        """Return a partition's collection; ``None`` if it does not exist and ``create`` is off."""
        name = collection_name(store, user_id, history=history)
        found = self._handles.get(name)
        if found is _MISSING and not create:
            return None
        if found is not None and found is not _MISSING:
            return found
        if create:
            found = self.call(
                f"opening vector collection {name}",
                self.client.get_or_create_collection,
                name,
                embedding_function=self._function,
                configuration={"hnsw": dict(self._hnsw)},
                metadata={"store": store, "partition": "history" if history else "current"},
            )
        else:
            found = self.call(f"opening vector collection {name}", self._existing, name)
            if found is None:
                self._remember_missing(name)
                return None
        self._handles[name] = found
        return found

    def _remember_missing(self, name: str) -> None:
        """Note that a collection does not exist, so the next search does not ask again.

        Asking chromadb costs about 4 ms, and a search as of a moment looks into the
        history partition, which most users never get. Only an embedded index remembers
        it: its handles are shared by every index of the process on the folder, and only
        :meth:`collection` creates one (a Chroma server may be written by others).
        """
        if not self._where.startswith(("http://", "https://")):
            self._handles[name] = _MISSING

    def named(self, name: str) -> Any:
        """Return a collection by its name; ``None`` if there is none."""
        found = self._handles.get(name)
        if found is _MISSING:
            return None
        if found is None:
            found = self.call(f"opening vector collection {name}", self._existing, name)
            if found is not None:
                self._handles[name] = found
        return found

    def stored(self, name: str, *, embeddings: bool = False) -> Stored | None:
        """Return a collection's vectors as chromadb holds them; ``None`` if it is not ours."""
        collection = self.named(name)
        about = dict(collection.metadata or {}) if collection is not None else {}
        if "store" not in about:
            return None
        include = ["metadatas", "embeddings"] if embeddings else ["metadatas"]
        found = self.call("vector read", collection.get, include=include)
        return Stored(
            name=name,
            store=str(about["store"]),
            history=about.get("partition") == "history",
            ids=list(found["ids"]),
            metadatas=[dict(m or {}) for m in found["metadatas"]],
            embeddings=np.asarray(found["embeddings"], dtype=np.float32) if embeddings else None,
        )

    def _existing(self, name: str) -> Any:
        try:
            return self.client.get_collection(name, embedding_function=self._function)
        except chromadb_errors.NotFoundError:
            return None
        except ValueError as exc:  # older servers say so with a ValueError
            if "does not exist" in str(exc):
                return None
            raise

    def existing_named(self, name: str) -> Any:
        """Return the collection called ``name``, or ``None`` (no handle is kept)."""
        found = self._handles.get(name)
        if found is _MISSING:
            return None
        return found or self._existing(name)

    def existing(self, store: str, user_id: str) -> list[tuple[bool, Any]]:
        """Return ``(history, collection)`` of the partitions that exist: current first."""
        found = [
            (h, self.collection(store, user_id, create=False, history=h)) for h in (False, True)
        ]
        return [(h, c) for h, c in found if c is not None]

    def forget(self, name: str) -> None:
        """Drop a collection's handle (after deleting the collection)."""
        self._handles.pop(name, None)

    def write(
        self, store: str, user_id: str, ids: list[str], vectors: np.ndarray, stored: list[dict]
    ) -> None:
        """Write vectors to chromadb, each to its partition, out of the other one.

        Raises:
            DiskFullError: The folder's disk lacks room for the write (checked first).
            StorageError: chromadb failed.
        """
        self.check_room(vectors.nbytes)
        for history, rows in by_partition(stored):
            chosen = [ids[n] for n in rows]
            target = self.collection(store, user_id, history=history)
            other = self.collection(store, user_id, create=False, history=not history)
            self.call(
                "vector upsert",
                target.upsert,
                ids=chosen,
                embeddings=vectors[rows],
                metadatas=[stored[n] for n in rows],
            )
            if other is not None:
                stray = list(self.call("vector lookup", other.get, ids=chosen, include=[])["ids"])
                if stray:
                    self.call("vector delete", other.delete, ids=stray)

    def place(
        self, store: str, user_id: str, wanted: dict[str, dict[str, Any]], *, history: bool
    ) -> Placed:
        """Give vectors new metadata in one partition, moving them there if need be.

        A move writes the target before deleting the source: a crash in between leaves
        the vector in both partitions, which search tolerates, never in neither.
        """
        target = self.collection(store, user_id, history=history)
        source = self.collection(store, user_id, create=False, history=not history)
        ids = list(wanted)
        placed = Placed([], np.zeros((0, 0), dtype=np.float32), [], [], [])
        if source is not None:
            moving = self.call("vector read", source.get, ids=ids, include=["embeddings"])
            placed.moved = list(moving["ids"])
        if placed.moved:
            placed.vectors = np.asarray(moving["embeddings"], dtype=np.float32)
            placed.moved_metadata = [wanted[i] or {"_": 0} for i in placed.moved]
            self.call(
                "vector upsert",
                target.upsert,
                ids=placed.moved,
                embeddings=placed.vectors,
                metadatas=placed.moved_metadata,
            )
            self.call("vector delete", source.delete, ids=placed.moved)
            ids = [i for i in ids if i not in set(placed.moved)]
        if ids:
            placed.updated = list(
                self.call("vector lookup", target.get, ids=ids, include=[])["ids"]
            )
            if placed.updated:
                placed.updated_metadata = [wanted[i] or {"_": 0} for i in placed.updated]
                self.call(
                    "vector metadata update",
                    target.update,
                    ids=placed.updated,
                    metadatas=placed.updated_metadata,
                )
        return placed

    def search(
        self, collection: Any, embedding: np.ndarray, k: int, where: Mapping[str, Any] | None
    ) -> list[Hit]:
        """Return chromadb's ``k`` nearest vectors in a collection (HNSW)."""
        # chromadb returns fewer than n_results when the collection holds fewer.
        result = self.call(
            "vector query",
            collection.query,
            query_embeddings=np.asarray(embedding, dtype=np.float32).reshape(1, -1),
            n_results=k,
            where=dict(where) if where else None,
            include=["metadatas", "distances"],
        )
        return [
            Hit(item_id, 1.0 - float(distance), metadata or {})
            for item_id, distance, metadata in zip(
                result["ids"][0], result["distances"][0], result["metadatas"][0], strict=True
            )
        ]


#: A vector write needs this many times its vectors' size free on the disk, plus the
#: margin (see :meth:`Partitions.check_room`).
ROOM_FACTOR, ROOM_MARGIN = 8, 1 << 20

#: A chromadb segment folder's name: the segment's UUID.
_SEGMENT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def compact_folder(path: Path, *, vacuum: bool = True, scrub: bool = True) -> int:
    """Remove the index files of dropped collections and rebuild chromadb's SQLite file.

    chromadb 1.5 deletes a dropped collection's rows but leaves its HNSW segment folder
    (named by the segment's UUID) with every vector in it; a folder no segment row names
    any more is such a leftover. Its SQLite file keeps deleted rows (the vectors of the
    write log among them) in free pages until ``VACUUM`` rebuilds it. With ``scrub``, the
    live index files' unused capacity is zeroed (:func:`scrub_segment`). Return how many
    folders were removed.

    Raises:
        StorageError: The SQLite file could not be read or rebuilt.
    """
    database = path / "chroma.sqlite3"
    if not database.is_file():
        return 0

    def rewrite() -> int:
        connection = sqlite3.connect(database, timeout=30, isolation_level=None)
        try:
            live = {row[0] for row in connection.execute("SELECT id FROM segments")}
            removed = 0
            for folder in path.iterdir():
                if not (folder.is_dir() and _SEGMENT.match(folder.name)):
                    continue
                if folder.name in live:
                    if scrub:
                        scrub_segment(folder)
                else:
                    shutil.rmtree(folder)
                    removed += 1
            if vacuum:
                connection.execute("VACUUM")
            return removed
        finally:
            connection.close()

    return guarded("compacting the vector index", str(path), rewrite)


#: The header hnswlib (chromadb's fork, persistence version 1) writes to ``header.bin``:
#: version, offsetLevel0, max_elements, cur_element_count, size_data_per_element,
#: label_offset, offsetData, maxlevel, enterpoint_node, maxM, maxM0, M, mult,
#: ef_construction; packed, little-endian.
_HNSW_HEADER = struct.Struct("<iQQQQQQiIQQQdQ")


def scrub_segment(folder: Path) -> bool:
    """Zero the unused capacity of one HNSW segment's files; return whether any was dirty.

    hnswlib allocates room for ``max_elements`` with ``malloc`` and writes all of it when
    it creates the files (``data_level0.bin``, ``length.bin``), so the room past the
    elements it holds is whatever the process's heap held there: freed strings and
    buffers, another user's words among them (seen in tests/test_erasure.py; the same
    files hold SQL text on any data folder). Elements are zeroed as they are added, and
    only written elements are rewritten later, so zeroing that room once leaves nothing
    but vectors the records name. A header this code does not know is left alone.
    """
    try:
        header = (folder / "header.bin").read_bytes()
    except FileNotFoundError:
        return False  # chromadb has not written this segment's index yet
    if len(header) != _HNSW_HEADER.size:
        return False
    fields = _HNSW_HEADER.unpack(header)
    version, count, size = fields[0], fields[3], fields[4]
    if version != 1 or size <= 0:
        logger.warning("not scrubbing %s: an index format this code does not know", folder)
        return False
    dirty = False
    for name, used in (("data_level0.bin", count * size), ("length.bin", count * 4)):
        file = folder / name
        try:
            with file.open("r+b") as handle:
                handle.seek(used)
                unused = handle.read()
                if unused.count(0) != len(unused):
                    handle.seek(used)
                    handle.write(bytes(len(unused)))
                    handle.flush()
                    os.fsync(handle.fileno())
                    dirty = True
        except FileNotFoundError:
            continue
    return dirty
