"""MemTree against the shared contract, and the behaviour of the paper's tree."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentmem.errors import ModelUnavailableError
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder
from agentmem.prompts.memtree import AGGREGATE_SCHEMA, validate_aggregation
from agentmem.protocols import Consolidating, MemoryStore, Resumable, StoreContext
from agentmem.storage.records import Records
from agentmem.storage.vectors import VectorIndex
from agentmem.stores.memtree import MemTreeStore
from agentmem.testing import ScriptedChatModel
from agentmem.testing.contract import MemoryStoreContract, shared_embedder
from agentmem.types import MemoryItem, Message, Query, Scope, Turn

START = datetime(2024, 3, 1, 9, 0)

ADOPTED = "I adopted a beagle puppy named Rex last weekend."
CHEWED = "Rex the beagle chewed my favourite shoes this morning."
WALK = "I walk my dog Rex in the park every evening."
SCHOOL = "Rex learned to sit and give paw at puppy school."
VET = "The vet said Rex needs his vaccinations next month."
NURSE = "I started a new job as a nurse at the city hospital."
SHIFTS = "My night shifts as a nurse at the hospital are exhausting."
PROMOTED = "My manager at the hospital promoted me to head nurse."


class TestMemTreeStore(MemoryStoreContract):
    def make_store(self, context: StoreContext) -> MemoryStore:
        return MemTreeStore(context)


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    """Share the contract suite's MiniLM instead of loading a second one."""
    return shared_embedder()


@pytest.fixture
def context(records: Records, vectors: VectorIndex, embedder: MiniLMEmbedder) -> StoreContext:
    return StoreContext(records, vectors, CachingEmbedder(embedder))


def add_turns(
    context: StoreContext,
    lines: Sequence[str],
    *,
    user_id: str = "alice",
    start: datetime = START,
    session_id: str = "s1",
) -> list[Turn]:
    session = context.records.start_session(user_id, session_id=session_id, started_at=start)
    return [
        context.records.add_turn(
            user_id, session, "user", "user", line, timestamp=start + timedelta(minutes=i)
        )
        for i, line in enumerate(lines)
    ]


def write_each(store: MemTreeStore, turns: Sequence[Turn]) -> None:
    """Fold turns in one at a time, as a chat does."""
    for turn in turns:
        store.write([turn])


def nodes(context: StoreContext, user_id: str = "alice") -> dict[str, MemoryItem]:
    items = context.records.store_items("memtree", user_id, current_only=False)
    return {item.id: item for item in items}


def leaf_of(tree: dict[str, MemoryItem], turn: Turn) -> MemoryItem:
    return next(i for i in tree.values() if i.metadata["leaf"] and i.source_turn_ids == (turn.id,))


def ancestors(tree: dict[str, MemoryItem], item: MemoryItem) -> list[MemoryItem]:
    found = []
    while item.metadata["parent"] is not None:
        item = tree[item.metadata["parent"]]
        found.append(item)
    return found


def lowest_common_ancestor(tree: dict[str, MemoryItem], turns: Sequence[Turn]) -> MemoryItem:
    chains = [[i.id for i in ancestors(tree, leaf_of(tree, t))] for t in turns]
    shared = [node_id for node_id in chains[0] if all(node_id in c for c in chains[1:])]
    assert shared, "these turns share no subtree"
    return tree[shared[0]]


def query(context: StoreContext, text: str, **options: Any) -> Query:
    embedding = context.embedder.embed([text])[0]
    return Query(text=text, scope=Scope("alice"), embedding=embedding, **options)


# -- the paper's behaviour --------------------------------------------------------------------


def test_threshold_rises_with_depth(context: StoreContext) -> None:
    store = MemTreeStore(context)
    assert store.threshold(0, 3) == pytest.approx(0.4)
    assert store.threshold(1, 2) == pytest.approx(0.4 * math.exp(0.5 / 2))
    assert store.threshold(3, 3) == pytest.approx(0.4 * math.exp(0.5))
    assert [store.threshold(d, 4) for d in range(5)] == sorted(
        store.threshold(d, 4) for d in range(5)
    )
    assert store.threshold(1, 0) == store.threshold(1, 1)  # a tree of depth 0 counts as 1
    tuned = MemTreeStore(context, base_threshold=0.3, threshold_growth=1.0)
    assert tuned.threshold(2, 2) == pytest.approx(0.3 * math.e)


