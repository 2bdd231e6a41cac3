"""Retire only what changed: a turn that also said something lasting keeps saying it.

Each case is one sentence holding a value that will change and something that lasts
("I live in Lisbon and love surfing at Carcavelos"), then the change. Afterwards the
lasting part is still recalled as current, through ``Memory.search``, the MCP server's
``search`` and the LangGraph store's ``search``, with the changed value marked beside it
(never presented as current unqualified); the change reads "aspect: old → new" and no
"X has ended" pseudo-fact appears anywhere.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentmem import Memory
from agentmem.cli import main

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    mixed: str  # says the value that will change and something lasting
    change: str  # changes the value
    old: str  # the value that changes
    query: str  # asks about the lasting part
    lasting: str  # a word of the lasting part


CASES = [
    Case(
        "I live in Lisbon and love surfing at Carcavelos with my brother Rui.",
        "I moved from Lisbon to Berlin.",
        "Lisbon",
        "Where do I go surfing?",
        "Carcavelos",
    ),
    Case(
        "I live in Leeds and I sing in a gospel choir on Wednesdays.",
        "We moved to York last month.",
        "Leeds",
        "What choir do I sing in?",
        "gospel",
    ),
    Case(
        "I work as a nurse and I collect vintage fountain pens.",
        "I work as a paramedic now.",
        "nurse",
        "What do I collect?",
        "fountain pens",
    ),
    Case(
        "Our cat Miso sleeps all day, and I grow chillies on the balcony.",
        "Miso passed away on Sunday.",
        "Miso",
        "What do I grow on the balcony?",
        "chillies",
    ),
    Case(
        "I drive a Corsa and I volunteer at the food bank every Saturday.",
        "I sold the Corsa yesterday.",
        "Corsa",
        "Where do I volunteer?",
        "food bank",
    ),
    Case(
        "I live in Denver, and my daughter Ada plays the cello.",
        "We relocated to Austin for good.",
        "Denver",
        "What instrument does my daughter play?",
        "cello",
    ),
    Case(
        "I work at Halvorsen Logistics and I am learning Portuguese on the train.",
        "Today was my first day at Quillfield!",
        "Halvorsen Logistics",
        "What language am I learning?",
        "Portuguese",
    ),
    Case(
        "I live in Porto, and I make my own kombucha in the kitchen.",
        "I moved to Madrid in the spring.",
        "Porto",
        "What do I brew at home?",
        "kombucha",
    ),
    Case(
        "My dog Rex loves the beach, and I run a book club for my neighbours.",
        "Rex passed away last night.",
        "Rex",
        "Who is in my book club?",
        "book club",
    ),
    Case(
        "I work as a barista and I paint watercolour landscapes at weekends.",
        "I work as a florist now.",
        "barista",
        "What do I paint?",
        "watercolour",
    ),
    Case(
        "I live in Oslo and my favourite hike is the Preikestolen trail.",
        "We moved to Bergen in June.",
        "Oslo",
        "What is my favourite hike?",
        "Preikestolen",
    ),
    Case(
        "I ride a Vespa to work, and I bake rye bread every Sunday.",
        "I sold the Vespa to my cousin.",
        "Vespa",
        "What bread do I bake?",
        "rye bread",
    ),
    Case(
        "I live in Tromso and my brother Nils repairs old clocks.",
        "I moved from Tromso to Bodo.",
        "Tromso",
        "What does my brother repair?",
        "clocks",
    ),
    Case(
        "I work as a welder, and my sister Ines teaches yoga in Faro.",
        "I work as a teacher now.",
        "welder",
        "What does my sister teach?",
        "yoga",
    ),
    Case(
        "Our tortoise Shelly eats dandelions, and my husband restores old radios.",
        "Shelly died on Tuesday.",
        "Shelly",
        "What does my husband restore?",
        "radios",
    ),
    Case(
        "I live in Kyoto and I practise calligraphy every morning.",
        "We moved to Osaka last week.",
        "Kyoto",
        "What do I practise every morning?",
        "calligraphy",
    ),
    Case(
        "I drive a Fiesta, and I coach the under-nines football team.",
        "I sold the Fiesta on Sunday.",
        "Fiesta",
        "Which team do I coach?",
        "under-nines",
    ),
    Case(
        "I live in Austin and I play bass in a jazz trio.",
        "I relocated to Chicago this spring.",
        "Austin",
        "What band am I in?",
        "jazz trio",
    ),
    Case(
        "I work as a chemist and I keep bees on the allotment.",
        "I work as an editor now.",
        "chemist",
        "What do I keep on the allotment?",
        "bees",
    ),
    Case(
        "Our parrot Kiwi whistles the news theme, and I knit socks for the whole family.",
        "Kiwi passed away this morning.",
        "Kiwi",
        "What do I knit?",
        "socks",
    ),
    Case(
        "I live in Bristol and I swim in the lido before work.",
        "We moved to Cardiff in the autumn.",
        "Bristol",
        "Where do I swim before work?",
        "lido",
    ),
]


def check_found(case: Case, found: list[dict[str, Any]], text_key: str) -> None:
    """The mixed turn is found, current, says the lasting part and marks the old value."""
    mixed = [r for r in found if case.lasting.lower() in str(r[text_key]).lower()]
    assert mixed, f"{case.query!r}: the lasting part is not recalled: {found}"
    for record in mixed:
        shown = str(record[text_key])
        assert record["current"], f"{shown!r} is no longer current"
        if case.old.lower() in shown.lower():
            assert "no longer so" in shown and "→" in shown, f"{shown!r} presents the old value"


@pytest.mark.parametrize("case", CASES, ids=[c.old for c in CASES])
def test_the_lasting_part_of_a_changed_turn_is_still_recalled(tmp_path: Path, case: Case) -> None:
    with Memory(tmp_path, chat_model=None, env={}, model="none") as memory:
        memory.add(case.mixed, user_id="u", timestamp="2024-01-10T10:00:00")
        result = memory.add(case.change, user_id="u", timestamp="2024-03-01T10:00:00")
        events = result.events
        assert not any("has ended" in e["memory"] for e in events)
        noted = [e for e in events if e["event"] == "UPDATE" and e["store"] == "turns"]
        assert noted and f"{case.old} → " in noted[0]["reason"], events
        found = memory.search(case.query, user_id="u", top_k=10).items
        check_found(case, list(found), "memory")
        (record,) = [r for r in found if r["text"].endswith(case.mixed)]
        (change,) = record["changes"]
        assert change["value"] == case.old and change["since"] == "2024-03-01T10:00:00"
        assert change["turn_id"] == result.turn_ids[0]


def test_the_surfing_turn_is_recalled_with_the_move_beside_it_in_the_chat(
    tmp_path: Path,
) -> None:
    """Issue 30's first report, through `agentmem chat --plain --model none`."""
    args = ["chat", "--plain", "--model", "none", "--data-dir", str(tmp_path)]

    def chat(line: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        code = main(args, stdin=io.StringIO(line + "\n"), stdout=out, stderr=err)
        assert code == 0, err.getvalue()
        return out.getvalue()

    chat(CASES[0].mixed)
    chat(CASES[0].change)
    surfing = chat("Where do I go surfing?")
    assert "surfing at Carcavelos with my brother Rui" in surfing
    assert "(residence Lisbon → Berlin): I live in Lisbon]" in surfing
    home = chat("Where do I live?")
    assert "lives in Berlin" in home
    for line in home.splitlines():  # Lisbon only beside its change, or in the move itself
        assert "Lisbon" not in line or "Lisbon → Berlin" in line or "from Lisbon to" in line
    assert "has ended" not in surfing + home


def test_a_question_is_not_recalled_as_a_memory(tmp_path: Path) -> None:
    with Memory(tmp_path, chat_model=None, env={}, model="none") as memory:
        memory.add("My sister Ana lives in Porto.", user_id="u")
        memory.add("Where does my sister live?", user_id="u")
        memory.add("Got it.", user_id="u")
        found = memory.search("where does my sister live", user_id="u").items
        texts = [r["text"] for r in found]
        assert texts and "Porto" in texts[0]
        assert not any(t.endswith("Where does my sister live?") for t in texts)
        assert not any(t.endswith("Got it.") for t in texts)
        # Kept in history all the same.
        turns = [t.text for t in memory.records.turns("u")]
        assert "Where does my sister live?" in turns and "Got it." in turns


def test_an_assistant_echo_is_not_recalled_but_its_new_words_are(tmp_path: Path) -> None:
    with Memory(tmp_path, chat_model=None, env={}, model="none") as memory:
        memory.add(
            [
                {"role": "user", "content": "I live in Lisbon and I love surfing."},
                {"role": "assistant", "content": "Got it, you live in Lisbon and love surfing."},
                {"role": "assistant", "content": "Carcavelos beach has great winter swell."},
            ],
            user_id="u",
        )
        texts = [r["text"] for r in memory.search("surfing in Lisbon", user_id="u").items]
        assert not any("Got it" in t for t in texts)
        assert any("Carcavelos beach" in t for t in texts)


def test_the_lasting_part_is_recalled_through_mcp(tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    env = {
        **{k: v for k, v in os.environ.items() if k != "AGENTMEM_USER"},
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    args = ["-m", "agentmem.cli", "mcp", "--data-dir", str(tmp_path), "--user", "u"]
    server = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(ROOT))

    async def run() -> None:
        with open(tmp_path.parent / "mcp.log", "w") as log:
            async with (
                stdio_client(server, errlog=log) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                for case in CASES[:5]:
                    await session.call_tool("remember", {"text": case.mixed})
                for case in CASES[:5]:
                    await session.call_tool("remember", {"text": case.change})
                for case in CASES[:5]:
                    result = await session.call_tool("search", {"query": case.query})
                    items = json.loads(result.content[0].text)["items"]
                    check_found(case, items, "text")

    asyncio.run(asyncio.wait_for(run(), timeout=180))


def test_the_lasting_part_is_found_by_the_langgraph_store(tmp_path: Path) -> None:
    pytest.importorskip("langgraph")
    from agentmem.langgraph import AgentMemStore

    with Memory(tmp_path, chat_model=None, env={}, model="none") as memory:
        store = AgentMemStore(memory)
        namespace = ("memories", "u")
        for number, case in enumerate(CASES[:5]):
            store.put(namespace, f"note-{number}", {"text": case.mixed})
        for number, case in enumerate(CASES[:5]):
            store.put(namespace, f"change-{number}", {"text": case.change})
        for number, case in enumerate(CASES[:5]):
            hits = store.search(namespace, query=case.query, limit=10)
            mixed = [h for h in hits if h.key == f"note-{number}"]
            assert mixed, f"{case.query!r}: the note with the lasting part is not found"
            assert case.lasting in mixed[0].value["text"]
