"""The LangGraph store over real memory: BaseStore's documented behaviours, and consistency.

The behaviours are those LangGraph documents for ``BaseStore`` (put/get/search/delete,
list_namespaces with prefix, suffix, wildcards and depth, filters with their operators,
TTL); the documented operations are also run side by side against LangGraph's own
``InMemoryStore``, which must give the same answers. Then what agentmem adds: a superseded
fact is left out of search, every version stays readable, and LangGraph graphs and
LangMem's tools use the store as they use any other.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, InvalidNamespaceError
from langgraph.store.memory import InMemoryStore

from agentmem.errors import ConfigError, InputError
from agentmem.langgraph import AgentMemStore
from agentmem.memory import Memory
from agentmem.types import Scope

NS = ("memories", "ana")


class Clock:
    """A clock the test moves (the store reads the time through it)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[Memory]:
    with Memory(tmp_path / "data", model="none", stores=("turns",), env={}) as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(memory: Memory, clock: Clock) -> AgentMemStore:
    return AgentMemStore(memory, clock=clock)


def keys(items: list[Any]) -> list[str]:
    return [item.key for item in items]


# -- put, get, delete -------------------------------------------------------------------------


def test_put_then_get_returns_the_item_with_its_times(store: AgentMemStore, clock: Clock) -> None:
    assert store.get(NS, "home") is None
    store.put(NS, "home", {"content": "I live in Lisbon.", "since": 2019})
    item = store.get(NS, "home")
    assert item is not None
    assert (item.namespace, item.key) == (NS, "home")
    assert item.value == {"content": "I live in Lisbon.", "since": 2019}
    assert item.created_at == item.updated_at == clock.now
    assert item.created_at.tzinfo is not None
    assert item.current and item.turn_id is not None

    clock.advance(minutes=5)
    store.put(NS, "home", {"content": "I live in Porto.", "since": 2024})
    again = store.get(NS, "home")
    assert again is not None and again.value["content"] == "I live in Porto."
    # An update keeps the first creation time and moves the update time.
    assert again.created_at == item.created_at
    assert again.updated_at == clock.now
    assert store.get(("memories", "bob"), "home") is None


def test_delete_removes_the_item_and_keeps_its_versions(store: AgentMemStore) -> None:
    store.put(NS, "pet", {"content": "My dog is called Rex."})
    store.delete(NS, "pet")
    store.delete(NS, "never-stored")  # deleting what is not there is not an error
    assert store.get(NS, "pet") is None
    assert store.search(NS) == []
    [version] = store.versions(NS, "pet")
    assert version.value == {"content": "My dog is called Rex."}
    assert version.end_reason == "deleted" and version.ended_at is not None
    assert not version.current


def test_search_lists_a_prefix_newest_first_with_limit_and_offset(
    store: AgentMemStore, clock: Clock
) -> None:
    for n, namespace in enumerate([("docs", "a"), ("docs", "b"), ("docs", "a", "c"), ("other",)]):
        clock.advance(seconds=1)
        store.put(namespace, f"k{n}", {"n": n})
    assert keys(store.search(("docs",))) == ["k2", "k1", "k0"]
    assert keys(store.search(("docs", "a"))) == ["k2", "k0"]
    assert keys(store.search(())) == ["k3", "k2", "k1", "k0"]
    assert keys(store.search(("docs",), limit=2)) == ["k2", "k1"]
    assert keys(store.search(("docs",), limit=2, offset=2)) == ["k0"]
    # "do" is not a label of ("docs", ...): a prefix is matched label by label, and a
    # label's "_" or "%" is a character, not a wildcard.
    assert store.search(("do",)) == []
    store.put(("a_b%",), "x", {"n": 1})
    store.put(("axbyz", "c"), "y", {"n": 2})
    assert keys(store.search(("a_b%",))) == ["x"]
    assert all(item.score is None for item in store.search(("docs",)))


