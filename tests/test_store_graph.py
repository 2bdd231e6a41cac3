"""The HippoRAG 2 graph store: the shared contract, PageRank behaviour, and extraction paths."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from agentmem.errors import ModelUnavailableError
from agentmem.ledger.extraction import Fact, ModelExtractor
from agentmem.models.embeddings import CachingEmbedder
from agentmem.protocols import MemoryStore, Resumable, StoreContext
from agentmem.storage.records import Records
from agentmem.storage.vectors import VectorIndex
from agentmem.stores.graph import GraphStore, PersonalizedPageRank
from agentmem.stores.graph.folding import new_item
from agentmem.stores.graph.index import KindIndex
from agentmem.stores.graph.user_graph import entity_node
from agentmem.testing import ScriptedChatModel
from agentmem.testing.contract import MemoryStoreContract, shared_embedder
from agentmem.text import content_words
from agentmem.types import Query, Recalled, Scope, Turn

START = datetime(2024, 3, 1, 9, 0)
#: Ana's city links her to the festival; nothing in the query names either.
BRIDGE = "Ana lives in Porto."
FESTIVAL = "Porto hosts a jazz festival every June."
UNRELATED = "There is so much to do where I live, honestly."
FILLER = (
    "I bought new running shoes yesterday.",
    "My brother Tom just bought a red electric car.",
    "We are planning a hiking trip to the Alps next summer.",
)
ASK = "What is there to do where Ana lives?"


class TestGraphStoreContract(MemoryStoreContract):
    def make_store(self, context: StoreContext) -> MemoryStore:
        return GraphStore(context)


# -- helpers --------------------------------------------------------------------------------


def add_turns(
    context: StoreContext, lines: Sequence[str], user_id: str = "u1", start: datetime = START
) -> list[Turn]:
    session = context.records.start_session(user_id, started_at=start)
    return [
        context.records.add_turn(
            user_id, session, "user", "user", line, timestamp=start + timedelta(minutes=i)
        )
        for i, line in enumerate(lines)
    ]


def ask(
    store: GraphStore, context: StoreContext, text: str = ASK, **options: object
) -> list[Recalled]:
    embedding = context.embedder.embed([text])[0]
    query = Query(text=text, scope=Scope("u1"), embedding=embedding, **options)  # type: ignore[arg-type]
    found = store.retrieve(query, 10)
    scores = [r.score for r in found]
    assert scores == sorted(scores, reverse=True)
    return found


def rank(found: Sequence[Recalled], text: str) -> int:
    """Position of the passage whose text ends with ``text`` (len(found) when absent)."""
    for position, recalled in enumerate(found):
        if recalled.item.kind == "passage" and recalled.item.text.endswith(text):
            return position
    return len(found)


@pytest.fixture
def context(tmp_path: Path) -> Iterator[StoreContext]:
    """The app's context (a caching embedder), on the contract suite's MiniLM."""
    records = Records(tmp_path / "records.db")
    embedder = shared_embedder()
    yield StoreContext(
        records, VectorIndex(embedder, path=tmp_path / "chroma"), CachingEmbedder(embedder)
    )
    records.close()


@pytest.fixture
def bridged(context: StoreContext) -> tuple[GraphStore, list[Turn]]:
    store = GraphStore(context)
    turns = add_turns(context, [BRIDGE, FESTIVAL, UNRELATED, *FILLER])
    store.write(turns)
    return store, turns


# -- HippoRAG behaviour ---------------------------------------------------------------------


def test_two_hop_passage_outranks_an_unrelated_one(
    bridged: tuple[GraphStore, list[Turn]], context: StoreContext
) -> None:
    store, _ = bridged
    assert not set(content_words(ASK)) & set(content_words(FESTIVAL))
    # Without the graph, dense similarity alone prefers the unrelated passage.
    vectors = context.embedder.embed([ASK, FESTIVAL, UNRELATED])
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[1]
    found = ask(store, context)
    assert rank(found, FESTIVAL) < rank(found, UNRELATED)
    assert rank(found, FESTIVAL) < len(found)


def test_passages_are_seeded_by_meaning_and_a_named_speaker_by_name(
    context: StoreContext,
) -> None:
    """HippoRAG 2 seeds every passage the query matches (times its weight factor); a
    speaker's name is matched to who said a passage, not embedded with the query, so the
    turn that answers comes first even when it never names its speaker."""
    store = GraphStore(context)
    session = context.records.start_session("u1", started_at=START)
    lines = [
        ("Tariq", "Ha, maybe."),
        ("Tariq", "I weld hulls at the shipyard in Gdynia these days."),
        ("Bea", "Nice one."),
        ("Bea", "I teach welding to apprentices at the college."),
        ("Tariq", "Sure."),
    ]
    turns = [
        context.records.add_turn(
            "u1", session, speaker, "user", text, timestamp=START + timedelta(minutes=i)
        )
        for i, (speaker, text) in enumerate(lines)
    ]
    store.write(turns)
    found = ask(store, context, "What does Tariq do for a living?")
    passages = [r.item.text for r in found if r.item.kind == "passage"]
    assert passages[0] == "Tariq: I weld hulls at the shipyard in Gdynia these days."
    # The ranking is over passages: facts come only after them.
    kinds = [r.item.kind for r in found]
    assert kinds[: len(passages)] == ["passage"] * len(passages)


def test_a_passage_writes_down_its_relative_dates(context: StoreContext) -> None:
    store = GraphStore(context)
    store.write(add_turns(context, ["I ran the Porto half marathon yesterday."]))
    [passage] = context.records.store_items("graph", "u1", kind="passage")
    assert passage.text == "user: I ran the Porto half marathon yesterday [29 February 2024]."


def test_synonym_edges_join_near_identical_names_only(context: StoreContext) -> None:
    store = GraphStore(context)
    store.write(add_turns(context, ["Rita moved to New York City.", "We watched Tom and Jerry."]))
    store.write(
        add_turns(context, ["Later I visited NYC with my friend.", "Then I flew to Lisbon."])
    )
    graph = store.user_graph("u1").graph
    nyc, city = entity_node("nyc"), entity_node("new york city")
    assert graph.has_edge(nyc, city) and graph.edges[nyc, city]["synonym"] >= 0.8
    assert store.user_graph("u1").engine.degree(store.user_graph("u1").engine.index(nyc) or 0) > 0
    for a, b in (("tom", "jerry"), ("lisbon", "new york city"), ("lisbon", "nyc")):
        assert not graph.has_edge(entity_node(a), entity_node(b))


def test_invalidated_fact_stops_conducting_but_stays_in_history(
    bridged: tuple[GraphStore, list[Turn]], context: StoreContext
) -> None:
    store, turns = bridged
    fact = next(r.item for r in ask(store, context) if r.item.text == "Ana lives in Porto")
    edge = store.user_graph("u1").graph.edges[entity_node("ana"), entity_node("porto")]
    assert edge["weight"] == 1.0
    moved = START + timedelta(days=30)
    store.invalidate([fact.id], "Ana moved away", at=moved)
    assert edge["weight"] == 0.0 and fact.id in edge["facts"]
    graph = store.user_graph("u1")
    ends = (entity_node("ana"), entity_node("porto"))
    assert graph.weight(*ends, edge, "history") == 1.0  # history still conducts it,
    assert graph.weight(*ends, edge, moved - timedelta(days=1)) == 1.0  # and so did the past
    assert graph.weight(*ends, edge, moved) == 0.0
    found = ask(store, context)
    assert all(r.item.id != fact.id for r in found)
    assert rank(found, FESTIVAL) > rank(found, UNRELATED)
    history = ask(store, context, include_history=True)
    assert any(r.item.id == fact.id and not r.item.current for r in history)
    before = ask(store, context, as_of=moved - timedelta(days=1))
    assert rank(before, FESTIVAL) < rank(before, UNRELATED)


def test_negative_facts_are_history_not_current_memory(context: StoreContext) -> None:
    store = GraphStore(context)
    store.write(add_turns(context, ["Sam no longer works as a barista.", *FILLER]))
    found = ask(store, context, "What is Sam's job?")
    assert not any(r.item.kind == "fact" and "barista" in r.item.text for r in found)
    history = ask(store, context, "What is Sam's job?", include_history=True)
    fact = next(r.item for r in history if r.item.kind == "fact")
    assert fact.metadata["polarity"] is False and "barista" in fact.text


def test_engine_is_compiled_only_after_a_write(
    bridged: tuple[GraphStore, list[Turn]], context: StoreContext
) -> None:
    store, turns = bridged
    engine = store.user_graph("u1").engine
    ask(store, context)
    compiled = engine.stats.compiles
    ask(store, context)
    ask(store, context, "Tell me about Tom's car.")
    assert engine.stats.compiles == compiled
    later = add_turns(
        context,
        ["They say Porto has wonderful seafood restaurants."],
        start=START + timedelta(hours=1),
    )
    store.write(later)
    found = ask(store, context)
    assert engine.stats.compiles == compiled + 1
    porto = context.records.get_item(store.user_graph("u1").entities["porto"])
    assert porto.source_turn_ids == tuple(t.id for t in turns[:2]) + (later[0].id,)
    assert rank(found, "Porto has wonderful seafood restaurants.") < rank(found, UNRELATED)


def test_recency_window_is_left_out(
    bridged: tuple[GraphStore, list[Turn]], context: StoreContext
) -> None:
    store, turns = bridged
    found = ask(store, context, exclude_turn_ids=frozenset({turns[0].id}))
    assert found and all(turns[0].id not in r.item.source_turn_ids for r in found)
    # The recent fact still seeds the walk: the other passages score as without the window.
    full = {r.item.id: r.score for r in ask(store, context) if r.item.kind == "passage"}
    shown = {r.item.id: r.score for r in found if r.item.kind == "passage"}
    ratios = [shown[i] / full[i] for i in shown]
    assert len(ratios) >= 3 and max(ratios) - min(ratios) < 1e-6


def test_restart_reloads_the_graph_with_the_same_ranking(
    bridged: tuple[GraphStore, list[Turn]],
    context: StoreContext,
    tmp_path: Path,
) -> None:
    store, _ = bridged
    store.write(add_turns(context, ["Rita moved to New York City.", "Rita loves NYC."]))
    before = [(r.item.id, round(r.score, 6)) for r in ask(store, context)]
    records, embedder = Records(tmp_path / "records.db"), shared_embedder()
    try:
        reopened = StoreContext(records, VectorIndex(embedder, path=tmp_path / "chroma"), embedder)
        again = GraphStore(reopened)
        after = [(r.item.id, round(r.score, 6)) for r in ask(again, reopened)]
        graph = again.user_graph("u1").graph
    finally:
        records.close()
    assert after == before

    def edges(graph: nx.Graph) -> dict[frozenset[str], tuple[float, float, int]]:
        return {
            frozenset((u, v)): (d["weight"], d["synonym"], len(d["facts"]))
            for u, v, d in graph.edges(data=True)
        }

    assert edges(graph) == edges(store.user_graph("u1").graph)
    assert any(synonym for _, synonym, _ in edges(graph).values())


# -- the PageRank engine --------------------------------------------------------------------


@pytest.mark.parametrize("fold_fraction", [0.0, 10.0])  # always / never fold changes in
def test_pagerank_matches_networkx_through_incremental_updates(fold_fraction: float) -> None:
    rng = np.random.default_rng(7)
    graph = nx.gnm_random_graph(120, 360, seed=7)
    graph.add_nodes_from([120, 121])  # isolated: dangling mass returns to the seeds
    exact = PersonalizedPageRank(
        tol=1e-12, max_iter=500, fold_fraction=fold_fraction, dtype=np.float64
    )
    fast = PersonalizedPageRank(fold_fraction=fold_fraction)  # the defaults: float32, tol 1e-6
    engines = (exact, fast)
    edges = list(graph.edges)
    for engine in engines:
        engine.add_nodes(range(122))
    for u, v in edges:
        graph.edges[u, v]["weight"] = float(rng.integers(1, 4))
        for engine in engines:
            engine.add_weight(u, v, graph.edges[u, v]["weight"])
    seeds = {edges[0][0]: 0.5, 5: 0.3, 121: 0.2}  # touching the changed edges
    for engine in engines:
        engine.run(seeds)
    # Later writes and an invalidation arrive as deltas, folded in lazily.
    for u, v in edges[:40]:
        for engine in engines:
            engine.add_weight(u, v, -graph.edges[u, v]["weight"])
        graph.remove_edge(u, v)
    graph.add_edge(5, 77, weight=2.5)
    for engine in engines:
        engine.add_weight(5, 77, 2.5)
    for alpha in (0.5, 0.85):
        exact.damping = fast.damping = alpha
        theirs = nx.pagerank(graph, alpha=alpha, personalization=seeds, tol=1e-14, max_iter=2000)
        expected = np.array([theirs[i] for i in range(122)])
        ours = exact.run(seeds)
        assert np.abs(ours - expected).max() < 1e-9
        assert list(np.argsort(-ours)[:20]) == list(np.argsort(-expected)[:20])
        approximate = fast.run(seeds)
        assert np.abs(approximate - expected).sum() < 1e-6
        assert list(np.argsort(-approximate)[:10]) == list(np.argsort(-expected)[:10])


def test_pagerank_compiles_lazily_and_folds_rarely() -> None:
    engine = PersonalizedPageRank(fold_fraction=0.5)
    engine.add_nodes(range(1000))
    rng = np.random.default_rng(1)
    engine.add_weights(rng.integers(0, 1000, 4000), rng.integers(0, 1000, 4000), np.ones(4000))
    first = engine.run({0: 1.0})
    assert (engine.stats.compiles, engine.stats.folds) == (1, 1)
    assert np.array_equal(engine.run({0: 1.0}), first)
    assert engine.stats.compiles == 1
    engine.add_weight(0, 999, 1.0)  # a small change: a change matrix, no full rebuild
    moved = engine.run({0: 1.0})
    assert (engine.stats.compiles, engine.stats.folds) == (2, 1)
    assert moved[999] > first[999]
    with pytest.raises(ValueError):
        engine.run({})


# -- extraction paths -----------------------------------------------------------------------


def model_facts(turns: Sequence[Turn]) -> dict[str, list[dict[str, object]]]:
    """A model's answer: Ana plays the cello (something the rules cannot see)."""
    return {
        "facts": [
            {
                "turn_id": turns[0].id,
                "subject": "Ana",
                "attribute": "plays",
                "value": "cello",
                "stated": True,
                "polarity": True,
            }
        ]
    }


