"""Model resolution of a turn against related facts: mem0's update step, one call per turn.

The offline ledger (:mod:`agentmem.ledger.facts`) decides a change only when two statements land
in the same hand-written slot with the same subject. :class:`ModelResolver` lets a chat
model decide instead, the way mem0 does: the caller finds the user's current facts that
look related to the new turn (by similarity, not by slot name) and passes them as
candidates; one schema-constrained call returns ``ADD`` / ``UPDATE`` / ``DELETE`` /
``NONE`` operations, each with a reason, which come back as a :class:`Resolution` naming
the real item ids.

Fallback: when the model fails for good (it cannot be reached, or its answer stays
unusable after one repair), :meth:`ModelResolver.resolve` does not raise; it returns a
resolution with ``fell_back=True``, no operations and the error's text, so the caller runs
the offline path for that turn (and may queue the turn for another try).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agentmem.errors import ModelError, StructuredOutputError
from agentmem.ledger.extraction import Fact
from agentmem.models.building import BuildStats, structured_call
from agentmem.prompts.resolution import (
    RESOLUTION_SCHEMA,
    OperationKind,
    ResolutionAnswer,
    ResolutionStep,
    candidate_ids,
    parse_resolution,
    resolution_messages,
)
from agentmem.protocols import ChatModel
from agentmem.types import Completion, MemoryItem, Message, Turn, Usage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FactOperation:
    """One change the model decided for a turn.

    Attributes:
        kind: ``ADD`` (a new fact), ``UPDATE`` (``target_id`` replaced by ``fact``),
            ``DELETE`` (``target_id``'s value ended) or ``NONE`` (nothing to change).
        target_id: The real id of the candidate item changed (UPDATE, DELETE), or that a
            NONE repeats; ``None`` otherwise.
        fact: The new fact (ADD, UPDATE); for DELETE, the ended value as a fact with
            ``polarity=False`` (the candidate's subject, aspect and value); ``None`` for
            NONE. Built with the turn's id and speaker; never ``generic``, whatever the
            aspect (aspects are open text here, not the offline ledger's slots).
        reason: The model's reason, in one sentence.
    """

    kind: OperationKind
    target_id: str | None
    fact: Fact | None
    reason: str


@dataclass(frozen=True)
class Resolution:
    """What one turn does to the user's facts, as the model decided.

    Attributes:
        operations: The operations, in the model's order; empty when the turn changes
            nothing or when the model failed.
        calls: Model calls made for this turn: 1, or more when an unusable answer was
            shown back to the model and asked again.
        fell_back: True when the model failed entirely: the caller should resolve this
            turn offline.
        error: Why the model failed (empty unless ``fell_back``).
    """

    operations: tuple[FactOperation, ...]
    calls: int
    fell_back: bool = False
    error: str = ""

    def of_kind(self, kind: OperationKind) -> tuple[FactOperation, ...]:
        """Return the operations of one kind, in order."""
        return tuple(op for op in self.operations if op.kind == kind)

    @property
    def ended_ids(self) -> tuple[str, ...]:
        """The ids of the candidates this turn updated or deleted (no longer current)."""
        return tuple(
            op.target_id
            for op in self.operations
            if op.kind in ("UPDATE", "DELETE") and op.target_id is not None
        )


class _CountingModel:
    """Counts every call to the wrapped model, answered or not.

    :func:`structured_call` counts only answers that parse; a call whose answer is not
    JSON still cost a call, and :attr:`Resolution.calls` should say so.
    """

    def __init__(self, model: ChatModel, stats: BuildStats) -> None:
        self.model = model
        self.name = model.name
        self.stats = stats
        self.calls = 0

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        self.calls += 1
        try:
            return self.model.complete(messages, schema=schema)
        except StructuredOutputError:
            # structured_call will not count it (there is no usage to count): do it here.
            self.stats.add_call(Usage())
            raise

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        return self.model.stream(messages)


class ModelResolver:
    """Resolves one turn against the candidate facts with one chat-model call.

    Args:
        model: A capable chat model (one that follows a JSON schema).
        max_recent: How many recent turns the prompt shows.
        repairs: How many times an unusable answer is shown back to the model and asked
            again (each a further call).

    Attributes:
        stats: Calls, tokens and failures over every turn resolved (divide ``calls`` by
            the turns resolved for calls per turn).
    """

    name = "model"

    def __init__(self, model: ChatModel, *, max_recent: int = 6, repairs: int = 1) -> None:
        self.model = model
        self.max_recent = max_recent
        self.repairs = repairs
        self.stats = BuildStats()

    def resolve(
        self, turn: Turn, recent: Sequence[Turn], candidates: Sequence[MemoryItem]
    ) -> Resolution:
        """Decide what ``turn`` does to the ``candidates``, in one model call.

        An answer naming a candidate the prompt did not show is mended rather than asked
        again: an UPDATE of an unknown id becomes an ADD of its fact, a DELETE of one is
        dropped (both logged). An answer that is not JSON, or not of the schema's shape,
        is shown back to the model and asked again (``repairs`` times).

        Args:
            turn: The new turn.
            recent: Turns before it, oldest first, for context.
            candidates: The user's current facts that may be related (fact items, with
                ``fact_metadata``), shown to the model as F1, F2, ...

        Returns:
            The operations; ``fell_back=True`` (and no operations) when the model failed
            entirely, so that the caller resolves the turn offline.
        """
        unique = list({item.id: item for item in candidates}.values())
        counted = _CountingModel(self.model, self.stats)
        try:
            answer: ResolutionAnswer = structured_call(
                counted,
                resolution_messages(turn, recent, unique, max_recent=self.max_recent),
                RESOLUTION_SCHEMA,
                validate=parse_resolution,
                stats=self.stats,
                repairs=self.repairs,
            )
        except ModelError as exc:
            logger.warning("fact resolution failed for turn %s, falling back: %s", turn.id, exc)
            self.stats.add_failure(queued=False)
            return Resolution((), calls=counted.calls, fell_back=True, error=str(exc))
        operations = _operations(answer.operations, turn, candidate_ids(unique))
        return Resolution(tuple(operations), calls=counted.calls)


def _operations(
    steps: Sequence[ResolutionStep], turn: Turn, shown: dict[str, MemoryItem]
) -> list[FactOperation]:
    """Map the model's steps to operations on real item ids, mending what names no candidate.

    A candidate is updated or deleted at most once: a second UPDATE of it adds its fact
    instead, a second DELETE is dropped.
    """
    operations: list[FactOperation] = []
    ended: set[str] = set()
    for step in steps:
        item = shown.get(step.id) if step.id else None
        kind = step.op
        if kind in ("UPDATE", "DELETE"):
            why = None
            if item is None:
                why = f"names no candidate ({step.id!r})"
            elif item.id in ended:
                why = f"changes {step.id} a second time"
            if why is not None:
                logger.info("turn %s: %s %s: %s", turn.id, kind, why, _verdict(kind))
                if kind == "DELETE":
                    continue
                kind = "ADD"
        if kind == "ADD":
            item = None  # an id beside an ADD names nothing it changes
        target = item.id if item is not None else None
        if kind in ("UPDATE", "DELETE") and target is not None:
            ended.add(target)
        operations.append(FactOperation(kind, target, _fact(kind, step, turn, item), step.reason))
    return operations


def _verdict(kind: str) -> str:
    return "dropped" if kind == "DELETE" else "added as a new fact"


def _fact(kind: str, step: ResolutionStep, turn: Turn, item: MemoryItem | None) -> Fact | None:
    if kind in ("ADD", "UPDATE") and step.fact is not None:
        new = step.fact
        return Fact(
            subject=new.subject,
            attribute=new.aspect.lower(),
            value=new.value,
            turn_id=turn.id,
            speaker=turn.speaker,
            stated=new.stated,
            single_valued=new.single_valued,
        )
    if kind == "DELETE" and item is not None:
        meta = item.metadata
        return Fact(
            subject=str(meta.get("subject") or turn.speaker),
            attribute=str(meta.get("attribute") or ""),
            value=str(meta.get("value") or item.text),
            turn_id=turn.id,
            speaker=turn.speaker,
            polarity=False,
            single_valued=bool(meta.get("single_valued", False)),
        )
    return None


__all__ = ["FactOperation", "ModelResolver", "Resolution"]
