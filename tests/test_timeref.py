"""Relative dates resolved against the time they were said (computed by hand)."""

from __future__ import annotations

from datetime import datetime

import pytest

from agentmem.ledger.timeref import resolve_relative_dates, without_resolutions

THURSDAY = datetime(2024, 2, 29, 18, 30)  # a leap day, a Thursday


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("I fell off my bike yesterday.", "I fell off my bike yesterday [28 February 2024]."),
        ("Back tomorrow!", "Back tomorrow [1 March 2024]!"),
        ("the day before yesterday", "the day before yesterday [27 February 2024]"),
        ("We met last Sunday", "We met last Sunday [25 February 2024]"),
        ("We met last Thursday", "We met last Thursday [22 February 2024]"),
        ("See you next Monday", "See you next Monday [4 March 2024]"),
        ("three days ago", "three days ago [26 February 2024]"),
        ("a couple of weeks ago", "a couple of weeks ago [the week of 15 February 2024]"),
        ("my recital last week", "my recital last week [the week before 29 February 2024]"),
        ("next weekend", "next weekend [the weekend after 29 February 2024]"),
        ("Last month was rough", "Last month [January 2024] was rough"),
        ("next month", "next month [March 2024]"),
        ("this year", "this year [2024]"),
        ("2 years ago", "2 years ago [2022]"),
    ],
)
def test_relative_dates_are_resolved(said: str, expected: str) -> None:
    assert resolve_relative_dates(said, THURSDAY) == expected
    assert without_resolutions(expected) == said


def test_what_a_calendar_does_not_settle_is_left_alone() -> None:
    for said in ("I'm off today.", "See you this Friday", "We'll see this week.", "Sunday again"):
        assert resolve_relative_dates(said, THURSDAY) == said


def test_a_month_boundary_and_a_year_boundary() -> None:
    new_year = datetime(2024, 1, 1, 9, 0)
    assert resolve_relative_dates("yesterday", new_year) == "yesterday [31 December 2023]"
    assert resolve_relative_dates("last month", new_year) == "last month [December 2023]"
    assert resolve_relative_dates("a month ago", new_year) == "a month ago [December 2023]"