CELLO = "Ana has been practising for hours, the cello sounds lovely."


def with_extractor(context: StoreContext, extractor: object) -> StoreContext:
    return StoreContext(context.records, context.vectors, context.embedder, extractor=extractor)  # type: ignore[arg-type]


def facts_of(store: GraphStore, context: StoreContext) -> dict[str, bool]:
    found = context.records.store_items(store.name, "u1", kind="fact", current_only=False)
    return {item.text: item.current for item in found}


def test_model_facts_are_used(context: StoreContext) -> None:
    turns = add_turns(context, [CELLO])
    model = ScriptedChatModel([model_facts(turns)], default=None)
    store = GraphStore(with_extractor(context, ModelExtractor(model)))
    store.write(turns)
    assert facts_of(store, context) == {"Ana plays cello": True}
    assert store.user_graph("u1").graph.has_edge(entity_node("ana"), entity_node("cello"))


def test_invalid_model_answer_is_repaired(context: StoreContext) -> None:
    turns = add_turns(context, [CELLO])
    wrong = {"facts": [{**model_facts(turns)["facts"][0], "turn_id": 999}]}
    model = ScriptedChatModel([wrong, model_facts(turns)], default=None)
    store = GraphStore(with_extractor(context, ModelExtractor(model)))
    store.write(turns)
    assert len(model.calls) == 2
    assert facts_of(store, context) == {"Ana plays cello": True}


