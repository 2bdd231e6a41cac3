"""Relative dates resolved against the time they were said (computed by hand)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- the calendar's edges -------------------------------------------------------------------

#: Every kind of phrase the resolver knows, each reaching a day, a week, a month or a year.
EVERY_KIND = (
    "the day before yesterday",
    "yesterday",
    "tomorrow",
    "99 days ago",
    "ten weeks ago",
    "a couple of months ago",
    "99 years ago",
    "last Sunday",
    "next Monday",
    "last week",
    "next weekend",
    "last month",
    "next month",
    "last year",
    "next year",
)
_offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)


@settings(max_examples=400, deadline=None, database=None)
@given(
    said=st.one_of(
        st.sampled_from(
            [datetime.min, datetime.max, datetime(9999, 12, 31, 12), datetime(1, 1, 1)]
        ),
        st.datetimes(),
        st.datetimes(timezones=_offsets),
    ),
    phrase=st.sampled_from(EVERY_KIND),
)
def test_no_time_of_saying_makes_resolving_raise(said: datetime, phrase: str) -> None:
    """Resolving runs on every resume of a stored turn: a raise would wedge its user."""
    text = f"{phrase.capitalize()} I fly to Oslo."
    resolved = resolve_relative_dates(text, said)
    assert without_resolutions(resolved) == text  # resolved or left as said, nothing else


@pytest.mark.parametrize(
    ("said", "text"),
    [
        (datetime(9999, 12, 31, 12), "Tomorrow I fly to Oslo."),
        (datetime(9999, 12, 30, 12), "Next month I fly to Oslo, next year too."),
        (datetime.max, "See you next Monday."),
        (datetime.min, "Yesterday I was in Lisbon, the day before yesterday in Porto."),
        (datetime(5, 6, 1), "We met 10 years ago."),
        (datetime(1, 1, 3), "We met 2 weeks ago and last month."),
    ],
)
def test_a_date_past_either_end_of_the_calendar_is_left_as_said(said: datetime, text: str) -> None:
    assert resolve_relative_dates(text, said) == text


def test_dates_just_inside_the_calendar_are_still_resolved() -> None:
    assert (
        resolve_relative_dates("tomorrow", datetime(9999, 12, 30)) == "tomorrow [31 December 9999]"
    )
    assert resolve_relative_dates("yesterday", datetime(1, 1, 2)) == "yesterday [1 January 1]"
    assert resolve_relative_dates("4 years ago", datetime(5, 1, 1)) == "4 years ago [0001]"
