"""One door for edits: update and delete through ``Memory`` on every built-in structure.

Each structure is asked, through the manager, to change one of its items. Afterwards the
old text must be gone from every structure's recall (a MemTree ancestor that quoted a
leaf, a graph fact read from a passage, a fact the ledger read from the same turn), and
the history must still hold it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from agentmem import Memory
from agentmem.errors import InputError

JAN = datetime(2024, 1, 10, 9, 0)
OLD = "opera"  # said in one turn only; the edited text says NEW instead
NEW = "jazz"
DIALOGUE = [
    "Hi! I just got back from the farmers market with fresh figs.",
    f"My neighbour's parrot Zephyrine speaks three languages and sings {OLD} every morning.",
    "I also started learning the cello last week, mostly scales for now.",
    "Zephyrine the parrot even greets the postman in Portuguese.",
    "My sister Lena lives in Bristol and visits every spring.",
    "Work has been busy: I am a nurse on the night shift at St Mary's.",
]
QUERIES = [
    "Which languages does the neighbour's parrot speak?",
    "What does the parrot sing every morning?",
    f"Who sings {OLD}?",
]
STORES = ["turns", "memtree", "graph", "memo", "summary"]


def _open(tmp_path: Path, stores: str) -> Memory:
    return Memory(tmp_path / "memory", model="none", env={}, stores=stores)


def _remember(memory: Memory, user: str) -> None:
    memory.add(
        [{"role": "user", "content": text} for text in DIALOGUE], user_id=user, timestamp=JAN
    )
    memory.end_session(user)  # let summaries and memos consolidate


def _recalled(memory: Memory, user: str) -> list[str]:
    texts: list[str] = []
    for query in QUERIES:
        texts += [r["memory"] for r in memory.search(query, user_id=user, top_k=50)]
    return texts


def _target(memory: Memory, user: str, store: str) -> dict[str, object]:
    """The structure's current item that says the old word, a leaf or sentence if any."""
    found = [r for r in memory.get_all(user_id=user, store=store) if OLD in r["memory"]]
    assert found, f"{store} holds nothing about {OLD}"
    # The most specific: the shortest text (a leaf rather than its ancestor).
    return min(found, key=lambda r: len(str(r["memory"])))


@pytest.fixture
def memory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Memory]:
    with _open(tmp_path, request.param) as opened:
        yield opened


@pytest.mark.parametrize("memory", STORES, indirect=True)
def test_delete_leaves_no_trace_of_the_old_text_in_any_recall(memory: Memory) -> None:
    store = memory.manager.stores[0].name
    _remember(memory, "dee")
    assert any(OLD in text for text in _recalled(memory, "dee")), "recalled before"
    target = _target(memory, "dee", store)
    result = memory.delete(str(target["id"]), user_id="dee")
    assert result.events[0]["event"] == "DELETE" and result.events[0]["id"] == target["id"]
    for _ in range(2):  # once more: nothing the first deletion left behind resurfaces
        assert not [text for text in _recalled(memory, "dee") if OLD in text]
    history = memory.history(str(target["id"]), user_id="dee")
    assert history[-1]["event"] == "DELETE"
    assert not memory.get(str(target["id"]), user_id="dee")["current"]


@pytest.mark.parametrize("memory", STORES, indirect=True)
def test_update_leaves_no_trace_of_the_old_text_in_any_recall(memory: Memory) -> None:
    store = memory.manager.stores[0].name
    _remember(memory, "ued")
    target = _target(memory, "ued", store)
    old_text = str(target["memory"])
    new_text = old_text.replace(OLD, NEW)
    result = memory.update(str(target["id"]), new_text, user_id="ued")
    assert result.events[0]["event"] == "UPDATE"
    assert memory.get(str(target["id"]), user_id="ued")["memory"] == new_text
    recalled = _recalled(memory, "ued")
    # Aggregates quoting the old text (tree ancestors, the summary version) were rewritten;
    # what other structures read from it no longer holds.
    assert not [text for text in recalled if OLD in text]
    assert [h["event"] for h in memory.history(str(target["id"]), user_id="ued")][-1] == "UPDATE"
    assert memory.history(str(target["id"]), user_id="ued")[-1]["old_memory"] == old_text


def test_a_memtree_leaf_edit_rewrites_the_ancestors_that_quoted_it(tmp_path: Path) -> None:
    with _open(tmp_path, "memtree") as memory:
        _remember(memory, "tree")
        nodes = memory.get_all(user_id="tree", store="memtree")
        leaf = min((n for n in nodes if OLD in n["memory"]), key=lambda n: len(n["memory"]))
        quoting = [n for n in nodes if n["id"] != leaf["id"] and OLD in n["memory"]]
        memory.update(leaf["id"], leaf["memory"].replace(OLD, NEW), user_id="tree")
        for node in quoting:
            now = memory.get(node["id"], user_id="tree")
            if set(now["source_turn_ids"]) >= set(leaf["source_turn_ids"]) and now["current"]:
                assert NEW in now["memory"] or OLD not in now["memory"]


def test_deleting_a_turn_in_all_deletes_what_other_structures_derived_from_it(
    tmp_path: Path,
) -> None:
    with _open(tmp_path, "all") as memory:
        _remember(memory, "all")
        turn = next(
            r for r in memory.get_all(user_id="all", store="turns") if "opera" in r["memory"]
        )
        result = memory.delete(turn["id"], user_id="all")
        stores = {e["store"] for e in result.events if e["event"] == "DELETE"}
        assert {"turns", "memtree", "graph"} <= stores
        assert not [text for text in _recalled(memory, "all") if OLD in text]


def test_a_fact_keeps_its_slot_when_its_text_is_edited(tmp_path: Path) -> None:
    with _open(tmp_path, "turns") as memory:
        _remember(memory, "nurse")
        fact = next(
            r for r in memory.get_all(user_id="nurse", store="facts") if "nurse" in r["memory"]
        )
        result = memory.update(fact["id"], "user works as a night nurse", user_id="nurse")
        assert result.events[0]["event"] == "UPDATE"
        # The turn that said it is superseded by the edited fact, not left saying the old.
        assert any(e["event"] == "SUPERSEDE" and e["store"] == "turns" for e in result.events[1:])
        with pytest.raises(InputError, match="no longer current"):
            memory.update(result.events[1]["id"], "anything", user_id="nurse")