def test_filters_match_values_and_the_documented_operators(store: AgentMemStore) -> None:
    store.put(("docs",), "a", {"type": "report", "score": 4.5, "meta": {"lang": "en"}})
    store.put(("docs",), "b", {"type": "report", "score": 2, "meta": {"lang": "pt"}})
    store.put(("docs",), "c", {"type": "note", "score": 5, "tags": ["x", "y"]})

    def found(condition: dict[str, Any]) -> set[str]:
        return set(keys(store.search(("docs",), filter=condition)))

    assert found({"type": "report"}) == {"a", "b"}
    assert found({"type": "report", "meta": {"lang": "pt"}}) == {"b"}
    assert found({"score": {"$gt": 4.5}}) == {"c"}
    assert found({"score": {"$gte": 4.5}}) == {"a", "c"}
    assert found({"score": {"$lt": 4.5}}) == {"b"}
    assert found({"score": {"$lte": 4.5}}) == {"a", "b"}
    assert found({"score": {"$gt": 1, "$lt": 5}}) == {"a", "b"}
    assert found({"type": {"$eq": "note"}}) == {"c"}
    assert found({"type": {"$ne": "note"}}) == {"a", "b"}
    assert found({"tags": ["x", "y"]}) == {"c"}
    assert found({"missing": "x"}) == set()
    with pytest.raises(InputError, match="unsupported filter operator"):
        store.search(("docs",), filter={"score": {"$near": 3}})


def test_a_query_ranks_by_memory_and_returns_every_match(store: AgentMemStore) -> None:
    store.put(NS, "pet", {"content": "My dog Rex loves the beach."})
    store.put(NS, "job", {"content": "I work as a nurse at the city hospital."})
    store.put(NS, "food", {"content": "My favourite dish is grilled sardines."})
    found = store.search(NS, query="What is my profession?")
    assert keys(found)[0] == "job"
    assert found[0].score is not None and found[0].score > 0
    assert set(keys(found)) == {"pet", "job", "food"}
    assert keys(store.search(NS, query="Tell me about my dog", limit=1)) == ["pet"]
    assert keys(store.search(NS, query="dish", filter={"content": {"$ne": "x"}}))[0] == "food"


def test_list_namespaces_as_documented(store: AgentMemStore) -> None:
    for namespace in [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("x", "v1"),
    ]:
        store.put(namespace, "k", {"n": 1})
    # The example in BaseStore.list_namespaces' docstring.
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("*", "i")) == [("a", "b", "d", "i")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("x",)]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    store.delete(("x", "v1"), "k")
    assert ("x", "v1") not in store.list_namespaces()


def test_namespaces_are_validated_as_langgraph_documents(store: AgentMemStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put((), "k", {"n": 1})
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {"n": 1})
    with pytest.raises(InvalidNamespaceError):
        store.put(("langgraph", "x"), "k", {"n": 1})
    with pytest.raises(InvalidNamespaceError):
        store.get(("",), "k")
    with pytest.raises(InvalidNamespaceError):
        store.search(("a.b",))
    assert store.list_namespaces() == []


def test_a_bad_value_is_refused_and_nothing_is_stored(store: AgentMemStore, memory: Memory) -> None:
    with pytest.raises(InputError, match="JSON"):
        store.put(NS, "k", {"when": datetime(2026, 1, 1)})
    with pytest.raises(InputError):
        store.put(NS, "k", {"content": "bad \ud800 surrogate"})
    with pytest.raises(InputError, match="index fewer fields"):
        store.put(NS, "k", {"content": "word " * 50_000})
    assert store.get(NS, "k") is None
    assert memory.records.turns("ana") == []
    store.put(NS, "k", {"content": "word " * 50_000}, index=False)  # kept, not told to memory
    assert store.get(NS, "k") is not None and memory.records.turns("ana") == []


# -- parity with LangGraph's own store ------------------------------------------------------


def run_documented_operations(store: BaseStore) -> list[Any]:
    """Run BaseStore's documented operations; return what a caller sees, order-free."""
    seen: list[Any] = []
    store.put(("users", "ana", "profile"), "name", {"first": "Ana", "age": 34})
    store.put(("users", "ana", "prefs"), "theme", {"mode": "dark", "size": 12})
    store.put(("users", "bob", "prefs"), "theme", {"mode": "light", "size": 14})
    store.put(("docs",), "report", {"memory": "Will likes ai", "status": "active"})
    store.put(("docs",), "draft", {"memory": "unfinished", "status": "draft"}, index=False)

    def item(value: Any) -> Any:
        return None if value is None else (value.namespace, value.key, value.value)

    def found(items: list[Any]) -> list[Any]:
        return sorted((i.namespace, i.key, json.dumps(i.value, sort_keys=True)) for i in items)

    seen.append(item(store.get(("users", "ana", "profile"), "name")))
    seen.append(item(store.get(("users", "ana", "profile"), "nope")))
    seen.append(found(store.search(("users",))))
    seen.append(found(store.search(("users",), filter={"mode": "dark"})))
    seen.append(found(store.search(("users", "bob"), filter={"size": {"$gte": 13}})))
    seen.append(found(store.search(("users", "ana", "prefs"), filter={"size": {"$lt": 13}})))
    seen.append(found(store.search(("docs",), filter={"status": {"$ne": "active"}})))
    seen.append(store.list_namespaces())
    seen.append(store.list_namespaces(prefix=("users",), max_depth=2))
    seen.append(store.list_namespaces(suffix=("prefs",)))
    seen.append(store.list_namespaces(prefix=("users", "*", "prefs")))
    store.put(("users", "ana", "prefs"), "theme", {"mode": "light", "size": 12})
    seen.append(item(store.get(("users", "ana", "prefs"), "theme")))
    store.delete(("users", "ana", "prefs"), "theme")
    seen.append(item(store.get(("users", "ana", "prefs"), "theme")))
    # (Not compared: list_namespaces after deleting a namespace's last item. InMemoryStore
    # keeps listing the emptied namespace; this store, like LangGraph's SQL stores, lists
    # the namespaces that hold items: see test_list_namespaces_as_documented.)
    seen.append(found(store.search(("users",), limit=10, offset=0)))
    return seen


