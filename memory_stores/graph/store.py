"""HippoRAG 2's knowledge graph: triples and passages ranked by Personalized PageRank.

After Gutiérrez et al., "From RAG to Memory: Non-Parametric Continual Learning for Large
Language Models" (2025). Each user has an undirected graph whose nodes are entities
(normalised subjects and objects of extracted triples) and passages (dialogue turns):

* relation edges join a triple's subject and object; their weight is the number of
  current facts that state the pair (co-occurrence count), and the edge remembers every
  supporting fact with its validity, so history and ``as_of`` queries still see it;
* context edges join a passage to the entities of its facts and to the proper nouns it
  mentions (weight 1 while some of that support is current);
* synonym edges join entities whose name embeddings are at least ``synonym_threshold``
  similar (weight = similarity), found by a vector search over the user's entity items
  when an entity is new.

Retrieval follows HippoRAG 2 without its LLM filter ("recognition memory"), since
retrieval may not call a model; a similarity floor (``fact_threshold``) stands in for it.
The query embedding is matched to facts, entities and passages; PageRank (restart
probability ``1 - damping`` = 0.5) restarts at the entities of the top facts (weighted by
the fact's similarity) and at matched entities, each entity's weight divided by the number
of passages it links to (node specificity), and at the ``passage_seeds`` passages nearest
the query, each with its similarity min-max normalised times ``passage_weight`` (HippoRAG
2's weight factor for the dense passage scores). The passages carry the signal: with only
the top 20 of them seeded at 0.05, the graph recalled 37.2% of LoCoMo's multi-hop
evidence turns, under plain similarity search (46.9%); seeding 100, with the matched
facts still merged in by score, 65.2% at 0.05, 67.7% at 0.5 and 67.9% at 5; at 0.5 with
the passages ranked first, 71.6%. As the turns structure does, a speaker the query names
is matched to who said a passage (``SPEAKER_BONUS``), not embedded with the query: the
passages are matched by the question without the name. Passages are ranked by PageRank mass; the
matched facts only follow them (``fact_share`` 0).

Scores: a passage scores ``best * mass / top_mass``, where ``best`` is the highest
similarity among the matched facts and passages and ``top_mass`` the mass of the best
passage: the best passage inherits the strength of the strongest evidence behind the
walk, the others decay with their mass. A passage's text has its relative dates written
down, as the turns structure writes them.

Triples come from the shared extractor (``context.extractor``, else the rule extractor);
the store makes no model call of its own. When the extractor raises, the turns are folded
in with the rule extractor and queued; :meth:`GraphStore.retry_pending` re-extracts them.
The networkx graph is the graph of record, rebuilt lazily per user from the persisted
items; the PageRank engine mirrors it in cached sparse matrices that writes and
invalidations update by deltas. Folding turns in lives in :mod:`.writing`, the browser's
outline in :mod:`.outline`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np

from agentmem.errors import InputError, NotFoundError
from agentmem.ledger.extraction import (
    Fact,
    FactExtractor,
    RuleExtractor,
    retry_queued,
)
from agentmem.models.building import BuildStats
from agentmem.protocols import StoreContext
from agentmem.questions import FORMS
from agentmem.storage.items import visible
from agentmem.storage.vectors import Hit
from agentmem.stores.graph.index import KindIndex
from agentmem.stores.graph.outline import outline
from agentmem.stores.graph.ppr import PersonalizedPageRank
from agentmem.stores.graph.user_graph import UserGraph, View, passage_node
from agentmem.stores.graph.writing import GraphWriter, link
from agentmem.types import Change, MemoryItem, Outline, Query, Recalled, Turn

logger = logging.getLogger(__name__)

#: Added to the dense similarity of a passage said by a speaker the query names: in a
#: short turn the speaker's name outweighs what was said, so names are matched, not
#: embedded (as the turns structure does).
SPEAKER_BONUS = 0.1


def _named(text: str, speakers: set[str]) -> tuple[frozenset[str], str]:
    """Return the speakers ``text`` names, and ``text`` without their names."""
    named = frozenset(
        s for s in speakers if s and re.search(rf"\b{re.escape(s)}\b", text, re.IGNORECASE)
    )
    stripped = text
    for speaker in named:
        stripped = re.sub(rf"\b{re.escape(speaker)}(?:'s)?\b", " ", stripped, flags=re.I)
    return named, stripped


class GraphStore:
    """Knowledge-triple graph with passages, ranked by Personalized PageRank (HippoRAG 2).

    Args:
        context: The core services (``context.extractor`` supplies the triples).
        name: The structure's name in records and results.
        damping: Probability of following an edge in the walk (HippoRAG 2: 0.5).
        tol: PageRank's L1 error bound.
        max_iter: PageRank's iteration limit.
        synonym_threshold: Entity-name similarity from which a synonym edge is added.
        synonym_candidates: Nearest entities examined for each new entity.
        fact_seeds: Top matched facts whose entities seed the walk.
        fact_threshold: Similarity a fact needs to seed the walk (a stand-in for HippoRAG
            2's LLM filter of the matched facts, which retrieval cannot call).
        entity_seeds: Nearest entities considered as seeds.
        entity_threshold: Similarity a query needs to seed an entity directly.
        passage_seeds: Dense-matched passages that seed the walk.
        passage_weight: Restart weight of a passage relative to an entity (HippoRAG 2: 0.05).
        fact_share: Share of ``k`` given to facts, merged with the passages by score, while
            passages remain; 0 (the default, as HippoRAG 2): the passages first, then the
            facts.
        entity_turn_cap: Most turns recorded as an entity's provenance.
    """

    #: The question forms it answers first (``Leading``; see ``agentmem.questions``): none.
    #: On LoCoMo's multi-hop questions the turns recall more (73.1% of evidence turns, 55.1%
    #: answer in context) than the graph alone (71.6%, 50.2%); fusing the two rankings gave
    #: 72.0% / 52.2%, keeping a quarter of the budget for the graph's passages that bring
    #: new turns 73.1% / 52.2%, and with its passages also seeded by their words (BM25)
    #: the graph alone reached 73.4% / 50.6% but led ``all`` to 72.6% / 49.8%. Later, on the
    #: same rankings (turns 73.1% / 55.1%): the graph's passages fused into the turns' ranking
    #: by weighted reciprocal rank for multi-hop questions, 73.1% / 55.1% at weight 0.25 and
    #: 72.0% / 50.2% at 0.5 (for every question at 0.25, 74.7% / 55.9% but single-hop
    #: evidence 89.9% -> 85.5%); a tenth of the budget kept for passages bringing new turns,
    #: 73.1% / 52.2%; the turns' tail reordered by the graph's agreement, 73.1% / 51.8%; the
    #: room the turns' own order leaves (about 28 tokens) filled from the graph, no change.
    #: At ``k = 50`` the turns fill the budget in their own order: a turn the graph adds
    #: displaces one the turns ranked, which held the answer as often as the added one held
    #: evidence.
    leads: frozenset[str] = frozenset()
    #: The forms it answers at all: not a recap, which names a time it knows nothing of
    #: (its items were kept out of recaps by their time anyway, at a search's cost).
    serves = frozenset(FORMS) - {"recap"}

    #: What :meth:`outline`'s ``focus`` takes (see ``Browsable``).
    focus_hint = "an entity, e.g. Denver"

    def __init__(
        self,
        context: StoreContext,
        *,
        name: str = "graph",
        damping: float = 0.5,
        tol: float = 1e-6,
        max_iter: int = 100,
        synonym_threshold: float = 0.8,
        synonym_candidates: int = 5,
        fact_seeds: int = 5,
        fact_threshold: float = 0.3,
        entity_seeds: int = 5,
        entity_threshold: float = 0.5,
        passage_seeds: int = 100,
        passage_weight: float = 0.5,
        fact_share: float = 0.0,
        entity_turn_cap: int = 20,
    ) -> None:
        self.name = name
        self.damping, self.tol, self.max_iter = damping, tol, max_iter
        self.synonym_threshold = synonym_threshold
        self.synonym_candidates = synonym_candidates
        self.fact_seeds, self.entity_seeds = fact_seeds, entity_seeds
        self.fact_threshold = fact_threshold
        self.entity_threshold = entity_threshold
        self.passage_seeds, self.passage_weight = passage_seeds, passage_weight
        self.fact_share = fact_share
        self.entity_turn_cap = entity_turn_cap
        #: Extraction failures (the store itself never calls a model).
        self.stats = BuildStats()
        self._context = context
        self._index = KindIndex(context, name)
        self._rules = RuleExtractor()
        self._users: dict[str, UserGraph] = {}
        self._writer = GraphWriter(
            context,
            name,
            self._index,
            rules=self._rules,
            stats=self.stats,
            entity_turn_cap=entity_turn_cap,
            synonym_threshold=synonym_threshold,
            synonym_candidates=synonym_candidates,
        )
        self._lock = threading.RLock()

    def _new_engine(self) -> PersonalizedPageRank:
        return PersonalizedPageRank(damping=self.damping, tol=self.tol, max_iter=self.max_iter)

    @property
    def extractor(self) -> FactExtractor:
        """The shared extractor, or the rule extractor when the context has none."""
        return self._context.extractor or self._rules

    def user_graph(self, user_id: str) -> UserGraph:
        """Return a user's graph, loading it from the records on first use."""
        with self._lock:
            state = self._users.get(user_id)
            if state is None:
                state = self._users[user_id] = self._load(user_id)
            return state

    def _load(self, user_id: str) -> UserGraph:
        """Rebuild a user's graph from the persisted items (after a restart)."""
        state = UserGraph(self._new_engine)
        items = self._context.records.store_items(self.name, user_id, current_only=False)
        for item in items:
            if item.kind in ("entity", "passage"):
                state.add_node(item)
        link(state, items)
        logger.debug("graph of %s loaded: %d items", user_id, len(items))
        return state

    # -- writing --------------------------------------------------------------------------

    def write(self, turns: Sequence[Turn]) -> list[Change]:
        """Fold turns in: a passage each, their facts, new entities and synonym edges."""
        turns = list(turns)
        if not turns:
            return []
        facts = self._writer.extract(self.extractor, turns)
        changed: list[Change] = []
        with self._lock:
            for user_id in dict.fromkeys(t.user_id for t in turns):
                state = self.user_graph(user_id)
                # A replay after another structure failed writes the same turns again.
                fresh = [t for t in turns if t.user_id == user_id and t.id not in state.turns]
                changed += self._writer.fold(state, user_id, fresh, facts, passages=True)
        return changed

    # -- retrieval ------------------------------------------------------------------------

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Return the top facts and the passages ranked by PageRank from the query's seeds."""
        if k <= 0:
            return []
        user_id = query.scope.user_id
        state = self.user_graph(user_id)
        if not state.passage_index:
            return []
        embedding = query.embedding
        if embedding is None:
            embedding = self._index.embed([query.text])[0]
        named, stripped = _named(query.text, state.speakers)
        # The passages are matched by what was said, their speaker by name (see _seeds).
        dense_embedding = self._index.embed([stripped])[0] if named else embedding
        # Seeds need only ids and similarities: no records lookup until the results. The
        # recency window is left out of the results, not out of the seeds: recent facts
        # still point the walk at older passages.
        view: View = "history" if query.include_history else query.as_of
        wanted = max(k, self.fact_seeds) + len(query.exclude_turn_ids)
        asked = {"fact": wanted, "entity": self.entity_seeds}
        near = self._index.nearest(user_id, embedding, asked, view)
        dense = self._index.nearest(
            user_id, dense_embedding, {"passage": self.passage_seeds}, view
        )["passage"]
        facts, entities = near["fact"], near["entity"]
        with self._lock:
            seeds = self._seeds(state, facts[: self.fact_seeds], entities, dense, named)
            walked = (
                self._walk(state, view, seeds, k + len(query.exclude_turn_ids)) if seeds else []
            )
        # One records lookup loads the facts and the candidate passages together.
        ids = [h.id for h in facts] + [item_id for item_id, _ in walked]
        items = {i.id: i for i in self._context.records.items(ids, user_id=user_id)}
        ranked = [
            (items[item_id], mass)
            for item_id, mass in walked
            if item_id in items and visible(items[item_id], query)
        ][:k]
        best = max([h.similarity for h in facts[:1] + dense[:1]] + [1e-6])
        top_mass = ranked[0][1] if ranked else 1.0
        passages = [Recalled(item, best * mass / top_mass) for item, mass in ranked]
        shown: list[Recalled] = []
        texts: set[str] = set()
        for hit in facts:  # the same fact stated in several turns shows once
            fact = items.get(hit.id)
            # A "no longer" fact records an ending: it is history, shown only with it, so
            # the ended value is never put before the model as if it were current news.
            ended = fact is not None and fact.metadata.get("polarity") is False
            if ended and not query.include_history:
                continue
            if fact is not None and visible(fact, query) and fact.text not in texts:
                texts.add(fact.text)
                shown.append(Recalled(fact, hit.similarity))
        if self.fact_share <= 0:
            # HippoRAG 2 ranks passages; the facts only seeded the walk. They follow the
            # passages (for a question the passages do not fill), scored below them.
            floor = passages[-1].score if passages else 1.0
            tail = [Recalled(r.item, floor * max(r.score, 0.0)) for r in shown]
            return (passages + tail)[:k]
        fact_cap = max(math.ceil(k * self.fact_share), k - len(passages))
        # A stable sort keeps a fact ahead of the passage it ties with.
        return sorted(shown[:fact_cap] + passages, key=lambda r: -r.score)[:k]

    def _seeds(
        self,
        state: UserGraph,
        facts: Sequence[Hit],
        entities: Sequence[Hit],
        passages: Sequence[Hit],
        named: frozenset[str] = frozenset(),
    ) -> dict[int, float]:
        """Return the walk's restart weights by engine index (HippoRAG 2's node weights).

        Phrase (entity) nodes are seeded by the facts and names the query matches, each
        divided by the number of passages it is in (specificity); passage nodes by their
        dense similarity to the query, min-max normalised over those found and times
        ``passage_weight`` (HippoRAG 2's weight factor), a passage said by a speaker the
        query names scoring :data:`SPEAKER_BONUS` more.
        """
        weights: dict[str, float] = {}
        for fact in facts:
            if fact.similarity < self.fact_threshold or fact.id not in state.facts:
                continue
            subject, obj = state.facts[fact.id][1][0]  # the fact's relation edge
            for node in dict.fromkeys((subject, obj)):
                weights[node] = weights.get(node, 0.0) + fact.similarity
        for entity in entities:
            found = state.nodes.get(entity.id)
            if found is not None and entity.similarity >= self.entity_threshold:
                weights[found] = weights.get(found, 0.0) + entity.similarity
        seeds: dict[int, float] = {}
        for node, weight in weights.items():
            index = state.engine.index(node)
            if index is not None:  # specificity: an entity in many passages says little
                seeds[index] = weight / max(1, state.graph.nodes[node]["passages"])
        nodes = state.graph.nodes
        scored = []
        for passage in passages:
            node = passage_node(passage.id)
            if node in nodes:
                bonus = SPEAKER_BONUS if nodes[node].get("speaker") in named else 0.0
                scored.append((node, passage.similarity + bonus))
        if scored:
            low = min(score for _, score in scored)
            span = max(score for _, score in scored) - low or 1.0
            for node, score in scored:
                index = state.engine.index(node)
                if index is not None:
                    weight = self.passage_weight * (score - low) / span
                    seeds[index] = seeds.get(index, 0.0) + weight
        return {index: weight for index, weight in seeds.items() if weight > 0}

    def _walk(
        self, state: UserGraph, view: View, seeds: dict[int, float], k: int
    ) -> list[tuple[str, float]]:
        """Run the walk; return candidate passages (item id, mass), best first."""
        mass = state.view_engine(view).run(seeds)
        scores = mass[state.passages()]
        candidates = np.flatnonzero(scores > 0)
        wanted = k + 8  # room for what visibility drops
        if len(candidates) > wanted:
            candidates = candidates[np.argpartition(-scores[candidates], wanted)[:wanted]]
        top = scores.max() if len(scores) else 1.0
        nodes = state.graph.nodes
        # Near-equal masses differ only by rounding; break such ties by recency, so a
        # reloaded graph (another summation order) ranks the same.
        order = sorted(
            (int(i) for i in candidates),
            key=lambda i: (-round(scores[i] / top, 9), -nodes[state.passage_nodes[i]]["turn"]),
        )
        return [(nodes[state.passage_nodes[i]]["item"], float(scores[i])) for i in order]

    # -- invalidation and erasure ---------------------------------------------------------

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
    ) -> None:
        """Mark facts, passages or entities invalid; their edges stop conducting."""
        mine = [i.id for i in self._context.records.items(item_ids) if i.store == self.name]
        changed = self._index.invalidate(mine, reason, at=at, superseded_by=superseded_by)
        with self._lock:
            for item in changed:
                state = self._users.get(item.user_id)
                if state is not None:  # an unloaded graph reads validity when it loads
                    state.invalidate(item)

    def delete(
        self, item_ids: Sequence[str], *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Delete facts, passages or entities; a passage takes the facts read from it along.

        A deleted item's edges stop conducting, as an invalidated one's do.
        """
        with self._lock:
            mine = [i for i in self._context.records.items(item_ids) if i.store == self.name]
            ids = [i.id for i in mine] + [
                fact.id for item in mine if item.kind == "passage" for fact in self._facts_of(item)
            ]
            changed = self._index.delete(list(dict.fromkeys(ids)), reason, at=at)
            for item in changed:
                self.user_graph(item.user_id).invalidate(item)
            return [Change("DELETE", item, reason) for item in changed]

    def update(
        self, item_id: str, text: str, *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Change a fact's or passage's text and re-embed it under its own kind.

        A passage's facts were read from its old text: they are superseded by the passage,
        and the facts of the new text are extracted and linked in their place. A fact keeps
        the edge it was extracted as (its text is what recall shows and matches).
        """
        with self._lock:
            item = self._context.records.get_item(item_id)
            if item.store != self.name or item.kind not in ("fact", "passage"):
                raise NotFoundError(
                    f"memory item {item_id!r} is not a fact or passage of {self.name}"
                )
            if not item.current:
                raise InputError(
                    f"memory item {item_id!r} is no longer current; its history is kept as is"
                )
            updated = self._index.update(item, text, reason=reason, at=at)
            changes = [Change("UPDATE", updated, reason)]
            if item.kind != "passage":
                return changes
            state = self.user_graph(item.user_id)
            old = [f.id for f in self._facts_of(item)]
            why = f"read from a passage that was edited: {reason}"
            ended = self._index.invalidate(old, why, at=at, superseded_by=item.id)
            for fact in ended:
                state.invalidate(fact)
            changes += [Change("SUPERSEDE", fact, why) for fact in ended]
            turns = self._context.records.turns(item.user_id, ids=list(item.source_turn_ids))
            if turns:
                speaker = str(item.metadata.get("speaker", turns[0].speaker))
                edited = replace(turns[0], text=text.removeprefix(f"{speaker}: "))
                facts = self.extractor.extract([edited])
                changes += self._writer.fold(state, item.user_id, [edited], facts, passages=False)
            return changes

    def _facts_of(self, passage: MemoryItem) -> list[MemoryItem]:
        """Return the current facts read from ``passage``."""
        facts = self._context.records.store_items(self.name, passage.user_id, kind="fact")
        return [f for f in facts if f.metadata.get("passage") == passage.id]

    def outline(self, user_id: str, *, focus: str = "", limit: int = 200) -> list[Outline]:
        """Return the triples around the entity ``focus`` (current ones first), then the
        best-connected entities as suggestions of what to look at."""
        return outline(self._context.records, self.name, user_id, focus=focus, limit=limit)

    def forget(self, user_id: str) -> int:
        """Drop the user's vectors and cached graph (the records database forgets the rows)."""
        with self._lock:
            self._users.pop(user_id, None)
        return self._index.forget(user_id)

    # -- retries --------------------------------------------------------------------------

    def retry_pending(self, user_id: str | None = None) -> int:
        """Re-extract turns whose extraction failed; return how many batches succeeded.

        The model's facts replace the rule-based stand-ins: new facts are added, and rule
        facts the model did not confirm are invalidated from their own turn's time.
        """
        return retry_queued(
            self.extractor, self._context.records, self.name, user_id, self._replace_locked
        )

    def _replace_locked(
        self, user_id: str, turns: list[Turn], facts: dict[int, list[Fact]]
    ) -> None:
        with self._lock:
            state = self.user_graph(user_id)
            unconfirmed = self._writer.replace_facts(state, user_id, turns, facts)
            for fact in unconfirmed:
                self.invalidate(
                    [fact.id], "graph: replaced by model extraction", at=fact.valid_from
                )


__all__ = ["GraphStore"]