def test_similar_turns_descend_into_the_same_subtree(context: StoreContext) -> None:
    store = MemTreeStore(context)
    dog = add_turns(context, [ADOPTED, NURSE, CHEWED, SHIFTS, WALK, PROMOTED, SCHOOL])
    write_each(store, dog)
    tree = nodes(context)
    dog_turns, job_turns = dog[0::2], dog[1::2]
    for topic, other in ((dog_turns, job_turns), (job_turns, dog_turns)):
        common = lowest_common_ancestor(tree, topic)
        assert not common.metadata["leaf"]
        assert {t.id for t in topic} <= set(common.source_turn_ids)
        assert not {t.id for t in other} & set(common.source_turn_ids)
    assert len([i for i in tree.values() if i.metadata["parent"] is None]) == 2


@pytest.mark.parametrize(("growth", "depth"), [(0.5, 2), (0.0, 3)])
def test_deeper_threshold_stops_an_insertion_early(
    context: StoreContext, embedder: MiniLMEmbedder, growth: float, depth: int
) -> None:
    adopted, chewed, vet = embedder.embed([ADOPTED, CHEWED, VET])
    centroid = (adopted + chewed) / float(((adopted + chewed) ** 2).sum() ** 0.5)
    # Preconditions on MiniLM: the vet turn matches the dog node (>= θ(0) = 0.4) and a
    # dog leaf under it at the flat 0.4, but not at θ(1) = 0.4·e^(0.5/2) ≈ 0.51.
    assert float(adopted @ chewed) >= 0.4
    assert float(centroid @ vet) >= 0.4
    assert 0.4 <= max(float(vet @ adopted), float(vet @ chewed)) < 0.4 * math.exp(0.25)

    store = MemTreeStore(context, threshold_growth=growth)
    turns = add_turns(context, [ADOPTED, CHEWED, VET])
    write_each(store, turns)
    tree = nodes(context)
    dog_node = lowest_common_ancestor(tree, turns[:2])  # the second expanded the first
    assert dog_node.metadata["depth"] == 1
    third = leaf_of(tree, turns[2])
    assert third.metadata["depth"] == depth
    if growth:  # stopped at the dog node, one level above the leaves it did not match
        assert third.metadata["parent"] == dog_node.id
    else:  # the flat threshold lets it descend into a leaf and expand it
        assert tree[third.metadata["parent"]].metadata["parent"] == dog_node.id


def test_repeated_lines_do_not_grow_a_chain(context: StoreContext) -> None:
    store = MemTreeStore(context)
    write_each(store, add_turns(context, ["Ugh, sorry."] * 5))
    tree = nodes(context)
    assert len(tree) == 5  # each repetition is a sibling of the first, none expands it
    assert all(i.metadata["leaf"] and i.metadata["depth"] == 1 for i in tree.values())


def test_parents_reaggregate_after_an_insert_below(context: StoreContext) -> None:
    store = MemTreeStore(context)
    turns = add_turns(context, [ADOPTED, CHEWED, NURSE, SCHOOL])
    write_each(store, turns[:3])
    parent_id = leaf_of(nodes(context), turns[0]).metadata["parent"]
    before = context.records.get_item(parent_id)
    store.write([turns[3]])
    after = context.records.get_item(parent_id)
    assert turns[3].id in after.source_turn_ids
    assert turns[3].id not in before.source_turn_ids
    assert after.text != before.text
    assert "sit and give paw" in after.text
    assert after.metadata["leaves"] == before.metadata["leaves"] + 1
    update = context.records.history(parent_id)[-1]
    assert update.action == "UPDATE"
    assert (update.old_text, update.new_text) == (before.text, after.text)
    assert update.at == turns[3].timestamp


def test_invalidating_a_leaf_reaggregates_its_ancestors(context: StoreContext) -> None:
    store = MemTreeStore(context, top_words=60)
    turns = add_turns(context, [ADOPTED, CHEWED, WALK])
    write_each(store, turns)
    tree = nodes(context)
    target = leaf_of(tree, turns[1])
    above = ancestors(tree, target)
    assert above and all("chewed" in a.text for a in above)

    store.invalidate([target.id], "Rex never chewed anything", at=START + timedelta(days=1))
    for old in above:
        now = context.records.get_item(old.id)
        assert now.current
        assert "chewed" not in now.text
        assert turns[1].id not in now.source_turn_ids
        event = context.records.history(old.id)[-1]
        assert event.action == "UPDATE" and "Rex never chewed anything" in event.reason

    rest = [leaf_of(tree, t).id for t in (turns[0], turns[2])]
    store.invalidate(rest, "not a dog owner after all", at=START + timedelta(days=2))
    assert all(not context.records.get_item(a.id).current for a in above)
    assert store.retrieve(query(context, "my dog Rex"), 10) == []


