"""The graph's items in the records database and their vectors in two collections.

:class:`agentmem.storage.items.ItemIndex` keeps a structure's items in one vector collection and
tells kinds and validity apart with a chromadb metadata filter. Such a filter makes
chromadb scan the matching rows (about 50 ms a query at 20,000 items on two cores, against
3 ms unfiltered), and the graph asks for facts, entities and passages on every recall. So
the graph keeps passages in one collection (``<store>-passage``) and the short texts,
facts and entity names, in another (``<store>-fact``), queries each once without a filter,
and sorts kinds and validity out of the metadata chromadb returns (invalidated items'
vectors live in a separate partition, see :mod:`agentmem.storage.vectors`). Only ``as_of``
queries, and the rare query whose nearest hits are mostly stale, use a filtered search. Two
collections rather than three keep a write at two vector upserts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from agentmem.protocols import StoreContext
from agentmem.storage.items import vector_metadata
from agentmem.storage.records import ItemUpdate
from agentmem.storage.vectors import Hit, timestamp
from agentmem.types import MemoryItem

#: The kinds of items the graph keeps, and the collection each lives in.
KINDS = {"passage": "passage", "fact": "fact", "entity": "fact"}


class KindIndex:
    """The graph store's items and their vectors, one collection per kind and user.

    Args:
        context: The core services.
        store: The structure's name (on every item; collections are ``<store>-<kind>``).
    """

    def __init__(self, context: StoreContext, store: str) -> None:
        self.context = context
        self.store = store

    def collection(self, kind: str) -> str:
        """Return the vector collection's structure name for ``kind``."""
        return f"{self.store}-{KINDS[kind]}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts with the context's embedder."""
        return self.context.embedder.embed(list(texts))

    def add(
        self,
        items: Sequence[MemoryItem],
        embeddings: np.ndarray,
        *,
        reason: str,
        also: Sequence[ItemUpdate] = (),
    ) -> tuple[list[MemoryItem], list[MemoryItem]]:
        """Persist items of one user and changes to known ones; return both as stored.

        Vectors first, then the records in one transaction (the new items and ``also``):
        a kill in between leaves vectors no record names (repaired on the next open, see
        :mod:`agentmem.storage.repair`), never a record without its vector or half a write.
        """
        for collection in dict.fromkeys(KINDS.values()):
            rows = [n for n, item in enumerate(items) if KINDS[item.kind] == collection]
            if rows:
                self.context.vectors.upsert(
                    self.collection(items[rows[0]].kind),
                    items[rows[0]].user_id,
                    [items[n].id for n in rows],
                    embeddings[rows],
                    [vector_metadata(items[n]) for n in rows],
                )
        records = self.context.records
        with records.transaction():
            stored = records.add_items(items, reason=reason)
            updated = records.update_items(also)
        return stored, updated

    def nearest(
        self,
        user_id: str,
        embedding: np.ndarray,
        wanted: Mapping[str, int],
        view: datetime | str | None = None,
    ) -> dict[str, list[Hit]]:
        """Return, for each kind in ``wanted``, its nearest items that hold in ``view``.

        Kinds that share a collection share one query, so a kind can come back with fewer
        than it asked for when the other crowds it out (the nearest items win).

        Args:
            user_id: Whose items.
            embedding: The query vector.
            wanted: How many items of each kind (``"passage"``, ``"fact"``, ``"entity"``).
            view: ``None`` for current items, ``"history"`` for all, or a dialogue time.
        """
        found: dict[str, list[Hit]] = {kind: [] for kind in wanted}
        for collection in dict.fromkeys(KINDS[kind] for kind in wanted):
            kinds = [kind for kind in wanted if KINDS[kind] == collection]
            count = sum(wanted[kind] for kind in kinds)
            for hit in self._query(user_id, embedding, kinds[0], count, view):
                kind = hit.metadata.get("kind", "")
                if kind in kinds and len(found[kind]) < wanted[kind]:
                    found[kind].append(hit)
        return found

    def _query(
        self, user_id: str, embedding: np.ndarray, kind: str, k: int, view: datetime | str | None
    ) -> list[Hit]:
        """Return about ``2k`` nearest items of a collection valid in ``view``."""
        vectors, name = self.context.vectors, self.collection(kind)
        wanted = 2 * k + 8
        if isinstance(view, datetime):
            moment = timestamp(view)
            where = {"$and": [{"valid_from": {"$lte": moment}}, {"invalid_at": {"$gt": moment}}]}
            return vectors.query(name, user_id, embedding, wanted, where=where, history=True)
        if view is not None:
            return vectors.query(name, user_id, embedding, wanted, history=True)
        hits = vectors.query(name, user_id, embedding, wanted)
        current = [h for h in hits if h.metadata.get("current")]
        if len(hits) == wanted and len(current) < len(hits) // 2:
            return vectors.query(name, user_id, embedding, wanted, where={"current": True})
        return current

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
    ) -> list[MemoryItem]:
        """Mark items invalid (records, then vector metadata); return those that changed."""
        changed = self.context.records.invalidate(
            item_ids, reason, at=at, superseded_by=superseded_by
        )
        self._move(changed)
        return changed

    def _move(self, changed: Sequence[MemoryItem]) -> None:
        """Bring the changed items' vector metadata in line with their records, once
        those are committed (see :meth:`agentmem.storage.items.ItemIndex.follow`)."""
        groups: dict[tuple[str, str], list[MemoryItem]] = {}
        for item in changed:
            groups.setdefault((item.user_id, self.collection(item.kind)), []).append(item)

        def update() -> None:
            for (user_id, collection), group in groups.items():
                self.context.vectors.update_metadata(
                    collection,
                    user_id,
                    [i.id for i in group],
                    [vector_metadata(i) for i in group],
                )

        if groups:
            self.context.records.after_commit(update)

    def delete(
        self, item_ids: Sequence[str], reason: str, *, at: datetime | None = None
    ) -> list[MemoryItem]:
        """Invalidate items as deleted (records, then vector metadata); return the changed."""
        changed = self.context.records.invalidate(item_ids, reason, at=at, action="DELETE")
        self._move(changed)
        return changed

    def update(
        self, item: MemoryItem, text: str, *, reason: str, at: datetime | None = None
    ) -> MemoryItem:
        """Change an item's text (recorded in its history) and re-embed it under its kind.

        The vector first, then the record (see :meth:`agentmem.storage.items.ItemIndex.update`).
        """
        body = text.removeprefix(f"{item.metadata.get('speaker')}: ")
        self.context.vectors.upsert(
            self.collection(item.kind),
            item.user_id,
            [item.id],
            self.embed([body if item.kind == "passage" else text]),
            [vector_metadata(item)],
        )
        return self.context.records.update_item(item.id, text_value=text, reason=reason, at=at)

    def forget(self, user_id: str) -> int:
        """Drop the user's vectors of every kind; return how many there were."""
        names = dict.fromkeys(self.collection(kind) for kind in KINDS)
        return sum(self.context.vectors.drop(name, user_id) for name in names)


__all__ = ["KINDS", "KindIndex"]