def test_documented_operations_answer_as_langgraphs_in_memory_store(
    store: AgentMemStore,
) -> None:
    assert run_documented_operations(store) == run_documented_operations(InMemoryStore())


# -- time to live --------------------------------------------------------------------------


def test_ttl_expires_unread_items_and_reads_refresh_it(
    store: AgentMemStore, memory: Memory, clock: Clock
) -> None:
    store.put(NS, "code", {"content": "The door code is 4821."}, ttl=1)
    store.put(NS, "pet", {"content": "My dog is called Rex."})
    clock.advance(seconds=40)
    assert store.get(NS, "code") is not None  # refreshes: now expires 60 s from here
    clock.advance(seconds=40)
    assert store.get(NS, "code", refresh_ttl=False) is not None
    assert keys(store.search(NS, refresh_ttl=False)) == ["pet", "code"]
    clock.advance(seconds=25)
    assert store.get(NS, "code") is None
    assert keys(store.search(NS, query="door code")) == ["pet"]
    [version] = store.versions(NS, "code")
    assert version.end_reason == "expired"
    # Its memory items are deleted too: memory no longer recalls the code as current.
    found = memory.search("door code", user_id="ana", include_history=True).items
    code = [r for r in found if "4821" in r["memory"]]
    assert code and not any(r["current"] for r in code)
    history = memory.history(code[0]["id"], user_id="ana")
    assert "time to live" in history[-1]["reason"]


def test_ttl_config_gives_a_default_and_can_stop_reads_refreshing(
    memory: Memory, clock: Clock
) -> None:
    store = AgentMemStore(memory, clock=clock, ttl={"default_ttl": 2, "refresh_on_read": False})
    store.put(NS, "k", {"content": "Parked on level three."})
    store.put(NS, "kept", {"content": "Keep this one."}, ttl=None)
    clock.advance(seconds=90)
    assert store.get(NS, "k") is not None  # does not refresh
    clock.advance(seconds=45)
    assert store.sweep_ttl() == 1
    assert store.get(NS, "k") is None
    assert store.get(NS, "kept") is not None


# -- consistency ---------------------------------------------------------------------------


def test_search_leaves_out_a_fact_a_later_memory_superseded(memory: Memory, clock: Clock) -> None:
    store = AgentMemStore(memory, clock=clock)
    store.put(NS, "home-1", {"content": "I live in Lisbon."})
    clock.advance(days=30)
    store.put(NS, "home-2", {"content": "I moved to Berlin."})
    found = store.search(NS, query="Where do I live?")
    assert keys(found) == ["home-2"]
    assert found[0].current
    # Under its own key it is still there, marked as no longer holding.
    old = store.get(NS, "home-1")
    assert old is not None and not old.current and old.superseded_by is not None
    assert set(keys(store.search(NS))) == {"home-2"}
    # The same memory serves every other way in: it says Berlin too.
    current = memory.search("Where do I live?", user_id="ana").items
    assert any("Berlin" in r["memory"] for r in current)
    assert not any("Lisbon" in r["memory"] for r in current)
    # A store that asks for history gets both, the old one marked.
    everything = AgentMemStore(memory, clock=clock, include_superseded=True)
    both = {i.key: i.current for i in everything.search(NS, query="Where do I live?")}
    assert both == {"home-1": False, "home-2": True}


def test_a_chat_turn_supersedes_a_stored_document_too(
    store: AgentMemStore, memory: Memory, clock: Clock
) -> None:
    store.put(NS, "home", {"content": "I live in Lisbon."})
    memory.add("I moved to Berlin.", user_id="ana")  # said in a chat, not through the store
    assert store.search(NS, query="Where do I live?") == []
    home = store.get(NS, "home")
    assert home is not None and not home.current


