"""Times at the edges: refused at every door before anything is stored, or stored as UTC.

A time past either end of the calendar once made the relative-date resolver raise after
the turn was committed, so every later resume of that user raised again (a wedged user).
Now the resolver never raises (tests/test_timeref.py), the doors refuse the calendar's
edges with :class:`~agentmem.errors.InputError`, and an aware time is converted to naive
UTC, the form every stored time has, so it compares with them.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agentmem.agent import Agent
from agentmem.cli import main
from agentmem.config import load_config
from agentmem.errors import InputError
from agentmem.factory import build
from agentmem.inputs import EARLIEST_MOMENT, LATEST_MOMENT
from agentmem.memory import Memory
from agentmem.models.embeddings import MiniLMEmbedder
from agentmem.storage.records import Records
from agentmem.testing import ScriptedChatModel

PLUS_ONE = timezone(timedelta(hours=1))
PLUS_TWO = timezone(timedelta(hours=2))
MINUS_ONE = timezone(timedelta(hours=-1))

#: Times no turn may have: the calendar's last and first days, and aware times past its ends.
EDGES: dict[str, datetime | str] = {
    "31-december-9999": "9999-12-31T12:00:00",
    "datetime-max": datetime.max,
    "datetime-min": datetime.min,
    "1-january-1": "0001-01-01T00:00:00",
    "min-at-plus-one": datetime.min.replace(tzinfo=PLUS_ONE),
    "max-at-minus-one": datetime.max.replace(tzinfo=MINUS_ONE),
    "max-as-text-with-offset": "9999-12-31T23:59:59-01:00",
}


TURNS = {"store": "turns"}


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory, embedder: MiniLMEmbedder) -> Iterator[Memory]:
    config = load_config(
        data_dir=tmp_path_factory.mktemp("edge-times"), model="none", stores=("turns",), env={}
    )
    with Memory.from_components(build(config, model=None, embedder=embedder)) as shared:
        yield shared


def turns_of(result: Any) -> list[str]:
    return [e["memory"] for e in result.events if e["store"] == "turns"]


def nothing_of(memory: Memory, user: str) -> None:
    """Assert that ``user`` left no trace: no user row, no session, no turn."""
    assert user not in memory.records.users()
    assert memory.records.turns(user) == [] and memory.records.sessions(user) == []


@pytest.mark.parametrize("when", list(EDGES.values()), ids=list(EDGES))
def test_a_time_at_the_calendar_edge_is_refused_at_every_door_storing_nothing(
    memory: Memory, when: datetime | str
) -> None:
    user = f"edge-{abs(hash(str(when)))}"
    with pytest.raises(InputError, match="timestamp"):
        memory.add("Tomorrow I fly to Oslo", user_id=user, timestamp=when)
    message: dict[str, Any] = {"role": "user", "content": "Yesterday I was in Lisbon"}
    with pytest.raises(InputError, match="message 0's timestamp"):
        memory.add([{**message, "timestamp": when}], user_id=user)
    nothing_of(memory, user)
    if isinstance(when, datetime):
        model = ScriptedChatModel(default="Have a good flight.")
        agent = Agent(memory.manager, model, user_id=f"{user}-agent")
        with pytest.raises(InputError, match="timestamp"):
            agent.send("Tomorrow I fly to Oslo", timestamp=when)
        assert model.calls == [] and memory.records.turns(f"{user}-agent") == []
    # An edit's time is stored as the old text's end: the same rule.
    added = memory.add("I live in Porto", user_id=f"{user}-edit")
    [item] = [e["id"] for e in added.events if e["store"] == "turns"]
    with pytest.raises(InputError, match="at"):
        memory.update(item, "I live in Braga", user_id=f"{user}-edit", at=when)
    with pytest.raises(InputError, match="at"):
        memory.delete(item, user_id=f"{user}-edit", at=when)
    assert memory.get(item, user_id=f"{user}-edit")["current"]


def test_the_range_ends_are_accepted_and_their_dates_resolved_where_the_calendar_has_them(
    memory: Memory,
) -> None:
    late = memory.add("Tomorrow I fly to Oslo", user_id="edge-late", timestamp=LATEST_MOMENT)
    early = memory.add("Yesterday I was in Lisbon", user_id="edge-early", timestamp=EARLIEST_MOMENT)
    assert late.ok and early.ok
    assert turns_of(late) == ["user: Tomorrow [31 December 9999] I fly to Oslo"]
    assert turns_of(early) == ["user: Yesterday [1 January 1] I was in Lisbon"]
    # "next month" from December 9999 has no date: the words are kept as said.
    said = memory.add("Next month I move", user_id="edge-late", timestamp=LATEST_MOMENT)
    assert said.ok and turns_of(said) == ["user: Next month I move"]


def test_aware_times_are_stored_and_compared_in_utc(memory: Memory) -> None:
    user = "edge-aware"
    memory.add("I live in Boston", user_id=user, timestamp="2024-01-10T10:00:00+01:00")
    moved = memory.add(
        [
            {
                "role": "user",
                "content": "I moved to Denver",
                "timestamp": "2024-06-10T11:00:00+02:00",
            }
        ],
        user_id=user,
    )
    assert [t.timestamp for t in memory.records.turns(user)] == [
        datetime(2024, 1, 10, 9, 0),
        datetime(2024, 6, 10, 9, 0),
    ]
    assert moved.ok
    # 10:30 at +02:00 is 08:30 UTC, half an hour before the move: still Boston. Read as
    # a naive 10:30 it would be after the move.
    for before in ("2024-06-10T10:30:00+02:00", datetime(2024, 6, 10, 10, 30, tzinfo=PLUS_TWO)):
        found = memory.search("Where do I live?", user_id=user, as_of=before, filters=TURNS)
        assert [r["memory"] for r in found] == ["user: I live in Boston"]
    after = datetime(2024, 6, 10, 9, 30, tzinfo=UTC)
    found = memory.search("Where do I live?", user_id=user, as_of=after, filters=TURNS)
    assert "user: I moved to Denver" in [r["memory"] for r in found]
    agent = Agent(memory.manager, ScriptedChatModel(default="Noted."), user_id=f"{user}-agent")
    agent.send("I keep bees", timestamp=datetime(2024, 7, 1, 12, 0, tzinfo=PLUS_ONE))
    assert {t.timestamp for t in memory.records.turns(f"{user}-agent")} == {
        datetime(2024, 7, 1, 11, 0)
    }


def test_as_of_may_be_any_time_the_calendar_holds(memory: Memory) -> None:
    memory.add("I live in Boston", user_id="edge-as-of", timestamp=datetime(2024, 1, 10))
    assert memory.search("Boston", user_id="edge-as-of", as_of=datetime.max).items
    assert memory.search("Boston", user_id="edge-as-of", as_of=datetime.min).items == []
    aware_max = datetime.max.replace(tzinfo=PLUS_ONE)  # 22:59:59 on 31 December 9999 UTC
    assert memory.search("Boston", user_id="edge-as-of", as_of=aware_max).items
    with pytest.raises(InputError, match="as_of .* has no time in UTC"):
        memory.search("Boston", user_id="edge-as-of", as_of=datetime.max.replace(tzinfo=MINUS_ONE))


def wedge(folder: Path, user: str) -> None:
    """Leave ``user`` as an older agentmem did: a committed turn dated 31 December 9999,
    said "Tomorrow ...", never memorized (resolving it raised, so every resume raised)."""
    records = Records(folder / "agentmem.sqlite")
    records.close()  # creates the tables, as the older version had
    with closing(sqlite3.connect(folder / "agentmem.sqlite")) as db, db:
        db.execute("INSERT INTO users (id, created_at) VALUES (?, '2024-01-01 00:00:00')", (user,))
        db.execute(
            "INSERT INTO sessions (id, user_id, started_at)"
            " VALUES ('s1', ?, '9999-12-31 12:00:00')",
            (user,),
        )
        db.execute(
            "INSERT INTO turns (user_id, session_id, speaker, role, text, timestamp, created_at,"
            " memorized, metadata) VALUES (?, 's1', 'user', 'user', 'Tomorrow I fly to Oslo',"
            " '9999-12-31 12:00:00.000000', '2024-01-01 00:00:00', 0, '{}')",
            (user,),
        )


def test_a_user_wedged_by_a_turn_at_the_calendar_end_resumes(tmp_path: Path) -> None:
    wedge(tmp_path, "h")
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["chat", "--plain", "--model", "none", "--data-dir", str(tmp_path), "--user", "h"],
        stdin=io.StringIO("Where do I fly to?\n"),
        stdout=out,
        stderr=err,
    )
    assert code == 0, err.getvalue()
    assert "Tomorrow I fly to Oslo" in out.getvalue()  # the recall-only answer recalls it
    records = Records(tmp_path / "agentmem.sqlite")
    try:
        assert records.pending_turns("h") == []
        items = [item.text for item in records.store_items("turns", "h")]
        assert "user: Tomorrow I fly to Oslo" in items  # stored as said, unresolved
    finally:
        records.close()
