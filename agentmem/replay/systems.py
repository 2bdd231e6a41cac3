"""The memory configurations a replay compares, each behind one small interface.

A configuration is a ``+``-joined list of structure names (``memtree+graph``, ``turns``,
``all``): those structures plus the fact ledger behind a
:class:`~agentmem.manager.MemoryManager`, built like :func:`agentmem.factory.build` does
but on an embedder shared by every configuration, so the turns are embedded once. Two
baselines are always added:

* ``recent``: the most recent turns that fit the budget, no retrieval at all;
* ``similarity``: plain similarity search over the turns: no fact ledger, no stale guard,
  no query rewriting.

This module is a composition point, like the factory: it may name concrete structures.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from agentmem.errors import ConfigError, StorageError
from agentmem.ledger.extraction import CachingExtractor, ModelExtractor, RuleExtractor
from agentmem.ledger.facts import FactLedger
from agentmem.manager import MemoryManager
from agentmem.models.building import BuildStats
from agentmem.models.tokens import TokenCounter, fit_to_budget
from agentmem.protocols import ChatModel, Embedder, StoreContext
from agentmem.storage.items import ItemIndex
from agentmem.storage.records import Records, derived_item_id
from agentmem.storage.repair import repair_vectors
from agentmem.storage.vectors import VectorIndex
from agentmem.types import MemoryItem, Query, Recalled, Scope, Turn

logger = logging.getLogger(__name__)

#: The baselines every replay adds.
BASELINES = ("recent", "similarity")

#: Tokens each item costs beyond its text (the manager's accounting, used for all).
ITEM_OVERHEAD = 8


def parse_configurations(spec: str | Sequence[str]) -> list[str]:
    """Split ``"all,turns"`` into configurations and append the two baselines.

    Raises:
        ConfigError: The list is empty or a name has odd characters.
    """
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+(\+[A-Za-z0-9_.\-]+)*", part):
            raise ConfigError(
                f"bad configuration {part!r}", hint="use structure names joined by '+'"
            )
        if part not in names:
            names.append(part)
    names += [b for b in BASELINES if b not in names]
    return names


def check_configurations(names: Sequence[str]) -> None:
    """Fail early, before any work, when a configuration names an unknown structure.

    Raises:
        ConfigError: A structure name is unknown.
    """
    from agentmem.factory import expand_store_names, store_factories

    known = store_factories()
    for name in names:
        if name in BASELINES:
            continue
        for part in expand_store_names(name.split("+")):
            if part not in known:
                raise ConfigError(
                    f"unknown memory structure {part!r} in configuration {name!r}",
                    hint=f"known: {', '.join(sorted([*known, 'all']))}",
                )


@dataclass(frozen=True)
class BuildCounts:
    """Model builds of a configuration that failed since it was opened.

    Attributes:
        failures: Builds (fact extractions, memos, summaries, aggregations) that failed
            after the model's retries and a repair; the offline builder stood in.
        queued: Of those, the builds queued in the records for a later retry.
    """

    failures: int = 0
    queued: int = 0


class ReplayMemory(Protocol):
    """One configuration as the replay drives it."""

    name: str
    records: Records

    def resume(self, user_id: str) -> None:
        """Fold in turns stored by an interrupted run but never memorized."""
        ...

    def write(self, turns: Sequence[Turn]) -> None:
        """Fold stored turns into memory."""
        ...

    def end_session(self, user_id: str, session_id: str) -> None:
        """Let the memory consolidate a finished session."""
        ...

    def recall(
        self, question: str, user_id: str, *, budget: int, k: int, as_of: datetime
    ) -> list[Recalled]:
        """Return the items for ``question`` that fit ``budget`` tokens, best first."""
        ...

    def build_counts(self) -> BuildCounts:
        """Return the model builds that failed since the memory was opened."""
        ...

    def pending_builds(self, user_id: str) -> int:
        """Return how many failed builds of the user wait in the records for a retry."""
        ...

    def close(self) -> None:
        """Release the records database and the vector index folder."""
        ...


class ManagerMemory:
    """Structures and the fact ledger behind a memory manager (the system under test)."""

    def __init__(self, name: str, manager: MemoryManager, vectors: VectorIndex) -> None:
        self.name = name
        self.manager = manager
        self.records = manager.records
        self.vectors = vectors

    def close(self) -> None:
        """Release the records database and the vector index folder."""
        self.manager.close()
        self.records.close()
        self.vectors.close()

    def resume(self, user_id: str) -> None:
        """Retry queued builds and fold in pending turns."""
        self.manager.resume(user_id)

    def write(self, turns: Sequence[Turn]) -> None:
        """Write through the manager: facts, structures, then invalidation."""
        report = self.manager.write(turns)
        for store, error in report.failures.items():
            logger.warning(
                "%s: %s failed to write %d turns: %s", self.name, store, len(turns), error
            )

    def end_session(self, user_id: str, session_id: str) -> None:
        """Consolidate the session (summaries, memos)."""
        self.manager.end_session(user_id, session_id)

    def recall(
        self, question: str, user_id: str, *, budget: int, k: int, as_of: datetime
    ) -> list[Recalled]:
        """Recall through the manager, as of the end of the dialogue."""
        result = self.manager.recall(
            question, Scope(user_id), budget_tokens=budget, k=k, as_of=as_of
        )
        return list(result.items)

    def build_counts(self) -> BuildCounts:
        """Sum the failures counted by the fact extractor and every structure."""
        failures = queued = 0
        for stats in self._build_stats():
            failures += stats.failures
            queued += stats.queued
        return BuildCounts(failures, queued)

    def _build_stats(self) -> Iterator[BuildStats]:
        # The extractor is shared by the fact ledger and the graph; wrappers (the caching
        # extractor) hold the counting one as ``inner``.
        extractor = self.manager.facts.extractor if self.manager.facts is not None else None
        seen: list[BuildStats] = []
        for part in [extractor, self.manager.facts, *self.manager.stores]:
            for _ in range(4):
                if part is None:
                    break
                stats = getattr(part, "stats", None)
                if isinstance(stats, BuildStats):
                    if all(stats is not known for known in seen):
                        seen.append(stats)
                        yield stats
                    break
                part = getattr(part, "inner", None)

    def pending_builds(self, user_id: str) -> int:
        """Count the user's queued builds over every structure."""
        return sum(
            len(self.records.pending_work(store.name, user_id)) for store in self.manager.structures
        )


