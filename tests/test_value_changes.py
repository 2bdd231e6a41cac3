"""How an item that still holds for the rest shows the value of it that changed."""

from __future__ import annotations

from datetime import datetime

from agentmem.types import MemoryItem, ValueChange

MOVED = datetime(2023, 6, 2, 18, 0)


def item(text: str, *changes: ValueChange) -> MemoryItem:
    return MemoryItem(
        "i", "turns", "turn", "u", text, (1,), metadata={"changes": [c.to_json() for c in changes]}
    )


def change(value: str, new: str | None, aspect: str = "", since: datetime = MOVED) -> ValueChange:
    return ValueChange(value, new, aspect, since, 7, f"fact-{value}")


def test_the_clause_stating_the_old_value_is_marked_in_place() -> None:
    shown = item(
        "Ana: I live in Lisbon and love surfing at Carcavelos with my brother Rui.",
        change("Lisbon", "Berlin", "residence"),
    ).shown_text()
    assert shown == (
        "Ana: [no longer so since 2 June 2023 (residence Lisbon → Berlin): I live in Lisbon] "
        "and love surfing at Carcavelos with my brother Rui."
    )


def test_a_short_clause_is_marked_with_its_sentence_and_a_date_keeps_its_words() -> None:
    shown = item(
        "Ben: Yep, Bristol, still at the aquarium [March 2023]. She loves the octopus.",
        change("Bristol", "Dublin", "Claire's residence"),
    ).shown_text()
    assert shown == (
        "Ben: [no longer so since 2 June 2023 (Claire's residence Bristol → Dublin): Yep, "
        "Bristol, still at the aquarium (March 2023)]. She loves the octopus."
    )


def test_an_ending_and_a_second_change_mark_their_own_clauses() -> None:
    shown = item(
        "Sam: Pepper's hip is bad again, and I still work at Acme on Fridays.",
        change("Pepper", None),
        change("Acme", "Globex", "employer"),
    ).shown_text()
    assert shown == (
        "Sam: [no longer so since 2 June 2023 (Pepper → ended): Pepper's hip is bad again], "
        "and [no longer so since 2 June 2023 (employer Acme → Globex): "
        "I still work at Acme on Fridays]."
    )


def test_a_value_the_text_does_not_name_as_such_is_noted_at_the_end() -> None:
    shown = item("Topic: where Sam lived and worked", change("Boston", "Denver")).shown_text()
    assert shown == "Topic: where Sam lived and worked [since 2 June 2023: Boston → Denver]"


def test_as_of_before_the_change_shows_the_text_as_said() -> None:
    noted = item("Sam: I live in Boston and drink tea daily.", change("Boston", "Denver"))
    assert noted.shown_text(datetime(2023, 1, 1)) == noted.text
    assert noted.shown_text(datetime(2024, 1, 1)) != noted.text
    assert noted.changes_at(datetime(2023, 1, 1)) == ()


def test_a_change_is_kept_as_json_and_read_back_whole() -> None:
    said = change("Boston", "Denver", "residence")
    assert ValueChange.of(said.to_json()) == said
    assert said.phrase() == "residence: Boston → Denver (turn 7)"
