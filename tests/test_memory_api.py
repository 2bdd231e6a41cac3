"""The Memory facade: add / search / get / update / delete / history / forget / export."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import agentmem
from agentmem.async_memory import AsyncMemory
from agentmem.errors import InputError, NotFoundError
from agentmem.memory import Memory, MemoryRecord
from agentmem.testing import ScriptedChatModel
from agentmem.types import Message

JAN = datetime(2024, 1, 10, 9, 0)
JUNE = datetime(2024, 6, 10, 9, 0)
#: The June turn as the turns structure stores it: "last week" resolved against 10 June.
MOVED_TURN = "Sam: We moved to Denver last week [the week before 10 June 2024]."


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    """One Memory for the module; each test uses its own user ids (scoping isolates them)."""
    with Memory(tmp_path_factory.mktemp("memory"), model="none", env={}) as shared:
        yield shared


def moved(memory: Memory, user: str) -> tuple[Any, Any]:
    """Say "I live in Boston" in January and "We moved to Denver" in June."""
    first = memory.add(
        [
            {"role": "user", "content": "I live in Boston.", "name": "Sam"},
            {"role": "assistant", "content": "Boston is lovely in the fall."},
        ],
        user_id=user,
        timestamp=JAN,
        metadata={"topic": "home"},
    )
    second = memory.add(
        [{"role": "user", "content": "We moved to Denver last week.", "name": "Sam"}],
        user_id=user,
        timestamp=JUNE,
    )
    return first, second


def texts(records: list[MemoryRecord]) -> list[str]:
    return [r["memory"] for r in records]


def test_memory_is_exported_lazily_from_the_package() -> None:
    assert agentmem.Memory is Memory
    assert "Memory" in agentmem.__all__ and "AgentMemRetriever" in agentmem.__all__
    assert all(getattr(agentmem, name) is not None for name in agentmem.__all__)
    # Storage internals are not the package's API (their modules export them).
    assert not {"Records", "VectorIndex", "ItemIndex"} & set(agentmem.__all__)


def test_add_stores_turns_first_and_returns_the_per_turn_diff(memory: Memory) -> None:
    first, _ = moved(memory, "add-diff")
    turns = memory.records.turns("add-diff")
    assert [t.text for t in turns] == [
        "I live in Boston.",
        "Boston is lovely in the fall.",
        "We moved to Denver last week.",
    ]
    assert [t.speaker for t in turns] == ["Sam", "assistant", "Sam"]
    assert first.turn_ids == [turns[0].id, turns[1].id] and first.ok
    assert turns[0].metadata == {"topic": "home"} and turns[0].timestamp == JAN
    events = {(e["event"], e["store"], e["memory"]) for e in first.events}
    assert ("ADD", "facts", "Sam lives in Boston") in events
    assert ("ADD", "turns", "Sam: I live in Boston.") in events
    assert first.tokens == 0 and first.seconds > 0  # offline: no model tokens
    for event in first.events:
        assert set(event) == {
            "event",
            "id",
            "memory",
            "store",
            "previous",
            "reason",
            "current",
            "superseded_by",
        }


def test_supersession_is_in_the_diff_and_history_stays_searchable(memory: Memory) -> None:
    first, second = moved(memory, "mover")
    boston = next(e for e in first.events if e["memory"] == "Sam lives in Boston")
    facts = [e for e in second.events if e["store"] == "facts"]
    # Each event is about its own item: Denver is added and replaces Boston; Boston is
    # superseded by Denver. Neither reads as if Denver were the value replaced.
    denver = facts[0]
    assert [(e["event"], e["memory"], e["current"]) for e in facts] == [
        ("ADD", "Sam lives in Denver", True),
        ("SUPERSEDE", "Sam lives in Boston", False),
    ]
    assert denver["previous"] == [boston["id"]]
    # Both say the change the same way: which aspect, the old value, the new, the turn.
    turn = second.turn_ids[0]
    assert denver["reason"].startswith(f"residence: Boston → Denver (turn {turn})")
    assert facts[1]["id"] == boston["id"] and facts[1]["superseded_by"] == denver["id"]
    assert facts[1]["reason"] == f"residence: Boston → Denver (turn {turn})"
    assert facts[1]["previous"] == []
    stale_turn = [e for e in second.events if e["memory"] == "Sam: I live in Boston."]
    assert stale_turn and stale_turn[0]["event"] == "SUPERSEDE" and not stale_turn[0]["current"]

    now = memory.search("Where does Sam live?", user_id="mover")
    assert {"Sam lives in Denver", MOVED_TURN} <= set(texts(now.items))
    assert not {"Sam lives in Boston", "Sam: I live in Boston."} & set(texts(now.items))
    # The assistant's echo of the old value goes with it: nothing current says Boston.
    assert not [t for t in texts(now.items) if "Boston" in t and "Denver" not in t]
    history = memory.search("Where does Sam live?", user_id="mover", include_history=True)
    old = [r for r in history.items if r["memory"] == "Sam lives in Boston"]
    assert old and not old[0]["current"] and old[0]["invalid_at"] == JUNE
    assert old[0]["superseded_by"] == denver["id"]
    before = memory.search("Where does Sam live?", user_id="mover", as_of=datetime(2024, 3, 1))
    assert "Sam lives in Boston" in texts(before.items)
    assert not any("Denver" in t for t in texts(before.items))


def test_search_items_report_provenance_validity_tokens_and_time(memory: Memory) -> None:
    moved(memory, "shape")
    result = memory.search("Where does Sam live?", user_id="shape", top_k=2)
    assert len(result) == 2
    item = result.items[0]
    assert item["memory"] == item["text"] and item["user_id"] == "shape"
    assert item["source_turn_ids"] and item["current"] and (item["score"] or 0) > 0
    assert item["valid_from"] == JUNE and item["invalid_at"] is None
    counter = memory.manager.counter
    assert result.tokens == sum(counter.count(r["memory"]) + 8 for r in result.items)
    assert result.seconds > 0 and result.model_tokens == 0 and "total" in result.timings
    assert result.query


def test_search_filters_on_fields_and_add_metadata(memory: Memory) -> None:
    moved(memory, "filters")
    facts = memory.search("Sam", user_id="filters", filters={"store": "facts"})
    assert facts.items and {r["store"] for r in facts.items} == {"facts"}
    topic = memory.search("Sam", user_id="filters", filters={"topic": "home"}, include_history=True)
    assert topic.items and all(r["metadata"]["topic"] == "home" for r in topic.items)
    assert MOVED_TURN not in texts(topic.items)
    either = memory.search(
        "Sam", user_id="filters", filters={"kind": ["fact", "turn"], "current": True}
    )
    assert {r["kind"] for r in either.items} == {"fact", "turn"}
    assert memory.search("Sam", user_id="filters", filters={"topic": "work"}).items == []


def test_a_user_never_sees_or_touches_another_users_items(memory: Memory) -> None:
    moved(memory, "alice")
    memory.add("My cat is called Miso.", user_id="bob", timestamp=JAN)
    found = memory.search("Where does Sam live? cat", user_id="bob", include_history=True)
    assert found.items and all(r["user_id"] == "bob" for r in found.items)
    assert not any("Boston" in t or "Denver" in t for t in texts(found.items))
    alice_item = memory.get_all(user_id="alice")[0]["id"]
    with pytest.raises(NotFoundError):
        memory.get(alice_item, user_id="bob")
    with pytest.raises(NotFoundError):
        memory.update(alice_item, "Sam lives in Paris", user_id="bob")
    with pytest.raises(NotFoundError):
        memory.delete(alice_item, user_id="bob")
    with pytest.raises(NotFoundError):
        memory.history(alice_item, user_id="bob")
    assert memory.get(alice_item, user_id="alice")["current"]
    assert all(r["user_id"] == "bob" for r in memory.get_all(user_id="bob"))


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "tool", "content": "42"}],
        [{"role": "user", "content": ""}],
        [{"role": "user", "content": 42}],
        [{"role": "user", "content": "hi", "mood": "happy"}],
        [{"role": "user", "content": "fine"}, {"role": "user"}],
        [{"role": "system", "content": "You are a helpful assistant."}],
        [{"role": "user", "content": "hi", "timestamp": "yesterday"}],
        42,
    ],
)
def test_bad_messages_raise_input_error_and_store_nothing(memory: Memory, messages: Any) -> None:
    with pytest.raises(InputError):
        memory.add(messages, user_id="careless")
    assert memory.records.count_turns("careless") == 0


def test_every_call_needs_a_user(memory: Memory) -> None:
    with pytest.raises(InputError, match="user_id"):
        memory.add("I live in Oslo.", user_id="")
    with pytest.raises(InputError):
        memory.search("Oslo", user_id="  ")
    with pytest.raises(InputError):
        memory.search("", user_id="someone")
    with pytest.raises(InputError):
        memory.search("Oslo", user_id="someone", top_k=0)


def test_add_accepts_a_string_messages_and_text_parts_and_skips_system(memory: Memory) -> None:
    memory.add("I play the cello.", user_id="forms")
    memory.add(
        [
            {"role": "system", "content": "Be nice."},
            Message("assistant", "Nice!"),
            {"role": "user", "content": [{"type": "text", "text": "I also sing."}]},
        ],
        user_id="forms",
    )
    turns = memory.records.turns("forms")
    assert [(t.role, t.text) for t in turns] == [
        ("user", "I play the cello."),
        ("assistant", "Nice!"),
        ("user", "I also sing."),
    ]
    assert len({t.session_id for t in turns}) == 1  # the user's open session


def test_search_with_history_ranks_the_current_fact_above_the_one_it_replaced(
    memory: Memory,
) -> None:
    user = "ranker"
    said = {"role": "user", "name": "Sam"}
    memory.add([{**said, "content": "I live in Boston."}], user_id=user, timestamp=JAN)
    memory.add([{**said, "content": "We moved to Denver."}], user_id=user, timestamp=JUNE)
    found = memory.search("Where does Sam live?", user_id=user, include_history=True).items
    order = texts(found)
    # The query names neither city: the two facts are equally relevant, and what holds
    # now comes first (the retriever's own order put Boston first).
    assert order.index("Sam lives in Denver") < order.index("Sam lives in Boston")
    assert order.index("Sam: We moved to Denver.") < order.index("Sam: I live in Boston.")
    assert [r["current"] for r in found] == sorted((r["current"] for r in found), reverse=True)
    # Still in recall's order (rank); the score is each item's own similarity, in [0, 1].
    assert [r["rank"] for r in found] == list(range(1, len(found) + 1))
    assert all(0.0 <= r["score"] <= 1.0 for r in found)
    # A query that names the old value still finds it first.
    boston = memory.search("Did Sam live in Boston?", user_id=user, include_history=True)
    assert not boston.items[0]["current"] and "Boston" in boston.items[0]["memory"]


def test_update_is_recorded_reembedded_and_keeps_provenance(memory: Memory) -> None:
    memory.add("I work as a baker.", user_id="editor", timestamp=JAN)
    item = next(r for r in memory.get_all(user_id="editor") if r["store"] == "turns")
    result = memory.update(item["id"], "Sam works as a pastry chef in Lyon.", user_id="editor")
    assert result.events[0]["event"] == "UPDATE"
    # The fact read from the old text no longer holds: the edited turn supersedes it.
    assert [(e["event"], e["memory"]) for e in result.events[1:]] == [
        ("SUPERSEDE", "user works as baker")
    ]
    assert result.seconds > 0 and result.tokens == 0
    updated = memory.get(item["id"], user_id="editor")
    assert updated["memory"] == "Sam works as a pastry chef in Lyon."
    assert updated["source_turn_ids"] == item["source_turn_ids"]
    history = memory.history(item["id"], user_id="editor")
    assert [h["event"] for h in history] == ["ADD", "UPDATE"]
    assert history[-1]["old_memory"] == "user: I work as a baker."
    assert history[-1]["new_memory"] == "Sam works as a pastry chef in Lyon."
    stored = memory.components.vectors.get("turns", "editor", [item["id"]])[item["id"]]
    fresh = memory.components.embedder.embed(["Sam works as a pastry chef in Lyon."])[0]
    assert float(stored @ fresh) > 0.999  # re-embedded: the vector is the new text's
    found = memory.search("pastry chef Lyon", user_id="editor", filters={"store": "turns"})
    assert found.items[0]["id"] == item["id"]
    assert memory.update(item["id"], updated["memory"], user_id="editor").count("NOOP") == 1
    with pytest.raises(InputError):
        memory.update(item["id"], "  ", user_id="editor")


def test_delete_is_soft_recorded_and_propagates_a_deleted_fact(memory: Memory) -> None:
    moved(memory, "deleter")
    denver = next(r for r in memory.get_all(user_id="deleter", store="facts"))
    assert denver["memory"] == "Sam lives in Denver"
    result = memory.delete(denver["id"], user_id="deleter")
    assert result.events[0]["event"] == "DELETE" and not result.events[0]["current"]
    propagated = [e["memory"] for e in result.events[1:]]
    assert propagated == [MOVED_TURN]
    kept = memory.get(denver["id"], user_id="deleter")
    assert not kept["current"] and kept["invalid_at"] is not None
    last = memory.history(denver["id"], user_id="deleter")[-1]
    assert (last["event"], last["reason"]) == ("DELETE", "deleted by user")
    now = memory.search("Where does Sam live?", user_id="deleter")
    assert not any("Denver" in t for t in texts(now.items))
    history = memory.search("Where does Sam live?", user_id="deleter", include_history=True)
    assert "Sam lives in Denver" in texts(history.items)
    assert memory.delete(denver["id"], user_id="deleter").count("NOOP") == 1
    with pytest.raises(InputError):
        memory.update(denver["id"], "Sam lives in Aspen", user_id="deleter")


def test_unknown_ids_raise_not_found(memory: Memory) -> None:
    for call in (memory.get, memory.history, memory.delete):
        with pytest.raises(NotFoundError):
            call("no-such-id", user_id="anyone")


def test_forget_erases_one_user_and_returns_a_receipt(memory: Memory, tmp_path: Path) -> None:
    moved(memory, "leaver")
    moved(memory, "stayer")
    item = memory.get_all(user_id="leaver")[0]["id"]
    stayer_items = len(memory.get_all(user_id="stayer", include_history=True))
    receipt = memory.forget("leaver")
    # Only the leaver's data, in words: the stayer's items are as many as the leaver's
    # were, and the shared embedding cache (the stayer's texts too) is reported apart.
    assert set(receipt) == {
        "turns",
        "sessions",
        "memory items",
        "history events",
        "queued retries",
        "documents",
        "vectors",
    }
    assert receipt["turns"] == 3 and receipt["sessions"] == 1
    assert receipt["memory items"] == stayer_items >= 4
    assert receipt["vectors"] == stayer_items  # one vector per item, facts and turns
    assert receipt["history events"] >= receipt["memory items"]
    assert receipt.caches_cleared["embeddings"] > 0
    assert "embeddings" not in receipt and not any(":" in key for key in receipt)
    assert memory.get_all(user_id="leaver", include_history=True) == []
    assert memory.search("Where does Sam live?", user_id="leaver", include_history=True).items == []
    with pytest.raises(NotFoundError):
        memory.get(item, user_id="leaver")
    assert memory.search("Where does Sam live?", user_id="stayer").items


def test_export_writes_everything_about_one_user(memory: Memory, tmp_path: Path) -> None:
    moved(memory, "exporter")
    path = tmp_path / "export.json"
    data = memory.export("exporter", path)
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["user_id"] == data["user_id"] == "exporter"
    assert len(on_disk["turns"]) == 3
    boston = next(i for i in on_disk["items"] if i["text"] == "Sam lives in Boston")
    assert boston["current"] is False and [e["action"] for e in boston["history"]] == [
        "ADD",
        "SUPERSEDE",
    ]


def test_memory_persists_across_instances_and_builds_from_config(tmp_path: Path) -> None:
    with Memory.from_config({"data_dir": str(tmp_path), "model": "none"}, env={}) as first:
        first.add("My sister Ana lives in Porto.", user_id="ana", timestamp=JAN)
    config = tmp_path / "agentmem.toml"
    config.write_text(
        f'[agentmem]\ndata_dir = "{tmp_path}"\nmodel = "none"\nstores = ["turns"]\n',
        encoding="utf-8",
    )
    with Memory.from_config(config, env={}) as again:
        found = again.search("Where does Ana's sister live?", user_id="ana")
        assert "Porto" in found.items[0]["memory"]
        assert again.resume("ana") is None  # nothing was left pending


def test_an_injected_model_builds_memory_and_its_tokens_are_reported(tmp_path: Path) -> None:
    def resolution(messages: list[Message]) -> dict[str, Any]:
        assert "I'm settled in Porto now." in messages[-1].content  # the turn it decides
        fact = {
            "subject": "Ana",
            "aspect": "residence",
            "value": "Porto",
            "stated": True,
            "single_valued": True,
        }
        return {"operations": [{"op": "ADD", "id": None, "fact": fact, "reason": "new"}]}

    model = ScriptedChatModel([resolution])
    with Memory(tmp_path, chat_model=model, model_builders="yes", env={}) as memory:
        result = memory.add("I'm settled in Porto now.", user_id="ana", timestamp=JAN)
        assert result.tokens > 0
        assert model.calls and model.calls[0].schema is not None
        assert [e["memory"] for e in result.events if e["store"] == "facts"] == [
            "Ana lives in Porto"
        ]


def test_search_scores_are_similarities_a_threshold_can_use(memory: Memory) -> None:
    memory.add("I play the cello every Sunday.", user_id="sim")
    memory.add("My cat is called Miso.", user_id="sim")
    found = memory.search("I play the cello every Sunday.", user_id="sim").items
    assert [r["rank"] for r in found] == list(range(1, len(found) + 1))
    assert all(r["score"] is not None and 0.0 <= r["score"] <= 1.0 for r in found)
    cello = [r for r in found if "cello" in r["text"]]
    cat = [r for r in found if "Miso" in r["text"]]
    # The query said word for word is near 1; an unrelated item is far below any threshold.
    assert max(r["score"] for r in cello) > 0.9
    assert all(r["score"] < 0.5 for r in cat)
    # Outside search there is no score or rank.
    assert memory.get(found[0]["id"], user_id="sim")["score"] is None
    assert memory.get(found[0]["id"], user_id="sim")["rank"] is None


def test_mem0_names_work_where_they_cost_little(tmp_path: Path) -> None:
    with Memory(tmp_path / "m0", model="none", env={}) as mem:
        added = mem.add("I love sci-fi films.", user_id="alice", run_id="evening")
        assert added["results"] == added.events and added.session_id == "evening"
        mem.add("I drink green tea.", user_id="alice", run_id="morning")
        mem.add("I live in Oslo.", user_id="bob")
        found = mem.search("films", user_id="alice", limit=1)
        assert len(found["results"]) == 1 and found["results"] == found.items
        evening = mem.search("What do I like?", user_id="alice", run_id="evening").items
        assert evening and {r["session_id"] for r in evening} == {"evening"}
        with pytest.raises(InputError, match="run_id"):
            mem.add("x", user_id="alice", run_id="a", session_id="b")
        with pytest.raises(KeyError):
            found["items"]
        assert mem.delete_all(user_id="alice")["turns"] == 2
        assert mem.get_all(user_id="alice") == [] and mem.get_all(user_id="bob")
        receipts = mem.reset()
        assert [r["turns"] for r in receipts] == [1] and mem.records.users() == []


def test_add_without_inference_stores_the_turn_as_said_and_changes_nothing(
    tmp_path: Path,
) -> None:
    with Memory(tmp_path / "raw", model="none", env={}, stores=("all",)) as mem:
        mem.add("I live in Lisbon.", user_id="u", timestamp="2024-01-01T10:00:00")
        raw = mem.add("I moved to Berlin.", user_id="u", infer=False, timestamp="2024-02-01")
        assert {e["store"] for e in raw.events} == {"turns"}
        found = mem.search("Where do I live?", user_id="u").items
        assert any("moved to Berlin" in r["text"] for r in found)  # searchable as said
        facts = [r for r in mem.get_all(user_id="u") if r["store"] == "facts"]
        assert [f["memory"] for f in facts] == ["user lives in Lisbon"]  # nothing drawn
        assert all(r["current"] for r in found)  # and nothing it changed


def test_async_memory_awaits_the_same_api(tmp_path: Path) -> None:
    async def run() -> None:
        async with AsyncMemory(tmp_path / "am", model="none", env={}) as mem:
            await asyncio.gather(
                mem.add("I play chess on Fridays.", user_id="ana"),
                mem.add("I live in Porto.", user_id="bo"),
            )
            found = await mem.search("chess", user_id="ana", limit=2)
            assert any("chess" in r["memory"] for r in found["results"])
            first = found.items[0]
            assert (await mem.get(first["id"], user_id="ana"))["id"] == first["id"]
            assert await mem.history(first["id"], user_id="ana")
            assert len(await mem.get_all(user_id="bo")) >= 1
            assert (await mem.delete_all(user_id="bo"))["turns"] == 1

    asyncio.run(run())
