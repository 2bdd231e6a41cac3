"""Fact extraction: the offline rules, the model extractor, the shared cache."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from agentmem.errors import ModelUnavailableError
from agentmem.ledger.extraction import ENDED, CachingExtractor, Fact, ModelExtractor, RuleExtractor
from agentmem.storage.records import Records
from agentmem.testing import ScriptedChatModel
from agentmem.types import Turn


def turn(text: str, speaker: str = "Sam", turn_id: int = 1) -> Turn:
    return Turn(turn_id, "u", "s", speaker, "user", text, datetime(2023, 5, 1))


def facts(text: str, speaker: str = "Sam") -> set[tuple[str, str, str, bool, bool]]:
    return {
        (f.subject, f.attribute, f.value, f.stated, f.polarity)
        for f in RuleExtractor().extract_turn(turn(text, speaker))
        if not f.generic
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I live in Denver now.", ("Sam", "residence", "Denver", True, True)),
        ("We moved to New York last spring.", ("Sam", "residence", "New York", True, True)),
        (
            "I just relocated to San Francisco for work.",
            ("Sam", "residence", "San Francisco", True, True),
        ),
        ("Life in Reno is quiet, which suits me.", ("Sam", "residence", "Reno", False, True)),
        (
            "I work as a software engineer at a startup.",
            ("Sam", "job", "software engineer", True, True),
        ),
        ("My shift as a nurse ran late again.", ("Sam", "job", "nurse", False, True)),
        ("I'm a teacher.", ("Sam", "job", "teacher", True, True)),
        ("I quit my job as a chef.", ("Sam", "job", "chef", True, False)),
        (
            "I left the barista job and now I work as a librarian.",
            ("Sam", "job", "barista", True, False),
        ),
        ("I've been really into chess lately.", ("Sam", "hobby", "chess", True, True)),
        ("I took up pottery this year.", ("Sam", "hobby", "pottery", True, True)),
        ("I lost interest in chess.", ("Sam", "hobby", "chess", True, False)),
        ("I'm not into golf.", ("Sam", "hobby", "golf", True, False)),
        ("I don't live in Boston anymore.", ("Sam", "residence", "Boston", True, False)),
        ("I'm 32 years old.", ("Sam", "age", "32", True, True)),
        ("I'm originally from Lisbon.", ("Sam", "origin", "Lisbon", True, True)),
    ],
)
def test_speaker_facts(text: str, expected: tuple[str, str, str, bool, bool]) -> None:
    assert expected in facts(text)


def test_third_parties_are_their_own_subjects() -> None:
    assert facts("My uncle retired to Bruges.") == {
        ("Sam's uncle", "residence", "Bruges", True, True)
    }
    assert ("Sam's friend", "job", "nurse", True, True) in facts(
        "My friend is a nurse and loves it."
    )
    found = facts("My sister Ana lives in Porto.")
    assert ("Ana", "residence", "Porto", True, True) in found
    assert ("Sam", "relative", "sister Ana", True, True) in found
    assert ("Rita", "job", "tutor", True, True) in facts("Rita works as a tutor.")


def test_questions_and_small_talk_state_nothing() -> None:
    for text in ("Where do you live now?", "Oh really?", "Sounds fun.", "It rained all weekend."):
        assert facts(text) == set(), text


def test_pets_and_favourites() -> None:
    assert ("Sam", "pet", "beagle puppy named Rex", True, True) in facts(
        "I adopted a beagle puppy named Rex last weekend."
    )
    assert ("Sam", "favourite food", "spicy ramen", True, True) in facts(
        "My favourite food is spicy ramen."
    )


def test_generic_triples_for_other_statements() -> None:
    found = RuleExtractor().extract_turn(turn("Caroline went to a LGBTQ support group yesterday."))
    assert [(f.subject, f.attribute, f.generic) for f in found] == [("Caroline", "went", True)]
    assert "support group" in found[0].value


def test_rendering() -> None:
    fact = Fact("Sam", "job", "barista", 1, "Sam", polarity=False, single_valued=True)
    assert fact.render() == "Sam no longer: works as barista"
    assert Fact("Sam", "residence", "Reno", 1, "Sam").render() == "Sam lives in Reno"


def test_cache_extracts_each_turn_once() -> None:
    model = ScriptedChatModel(
        [
            {
                "facts": [
                    {
                        "turn_id": 1,
                        "subject": "Sam",
                        "attribute": "residence",
                        "value": "Reno",
                        "stated": True,
                        "polarity": True,
                    }
                ]
            }
        ]
    )
    cached = CachingExtractor(ModelExtractor(model))
    first = cached.extract([turn("We relocated to Reno.")])
    again = cached.extract([turn("We relocated to Reno.")])
    assert first == again and len(model.calls) == 1
    assert first[1][0].render() == "Sam lives in Reno"


def test_model_extractor_repairs_a_bad_turn_id() -> None:
    good = {
        "facts": [
            {
                "turn_id": 7,
                "subject": "Sam",
                "attribute": "job",
                "value": "tutor",
                "stated": True,
                "polarity": True,
            }
        ]
    }
    bad = {"facts": [{**good["facts"][0], "turn_id": 99}]}
    model = ScriptedChatModel([bad, good])
    extractor = ModelExtractor(model)
    result = extractor.extract([turn("Now I work as a tutor.", turn_id=7)])
    assert [f.value for f in result[7]] == ["tutor"]
    assert len(model.calls) == 2
    assert "turn_id 99" in model.calls[1].messages[-1].content
    assert extractor.stats.calls == 2 and extractor.stats.failures == 0


def test_model_failure_falls_back_to_rules_and_is_counted() -> None:
    model = ScriptedChatModel([ModelUnavailableError("down")], default=None)
    extractor = ModelExtractor(model)
    result = extractor.extract([turn("I live in Denver.")])
    assert [f.render() for f in result[1]] == ["Sam lives in Denver"]
    assert extractor.stats.failures == 1


def test_one_model_call_per_batch() -> None:
    model = ScriptedChatModel(default='{"facts": []}')
    extractor = ModelExtractor(model, batch_size=10)
    extractor.extract([turn(f"line {i}", turn_id=i) for i in range(25)])
    assert len(model.calls) == 3


def test_a_move_from_one_place_to_another_ends_the_first() -> None:
    found = facts("I moved from Tromso to Bergen in March.")
    assert ("Sam", "residence", "Bergen", True, True) in found
    assert ("Sam", "*", "Tromso", True, False) in found


def test_where_one_is_now_is_a_residence_not_an_origin() -> None:
    assert facts("I'm in Halifax now, it's cold.") == {("Sam", "residence", "Halifax", True, True)}
    assert facts("I'm in Halifax this week for a wedding.") == set()


def test_an_ending_without_a_slot_is_an_ended_value() -> None:
    assert facts("Pickle passed away this morning.") == {("Sam", "*", "Pickle", True, False)}
    ended = Fact("Sam", "*", "Pickle", 1, "Sam", polarity=False)
    assert ended.render() == "Sam: Pickle has ended"


def test_she_and_he_are_the_last_third_party_the_dialogue_named() -> None:
    extractor = RuleExtractor()
    said = [
        "My cousin Farah works as a pharmacist in Derby.",
        "Oh and she moved to Leicester last month!",
        "He is from Leeds.",  # nobody named "he": the name stays the last third party
    ]
    found = [extractor.extract_turn(turn(text, turn_id=i)) for i, text in enumerate(said, 1)]

    assert ("Farah", "residence", "Leicester") in {
        (f.subject, f.attribute, f.value) for f in found[1]
    }
    # Another user's dialogue has its own last third party.
    other = Turn(9, "someone-else", "s", "Kim", "user", "She moved to York.", datetime(2023, 5, 1))
    assert {(f.subject, f.attribute) for f in extractor.extract_turn(other)} == set()


def test_who_she_is_survives_a_restart_and_a_write_done_again(tmp_path: Path) -> None:
    """A process restarted after a crash reads "she" as the process that was killed did."""
    said = [
        "My cousin Farah works as a pharmacist in Derby.",
        "The weather was awful all week.",
        "Oh and she moved to Leicester last month!",
    ]
    turns = [turn(text, turn_id=n) for n, text in enumerate(said, 1)]
    records = Records(tmp_path / "records.db")
    try:
        RuleExtractor(records).extract(turns[:2])  # then the process is killed

        restarted = RuleExtractor(records).extract(turns[1:])  # resumed from turn 2
        again = RuleExtractor(records).extract(turns[2:])  # and once more from turn 3
    finally:
        records.close()

    moved = ("Farah", "residence", "Leicester")
    for found in (restarted, again):
        assert moved in {(f.subject, f.attribute, f.value) for f in found[3]}
    # Kept in memory only, a restarted extractor has no one to read "she" as.
    forgetful = RuleExtractor().extract(turns[2:])
    assert moved not in {(f.subject, f.attribute, f.value) for f in forgetful[3]}


def test_notes_naming_the_speaker_in_the_third_person_are_the_speakers() -> None:
    """Notes about a user ("The user lives in ...", as LangMem writes them) said by ``user``."""
    assert facts("The user lives in Lisbon.", "user") == {
        ("user", "residence", "Lisbon", True, True)
    }
    assert ("user", "residence", "Berlin", True, True) in facts("User moved to Berlin.", "user")
    assert ("user", "favourite food", "sushi", True, True) in facts(
        "User's favourite food is sushi.", "user"
    )
    assert ("user", "favourite food", "ramen", True, True) in facts(
        "The user's favourite food is ramen.", "user"
    )
    # Someone else's name, or the speaker's name inside a sentence, stays as it was.
    assert ("Sam", "favourite food", "sushi", True, True) not in facts(
        "Ana's favourite food is sushi."
    )
    assert facts("I told the user about Lisbon.", "user") == set()


def test_mum_as_a_name_is_the_speakers_mum() -> None:
    assert facts("Mum's all settled in Gdynia now.") == {
        ("Sam's mum", "residence", "Gdynia", True, True)
    }
    assert ("Sam's mum", "residence", "Sopot", True, True) in facts("My mum lives in Sopot.")
    assert ("Sam's gran", "residence", "Oakview House", True, True) in facts(
        "Gran moved into Oakview House last week."
    )


def test_a_favourite_named_before_its_aspect_and_the_one_it_displaces() -> None:
    assert facts("Okay, fine: the Mountain Goats are my favourite band now.") == {
        ("Sam", "favourite band", "Mountain Goats", True, True)
    }
    assert facts("Sorry ramen, pho is my favourite food now.") == {
        ("Sam", "favourite food", "pho", True, True),
        ("Sam", ENDED, "ramen", True, False),
    }
    # Without a favourite being declared, "sorry" ends nothing.
    assert facts("Sorry Marta, I was late again.") == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "It was Tomasz's first day at Brightwell Primary and he loved it.",
            {("Tomasz", "employer", "Brightwell Primary", True, True)},
        ),
        (
            "Tonight was my first shift as night nurse at St Bart's, exhausting.",
            {
                ("Sam", "employer", "St Bart's", True, True),
                ("Sam", "job", "night nurse", True, True),
            },
        ),
        ("Today was Mum's first day as manager!", {("Sam's mum", "job", "manager", True, True)}),
        (
            "Priyanka started at Deloitte on Monday.",
            {("Priyanka", "employer", "Deloitte", True, True)},
        ),
        ("My first day was a blur.", set()),
    ],
)
def test_a_start_names_where_and_as_what(
    text: str, expected: set[tuple[str, str, str, bool, bool]]
) -> None:
    assert facts(text) == expected


def test_a_month_or_a_weekday_is_no_place() -> None:
    assert facts("We finally settled in March, after the sale went through.") == set()
    assert facts("We finally settled in Tromsø, after the sale went through.") == {
        ("Sam", "residence", "Tromsø", True, True)
    }


def test_model_facts_are_read_as_meant_without_a_repair() -> None:
    # A quoted turn id, a number as the value, "false" as false, an extra key: a small
    # model's slips that the answer model forgives in one call.
    said = {
        "turn_id": "1",
        "subject": " Sam ",
        "attribute": "Age",
        "value": 31,
        "stated": "false",
        "polarity": True,
        "confidence": 0.4,
    }
    model = ScriptedChatModel([{"facts": [said]}], default=None)
    result = ModelExtractor(model).extract([turn("Another birthday, sigh.")])
    assert len(model.calls) == 1
    assert result[1] == [Fact("Sam", "age", "31", 1, "Sam", stated=False, single_valued=True)]


def test_a_null_model_value_is_shown_back_not_stored_as_text() -> None:
    good = {
        "turn_id": 1,
        "subject": "Sam",
        "attribute": "residence",
        "value": "Denver",
        "stated": True,
        "polarity": True,
    }
    model = ScriptedChatModel([{"facts": [{**good, "value": None}]}, {"facts": [good]}])
    result = ModelExtractor(model).extract([turn("I live in Denver.")])
    assert len(model.calls) == 2
    assert "facts[0].value" in model.calls[1].messages[-1].content
    assert [f.value for f in result[1]] == ["Denver"]
