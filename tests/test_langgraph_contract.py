"""LangGraph's published store tests, as behaviours of ``AgentMemStore``.

Written from what ``libs/checkpoint/tests/test_store.py`` and
``libs/checkpoint-sqlite/tests/test_store.py`` in the langgraph repository check (read,
not copied), on real memory with agentmem's own embedder (MiniLM) instead of their
character-count embeddings. ``docs/langgraph.md`` lists the ones that do not apply and
why. Scores are cosine similarities in [0, 1], as LangGraph's cosine stores report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)

from agentmem.langgraph import AgentMemStore
from agentmem.memory import Memory


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[Memory]:
    with Memory(tmp_path / "data", model="none", stores=("turns",), env={}) as opened:
        yield opened


@pytest.fixture
def store(memory: Memory) -> AgentMemStore:
    return AgentMemStore(memory)


def keys(items: list[Item]) -> list[str]:
    return [item.key for item in items]


# -- batches ----------------------------------------------------------------------------


def test_batch_answers_each_op_in_order(store: AgentMemStore) -> None:
    store.put(("test", "foo"), "key1", {"data": "value1"})
    store.put(("test", "bar"), "key2", {"data": "value2"})
    results = store.batch(
        [
            GetOp(("test", "foo"), "key1"),
            PutOp(("test", "bar"), "key2", {"data": "value2"}),
            SearchOp(("test",), filter={"data": "value1"}, limit=10, offset=0),
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
            GetOp(("test",), "key3"),
            PutOp(("test",), "key3", {"data": "value3"}),
            PutOp(("test",), "key4", None),  # a delete of nothing
            GetOp(("test",), "key3"),
        ]
    )
    first, put, found, namespaces, missing, put3, deleted, third = results
    assert isinstance(first, Item) and first.value == {"data": "value1"}
    assert put is None and put3 is None and deleted is None and missing is None
    assert isinstance(found, list) and keys(found) == ["key1"]
    assert isinstance(namespaces, list) and {("test", "foo"), ("test", "bar")} <= set(namespaces)
    assert isinstance(third, Item) and third.value == {"data": "value3"}


def test_batch_searches_by_filter_limit_and_prefix(store: AgentMemStore) -> None:
    for namespace, key, tag in [(("t", "foo"), "k1", "a"), (("t", "bar"), "k2", "a")]:
        store.put(namespace, key, {"data": key, "tag": tag})
    store.put(("t", "baz"), "k3", {"data": "k3", "tag": "b"})
    tagged, two, foo = store.batch(
        [
            SearchOp(("t",), filter={"tag": "a"}, limit=10, offset=0),
            SearchOp(("t",), filter=None, limit=2, offset=0),
            SearchOp(("t", "foo"), filter=None, limit=10, offset=0),
        ]
    )
    assert isinstance(tagged, list) and sorted(keys(tagged)) == ["k1", "k2"]
    assert isinstance(two, list) and len(two) == 2
    assert isinstance(foo, list) and [i.namespace for i in foo] == [("t", "foo")]
    suffixed = store.batch([ListNamespacesOp((MatchCondition("suffix", ("baz",)),), None, 10, 0)])[
        0
    ]
    assert suffixed == [("t", "baz")]


# -- namespaces -----------------------------------------------------------------------------


def test_put_refuses_bad_namespaces_but_a_batch_may_write_under_langgraph(
    store: AgentMemStore,
) -> None:
    doc = {"foo": "bar"}
    for bad in [(), ("the", "thing.about"), ("some", "fun", ""), ("langgraph", "foo")]:
        with pytest.raises(InvalidNamespaceError):
            store.put(bad, "foo", doc)
        with pytest.raises(InvalidNamespaceError):
            asyncio.run(store.aput(bad, "foo", doc))
    inner = ("foo", "langgraph", "foo")
    store.put(inner, "bar", doc)
    assert store.search(inner)[0].value == doc
    # LangGraph writes under its own root with PutOps; BaseStore.put alone refuses it.
    store.batch([PutOp(("langgraph", "foo"), "bar", doc)])
    got = store.get(("langgraph", "foo"), "bar")
    assert got is not None and got.value == doc
    assert store.search(("langgraph", "foo"))[0].value == doc
    asyncio.run(store.abatch([PutOp(("langgraph", "async"), "bar", doc)]))
    assert store.get(("langgraph", "async"), "bar") is not None
    store.delete(("langgraph", "foo"), "bar")
    assert store.get(("langgraph", "foo"), "bar") is None
    # Ops given straight to batch are checked too: a dot cannot address two labels.
    with pytest.raises(InvalidNamespaceError):
        store.batch([PutOp(("foo.bar",), "k", doc)])


def test_search_scopes_stop_at_label_boundaries_and_match_literally(
    store: AgentMemStore,
) -> None:
    for namespace in [("foo",), ("foo", "child"), ("foobar",), ("user_1",), ("userX1",)]:
        store.put(namespace, "k", {"v": 1})
    store.put(("Foo",), "k", {"v": 2})
    store.put(("a%b",), "k", {"v": 3})
    store.put(("axxb",), "k", {"v": 4})

    def scope(prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        return {item.namespace for item in store.search(prefix, limit=100)}

    assert scope(("foo",)) == {("foo",), ("foo", "child")}
    assert scope(("fo",)) == set()
    assert scope(("user_1",)) == {("user_1",)} and scope(("a%b",)) == {("a%b",)}
    assert scope(("Foo",)) == {("Foo",)}  # case matters, as in get and put
    assert len(scope(())) == 8  # an empty prefix constrains nothing


def test_list_namespaces_align_to_labels(store: AgentMemStore) -> None:
    for namespace in [
        ("uid", "users", "alice"),
        ("uid", "users", "malice"),
        ("uid", "a", "b", "alice"),
        ("users", "alice\n"),
    ]:
        store.put(namespace, "k", {"v": 1})
    assert set(store.list_namespaces(suffix=["alice"], limit=100)) == {
        ("uid", "users", "alice"),
        ("uid", "a", "b", "alice"),
    }
    assert store.list_namespaces(prefix=["uid", "*", "alice"]) == [("uid", "users", "alice")]
    assert len(store.list_namespaces(prefix=["uid"], limit=100)) == 3
    assert store.list_namespaces(prefix=["uid"], limit=2, offset=2) == [("uid", "users", "malice")]


# -- filters --------------------------------------------------------------------------------


def test_filters_reach_nested_fields_by_dotted_keys(store: AgentMemStore) -> None:
    store.put(("docs",), "hyphen", {"access-level": "public", "user": {"access-level": "nested"}})
    store.put(("docs",), "digit", {"123abc": "ok", "user": {"123abc": "ok2"}})
    store.put(("docs",), "dotted", {"a.b": "literal", "a": {"b": "path"}})
    assert keys(store.search(("docs",), filter={"access-level": "public"})) == ["hyphen"]
    assert keys(store.search(("docs",), filter={"user.access-level": "nested"})) == ["hyphen"]
    assert keys(store.search(("docs",), filter={"user.123abc": "ok2"})) == ["digit"]
    assert keys(store.search(("docs",), filter={"user.123abc": {"$ne": "ok2"}})) == [
        "dotted",
        "hyphen",
    ]
    # A field named with a dot wins over the path through objects.
    assert keys(store.search(("docs",), filter={"a.b": "literal"})) == ["dotted"]
    assert store.search(("docs",), filter={"user.nothing.here": "x"}) == []


def test_filter_values_are_data_never_syntax(store: AgentMemStore) -> None:
    store.put(("docs",), "d1", {"access": "public", "title": "O'Brien's Document"})
    store.put(("docs",), "d2", {"access": "private"})
    for hostile in ["public' OR '1'='1", "public'; --", "''''", "public\x00' OR '1'='1"]:
        assert store.search(("docs",), filter={"access": hostile}) == []
    assert store.search(("docs",), filter={"access') = 'public' OR ('1": "x"}) == []
    assert keys(store.search(("docs",), filter={"title": "O'Brien's Document"})) == ["d1"]


def test_numeric_and_boolean_filters(store: AgentMemStore) -> None:
    for key, price in [("i1", 10), ("i2", 20), ("i3", 30), ("i4", -10)]:
        store.put(("items",), key, {"price": price, "active": price > 15})
    assert sorted(keys(store.search(("items",), filter={"price": {"$gt": 15}}))) == ["i2", "i3"]
    assert len(store.search(("items",), filter={"price": {"$lt": float("inf")}})) == 4
    assert len(store.search(("items",), filter={"price": {"$gt": float("-inf")}})) == 4
    assert store.search(("items",), filter={"price": {"$eq": float("nan")}}) == []
    assert len(store.search(("items",), filter={"price": {"$lt": 10**100}})) == 4
    assert keys(store.search(("items",), filter={"price": {"$lt": 0}})) == ["i4"]
    assert sorted(keys(store.search(("items",), filter={"active": True}))) == ["i2", "i3"]
    assert len(store.search(("items",), filter={"tags": ["draft"]})) == 0


# -- scores ---------------------------------------------------------------------------------


def test_scores_are_cosine_similarities_of_the_indexed_text(
    memory: Memory, store: AgentMemStore
) -> None:
    store.put(("test",), "doc", {"key0": "aaa"}, index=["key0", "key1"])
    for query in ["aaa", "bbb", "abcd", "poisson"]:
        found = store.search((), query=query)
        rows = memory.components.embedder.embed([query, "aaa"])
        assert len(found) == 1
        assert found[0].score == pytest.approx(max(0.0, float(rows[0] @ rows[1])), abs=1e-3)
    assert store.search((), query="aaa")[0].score == pytest.approx(1.0, abs=1e-3)


def test_a_document_scores_by_its_best_indexed_field(memory: Memory) -> None:
    store = AgentMemStore(memory, index={"fields": ["key0", "key1", "key3"]})
    store.put(("test",), "doc1", {"key1": "xxx", "key2": "yyy", "key3": "zzz"})
    store.put(("test",), "doc2", {"key0": "uuu", "key1": "vvv", "key2": "www", "key3": "xxx"})
    both = store.search(("test",), query="xxx")
    assert len(both) == 2 and all(r.score is not None and r.score > 0.9 for r in both)
    for query, best in [("uuu", "doc2"), ("zzz", "doc1")]:
        found = store.search(("test",), query=query)
        assert found[0].key == best
        assert found[0].score is not None and found[1].score is not None
        assert found[0].score > found[1].score
    # key2 is not indexed: its value scores low for both.
    assert all(r.score is not None and r.score < 0.9 for r in store.search(("test",), query="www"))


def test_a_put_may_name_its_own_fields_or_none(store: AgentMemStore) -> None:
    store.put(
        ("test",), "doc3", {"key0": "aaa", "key1": "bbb", "key2": "ccc"}, index=["key0", "key1"]
    )
    store.put(
        ("test",), "doc4", {"key0": "eee", "key1": "bbb", "key3": "ggg"}, index=["key1", "key3"]
    )
    aaa = store.search(("test",), query="aaa")
    assert aaa[0].key == "doc3" and aaa[0].score > aaa[1].score  # type: ignore[operator]
    bbb = store.search(("test",), query="bbb")
    # Equally relevant documents score alike.
    assert abs(bbb[0].score - bbb[1].score) < 1e-6  # type: ignore[operator]
    assert all(r.score < 0.9 for r in store.search(("test",), query="ccc"))  # type: ignore[operator]
    store.put(("test",), "doc5", {"key0": "hhh"}, index=False)
    assert len(store.search(("test",))) == 3
    unindexed = store.search(("test",), query="hhh")
    assert unindexed[-1].key == "doc5" and unindexed[-1].score is None


def test_an_update_rescores_and_unindexed_documents_are_not_ranked(store: AgentMemStore) -> None:
    store.put(("test",), "doc1", {"text": "zany zebra Xerxes"})
    store.put(("test",), "doc2", {"text": "something about dogs"})
    store.put(("test",), "doc3", {"text": "text about birds"})
    initial = store.search(("test",), query="Zany Xerxes")
    assert initial[0].key == "doc1"
    store.put(("test",), "doc1", {"text": "new text about dogs"})
    after = next(r.score for r in store.search(("test",), query="Zany Xerxes") if r.key == "doc1")
    assert after is not None and initial[0].score is not None and after < initial[0].score
    fresh = next(r for r in store.search(("test",), query="new text about dogs") if r.key == "doc1")
    assert fresh.score is not None and fresh.score > after
    store.put(("test",), "doc4", {"text": "new text about dogs"}, index=False)
    top = store.search(("test",), query="new text about dogs", limit=3)
    assert "doc4" not in keys(top)


def test_query_ranking_with_filters_and_pages(store: AgentMemStore) -> None:
    docs = {
        "doc1": {"text": "red apple", "color": "red", "score": 4.5},
        "doc2": {"text": "red car", "color": "red", "score": 3.0},
        "doc3": {"text": "green apple", "color": "green", "score": 4.0},
        "doc4": {"text": "blue car", "color": "blue", "score": 3.5},
    }
    for key, value in docs.items():
        store.put(("test",), key, value)
    assert keys(store.search(("test",), query="apple", filter={"color": "red"})) == [
        "doc1",
        "doc2",
    ]
    assert store.search(("test",), query="car", filter={"color": "red"})[0].key == "doc2"
    blue = store.search(("test",), query="a blue vehicle", filter={"score": {"$gt": 3.2}})
    assert len(blue) == 3 and blue[0].key == "doc4"
    green = store.search(
        ("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"}
    )
    assert keys(green) == ["doc3"]

    for i in range(5):
        store.put(("pages",), f"doc{i}", {"text": f"test document number {i}"})
    first = store.search(("pages",), query="test", limit=2)
    second = store.search(("pages",), query="test", limit=2, offset=2)
    assert len(first) == len(second) == 2 and not set(keys(first)) & set(keys(second))
    every = store.search(("pages",), query="test", limit=10)
    scores = [r.score for r in every]
    assert len(every) == 5 and scores == sorted(scores, reverse=True)  # type: ignore[type-var]


def test_odd_queries_still_search(store: AgentMemStore) -> None:
    store.put(("test",), "doc1", {"text": "test document"})
    for query in ["", None, "test " * 100, "test!@#$%^&*()"]:
        assert len(store.search(("test",), query=query)) == 1


def test_non_latin_texts_find_themselves(store: AgentMemStore) -> None:
    texts = ["这是中文", "これは日本語です", "이건 한국어야", "Это русский", "यह रूसी है"]
    for number, text in enumerate(texts, start=1):
        store.put(("user_123", "memories"), str(number), {"text": text})
    for number, text in enumerate(texts, start=1):
        assert store.search(("user_123", "memories"), query=text)[0].key == str(number)


# -- TTL ------------------------------------------------------------------------------------


def test_the_ttl_sweeper_ends_expired_documents_in_the_background(memory: Memory) -> None:
    now = [datetime(2026, 1, 5, 9, 0, tzinfo=UTC)]
    store = AgentMemStore(
        memory,
        ttl={"default_ttl": 1, "sweep_interval_minutes": 0.001},
        clock=lambda: now[0],
    )
    store.put(("memories", "ana"), "short", {"text": "Parking is on level 3."})
    turn = store.get(("memories", "ana"), "short", refresh_ttl=False)
    assert turn is not None and turn.turn_id is not None
    now[0] += timedelta(minutes=2)  # expired, but nobody has used the store since
    running = store.start_ttl_sweeper()
    assert store.start_ttl_sweeper() is running  # one sweeper at a time
    deadline = time.monotonic() + 30
    # Nobody reads the store: only the sweeper can end the document and its memory.
    while any(i.current for i in memory.records.items_from_turns("ana", [turn.turn_id])):
        assert time.monotonic() < deadline, "the sweeper never ended the expired document"
        time.sleep(0.05)
    assert store.stop_ttl_sweeper(timeout=10) is True
    assert running.done() and running.exception() is None
    assert memory.records.document(("memories", "ana"), "short") is None
    versions = store.versions(("memories", "ana"), "short")
    assert versions[-1].end_reason == "expired"
    assert store.stop_ttl_sweeper() is True  # stopping twice is harmless
