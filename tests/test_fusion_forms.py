"""Fusion that knows the question: the structure built for a question's form leads.

A Memory with turns, summaries and the graph holds four sessions of a dialogue between Ana and Ben
over two months. A recap of a period gets the summaries' digests first; a recap of a day
whose turns all fit gets the turns themselves (a digest of them adds nothing and gives
way); a point question gets the turns; a search returns the leading structure's items
first, each with its sources; and the structures that only fill room are not searched
when the lead leaves none. Over every shipped structure (`all`), a search returns the
structure built for the question first (summaries, the tree, memos), each item with its
sources.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from agentmem.memory import Memory
from agentmem.types import Scope

SESSIONS = (
    (
        datetime(2023, 5, 8, 10, 0),
        [
            ("Ana", "I adopted a grey cat called Smoke from the shelter on Elm Street."),
            ("Ben", "I finally finished restoring the old Vespa in my garage."),
            ("Ana", "Smoke sleeps on the radiator all afternoon."),
            ("Ben", "My sister Lotte is moving to Utrecht for a job at the university."),
        ],
    ),
    (
        datetime(2023, 5, 20, 18, 0),
        [
            ("Ana", "I signed up for a pottery class at the community centre on Tuesdays."),
            ("Ben", "I rode the Vespa to the coast and back, two hundred kilometres."),
            ("Ana", "My first bowl came out lopsided but I love it."),
            ("Ben", "Lotte found a flat near the canal in Utrecht."),
        ],
    ),
    (
        datetime(2023, 6, 3, 9, 0),
        [
            ("Ana", "I got promoted to head nurse on the children's ward."),
            ("Ben", "I sold two paintings at the street market in Leiden."),
            ("Ana", "The new shifts start at seven in the morning."),
            ("Ben", "I'm saving the money for a trip to Lisbon in the autumn."),
        ],
    ),
    (
        datetime(2023, 6, 24, 20, 0),
        [
            ("Ana", "Smoke caught his first mouse in the garden and was very proud."),
            ("Ben", "I booked the flights to Lisbon for the second week of October."),
            ("Ana", "The pottery class is putting on an exhibition in July."),
            ("Ben", "My neighbour lent me a guidebook about Portuguese tiles."),
        ],
    ),
)


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    with Memory(
        tmp_path_factory.mktemp("forms"),
        model="none",
        env={},
        stores=("turns", "summary", "graph"),
    ) as shared:
        for number, (start, lines) in enumerate(SESSIONS, 1):
            session = f"s{number}"
            for offset, (speaker, text) in enumerate(lines):
                shared.add(
                    [{"role": "user", "content": text, "name": speaker}],
                    user_id="ana-ben",
                    session_id=session,
                    timestamp=start + timedelta(minutes=offset),
                )
            shared.end_session(user_id="ana-ben", session_id=session)
        yield shared


def recall(memory: Memory, text: str, budget: int, k: int = 20) -> list[tuple[str, str, str]]:
    result = memory.manager.recall(
        text,
        Scope("ana-ben"),
        budget_tokens=budget,
        k=k,
        as_of=datetime(2023, 6, 30),
    )
    return [(r.item.store, r.item.kind, r.item.text) for r in result.items]


def test_a_recap_of_a_period_whose_turns_do_not_fit_is_led_by_the_summaries(
    memory: Memory,
) -> None:
    found = recall(memory, "What happened in Ana's life between May and June 2023?", budget=120)
    assert found and all(store == "summary" for store, _, _ in found[:2])
    assert found[0][2].startswith("Ana, 8 May 2023:")
    # The same question with room for nothing more than the turns' first items:
    plain = recall(memory, "Where did Ana adopt her cat?", budget=120)
    assert plain[0][0] in ("turns", "facts")


def test_a_recap_of_a_day_whose_turns_all_fit_is_the_turns_and_the_digest_gives_way(
    memory: Memory,
) -> None:
    found = recall(memory, "What did Ana and Ben talk about on 20 May 2023?", budget=150)
    assert sorted(text for _, _, text in found) == [
        "Ana: I signed up for a pottery class at the community centre on Tuesdays.",
        "Ana: My first bowl came out lopsided but I love it.",
        "Ben: I rode the Vespa to the coast and back, two hundred kilometres.",
        "Ben: Lotte found a flat near the canal in Utrecht.",
    ]  # in the order of their match; no digest of them


def test_a_search_for_a_recap_returns_summaries_first_with_their_sources(memory: Memory) -> None:
    result = memory.search("What did Ana and Ben talk about on 20 May 2023?", user_id="ana-ben")
    first = result.items[0]
    assert first["store"] == "summary" and first["kind"] == "session"
    assert first["memory"].startswith(("Ana, 20 May 2023:", "Ben, 20 May 2023:"))
    turns = {t.id: t.text for t in memory.records.turns("ana-ben")}
    sources = first["source_turn_ids"]
    assert sources and all(turns[i] in first["text"] for i in sources)
    point = memory.search("What is the name of Ana's cat?", user_id="ana-ben")
    assert point.items[0]["store"] in ("turns", "facts")


def test_the_other_structures_are_searched_only_when_the_lead_leaves_room(
    memory: Memory,
) -> None:
    full = memory.manager.recall("Where is Lotte moving?", Scope("ana-ben"), budget_tokens=60, k=2)
    assert "turns" in full.timings and "summary" not in full.timings
    room = memory.manager.recall(
        "Where is Lotte moving?", Scope("ana-ben"), budget_tokens=2000, k=2
    )
    assert "summary" in room.timings and "graph" in room.timings


def test_a_structure_that_knows_nothing_of_time_is_not_searched_for_a_recap(
    memory: Memory,
) -> None:
    recap = memory.manager.recall(
        "What happened in Ana's life between May and June 2023?",
        Scope("ana-ben"),
        budget_tokens=2000,
        k=20,
        as_of=datetime(2023, 6, 30),
    )
    assert {"summary", "turns"} <= set(recap.timings) and "graph" not in recap.timings


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    """The same dialogue in every shipped structure (``all``)."""
    with Memory(tmp_path_factory.mktemp("all"), model="none", env={}, stores=("all",)) as shared:
        for number, (start, lines) in enumerate(SESSIONS, 1):
            for offset, (speaker, text) in enumerate(lines):
                shared.add(
                    [{"role": "user", "content": text, "name": speaker}],
                    user_id="ana-ben",
                    session_id=f"s{number}",
                    timestamp=start + timedelta(minutes=offset),
                )
            shared.end_session(user_id="ana-ben", session_id=f"s{number}")
        yield shared


@pytest.mark.parametrize(
    ("question", "store", "kind"),
    [
        ("What happened in Ana's life between May and June 2023?", "summary", "session"),
        ("What do you know about Ana's pottery?", "memtree", "node"),
        ("What did we say about Lisbon?", "memo", "memo"),
    ],
)
def test_a_search_over_all_returns_the_leading_structure_first_with_its_sources(
    everything: Memory, question: str, store: str, kind: str
) -> None:
    found = everything.search(question, user_id="ana-ben", top_k=5).items
    assert (found[0]["store"], found[0]["kind"]) == (store, kind)
    turns = {t.id for t in everything.records.turns("ana-ben")}
    for item in found:
        assert item["source_turn_ids"] and set(item["source_turn_ids"]) <= turns


def test_a_point_search_over_all_returns_turns_and_facts_first(everything: Memory) -> None:
    found = everything.search("What is the name of Ana's cat?", user_id="ana-ben", top_k=5)
    assert [i["store"] for i in found.items[:2]] in (["facts", "turns"], ["turns", "facts"])
    assert "Smoke" in found.items[0]["memory"]
