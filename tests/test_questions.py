"""Reading a question's form and the time it names (agentmem.questions)."""

from __future__ import annotations

from datetime import datetime

import pytest

from agentmem.questions import read_question, time_window

NOW = datetime(2023, 10, 22, 18, 0)


@pytest.mark.parametrize(
    ("question", "form"),
    [
        # Recaps: what was talked about, what happened, over a stretch of time.
        ("What did Caroline and Melanie talk about on 8 May 2023?", "recap"),
        ("What did we chat about yesterday?", "recap"),
        ("What happened in Melanie's life between May and August 2023?", "recap"),
        ("What has Sam been up to lately?", "recap"),
        ("Can you give me a recap of last week?", "recap"),
        ("How did Ana's summer go?", "recap"),
        # What was said about a subject, across sessions.
        ("What did we say about the move?", "mentions"),
        ("What did we talk about regarding the wedding?", "mentions"),
        ("What did Ana and Ben say about the wedding?", "mentions"),
        ("What did Jon say about Gina's progress with her store?", "point"),  # one person
        # A topic.
        ("What do you know about Caroline's family?", "topic"),
        ("Tell me about Jon's dance studio.", "topic"),
        # Several things at once: a set, "both", several people.
        ("What books has Melanie read?", "multi-hop"),
        ("Which cities has Jon visited?", "multi-hop"),
        ("What do Jon and Gina both have in common?", "multi-hop"),
        ("How many times has Melanie gone to the beach?", "multi-hop"),
        # One fact.
        ("Where does Sam work?", "point"),
        ("When did Melanie paint a sunrise?", "point"),
        ("What happened to the dog?", "point"),  # about the dog, not a stretch of time
        ("What temporary job did Jon take to cover expenses?", "point"),
        ("May I ask what you think?", "point"),
    ],
)
def test_the_form_is_read_from_the_question_itself(question: str, form: str) -> None:
    assert read_question(question, NOW).form == form


def test_a_date_names_its_day_and_several_dates_one_window() -> None:
    assert time_window("What did we talk about on 8 May 2023?") == (
        datetime(2023, 5, 8),
        datetime(2023, 5, 9),
    )
    assert time_window("on May 8th, 2023") == (datetime(2023, 5, 8), datetime(2023, 5, 9))
    assert time_window("between May and August 2023") == (
        datetime(2023, 5, 1),
        datetime(2023, 9, 1),
    )
    assert time_window("between December 2022 and February 2023") == (
        datetime(2022, 12, 1),
        datetime(2023, 3, 1),
    )
    assert time_window("What happened in 2022?") == (datetime(2022, 1, 1), datetime(2023, 1, 1))


def test_a_month_without_its_year_is_the_latest_one_and_may_the_verb_is_no_month() -> None:
    assert time_window("What happened in July?", NOW) == (
        datetime(2023, 7, 1),
        datetime(2023, 8, 1),
    )
    assert time_window("What did we discuss in November?", NOW) == (
        datetime(2022, 11, 1),
        datetime(2022, 12, 1),
    )
    assert time_window("May I ask where you live?", NOW) is None
    assert time_window("Where does Sam live?", NOW) is None


def test_relative_times_are_read_against_now() -> None:
    assert time_window("What did we talk about yesterday?", NOW) == (
        datetime(2023, 10, 21),
        datetime(2023, 10, 22),
    )
    start, end = time_window("What happened last week?", NOW) or (None, None)
    assert start == datetime(2023, 10, 9) and end == datetime(2023, 10, 16)
    assert time_window("What happened last week?") is None  # no now, no last week


@pytest.mark.parametrize("now", [datetime(9999, 12, 31, 10), datetime(1, 1, 1, 0, 5)])
@pytest.mark.parametrize(
    "question",
    [
        "What did we talk about on 31 December 9999?",
        "What happened in December 9999?",
        "What happened this year?",
        "What happened last month?",
        "What happened last week?",
        "What did we talk about yesterday?",
        "What happened on 1 January 0001?",
    ],
)
def test_a_time_past_either_end_of_the_calendar_names_nothing(now: datetime, question: str) -> None:
    reading = read_question(question, now)  # never raises: recall goes on without a window
    assert reading.window is None or reading.window[0] < reading.window[1]


@pytest.mark.parametrize(
    ("question", "now"),
    [
        ("Where does Sam live now?", True),
        ("Does Ana still swim on Mondays?", True),
        ("What is Jo's current job?", True),
        ("Is Kim no longer vegan?", True),
        ("Where does Sam live?", False),
        ("Where did Sam live in May 2023?", False),  # a time named: not now
        ("When did Ana start swimming?", False),
    ],
)
def test_a_question_about_how_things_stand_now(question: str, now: bool) -> None:
    assert read_question(question, datetime(2024, 1, 1)).now is now
