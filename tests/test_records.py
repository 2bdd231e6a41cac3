"""The records database on real SQLite files: turns, items, history, scoping and erasure."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentmem.errors import InputError, NotFoundError
from agentmem.storage.records import MAX_TURN_CHARS, Records, new_item_id
from agentmem.types import MemoryItem, Turn, utcnow

T0 = datetime(2024, 3, 1, 9, 0)
T1 = datetime(2024, 3, 8, 18, 30)
T2 = datetime(2024, 4, 2, 12, 0)

CORE_TABLES = (
    "users",
    "sessions",
    "turns",
    "memory_items",
    "item_events",
    "pending_work",
    "documents",
    "named_persons",
)


def sql(records: Records, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run raw SQL on the database file through a connection of its own."""
    path = records.url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as connection, connection:
        return list(connection.execute(statement, params))


def item(user_id: str, text: str, turns: tuple[int, ...] = (), **fields: Any) -> MemoryItem:
    return MemoryItem(
        id=new_item_id(),
        store="facts",
        kind="fact",
        user_id=user_id,
        text=text,
        source_turn_ids=turns,
        **fields,
    )


def say(records: Records, user_id: str, text: str, session_id: str = "s1", **kw: Any) -> Turn:
    return records.add_turn(user_id, session_id, "user", "user", text, **kw)


# -- turns ---------------------------------------------------------------------------------


def test_add_turn_commits_and_survives_a_new_records_object(tmp_path: Path) -> None:
    path = tmp_path / "data" / "records.db"
    first = Records(path)
    session_id = first.start_session("alice", session_id="s1", started_at=T0)
    turn = first.add_turn(
        "alice",
        session_id,
        "Alice",
        "user",
        "I adopted a beagle called Biscuit.",
        timestamp=T0,
        external_id="D1:1",
        metadata={"source": "test"},
    )

    # Committed, not just flushed: another connection sees it while `first` is still open.
    assert sql(first, "SELECT id, user_id, text FROM turns") == [
        (turn.id, "alice", "I adopted a beagle called Biscuit.")
    ]
    first.close()

    second = Records(path)
    try:
        assert second.turns("alice") == [turn]
        assert second.users() == ["alice"]
        assert [s.id for s in second.sessions("alice")] == ["s1"]
        restored = second.turns("alice")[0]
        assert (restored.timestamp, restored.external_id, restored.speaker) == (T0, "D1:1", "Alice")
        assert dict(restored.metadata) == {"source": "test"}
    finally:
        second.close()


def test_add_turn_accepts_text_at_the_length_limit(records: Records) -> None:
    turn = say(records, "alice", "x" * MAX_TURN_CHARS)
    assert len(records.turns("alice", ids=[turn.id])[0].text) == MAX_TURN_CHARS


@pytest.mark.parametrize(
    ("text", "role"),
    [
        pytest.param("", "user", id="empty"),
        pytest.param(" \n\t  ", "user", id="whitespace"),
        pytest.param("x" * (MAX_TURN_CHARS + 1), "user", id="too-long"),
        pytest.param("broken \ud800 surrogate", "user", id="lone-surrogate"),
        pytest.param("hello", "system", id="role-system"),
        pytest.param("hello", "moderator", id="role-unknown"),
        pytest.param(42, "user", id="int-text"),
        pytest.param(None, "user", id="none-text"),
        pytest.param(b"bytes", "user", id="bytes-text"),
    ],
)
def test_invalid_turn_raises_input_error_and_stores_nothing(
    records: Records, text: Any, role: Any
) -> None:
    with pytest.raises(InputError):
        records.add_turn("alice", "s1", "alice", role, text)

    assert records.count_turns("alice") == 0
    for table in CORE_TABLES:
        assert sql(records, f"SELECT COUNT(*) FROM {table}") == [(0,)], table