def test_writing_a_key_again_ends_the_old_versions_memory(
    store: AgentMemStore, memory: Memory, clock: Clock
) -> None:
    # Two notes no fact rule relates: only the store knows the second replaces the first.
    store.put(NS, "todo", {"content": "Book the venue for the party."})
    clock.advance(minutes=1)
    store.put(NS, "todo", {"content": "Send the invitations for the party."})
    items = memory.search("party", user_id="ana", include_history=True).items
    venue = [r for r in items if "venue" in r["memory"]]
    assert venue and not any(r["current"] for r in venue)
    assert any(r["current"] and "invitations" in r["memory"] for r in items)
    reasons = [e["reason"] for e in memory.history(venue[0]["id"], user_id="ana")]
    assert reasons[-1] == "replaced in the LangGraph store under the same key"
    versions = store.versions(NS, "todo")
    assert [v.value["content"] for v in versions] == [
        "Book the venue for the party.",
        "Send the invitations for the party.",
    ]
    assert [v.end_reason for v in versions] == ["replaced", ""]
    assert [v.current for v in versions] == [False, True]
    # Writing the same value again adds no version and tells memory nothing new.
    turns = len(memory.records.turns("ana"))
    clock.advance(minutes=1)
    store.put(NS, "todo", {"content": "Send the invitations for the party."})
    assert len(store.versions(NS, "todo")) == 2
    assert len(memory.records.turns("ana")) == turns
    item = store.get(NS, "todo")
    assert item is not None and item.updated_at == clock.now


def test_the_text_memory_is_told_follows_the_index_setting(memory: Memory, clock: Clock) -> None:
    store = AgentMemStore(memory, clock=clock, index={"fields": ["title"]})
    store.put(NS, "a", {"title": "Trip to Kyoto in April", "body": "secret itinerary"})
    store.put(NS, "b", {"title": "Dentist on Friday"}, index=["title"])
    store.put(NS, "c", {"title": "Hidden"}, index=False)
    texts = [t.text for t in memory.records.turns("ana")]
    assert texts == ["Trip to Kyoto in April", "Dentist on Friday"]
    hidden = store.get(NS, "c")
    assert hidden is not None and hidden.turn_id is None
    # Not indexed: not ranked, but still returned after the ranked ones.
    found = store.search(NS, query="Kyoto")
    assert keys(found)[0] == "a" and found[-1].key == "c" and found[-1].score is None


def test_by_default_sentences_are_told_as_they_are_and_short_values_by_field(
    store: AgentMemStore, memory: Memory
) -> None:
    store.put(NS, "profile", {"name": "Ana", "city": "Lisbon", "age": 34})
    store.put(NS, "note", {"kind": "Memory", "content": {"content": "Ana prefers tea."}})
    texts = [t.text for t in memory.records.turns("ana")]
    assert texts == ["name: Ana\ncity: Lisbon\nage: 34", "kind: Memory\nAna prefers tea."]


# -- scopes ---------------------------------------------------------------------------------


def test_namespaces_map_to_users_and_agents(memory: Memory, clock: Clock) -> None:
    store = AgentMemStore(memory, clock=clock)
    store.put(("memories", "ana", "profile"), "k", {"content": "Ana likes jazz."})
    store.put(("docs",), "k", {"content": "Shared handbook text."})
    assert [t.text for t in memory.records.turns("ana")] == ["Ana likes jazz."]
    assert [t.text for t in memory.records.turns("langgraph")] == ["Shared handbook text."]
    assert store.scope_of(("memories", "bob")) == Scope("bob")

    agents = AgentMemStore(memory, clock=clock, scope=("{agent_id}", "{user_id}"))
    agents.put(("planner", "cleo"), "k", {"content": "Cleo flies on Monday."})
    [turn] = memory.records.turns("cleo")
    assert turn.agent_id == "planner"

    strict = AgentMemStore(memory, clock=clock, scope=("users", "{user_id}"), unscoped_user=None)
    with pytest.raises(InvalidNamespaceError, match="names no user"):
        strict.put(("teams", "x"), "k", {"n": 1})
    custom = AgentMemStore(memory, scope=lambda ns: Scope(ns[-1]))
    assert custom.scope_of(("a", "b", "dora")) == Scope("dora")
    with pytest.raises(ConfigError):
        AgentMemStore(memory, scope=("memories",))
    with pytest.raises(ConfigError):
        AgentMemStore(memory, scope=("{user_id}", "{team}"))