class RecentMemory:
    """The ``recent`` baseline: the latest turns that fit the budget, no retrieval."""

    name = "recent"

    def close(self) -> None:
        """Release the records database."""
        self.records.close()

    def __init__(self, records: Records, counter: TokenCounter) -> None:
        self.records = records
        self.counter = counter
        # Each user's turns with their token costs, newest first; dropped on every write.
        self._turns: dict[str, list[tuple[Turn, int]]] = {}

    def resume(self, user_id: str) -> None:
        """Mark pending turns as memorized: the records are all this baseline needs."""
        self.records.mark_memorized(t.id for t in self.records.pending_turns(user_id))
        self._turns.pop(user_id, None)

    def write(self, turns: Sequence[Turn]) -> None:
        """Nothing to build: the turns are already stored."""
        self.records.mark_memorized(t.id for t in turns)
        for user_id in {t.user_id for t in turns}:
            self._turns.pop(user_id, None)

    def end_session(self, user_id: str, session_id: str) -> None:
        """Nothing to consolidate."""

    def recall(
        self, question: str, user_id: str, *, budget: int, k: int, as_of: datetime
    ) -> list[Recalled]:
        """Return the most recent turns up to ``as_of`` that fit, oldest first.

        The window is contiguous: it stops at the first turn that does not fit.
        """
        if user_id not in self._turns:
            self._turns[user_id] = [
                (t, self.counter.count(t.render()) + ITEM_OVERHEAD)
                for t in reversed(self.records.turns(user_id))
            ]
        kept: list[Recalled] = []
        used = 0
        for turn, cost in self._turns[user_id]:
            if turn.timestamp > as_of:
                continue
            if used + cost > budget:
                break
            used += cost
            kept.append(Recalled(_turn_item(turn, self.name), 1.0))
        return kept[::-1]

    def build_counts(self) -> BuildCounts:
        """Nothing is built."""
        return BuildCounts()

    def pending_builds(self, user_id: str) -> int:
        """Nothing is built."""
        return 0


