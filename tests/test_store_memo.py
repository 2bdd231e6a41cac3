"""MemoChat-style topic memos: the shared contract, then the paper's behaviour."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from agentmem.errors import ModelError
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder
from agentmem.prompts.memo import validate_memos
from agentmem.protocols import Consolidating, MemoryStore, Resumable, StoreContext
from agentmem.storage.records import Records
from agentmem.storage.vectors import VectorIndex
from agentmem.stores.memo import MemoStore
from agentmem.testing import ScriptedChatModel
from agentmem.testing.contract import MemoryStoreContract
from agentmem.types import MemoryItem, Query, Scope, Turn

START = datetime(2024, 3, 1, 18, 0)
DOG = (
    "I adopted a beagle puppy named Rex last weekend.",
    "Rex keeps chewing my shoes, the puppy has so much energy.",
    "I take Rex to the dog park every morning before work.",
    "My dog Rex learned to sit and roll over already!",
    "The vet said my beagle Rex needs his second vaccination next month.",
    "I bought Rex a new dog bed and some chew toys for the puppy.",
)
WORK = (
    "I work as a nurse at the city hospital, mostly night shifts.",
    "The night shifts at the hospital are exhausting lately.",
    "My head nurse asked me to train two new nurses at the hospital.",
)
FILLER = ("Oh really?", "Wow, congrats!", "Haha, that's so funny", "Nice!")


class TestMemoStoreContract(MemoryStoreContract):
    def make_store(self, context: StoreContext) -> MemoryStore:
        return MemoStore(context)


@pytest.fixture
def context(records: Records, vectors: VectorIndex, embedder: MiniLMEmbedder) -> StoreContext:
    return StoreContext(records, vectors, CachingEmbedder(embedder))


def add(
    records: Records,
    lines: Sequence[str],
    *,
    user: str = "alice",
    session: str = "s1",
    offset: int = 0,
) -> list[Turn]:
    """Store ``lines`` as user turns of one session, a minute apart."""
    records.start_session(user, session_id=session)
    return [
        records.add_turn(
            user, session, "user", "user", line, timestamp=START + timedelta(minutes=offset + i)
        )
        for i, line in enumerate(lines)
    ]


def items(context: StoreContext, kind: str, user: str = "alice") -> list[MemoryItem]:
    return context.records.store_items("memo", user, kind=kind)


def query(context: StoreContext, text: str, user: str = "alice", **options: object) -> Query:
    embedding = context.embedder.embed([text])[0]
    return Query(text, Scope(user), embedding=embedding, **options)  # type: ignore[arg-type]


def memo_of(memos: Sequence[MemoryItem], turn: Turn) -> MemoryItem:
    return next(m for m in memos if turn.id in m.source_turn_ids)


# -- the offline builder ------------------------------------------------------------------


def test_same_subject_reuses_its_topic_and_another_subject_opens_one(
    context: StoreContext,
) -> None:
    store = MemoStore(context, chunk_turns=4)
    store.write(add(context.records, DOG[:4]))
    [dog_topic] = items(context, "topic")
    second = add(context.records, DOG[4:6] + WORK[:2], offset=4)
    store.write(second)
    memos = items(context, "memo")
    assert memo_of(memos, second[0]).metadata["topic_id"] == dog_topic.id
    assert memo_of(memos, second[1]).metadata["topic_id"] == dog_topic.id
    work = memo_of(memos, second[2])
    assert work.metadata["topic_id"] != dog_topic.id
    assert work is memo_of(memos, second[3]), "consecutive turns of a topic form one memo"
    topics = {t.id: t for t in items(context, "topic")}
    assert len(topics) == 2
    assert topics[dog_topic.id].metadata["entries"] == 2
    assert set(topics[dog_topic.id].source_turn_ids) >= {second[0].id, second[1].id}
    # Offline, the topic is named by keywords: they stay out of the memo's text.
    assert work.text == work.metadata["summary"]
    assert topics[work.metadata["topic_id"]].text not in work.text


def test_a_query_about_a_topic_returns_its_memo_with_the_original_turns(
    context: StoreContext,
) -> None:
    store = MemoStore(context, chunk_turns=5)
    turns = add(context.records, DOG[:3] + WORK[:2])
    store.write(turns)
    found = store.retrieve(query(context, "What is the name of my dog?"), 3)
    top = found[0].item
    assert top.kind == "memo"
    assert set(top.source_turn_ids) == {t.id for t in turns[:3]}
    shown = top.metadata["turns"]
    assert [t["text"] for t in shown] == list(DOG[:3])
    assert [t["id"] for t in shown] == top.metadata["turn_ids"] == list(top.source_turn_ids)
    assert top.text == top.metadata["summary"]  # offline: no keyword label in the text
    assert "Rex" in top.metadata["summary"]
    assert (top.metadata["first_turn_id"], top.metadata["last_turn_id"]) == (
        turns[0].id,
        turns[2].id,
    )


def test_what_was_said_about_a_subject_gets_its_topics_memos_across_sessions(
    context: StoreContext,
) -> None:
    """MemoChat shows a chosen topic's entries whole: "what did we say about the dog"
    gets every memo of the dog's topic, from every session, oldest first."""
    store = MemoStore(context, chunk_turns=3)
    first = add(context.records, DOG[:3], session="s1")
    store.write(first)
    store.end_session("alice", "s1")
    store.write(add(context.records, WORK, session="s2", offset=10))
    store.end_session("alice", "s2")
    later = add(context.records, DOG[3:6], session="s3", offset=20)
    store.write(later)
    store.end_session("alice", "s3")
    text = "What did we say about my beagle Rex?"
    found = store.retrieve(query(context, text, form="mentions"), 2)
    assert [set(r.item.source_turn_ids) for r in found] == [
        {t.id for t in first},
        {t.id for t in later},
    ]
    plain = store.retrieve(query(context, "Rex the beagle puppy"), 2)
    assert plain  # other questions still get the nearest memos


