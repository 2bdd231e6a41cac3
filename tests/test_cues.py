"""The change cues of the offline fact path: endings, visits and signals of change."""

from __future__ import annotations

import pytest

from agentmem.ledger.cues import ended_values, is_temporary, signals_change


@pytest.mark.parametrize(
    ("sentence", "ended"),
    [
        ("Sold the Vespa last month, no more scooting for me.", ["Vespa", "scooting"]),
        ("Biscuit passed away in his sleep.", ["Biscuit"]),
        ("My old laptop died during the exam.", ["laptop"]),
        ("I dropped Mandarin after the first term.", ["Mandarin"]),
        ("I cancelled my PureGym membership.", ["PureGym"]),
        ("Quit the choir, honestly a relief.", ["choir"]),
        ("I've stopped eating meat.", ["eating meat"]),
        ("Omar and I broke up in August.", ["Omar"]),
        ("We moved from Utrecht to Leiden.", ["Utrecht"]),
        ("I switched from tea to coffee.", ["tea"]),
        ("Out of Swindon for good!", ["Swindon"]),
        ("Goodbye Globex, hello freelance life.", ["Globex"]),
        ("I left my job at Hooli on Friday.", ["Hooli"]),
        ("The Copper Kettle closed down.", ["Copper Kettle"]),
        ("The Vespa isn't mine anymore.", ["Vespa"]),
        ("I'm officially off the statins as of Monday.", ["statins"]),
        ("The gaming era is over.", ["gaming"]),
        ("I'm not playing the cello anymore.", ["cello"]),
        ("She isn't driving the taxi any more.", ["taxi"]),
        ("The doctor has taken me off the warfarin.", ["warfarin"]),
        ("I stopped taking ibuprofen.", ["taking ibuprofen", "ibuprofen"]),
        ("Squash is done for me, says the physio.", ["Squash"]),
        ("The night bus is dead to me.", ["bus"]),
        ("My last day at Hooli was Friday.", ["Hooli"]),
        ("I handed in my notice at the bank.", ["bank"]),
    ],
)
def test_an_ending_names_the_value_it_ends(sentence: str, ended: list[str]) -> None:
    assert ended_values(sentence) == ended


@pytest.mark.parametrize(
    "sentence",
    [
        "I stopped by the bakery on the way home.",
        "We left the party early.",
        "I lost the match but it was fun.",
        "I quit it after a week.",
        "My sister lives in Utrecht.",
        "I took the day off work.",
        "We got off the train at Leeds.",
        "I took off my coat.",
        "I'm not going anywhere anymore.",
        "I'm done for the day.",
    ],
)
def test_a_passing_moment_ends_nothing(sentence: str) -> None:
    assert ended_values(sentence) == []


def test_a_visit_is_temporary_but_a_move_is_not() -> None:
    assert is_temporary("I'm in Oslo this week for a conference.")
    assert is_temporary("Visiting my aunt in Cork until Sunday.")
    assert not is_temporary("We moved to Oslo this week.")
    assert not is_temporary("I live in Oslo.")


def test_change_signals() -> None:
    assert signals_change("My new flat in Ghent has a balcony.")
    assert signals_change("I'm a teacher now.")
    assert not signals_change("I like my flat in Ghent.")


def test_a_change_states_shaped_values_and_a_correction_rejects_the_old_one() -> None:
    from agentmem.ledger.cues import aspect_word, shaped_changes

    assert shaped_changes("New email is kit@fastmail.com.") == (
        [("email", "kit@fastmail.com")],
        [],
    )
    assert shaped_changes("Sorry, I meant Thursdays, not Tuesdays.") == (
        [("day", "Thursdays")],
        ["Tuesdays"],
    )
    # No change cue: a value said in passing is no change.
    assert shaped_changes("Call me on 07700 111222 tonight.") == ([], [])
    assert aspect_word("I go to the gym at 6am now.", "6am") == "gym"
