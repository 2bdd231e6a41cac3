"""What the ``Memory`` facade returns: plain, mem0-compatible dicts and small results.

The entries are typed dicts rather than dataclasses: they are the public output, meant to
be serialised and indexed by key. The functions turn the manager's values into them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from agentmem.manager import WriteReport
from agentmem.types import Change, ChangeKind, ItemEvent, MemoryItem, Turn

#: The kinds of change an event reports (the one vocabulary of :data:`ChangeKind`).
EventName = ChangeKind
#: Item fields a search filter may name besides metadata keys.
FIELD_FILTERS = ("store", "kind", "current", "agent_id", "session_id")


class MemoryEvent(TypedDict):
    """One change a call made to memory (the per-turn diff).

    Every event is about its own item: a changed fact is two events, an ADD of the new
    fact (``previous`` lists what it replaced; reason "replaces 'Sam lives in Boston':
    ...") and a SUPERSEDE of the old one (``superseded_by`` is the new fact; reason
    "replaced by 'Sam lives in Denver': ...").

    Keys:
        event: ADD (new item), UPDATE (text changed), SUPERSEDE (this item was replaced,
            or no longer holds), DELETE (ended or deleted), NOOP (already known).
        id: The item the event is about.
        memory: Its text.
        store: The structure that holds it.
        previous: Other items this change invalidated (e.g. the facts a new one replaced).
        reason: Why, in words.
        current: Whether the item still holds after the change.
        superseded_by: The item that replaced it, if any.
    """

    event: EventName
    id: str
    memory: str
    store: str
    previous: list[str]
    reason: str
    current: bool
    superseded_by: str | None


class MemoryRecord(TypedDict):
    """A memory item as the facade returns it.

    ``text`` is the item's text; ``memory`` (mem0's name) is the text as a prompt should
    show it: the same, with the changes since beside it when a value it states no longer
    holds while the rest does ("... [since 3 May 2023: residence Lisbon → Berlin]").
    ``changes`` lists those changes: which value, replaced by what (``None``: it ended),
    of what aspect, since when, and the turn that changed it. For search results,
    ``score`` is the item's similarity to the query in [0, 1] (the cosine of their
    embeddings, so a threshold means the same on every query) and ``rank`` its place in
    recall's fused order, 1 first; both are ``None`` elsewhere. ``metadata``
    is the item's own metadata over the metadata given to :meth:`Memory.add` with the
    turns it came from.
    """

    id: str
    memory: str
    text: str
    store: str
    kind: str
    score: float | None
    rank: int | None
    user_id: str
    agent_id: str | None
    session_id: str | None
    source_turn_ids: list[int]
    valid_from: datetime | None
    invalid_at: datetime | None
    superseded_by: str | None
    current: bool
    created_at: datetime | None
    changes: list[dict[str, Any]]
    metadata: dict[str, Any]


class HistoryEntry(TypedDict):
    """One recorded change to an item, oldest first in :meth:`Memory.history`."""

    item_id: str
    event: str
    reason: str
    at: datetime | None
    created_at: datetime
    old_memory: str | None
    new_memory: str | None
    related_id: str | None


@dataclass(frozen=True)
class ChangeResult:
    """What an update, a delete or a session's consolidation did, and what it cost.

    Attributes:
        events: The changes, in the order they happened.
        tokens: Model tokens spent (0 with the offline builders).
        seconds: Wall-clock seconds the call took.
    """

    events: list[MemoryEvent] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0

    def count(self, event: EventName) -> int:
        """Return how many events were ``event``."""
        return sum(1 for e in self.events if e["event"] == event)

    def __getitem__(self, key: str) -> list[MemoryEvent]:
        """Return the events under mem0's key, ``"results"`` (code written for mem0 reads it)."""
        if key != "results":
            raise KeyError(key)
        return self.events


