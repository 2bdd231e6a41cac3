"""What the ledger decides for each fact, a write's decisions gathered to persist together, and
slot helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from agentmem.ledger.slots import ENDED, Fact, normalise
from agentmem.protocols import RecordStore
from agentmem.types import Change, ChangeKind, MemoryItem

Operation = Literal["ADD", "APPEND", "REPLACE", "DELETE", "NOOP", "REJECT"]


@dataclass(frozen=True)
class Decision:
    """What resolving one extracted fact did.

    Attributes:
        operation: ADD (new slot), APPEND (another value of a multi-valued slot), REPLACE
            (superseded the old value), DELETE (ended a value), NOOP (already known),
            REJECT (an inferred fact contradicting a stated one, kept out of current memory).
        fact: The extracted fact.
        item: The fact's item (new, or the existing one for NOOP).
        superseded: Items this decision invalidated.
        reason: Why, in words.
    """

    operation: Operation
    fact: Fact
    item: MemoryItem | None
    superseded: tuple[MemoryItem, ...]
    reason: str

    @property
    def changes(self) -> tuple[Change, ...]:
        """Return the changes to memory this decision made (none when it touched no item).

        A replacement is two changes, so each says what happened to its own item: the new
        fact is an ADD whose ``related_ids`` are the facts it replaced, and each replaced
        fact a SUPERSEDE of its own, both saying the change as "residence: Lisbon → Berlin
        (turn 3)". An ending is a DELETE of each fact it ended ("pet: Mochi → ended (turn
        9)"); the ending's own record (kept so that items naming the value can be found)
        is no change anyone made to a fact, and is not reported. APPEND is an ADD (a new
        item), REJECT a NOOP (the fact stays out of current memory).
        """
        if self.operation == "REPLACE" and self.item is not None:
            said = change_phrase(self.superseded, self.fact.value, self.fact.turn_id)
            ended = tuple(i.id for i in self.superseded)
            return (
                Change("ADD", self.item, f"{said}: {self.reason}", ended),
                *(Change("SUPERSEDE", old, said) for old in self.superseded),
            )
        if self.operation == "DELETE":
            return tuple(
                Change("DELETE", old, change_phrase([old], None, self.fact.turn_id))
                for old in self.superseded
            )
        if self.item is None:
            return ()
        reason = f"{self.fact.render()}: {self.reason}"
        return (Change(_CHANGE_KINDS[self.operation], self.item, reason),)


def change_phrase(olds: Sequence[MemoryItem], new_value: str | None, turn_id: int) -> str:
    """Say a change of fact values: "residence: Lisbon → Berlin (turn 3)".

    The aspect is the facts' attribute, with whose it is when that is not the speaker
    ("Claire's residence"); an ending reads "→ ended".
    """
    values = ", ".join(dict.fromkeys(str(o.metadata.get("value") or o.text) for o in olds))
    aspect = aspect_of(olds[0].metadata) if olds else ""
    head = f"{aspect}: " if aspect else ""
    return f"{head}{values} → {new_value or 'ended'} (turn {turn_id})"


def aspect_of(meta: Mapping[str, object]) -> str:
    """Return what a fact's value is of, in words ("residence", "Claire's residence")."""
    attribute = str(meta.get("attribute") or "")
    if attribute in ("", ENDED):
        return ""
    subject, speaker = str(meta.get("subject") or ""), str(meta.get("speaker") or "")
    if subject and normalise(subject) != normalise(speaker):
        return f"{subject}'s {attribute}"
    return attribute


_CHANGE_KINDS: dict[Operation, ChangeKind] = {
    "ADD": "ADD",
    "APPEND": "ADD",
    "REPLACE": "ADD",
    "DELETE": "DELETE",
    "NOOP": "NOOP",
    "REJECT": "NOOP",
}


def fact_metadata(fact: Fact) -> dict[str, object]:
    """Return the JSON metadata a fact item carries."""
    return {
        "subject": fact.subject,
        "subject_key": fact.subject_key,
        "attribute": fact.attribute,
        "value": fact.value,
        "value_key": fact.value_key,
        "speaker": fact.speaker,
        "stated": fact.stated,
        "polarity": fact.polarity,
        "single_valued": fact.single_valued,
    }


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


def recorded_values(
    records: RecordStore,
    user_id: str,
    turn_ids: Sequence[int],
    store: str,
    *,
    superseded_only: bool = False,
) -> set[tuple[int, str, str]]:
    """Return (turn id, subject key, value key) for each value that the facts of ``store``
    drawn from ``turn_ids`` record from each of their turns (only superseded facts' if
    ``superseded_only``)."""
    found: set[tuple[int, str, str]] = set()
    for item in records.items_from_turns(user_id, turn_ids, store=store):
        if superseded_only and item.current:
            continue
        subject, value = str(item.metadata.get("subject_key")), str(item.metadata.get("value_key"))
        found.update((turn_id, subject, value) for turn_id in item.source_turn_ids)
    return found


def recorded_before(records: RecordStore, item: MemoryItem) -> bool:
    """Whether ``item`` (an inferred fact about to be recorded) is recorded already.

    Either the item itself is stored, or a fact of its structure (current or not) already
    holds its value for its subject from one of its source turns: "editor", said in a
    turn the ledger folded into the fact "Felix works as editor" stated earlier. A write
    resumed after a crash, which sees that fact superseded, would otherwise record the
    value again as an inferred fact of that turn (tests/test_crash_safety.py).
    """
    if records.existing_ids([item.id]):
        return True
    recorded = recorded_values(records, item.user_id, item.source_turn_ids, item.store)
    subject, value = str(item.metadata.get("subject_key")), str(item.metadata.get("value_key"))
    return any((turn_id, subject, value) in recorded for turn_id in item.source_turn_ids)


__all__ = [
    "Batch",
    "aspect_of",
    "change_phrase",
    "Decision",
    "Operation",
    "Slots",
    "drop",
    "fact_key",
    "fact_metadata",
    "named",
    "recorded_before",
    "recorded_values",
    "when",
]