class SimilarityMemory:
    """The ``similarity`` baseline: turns by cosine similarity, nothing else.

    Each turn is embedded as ``speaker: text`` and recalled by the query's cosine
    similarity alone: what a plain vector search over a chat log does. (The ``turns``
    structure recalls better than this; the baseline stays plain on purpose.)
    """

    name = "similarity"

    def __init__(
        self, records: Records, vectors: VectorIndex, embedder: Embedder, counter: TokenCounter
    ) -> None:
        self.records = records
        self.embedder = embedder
        self.counter = counter
        self.index = ItemIndex(StoreContext(records, vectors, embedder), "turns")
        self.vectors = vectors

    def close(self) -> None:
        """Release the records database and the vector index folder."""
        self.records.close()
        self.vectors.close()

    def resume(self, user_id: str) -> None:
        """Fold in pending turns."""
        pending = self.records.pending_turns(user_id)
        if pending:
            self.write(pending)

    def write(self, turns: Sequence[Turn]) -> None:
        """Embed and store each turn."""
        items = [
            replace(_turn_item(turn, "turns"), id=derived_item_id("turns", turn.user_id, turn.id))
            for turn in turns
        ]
        self.index.add(items, reason="turn stored")
        self.records.mark_memorized(t.id for t in turns)

    def end_session(self, user_id: str, session_id: str) -> None:
        """Nothing to consolidate."""

    def recall(
        self, question: str, user_id: str, *, budget: int, k: int, as_of: datetime
    ) -> list[Recalled]:
        """Return the ``k`` most similar turns that fit the budget, best first."""
        query = Query(
            text=question,
            scope=Scope(user_id),
            embedding=self.embedder.embed([question])[0],
            as_of=as_of,
        )
        found = self.index.search(query, k)
        fitted = fit_to_budget(
            found,
            lambda r: r.item.shown_text(),
            self.counter,
            budget,
            per_item_overhead=ITEM_OVERHEAD,
        )
        return fitted.kept

    def build_counts(self) -> BuildCounts:
        """Nothing is built by a model."""
        return BuildCounts()

    def pending_builds(self, user_id: str) -> int:
        """Nothing is built by a model."""
        return 0


def _turn_item(turn: Turn, store: str) -> MemoryItem:
    return MemoryItem(
        id=f"turn-{turn.id}",
        store=store,
        kind="turn",
        user_id=turn.user_id,
        text=turn.render(),
        source_turn_ids=(turn.id,),
        valid_from=turn.timestamp,
        session_id=turn.session_id,
    )


def open_memory(
    name: str,
    folder: Path,
    embedder: Embedder,
    *,
    builder: ChatModel | None = None,
    counter: TokenCounter | None = None,
    database_url: str | None = None,
    chroma_url: str | None = None,
) -> ReplayMemory:
    """Build one configuration on its own records database and vector index in ``folder``,
    or on servers shared by every configuration.

    Args:
        name: ``recent``, ``similarity``, or structure names joined by ``+`` (``all``
            expands to every built-in structure, ``all-<name>`` to all but one).
        folder: The configuration's own data directory.
        embedder: The embedder shared by every configuration.
        builder: The chat model that builds memory, or ``None`` for the offline builders.
        counter: Counts tokens for the budget.
        database_url: The records database (a SQLAlchemy URL) instead of ``folder``'s.
        chroma_url: The Chroma server of the vectors instead of ``folder``'s index.

    Raises:
        ConfigError: A structure name is unknown.
    """
    from agentmem.factory import build_stores, expand_store_names

    counter = counter or TokenCounter()
    records = Records(database_url or folder / "agentmem.sqlite")
    if name == "recent":
        return RecentMemory(records, counter)
    try:
        if chroma_url:
            vectors = VectorIndex(embedder, url=chroma_url)
        else:
            vectors = VectorIndex(embedder, path=folder / "chroma")
    except StorageError:
        records.close()
        raise
    try:
        repair_vectors(records, vectors)  # after a killed run, before anything writes
    except StorageError:
        vectors.close()
        records.close()
        raise
    if name == "similarity":
        return SimilarityMemory(records, vectors, embedder, counter)
    extractor = CachingExtractor(ModelExtractor(builder) if builder else RuleExtractor(records))
    context = StoreContext(
        records=records, vectors=vectors, embedder=embedder, model=builder, extractor=extractor
    )
    names = expand_store_names(name.split("+"))
    stores = build_stores(names, context)
    logger.info("configuration %s: structures %s plus the fact ledger", name, names or "none")
    manager = MemoryManager(
        records,
        embedder,
        stores,
        facts=FactLedger(context),
        counter=counter,
        rewriter=builder,
    )
    return ManagerMemory(name, manager, vectors)