@dataclass(frozen=True)
class AddResult(ChangeResult):
    """What :meth:`Memory.add` stored and changed, and what it cost.

    Attributes:
        turn_ids: The stored turns (the provenance later items point to).
        session_id: The session the turns were added to.
        failures: Structures that failed to fold the turns in, with the error; the turns
            are kept and :meth:`Memory.resume` retries them.
    """

    turn_ids: list[int] = field(default_factory=list)
    session_id: str = ""
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every structure folded the turns in."""
        return not self.failures


@dataclass(frozen=True)
class SearchResult:
    """What :meth:`Memory.search` found, and what it cost.

    Attributes:
        items: The items found, best first.
        query: The query actually searched (after rewriting with rules or a model).
        tokens: Tokens the items' texts would cost in a prompt.
        model_tokens: Model tokens spent (query rewriting with a model; 0 offline).
        seconds: Wall-clock seconds the search took.
        timings: Seconds per structure, plus ``embed``, ``rewrite`` and ``total``.
    """

    items: list[MemoryRecord]
    query: str
    tokens: int
    model_tokens: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[MemoryRecord]:
        return iter(self.items)

    def __getitem__(self, key: str) -> list[MemoryRecord]:
        """Return the items under mem0's key, ``"results"`` (code written for mem0 reads it)."""
        if key != "results":
            raise KeyError(key)
        return self.items


def event_of(change: Change) -> MemoryEvent:
    item = change.item
    return MemoryEvent(
        event=change.kind,
        id=item.id,
        memory=item.text,
        store=item.store,
        previous=[i for i in change.related_ids if i != item.id],
        reason=change.reason,
        current=item.current,
        superseded_by=item.superseded_by,
    )


def add_result(report: WriteReport, session: str, tokens: int, seconds: float) -> AddResult:
    return AddResult(
        events=[event_of(c) for c in report.changes],
        tokens=tokens,
        seconds=seconds,
        turn_ids=list(report.turn_ids),
        session_id=session,
        failures=dict(report.failures),
    )


def record_of(
    item: MemoryItem,
    score: float | None,
    turns: Mapping[int, Turn],
    as_of: datetime | None = None,
) -> MemoryRecord:
    metadata: dict[str, Any] = {}
    for turn_id in item.source_turn_ids:
        turn = turns.get(turn_id)
        if turn is not None:
            metadata.update(turn.metadata)
    metadata.update(item.metadata)
    changes = item.changes_at(as_of)
    return MemoryRecord(
        id=item.id,
        memory=item.shown_text(as_of),
        text=item.text,
        store=item.store,
        kind=item.kind,
        score=score,
        rank=None,
        user_id=item.user_id,
        agent_id=item.agent_id,
        session_id=item.session_id,
        source_turn_ids=list(item.source_turn_ids),
        valid_from=item.valid_from,
        invalid_at=item.invalid_at,
        superseded_by=item.superseded_by,
        current=item.current,
        created_at=item.created_at,
        changes=[c.to_json() for c in changes],
        metadata=metadata,
    )


def matches(record: MemoryRecord, filters: Mapping[str, Any]) -> bool:
    missing = object()
    for key, expected in filters.items():
        actual = (
            record[key]  # type: ignore[literal-required]
            if key in FIELD_FILTERS
            else record["metadata"].get(key, missing)
        )
        if isinstance(expected, list | tuple | set | frozenset):
            if actual not in expected:
                return False
        elif actual != expected:
            return False
    return True


def history_entry(event: ItemEvent) -> HistoryEntry:
    return HistoryEntry(
        item_id=event.item_id,
        event=event.action,
        reason=event.reason,
        at=event.at,
        created_at=event.created_at,
        old_memory=event.old_text,
        new_memory=event.new_text,
        related_id=event.related_item_id,
    )


__all__ = [
    "AddResult",
    "ChangeResult",
    "EventName",
    "HistoryEntry",
    "MemoryEvent",
    "MemoryRecord",
    "SearchResult",
    "add_result",
    "event_of",
    "history_entry",
    "matches",
    "record_of",
]