def test_inserts_never_descend_into_invalid_nodes(context: StoreContext) -> None:
    store = MemTreeStore(context)
    turns = add_turns(context, [ADOPTED, CHEWED, SCHOOL])
    write_each(store, turns[:2])
    dog_node = leaf_of(nodes(context), turns[0]).metadata["parent"]
    store.invalidate([dog_node], "wrong summary")
    store.write([turns[2]])
    assert dog_node not in [
        a.id for a in ancestors(nodes(context), leaf_of(nodes(context), turns[2]))
    ]


def shape(tree: dict[str, MemoryItem], turns: Sequence[Turn]) -> list[tuple[Any, ...]]:
    """Describe a tree by which of ``turns`` lie below each node, and at what depth."""
    index = {t.id: n for n, t in enumerate(turns)}
    return sorted(
        (tuple(sorted(index[i] for i in item.source_turn_ids)), item.metadata["depth"])
        for item in tree.values()
    )


def test_tree_survives_a_restart(
    context: StoreContext, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    lines = [ADOPTED, NURSE, CHEWED, SHIFTS]
    store = MemTreeStore(context)
    control = add_turns(context, [*lines, SCHOOL], user_id="control", session_id="c1")
    write_each(store, control)  # the same dialogue without a restart
    turns = add_turns(context, lines)
    write_each(store, turns)
    store.end_session("alice", "s1")
    before = nodes(context)
    dog_node = lowest_common_ancestor(before, [turns[0], turns[2]])

    records = Records(tmp_path / "records.db")
    reopened = StoreContext(
        records, VectorIndex(embedder, path=tmp_path / "chroma"), CachingEmbedder(embedder)
    )
    try:
        again = MemTreeStore(reopened)
        later = add_turns(reopened, [SCHOOL], session_id="s2", start=START + timedelta(1))
        again.write(later)
        again.write(later)  # a resumed write of the same turn changes nothing
        after = nodes(reopened)
    finally:
        records.close()
    leaf = leaf_of(after, later[0])
    assert dog_node.id in [a.id for a in ancestors(after, leaf)]
    assert after[dog_node.id].metadata["leaves"] == dog_node.metadata["leaves"] + 1
    assert set(before) < set(after)
    assert shape(after, [*turns, *later]) == shape(nodes(context, "control"), control)


def test_retrieval_searches_the_collapsed_tree(context: StoreContext) -> None:
    store = MemTreeStore(context)
    turns = add_turns(context, [ADOPTED, NURSE, CHEWED, SHIFTS, WALK])
    write_each(store, turns)
    store.end_session("alice", "s1")
    found = store.retrieve(query(context, "Tell me about my dog Rex"), 10)
    kinds = {r.item.metadata["leaf"] for r in found}
    assert kinds == {True, False}, "leaves and internal nodes compete in one ranking"
    assert "Rex" in found[0].item.text
    recent = frozenset(t.id for t in turns[2:])
    hidden = store.retrieve(query(context, "Tell me about my dog Rex", exclude_turn_ids=recent), 10)
    assert all(not set(r.item.source_turn_ids) <= recent for r in hidden)
    assert store.retrieve(query(context, "dog", as_of=START - timedelta(days=1)), 10) == []


def test_an_internal_node_is_recalled_only_when_it_matches_better_than_its_leaves(
    context: StoreContext,
) -> None:
    store = MemTreeStore(context, vector_batch=1)
    lines = [ADOPTED, CHEWED, WALK, SCHOOL, VET, NURSE, SHIFTS, PROMOTED]
    write_each(store, add_turns(context, lines))
    store.end_session("alice", "s1")
    asked = query(context, "When are Rex's vaccinations due at the vet?")
    assert asked.embedding is not None
    found = store.retrieve(asked, 10)
    inner = [r for r in found if not r.item.metadata["leaf"]]
    assert inner, "internal nodes still compete"
    for recalled in inner:
        quoted = context.vectors.get("memtree", "alice", recalled.item.metadata["reps"])
        assert quoted and all(float(v @ asked.embedding) < recalled.score for v in quoted.values())
    assert found[0].item.metadata["leaf"] and VET in found[0].item.text
    assert len({r.item.id for r in found}) == len(found)


def test_a_topic_question_gets_the_nodes_of_every_level_as_the_paper_has_them(
    context: StoreContext,
) -> None:
    store = MemTreeStore(context, vector_batch=1)
    lines = [ADOPTED, CHEWED, WALK, SCHOOL, VET, NURSE, SHIFTS, PROMOTED]
    write_each(store, add_turns(context, lines))
    store.end_session("alice", "s1")
    text = "When are Rex's vaccinations due at the vet?"
    point = store.retrieve(query(context, text), 20)
    topic = store.retrieve(query(context, text, form="topic"), 20)
    inner = [r for r in topic if not r.item.metadata["leaf"]]
    # No leaf stands in for its node: the nodes compete by their own similarity.
    assert len(inner) > len([r for r in point if not r.item.metadata["leaf"]])
    assert all(r.score >= s.score for r, s in zip(topic, topic[1:], strict=False))


def test_a_recap_gets_the_nodes_that_best_cover_its_window(context: StoreContext) -> None:
    """Inner nodes say the gist of their leaves in fewer words: for a recap of a stretch of
    time they come before the leaves, when most of what they quote was said then."""
    store = MemTreeStore(context, vector_batch=1)
    march = add_turns(context, [ADOPTED, CHEWED, WALK, SCHOOL, VET])
    later = START + timedelta(days=40)
    april = add_turns(context, [NURSE, SHIFTS, PROMOTED], start=later, session_id="s2")
    write_each(store, [*march, *april])
    window = (datetime(2024, 3, 1), datetime(2024, 4, 1))
    asked = query(context, "What happened in March 2024?", form="recap", window=window)
    found = store.retrieve(asked, 10)
    quoted = {t for r in found for t in r.item.source_turn_ids}
    assert found and quoted & {t.id for t in march}
    tree = nodes(context)
    for recalled in found:  # each chosen node quotes mostly March
        item = recalled.item
        reps = [tree[r] for r in item.metadata.get("reps") or []] or [item]
        inside = [r for r in reps if set(r.source_turn_ids) <= {t.id for t in march}]
        assert len(inside) * 2 >= len(reps)
    assert not any(set(r.item.source_turn_ids) <= {t.id for t in april} for r in found)
    assert not found[0].item.metadata["leaf"], "the gist of several leaves comes first"


def test_waiting_vectors_are_recalled_and_survive_a_crash(
    context: StoreContext, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    store = MemTreeStore(context, vector_batch=100)
    turns = add_turns(context, [ADOPTED, NURSE, CHEWED])
    write_each(store, turns)
    assert context.vectors.count("memtree", "alice") == 0  # all still waiting
    found = store.retrieve(query(context, "my beagle Rex"), 3)
    assert found and "Rex" in found[0].item.text
    scores = [r.score for r in found]
    assert scores == sorted(scores, reverse=True)
    assert store.retrieve(query(context, "dog", as_of=START - timedelta(days=1)), 3) == []

    # A crash before the vectors were written: a new instance re-embeds and writes them.
    records = Records(tmp_path / "records.db")
    reopened = StoreContext(
        records, VectorIndex(embedder, path=tmp_path / "chroma"), CachingEmbedder(embedder)
    )
    try:
        again = MemTreeStore(reopened)
        again.end_session("alice", "s1")
        assert reopened.vectors.count("memtree", "alice") == len(nodes(reopened))
        after = again.retrieve(query(reopened, "my beagle Rex"), 3)
    finally:
        records.close()
    assert [r.item.id for r in after] == [r.item.id for r in found]
    assert [r.score for r in after] == pytest.approx(scores, abs=1e-4)


# -- the model builder ------------------------------------------------------------------------


def listing(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Return the nodes the aggregation prompt lists (its first user message)."""
    prompt = next(m for m in messages if m.role == "user")
    return list(json.loads(prompt.content.split("\n", 1)[1]))


def asked_ids(messages: Sequence[Message]) -> list[str]:
    return [entry["node_id"] for entry in listing(messages)]


def good_answer(messages: list[Message]) -> dict[str, Any]:
    return {
        "nodes": [{"node_id": i, "text": f"Model summary {i[:8]}."} for i in asked_ids(messages)]
    }


@pytest.fixture
def model() -> ScriptedChatModel:
    return ScriptedChatModel(default=None)


@pytest.fixture
def model_store(context: StoreContext, model: ScriptedChatModel) -> Iterator[MemTreeStore]:
    context.model = model
    yield MemTreeStore(context)


def dirty(context: StoreContext) -> list[MemoryItem]:
    return [i for i in nodes(context).values() if i.metadata.get("dirty")]


def test_end_session_rewrites_every_dirty_node_in_one_call(
    model_store: MemTreeStore, model: ScriptedChatModel, context: StoreContext
) -> None:
    assert isinstance(model_store, Consolidating) and isinstance(model_store, Resumable)
    write_each(model_store, add_turns(context, [ADOPTED, NURSE, CHEWED, SHIFTS, WALK]))
    assert model.calls == []  # never a model call on the write path
    waiting = dirty(context)
    assert len(waiting) >= 2

    model.add(good_answer)
    changed = model_store.end_session("alice", "s1")
    assert len(model.calls) == 1 and model.calls[0].schema == AGGREGATE_SCHEMA
    assert sorted(asked_ids(model.calls[0].messages)) == sorted(i.id for i in waiting)
    assert {c.item.id for c in changed} == {i.id for i in waiting}
    for item in waiting:
        now = context.records.get_item(item.id)
        assert now.text == f"Model summary {item.id[:8]}."
        assert context.records.history(item.id)[-1].reason == "aggregated by the model"
    assert dirty(context) == []
    assert model_store.stats.calls == 1
    assert model_store.end_session("alice", "s1") == []  # nothing dirty, no call
    assert len(model.calls) == 1


def test_invalidated_memories_are_shown_as_no_longer_true(
    model_store: MemTreeStore, model: ScriptedChatModel, context: StoreContext
) -> None:
    turns = add_turns(context, [ADOPTED, CHEWED, WALK])
    write_each(model_store, turns)
    model.add(good_answer)
    model_store.end_session("alice", "s1")
    model_store.invalidate([leaf_of(nodes(context), turns[1]).id], "retracted")
    model.add(good_answer)
    model_store.end_session("alice", "s1")
    shown = listing(model.calls[-1].messages)
    assert any(CHEWED in removed for entry in shown for removed in entry["no_longer_true"])


def test_an_invalid_answer_is_repaired(
    model_store: MemTreeStore, model: ScriptedChatModel, context: StoreContext
) -> None:
    write_each(model_store, add_turns(context, [ADOPTED, CHEWED, WALK]))
    waiting = dirty(context)
    model.add({"nodes": [{"node_id": "nonsense", "text": "x"}]}, good_answer)
    model_store.end_session("alice", "s1")
    assert len(model.calls) == 2
    assert "not asked for" in model.calls[1].messages[-1].content
    assert all(context.records.get_item(i.id).text.startswith("Model summary") for i in waiting)
    assert model_store.stats.failures == 0


def test_a_failing_model_queues_the_work_and_a_retry_applies_it(
    model_store: MemTreeStore, model: ScriptedChatModel, context: StoreContext
) -> None:
    write_each(model_store, add_turns(context, [ADOPTED, CHEWED, WALK]))
    waiting = dirty(context)
    offline = {i.id: i.text for i in waiting}
    model.add(ModelUnavailableError("the model is down"))
    assert model_store.end_session("alice", "s1") == []
    queued = context.records.pending_work("memtree", "alice")
    assert len(queued) == 1 and "down" in queued[0].last_error
    assert model_store.stats.queued == 1
    assert {i.id: context.records.get_item(i.id).text for i in waiting} == offline  # fallback
    assert all(offline.values())

    model.add(ModelUnavailableError("still down"))
    assert model_store.retry_pending() == 0
    assert context.records.pending_work("memtree")[0].attempts == 2

    model.add(good_answer)
    assert model_store.retry_pending("alice") == 1
    assert context.records.pending_work("memtree") == []
    assert all(context.records.get_item(i.id).text.startswith("Model summary") for i in waiting)


def test_validate_aggregation_names_what_is_wrong() -> None:
    ok = {"nodes": [{"node_id": "a", "text": " A. "}, {"node_id": "b", "text": "B."}]}
    assert validate_aggregation(ok, ["a", "b"]) == {"a": "A.", "b": "B."}
    with pytest.raises(ValueError, match="no answer: b"):
        validate_aggregation({"nodes": [{"node_id": "a", "text": "A."}]}, ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        validate_aggregation({"nodes": [{"node_id": "a", "text": " "}]}, ["a"])
    with pytest.raises(ValueError, match="nodes"):
        validate_aggregation(["a"], ["a"])


def test_an_inner_node_routes_by_its_current_sum() -> None:
    import numpy as np

    from agentmem.stores.memtree.tree import Node

    node = Node("n", None, 1, False, "", None, np.array([3.0, 4.0, 0.0], dtype=np.float32))
    assert np.allclose(node.direction, [0.6, 0.8, 0.0])
    node.vector = node.vector + np.array([-3.0, 0.0, 3.0], dtype=np.float32)  # a leaf added
    assert np.allclose(node.direction, [0.0, 0.8, 0.6])
    node.vector = node.vector - np.array([0.0, 4.0, 0.0], dtype=np.float32)  # one removed
    assert np.allclose(node.direction, [0.0, 0.0, 1.0])