def test_the_chunk_threshold_writes_and_below_it_only_the_session_end_does(
    context: StoreContext,
) -> None:
    store = MemoStore(context, chunk_turns=5)
    # Turns are stored and written one step at a time, as the memory manager does.
    turns = add(context.records, DOG[:4])
    assert store.write(turns) == []
    assert items(context, "memo") == []
    turns += add(context.records, WORK[:1], offset=4)
    written = store.write(turns[4:5])
    assert written and {i for m in items(context, "memo") for i in m.source_turn_ids} == {
        t.id for t in turns[:5]
    }
    turns += add(context.records, WORK[1:3], offset=5)
    assert store.write(turns[5:]) == []
    covered = {i for m in items(context, "memo") for i in m.source_turn_ids}
    assert not covered & {t.id for t in turns[5:]}
    store.end_session("alice", "s1")
    covered = {i for m in items(context, "memo") for i in m.source_turn_ids}
    assert covered == {t.id for t in turns}
    assert store.end_session("alice", "s1") == [], "nothing is left to write"


def test_the_buffer_survives_a_restart_without_losing_or_repeating_turns(
    context: StoreContext, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    # One chunk of 5 is memo'd before the restart and 2 turns wait in the buffer.
    MemoStore(context, chunk_turns=5).write(add(context.records, DOG + WORK[:1]))
    assert len(items(context, "chunk")) == 1
    [dog_topic] = items(context, "topic")
    records = Records(tmp_path / "records.db")
    reopened = StoreContext(
        records, VectorIndex(embedder, path=tmp_path / "chroma"), CachingEmbedder(embedder)
    )
    try:
        store = MemoStore(reopened, chunk_turns=5)
        rest = add(records, WORK[1:] + DOG[:2], session="s2", offset=7)
        assert store.write(rest), "the 2 buffered turns and 3 new ones fill a chunk"
        store.end_session("alice", "s2")
        every = [t.id for t in records.turns("alice")]
        chunks = records.store_items("memo", "alice", kind="chunk")
        assert sorted(i for c in chunks for i in c.source_turn_ids) == every
        memos = records.store_items("memo", "alice", kind="memo")
        cited = [i for m in memos for i in m.source_turn_ids]
        assert sorted(cited) == every
        assert all(len(m.metadata["session_ids"]) == 1 for m in memos), "no memo spans sessions"
        assert memo_of(memos, rest[-1]).metadata["topic_id"] == dog_topic.id, "topics live on"
    finally:
        records.close()


def test_a_restart_goes_on_from_the_exact_centroids(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    """Topics restored after a restart grow as they would have without it."""

    def centroids(restart: bool, folder: Path) -> dict[str, np.ndarray]:
        records = Records(folder / "records.db")
        vectors = VectorIndex(embedder, path=folder / "chroma")
        context = StoreContext(records, vectors, CachingEmbedder(embedder))
        try:
            store = MemoStore(context, chunk_turns=3)
            store.write(add(records, DOG[:3] + WORK[:3]))
            if restart:  # a new process: the topics come back from the records
                store = MemoStore(context, chunk_turns=3)
            store.write(add(records, DOG[3:] + WORK, session="s2", offset=6))
            store.end_session("alice", "s2")
            topics = records.store_items("memo", "alice", kind="topic")
            stored = vectors.get("memo", "alice", [t.id for t in topics])
            return {t.text: stored[t.id] for t in topics}
        finally:
            vectors.close()
            records.close()

    straight = centroids(False, tmp_path / "straight")
    restarted = centroids(True, tmp_path / "restarted")

    assert straight.keys() == restarted.keys() and len(straight) >= 2
    for name, vector in straight.items():
        assert np.array_equal(restarted[name], vector), name


def test_filler_never_opens_a_topic(context: StoreContext) -> None:
    store = MemoStore(context, chunk_turns=4)
    turns = add(context.records, (FILLER[0], DOG[0], FILLER[1], FILLER[2]))
    store.write(turns)
    [topic] = items(context, "topic")
    [memo] = items(context, "memo")
    assert set(memo.source_turn_ids) == {t.id for t in turns}, "filler joins the segment"
    assert "Oh really" not in memo.metadata["summary"]
    assert topic.metadata["turn_count"] == 1
    store.write(add(context.records, FILLER, offset=4))
    assert len(items(context, "topic")) == 1 and len(items(context, "memo")) == 1


def test_an_invalidated_topic_boosts_nothing_and_takes_no_new_turns(
    context: StoreContext,
) -> None:
    store = MemoStore(context, chunk_turns=4, topic_boost=1.0)
    store.write(add(context.records, DOG[:4]))
    question = query(context, "Tell me about my pet")
    vectors = context.vectors
    own = {
        m.id: float(vectors.get("memo", "alice", [m.id])[m.id] @ question.embedding)
        for m in items(context, "memo")
    }
    before = store.retrieve(question, 5)
    assert any(r.score > own[r.item.id] + 0.01 for r in before), "the topic boosts its memos"
    [topic] = items(context, "topic")
    store.invalidate([topic.id], "test", at=START + timedelta(days=1))
    after = store.retrieve(question, 5)
    assert after and all(r.score == pytest.approx(own[r.item.id], abs=1e-4) for r in after)
    then = replace(question, as_of=START + timedelta(hours=1))
    assert any(r.score > own[r.item.id] + 0.01 for r in store.retrieve(then, 5)), "it held then"
    later = replace(question, as_of=START + timedelta(days=2))
    assert all(r.score == pytest.approx(own[r.item.id], abs=1e-4) for r in store.retrieve(later, 5))
    store.write(add(context.records, DOG[4:] + DOG[:2], offset=4))
    current = items(context, "topic")
    assert len(current) == 1 and current[0].id != topic.id


# -- the model builder ----------------------------------------------------------------------


def memos_answer(*memos: tuple[str, str, Sequence[int]]) -> dict[str, object]:
    return {"memos": [{"topic": t, "summary": s, "turn_ids": list(ids)} for t, s, ids in memos]}


def test_the_model_writes_one_call_per_chunk_and_reuses_a_named_topic(
    context: StoreContext,
) -> None:
    turns = add(context.records, DOG[:4] + WORK[:2])
    ids = [t.id for t in turns]
    model = ScriptedChatModel(
        [
            memos_answer(("Pets", "Alice adopted Rex, a beagle puppy.", ids[:3])),
            memos_answer(
                ("pets", "Rex learned to sit.", ids[3:4]),
                ("Nursing job", "Alice is a night-shift nurse.", ids[4:6]),
            ),
        ],
        default=None,
    )
    context.model = model
    store = MemoStore(context, chunk_turns=3)
    store.write(turns)
    assert len(model.calls) == 2 and store.stats.calls == 2
    assert "Pets" in model.calls[1].messages[-1].content, "existing topics are shown"
    assert f"[{ids[3]}]" in model.calls[1].messages[-1].content
    memos = items(context, "memo")
    pets = memo_of(memos, turns[0])
    assert pets.text == "Topic: Pets. Alice adopted Rex, a beagle puppy."
    assert pets.metadata["builder"] == "model"
    assert memo_of(memos, turns[3]).metadata["topic_id"] == pets.metadata["topic_id"]
    assert sorted(t.text for t in items(context, "topic")) == ["Nursing job", "Pets"]


def test_turn_ids_outside_the_chunk_are_rejected_and_repaired(context: StoreContext) -> None:
    turns = add(context.records, DOG[:3])
    ids = [t.id for t in turns]
    model = ScriptedChatModel(
        [
            memos_answer(("Pets", "Rex chews shoes.", [ids[0], 999])),
            memos_answer(("Pets", "Rex chews shoes.", ids)),
        ],
        default=None,
    )
    context.model = model
    store = MemoStore(context, chunk_turns=3)
    store.write(turns)
    assert len(model.calls) == 2
    assert "not in this dialogue" in model.calls[1].messages[-1].content
    [memo] = items(context, "memo")
    assert memo.source_turn_ids == tuple(ids) and memo.metadata["builder"] == "model"
    assert context.records.pending_work("memo") == []


def test_a_failing_model_queues_the_chunk_falls_back_and_a_retry_replaces_it(
    context: StoreContext,
) -> None:
    turns = add(context.records, DOG[:3])
    ids = [t.id for t in turns]
    model = ScriptedChatModel([ModelError("endpoint down", retryable=True)], default=None)
    context.model = model
    store = MemoStore(context, chunk_turns=3)
    assert isinstance(store, Consolidating) and isinstance(store, Resumable)
    store.write(turns)
    [fallback] = items(context, "memo")
    [offline_topic] = items(context, "topic")
    assert fallback.metadata["builder"] == "offline"
    [work] = context.records.pending_work("memo", "alice")
    assert work.payload["turn_ids"] == ids
    assert (store.stats.failures, store.stats.queued) == (1, 1)

    model.add(memos_answer(("Pets", "Alice's beagle Rex is full of energy.", ids)))
    assert store.retry_pending("alice") == 1
    assert context.records.pending_work("memo") == []
    [memo] = items(context, "memo")
    assert memo.metadata["builder"] == "model"
    old = context.records.get_item(fallback.id)
    assert not old.current and old.superseded_by == memo.id
    assert not context.records.get_item(offline_topic.id).current
    assert [t.text for t in items(context, "topic")] == ["Pets"]
    found = store.retrieve(query(context, "What is my dog called?"), 5)
    assert [r.item.id for r in found] == [memo.id]
    assert store.retry_pending("alice") == 0


def test_a_retry_that_fails_again_stays_queued(context: StoreContext) -> None:
    turns = add(context.records, DOG[:3])
    model = ScriptedChatModel([ModelError("down"), ModelError("still down")], default=None)
    context.model = model
    store = MemoStore(context, chunk_turns=3)
    store.write(turns)
    assert store.retry_pending() == 0
    [work] = context.records.pending_work("memo")
    assert work.attempts == 2 and "still down" in work.last_error
    assert len(items(context, "memo")) == 1


def test_retrieval_never_calls_the_model(context: StoreContext) -> None:
    store = MemoStore(context, chunk_turns=3)
    store.write(add(context.records, DOG[:3]))
    context.model = ScriptedChatModel(default=None)
    assert store.retrieve(query(context, "my dog"), 3)
    assert np.isfinite([r.score for r in store.retrieve(query(context, "my dog"), 3)]).all()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"notes": []}, '"memos" list'),
        ({"memos": [{"topic": " ", "summary": "x", "turn_ids": [1]}]}, "empty topic"),
        ({"memos": [{"topic": "Pets", "summary": "", "turn_ids": [1]}]}, "empty summary"),
        ({"memos": [{"topic": "Pets", "summary": "x", "turn_ids": []}]}, "at least one turn"),
        ({"memos": [{"topic": "Pets", "summary": "x", "turn_ids": [True]}]}, "not a turn id"),
        ({"memos": [{"topic": "Pets", "summary": "x", "turn_ids": [1, 7]}]}, "[7]"),
    ],
)
def test_validation_says_what_to_fix(answer: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        validate_memos(answer, [1, 2])


def test_validation_normalises_a_good_answer() -> None:
    answer = {"memos": [{"topic": " Pets  care ", "summary": "Rex  eats.", "turn_ids": [2, 1, 2]}]}
    [draft] = validate_memos(answer, [1, 2])
    assert (draft.topic, draft.summary, draft.turn_ids) == ("Pets care", "Rex eats.", (1, 2))
