"""Exact search over in-process copies of small vector partitions.

An embedded index (a folder, or in memory) answers unfiltered queries of partitions up to
``VectorIndex.exact_limit`` vectors by a matrix product over a copy of their vectors (the
idea of Qdrant's ``full_scan_threshold``). It cannot miss: chromadb's HNSW loses
near-duplicate lines, recall@10 0.924 (graph passages) to 0.998 (turns) at ``ef_search``
100 for a user with 100k items, where the copy answers 1.000; and searches answered from
the copies leave the vectors written behind waiting, so ingest runs at 156 turns/s
against 104 without copies (benchmarks/README.md, 2026-12-03). No faster a query at
that size (vector part 36 ms p50 either way); the cost is memory (~1.5 KB a vector) and
the first recall of a process (12.3 s against 5.7 s). The folder lock makes
this process the only writer, so a copy is kept exact by the same calls that write
chromadb. The copies are bounded by a budget of vectors in all, least recently used first
out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from agentmem.errors import StorageError


def unit(vectors: np.ndarray) -> np.ndarray:
    """Return ``vectors`` as float32 rows of length one (zero rows are left as they are)."""
    matrix = np.array(vectors, dtype=np.float32, ndmin=2)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


class ExactCopy:
    """An in-process copy of one partition's vectors.

    Rows are unit-normalised (chromadb's cosine distance is 1 - the cosine). Appends
    write past ``n`` and removals build new arrays, so a reader that took a
    :meth:`snapshot` under the copies' lock can search it after letting go of the lock.
    """

    def __init__(
        self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, Any]]
    ) -> None:
        self.ids = list(ids)
        self.metadatas = list(metadatas)
        self.position = {item_id: n for n, item_id in enumerate(self.ids)}
        self.n = len(self.ids)
        self.matrix = unit(vectors) if self.n else np.zeros((0, 0), dtype=np.float32)

    def put(
        self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert or replace rows."""
        vectors = unit(vectors)
        if self.matrix.shape[1] != vectors.shape[1]:
            if self.n:
                raise StorageError(
                    f"vectors of length {vectors.shape[1]} in a collection of length "
                    f"{self.matrix.shape[1]}",
                    hint="one data folder holds one embedder's vectors: use another "
                    "--data-dir for another embedder",
                )
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
        """Merge new metadata into rows the copy holds."""
        for item_id, metadata in zip(ids, metadatas, strict=True):
            row = self.position.get(item_id)
            if row is not None:
                self.metadatas[row] = {**self.metadatas[row], **metadata}

    def remove(self, ids: Sequence[str]) -> None:
        """Drop rows by id (unknown ids are ignored)."""
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
        """Return ``(matrix, n, ids, metadatas)``; rows past ``n`` are unused."""
        return self.matrix, self.n, self.ids, self.metadatas


def search(
    snapshot: tuple[np.ndarray, int, list[str], list[dict[str, Any]]],
    embedding: np.ndarray,
    k: int,
) -> list[tuple[str, float, dict[str, Any]]]:
    """Return the ``k`` rows of a snapshot nearest ``embedding``: (id, cosine, metadata)."""
    matrix, n, ids, metadatas = snapshot
    if n == 0 or k <= 0:
        return []
    similarities = matrix[:n] @ unit(embedding)[0]
    k = min(k, n)
    if k < n:  # every row as near as the k-th, ties included
        kth = np.partition(similarities, n - k)[n - k]
        near = np.flatnonzero(similarities >= kth)
    else:
        near = np.arange(n)
    # Ties (a line said twice has one vector) go by id, so the order never hangs on
    # where rows sit in the copy, which moves and removals change.
    best = sorted(near.tolist(), key=lambda row: (-similarities[row], ids[row]))[:k]
    return [(ids[row], float(similarities[row]), metadatas[row]) for row in best]


class ExactCopies:
    """The copies of one chromadb system's partitions, by collection name.

    Args:
        budget: At most this many vectors in all copies (least recently used first out).
    """

    def __init__(self, budget: int) -> None:
        self.lock = threading.RLock()  # held by every change to any copy
        self.budget = budget
        self._copies: OrderedDict[str, ExactCopy] = OrderedDict()  # most recent last
        self._too_large: set[str] = set()

    def sizes(self) -> dict[str, int]:
        """Return how many vectors each copy holds, by collection name."""
        with self.lock:
            return {name: copy.n for name, copy in self._copies.items()}

    def find(self, name: str) -> ExactCopy | None:
        """Return a partition's copy (marking it recently used), or ``None``."""
        with self.lock:
            copy = self._copies.get(name)
            if copy is not None:
                self._copies.move_to_end(name)
            return copy

    def too_large(self, name: str) -> bool:
        """Return whether a partition was found too large to copy."""
        with self.lock:
            return name in self._too_large

    def load(
        self, name: str, limit: int, count: Callable[[], int], read: Callable[[], ExactCopy]
    ) -> ExactCopy | None:
        """Return a partition's copy, reading it with ``read`` if it holds at most ``limit``.

        Called under :attr:`lock` by the caller, so that no write slips between the read
        and the copy taking over: writers change copies under the same lock.
        """
        with self.lock:
            copy = self._copies.get(name)
            if copy is not None:
                return copy
            if count() > min(limit, self.budget):
                self._too_large.add(name)
                return None
            copy = self._copies[name] = read()
            self._evict(keep=name)
            return copy

    def put(
        self,
        name: str,
        limit: int,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Mirror a chromadb upsert into a partition's copy, if it has one."""
        with self.lock:
            copy = self._copies.get(name)
            if copy is None:
                return
            copy.put(ids, vectors, metadatas)
            if copy.n > limit:
                self._too_large.add(name)
                del self._copies[name]
            else:
                self._evict(keep=name)

    def edit(self, name: str, change: Callable[[ExactCopy], None]) -> None:
        """Apply ``change`` to a partition's copy, if it has one."""
        with self.lock:
            copy = self._copies.get(name)
            if copy is not None:
                change(copy)

    def forget(self, name: str) -> None:
        """Drop a partition's copy and what is known of its size."""
        with self.lock:
            self._copies.pop(name, None)
            self._too_large.discard(name)

    def _evict(self, keep: str) -> None:
        total = sum(copy.n for copy in self._copies.values())
        for name in list(self._copies):
            if total <= self.budget:
                break
            if name != keep:
                total -= self._copies.pop(name).n
