"""One write's decisions, gathered in memory and persisted together, and slot helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from agentmem.ledger.slots import Fact, normalise
from agentmem.types import MemoryItem

#: The user's current facts by slot, (subject, attribute), as a write sees them.
Slots = dict[tuple[str, str], list[MemoryItem]]


@dataclass
class Batch:
    """Changes decided for one write, persisted together."""

    added: list[MemoryItem] = field(default_factory=list)
    provenance: dict[str, MemoryItem] = field(default_factory=dict)
    invalidations: list[tuple[list[str], str, datetime, str | None]] = field(default_factory=list)

    def add(self, item: MemoryItem) -> MemoryItem:
        """Add a new item; return it."""
        self.added.append(item)
        return item

    def invalidate(
        self, items: Sequence[MemoryItem], reason: str, at: datetime, superseded_by: str | None
    ) -> tuple[MemoryItem, ...]:
        """End items; return them as they will be."""
        self.invalidations.append(([i.id for i in items], reason, at, superseded_by))
        return tuple(replace(i, invalid_at=at, superseded_by=superseded_by) for i in items)


def fact_key(item: MemoryItem) -> tuple[object, ...]:
    """Identify a fact item by its turn, slot, value and polarity."""
    meta = item.metadata
    return (
        item.source_turn_ids[0] if item.source_turn_ids else None,
        meta.get("subject_key"),
        meta.get("attribute"),
        meta.get("value_key"),
        meta.get("polarity"),
    )


def drop(slots: Slots, ended: Sequence[MemoryItem]) -> None:
    """Take items that are no longer current out of the in-memory slots."""
    gone = {i.id for i in ended}
    for items in slots.values():
        items[:] = [i for i in items if i.id not in gone]


def named(fact: Fact, slots: Slots) -> Fact:
    """Name a relative the dialogue has named: "my daughter" is Lily once "my daughter
    Lily" was said (a current ``relative`` fact links the two)."""
    if "'s " not in fact.subject:
        return fact
    for (_subject, attribute), items in slots.items():
        if attribute != "relative":
            continue
        for item in items:
            relation, _, name = str(item.metadata.get("value") or "").rpartition(" ")
            owner = str(item.metadata.get("subject") or "")
            named = relation and name[:1].isupper()
            if named and normalise(f"{owner}'s {relation}") == fact.subject_key:
                return replace(fact, subject=name)
    return fact


def when(item: MemoryItem) -> datetime:
    """Return when an item started to hold (or was stored)."""
    return item.valid_from or item.created_at or datetime.min


__all__ = ["Batch", "Slots", "drop", "fact_key", "named", "when"]
