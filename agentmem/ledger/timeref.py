"""Relative dates resolved against the time they were said.

"I went to the support group yesterday", said on 8 May 2023, means 7 May 2023; read
weeks later without its date it means nothing, and a question such as "When did Caroline
go to the support group?" can only find its answer if the date is written down. A turn's
relative dates ("yesterday", "last week", "last Sunday", "two days ago", "next month")
are therefore resolved when the turn is written, and the absolute date is added after the
phrase in square brackets: ``yesterday [7 May 2023]``.

Only what a calendar settles is resolved: a day (``yesterday``, ``tomorrow``, ``three days
ago``, ``last Sunday``), a week or weekend relative to the day said (``the week before 9
June 2023``), a month or a year. "Today" and "tonight" are left alone: an item carries its
own date. So is a phrase whose date the calendar does not have ("tomorrow" said on 31
December 9999, "yesterday" on 1 January of the year 1): it is written as said. Resolving
runs when a stored turn is written into memory, so it must never raise: a turn that made
it fail would fail again on every resume.
"""

from __future__ import annotations

import re
from datetime import MAXYEAR, MINYEAR, datetime, timedelta

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "a couple of": 2,
    "couple of": 2,
}
_COUNT = (
    r"(?P<n>\d{1,2}|a couple of|couple of|an?|one|two|three|four|five|six|seven|eight|nine|ten)"
)
_PHRASE = re.compile(
    r"\b(?:"
    r"(?P<before>the day before yesterday)"
    r"|(?P<yesterday>yesterday)"
    r"|(?P<tomorrow>tomorrow)"
    rf"|{_COUNT} (?P<unit>day|week|month|year)s? ago"
    r"|(?P<rel>last|next|this|the past|the previous|the coming) "
    r"(?P<span>week|weekend|month|year|" + "|".join(_WEEKDAYS) + r")"
    r")\b(?! \[)",
    re.IGNORECASE,
)
#: A resolution this module added, for readers that must see the words as said.
RESOLVED = re.compile(r" \[[^\[\]]{4,40}\]")


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


def _month(moment: datetime, shift: int) -> str:
    index = moment.year * 12 + moment.month - 1 + shift
    return f"{datetime(index // 12, index % 12 + 1, 1):%B %Y}"


def _year(year: int) -> str:
    if not MINYEAR <= year <= MAXYEAR:
        raise OverflowError(f"year {year} is out of range")
    # Four digits: RESOLVED takes no bracket shorter (a "[2]" may be the user's own).
    return f"{year:04d}"


def _resolve(match: re.Match[str], said: datetime) -> str | None:
    """Return the absolute date a relative phrase names, or ``None`` if it names none."""
    if match.group("before"):
        return _day(said - timedelta(days=2))
    if match.group("yesterday"):
        return _day(said - timedelta(days=1))
    if match.group("tomorrow"):
        return _day(said + timedelta(days=1))
    if match.group("unit"):
        count = (
            int(match.group("n"))
            if match.group("n").isdigit()
            else _NUMBERS[match.group("n").lower()]
        )
        unit = match.group("unit").lower()
        if unit == "day":
            return _day(said - timedelta(days=count))
        if unit == "week":
            return f"the week of {_day(said - timedelta(weeks=count))}"
        if unit == "month":
            return _month(said, -count)
        return _year(said.year - count)
    rel = match.group("rel").lower()
    span = match.group("span").lower()
    direction = 0 if rel == "this" else (1 if rel in ("next", "the coming") else -1)
    if span in _WEEKDAYS:
        if direction == 0:
            return None  # "this Friday" may be either side of today
        target = _WEEKDAYS.index(span)
        gap = (said.weekday() - target) % 7 or 7
        moment = (
            said - timedelta(days=gap)
            if direction < 0
            else said + timedelta(days=(target - said.weekday()) % 7 or 7)
        )
        return _day(moment)
    if span in ("week", "weekend"):
        if direction == 0:
            return None
        side = "before" if direction < 0 else "after"
        return f"the {span} {side} {_day(said)}"
    if span == "month":
        return _month(said, direction)
    return _year(said.year + direction)


def resolve_relative_dates(text: str, said: datetime) -> str:
    """Return ``text`` with each relative date followed by its absolute date in brackets.

    Args:
        text: What was said.
        said: When it was said (the turn's dialogue time).
    """

    def annotate(match: re.Match[str]) -> str:
        try:
            resolved = _resolve(match, said)
        except (OverflowError, ValueError):  # a date past either end of the calendar
            resolved = None
        return match.group(0) if resolved is None else f"{match.group(0)} [{resolved}]"

    return _PHRASE.sub(annotate, text)


def without_resolutions(text: str) -> str:
    """Return ``text`` without the dates :func:`resolve_relative_dates` added."""
    return RESOLVED.sub("", text)