class OutageExtractor:
    """A model-backed extractor whose endpoint is down until ``up`` is set."""

    name = "outage"

    def __init__(self, inner: ModelExtractor) -> None:
        self.inner = inner
        self.up = False

    def extract(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        if not self.up:
            raise ModelUnavailableError("the endpoint is unreachable", retryable=True)
        return self.inner.extract(turns)


def test_failed_extraction_is_queued_and_retried(context: StoreContext) -> None:
    turns = add_turns(context, ["Ana works as a nurse. " + CELLO])
    extractor = OutageExtractor(
        ModelExtractor(ScriptedChatModel([model_facts(turns)], default=None))
    )
    store = GraphStore(with_extractor(context, extractor))
    assert isinstance(store, Resumable)
    store.write(turns)
    assert facts_of(store, context) == {"Ana works as nurse": True}  # the rules, for now
    assert len(context.records.pending_work(store.name)) == 1 and store.stats.queued == 1
    assert store.retry_pending() == 0  # still down: stays queued
    extractor.up = True
    assert store.retry_pending("u1") == 1
    assert facts_of(store, context) == {"Ana works as nurse": False, "Ana plays cello": True}
    assert context.records.pending_work(store.name) == []
    assert (
        store.user_graph("u1").graph.edges[entity_node("ana"), entity_node("nurse")]["weight"] == 0
    )


def test_kind_index_drops_invalidated_hits_without_losing_current_ones(
    context: StoreContext,
) -> None:
    index = KindIndex(context, "graph")
    turn = add_turns(context, ["placeholder"])[0]
    rng = np.random.default_rng(3)
    query = rng.standard_normal(384).astype(np.float32)
    query /= np.linalg.norm(query)
    # 30 facts at growing angles from the query; the 25 nearest get invalidated.
    noise = rng.standard_normal((30, 384))
    noise -= (noise @ query)[:, None] * query
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    angles = np.linspace(0.1, 1.4, 30)[:, None]
    vectors = (np.cos(angles) * query + np.sin(angles) * noise).astype(np.float32)
    items = [
        new_item("graph", "fact", turn, f"fact {n}", {"n": n}, item_id=f"f{n:02d}")
        for n in range(30)
    ]
    index.add(items, vectors, reason="test")
    later = turn.timestamp + timedelta(days=1)
    index.invalidate([f"f{n:02d}" for n in range(25)], "test", at=later)
    current = index.nearest("u1", query, {"fact": 5})["fact"]
    assert [h.id for h in current] == [f"f{n:02d}" for n in range(25, 30)]
    assert len(index.nearest("u1", query, {"fact": 5}, "history")["fact"]) == 5
    past = index.nearest("u1", query, {"fact": 5}, later - timedelta(hours=1))["fact"]
    assert [h.id for h in past] == [f"f{n:02d}" for n in range(5)]
    assert index.forget("u1") == 30
