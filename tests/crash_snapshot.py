"""What a replay left on disk, comparable between runs: records, validity and vectors.

The crash tests kill replays and compare what the resumed runs built with what an
uninterrupted run built. Row ids differ between runs (turns are numbered as stored, most
items get fresh ids), so everything is keyed by identity: an item by its user, structure,
kind, text and source turns (by their dataset ids); a vector by its item's identity.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agentmem.storage.records import Records

#: Every structure of ``--stores all``, and the fact ledger.
STORES = ("turns", "facts", "memtree", "summary", "memo", "graph")

Identity = tuple[object, ...]


def snapshot(folder: Path) -> dict[str, Any]:
    """Return what a configuration's data folder holds, keyed by identity, not row ids.

    Compared: every turn; every item (MemTree inner nodes aside: their clustering depends
    on the batches a resumed run inserts turns in, by design) with its text, sources and
    validity (current, invalid from when, superseded by what); and every vector, with
    the partition it is filed in, its metadata and its values. A vector whose id names no
    item is counted as an orphan of its collection.
    """
    records = Records(folder / "agentmem.sqlite")
    try:
        external: dict[int, str] = {}
        turns: dict[str, list[tuple[object, ...]]] = {}
        users = records.users()
        for user in users:
            for turn in records.turns(user):
                external[turn.id] = turn.external_id or f"{user}#{turn.text}"
                turns.setdefault(user, []).append((turn.external_id, turn.speaker, turn.text))
        every = [
            item
            for user in users
            for store in STORES
            for item in records.store_items(store, user, current_only=False)
        ]
        identity: dict[str, Identity] = {
            item.id: (
                item.user_id,
                item.store,
                item.kind,
                item.text,
                tuple(sorted(external[t] for t in item.source_turn_ids)),
            )
            for item in every
        }
        inner = {i.id for i in every if i.store == "memtree" and not i.metadata.get("leaf")}
        items: Counter[tuple[object, ...]] = Counter()
        current: Counter[tuple[object, ...]] = Counter()
        for item in every:
            if item.id in inner:
                continue
            replaced_by = None
            if item.superseded_by is not None:
                replaced_by = identity.get(item.superseded_by, ("no such item",))
            items[(*identity[item.id], item.current, item.invalid_at, replaced_by)] += 1
            if item.current:
                # At most one current summary version; one topic or entity per name.
                one = {
                    "summary": (item.user_id, item.store, item.kind),
                    "topic": identity[item.id][:4],
                    "entity": identity[item.id][:4],
                }.get(item.kind)
                if one is not None:
                    current[one] += 1
        return {
            "turns": turns,
            "items": items,
            "vectors": vectors_of(folder / "chroma", identity, inner, set(identity)),
            "aggregates": current,
            "pending": len(records.pending_turns()),
            "work": sum(len(records.pending_work(s)) for s in STORES),
        }
    finally:
        records.close()


def vectors_of(
    folder: Path, identity: dict[str, Identity], inner: set[str], known: set[str]
) -> Counter[tuple[object, ...]]:
    """Return every vector of a chromadb folder: (item, collection, partition, metadata, values).

    Read from chromadb itself, after opening the folder with agentmem's index (which writes
    what a killed process journaled, as the next run would).
    """
    from agentmem.models.embeddings import MiniLMEmbedder
    from agentmem.storage.vectors import VectorIndex

    index = VectorIndex(MiniLMEmbedder(), path=folder)  # MiniLM is never loaded
    found: Counter[tuple[object, ...]] = Counter()
    try:
        for listed in index.client.list_collections():
            name = listed.name if hasattr(listed, "name") else str(listed)
            collection = index.client.get_collection(name)
            store = (collection.metadata or {}).get("store", name)
            partition = (collection.metadata or {}).get("partition", "?")
            stored = collection.get(include=["metadatas", "embeddings"])
            rows = zip(stored["ids"], stored["metadatas"], stored["embeddings"], strict=True)
            for item_id, metadata, vector in rows:
                if item_id in inner:
                    continue
                who = identity[item_id] if item_id in known else ("orphan",)
                found[(who, store, partition, _metadata(metadata), _digest(vector))] += 1
    finally:
        index.close()
    return found


def _metadata(metadata: dict[str, Any] | None) -> tuple[tuple[str, object], ...]:
    return tuple(sorted((metadata or {}).items()))


def _digest(vector: Any) -> str:
    """Return a short fingerprint of a vector's values (to 4 decimals)."""
    rounded = np.round(np.asarray(vector, dtype=np.float64), 4) + 0.0  # no -0.0
    return hashlib.blake2b(rounded.tobytes(), digest_size=6).hexdigest()


def differences(got: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Return what differs between two snapshots, one line each (empty: the same)."""
    lines: list[str] = []
    if got["turns"] != expected["turns"]:
        lines.append("turns differ")
    for part in ("items", "vectors"):
        have, want = got[part], expected[part]
        lines += [f"{part}: extra {key}" for key in sorted(have - want, key=repr)]
        lines += [f"{part}: missing {key}" for key in sorted(want - have, key=repr)]
    for part in ("pending", "work"):
        if got[part] != expected[part]:
            lines.append(f"{part}: {got[part]} against {expected[part]}")
    twice = [key for key, count in got["aggregates"].items() if count > 1]
    lines += [f"duplicated current item: {key}" for key in twice]
    return lines


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """Assert two snapshots are equal, showing what differs (the first 12 lines)."""
    assert expected["aggregates"], "the uninterrupted run consolidated nothing"
    found = differences(got, expected)
    shown = "\n".join(line[:400] for line in found[:12])
    assert not found, f"{len(found)} differences from the uninterrupted run:\n{shown}"
