"""A failed model extraction is counted, queued and retried, for the ledger and the graph."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from agentmem.errors import ModelUnavailableError
from agentmem.ledger.extraction import CachingExtractor, ModelExtractor
from agentmem.ledger.facts import FactLedger
from agentmem.manager import MemoryManager
from agentmem.protocols import StoreContext
from agentmem.stores.graph import GraphStore
from agentmem.testing import ScriptedChatModel

T0 = datetime(2024, 3, 1, 9, 0)


def fact(turn_id: int, attribute: str, value: str, *, single: bool = True) -> dict[str, object]:
    return {
        "turn_id": turn_id,
        "subject": "Sam",
        "attribute": attribute,
        "value": value,
        "stated": True,
        "polarity": True,
        "single_valued": single,
    }


def answer(*facts: dict[str, object]) -> str:
    return json.dumps({"facts": list(facts)})


def current_facts(context: StoreContext, store: str = "facts") -> set[str]:
    return {i.text for i in context.records.store_items(store, "sam", kind="fact")}


def test_failed_extraction_is_queued_then_resolved_as_of_its_turn(
    store_context: StoreContext,
) -> None:
    records = store_context.records
    records.start_session("sam", session_id="s1", started_at=T0)
    first = records.add_turn(
        "sam",
        "s1",
        "Sam",
        "user",
        "I live in Leeds and my shifts at the bakery start at dawn.",
        timestamp=T0,
    )
    later = records.add_turn(
        "sam", "s1", "Sam", "user", "I moved to Bristol.", timestamp=T0 + timedelta(days=30)
    )
    model = ScriptedChatModel(
        [
            ModelUnavailableError("the endpoint is down", retryable=True),
            answer(fact(later.id, "residence", "Bristol")),
            # The retry of the first turn: a residence older than Bristol, and a job the
            # rules could not see.
            answer(fact(first.id, "residence", "Leeds"), fact(first.id, "job", "baker")),
        ],
        default=None,
    )
    extractor = CachingExtractor(ModelExtractor(model))
    context = StoreContext(
        records, store_context.vectors, store_context.embedder, extractor=extractor
    )
    ledger = FactLedger(context)
    graph = GraphStore(context)
    manager = MemoryManager(records, store_context.embedder, [graph], facts=ledger)

    manager.write([first])
    assert isinstance(extractor.inner, ModelExtractor)
    assert extractor.inner.stats.failures == 1
    queued = {w.store: w.payload["turn_ids"] for w in records.pending_work("facts", "sam")}
    queued |= {w.store: w.payload["turn_ids"] for w in records.pending_work("graph", "sam")}
    assert queued == {"facts": [first.id], "graph": [first.id]}
    assert "Sam lives in Leeds" in current_facts(context)  # the rules stand in meanwhile
    assert not any("baker" in text for text in current_facts(context))

    manager.write([later])
    assert current_facts(context) >= {"Sam lives in Bristol"}
    assert "Sam lives in Leeds" not in current_facts(context)

    manager.resume("sam")
    assert len(model.calls) == 3  # one retry shared by the ledger and the graph
    assert records.pending_work("facts") == [] and records.pending_work("graph") == []
    now = current_facts(context)
    assert any("baker" in text for text in now), now
    assert "Sam lives in Bristol" in now and "Sam lives in Leeds" not in now
    # The retried Leeds fact is history, superseded by Bristol, never current again.
    leeds = [
        i
        for i in records.store_items("facts", "sam", kind="fact", current_only=False)
        if "Leeds" in i.text
    ]
    assert leeds and all(not i.current for i in leeds)
    assert any("baker" in text for text in current_facts(context, "graph"))


def test_extraction_failing_again_stays_queued_with_attempts(store_context: StoreContext) -> None:
    records = store_context.records
    records.start_session("sam", session_id="s1", started_at=T0)
    turn = records.add_turn("sam", "s1", "Sam", "user", "I work as a welder.", timestamp=T0)
    model = ScriptedChatModel(
        [ModelUnavailableError("down"), ModelUnavailableError("still down")], default=None
    )
    extractor = CachingExtractor(ModelExtractor(model))
    context = StoreContext(
        records, store_context.vectors, store_context.embedder, extractor=extractor
    )
    manager = MemoryManager(records, store_context.embedder, [], facts=FactLedger(context))
    manager.write([turn])
    manager.resume("sam")
    [work] = records.pending_work("facts", "sam")
    assert work.attempts == 2 and "again" in work.last_error
    assert current_facts(context) == {"Sam works as welder"}  # the rules still stand in
