"""Bringing the vector index back in line with the records after a process was killed.

The records database (SQLite or PostgreSQL) and the vector index (chromadb and its
journal) are two stores: no transaction spans both. Each write orders them so that a kill
between the two leaves only what the next open can repair from the records, the source
of truth:

* new items: vectors first (journaled), then the records in one transaction. A kill in
  between leaves vectors no record names (an *orphan*), which searches skip and the
  resumed write either writes again (a derived id) or leaves behind;
* invalidations: the records first, then the vectors' metadata, buffered in memory and
  written in batches (:meth:`~agentmem.storage.vectors.VectorIndex.update_metadata`). A
  kill before the batch goes out leaves superseded items' vectors filed as current.

The vector index notes when a process had its folder open and never closed it
(:attr:`~agentmem.storage.vectors.VectorIndex.needs_repair`); the next process that opens
the folder with its records calls :func:`repair_vectors`, which reads every vector's
metadata and sets it from its record (moving it to the right partition), and deletes the
orphans. That reads the whole index once, only after a crash: 0.6 s at 20,000 vectors on two
cores, 1.5 s when 2,000 of them move (measured 2026-12-07, 384 dimensions); the
alternative, journaling every invalidation's intent beside the records' commit, would
cost every write a second commit to keep a rare repair small.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentmem.protocols import RecordStore
from agentmem.storage.items import vector_metadata
from agentmem.storage.vectors import VectorIndex

logger = logging.getLogger(__name__)

#: What :func:`reconcile` learns of items by id: their user and their vector's metadata.
Truth = Callable[[Sequence[str]], Mapping[str, tuple[str, Mapping[str, Any]]]]

#: The metadata keys of an item's vector (:func:`agentmem.storage.items.vector_metadata`):
#: a vector carrying them is an item's, so without an item it is an orphan.
ITEM_KEYS = frozenset(("kind", "current", "valid_from", "invalid_at"))


@dataclass(frozen=True)
class Repair:
    """What :func:`reconcile` changed.

    Attributes:
        updated: Vectors whose metadata (or partition) was set from their record.
        orphans: Vectors of items that were never stored, deleted.
    """

    updated: int = 0
    orphans: int = 0


def reconcile(vectors: VectorIndex, truth: Truth) -> Repair:
    """Set every vector's metadata from ``truth``; delete item vectors it does not know.

    Raises:
        StorageError: chromadb, its journal or ``truth`` failed (run it again).
    """
    updates: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    orphans = 0
    for partition in vectors.stored():
        known = truth(partition.ids)
        stray = [
            item_id
            for item_id, metadata in zip(partition.ids, partition.metadatas, strict=True)
            if item_id not in known and metadata.keys() >= ITEM_KEYS
        ]
        if stray:
            vectors.discard(partition.name, stray)
            orphans += len(stray)
        for item_id, metadata in zip(partition.ids, partition.metadatas, strict=True):
            if item_id not in known:
                continue
            user_id, wanted = known[item_id]
            filed_right = partition.history != bool(wanted.get("current", True))
            if not filed_right or any(metadata.get(k) != v for k, v in wanted.items()):
                updates.setdefault((partition.store, user_id), {})[item_id] = wanted
    for (store, user_id), wanted in updates.items():
        vectors.update_metadata(store, user_id, list(wanted), list(wanted.values()))
    vectors.flush()
    return Repair(sum(len(w) for w in updates.values()), orphans)


def repair_vectors(records: RecordStore, vectors: VectorIndex) -> Repair | None:
    """Bring the vectors in line with the records if a killed process left them behind.

    Call it on opening both, before anything writes. ``None`` when no repair was owed.

    Raises:
        StorageError: A store failed; the repair stays owed (the next open tries again).
    """
    if not vectors.needs_repair:
        return None

    def truth(ids: Sequence[str]) -> dict[str, tuple[str, Mapping[str, Any]]]:
        found: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for start in range(0, len(ids), 500):
            for item in records.items(ids[start : start + 500]):
                found[item.id] = (item.user_id, vector_metadata(item))
        return found

    done = reconcile(vectors, truth)
    vectors.repaired()
    if done.updated or done.orphans:
        logger.info(
            "vector index repaired after an interrupted run: %d vectors re-filed, "
            "%d orphans deleted",
            done.updated,
            done.orphans,
        )
    return done


__all__ = ["ITEM_KEYS", "Repair", "Truth", "reconcile", "repair_vectors"]
