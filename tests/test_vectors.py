"""The vector index (real MiniLM, persistent chromadb in tmp dirs) and the item search on it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from agentmem.models.embeddings import MiniLMEmbedder
from agentmem.protocols import StoreContext
from agentmem.storage.items import ItemIndex
from agentmem.storage.records import new_item_id
from agentmem.storage.vectors import VectorIndex, collection_name
from agentmem.stores.turns import TurnStore
from agentmem.types import MemoryItem, Query, Scope, Turn

PETS = ["I have a golden retriever named Max.", "My cat sleeps on the radiator all day."]
WORK = ["I work as a nurse in the night shift.", "My manager approved my vacation request."]
FOOD = ["I am allergic to peanuts.", "Sushi is my favourite dinner."]

T0 = datetime(2024, 1, 1, 12, 0)
T1 = datetime(2024, 2, 1, 12, 0)
T2 = datetime(2024, 3, 1, 12, 0)


def put(vectors: VectorIndex, user_id: str, texts: list[str], store: str = "facts") -> list[str]:
    """Embed and store texts for a user; return their ids (the texts' own names)."""
    ids = [f"{user_id}-{n}" for n in range(len(texts))]
    embeddings = vectors.embedder.embed(texts)
    vectors.upsert(store, user_id, ids, embeddings, [{"current": True}] * len(texts))
    return ids


def query_vector(embedder: MiniLMEmbedder, text: str) -> np.ndarray:
    return embedder.embed([text])[0]


# -- VectorIndex ---------------------------------------------------------------------------


def test_each_user_sees_only_their_own_vectors(
    vectors: VectorIndex, embedder: MiniLMEmbedder
) -> None:
    alice = put(vectors, "alice", PETS + WORK)
    bob = put(vectors, "bob", FOOD)

    question = query_vector(embedder, "Tell me about the dog")
    alice_hits = vectors.query("facts", "alice", question, 10)
    bob_hits = vectors.query("facts", "bob", question, 10)

    assert [h.id for h in alice_hits][0] == alice[0]
    assert {h.id for h in alice_hits} == set(alice)
    assert {h.id for h in bob_hits} == set(bob)
    assert vectors.count("facts", "alice") == 4
    assert vectors.count("facts", "bob") == 2
    # One collection per (structure, user).
    assert collection_name("facts", "alice") != collection_name("facts", "bob")
    assert set(vectors.collection_names()) == {
        collection_name("facts", "alice"),
        collection_name("facts", "bob"),
    }


def test_unknown_user_gets_nothing_and_creates_nothing(
    vectors: VectorIndex, embedder: MiniLMEmbedder
) -> None:
    put(vectors, "alice", PETS)
    names = vectors.collection_names()

    assert vectors.query("facts", "carol", query_vector(embedder, "dog"), 5) == []
    assert vectors.query("other-store", "alice", query_vector(embedder, "dog"), 5) == []
    assert vectors.count("facts", "carol") == 0
    assert vectors.get("facts", "carol", ["alice-0"]) == {}
    assert vectors.collection_names() == names


def test_similarity_is_cosine(vectors: VectorIndex, embedder: MiniLMEmbedder) -> None:
    put(vectors, "alice", PETS)
    embeddings = embedder.embed(PETS)
    (hit,) = vectors.query("facts", "alice", embeddings[0], 1)
    assert hit.id == "alice-0"
    assert hit.similarity == pytest.approx(1.0, abs=1e-4)
    (other,) = [h for h in vectors.query("facts", "alice", embeddings[0], 2) if h.id == "alice-1"]
    assert other.similarity == pytest.approx(float(embeddings[0] @ embeddings[1]), abs=1e-4)


READER = """
import json, sys
import numpy as np
from agentmem.models.embeddings import MiniLMEmbedder
from agentmem.storage.vectors import VectorIndex

path, vector_file = sys.argv[1], sys.argv[2]
index = VectorIndex(MiniLMEmbedder(), path=path)  # the model is never loaded: vectors given
query = np.load(vector_file)
hits = index.query("facts", "alice", query, 10, history=True)
current = index.query("facts", "alice", query, 10)
stored = index.get("facts", "alice", ["alice-0"])
print(json.dumps({
    "ids": [h.id for h in hits],
    "metadata": [dict(h.metadata) for h in hits],
    "count": index.count("facts", "alice"),
    "current": [h.id for h in current],
    "vector": stored["alice-0"].tolist(),
}))
"""


def test_vectors_persist_for_a_new_index_in_another_process(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    path = tmp_path / "chroma"
    writer = VectorIndex(embedder, path=path)
    ids = put(writer, "alice", PETS + WORK)
    writer.update_metadata("facts", "alice", [ids[1]], [{"current": False}])
    question = query_vector(embedder, "my job at the hospital")
    np.save(tmp_path / "query.npy", question)
    expected = [h.id for h in writer.query("facts", "alice", question, 10, history=True)]
    writer.close()  # another process may open the folder only once this one lets go

    # A fresh process has no chromadb client cache to lean on: only what is on disk.
    reader = subprocess.run(
        [sys.executable, "-c", READER, str(path), str(tmp_path / "query.npy")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    seen = json.loads(reader.stdout.strip().splitlines()[-1])

    assert seen["count"] == 4
    assert seen["ids"] == expected
    assert seen["ids"][0] == ids[2]
    by_id = dict(zip(seen["ids"], seen["metadata"], strict=True))
    assert by_id[ids[1]] == {"current": False}
    # The invalidated vector was moved to the history partition on close.
    assert seen["current"] == [i for i in expected if i != ids[1]]
    np.testing.assert_allclose(seen["vector"], embedder.embed([PETS[0]])[0], atol=1e-6)


def test_vectors_persist_for_a_new_index_object(embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    ids = put(VectorIndex(embedder, path=tmp_path / "chroma"), "alice", PETS)
    again = VectorIndex(embedder, path=tmp_path / "chroma")
    assert again.count("facts", "alice") == 2
    assert set(again.get("facts", "alice", ids)) == set(ids)


def test_a_partition_found_missing_is_searched_once_it_is_made(
    vectors: VectorIndex, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    ids = put(vectors, "alice", PETS)
    question = query_vector(embedder, "What pets do I have?")
    assert vectors.count("facts", "alice", history=True) == 0  # no history partition yet
    assert {h.id for h in vectors.query("facts", "alice", question, 10, history=True)} == set(ids)
    # Another index of this process on the folder makes it: both see it.
    other = VectorIndex(embedder, path=tmp_path / "chroma")
    assert other.count("facts", "alice", history=True) == 0
    vectors.update_metadata("facts", "alice", [ids[0]], [{"current": False}])
    vectors.flush()
    assert vectors.count("facts", "alice", history=True) == 1
    assert ids[0] in [h.id for h in vectors.query("facts", "alice", question, 10, history=True)]
    assert other.count("facts", "alice", history=True) == 1
    other.close()


def test_metadata_update_and_where_filter(vectors: VectorIndex, embedder: MiniLMEmbedder) -> None:
    ids = put(vectors, "alice", PETS + WORK)
    question = query_vector(embedder, "What pets do I have?")

    vectors.update_metadata("facts", "alice", [ids[0]], [{"current": False, "kind": "fact"}])

    current = vectors.query("facts", "alice", question, 10, where={"current": True})
    assert {h.id for h in current} == set(ids[1:])
    stale = vectors.query("facts", "alice", question, 10, where={"current": False}, history=True)
    assert [(h.id, dict(h.metadata)) for h in stale] == [
        (ids[0], {"current": False, "kind": "fact"})
    ]
    # The stale dog moved to the history partition: an unfiltered query of the current
    # one no longer meets it, one that asks for history still ranks it first.
    assert vectors.count("facts", "alice", history=True) == 1
    assert ids[0] not in [h.id for h in vectors.query("facts", "alice", question, 10)]
    assert vectors.query("facts", "alice", question, 1, history=True)[0].id == ids[0]
    # The vector itself is untouched by a metadata update.
    np.testing.assert_allclose(
        vectors.get("facts", "alice", [ids[0]])[ids[0]], embedder.embed([PETS[0]])[0], atol=1e-6
    )


def test_upsert_replaces_and_delete_removes(vectors: VectorIndex, embedder: MiniLMEmbedder) -> None:
    ids = put(vectors, "alice", PETS)
    vectors.upsert("facts", "alice", [ids[0]], embedder.embed(FOOD[:1]), [{"current": True}])
    assert vectors.count("facts", "alice") == 2
    assert (
        vectors.query("facts", "alice", query_vector(embedder, "peanut allergy"), 1)[0].id == ids[0]
    )

    vectors.delete("facts", "alice", [ids[0]])
    assert vectors.count("facts", "alice") == 1
    assert vectors.get("facts", "alice", ids).keys() == {ids[1]}


def test_drop_removes_one_collection(vectors: VectorIndex, embedder: MiniLMEmbedder) -> None:
    put(vectors, "alice", PETS + WORK)
    put(vectors, "bob", FOOD)

    assert vectors.drop("facts", "alice") == 4

    assert collection_name("facts", "alice") not in vectors.collection_names()
    assert collection_name("facts", "bob") in vectors.collection_names()
    assert vectors.query("facts", "alice", query_vector(embedder, "dog"), 5) == []
    assert vectors.count("facts", "alice") == 0
    assert vectors.count("facts", "bob") == 2
    assert vectors.drop("facts", "alice") == 0
    # A dropped user's collection comes back empty, not with the old vectors.
    put(vectors, "alice", FOOD[:1])
    assert vectors.count("facts", "alice") == 1


def test_invalidated_vectors_move_to_the_history_partition_and_back(
    vectors: VectorIndex, embedder: MiniLMEmbedder
) -> None:
    ids = put(vectors, "alice", PETS + WORK)
    question = query_vector(embedder, "my golden retriever")
    vectors.update_metadata("facts", "alice", [ids[0]], [{"current": False}])
    vectors.flush()

    assert (vectors.count("facts", "alice", history=False), vectors.count("facts", "alice")) == (
        3,
        4,
    )
    assert collection_name("facts", "alice", history=True) in vectors.collection_names()
    assert ids[0] not in [h.id for h in vectors.query("facts", "alice", question, 4)]
    # Vectors are found by id in either partition, unchanged by the move.
    np.testing.assert_allclose(
        vectors.get("facts", "alice", ids)[ids[0]], embedder.embed([PETS[0]])[0], atol=1e-6
    )
    # Made current again (an upsert, or a metadata update), it leaves the history.
    vectors.upsert("facts", "alice", [ids[0]], embedder.embed(PETS[:1]), [{"current": True}])
    assert vectors.count("facts", "alice", history=True) == 0
    assert vectors.query("facts", "alice", question, 1)[0].id == ids[0]
    vectors.update_metadata("facts", "alice", ids[:2], [{"current": False}] * 2)
    vectors.update_metadata("facts", "alice", ids[:1], [{"current": True}])
    vectors.flush()
    assert vectors.count("facts", "alice", history=True) == 1
    assert [h.id for h in vectors.query("facts", "alice", question, 4, history=True)][:1] == ids[:1]
    # Delete and drop reach both partitions.
    vectors.delete("facts", "alice", [ids[1]])
    assert vectors.count("facts", "alice") == 3
    vectors.update_metadata("facts", "alice", [ids[2]], [{"current": False}])
    assert vectors.drop("facts", "alice") == 3
    assert not [
        n for n in vectors.collection_names() if n.endswith(collection_name("facts", "alice")[-24:])
    ]


def test_search_moves_stale_vectors_it_meets_to_the_history(
    store_context: StoreContext,
) -> None:
    store = TurnStore(store_context)
    items = [c.item for c in store.write(write_turns(store_context, "alice", PETS + WORK))]
    # As a crash that lost the buffered move leaves it: invalid in the records only.
    store_context.records.invalidate([items[0].id], "the dog was rehomed", at=T2)
    assert store_context.vectors.count("turns", "alice", history=False) == 4

    found = store.retrieve(ask(store_context, "alice", "What is my dog called?"), 2)

    assert items[0].id not in [r.item.id for r in found] and len(found) == 2
    assert store_context.vectors.pending("turns", "alice") == {items[0].id}
    store_context.vectors.flush()
    assert store_context.vectors.count("turns", "alice", history=False) == 3
    history = store.retrieve(
        ask(store_context, "alice", "What is my dog called?", include_history=True), 1
    )
    assert [r.item.id for r in history] == [items[0].id]


KILLED_WRITER = """
import os, sys
import numpy as np
from agentmem.models.embeddings import MiniLMEmbedder
from agentmem.storage.vectors import VectorIndex

index = VectorIndex(MiniLMEmbedder(), path=sys.argv[1])  # vectors given: no model load
vectors = np.load(sys.argv[2])
for n, vector in enumerate(vectors):
    index.upsert("facts", "alice", [f"v{n}"], vector[None, :], [{"current": n % 3 != 0}])
print("written", flush=True)
os.kill(os.getpid(), 9)  # no flush, no close: only the journal holds them
"""


def test_vectors_written_behind_survive_a_killed_process(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    texts = PETS + WORK + FOOD
    np.save(tmp_path / "vectors.npy", embedder.embed(texts))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_WRITER,
            str(tmp_path / "chroma"),
            str(tmp_path / "vectors.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == -9 and "written" in done.stdout

    reopened = VectorIndex(embedder, path=tmp_path / "chroma")

    assert reopened.count("facts", "alice", history=False) == 4
    assert reopened.count("facts", "alice", history=True) == 2
    assert set(reopened.get("facts", "alice", [f"v{n}" for n in range(6)])) == {
        f"v{n}" for n in range(6)
    }
    hit = reopened.query("facts", "alice", query_vector(embedder, "my night shift job"), 1)[0]
    assert hit.id == "v2" and hit.metadata == {"current": True}
    reopened.close()


def test_vectors_are_written_behind_in_batches_and_seen_at_once(
    vectors: VectorIndex, embedder: MiniLMEmbedder
) -> None:
    for n, text in enumerate(PETS + WORK):
        vectors.upsert("facts", "alice", [f"v{n}"], embedder.embed([text]), [{"current": True}])
    # Nothing reached chromadb yet, but search and get see every vector.
    assert vectors.client.list_collections() == []
    question = query_vector(embedder, "my golden retriever")
    assert vectors.query("facts", "alice", question, 1)[0].id == "v0"
    assert set(vectors.get("facts", "alice", ["v0", "v3", "nope"])) == {"v0", "v3"}
    # A filtered query reads chromadb, so the waiting vectors are written first.
    filtered = vectors.query("facts", "alice", question, 4, where={"current": True})
    assert [h.id for h in filtered][:1] == ["v0"] and len(filtered) == 4
    assert vectors.client.get_collection(collection_name("facts", "alice")).count() == 4
    # A full batch goes out on its own.
    vectors.UPSERT_BATCH = 3
    for n in range(3):
        vectors.upsert("facts", "bob", [f"b{n}"], embedder.embed([FOOD[n % 2]]), [{}])
    assert vectors.client.get_collection(collection_name("facts", "bob")).count() == 3


def test_agentmem_embedding_function_is_attached(
    vectors: VectorIndex, embedder: MiniLMEmbedder
) -> None:
    ids = put(vectors, "alice", PETS + WORK + FOOD)
    name = collection_name("facts", "alice")
    vectors.flush()  # chromadb is written behind

    # Opened with no embedding function, as any chromadb client would.
    collection = vectors.client.get_collection(name)
    configured = collection.configuration_json["embedding_function"]
    assert configured["type"] == "known"
    assert configured["name"] == "agentmem"
    assert collection.configuration["embedding_function"].name() == "agentmem"
    assert collection.configuration["hnsw"]["space"] == "cosine"

    # Text queries embed with MiniLM through the attached function, offline; chromadb's
    # default would try to download its ONNX model and fail here.
    result = collection.query(query_texts=["Which food makes me ill?"], n_results=1)
    assert result["ids"] == [[ids[4]]]


# -- ItemIndex and TurnStore ---------------------------------------------------------------


def write_turns(context: StoreContext, user_id: str, texts: list[str]) -> list[Turn]:
    start = datetime(2024, 5, 1, 10, 0)
    return context.records.add_turns(
        [
            {
                "user_id": user_id,
                "session_id": f"{user_id}-s1",
                "role": "user",
                "text": text,
                "timestamp": start + timedelta(minutes=n),
            }
            for n, text in enumerate(texts)
        ]
    )


def ask(context: StoreContext, user_id: str, text: str, **fields: object) -> Query:
    embedding = context.embedder.embed([text])[0]
    return Query(text, Scope(user_id), embedding=embedding, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is the name of my dog?", PETS[0]),
        ("What is my job?", WORK[0]),
        ("Is there anything I cannot eat?", FOOD[0]),
    ],
)
def test_turn_store_ranks_the_closest_turn_first(
    store_context: StoreContext, question: str, expected: str
) -> None:
    store = TurnStore(store_context)
    turns = write_turns(store_context, "alice", PETS + WORK + FOOD)
    items = [c.item for c in store.write(turns)]
    assert [i.source_turn_ids for i in items] == [(t.id,) for t in turns]

    recalled = store.retrieve(ask(store_context, "alice", question), 3)

    assert len(recalled) == 3
    assert recalled[0].item.text == f"user: {expected}"
    scores = [r.score for r in recalled]
    assert scores == sorted(scores, reverse=True)


def test_turn_store_is_scoped_by_user(store_context: StoreContext) -> None:
    store = TurnStore(store_context)
    store.write(write_turns(store_context, "alice", PETS))
    store.write(write_turns(store_context, "bob", FOOD))

    recalled = store.retrieve(ask(store_context, "bob", "Tell me about my dog"), 10)
    assert {r.item.user_id for r in recalled} == {"bob"}
    assert len(recalled) == 2
    assert store.retrieve(ask(store_context, "carol", "dog"), 10) == []


def test_invalidated_items_hidden_unless_history_is_asked(store_context: StoreContext) -> None:
    store = TurnStore(store_context)
    items = [c.item for c in store.write(write_turns(store_context, "alice", PETS + WORK))]
    dog = items[0]

    store.invalidate([dog.id], "the dog was rehomed", at=T2)

    question = "What is the name of my dog?"
    default = store.retrieve(ask(store_context, "alice", question), 10)
    assert dog.id not in {r.item.id for r in default}
    assert len(default) == 3

    history = store.retrieve(ask(store_context, "alice", question, include_history=True), 10)
    assert history[0].item.id == dog.id
    assert history[0].item.current is False
    assert history[0].item.invalid_at == T2
    assert len(history) == 4
    assert all(r.item.current for r in history[1:])


def test_search_fills_k_with_current_items_when_stale_ones_are_closer(
    store_context: StoreContext,
) -> None:
    store = TurnStore(store_context)
    dogs = [
        "My dog Max loves the park.",
        "Max the dog chewed my shoes.",
        "I walk my dog Max every morning.",
        "My dog Max is a golden retriever.",
        "Max, my dog, hates the vacuum cleaner.",
        "I bought a new collar for my dog Max.",
    ]
    items = [c.item for c in store.write(write_turns(store_context, "alice", dogs + WORK))]
    store.invalidate([i.id for i in items[: len(dogs)]], "the dog was rehomed", at=T2)

    # Stale items must be filtered in the index, not only after it, or they fill the k slots.
    recalled = store.retrieve(ask(store_context, "alice", "Tell me about my dog Max"), 2)

    assert {r.item.text for r in recalled} == {f"user: {text}" for text in WORK}


def test_search_as_of_returns_what_was_valid_then(store_context: StoreContext) -> None:
    index = ItemIndex(store_context, "facts")

    def fact(text: str, valid_from: datetime) -> MemoryItem:
        return MemoryItem(new_item_id(), "facts", "fact", "alice", text, (), valid_from=valid_from)

    denver, boston = index.add(
        [fact("The user lives in Denver.", T0), fact("The user lives in Boston.", T1)]
    )
    index.invalidate([denver.id], "moved", at=T1, superseded_by=boston.id)

    def where_at(moment: datetime | None) -> list[str]:
        query = ask(store_context, "alice", "Where does the user live?", as_of=moment)
        return [r.item.text for r in index.search(query, 5)]

    assert where_at(T0 - timedelta(days=1)) == []
    assert where_at(T0) == ["The user lives in Denver."]
    assert where_at(T1 - timedelta(seconds=1)) == ["The user lives in Denver."]
    assert where_at(T1) == ["The user lives in Boston."]
    assert where_at(T2) == ["The user lives in Boston."]
    assert where_at(None) == ["The user lives in Boston."]


def test_search_skips_items_derived_only_from_the_recency_window(
    store_context: StoreContext,
) -> None:
    store = TurnStore(store_context)
    turns = write_turns(store_context, "alice", PETS + WORK)
    store.write(turns)
    window = frozenset(t.id for t in turns[:1])  # the dog turn is already in the prompt

    recalled = store.retrieve(
        ask(store_context, "alice", "What is the name of my dog?", exclude_turn_ids=window), 10
    )

    assert [r.item.source_turn_ids for r in recalled if r.item.source_turn_ids[0] in window] == []
    assert len(recalled) == 3
    assert recalled[0].item.text == f"user: {PETS[1]}"  # the next pet turn moves up


def test_search_keeps_items_with_some_sources_outside_the_window(
    store_context: StoreContext,
) -> None:
    index = ItemIndex(store_context, "facts")
    turns = write_turns(store_context, "alice", PETS)
    (summary,) = index.add(
        [
            MemoryItem(
                new_item_id(),
                "facts",
                "summary",
                "alice",
                "The user has a dog named Max and a cat.",
                (turns[0].id, turns[1].id),
            )
        ]
    )
    question = "Which pets does the user have?"

    partly = ask(store_context, "alice", question, exclude_turn_ids=frozenset({turns[0].id}))
    assert [r.item.id for r in index.search(partly, 5)] == [summary.id]

    wholly = ask(
        store_context, "alice", question, exclude_turn_ids=frozenset({turns[0].id, turns[1].id})
    )
    assert index.search(wholly, 5) == []


def test_forget_drops_the_users_turn_vectors(store_context: StoreContext) -> None:
    store = TurnStore(store_context)
    store.write(write_turns(store_context, "alice", PETS))
    store.write(write_turns(store_context, "bob", FOOD))

    assert store.forget("alice") == 2

    assert store_context.vectors.count("turns", "alice") == 0
    assert store_context.vectors.count("turns", "bob") == 2
    assert store.retrieve(ask(store_context, "alice", "dog"), 5) == []


def test_buffered_metadata_is_seen_by_every_query_and_written_on_close(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    path = tmp_path / "chroma"
    index = VectorIndex(embedder, path=path)
    ids = put(index, "alice", PETS + WORK)
    question = query_vector(embedder, "my job at the hospital")
    index.update_metadata("facts", "alice", [ids[2]], [{"current": False}])
    # Unfiltered: the buffered move is seen at once (the vector is left out of current
    # searches, and a history search writes the buffer first); filtered: the same.
    hits = {h.id: h.metadata for h in index.query("facts", "alice", question, 4)}
    assert ids[2] not in hits and len(hits) == 3
    index.update_metadata("facts", "alice", [ids[0]], [{"current": True, "note": 1}])
    hits = {h.id: h.metadata for h in index.query("facts", "alice", question, 4)}
    assert hits[ids[0]] == {"current": True, "note": 1}
    filtered = index.query("facts", "alice", question, 4, where={"current": True})
    assert ids[2] not in [h.id for h in filtered] and len(filtered) == 3
    # An upsert replaces what was buffered for the same id.
    index.update_metadata("facts", "alice", [ids[3]], [{"current": False}])
    index.upsert(
        "facts", "alice", [ids[3]], query_vector(embedder, WORK[1])[None, :], [{"current": True}]
    )
    assert {h.id for h in index.query("facts", "alice", question, 4, where={"current": True})} >= {
        ids[3]
    }
    index.update_metadata("facts", "alice", [ids[0]], [{"current": False}])
    index.close()
    reopened = VectorIndex(embedder, path=path)
    kept = reopened.query("facts", "alice", question, 4, where={"current": True})
    assert {h.id for h in kept} == {ids[1], ids[3]}
    reopened.close()


def test_the_first_open_removes_index_files_no_collection_names(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    """What chromadb wrote again of a dropped collection as an earlier process ended."""
    import shutil
    import uuid

    folder = tmp_path / "chroma"
    first = VectorIndex(embedder, path=folder)
    put(first, "alice", PETS)
    first.flush()
    first.close()
    segments = [d for d in folder.iterdir() if d.is_dir()]
    assert segments, "chromadb wrote no index folder"
    leftover = folder / str(uuid.uuid4())
    shutil.copytree(segments[0], leftover)  # real index files, named by no segment row
    again = VectorIndex(embedder, path=folder)
    try:
        assert not leftover.exists()
        assert all(d.exists() for d in segments)
        question = query_vector(embedder, "What pets do I have?")
        assert len(again.query("facts", "alice", question, 10)) == len(PETS)
    finally:
        again.close()
