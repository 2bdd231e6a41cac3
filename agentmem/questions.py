"""Reading a question's form: what kind of answer it wants, and over which stretch of time.

Structures are built for different questions. A point question ("Where does Sam work?")
wants one fact, and the turns that state it; a recap ("What did we talk about on 8 May?",
"What happened in Sam's life this summer?") wants the gist of many turns, which a summary
holds in fewer tokens than the turns themselves; a topic question ("What do you know about
Sam's family?") wants what a MemTree node gathers; a question about several things at once
("What books has Sam read?", "What do Sam and Ana both like?") wants the turns a graph
walk links; "What did we say about the move?" wants the memos of a subject across
sessions. :func:`read_question` tells them apart from the question's own words (its
verbs, its dates, the entities it names), never from any data set's labels, and the
memory manager lets the structure built for the form lead the fusion.

It also reads the stretch of dialogue time a question names (``window``): "on 8 May
2023", "in July 2023", "between May and August 2023", "last week" (against ``now``). A
structure that keeps time (the summaries of sessions and periods) answers from it.

Rules, not a model: they must run on every recall in microseconds. A question they do
not recognise is a point question, which is what every structure answered before.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Literal, get_args

#: The forms of question (see the module docstring).
QuestionForm = Literal["point", "recap", "topic", "multi-hop", "mentions"]
#: Every form, point first.
FORMS: tuple[str, ...] = get_args(QuestionForm)

_MONTHS = {name.lower(): index for index, name in enumerate(calendar.month_name) if name}
_MONTH = r"(?P<month>" + "|".join(_MONTHS) + r")"
_DAY_MONTH = re.compile(
    rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?: of)? {_MONTH},?(?: (?P<year>\d{{4}}))?\b",
    re.IGNORECASE,
)
_MONTH_DAY = re.compile(
    rf"\b{_MONTH} (?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b,?(?: (?P<year>\d{{4}})\b)?",
    re.IGNORECASE,
)
_MONTH_ALONE = re.compile(rf"\b{_MONTH}(?:,? (?P<year>\d{{4}}))?\b", re.IGNORECASE)
#: Words before a month's name that make "May" and "March" months, not verbs.
_BEFORE_MONTH = re.compile(r"\b(?:in|of|and|between|since|from|until|to|early|late|mid|last)$")
_YEAR_ALONE = re.compile(r"\b(?:in|of|during|since|from|through|until) (?P<year>(?:19|20)\d{2})\b")
_RELATIVE = re.compile(
    r"\b(?P<rel>last|this|past|previous) (?P<span>week|weekend|month|year|summer|winter|spring"
    r"|autumn|fall)\b|\b(?P<day>yesterday|today)\b",
    re.IGNORECASE,
)
#: Verbs of conversation: "what did we talk about", "what was discussed".
_TALK = re.compile(
    r"\b(?:talk(?:ed|ing)?|chat(?:ted|ting)?|discuss(?:ed|ing)?|spoke|speak(?:ing)?|"
    r"conversation|catch(?:ing)? up|caught up)\b",
    re.IGNORECASE,
)
_SAY_ABOUT = re.compile(
    r"\b(?:say|said|mention(?:ed)?|tell|told|bring up|brought up)\b.{0,20}\babout\b",
    re.IGNORECASE,
)
_HAPPENED = re.compile(
    r"\bwhat(?:'s| has| had| have)? (?:been )?happen(?:ed|ing)\b(?! to\b)"
    r"|\bwhat (?:has|have|had|was|were|is) (?:\w+ ){1,3}been up to\b"
    r"|\b(?:recap|summar(?:y|ise|ize)|overview|catch me up|fill me in)\b"
    r"|\bhow (?:did|was|were|has|have) (?:[\w']+ ){0,3}(?:day|week|weekend|month|year|summer"
    r"|winter|spring|autumn|life) (?:go|gone|been)\b",
    re.IGNORECASE,
)
_TOPIC = re.compile(
    r"\b(?:what (?:do|does|did) (?:you|we|i) (?:know|remember|recall) about"
    r"|tell me (?:\w+ )?about|everything (?:about|on)|all (?:you know )?about)\b",
    re.IGNORECASE,
)
#: Set-valued questions: "What books has ...", "Which cities ...", "both", "how many times".
_PLURAL_WH = re.compile(
    r"^\s*(?:what|which)(?: (?:kinds?|types?|sorts?) of)?(?: \w+)? (?P<noun>[a-z]{3,}s)"
    r" (?:has|have|had|does|do|did|are|were|would|could|can|is)\b",
    re.IGNORECASE,
)
_SET = re.compile(
    r"\b(?:both|in common|how many times|in what ways|what are some|all the|each of)\b"
    r"|^\s*what (?:has|have) \w+ (?:\w+ed|done|made|read|seen|bought|taken|eaten|written)\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"\b[A-Z][a-z]+\b")
_NOT_NOUNS = frozenset({"does", "has", "was", "is", "his", "this", "always", "us", "yes"})
_WORDS_NO_NAME = frozenset(
    {"What", "Which", "Who", "When", "Where", "Why", "How", "Did", "Does", "Do", "Is", "Are"}
    | {"Was", "Were", "Has", "Have", "Can", "Could", "Would", "Will", "Should", "The", "I"}
    | {month.capitalize() for month in _MONTHS}
)


@dataclass(frozen=True)
class Reading:
    """What a question asks for.

    Attributes:
        form: Its form (see :data:`QuestionForm`).
        window: The dialogue time it names, ``[start, end)``; ``None`` when it names none.
    """

    form: QuestionForm = "point"
    window: tuple[datetime, datetime] | None = None
    #: It asks how things stand now ("Where does Sam live now?", "Does Ana still swim?").
    now: bool = False


def read_question(text: str, now: datetime | None = None) -> Reading:
    """Return the form of ``text`` and the window of time it names (module docstring).

    Args:
        text: The question.
        now: The moment it is asked at, for "last week" (and for a month named without
            its year: the latest such month up to ``now``).
    """
    window = time_window(text, now)
    return Reading(_form(text, window is not None), window, window is None and asks_now(text))


#: Words asking how things stand at present, not at some time.
_NOW = re.compile(
    r"\b(?:now|currently|current|these days|nowadays|at the moment|at present|still|"
    r"any ?more|any longer|no longer|latest|most recent)\b",
    re.IGNORECASE,
)


def asks_now(text: str) -> bool:
    """Whether a question asks how things stand now: "Where does Sam live now?",
    "Does Ana still swim?", "What is Jo's current job?"."""
    return bool(_NOW.search(text))


def _form(text: str, dated: bool) -> QuestionForm:
    if _HAPPENED.search(text):
        return "recap"
    talk = _TALK.search(text)
    if talk is not None:
        rest = text[talk.end() :]
        about = re.search(r"\babout\b(.*)", rest, re.IGNORECASE)
        subject = _without_time(about.group(1)) if about else ""
        if not re.search(r"\w", subject):
            return "recap" if dated or re.match(r"^\s*what\b", text, re.IGNORECASE) else "point"
        return "mentions" if _conversation_wide(text[: talk.start()]) else "point"
    said = _SAY_ABOUT.search(text)
    if said and re.match(r"^\s*what\b", text, re.IGNORECASE):
        # "What did we say about X" spans the conversation; "What did Jon say about X"
        # asks for what one person said: a point.
        return "mentions" if _conversation_wide(text[: said.start()]) else "point"
    if _TOPIC.search(text):
        return "topic"
    if _SET.search(text) or _plural_wh(text) or len(_names(text)) >= 2:
        return "multi-hop"
    return "point"


def _conversation_wide(sayers: str) -> bool:
    """Whether the words before a verb of saying name the conversation, not one person:
    "we", "you", "I", or two people ("Ana and Ben")."""
    if re.search(r"\b(?:we|us|you|i|everyone|they)\b", sayers, re.IGNORECASE):
        return True
    return len(_names(sayers)) >= 2


def _plural_wh(text: str) -> bool:
    match = _PLURAL_WH.search(text)
    return match is not None and match.group("noun").lower() not in _NOT_NOUNS


def _names(text: str) -> set[str]:
    """Return the capitalised words of ``text`` that are likely names (not its first word)."""
    found = set()
    for match in _NAME.finditer(text):
        word = match.group(0)
        if match.start() > 0 and word not in _WORDS_NO_NAME:
            found.add(word)
    return found


def _without_time(text: str) -> str:
    """Return ``text`` without its dates and the words that introduce them."""
    text = _DAY_MONTH.sub(" ", text)
    text = _MONTH_DAY.sub(" ", text)
    text = _MONTH_ALONE.sub(" ", text)
    text = _RELATIVE.sub(" ", text)
    text = re.sub(r"\b(?:on|in|at|during|between|and|from|to|over|since|the|that|day)\b", " ", text)
    return re.sub(r"[^\w]+", " ", text, flags=re.UNICODE).strip(" ?")


def time_window(text: str, now: datetime | None = None) -> tuple[datetime, datetime] | None:
    """Return the stretch of time ``text`` names, ``[start, end)``, or ``None``.

    Several dates make one window from the earliest start to the latest end ("between
    May and August 2023": 1 May to 1 September 2023). A month or day named without a
    year takes the year named elsewhere in the text, else the latest one up to ``now``.
    A date past either end of the calendar names nothing: recall must never fail on it.
    """
    years = [int(y) for y in re.findall(r"\b((?:19|20)\d{2})\b", text)]
    default_year = years[-1] if years else None
    spans: list[tuple[datetime, datetime]] = []
    taken: list[tuple[int, int]] = []
    for pattern in (_DAY_MONTH, _MONTH_DAY):
        for match in pattern.finditer(text):
            year = int(match.group("year")) if match.group("year") else default_year
            month = _MONTHS[match.group("month").lower()]
            span = _calendar(partial(_days, int(match.group("day")), month, year, now))
            if span is not None:
                spans.append(span)
                taken.append(match.span())
    for match in _MONTH_ALONE.finditer(text):
        if any(a <= match.start() < b for a, b in taken) or not _is_month(text, match):
            continue
        year = int(match.group("year")) if match.group("year") else default_year
        month = _MONTHS[match.group("month").lower()]
        span = _calendar(partial(_month_span, month, year, now))
        if span is not None:
            spans.append(span)
    for match in _YEAR_ALONE.finditer(text):
        year = int(match.group("year"))
        if not spans:
            spans.append((datetime(year, 1, 1), datetime(year + 1, 1, 1)))
    if now is not None:
        for found in _RELATIVE.finditer(text):
            span = _calendar(partial(_relative, found, now))
            if span is not None:
                spans.append(span)
    if not spans:
        return None
    return min(s for s, _ in spans), max(e for _, e in spans)


Span = tuple[datetime, datetime]


def _calendar(span: Callable[[], Span | None]) -> Span | None:
    """Return ``span()``, or ``None`` when it falls past either end of the calendar."""
    try:
        return span()
    except (OverflowError, ValueError):
        return None


def _days(day: int, month: int, year: int | None, now: datetime | None) -> Span | None:
    start = _day(day, month, year, now)
    return None if start is None else (start, start + timedelta(days=1))


def _month_span(month: int, year: int | None, now: datetime | None) -> Span | None:
    start = _day(1, month, year, now)
    return None if start is None else (start, _next_month(start))


def _is_month(text: str, match: re.Match[str]) -> bool:
    """Whether a month's name is meant as one ("May 2023", "in May"), not "may" the verb."""
    word = match.group("month")
    if match.group("year"):
        return True
    if not word[0].isupper():
        return False
    if word.lower() not in ("may", "march"):
        return True
    return bool(_BEFORE_MONTH.search(text[: match.start()].rstrip().lower()))


def _day(day: int, month: int, year: int | None, now: datetime | None) -> datetime | None:
    if year is None:
        year = (now or datetime.now()).year
        if now is not None and (month, day) > (now.month, now.day):
            year -= 1  # a date without its year: the latest one up to now
    try:
        return datetime(year, month, day)
    except ValueError:
        return None


def _next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1)


def _relative(match: re.Match[str], now: datetime) -> tuple[datetime, datetime] | None:
    today = datetime(now.year, now.month, now.day)
    if match.group("day"):
        start = today - timedelta(days=1) if match.group("day").lower() == "yesterday" else today
        return start, start + timedelta(days=1)
    span = match.group("span").lower()
    back = match.group("rel").lower() != "this"
    if span in ("week", "weekend"):
        start = today - timedelta(days=today.weekday() + (7 if back else 0))
        return start, start + timedelta(days=7)
    if span == "month":
        first = datetime(today.year, today.month, 1)
        start = _next_month(first - timedelta(days=40)) if back else first
        return start, _next_month(start)
    if span == "year":
        year = today.year - (1 if back else 0)
        return datetime(year, 1, 1), datetime(year + 1, 1, 1)
    return today - timedelta(days=92), today + timedelta(days=1)  # a season: the last three months


__all__ = ["FORMS", "QuestionForm", "Reading", "read_question", "time_window"]
