"""The memory manager's fan-out, fusion and erasure (the slice's part of it)."""

from __future__ import annotations

import pytest

from agentmem.errors import InputError
from agentmem.manager import ITEM_OVERHEAD, MemoryManager, fit_rankings, fuse
from agentmem.models.tokens import TokenCounter
from agentmem.protocols import StoreContext
from agentmem.stores.turns import TurnStore
from agentmem.types import MemoryItem, Recalled, Scope


def _recalled(item_id: str, text: str, score: float, *turns: int) -> Recalled:
    return Recalled(MemoryItem(item_id, "s", "turn", "u", text, turns or (1,)), score)


def test_fusion_rewards_agreement_and_drops_duplicate_texts() -> None:
    a = [_recalled("1", "Ana lives in Porto", 0.9), _recalled("2", "I like tea", 0.5)]
    b = [_recalled("3", "I like tea!", 0.8), _recalled("1", "Ana lives in Porto", 0.7)]
    fused = fuse([a, b])
    assert [r.item.id for r in fused] == ["1", "3"]  # "I like tea" twice is one item
    assert fused[0].score > fused[1].score


LEAD = [
    _recalled("t1", "Melanie: I ran a charity race for mental health last Saturday.", 0.5, 1),
    _recalled("t2", "Caroline: That charity race sounds great, Mel!", 0.45, 2),
    _recalled("t3", "Melanie: Running helps me clear my head.", 0.4, 3),
]
OTHER = [
    _recalled("m1", "Topic: race, running. Melanie ran a race. Caroline cheered.", 0.9, 1, 2, 3),
    _recalled("n1", "Melanie: Family moments like that are so special.", 0.8, 7),
]


def _cost(counter: TokenCounter, items: list[Recalled]) -> int:
    return sum(counter.count(r.item.text) + ITEM_OVERHEAD for r in items)


def test_lead_fusion_never_lets_a_weaker_structure_displace_a_lead_item_that_fits() -> None:
    counter = TokenCounter()
    rankings = [("turns", LEAD), ("memo", OTHER)]
    budget = _cost(counter, LEAD)  # room for the lead's items, exactly
    led = fit_rankings(rankings, budget, counter, leaders=frozenset({"turns"}))
    assert [r.item.id for r in led.kept] == ["t1", "t2", "t3"]
    assert led.tokens == budget
    # With an equal say, the other structure's first item pushes a lead item out.
    equal = fit_rankings(rankings, budget, counter)
    assert "t3" not in [r.item.id for r in equal.kept]


def test_lead_fusion_fills_the_room_left_with_items_that_bring_new_turns() -> None:
    counter = TokenCounter()
    rankings = [("turns", LEAD), ("memo", OTHER)]
    budget = _cost(counter, LEAD + OTHER)  # room for everything
    led = fit_rankings(rankings, budget, counter, leaders=frozenset({"turns"}))
    # The memo only repeats turns already in the context: left out; n1 brings turn 7.
    assert [r.item.id for r in led.kept] == ["t1", "t2", "t3", "n1"]
    assert led.tokens == _cost(counter, LEAD + OTHER[1:])


def test_a_turn_a_led_digest_only_partly_quotes_still_fills_the_room() -> None:
    """A digest quoting one sentence of a turn does not make the whole turn a repeat; a
    turn whose words the digest holds does."""
    counter = TokenCounter()
    digest = _recalled(
        "d1", "Melanie, 9 June: I ran a charity race. | Running clears my head.", 0.9, 1, 3, 5, 6
    )
    turns = [
        _recalled("t1", "Melanie: I ran a charity race.", 0.5, 1),  # quoted whole
        _recalled("t3", "Melanie: Running clears my head. Also, the kids loved it.", 0.4, 3),
    ]
    led = fit_rankings(
        [("summary", [digest]), ("turns", turns)], 1000, counter, leaders=frozenset({"summary"})
    )
    assert [r.item.id for r in led.kept] == ["d1", "t3"]


def test_the_ledger_and_the_first_structure_lead(store_context: StoreContext) -> None:
    first, second = TurnStore(store_context), TurnStore(store_context, name="turns2")
    manager = MemoryManager(store_context.records, store_context.embedder, [first, second])
    assert manager.leaders(["turns2", "turns"]) == {"turns"}
    assert manager.leaders(["turns2"]) == {"turns2"}  # recall narrowed to the second one
    with pytest.raises(InputError, match="fusion"):
        MemoryManager(store_context.records, store_context.embedder, [first], fusion="rrf")  # type: ignore[arg-type]


def test_manager_needs_unique_stores(store_context: StoreContext) -> None:
    with pytest.raises(InputError):
        MemoryManager(store_context.records, store_context.embedder, [])
    store = TurnStore(store_context)
    with pytest.raises(InputError):
        MemoryManager(store_context.records, store_context.embedder, [store, store])


def test_two_structures_fused_and_forget_clears_both(store_context: StoreContext) -> None:
    records = store_context.records
    stores = [TurnStore(store_context), TurnStore(store_context, name="turns2")]
    manager = MemoryManager(records, store_context.embedder, stores)
    session = records.start_session("u1")
    turns = [
        records.add_turn("u1", session, "user", "user", text)
        for text in ["My sister Ana lives in Porto", "I play the cello"]
    ]
    report = manager.write(turns)
    assert report.ok and len(report.changes) == 4
    assert records.pending_turns("u1") == []
    recall = manager.recall("where does my sister live", Scope("u1"), k=1)
    assert recall.memory[0].text.endswith("Ana lives in Porto")
    assert set(recall.timings) >= {"embed", "turns", "turns2", "total"}
    receipt = manager.forget("u1")
    assert receipt["vectors"] == 4  # two turns in each of two structures
    assert receipt["turns"] == 2 and receipt["memory items"] == 4
    assert manager.recall("sister", Scope("u1")).items == ()
    assert store_context.vectors.collection_names() == []


def test_resume_folds_in_pending_turns(store_context: StoreContext) -> None:
    records = store_context.records
    manager = MemoryManager(records, store_context.embedder, [TurnStore(store_context)])
    session = records.start_session("u1")
    records.add_turn("u1", session, "user", "user", "I was stored but the process died")
    assert len(records.pending_turns("u1")) == 1
    report = manager.resume("u1")
    assert report is not None and report.ok
    assert records.pending_turns("u1") == []
    assert manager.resume("u1") is None


def test_recall_can_be_narrowed_to_some_structures(store_context: StoreContext) -> None:
    records = store_context.records
    first, second = TurnStore(store_context), TurnStore(store_context, name="turns2")
    manager = MemoryManager(records, store_context.embedder, [first, second])
    session = records.start_session("u1")
    manager.write([records.add_turn("u1", session, "user", "user", "I play the cello")])
    manager.recall_from = frozenset({"turns2"})
    recall = manager.recall("cello", Scope("u1"))
    assert {r.item.store for r in recall.items} == {"turns2"}
    assert "turns" not in recall.timings
    manager.recall_from = frozenset()
    assert manager.recall("cello", Scope("u1")).items == ()
