"""Facts and triples from dialogue turns: the extractors, and one extraction shared per turn.

A :class:`Fact` (:mod:`agentmem.ledger.slots`) is an atomic statement about a subject: who,
which slot, what value, stated or inferred, starting or ending. Two extractors make them:
:class:`RuleExtractor` (:mod:`agentmem.ledger.rules`, offline, hand-written patterns) and
:class:`ModelExtractor` (:mod:`agentmem.ledger.model_extractor`, one chat call per batch,
falling back to the rules). Extractors see a batch of turns at once so a model-based one
can spend one call per batch; :class:`CachingExtractor`, here, lets several consumers (the
graph and the memory manager) share one extraction per turn, and the helpers below queue
and retry the turns a failed model call left with the fallback's facts.

This module re-exports the names importers have always taken from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from agentmem.errors import AgentMemError, ModelError
from agentmem.ledger.model_extractor import ModelExtractor
from agentmem.ledger.patterns import PARTNER_RELATIONS, PETS, RELATIONS
from agentmem.ledger.rules import RuleExtractor
from agentmem.ledger.slots import (
    ATTRIBUTE_LABELS,
    ENDED,
    SHAPED,
    SINGLE_VALUED,
    Fact,
    FactExtractor,
    normalise,
)
from agentmem.models.building import BuildStats, retry_work
from agentmem.types import Turn

if TYPE_CHECKING:
    from agentmem.protocols import RecordStore
    from agentmem.storage.tables import PendingWorkRow

logger = logging.getLogger(__name__)


_TurnKey = tuple[int, str, str]


def _key(turn: Turn) -> _TurnKey:
    return (turn.id, turn.user_id, turn.text)


class CachingExtractor:
    """Shares one extraction per turn between consumers (the graph, the manager).

    Args:
        inner: The extractor that does the work.
        capacity: How many turns' facts to keep.
    """

    def __init__(self, inner: FactExtractor, *, capacity: int = 10_000) -> None:
        self.inner = inner
        self.name = inner.name
        self.capacity = capacity
        # Keyed by the turn's id, user and text, not the id alone: a row id can come back
        # for another user's turn (another process forgot a user), and must not bring the
        # forgotten turn's facts with it.
        self._cache: dict[_TurnKey, list[Fact]] = {}
        self._degraded: set[_TurnKey] = set()
        self._lock = threading.Lock()

    def clear(self) -> int:
        """Forget every cached extraction; return how many turns were cached."""
        with self._lock:
            count = len(self._cache)
            self._cache.clear()
            self._degraded.clear()
            return count

    def extract(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Return cached facts, extracting the turns not seen yet in one batch."""
        with self._lock:
            missing = [t for t in turns if _key(t) not in self._cache]
        if missing:
            self._extract(missing)
        with self._lock:
            return {t.id: list(self._cache.get(_key(t), [])) for t in turns}

    def degraded(self, turn_ids: Iterable[int]) -> set[int]:
        """Return which of these turns got a fallback's facts because the model failed."""
        with self._lock:
            wanted = set(turn_ids)
            return {key[0] for key in self._degraded if key[0] in wanted}

    def retry(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Extract again the turns whose facts came from the fallback; return all facts.

        Turns the model already handled come from the cache, so several consumers of one
        failed batch (the fact ledger, the graph) cost one retry between them.
        """
        with self._lock:
            again = [t for t in turns if _key(t) in self._degraded or _key(t) not in self._cache]
        if again:
            self._extract(again)
        with self._lock:
            return {t.id: list(self._cache.get(_key(t), [])) for t in turns}

    def _extract(self, turns: Sequence[Turn]) -> None:
        marked = getattr(self.inner, "extract_marked", None)
        if callable(marked):
            fresh, fell_back = marked(turns)
        else:
            fresh, fell_back = self.inner.extract(turns), set()
        with self._lock:
            for turn in turns:
                self._cache[_key(turn)] = fresh.get(turn.id, [])
            self._degraded.difference_update(_key(t) for t in turns)
            self._degraded.update(_key(t) for t in turns if t.id in fell_back)
            while len(self._cache) > self.capacity:
                self._degraded.discard(oldest := next(iter(self._cache)))
                self._cache.pop(oldest)


def degraded_turns(extractor: FactExtractor, turn_ids: Iterable[int]) -> set[int]:
    """Return which turns got fallback facts from ``extractor`` (a :class:`CachingExtractor`)."""
    if isinstance(extractor, CachingExtractor):
        return extractor.degraded(turn_ids)
    return set()


def extract_again(extractor: FactExtractor, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
    """Return the turns' facts, asking the model again for those it failed on before."""
    if isinstance(extractor, CachingExtractor):
        return extractor.retry(turns)
    return extractor.extract(turns)


def queue_degraded(
    extractor: FactExtractor,
    turns: Sequence[Turn],
    records: RecordStore,
    store: str,
    stats: BuildStats,
) -> None:
    """Queue for ``store`` the turns ``extractor`` answered with fallback facts, per user.

    The extractor counted each failed call itself; ``stats`` counts the queued retries.
    """
    failed = degraded_turns(extractor, (t.id for t in turns))
    if not failed:
        return
    for user_id in dict.fromkeys(t.user_id for t in turns):
        ids = sorted(t.id for t in turns if t.user_id == user_id and t.id in failed)
        if ids:
            stats.add_queued()
            logger.info("%s: queued %d turns for model extraction again", store, len(ids))
            records.queue_work(
                store, user_id, "extract", {"turn_ids": ids}, "model extraction failed"
            )


def retry_queued(
    extractor: FactExtractor,
    records: RecordStore,
    store: str,
    user_id: str | None,
    apply: Callable[[str, list[Turn], dict[int, list[Fact]]], None],
) -> int:
    """Extract ``store``'s queued turns again and ``apply`` the facts; return batches done.

    Work whose extraction fails again (an error, or fallback facts again) stays queued,
    its attempts counted.
    """

    def perform(work: PendingWorkRow) -> bool:
        ids = [int(i) for i in work.payload.get("turn_ids", [])]
        turns = records.turns(work.user_id, ids=ids)
        try:
            # A shared caching extractor re-asks the model only for turns it fell back on.
            facts = extract_again(extractor, turns)
        except ModelError:
            raise
        except AgentMemError as exc:
            # Any failure of an extractor (a third-party one's storage, say) leaves the
            # work queued, as a model's does; a failure while applying propagates.
            raise ModelError(str(exc)) from exc
        if degraded_turns(extractor, ids):
            raise ModelError("model extraction failed again")
        apply(work.user_id, turns, facts)
        return True

    return retry_work(records, store, user_id, perform)


__all__ = [
    "ATTRIBUTE_LABELS",
    "ENDED",
    "PARTNER_RELATIONS",
    "PETS",
    "RELATIONS",
    "SHAPED",
    "SINGLE_VALUED",
    "CachingExtractor",
    "Fact",
    "FactExtractor",
    "ModelExtractor",
    "RuleExtractor",
    "degraded_turns",
    "extract_again",
    "normalise",
    "queue_degraded",
    "retry_queued",
]