def test_add_turns_is_all_or_nothing(records: Records) -> None:
    batch = [
        {"user_id": "alice", "session_id": "s1", "role": "user", "text": "fine"},
        {"user_id": "alice", "session_id": "s1", "role": "user", "text": "   "},
    ]
    with pytest.raises(InputError):
        records.add_turns(batch)
    assert sql(records, "SELECT COUNT(*) FROM turns") == [(0,)]


def test_session_of_another_user_is_refused(records: Records) -> None:
    records.start_session("alice", session_id="shared")
    say(records, "alice", "My PIN is 1234.", session_id="shared")

    with pytest.raises(InputError):
        records.start_session("bob", session_id="shared")
    with pytest.raises(InputError):
        records.add_turn("bob", "shared", "bob", "user", "What did alice say?")

    assert records.count_turns("bob") == 0
    assert sql(records, "SELECT user_id FROM turns") == [("alice",)]
    assert sql(records, "SELECT user_id FROM sessions WHERE id = 'shared'") == [("alice",)]


def test_pending_turns_until_marked_memorized(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    records = Records(path)
    a1, a2, a3 = (say(records, "alice", f"alice turn {n}") for n in range(3))
    b1 = say(records, "bob", "bob turn", session_id="s2")

    assert [t.id for t in records.pending_turns()] == [a1.id, a2.id, a3.id, b1.id]
    assert [t.id for t in records.pending_turns("bob")] == [b1.id]

    records.mark_memorized([a1.id, a3.id])
    records.mark_memorized([])
    assert [t.id for t in records.pending_turns("alice")] == [a2.id]
    records.close()

    # A restart resumes exactly the turns not yet folded into memory.
    reopened = Records(path)
    try:
        assert [t.id for t in reopened.pending_turns()] == [a2.id, b1.id]
    finally:
        reopened.close()


# -- memory items --------------------------------------------------------------------------


def test_items_round_trip_with_provenance(records: Records) -> None:
    t1 = say(records, "alice", "I moved to Denver last week.", timestamp=T0)
    t2 = say(records, "alice", "The new flat is near the park.", timestamp=T1)
    original = item(
        "alice",
        "Alice lives in Denver, near a park.",
        (t1.id, t2.id),
        valid_from=T0,
        agent_id="helper",
        session_id="s1",
        metadata={"confidence": 0.9, "tags": ["home"]},
    )

    (stored,) = records.add_items([original], reason="extracted")

    assert stored.created_at is not None
    assert stored == replace(original, created_at=stored.created_at)
    assert records.get_item(stored.id) == stored
    assert records.get_item(stored.id, user_id="alice") == stored
    assert records.get_item(stored.id).source_turn_ids == (t1.id, t2.id)
    assert [i.id for i in records.items_from_turns("alice", [t2.id])] == [stored.id]
    assert records.items_from_turns("alice", [t2.id + 100]) == []
    assert [i.id for i in records.store_items("facts", "alice")] == [stored.id]

    (event,) = records.history(stored.id)
    assert (event.action, event.reason, event.new_text, event.at) == (
        "ADD",
        "extracted",
        stored.text,
        T0,
    )


def test_items_keep_requested_order_and_skip_unknown_ids(records: Records) -> None:
    first, second = records.add_items([item("alice", "one"), item("alice", "two")])
    found = records.items([second.id, "missing", first.id])
    assert [i.id for i in found] == [second.id, first.id]
    assert records.items([]) == []


def test_invalidate_records_why_and_keeps_the_row(records: Records) -> None:
    old, new = records.add_items(
        [
            item("alice", "Alice lives in Denver.", valid_from=T0),
            item("alice", "Alice lives in Boston.", valid_from=T1),
        ]
    )

    changed = records.invalidate([old.id], "moved to Boston", at=T1, superseded_by=new.id)

    assert [i.id for i in changed] == [old.id]
    after = records.get_item(old.id)
    assert (after.invalid_at, after.superseded_by, after.current) == (T1, new.id, False)
    assert after.text == "Alice lives in Denver."
    assert records.get_item(new.id).current
    # The row is still there: invalidated, never deleted.
    assert sql(records, "SELECT COUNT(*) FROM memory_items WHERE id = ?", old.id) == [(1,)]
    assert [i.id for i in records.store_items("facts", "alice")] == [new.id]
    assert {i.id for i in records.store_items("facts", "alice", current_only=False)} == {
        old.id,
        new.id,
    }

    events = records.history(old.id)
    assert [e.action for e in events] == ["ADD", "SUPERSEDE"]
    superseded = events[1]
    assert (superseded.reason, superseded.related_item_id, superseded.at) == (
        "moved to Boston",
        new.id,
        T1,
    )
    assert superseded.old_text == "Alice lives in Denver."

    # Invalidating again changes nothing and records nothing.
    assert records.invalidate([old.id], "again", at=T2) == []
    assert records.get_item(old.id).invalid_at == T1
    assert len(records.history(old.id)) == 2


def test_an_ending_without_successor_is_a_supersede_in_history(records: Records) -> None:
    (fact,) = records.add_items([item("alice", "Alice is vegetarian.")])
    records.invalidate([fact.id], "user retracted it", at=T2)
    events = records.history(fact.id)
    assert [(e.action, e.reason, e.related_item_id) for e in events] == [
        ("ADD", "", None),
        ("SUPERSEDE", "user retracted it", None),
    ]
    assert records.get_item(fact.id).superseded_by is None


def test_an_older_folders_invalidate_event_reads_as_a_supersede(
    records: Records, tmp_path: Path
) -> None:
    (fact,) = records.add_items([item("alice", "Alice is vegetarian.")])
    records.invalidate([fact.id], "user retracted it", at=T2)
    # What a folder written before the one change vocabulary holds for that ending.
    with closing(sqlite3.connect(tmp_path / "records.db")) as db, db:
        db.execute("UPDATE item_events SET action = 'INVALIDATE' WHERE action = 'SUPERSEDE'")
    assert [e.action for e in records.history(fact.id)] == ["ADD", "SUPERSEDE"]


def test_update_item_records_old_and_new_text(records: Records) -> None:
    (fact,) = records.add_items([item("alice", "Alice has one cat.", (1,))])

    updated = records.update_item(
        fact.id,
        text_value="Alice has two cats.",
        reason="got another cat",
        at=T1,
        source_turn_ids=[3, 1, 3],
        user_id="alice",
    )

    assert updated.text == "Alice has two cats."
    assert records.get_item(fact.id).text == "Alice has two cats."
    assert records.get_item(fact.id).source_turn_ids == (1, 3)
    events = records.history(fact.id)
    assert [e.action for e in events] == ["ADD", "UPDATE"]
    assert (events[1].old_text, events[1].new_text, events[1].reason, events[1].at) == (
        "Alice has one cat.",
        "Alice has two cats.",
        "got another cat",
        T1,
    )

    # Changing only metadata is not a text change and adds no UPDATE event.
    records.update_item(fact.id, metadata={"pets": 2})
    assert dict(records.get_item(fact.id).metadata) == {"pets": 2}
    assert len(records.history(fact.id)) == 2


def test_items_are_scoped_by_user(records: Records) -> None:
    (secret,) = records.add_items([item("alice", "Alice's door code is 4711.")])

    assert records.items([secret.id], user_id="bob") == []
    assert [i.id for i in records.items([secret.id], user_id="alice")] == [secret.id]
    with pytest.raises(NotFoundError):
        records.get_item(secret.id, user_id="bob")
    with pytest.raises(NotFoundError):
        records.history(secret.id, user_id="bob")
    with pytest.raises(NotFoundError):
        records.update_item(secret.id, text_value="hacked", user_id="bob")
    with pytest.raises(NotFoundError):
        records.get_item("no-such-item")
    assert records.get_item(secret.id).text == "Alice's door code is 4711."
    assert records.store_items("facts", "bob") == []
    assert records.items_from_turns("bob", [1]) == []


def test_turns_are_scoped_by_user(records: Records) -> None:
    mine = say(records, "alice", "alice's turn")
    say(records, "bob", "bob's turn", session_id="s2")
    assert records.turns("bob", ids=[mine.id]) == []
    assert [t.text for t in records.turns("bob")] == ["bob's turn"]
    assert records.recent_turns("bob", "s1", 10) == []


# -- transactions --------------------------------------------------------------------------


def test_a_transaction_keeps_all_of_its_writes_or_none(records: Records) -> None:
    old, kept = records.add_items([item("alice", "likes tea"), item("alice", "likes jazz")])
    with pytest.raises(InputError), records.transaction():
        records.add_items([item("alice", "likes coffee")])
        records.invalidate([old.id], "changed taste")
        records.queue_work("facts", "alice", "extract", {"turn_ids": []}, "model down")
        raise InputError("the write failed half-way")

    assert [i.text for i in records.store_items("facts", "alice")] == ["likes tea", "likes jazz"]
    assert [e.action for e in records.history(old.id)] == ["ADD"]
    assert records.pending_work("facts", "alice") == []  # ORM writes join it too

    with records.transaction():
        with records.transaction():  # a nested one joins the outer
            new = records.add_items([item("alice", "likes coffee")])[0]
        records.invalidate([old.id], "changed taste", superseded_by=new.id)
        records.queue_work("facts", "alice", "extract", {"turn_ids": []}, "model down")
        # Another connection sees nothing before the commit.
        assert sql(records, "SELECT COUNT(*) FROM memory_items") == [(2,)]
    assert sql(records, "SELECT COUNT(*) FROM memory_items") == [(3,)]
    assert [w.kind for w in records.pending_work("facts", "alice")] == ["extract"]
    assert records.get_item(old.id).superseded_by == new.id and kept.current


def test_after_commit_waits_for_the_commit_and_is_dropped_on_rollback(records: Records) -> None:
    called: list[str] = []
    records.after_commit(lambda: called.append("at once"))
    with records.transaction():
        records.add_items([item("alice", "likes tea")])
        records.after_commit(lambda: called.append("committed"))
        assert called == ["at once"]
    assert called == ["at once", "committed"]

    with pytest.raises(InputError), records.transaction():
        records.after_commit(lambda: called.append("rolled back"))
        raise InputError("no")
    assert called == ["at once", "committed"]


# -- erasure -------------------------------------------------------------------------------


def populate(records: Records, user_id: str, session_id: str) -> None:
    records.start_session(user_id, session_id=session_id)
    turn = say(records, user_id, f"{user_id} likes tea", session_id=session_id)
    old, new = records.add_items(
        [
            item(user_id, f"{user_id} likes tea", (turn.id,)),
            item(user_id, f"{user_id} likes coffee"),
        ]
    )
    records.invalidate([old.id], "changed taste", superseded_by=new.id)
    records.update_item(new.id, text_value=f"{user_id} loves coffee", reason="stronger")
    records.queue_work("summary", user_id, "update", {"turn_ids": [turn.id]}, "model down")
    records.note_persons(user_id, [turn.id], [(turn.id, f"{user_id}'s sister")])  # coreference
    for value in ("tea", "coffee"):  # two versions of one document
        records.put_document(
            user_id=user_id,
            agent_id=None,
            namespace=("memories", user_id),
            key="drink",
            value={"drink": value},
            text=f"drink: {value}",
            ttl_minutes=None,
            at=utcnow(),
        )


def user_rows(records: Records) -> dict[str, dict[str, int]]:
    """Count each user's rows in every table that names a user, by raw SQL."""
    counts: dict[str, dict[str, int]] = {}
    tables = [
        name for (name,) in sql(records, "SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    for table in tables:
        columns = {row[1] for row in sql(records, f"PRAGMA table_info({table})")}
        column = "id" if table == "users" else "user_id" if "user_id" in columns else None
        if column is None:
            continue
        for user_id, count in sql(
            records, f"SELECT {column}, COUNT(*) FROM {table} GROUP BY {column}"
        ):
            counts.setdefault(user_id, {})[table] = count
    return counts


def test_forget_erases_every_row_of_one_user_only(records: Records) -> None:
    populate(records, "alice", "sa")
    populate(records, "bob", "sb")
    before = user_rows(records)
    assert set(CORE_TABLES) <= set(before["alice"])  # the check below is not vacuous
    assert before["alice"]["item_events"] == 4  # ADD, ADD, SUPERSEDE, UPDATE

    receipt = records.forget("alice")

    after = user_rows(records)
    assert "alice" not in after
    assert after["bob"] == before["bob"]
    assert receipt == {table: before["alice"][table] for table in receipt}
    assert set(receipt) == set(CORE_TABLES)
    assert records.users() == ["bob"]
    assert records.turns("alice") == []
    assert records.forget("alice") == dict.fromkeys(CORE_TABLES, 0)


def test_work_queue_round_trip(records: Records) -> None:
    work_id = records.queue_work("memo", "alice", "chunk", {"turn_ids": [1, 2]}, "timeout")
    records.queue_work("memo", "bob", "chunk", {"turn_ids": [3]}, "timeout")
    [queued] = records.pending_work("memo", "alice")
    assert queued.payload == {"turn_ids": [1, 2]} and queued.attempts == 1
    records.fail_work(work_id, "timeout again")
    assert records.pending_work("memo", "alice")[0].attempts == 2
    records.finish_work(work_id)
    assert records.pending_work("memo", "alice") == []
    assert len(records.pending_work("memo")) == 1


def test_update_items_is_one_transaction_with_history(records: Records) -> None:
    from agentmem.storage.records import ItemUpdate

    first, second = records.add_items([item("u1", "Ana lives in Leeds"), item("u1", "Ana bakes")])
    changed = records.update_items(
        [
            ItemUpdate(first.id, text_value="Ana lives in Bristol", reason="moved"),
            ItemUpdate(second.id, metadata={"topic": "work"}, source_turn_ids=[3, 1, 3]),
        ]
    )
    assert [c.text for c in changed] == ["Ana lives in Bristol", "Ana bakes"]
    assert changed[1].metadata == {"topic": "work"} and changed[1].source_turn_ids == (1, 3)
    assert [e.action for e in records.history(first.id)] == ["ADD", "UPDATE"]
    assert [e.action for e in records.history(second.id)] == ["ADD"]  # no text change
    with pytest.raises(NotFoundError):
        records.update_items(
            [ItemUpdate(first.id, text_value="Ana lives in Oslo"), ItemUpdate("missing")]
        )
    assert records.get_item(first.id).text == "Ana lives in Bristol"  # all or nothing


# -- full-text search over turns -------------------------------------------------------------


def test_turns_are_searched_by_their_words_within_one_user(records: Records) -> None:
    mine = say(records, "alice", "The spare key is under the blue heron planter.")
    say(records, "alice", "We had soup.")
    say(records, "bob", "A heron landed on the blue roof.")
    other = say(records, "alice", "Blue skies all week.")
    assert records.search_turns("alice", ["heron", "planter"], 5) == [mine.id]
    assert records.search_turns("alice", ["blue", "heron"], 5) == [mine.id, other.id]
    assert records.search_turns("alice", ['he"ron'], 5) == []  # quoted, never a syntax error
    assert records.search_turns("alice", [], 5) == []


def test_a_forgotten_users_words_leave_the_index(records: Records) -> None:
    say(records, "alice", "The spare key is under the heron planter.")
    records.forget("alice")
    assert sql(records, "SELECT count(*) FROM turns_fts WHERE turns_fts MATCH 'heron'") == [(0,)]


def test_a_database_written_before_the_index_gets_it_filled(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first = Records(path)
    turn = say(first, "alice", "The spare key is under the heron planter.")
    first.close()
    with (
        closing(sqlite3.connect(path)) as connection,
        connection,
    ):  # as a database from before the index
        for name in ("turns_fts_insert", "turns_fts_delete", "turns_fts_update"):
            connection.execute(f"DROP TRIGGER {name}")
        connection.execute("DROP TABLE turns_fts")
    reopened = Records(path)
    try:
        assert reopened.search_turns("alice", ["heron"], 5) == [turn.id]
    finally:
        reopened.close()


def test_an_sqlite_without_fts5_opens_and_searches_by_meaning_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agentmem.storage import dialogue

    # What an SQLite built without FTS5 answers: "no such module: fts5_not_built".
    missing = ("CREATE VIRTUAL TABLE IF NOT EXISTS turns_fts USING fts5_not_built(text)",)
    monkeypatch.setattr(dialogue, "TURN_SEARCH_SCHEMA", missing)
    records = Records(tmp_path / "no-fts.db")
    try:
        say(records, "alice", "The spare key is under the heron planter.")
        assert records.search_turns("alice", ["heron"], 5) == []
        assert "no FTS5" in caplog.text
    finally:
        records.close()


@pytest.mark.parametrize("user_id", ["a.b@c.com", "用户", "---", 'x"y'])
def test_any_user_id_is_searched_within_itself(records: Records, user_id: str) -> None:
    mine = say(records, user_id, "The spare key is under the heron planter.")
    say(records, "someone-else", "The spare key is under the heron planter.")
    assert records.search_turns(user_id, ["heron"], 5) == [mine.id]


def test_current_condition_selects_what_memory_item_current_calls_current(
    records: Records,
) -> None:
    from sqlalchemy import select

    from agentmem.storage.records import MemoryItemRow, current_condition

    kept, ended, replaced = records.add_items(
        [item("alice", "tea"), item("alice", "coffee"), item("alice", "juice")]
    )
    records.invalidate([ended.id], "stopped", at=T1)
    records.invalidate([replaced.id], "changed", at=T2, superseded_by=kept.id)

    query = select(MemoryItemRow.id).where(current_condition())
    with records.engine.connect() as connection:
        in_sql = set(connection.execute(query).scalars())
    every = records.store_items("facts", "alice", current_only=False)
    assert in_sql == {i.id for i in every if i.current} == {kept.id}


def test_a_folder_from_before_the_moment_indexes_gets_them_on_open(tmp_path: Path) -> None:
    """The latest moment of a user's memory is read on every recall as of a moment: two
    index lookups, also in a database written before those indexes existed."""
    path = tmp_path / "records.db"
    Records(path).close()
    with closing(sqlite3.connect(path)) as connection:  # as an older version left it
        connection.execute("DROP INDEX ix_turns_user_time")
        connection.execute("DROP INDEX ix_events_user_at")
        connection.commit()
    records = Records(path)
    try:
        names = {row[0] for row in sql(records, "SELECT name FROM sqlite_master")}
        assert {"ix_turns_user_time", "ix_events_user_at"} <= names
        for table, column, index in (
            ("turns", "timestamp", "ix_turns_user_time"),
            ("item_events", "at", "ix_events_user_at"),
        ):
            plan = sql(
                records, f"EXPLAIN QUERY PLAN SELECT max({column}) FROM {table} WHERE user_id = 'u'"
            )
            assert any(index in str(row) for row in plan), plan
        session = records.start_session("u", session_id="s")
        records.add_turn("u", session, "U", "user", "hello", timestamp=datetime(2024, 5, 1))
        assert records.latest_moment("u") == datetime(2024, 5, 1)
    finally:
        records.close()
