"""The memory manager: the one door between the agent loop and the memory structures.

It fans writes and recalls out to whatever structures are configured (it knows only the
:class:`~agentmem.protocols.MemoryStore` protocol), fuses what they recall with reciprocal
rank fusion, drops duplicates and invalidated items, and fits the result into a token
budget. Every recall reports what it used and what it cost.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from agentmem.errors import AgentMemError, InputError
from agentmem.protocols import Consolidating, Embedder, MemoryStore
from agentmem.records import ItemEventRow, Records
from agentmem.tokens import TokenCounter, fit_to_budget
from agentmem.types import MemoryItem, Query, Recalled, Scope, Turn

logger = logging.getLogger(__name__)

Action = Literal["ADD", "UPDATE", "SUPERSEDE", "MERGE", "NOOP", "DELETE"]

#: The ``k`` of reciprocal rank fusion (Cormack et al. 2009).
RRF_K = 60


@dataclass(frozen=True)
class MemoryChange:
    """One change a turn made to memory (the per-turn diff)."""

    action: Action
    item: MemoryItem
    reason: str = ""
    related_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class WriteReport:
    """What writing turns into memory did."""

    turn_ids: tuple[int, ...]
    changes: tuple[MemoryChange, ...] = ()
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every structure folded the turns in."""
        return not self.failures


@dataclass(frozen=True)
class RecallResult:
    """What a recall put in front of the model, and what it cost.

    Attributes:
        items: The items kept, best first, with their fused score.
        tokens: Tokens the kept items cost when rendered.
        dropped: Items recalled but left out for the budget.
        timings: Seconds spent per structure, plus ``"embed"`` and ``"total"``.
        query: The query text actually searched.
    """

    items: tuple[Recalled, ...]
    tokens: int
    dropped: int
    timings: dict[str, float]
    query: str

    @property
    def memory(self) -> list[MemoryItem]:
        """The kept items without scores."""
        return [r.item for r in self.items]


def _dedupe_key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


class MemoryManager:
    """Coordinates the configured memory structures.

    Args:
        records: The records database.
        embedder: Embeds recall queries (once per recall, shared by all structures).
        stores: The memory structures, in order of preference for ties.
        counter: Counts tokens for the budget.
    """

    def __init__(
        self,
        records: Records,
        embedder: Embedder,
        stores: Sequence[MemoryStore],
        *,
        counter: TokenCounter | None = None,
    ) -> None:
        if not stores:
            raise InputError("a memory manager needs at least one memory structure")
        names = [s.name for s in stores]
        if len(set(names)) != len(names):
            raise InputError(f"memory structure names must be unique, got {names}")
        self.records = records
        self.embedder = embedder
        self.stores = list(stores)
        self.counter = counter or TokenCounter()

    # -- writing ----------------------------------------------------------------------------

    def write(self, turns: Sequence[Turn]) -> WriteReport:
        """Fold stored turns into every structure; mark them memorized when all succeeded.

        A structure that fails is logged and reported; its turns stay pending, and
        :meth:`resume` retries them later. The turns themselves are already on disk.
        """
        started = time.perf_counter()
        changes: list[MemoryChange] = []
        failures: dict[str, str] = {}
        for store in self.stores:
            try:
                for item in store.write(turns):
                    changes.append(MemoryChange("ADD", item, reason=f"written by {store.name}"))
            except AgentMemError as exc:
                logger.warning("memory structure %s failed to write: %s", store.name, exc)
                failures[store.name] = str(exc)
        if not failures:
            self.records.mark_memorized(t.id for t in turns)
        return WriteReport(
            tuple(t.id for t in turns), tuple(changes), failures, time.perf_counter() - started
        )

    def resume(self, user_id: str | None = None) -> WriteReport | None:
        """Fold in turns that were accepted but never memorized (e.g. after a crash)."""
        pending = self.records.pending_turns(user_id)
        if not pending:
            return None
        logger.info("resuming memory writes for %d pending turns", len(pending))
        return self.write(pending)

    def end_session(self, user_id: str, session_id: str) -> list[MemoryItem]:
        """Let structures that consolidate per session (summaries, memos) do so."""
        changed: list[MemoryItem] = []
        for store in self.stores:
            if isinstance(store, Consolidating):
                changed += store.end_session(user_id, session_id)
        return changed

    # -- recall -----------------------------------------------------------------------------

    def recall(
        self,
        text: str,
        scope: Scope,
        *,
        budget_tokens: int = 1000,
        k: int = 10,
        exclude_turn_ids: Sequence[int] = (),
        as_of: datetime | None = None,
        include_history: bool = False,
    ) -> RecallResult:
        """Recall what the structures hold for ``text`` within ``scope``, under a budget."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        embedding = self.embedder.embed([text])[0]
        timings["embed"] = time.perf_counter() - started
        query = Query(
            text=text,
            scope=scope,
            embedding=embedding,
            as_of=as_of,
            include_history=include_history,
            exclude_turn_ids=frozenset(exclude_turn_ids),
        )
        rankings: list[list[Recalled]] = []
        for store in self.stores:
            tick = time.perf_counter()
            rankings.append(store.retrieve(query, k))
            timings[store.name] = time.perf_counter() - tick
        fused = fuse(rankings)
        fitted = fit_to_budget(
            fused, lambda r: r.item.text, self.counter, budget_tokens, per_item_overhead=8
        )
        timings["total"] = time.perf_counter() - started
        return RecallResult(tuple(fitted.kept), fitted.tokens, fitted.dropped, timings, text)

    # -- inspection and erasure -------------------------------------------------------------

    def history(self, item_id: str, *, user_id: str | None = None) -> list[ItemEventRow]:
        """Return every recorded change to an item, oldest first."""
        return self.records.history(item_id, user_id=user_id)

    def forget(self, user_id: str) -> dict[str, int]:
        """Erase a user from every structure and the records; return what was removed."""
        receipt: dict[str, int] = {}
        for store in self.stores:
            receipt[f"store:{store.name}"] = store.forget(user_id)
        receipt.update(self.records.forget(user_id))
        return receipt


def fuse(rankings: Sequence[Sequence[Recalled]]) -> list[Recalled]:
    """Merge ranked lists by reciprocal rank fusion, dropping duplicate items and texts."""
    scores: dict[str, float] = {}
    first: dict[str, Recalled] = {}
    for ranking in rankings:
        for rank, recalled in enumerate(ranking):
            key = recalled.item.id
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank + 1)
            first.setdefault(key, recalled)
    ordered = sorted(scores, key=lambda key: (-scores[key], -first[key].score))
    seen_texts: set[str] = set()
    fused = []
    for key in ordered:
        text_key = _dedupe_key(first[key].item.text)
        if text_key in seen_texts:
            continue
        seen_texts.add(text_key)
        fused.append(Recalled(first[key].item, scores[key]))
    return fused
