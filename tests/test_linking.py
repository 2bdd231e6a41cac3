"""Slot-free change detection: a change linked to the earlier statement it outdates.

Our own sentences (no data set's): the issue's five examples, more everyday changes
(products, "no longer", promotions, courses, raises, routines, addresses, relationships,
a pet rehomed), and the distractors that must change nothing (someone else's change, a
visit, a hypothetical, a plan, a question, a refusal, the same value again).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agentmem.ledger.linking import Link, Linker
from agentmem.manager import MemoryManager
from agentmem.types import Scope, Turn

T0 = datetime(2023, 5, 1, 10, 0)


def dialogue(*lines: str | tuple[str, str]) -> list[Turn]:
    """Turns of one user, a day apart; a line is Sam's text or (speaker, text)."""
    turns = []
    for n, line in enumerate(lines):
        speaker, text = line if isinstance(line, tuple) else ("Sam", line)
        day = T0 + timedelta(days=n)
        turns.append(Turn(n + 1, "u", f"s{n}", speaker, "user", text, day))
    return turns


def links(*lines: str | tuple[str, str]) -> list[Link]:
    """What the last line outdates of the lines before it."""
    turns = dialogue(*lines)
    return Linker().links(turns[-1], turns)


def changed(*lines: str | tuple[str, str]) -> set[tuple[str, str | None]]:
    return {(link.old, link.new) for link in links(*lines)}


# -- the examples -------------------------------------------------------------------


def test_giving_up_ends_the_value_as_it_was_said() -> None:
    found = links("Two sugars in my tea, always.", "I've given up sugar in my tea.")
    assert [(f.old, f.new, f.aspect) for f in found] == [("Two sugars", None, "tea")]
    assert found[0].source.text == "Two sugars in my tea, always."


def test_a_product_switched_replaces_what_one_did_before() -> None:
    found = links("I only read paper books.", "I switched to an e-reader.")
    assert [(f.old, f.new) for f in found] == [("paper books", "e-reader")]


def test_a_number_goes_up() -> None:
    found = links("The rent is 900 a month, bills included.", "My rent went up to 950.")
    assert [(f.old, f.new, f.aspect) for f in found] == [("900", "950", "rent")]


def test_a_routine_moves_to_new_days() -> None:
    assert changed("I swim Mondays and Fridays.", "Swimming is on Wednesdays now.") == {
        ("Mondays and Fridays", "Wednesdays")
    }


def test_a_new_address_replaces_the_old_one() -> None:
    found = links("We're at 12 Park Road.", "We moved; the new address is 4 Mill Lane.")
    assert [(f.old, f.new, f.aspect) for f in found] == [("12 Park Road", "4 Mill Lane", "address")]


# -- more everyday changes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "change"),
    [
        # a product switched
        (
            "I drink oat milk in my coffee.",
            "I've switched to almond milk in my coffee.",
            ("oat milk", "almond milk"),
        ),
        # "no longer", "not ... any more": the habit as it was said
        (
            "My mornings start with a double espresso.",
            "I no longer drink espresso, doctor's orders.",
            ("double espresso", None),
        ),
        ("I do hot yoga three times a week.", "I don't do yoga any more.", ("hot yoga", None)),
        # a promotion
        (
            "I'm a junior designer at a small studio.",
            "Got promoted! I'm a senior designer now.",
            ("junior designer", "senior designer"),
        ),
        # a changed course of study
        (
            "I'm studying law at Leeds.",
            "I changed course, I study history now.",
            ("law", "history"),
        ),
        # a raise
        ("I earn £30,000 a year.", "Got a raise, I earn £34,000 now.", ("£30,000", "£34,000")),
        # new days for a routine
        ("Book club is on Thursdays.", "Book club moved to Tuesdays.", ("Thursdays", "Tuesdays")),
        # a relationship
        ("My boyfriend Tom is coming to dinner.", "Tom is my fiancé now!", ("boyfriend", "fiancé")),
        # a pet rehomed, named as it was before
        (
            "Mr Whiskers is asleep on the radiator again.",
            "We had to rehome Whiskers, my daughter's allergies got worse.",
            ("Mr Whiskers", None),
        ),
        # a count
        (
            "We have two dogs and a cat.",
            "We're officially a three-dog family now.",
            ("two dogs", "three-dog"),
        ),
        # a favourite said with a pronoun
        (
            "I've had Arcade Fire on repeat. They're my favourite band.",
            "Wet Leg is my favourite band now.",
            ("Arcade Fire", "Wet Leg"),
        ),
        # another grade of one job, even without change language
        (
            "Being a junior analyst at the bank is exhausting.",
            "Being a senior analyst means even more meetings.",
            ("junior analyst", "senior analyst"),
        ),
        # where a relative lives, and where one works
        (
            "My gran is still in her house in Whittier.",
            "My gran moved into Sunrise Court last week.",
            ("Whittier", "Sunrise Court"),
        ),
        (
            "My sister Claire is still at Tesco, stacking shelves.",
            "Claire's first week at Lidl went well.",
            ("Tesco", "Lidl"),
        ),
    ],
)
def test_an_everyday_change_is_linked(
    before: str, after: str, change: tuple[str, str | None]
) -> None:
    assert changed(before, after) == {change}


