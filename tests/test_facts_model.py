"""The fact ledger with a model: one call per turn decides against the related facts."""

from __future__ import annotations

from datetime import datetime, timedelta

from agentmem.ledger.extraction import CachingExtractor, RuleExtractor
from agentmem.ledger.facts import FactLedger
from agentmem.manager import MemoryManager
from agentmem.protocols import StoreContext
from agentmem.stores.turns import TurnStore
from agentmem.testing import ScriptedChatModel
from agentmem.types import Turn

T0 = datetime(2024, 2, 1, 9, 0)


def op(kind: str, fact: dict[str, object] | None = None, target: str | None = None) -> dict:
    return {"op": kind, "id": target, "fact": fact, "reason": "said so"}


def fact(subject: str, aspect: str, value: str) -> dict[str, object]:
    return {
        "subject": subject,
        "aspect": aspect,
        "value": value,
        "stated": True,
        "single_valued": True,
    }


def setup(store_context: StoreContext, model: ScriptedChatModel) -> MemoryManager:
    context = StoreContext(
        store_context.records,
        store_context.vectors,
        store_context.embedder,
        model=model,
        extractor=CachingExtractor(RuleExtractor()),
    )
    return MemoryManager(
        store_context.records,
        store_context.embedder,
        [TurnStore(context)],
        facts=FactLedger(context),
    )


def say(manager: MemoryManager, text: str, day: int, speaker: str = "Ines") -> Turn:
    records = manager.records
    session = records.start_session("ines", session_id=f"s{day}")
    role = "assistant" if speaker == "assistant" else "user"
    turn = records.add_turn(
        "ines", session, speaker, role, text, timestamp=T0 + timedelta(days=day)
    )
    manager.write([turn])
    return turn


def facts(manager: MemoryManager) -> set[tuple[str, bool]]:
    items = manager.records.store_items("facts", "ines", kind="fact", current_only=False)
    return {(i.text, i.current) for i in items}


def test_the_model_replaces_a_fact_no_slot_pattern_knows(store_context: StoreContext) -> None:
    model = ScriptedChatModel(
        [
            {"operations": [op("ADD", fact("Ines", "car", "a red Fiat Panda"))]},
            {"operations": [op("UPDATE", fact("Ines", "car", "a Kia Niro EV"), "F1")]},
        ]
    )
    manager = setup(store_context, model)
    first = say(manager, "The little red Panda got me through another winter.", 0)
    second = say(manager, "Picked up the Kia Niro today, bye bye petrol!", 40)

    assert len(model.calls) == 2  # one call per turn
    prompt = "\n".join(m.content for m in model.calls[1].messages)
    assert "F1" in prompt and "Fiat Panda" in prompt  # the candidate, found by similarity
    assert facts(manager) >= {
        ("Ines's car: a red Fiat Panda", False),
        ("Ines's car: a Kia Niro EV", True),
    }
    old = manager.records.items_from_turns("ines", [first.id])
    assert [i.current for i in old if i.store == "turns"] == [
        True
    ]  # no mention of "a red Fiat Panda"
    assert second.id > first.id


def test_a_deleted_fact_takes_its_mentions_with_it(store_context: StoreContext) -> None:
    model = ScriptedChatModel(
        [
            {"operations": [op("ADD", fact("Ines", "pet", "Pepper"))]},
            {"operations": [op("NONE")]},
            {"operations": [op("DELETE", None, "F1")]},
        ]
    )
    manager = setup(store_context, model)
    mention = say(manager, "Pepper chewed my slippers again.", 0)
    echo = say(manager, "Give Pepper a treat from me.", 1, speaker="Rui")
    ending = say(manager, "We said goodbye to our old girl on Friday.", 30)

    current = {text for text, now in facts(manager) if now}
    assert not [text for text in current if "Pepper" in text]
    for turn, expected in ((mention, False), (echo, False), (ending, True)):
        items = manager.records.items_from_turns("ines", [turn.id])
        assert [i.current for i in items if i.store == "turns"] == [expected], turn.text


def test_the_agents_own_answers_cost_no_call(store_context: StoreContext) -> None:
    model = ScriptedChatModel([{"operations": [op("NONE")]}])
    manager = setup(store_context, model)
    say(manager, "Morning!", 0)
    say(manager, "Good morning, Ines.", 0, speaker="assistant")

    assert len(model.calls) == 1


def test_a_model_that_answers_nonsense_falls_back_to_the_rules_and_queues(
    store_context: StoreContext,
) -> None:
    model = ScriptedChatModel(["not json at all", "still not json"])
    manager = setup(store_context, model)
    say(manager, "I live in Faro.", 0)

    assert len(model.calls) == 2  # the call, and one repair: never more per turn
    assert ("Ines lives in Faro", True) in facts(manager)  # the rules stood in
    [work] = manager.records.pending_work("facts", "ines")
    assert work.payload["turn_ids"] and "resolution failed" in (work.last_error or "")
