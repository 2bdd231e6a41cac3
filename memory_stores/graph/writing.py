"""Folding turns into a user's graph: extraction, new items, and synonym edges.

A write extracts the turns' facts (the shared extractor, falling back to the rules and
queueing a retry when it fails), stores a passage per turn, its facts and their new
entities in one embedding call, and joins each new entity to those similar enough to be
its synonyms. A retried extraction folds in the model's facts the same way and reports
the rule facts it did not confirm.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from agentmem.errors import AgentMemError
from agentmem.ledger.extraction import Fact, FactExtractor, RuleExtractor, queue_degraded
from agentmem.models.building import BuildStats
from agentmem.protocols import StoreContext
from agentmem.storage.records import ItemUpdate
from agentmem.stores.graph.folding import Batch, fact_key
from agentmem.stores.graph.index import KindIndex
from agentmem.stores.graph.user_graph import UserGraph, entity_node, passage_node
from agentmem.types import Change, MemoryItem, Turn

logger = logging.getLogger(__name__)


def link(state: UserGraph, items: Sequence[MemoryItem]) -> None:
    """Add the edges the items record: mentions, synonyms and facts' relations."""
    for item in items:
        meta = item.metadata
        if item.kind == "passage":
            for key in meta.get("mentions", ()):
                state.support(passage_node(item.id), entity_node(key), mention=True)
        elif item.kind == "entity":
            for key, similarity in meta.get("synonyms", {}).items():
                state.support(entity_node(meta["key"]), entity_node(key), synonym=similarity)
        elif item.kind == "fact":
            state.add_fact(item)


class GraphWriter:
    """Folds turns and their facts into users' graphs and persists the new items.

    Not thread-safe on its own: :class:`~agentmem.stores.graph.GraphStore` calls it
    under its lock (extraction excepted: it touches no graph).

    Args:
        context: The core services.
        name: The structure's name in records and results.
        index: The structure's items by kind in the records and the vector index.
        rules: The extractor used when the shared one fails.
        stats: Where extraction failures and queued retries are counted.
        entity_turn_cap: Most turns recorded as an entity's provenance.
        synonym_threshold: Entity-name similarity from which a synonym edge is added.
        synonym_candidates: Nearest entities examined for each new entity.
    """

    def __init__(
        self,
        context: StoreContext,
        name: str,
        index: KindIndex,
        *,
        rules: RuleExtractor,
        stats: BuildStats,
        entity_turn_cap: int,
        synonym_threshold: float,
        synonym_candidates: int,
    ) -> None:
        self.context = context
        self.name = name
        self.index = index
        self.rules = rules
        self.stats = stats
        self.entity_turn_cap = entity_turn_cap
        self.synonym_threshold = synonym_threshold
        self.synonym_candidates = synonym_candidates

    def extract(self, extractor: FactExtractor, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Extract with ``extractor``; on failure queue a retry and use the rules.

        Raises:
            AgentMemError: The rule extractor itself failed (there is nothing to fall back on).
        """
        try:
            facts = extractor.extract(turns)
        except AgentMemError as exc:
            if extractor is self.rules:
                raise
            logger.warning(
                "graph: extraction failed for %d turns, using rules: %s", len(turns), exc
            )
            self.stats.add_failure(queued=True)
            for user_id in dict.fromkeys(t.user_id for t in turns):
                ids = [t.id for t in turns if t.user_id == user_id]
                self.context.records.queue_work(
                    self.name, user_id, "extract", {"turn_ids": ids}, str(exc)
                )
            return self.rules.extract(turns)
        # A model extractor that fell back to rules for some turns: retry those later.
        queue_degraded(extractor, turns, self.context.records, self.name, self.stats)
        return facts

    def fold(
        self,
        state: UserGraph,
        user_id: str,
        turns: Sequence[Turn],
        facts: dict[int, list[Fact]],
        *,
        passages: bool,
    ) -> list[Change]:
        """Store the turns' new items (one embedding call) and add them to the graph."""
        batch = Batch(self.name, state, self.entity_turn_cap)
        for turn in turns:
            batch.add_turn(turn, facts.get(turn.id, []), passage=passages)
        texts = batch.texts()
        if not texts:
            return []
        # A passage's text is the turn as another store embedded it: usually cached.
        vectors = self.index.embed(texts)
        keys = list(batch.entities)
        synonyms = self._synonyms(state, user_id, keys, batch.entity_vectors(vectors))
        items, embeddings = batch.items(vectors, synonyms)
        # Known entities mentioned again gain the turns, in the same transaction as the
        # new items: a resumed write skips turns whose passage is stored.
        extended = {
            key: [*state.graph.nodes[entity_node(key)]["turns"], *turn_ids]
            for key, turn_ids in batch.extended.items()
            if turn_ids
        }
        changes = [
            ItemUpdate(
                state.entities[key], source_turn_ids=turns, reason="graph: entity mentioned again"
            )
            for key, turns in extended.items()
        ]
        stored, updated = self.index.add(
            items, embeddings, reason="graph: turn folded in", also=changes
        )
        for item in stored:
            if item.kind != "fact":
                state.add_node(item)
        link(state, stored)
        for key, turns in extended.items():
            state.graph.nodes[entity_node(key)]["turns"] = turns
        return [Change("ADD", i, "graph: turn folded in") for i in stored] + [
            Change("UPDATE", i, "graph: entity mentioned again") for i in updated
        ]

    def _synonyms(
        self, state: UserGraph, user_id: str, keys: list[str], vectors: np.ndarray
    ) -> dict[str, dict[str, float]]:
        """Find, for each new entity, the known or new entities similar enough to be synonyms."""
        found: dict[str, dict[str, float]] = {key: {} for key in keys}
        for key, vector in zip(keys, vectors, strict=True):
            if not state.entities:
                break
            near = self.index.nearest(user_id, vector, {"entity": self.synonym_candidates})
            for hit in near["entity"]:
                node = state.nodes.get(hit.id)
                if node is not None and hit.similarity >= self.synonym_threshold:
                    found[key][node[2:]] = round(hit.similarity, 4)
        if len(keys) > 1:  # new entities of the same write, against each other
            similarity = vectors @ vectors.T
            close = np.triu(similarity >= self.synonym_threshold, 1)
            for first, second in zip(*np.nonzero(close), strict=True):
                sim = round(float(similarity[first, second]), 4)
                found[keys[int(second)]][keys[int(first)]] = sim
        return found

    def replace_facts(
        self,
        state: UserGraph,
        user_id: str,
        turns: Sequence[Turn],
        facts: dict[int, list[Fact]],
    ) -> list[MemoryItem]:
        """Fold in the model's new facts of ``turns``; return the old facts it did not confirm.

        The caller invalidates those (from their own turn's time).
        """
        turns = [t for t in turns if t.id in state.turns]
        ids = {t.id for t in turns}
        old = [
            f
            for f in self.context.records.store_items(self.name, user_id, kind="fact")
            if set(f.source_turn_ids) & ids
        ]
        have = {(f.source_turn_ids[0], fact_key(f)) for f in old}
        fresh = {
            turn_id: [f for f in found if (turn_id, fact_key(f)) not in have]
            for turn_id, found in facts.items()
        }
        self.fold(state, user_id, turns, fresh, passages=False)
        wanted = {(turn_id, fact_key(f)) for turn_id, found in facts.items() for f in found}
        return [f for f in old if (f.source_turn_ids[0], fact_key(f)) not in wanted]


__all__ = ["GraphWriter", "link"]
