"""Values passed between the steps of agentmem: frozen dataclasses, no behaviour.

Times are naive ``datetime`` objects in UTC. A turn's ``timestamp`` is the dialogue's own
time (when the user said it in the conversation), which a replay sets from the data set;
it is not necessarily the wall-clock time at which agentmem stored it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import numpy as np

Role = Literal["system", "user", "assistant"]
#: How recall merges the structures' rankings (``MemoryManager``'s ``fusion``).
Fusion = Literal["lead", "rank"]
FUSIONS: tuple[Fusion, ...] = get_args(Fusion)
#: What a change did to memory; the one vocabulary from the fact ledger and the structures
#: to the manager, the ``Memory`` API, the chat app and the replay:
#: ADD (a new item), UPDATE (an item's text or content changed, e.g. a MemTree node
#: re-aggregated or an item edited), SUPERSEDE (an item replaced, or no longer holding),
#: DELETE (an item the user deleted, or a value the user said ended), NOOP (already known:
#: nothing changed).
ChangeKind = Literal["ADD", "UPDATE", "SUPERSEDE", "DELETE", "NOOP"]
CHANGE_KINDS: tuple[ChangeKind, ...] = get_args(ChangeKind)


def utcnow() -> datetime:
    """Return the current time as a naive UTC datetime (agentmem's convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_utc_naive(moment: datetime) -> datetime:
    """Convert an aware datetime to naive UTC; leave naive ones as they are."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Message:
    """One chat message sent to a model."""

    role: Role
    content: str
    name: str | None = None


@dataclass(frozen=True)
class Scope:
    """Whose memory a read or write touches: a user, optionally narrowed to an agent or session."""

    user_id: str
    agent_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class Turn:
    """A stored dialogue turn, the unit every memory structure is built from.

    Attributes:
        id: The turn's row id in the records database (provenance points here).
        speaker: Who said it: ``"user"``, ``"assistant"`` or a participant's name.
        role: ``"user"`` or ``"assistant"``: which side of the agent the speaker is on.
        timestamp: The dialogue's time of the turn (naive UTC).
        external_id: An id from the source data, e.g. LoCoMo's ``"D1:3"``.
        metadata: Free JSON; ``{"quotes_memory": true}`` marks a turn that only repeats
            what memory recalled (a recall-only answer), which memory never takes as
            evidence.
    """

    id: int
    user_id: str
    session_id: str
    speaker: str
    role: Role
    text: str
    timestamp: datetime
    agent_id: str | None = None
    external_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> Scope:
        """The scope this turn belongs to."""
        return Scope(self.user_id, self.agent_id, self.session_id)

    def render(self) -> str:
        """Return the turn as ``speaker: text``."""
        return f"{self.speaker}: {self.text}"

    @property
    def quotes_memory(self) -> bool:
        """Whether the turn only repeats recalled memory (never evidence for memory)."""
        return bool(self.metadata.get("quotes_memory") or self.metadata.get("recall_only"))


@dataclass(frozen=True)
class MemoryItem:
    """A unit of memory held by a structure, with its provenance and validity.

    Attributes:
        id: Globally unique id (a hex string).
        store: The name of the structure that holds it.
        kind: What it is inside that structure (``"turn"``, ``"fact"``, ``"node"``, ...).
        source_turn_ids: The turns it was derived from.
        valid_from: Dialogue time from which it holds.
        invalid_at: Dialogue time at which it stopped holding; ``None`` while current.
        superseded_by: The id of the item that replaced it, if any.
        metadata: Structure-specific JSON data.
    """

    id: str
    store: str
    kind: str
    user_id: str
    text: str
    source_turn_ids: tuple[int, ...]
    valid_from: datetime | None = None
    invalid_at: datetime | None = None
    superseded_by: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    created_at: datetime | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def current(self) -> bool:
        """Whether the item still holds (has not been invalidated)."""
        return self.invalid_at is None

    def valid_at(self, moment: datetime) -> bool:
        """Return whether the item held at dialogue time ``moment``."""
        if self.valid_from is not None and self.valid_from > moment:
            return False
        return self.invalid_at is None or self.invalid_at > moment

    @property
    def changes(self) -> tuple[ValueChange, ...]:
        """The values this item states that changed since (it holds for the rest)."""
        return tuple(ValueChange.of(raw) for raw in self.metadata.get(CHANGES_KEY) or ())

    def changes_at(self, moment: datetime | None) -> tuple[ValueChange, ...]:
        """The changes that had happened by ``moment`` (all of them when ``None``)."""
        return tuple(
            c for c in self.changes if moment is None or c.since is None or c.since <= moment
        )

    def shown_text(self, as_of: datetime | None = None) -> str:
        """Return the text with its changes marked, as a prompt shows the item.

        The clause that states the old value is marked in place, with the change: "[no
        longer so since 3 May 2023 (residence Lisbon → Berlin): I live in Lisbon] and love
        surfing at Carcavelos". The item still holds for what else it says, and the reader
        sees exactly which words no longer do. A change whose value the text does not
        name as such (an aggregate's wording) is noted at the end instead.
        """
        text, notes = self.text, []
        for change in self.changes_at(as_of):
            marked = change.mark(text)
            if marked is None:
                notes.append(change.note())
            else:
                text = marked
        return " ".join([text, *notes])


#: A clause marked as no longer holding has at least this many words, or is marked with
#: the rest of its sentence.
MIN_MARKED_WORDS = 4
#: Where a clause ends: punctuation (not the square brackets of a resolved date), and the
#: conjunctions that join two statements.
_CLAUSE_END = re.compile(
    r"[.!?;,:()\u2014\u2013\n]+|\s(?:and|but|while|so|because|though|although|or|plus)\s",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?\n]+")
_SPEAKER = re.compile(r"^[^:\n]{1,60}:\s")
_MARK = "[no longer so "


def _spans(text: str, ends: re.Pattern[str]) -> list[tuple[int, int]]:
    """Return the (start, end) of the stretches of ``text`` between ``ends``, trimmed."""
    spans, start = [], 0
    for found in [*ends.finditer(text), None]:
        end = found.start() if found else len(text)
        piece = text[start:end]
        if piece.strip():
            left = start + len(piece) - len(piece.lstrip())
            spans.append((left, start + len(piece.rstrip())))
        start = found.end() if found else len(text)
    return spans


def _grown(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """Return a clause, or its sentence when the clause is too short to say anything.

    A speaker's name before the turn ("Ben: ") is no part of its first sentence.
    """
    start, end = span
    if len(text[start:end].split()) >= MIN_MARKED_WORDS:
        return span
    speaker = _SPEAKER.match(text)
    offset = speaker.end() if speaker else 0
    for first, last in _spans(text[offset:], _SENTENCE_END):
        if first + offset <= start < last + offset:
            return first + offset, last + offset
    return span


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Return overlapping spans merged, in order."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(set(spans)):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _inside_mark(text: str, position: int) -> bool:
    """Whether ``position`` is inside a clause an earlier change marked already."""
    opened = text.rfind(_MARK, 0, position + len(_MARK))
    return opened != -1 and text.find("]", opened) >= position


#: The metadata key under which an item keeps the values of it that changed since.
CHANGES_KEY = "changes"
#: The metadata key of an item kept in history but never recalled as evidence, with why
#: ("a question", "nothing said", "an echo of the turn before").
NOT_EVIDENCE = "not_evidence"


@dataclass(frozen=True)
class ValueChange:
    """A value an item states that no longer holds, while the rest of the item does.

    Attributes:
        value: The value as the item says it ("Lisbon").
        replaced_by: What replaced it ("Berlin"); ``None`` when it ended.
        aspect: What the value is of ("residence", "rent"); empty when unknown.
        since: Dialogue time of the change.
        turn_id: The turn that made the change.
        fact_id: The fact item that no longer holds (the change's identity).
    """

    value: str
    replaced_by: str | None
    aspect: str
    since: datetime | None
    turn_id: int | None
    fact_id: str

    def phrase(self) -> str:
        """Return the change in words: "residence: Lisbon → Berlin (turn 3)"."""
        head = f"{self.aspect}: " if self.aspect else ""
        turn = f" (turn {self.turn_id})" if self.turn_id is not None else ""
        return f"{head}{self.value} → {self.replaced_by or 'ended'}{turn}"

    def mark(self, text: str) -> str | None:
        """Return ``text`` with the clauses that state the value marked; ``None`` if none do.

        A clause of fewer than :data:`MIN_MARKED_WORDS` words ("Yep, Bristol,") is marked
        with the rest of its sentence, so the mark says what was claimed.
        """
        value = re.compile(rf"(?<!\w){re.escape(self.value)}(?!\w)", re.IGNORECASE)
        spans = [
            _grown(text, span)
            for span in _spans(text, _CLAUSE_END)
            if value.search(text, *span) and not _inside_mark(text, span[0])
        ]
        if not spans:
            return None
        when = f"since {self.since.day} {self.since:%B %Y} " if self.since else ""
        aspect = f"{self.aspect} " if self.aspect else ""
        head = f"[no longer so {when}({aspect}{self.value} → {self.replaced_by or 'ended'}): "
        for start, end in reversed(_merged(spans)):
            said = text[start:end].replace("[", "(").replace("]", ")")
            text = f"{text[:start]}{head}{said}]{text[end:]}"
        return text

    def note(self) -> str:
        """Return the note shown beside the item: "[since 3 May 2023: rent 900 → 950]"."""
        when = f"since {self.since.day} {self.since:%B %Y}: " if self.since else ""
        aspect = f"{self.aspect} " if self.aspect else ""
        return f"[{when}{aspect}{self.value} → {self.replaced_by or 'ended'}]"

    def to_json(self) -> dict[str, Any]:
        """Return the change as JSON metadata."""
        return {
            "value": self.value,
            "replaced_by": self.replaced_by,
            "aspect": self.aspect,
            "since": self.since.isoformat() if self.since else None,
            "turn_id": self.turn_id,
            "fact_id": self.fact_id,
        }

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> ValueChange:
        """Read a change from its JSON metadata."""
        since = raw.get("since")
        return cls(
            value=str(raw.get("value") or ""),
            replaced_by=raw.get("replaced_by"),
            aspect=str(raw.get("aspect") or ""),
            since=datetime.fromisoformat(since) if isinstance(since, str) else None,
            turn_id=raw.get("turn_id"),
            fact_id=str(raw.get("fact_id") or ""),
        )


@dataclass(frozen=True)
class ItemEvent:
    """One recorded change to a memory item: the audit trail ``history`` returns.

    Attributes:
        item_id: The item changed.
        user_id: Whose item it is.
        action: ``ADD``, ``UPDATE``, ``SUPERSEDE`` (replaced, or no longer holding) or
            ``DELETE`` (see :data:`ChangeKind`).
        created_at: Wall-clock time it was recorded.
        reason: Why, in words.
        at: Dialogue time of the change.
        old_text: The item's text before the change.
        new_text: The item's text after it (for an update).
        related_item_id: The item that superseded it, or that it relates to.
        id: The event's sequence number (events of an item are in this order).
    """

    item_id: str
    user_id: str
    action: ChangeKind
    created_at: datetime
    reason: str = ""
    at: datetime | None = None
    old_text: str | None = None
    new_text: str | None = None
    related_item_id: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class Change:
    """One change to memory: what was done, to which item, and why.

    Attributes:
        kind: ADD, UPDATE, SUPERSEDE, DELETE or NOOP (see :data:`ChangeKind`).
        item: The item the change is about, as it is after the change.
        reason: Why, in words.
        related_ids: Other items this change ended (the fact a new one replaced, say).
    """

    kind: ChangeKind
    item: MemoryItem
    reason: str = ""
    related_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outline:
    """One entry of a browsable view of a structure (a tree node, a topic, a version).

    Attributes:
        label: What to show for it.
        item: The item behind it; ``None`` for a heading that groups others.
        children: The entries below it.
    """

    label: str
    item: MemoryItem | None = None
    children: tuple[Outline, ...] = ()


@dataclass(frozen=True)
class Query:
    """A recall request as the structures receive it.

    Attributes:
        text: What to look for (already rewritten with context by the manager).
        scope: Whose memory to search.
        embedding: The embedding of ``text``, computed once for all structures.
        as_of: Show what was valid at this dialogue time instead of what is current.
        include_history: Also return invalidated items (marked as not current).
        exclude_turn_ids: Turns already in the prompt (the recency window); skip items
            derived only from them.
        form: What kind of answer the question wants (``agentmem.questions``): a
            ``"point"`` fact, a ``"recap"``, a ``"topic"``, several things at once
            (``"multi-hop"``), or what was said about a subject (``"mentions"``).
        window: The dialogue time the question names, ``[start, end)``, if any.
    """

    text: str
    scope: Scope
    embedding: np.ndarray | None = None
    as_of: datetime | None = None
    include_history: bool = False
    exclude_turn_ids: frozenset[int] = frozenset()
    form: str = "point"
    window: tuple[datetime, datetime] | None = None


@dataclass(frozen=True)
class Recalled:
    """An item a structure returned for a query, with its score (higher is better)."""

    item: MemoryItem
    score: float


@dataclass(frozen=True)
class Usage:
    """Tokens a model call consumed."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class Completion:
    """A chat model's answer.

    Attributes:
        text: The raw text of the answer.
        data: The parsed JSON object when a schema was requested.
        usage: Tokens the call consumed.
        model: The model that answered.
    """

    text: str
    data: Any = None
    usage: Usage = Usage()
    model: str = ""


@dataclass(frozen=True)
class WriteReport:
    """What writing turns into memory did."""

    turn_ids: tuple[int, ...]
    changes: tuple[Change, ...] = ()
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every structure folded the turns in."""
        return not self.failures

    def count(self, kind: ChangeKind) -> int:
        """Return how many changes were of ``kind``."""
        return sum(1 for c in self.changes if c.kind == kind)


@dataclass(frozen=True)
class RecallResult:
    """What a recall put in front of the model, and what it cost.

    Attributes:
        items: The items kept, best first, with their fused score.
        tokens: Tokens the kept items cost when rendered.
        dropped: Items recalled but left out for the budget.
        timings: Seconds spent per structure, plus ``embed``, ``rewrite`` and ``total``.
        query: The query text actually searched (after rewriting).
        stale_dropped: Items a structure returned that still asserted a superseded value.
    """

    items: tuple[Recalled, ...]
    tokens: int
    dropped: int
    timings: dict[str, float]
    query: str
    stale_dropped: int = 0

    @property
    def memory(self) -> list[MemoryItem]:
        """The kept items without scores."""
        return [r.item for r in self.items]
