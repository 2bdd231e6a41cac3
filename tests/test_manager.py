"""The memory manager's consistency semantics: supersede, keep, history, as_of, forget."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agentmem.manager import MemoryManager
from agentmem.storage.records import Records
from agentmem.storage.vectors import VectorIndex
from agentmem.types import MemoryItem, Scope, Turn

T0 = datetime(2023, 5, 1, 10, 0)


def say(
    manager: MemoryManager, text: str, *, day: int, user: str = "sam", speaker: str = "Sam"
) -> Turn:
    """Store and memorize one turn of ``user`` (speaker Sam by default) on day ``day``."""
    records = manager.records
    session = records.start_session(user, session_id=f"{user}-{day}")
    role = "user" if speaker == "Sam" else "assistant"
    turn = records.add_turn(user, session, speaker, role, text, timestamp=T0 + timedelta(days=day))
    manager.write([turn])
    return turn


def current_facts(manager: MemoryManager, user: str = "sam") -> set[str]:
    return {f.text for f in manager.records.store_items("facts", user)}


def recalled_texts(manager: MemoryManager, query: str, **options: object) -> list[str]:
    """The recalled items as the prompt shows them (an old value with its change beside it)."""
    result = manager.recall(query, Scope("sam"), k=10, budget_tokens=2000, **options)  # type: ignore[arg-type]
    return [r.item.shown_text() for r in result.items]


def test_update_chain_leaves_only_the_latest_current(manager: MemoryManager) -> None:
    say(manager, "I live in Boston.", day=0)
    say(manager, "We moved to Denver last week.", day=10)
    third = say(manager, "I just relocated to Austin for work.", day=20)
    assert current_facts(manager) == {"Sam lives in Austin"}
    all_facts = manager.records.store_items("facts", "sam", current_only=False)
    by_text = {f.text: f for f in all_facts}
    boston, denver, austin = (by_text[f"Sam lives in {c}"] for c in ("Boston", "Denver", "Austin"))
    assert not boston.current and not denver.current and austin.current
    assert boston.superseded_by == denver.id and denver.superseded_by == austin.id
    assert boston.invalid_at == T0 + timedelta(days=10)
    assert [e.action for e in manager.history(denver.id)] == ["ADD", "SUPERSEDE"]
    assert austin.source_turn_ids == (third.id,)
    recalled = recalled_texts(manager, "Where does Sam live?")
    assert not any("Boston" in t or "Denver" in t for t in recalled)
    assert any("Austin" in t for t in recalled)


def test_turns_asserting_a_stale_value_leave_every_structure(manager: MemoryManager) -> None:
    say(manager, "My shift as a barista ran late again.", day=0)
    say(manager, "I left the barista job and now I work as a librarian.", day=30)
    recalled = recalled_texts(manager, "What is Sam's job?")
    assert "Sam: My shift as a barista ran late again." not in recalled
    assert "Sam: I left the barista job and now I work as a librarian." in recalled
    history = recalled_texts(manager, "What is Sam's job?", include_history=True)
    assert "Sam: My shift as a barista ran late again." in history
    turn_item = next(
        i
        for i in manager.records.store_items("turns", "sam", current_only=False)
        if "shift as a barista" in i.text
    )
    assert not turn_item.current and turn_item.superseded_by is not None


def test_a_near_miss_about_a_third_party_invalidates_nothing(manager: MemoryManager) -> None:
    say(manager, "We relocated to Galway over the holidays, still unpacking.", day=0)
    say(manager, "I work as an electrician.", day=1)
    before = manager.records.store_items("turns", "sam")
    report_turns = [
        say(manager, "My uncle retired to Bruges.", day=5),
        say(manager, "My friend is a librarian and loves it.", day=6),
    ]
    assert current_facts(manager) >= {"Sam lives in Galway", "Sam works as electrician"}
    assert "Sam's uncle lives in Bruges" in current_facts(manager)
    after = manager.records.store_items("turns", "sam")
    assert len(after) == len(before) + len(report_turns)  # nothing was invalidated
    invalid = [
        f for f in manager.records.store_items("facts", "sam", current_only=False) if not f.current
    ]
    assert invalid == []


def test_a_repeated_statement_is_a_noop(manager: MemoryManager) -> None:
    first = say(manager, "I've been really into chess lately.", day=0)
    session = manager.records.start_session("sam", session_id="sam-3")
    again = manager.records.add_turn(
        "sam",
        session,
        "Sam",
        "user",
        "I've been really into chess lately.",
        timestamp=T0 + timedelta(days=3),
    )
    report = manager.write([again])
    facts = manager.records.store_items("facts", "sam", current_only=False)
    assert [f.text for f in facts] == ["Sam is into chess"]
    assert facts[0].source_turn_ids == (first.id, again.id)
    assert report.count("NOOP") == 1 and report.count("SUPERSEDE") == 0


def test_a_newer_implied_fact_replaces_an_older_stated_one(manager: MemoryManager) -> None:
    say(manager, "I work as a nurse.", day=0)
    say(manager, "My shift as a barista ran late again.", day=40)
    assert current_facts(manager) == {"Sam works as barista"}
    # ... unless something newer still says otherwise.
    say(manager, "I work as a nurse again, back on the ward.", day=60)
    assert current_facts(manager) == {"Sam works as nurse"}


def test_ending_a_value_deletes_only_that_value(manager: MemoryManager) -> None:
    say(manager, "I've been really into chess lately.", day=0)
    say(manager, "I took up pottery this year.", day=1)
    report_turn = say(
        manager, "Honestly I lost interest in chess, I'm all about rock climbing now.", day=9
    )
    assert current_facts(manager) == {"Sam is into pottery", "Sam is into rock climbing"}
    assert report_turn.id > 0


def test_as_of_returns_what_was_true_then(manager: MemoryManager) -> None:
    say(manager, "I live in Boston.", day=0)
    say(manager, "We moved to Denver last week.", day=10)
    then = recalled_texts(manager, "Where does Sam live?", as_of=T0 + timedelta(days=5))
    now = recalled_texts(manager, "Where does Sam live?")
    assert "Sam lives in Boston" in then and "Sam lives in Denver" not in then
    assert "Sam lives in Denver" in now and "Sam lives in Boston" not in now
    before = recalled_texts(manager, "Where does Sam live?", as_of=T0 - timedelta(days=1))
    assert before == []


def test_a_repeat_resolved_again_after_a_later_change_adds_nothing(
    manager: MemoryManager,
) -> None:
    """A write resumed after a crash may resolve a turn again after later turns changed
    its value: a repeat that was folded into the older fact's sources is done, not a new
    history item (tests/test_crash_safety.py found "Felix works as editor" twice)."""
    say(manager, "I work as a nurse.", day=0)
    repeat = say(manager, "I still work as a nurse, nights mostly.", day=5)
    say(manager, "I quit the hospital, I work as a teacher now.", day=10)
    before = manager.records.store_items("facts", "sam", current_only=False)
    nurse = [f for f in before if f.text == "Sam works as nurse"]
    assert len(nurse) == 1 and repeat.id in nurse[0].source_turn_ids and not nurse[0].current
    assert manager.facts is not None
    manager.facts.write([repeat])  # as a resumed write would
    after = manager.records.store_items("facts", "sam", current_only=False)
    assert sorted(f.id for f in after) == sorted(f.id for f in before)
    assert current_facts(manager) == {"Sam works as teacher"}


def test_a_change_resolved_again_records_no_second_old_value(manager: MemoryManager) -> None:
    """Resumed after a crash, a write may resolve a change again; the value it replaced,
    already recorded (with the turn that repeated it among its sources), is not recorded
    a second time as a value said in passing."""
    say(manager, "I work as a nurse.", day=0)
    say(manager, "I live in Leeds and I work as a nurse.", day=5)
    change = say(manager, "I quit my old job, I work as a teacher now.", day=10)
    before = manager.records.store_items("facts", "sam", current_only=False)
    assert manager.facts is not None
    manager.facts.write([change])  # as a resumed write would
    after = manager.records.store_items("facts", "sam", current_only=False)
    assert sorted(f.text for f in after) == sorted(f.text for f in before)
    assert current_facts(manager) == {"Sam works as teacher", "Sam lives in Leeds"}


def test_the_latest_moment_is_the_last_change_to_a_users_memory(manager: MemoryManager) -> None:
    assert manager.records.latest_moment("sam") is None
    say(manager, "I live in Boston.", day=0)
    assert manager.records.latest_moment("sam") == T0
    say(manager, "We moved to Denver last week.", day=10)
    assert manager.records.latest_moment("sam") == T0 + timedelta(days=10)
    assert manager.records.latest_moment("someone else") is None


def test_as_of_after_every_change_recalls_memory_as_it_stands(manager: MemoryManager) -> None:
    """Asked as of a moment after the last change, memory answers as it stands now (the
    structures then search without a validity filter): the same items, and what ended
    before that moment stays out; a moment between the two turns still sees the past."""
    say(manager, "I live in Boston.", day=0)
    say(manager, "We moved to Denver last week.", day=10)
    question = "Where does Sam live?"
    at_change = recalled_texts(manager, question, as_of=T0 + timedelta(days=10))
    later = recalled_texts(manager, question, as_of=T0 + timedelta(days=400))
    assert later == at_change == recalled_texts(manager, question)
    assert "Sam lives in Denver" in later and "Sam lives in Boston" not in later
    between = recalled_texts(manager, question, as_of=T0 + timedelta(days=9))
    assert "Sam lives in Boston" in between and "Sam lives in Denver" not in between


def test_the_diff_reports_add_supersede_and_noop(manager: MemoryManager) -> None:
    records = manager.records
    session = records.start_session("sam", session_id="s")
    first = records.add_turn("sam", session, "Sam", "user", "I work as a nurse.", timestamp=T0)
    report = manager.write([first])
    assert {c.kind for c in report.changes} == {"ADD"}
    second = records.add_turn(
        "sam",
        session,
        "Sam",
        "user",
        "I left the nurse job and now I work as a tutor.",
        timestamp=T0 + timedelta(days=1),
    )
    report = manager.write([second])
    actions = [c.kind for c in report.changes]
    assert "SUPERSEDE" in actions or "DELETE" in actions
    superseding = [c for c in report.changes if c.kind in ("ADD", "DELETE") and c.related_ids]
    ended = records.items([i for c in superseding for i in c.related_ids])
    assert any("nurse" in item.text and not item.current for item in ended)


def test_query_rewrite_follows_the_conversation(manager: MemoryManager) -> None:
    say(manager, "My sister Ana lives in Porto.", day=0)
    say(manager, "Ana works as a piano teacher.", day=1)
    say(manager, "I adopted a beagle puppy named Rex.", day=2)
    records = manager.records
    context = [
        records.add_turn(
            "sam",
            "sam-9",
            "Sam",
            "user",
            "Let me tell you about my sister Ana.",
            timestamp=T0 + timedelta(days=9),
        )
    ]
    result = manager.recall("What about her job?", Scope("sam"), k=3, context=context)
    assert "Ana" in result.query
    texts = [r.item.text for r in result.items]
    job = next(i for i, t in enumerate(texts) if "piano teacher" in t)
    assert all(job < i for i, t in enumerate(texts) if "Rex" in t), texts
    bare = manager.recall("What about her job?", Scope("sam"), k=3)
    assert bare.query == "What about her job?"


def test_forget_leaves_no_trace_in_any_backend(manager: MemoryManager, tmp_path: Path) -> None:
    say(manager, "I live in Boston.", day=0, user="sam")
    say(manager, "We moved to Denver.", day=1, user="sam")
    say(manager, "I live in Lisbon.", day=0, user="eve")
    export = manager.export("sam", tmp_path / "sam.json")
    assert json.loads((tmp_path / "sam.json").read_text())["user_id"] == "sam"
    assert {i["store"] for i in export["items"]} == {"facts", "turns"}
    receipt = manager.forget("sam")
    assert receipt["turns"] == 2 and receipt["sessions"] == 2  # say() opens one per turn
    assert receipt["vectors"] == receipt["memory items"] == 4  # two turns, two facts
    assert receipt["history events"] > 0
    assert receipt.caches_cleared["embeddings"] > 0  # shared: Eve's texts were in it too
    # SQLite: no row of any table mentions the user.
    with closing(sqlite3.connect(tmp_path / "records.db")) as db, db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
            key = "user_id" if "user_id" in columns else "id" if table == "users" else None
            if key:
                assert (
                    db.execute(f"SELECT COUNT(*) FROM {table} WHERE {key}='sam'").fetchone()[0] == 0
                )
            for row in db.execute(f"SELECT * FROM {table}"):
                assert "Boston" not in json.dumps(row, default=str), table
    # chromadb: no collection of the user's, and no document or id of theirs elsewhere.
    from agentmem.storage.vectors import collection_name

    vectors = VectorIndex(manager.embedder, path=tmp_path / "chroma")  # the same folder
    names = vectors.collection_names()
    vectors.close()
    assert all(collection_name(s, "sam") not in names for s in ("turns", "facts"))
    assert any(collection_name("turns", "eve") == n for n in names)
    # caches: the stale-value cache and the embedding cache hold nothing of the user's.
    assert manager.guard.stale_values("sam") == []
    assert len(manager.embedder) == 0  # type: ignore[arg-type]
    assert current_facts(manager, "eve") == {"Sam lives in Lisbon"}


class _Aggregating:
    """A structure whose items summarise others: invalidating ``child`` rewrites ``parent``."""

    name = "agg"

    def __init__(self, records: Records, child: str, parent: str, rewritten: str) -> None:
        self.records = records
        self.child, self.parent, self.rewritten = child, parent, rewritten

    def invalidate(self, item_ids, reason, *, at=None, superseded_by=None):  # type: ignore[no-untyped-def]
        self.records.invalidate(item_ids, reason, at=at, superseded_by=superseded_by)
        if self.child in item_ids:  # re-aggregate, as a MemTree ancestor would
            self.records.update_item(self.parent, text_value=self.rewritten)


def test_the_sweep_judges_each_item_as_it_is_after_earlier_invalidations(
    manager: MemoryManager,
) -> None:
    boston = say(manager, "I live in Boston.", day=0)
    tea = say(manager, "I drink green tea every morning.", day=1)
    dog = say(manager, "My dog is called Rex.", day=2)
    say(manager, "We moved to Denver last week.", day=10)

    def item(key: str, text: str, turns: tuple[int, ...]) -> MemoryItem:
        return MemoryItem(
            id=key, store="agg", kind="node", user_id="sam", text=text, source_turn_ids=turns
        )

    # The child says nothing but the old value (retired); the parent says more.
    child = item("child", "Sam lives in Boston.", (boston.id, tea.id))
    parent = item(
        "parent", "Sam lives in Boston, drinks green tea, has Rex.", (boston.id, tea.id, dog.id)
    )
    manager.records.add_items([child, parent])
    store = _Aggregating(manager.records, "child", "parent", "Sam drinks green tea, has Rex.")
    flagged = manager.guard.sweep("sam", {"agg": store})  # type: ignore[dict-item]
    assert [(c.kind, c.item.id) for c in flagged] == [("SUPERSEDE", "child")]
    after = {i.id: i for i in manager.records.items(["child", "parent"])}
    assert not after["child"].current
    # The parent no longer says Boston once its child went: it stays current, no note.
    assert after["parent"].current and after["parent"].text == "Sam drinks green tea, has Rex."
    assert after["parent"].changes == ()


def test_an_item_saying_more_than_the_old_value_keeps_it_with_the_change_beside_it(
    manager: MemoryManager,
) -> None:
    boston = say(manager, "I live in Boston and I drink green tea every morning.", day=0)
    moved = say(manager, "We moved to Denver last week.", day=10)
    turns = {i.source_turn_ids[0]: i for i in manager.records.store_items("turns", "sam")}
    kept = turns[boston.id]
    # Still current for the tea; the move is carried beside it, and in its history.
    assert kept.current
    (change,) = kept.changes
    assert (change.value, change.replaced_by, change.aspect) == ("Boston", "Denver", "residence")
    assert change.turn_id == moved.id and change.since == moved.timestamp
    day = f"{moved.timestamp.day} {moved.timestamp:%B %Y}"
    assert kept.shown_text() == (
        f"Sam: [no longer so since {day} (residence Boston → Denver): I live in Boston] "
        "and I drink green tea every morning."
    )
    history = manager.records.history(kept.id)
    assert history[-1].action == "UPDATE" and "Boston → Denver" in history[-1].reason
    # Recall shows it with the change, for what else it says.
    found = manager.recall("What do I drink in the morning?", Scope("sam"), budget_tokens=500)
    tea = next(r.item for r in found.items if r.item.id == kept.id)
    assert "Boston → Denver" in tea.shown_text()


def fact_states(manager: MemoryManager) -> dict[str, tuple[object, ...]]:
    return {
        f.id: (f.text, f.source_turn_ids, f.current, f.invalid_at, f.superseded_by)
        for f in manager.records.store_items("facts", "sam", current_only=False)
    }


def test_resolving_turns_again_after_a_crash_changes_no_fact(manager: MemoryManager) -> None:
    # A resumed write resolves turns whose facts an interrupted write already stored.
    turns = [
        say(manager, "I live in Boston.", day=0),
        say(manager, "I've been really into chess lately.", day=1),
        say(manager, "We moved to Denver last week.", day=10),
        say(manager, "I live in Boston again, back near my family.", day=20),
        say(manager, "I've been really into chess lately.", day=21),
    ]
    before = fact_states(manager)
    assert current_facts(manager) == {"Sam lives in Boston", "Sam is into chess"}
    decisions = manager.facts.resolve(turns)  # type: ignore[union-attr]
    assert fact_states(manager) == before
    assert {d.operation for d in decisions} == {"NOOP"}


def test_a_back_dated_statement_goes_in_as_history(manager: MemoryManager) -> None:
    say(manager, "I live in Boston.", day=0)
    say(manager, "We moved to Denver last week.", day=10)
    late = say(manager, "I live in Austin.", day=5)  # written now, said before Denver
    assert current_facts(manager) == {"Sam lives in Denver"}
    facts = {f.text: f for f in manager.records.store_items("facts", "sam", current_only=False)}
    austin, denver = facts["Sam lives in Austin"], facts["Sam lives in Denver"]
    assert austin.source_turn_ids == (late.id,) and austin.superseded_by == denver.id
    assert austin.valid_from == T0 + timedelta(days=5) and austin.invalid_at == denver.valid_from
    then = recalled_texts(manager, "Where does Sam live?", as_of=T0 + timedelta(days=7))
    assert "Sam lives in Austin" in then and "Sam lives in Denver" not in then


def test_a_back_dated_ending_leaves_a_value_stated_after_it(manager: MemoryManager) -> None:
    say(manager, "I took up pottery this year.", day=10)
    say(manager, "Honestly I lost interest in pottery.", day=5)  # said before day 10
    assert current_facts(manager) == {"Sam is into pottery"}
    say(manager, "Honestly I lost interest in pottery.", day=15)
    assert current_facts(manager) == set()


def turn_current(manager: MemoryManager, turn: Turn) -> bool:
    """Whether the turns structure presents ``turn`` as current, as it was said.

    A turn that holds for the rest of what it says but carries a change of one of its
    values beside it is not presented as it was said.
    """
    items = manager.records.items_from_turns(turn.user_id, [turn.id])
    return [i.current and not i.changes for i in items if i.store == "turns"] == [True]


def test_an_ending_that_names_only_its_value_ends_it_everywhere(manager: MemoryManager) -> None:
    mention = say(manager, "Our tortoise Shelly sleeps under the radiator all winter.", day=0)
    echo = say(manager, "Give Shelly a lettuce leaf from me!", day=1, speaker="Rosa")
    other = say(manager, "I repainted the garden fence on Sunday.", day=2)
    ending = say(manager, "Shelly died on Tuesday, she was forty.", day=30)

    assert not turn_current(manager, mention) and not turn_current(manager, echo)
    assert turn_current(manager, ending)  # the news of the ending is no stale claim
    assert turn_current(manager, other)
    facts = manager.records.store_items("facts", "sam", current_only=False)
    marker = next(f for f in facts if f.text == "Sam: Shelly has ended")
    assert not marker.current and marker.source_turn_ids == (ending.id,)
    recalled = recalled_texts(manager, "How is Shelly doing?")
    assert [t for t in recalled if "Shelly" in t] == ["Sam: Shelly died on Tuesday, she was forty."]


def test_an_echo_of_a_replaced_value_is_invalidated_with_it(manager: MemoryManager) -> None:
    say(manager, "I live in Hobart.", day=0)
    echo = say(manager, "Is Hobart still freezing this time of year?", day=1, speaker="Rosa")
    move = say(manager, "I moved from Hobart to Darwin.", day=20)

    assert current_facts(manager) == {"Sam lives in Darwin"}
    assert not turn_current(manager, echo)
    assert turn_current(manager, move)
    recalled = recalled_texts(manager, "Where does Sam live?")
    assert any("Darwin" in t for t in recalled)
    assert not any("Hobart" in t and "Darwin" not in t for t in recalled)


def test_someone_elses_current_value_is_spared(manager: MemoryManager) -> None:
    own = say(manager, "I live in Hobart.", day=0)
    brother = say(manager, "My brother lives in Hobart too.", day=1)
    say(manager, "We moved to Darwin in the spring.", day=20)

    assert "Sam's brother lives in Hobart" in current_facts(manager)
    assert not turn_current(manager, own)
    assert turn_current(manager, brother)


def test_a_value_taken_up_again_after_it_ended_is_current(manager: MemoryManager) -> None:
    say(manager, "I've been really into chess lately.", day=0)
    say(manager, "I gave up chess, too much screen time.", day=5)
    assert "Sam is into chess" not in current_facts(manager)
    again = say(manager, "I'm really into chess again, a club opened nearby.", day=30)
    cheer = say(manager, "Good luck at the chess club tonight!", day=31, speaker="Rosa")
    recalled = recalled_texts(manager, "Does Sam play chess?")  # recall checks staleness too

    assert "Sam is into chess" in current_facts(manager)
    assert turn_current(manager, again) and turn_current(manager, cheer)
    assert any("chess again" in t for t in recalled) and any("chess club" in t for t in recalled)


def test_a_visit_is_not_a_move(manager: MemoryManager) -> None:
    say(manager, "I live in Hobart.", day=0)
    visits = [
        say(manager, "I'm in Sydney this week for a conference, the hotel is grim.", day=3),
        say(manager, "I'm based in Perth this week for a client visit.", day=4),
    ]

    assert current_facts(manager) == {"Sam lives in Hobart"}
    assert all(turn_current(manager, visit) for visit in visits)


def test_a_change_replaces_a_value_that_was_only_said_in_passing(manager: MemoryManager) -> None:
    passing = say(manager, "Three winters in Tromso already, the lights never get old.", day=0)
    echo = say(manager, "Are you still in Tromso after all this time?", day=1, speaker="Rosa")
    brother = say(manager, "My brother lives in Oslo and wants us closer.", day=2)
    again = say(manager, "He says everything is easier in Oslo.", day=3)
    move = say(manager, "We're finally living in Bergen, the flat is great.", day=20)

    facts = {f.text: f for f in manager.records.store_items("facts", "sam", current_only=False)}
    old, new = facts["Sam lives in Tromso"], facts["Sam lives in Bergen"]
    assert new.current and not old.current and old.superseded_by == new.id
    assert old.source_turn_ids == (echo.id,) or old.source_turn_ids == (passing.id,)
    assert not turn_current(manager, passing) and not turn_current(manager, echo)
    assert turn_current(manager, brother) and turn_current(manager, move)
    assert facts["Sam's brother lives in Oslo"].current  # someone's current value: not it
    assert turn_current(manager, again)


def test_a_statement_without_a_change_cue_replaces_nothing_said_in_passing(
    manager: MemoryManager,
) -> None:
    passing = say(manager, "Three winters in Tromso already, the lights never get old.", day=0)
    say(manager, "I live in Bergen.", day=20)

    assert "Sam lives in Tromso" not in {
        f.text for f in manager.records.store_items("facts", "sam", current_only=False)
    }
    assert turn_current(manager, passing)


def test_a_new_phone_number_replaces_the_one_said_before(manager: MemoryManager) -> None:
    old = say(manager, "You can text me on 07700 123456 any time.", day=0)
    echo = say(manager, "Saved 07700 123456 in my phone!", day=1, speaker="Rosa")
    new = say(manager, "New phone, new number: 07911 654321.", day=30)

    facts = {f.text: f for f in manager.records.store_items("facts", "sam", current_only=False)}
    assert facts["Sam's phone number is 07911 654321"].current
    assert not facts["Sam's phone number is 07700 123456"].current
    assert not turn_current(manager, old) and turn_current(manager, new)
    assert not turn_current(manager, echo)  # the other side repeating the old number


def test_a_correction_replaces_what_was_just_said(manager: MemoryManager) -> None:
    say(manager, "Pottery class moved to Tuesdays.", day=0)
    correction = say(manager, "Sorry, I meant Wednesdays, not Tuesdays.", day=0)

    assert not turn_current(manager, manager.records.turns("sam")[0])
    assert turn_current(manager, correction)
    current = {f.text for f in manager.records.store_items("facts", "sam")}
    assert "Sam's day is Wednesdays" in current
    assert not [text for text in current if "Tuesdays" in text]


def test_a_time_changes_only_with_its_aspect(manager: MemoryManager) -> None:
    gym = say(manager, "I hit the gym at 12:30 every day.", day=0)
    choir = say(manager, "Choir practice is at 7pm on Thursdays.", day=1)
    say(manager, "I go to the gym at 6am now, before work.", day=20)

    assert not turn_current(manager, gym)
    assert turn_current(manager, choir)


def test_the_news_around_a_change_is_not_a_stale_claim(manager: MemoryManager) -> None:
    before = say(manager, "Now that I think of it, chess is my whole life.", day=0)
    say(manager, "I've been really into chess lately.", day=1)
    news = say(manager, "Sorry chess, bouldering is my thing now.", day=30)
    ending = say(manager, "I gave up chess for good.", day=30)

    assert turn_current(manager, news) and turn_current(manager, ending)
    assert not turn_current(manager, before)  # a change cue long before is no news of it


def test_my_daughter_is_the_daughter_the_dialogue_named(manager: MemoryManager) -> None:
    say(manager, "My daughter Wren lives in Exeter now.", day=0)
    say(manager, "My daughter moved to Truro in the autumn.", day=30)

    current = current_facts(manager)
    assert "Wren lives in Truro" in current
    assert "Wren lives in Exeter" not in current
    assert not [text for text in current if text.startswith("Sam's daughter")]


def test_a_first_day_somewhere_new_replaces_where_one_was(manager: MemoryManager) -> None:
    say(manager, "Another late night at Halvorsen Logistics, the audit never ends.", day=0)
    say(manager, "Today was my first day at Quillfield! The canteen is unreal.", day=40)
    assert current_facts(manager) == {"Sam is at Quillfield"}
    recalled = recalled_texts(manager, "Where does Sam work now?")
    # The late night is still recalled, with the change beside the old employer.
    assert all("Halvorsen Logistics → Quillfield" in t for t in recalled if "Halvorsen" in t)
    assert any("Quillfield" in t for t in recalled)


def test_a_possessive_mention_of_an_ended_value_is_stale(manager: MemoryManager) -> None:
    say(manager, "Pepper's hip is bad again, poor old girl.", day=0)
    say(manager, "Pepper passed away last night.", day=20)
    recalled = recalled_texts(manager, "How is Pepper?")
    assert "Sam: Pepper's hip is bad again, poor old girl." not in recalled
    assert "Sam: Pepper passed away last night." in recalled


def test_a_new_favourite_ends_the_one_it_apologises_to(manager: MemoryManager) -> None:
    say(manager, "Honestly nothing beats a bowl of ramen after work.", day=0)
    say(manager, "Sorry ramen, pho is my favourite food now.", day=30)
    assert "Sam's favourite food is pho" in current_facts(manager)
    recalled = recalled_texts(manager, "What food does Sam like?")
    assert "Sam: Honestly nothing beats a bowl of ramen after work." not in recalled


def test_he_or_she_answering_a_question_about_someone_is_about_them(
    manager: MemoryManager,
) -> None:
    """A place said in passing after "How's your gran?" ("still in her cottage in
    Hexham") is the gran's, and a month ("she moves in March") is never a place."""
    say(manager, "How's your gran these days?", day=0, speaker="Bea")
    say(manager, "Fine. Still in her cottage in Hexham, stubborn as ever.", day=0)
    say(manager, "Big news: Gran has found a buyer! She moves in March.", day=5)
    say(manager, "Gran's all settled in Alnwick now.", day=40)
    assert "Sam's gran lives in Alnwick" in current_facts(manager)
    recalled = recalled_texts(manager, "Where does Sam's gran live?")
    said = "Sam: Fine. Still in her cottage in Hexham, stubborn as ever."
    assert said not in recalled  # never as said: the gran's move is beside it
    marked = (
        "Sam: Fine. [no longer so since 10 June 2023 (Sam's gran's residence Hexham → Alnwick): "
        "Still in her cottage in Hexham], stubborn as ever."
    )
    assert marked in recalled


def test_a_value_recorded_and_replaced_in_one_write_is_not_recorded_again(
    manager: MemoryManager,
) -> None:
    """One write that states a place, replaces it and replaces it again: the place said
    first is already a recorded fact, so the last change must not record it a second
    time as "said in passing" (that stored one item id twice and failed the write)."""
    records = manager.records
    session = records.start_session("sam", session_id="batch")
    texts = [
        "Life in Denver is quiet, honestly.",
        "Big news: we moved to Lisbon last month.",
        "And now we live in Porto, for good this time.",
    ]
    turns = [
        records.add_turn("sam", session, "Sam", "user", text, timestamp=T0 + timedelta(hours=n))
        for n, text in enumerate(texts)
    ]
    manager.write(turns)
    assert {f for f in current_facts(manager) if "lives in" in f} == {"Sam lives in Porto"}


def test_a_session_ended_again_after_a_crash_sweeps_what_it_consolidated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process killed after the summary stored its new version but before the sweep:
    # ending the session again (as a resumed replay does) finds nothing to consolidate,
    # and must still end the sentence that asserts the replaced job.
    from agentmem.memory import Memory

    with Memory(tmp_path / "data", model="none", stores=("summary",), env={}) as memory:
        for text in (
            "I work as a nurse at the city hospital.",
            "My sister Lena lives in Porto.",
            "I now work as a teacher at a school.",
        ):
            memory.add(text, user_id="sam", session_id="s1")
        manager = memory.manager

        def killed(*args: object, **kwargs: object) -> object:
            raise KeyboardInterrupt  # stands in for SIGKILL between the two steps

        with monkeypatch.context() as patch:
            patch.setattr(manager.guard, "sweep", killed)
            with pytest.raises(KeyboardInterrupt):
                manager.end_session("sam", "s1")
        sentences = manager.records.store_items("summary", "sam", kind="sentence")
        assert any("nurse" in s.text for s in sentences)  # consolidated, not yet swept

        assert manager.end_session("sam", "s1") == []  # nothing left to consolidate
        current = manager.records.store_items("summary", "sam", kind="sentence")
        assert [s.text for s in current if "nurse" in s.text] == []
        assert any("teacher" in s.text for s in current)