def test_forget_erases_a_users_documents(store: AgentMemStore, memory: Memory) -> None:
    store.put(NS, "a", {"content": "I live in Lisbon."})
    store.put(NS, "a", {"content": "I live in Porto."})
    store.put(("memories", "bob"), "a", {"content": "Bob lives in Oslo."})
    receipt = memory.forget("ana")
    assert receipt["documents"] == 2
    assert store.get(NS, "a") is None and store.versions(NS, "a") == []
    assert store.list_namespaces() == [("memories", "bob")]


def test_documents_outlive_the_process(tmp_path: Path) -> None:
    with Memory(tmp_path / "data", model="none", stores=("turns",), env={}) as memory:
        AgentMemStore(memory).put(NS, "pet", {"content": "My dog is called Rex."})
    with Memory(tmp_path / "data", model="none", stores=("turns",), env={}) as memory:
        store = AgentMemStore(memory)
        item = store.get(NS, "pet")
        assert item is not None and item.value == {"content": "My dog is called Rex."}
        assert keys(store.search(NS, query="dog's name")) == ["pet"]


def test_the_async_api(store: AgentMemStore) -> None:
    async def scenario() -> list[Any]:
        await store.aput(NS, "a", {"content": "I play the cello."})
        got = await store.aget(NS, "a")
        found = await store.asearch(NS, query="instrument")
        spaces = await store.alist_namespaces()
        await store.adelete(NS, "a")
        return [got, found, spaces, await store.aget(NS, "a")]

    got, found, spaces, gone = asyncio.run(scenario())
    assert got.value == {"content": "I play the cello."}
    assert keys(found) == ["a"] and spaces == [NS] and gone is None


# -- in LangGraph and LangMem --------------------------------------------------------------


class State(TypedDict):
    said: str
    recalled: list[str]


def graph_with(store: BaseStore) -> Callable[[str, str], list[str]]:
    def remember(state: State) -> dict[str, Any]:
        store = get_store()
        namespace = ("memories", "ana")
        store.put(namespace, f"m{len(store.search(namespace))}", {"content": state["said"]})
        return {}

    def recall(state: State) -> dict[str, Any]:
        found = get_store().search(("memories", "ana"), query=state["said"], limit=3)
        return {"recalled": [item.value["content"] for item in found]}

    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    graph = builder.compile(store=store)

    def run(said: str, _thread: str) -> list[str]:
        return list(graph.invoke({"said": said, "recalled": []})["recalled"])

    return run


def test_a_langgraph_graph_keeps_its_memory_in_the_store(store: AgentMemStore) -> None:
    run = graph_with(store)
    run("I live in Lisbon.", "1")
    recalled = run("I moved to Berlin last month.", "2")
    assert recalled[0] == "I moved to Berlin last month."
    assert "I live in Lisbon." not in recalled


def test_langmem_tools_use_the_store(store: AgentMemStore) -> None:
    langmem = pytest.importorskip("langmem")
    manage = langmem.create_manage_memory_tool(namespace=NS, store=store)
    search = langmem.create_search_memory_tool(namespace=NS, store=store)
    manage.invoke({"content": "I live in Lisbon.", "action": "create"})
    manage.invoke({"content": "I moved to Berlin.", "action": "create"})
    found = json.loads(search.invoke({"query": "Where do I live?"}))
    assert [m["value"]["content"] for m in found] == ["I moved to Berlin."]
    created = manage.invoke({"content": "I have a cat.", "action": "create"})
    key = created.rsplit(" ", 1)[1]
    manage.invoke({"content": "I have two cats.", "action": "update", "id": key})
    item = store.get(NS, key)
    assert item is not None and item.value == {"content": "I have two cats."}
    manage.invoke({"action": "delete", "id": key})
    assert store.get(NS, key) is None


def test_langmem_notes_about_the_user_supersede_each_other(store: AgentMemStore) -> None:
    """Agents write LangMem notes in the third person ("The user ..."); a newer one wins."""
    langmem = pytest.importorskip("langmem")
    manage = langmem.create_manage_memory_tool(namespace=NS, store=store)
    search = langmem.create_search_memory_tool(namespace=NS, store=store)
    for note in (
        "The user lives in Lisbon.",
        "User's favourite food is sushi.",
        "The user moved to Berlin.",
        "The user's favourite food is ramen now.",
    ):
        manage.invoke({"content": note, "action": "create"})
    home = json.loads(search.invoke({"query": "Where does the user live?"}))
    assert [m["value"]["content"] for m in home] == [
        "The user moved to Berlin.",
        "The user's favourite food is ramen now.",
    ]