def test_a_relative_s_change_is_theirs() -> None:
    found = links("My sister Claire is still at Tesco.", "Claire's first week at Lidl went well.")
    assert [f.subject for f in found] == ["Claire"]


# -- what must change nothing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        # someone else's change
        ["I swim Mondays and Fridays.", ("Kim", "I swim on Wednesdays now.")],
        ["We're at 12 Park Road.", "My sister's new address is 4 Mill Lane."],
        ["My brother swims on Mondays.", "I swim on Wednesdays now."],
        ["I sing in the choir at St Mary's.", "My choir director moved to Spain."],
        ["I train at the Elm Street gym.", "Our yoga teacher has a new studio in Leith."],
        # a visit
        ["We live in Galway.", "I'm in a new hotel in Dublin this week for a conference."],
        # a hypothetical, a plan, a wish
        ["We're at 12 Park Road.", "If we moved, the new address would be 4 Mill Lane."],
        ["My rent is 900 a month.", "Next year my rent goes up to 1000."],
        ["I only read paper books.", "I'm thinking of switching to an e-reader."],
        # a question
        ["I swim Mondays and Fridays.", "Is swimming on Wednesdays now?"],
        # a refusal
        ["I only read paper books.", "I'm not switching to an e-reader, ever."],
        # the same value again
        ["My rent is 900 a month.", "My rent is now 900, same as before."],
        # a passing mention is no value of the aspect
        ["I still get lost in Alfama every time.", "We're officially living in Berlin now."],
        # two jobs are no grades of one without change language
        ["I'm a nurse on weekdays.", "I'm a writer at the weekend."],
        # one place and a part of it
        ["My son is at Hillcrest Academy.", "My son started at Hillcrest in the new wing."],
    ],
)
def test_a_distractor_outdates_nothing(lines: list[str | tuple[str, str]]) -> None:
    assert links(*lines) == []


def test_a_sentence_about_no_one_known_by_a_pronoun_changes_nothing() -> None:
    assert links("I live in Leeds, still in Leeds.", "He's living in York now.") == []


def test_only_turns_with_change_language_search() -> None:
    turns = dialogue("My rent is 900 a month.", "My rent is 950.")
    assert not Linker.triggers(turns[-1])
    assert Linker().links(turns[-1], turns) == []
    assert not Linker.triggers(Turn(9, "u", "s", "assistant", "assistant", "You moved!", T0))


# -- through the memory manager: the old statement is settled, the change reported ---------


def say(manager: MemoryManager, text: str, day: int, speaker: str = "Sam") -> list[str]:
    """Store and memorize one turn; return the reasons of the changes it made."""
    session = manager.records.start_session("sam", session_id=f"sam-{day}")
    turn = manager.records.add_turn(
        "sam", session, speaker, "user", text, timestamp=T0 + timedelta(days=day)
    )
    return [c.reason for c in manager.write([turn]).changes if c.kind != "NOOP"]


def turn_items(manager: MemoryManager) -> dict[str, tuple[bool, str]]:
    """Each turn item's text: whether it is current, and how the prompt shows it."""
    items = manager.records.store_items("turns", "sam", current_only=False)
    return {i.text.split(": ", 1)[1]: (i.current, i.shown_text()) for i in items}


def test_a_linked_change_retires_the_old_statement_and_says_so(manager: MemoryManager) -> None:
    say(manager, "My rent is 900 a month.", 0)
    reasons = say(manager, "My rent went up to 950.", 30)
    assert "rent: 900 → 950 (turn 2)" in reasons
    items = turn_items(manager)
    assert items["My rent is 900 a month."][0] is False
    assert items["My rent went up to 950."][0] is True
    facts = {f.text for f in manager.records.store_items("facts", "sam")}
    assert "Sam's rent: 950" in facts
    recalled = manager.recall("How much is Sam's rent?", Scope("sam"), k=10, budget_tokens=2000)
    assert not any("900" in r.item.shown_text() for r in recalled.items)


def test_an_old_statement_that_says_more_keeps_it_with_the_change_beside(
    manager: MemoryManager,
) -> None:
    say(manager, "Two sugars in my tea, always, and a biscuit with it at eleven.", 0)
    reasons = say(manager, "I've given up sugar in my tea.", 30)
    assert "tea: Two sugars → ended (turn 2)" in reasons
    current, shown = turn_items(manager)[
        "Two sugars in my tea, always, and a biscuit with it at eleven."
    ]
    assert current and "Two sugars → ended" in shown


def test_a_friend_s_change_leaves_the_speaker_s_value_alone(manager: MemoryManager) -> None:
    say(manager, "I swim Mondays and Fridays at the lido.", 0)
    say(manager, "I swim on Wednesdays now.", 10, speaker="Kim")
    assert all(current for current, _ in turn_items(manager).values())
    facts = manager.records.store_items("facts", "sam", current_only=False)
    assert all(f.current for f in facts)
