"""Breadth questions: recaps of a session and of a period, generated from LoCoMo's notes.

LoCoMo's point questions ask for one fact; a memory built of summaries, trees and memos
exists for the questions they do not ask: "what did we talk about that day", "what
happened in her life this summer". A LoCoMo sample carries what is needed to ask those
too, without hand labels:

* ``observation``: per session, per speaker, the facts the dialogue states, each with the
  turn (or turns) it was written from: ``{"session_1_observation": {"Caroline": [["Caroline
  attended an LGBTQ support group ...", "D1:3"], ...]}}``;
* ``session_summary``: a paragraph per session (``"session_1_summary"``).

From them, per conversation:

* **session recaps** ("What did Caroline and Melanie talk about on 8 May 2023?"), one per
  dialogue date that has observations; the evidence is every observation turn of the
  session(s) of that date, and the session summary is the reference text;
* **period recaps** ("What happened in Melanie's life between May and June 2023?"), per
  speaker, over runs of whole calendar months holding at least
  :data:`MIN_PERIOD_SESSIONS` sessions, so that their turns do not fit a context budget
  (a LoCoMo session is about 600 tokens); the evidence is that speaker's observation turns
  in those sessions.

The question says what is asked and when, nothing the scorer knows: which turns count,
the facts written from them and the summary go to the scorer alone (the dataset module
makes a :class:`~agentmem.replay.dataset.Gold` of each :class:`Recap`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentmem.errors import InputError

if TYPE_CHECKING:  # the dataset module builds questions from what this one reads
    from agentmem.replay.dataset import Conversation, Session

logger = logging.getLogger(__name__)

#: The category of a session recap in the report.
RECAP_SESSION = "recap-session"
#: The category of a period recap in the report.
RECAP_PERIOD = "recap-period"
#: Every recap category, in the order of the tables.
RECAP_CATEGORIES = (RECAP_SESSION, RECAP_PERIOD)

#: The fewest sessions a period recap spans: three LoCoMo sessions (about 1,800 tokens of
#: turns) do not fit the replay's usual 1,500-token budget.
MIN_PERIOD_SESSIONS = 3

_OBSERVATION_KEY = re.compile(r"session_(\d+)_observation")
_SUMMARY_KEY = re.compile(r"session_(\d+)_summary")


@dataclass(frozen=True)
class Observation:
    """A fact LoCoMo wrote about a speaker from a turn of the dialogue.

    Attributes:
        session: The session's number.
        speaker: Whom it is about (the key it is listed under).
        text: The fact.
        dia_ids: The turns it was written from.
    """

    session: int
    speaker: str
    text: str
    dia_ids: tuple[str, ...]


@dataclass(frozen=True)
class Recap:
    """A recap question with what only the scorer may read about it.

    Attributes:
        id: The question's id within its sample (``"recap-session-3"``).
        text: The question.
        category: :data:`RECAP_SESSION` or :data:`RECAP_PERIOD`.
        evidence: The turns whose facts a full answer recalls, in dialogue order.
        observations: Per evidence turn, the facts LoCoMo wrote from it.
        reference: The session summary (session recaps), else ``None``.
    """

    id: str
    text: str
    category: str
    evidence: tuple[str, ...]
    observations: tuple[tuple[str, ...], ...]
    reference: str | None = None


def read_observations(raw: Any, where: str, known: Mapping[str, str]) -> tuple[Observation, ...]:
    """Return a sample's ``observation`` field as facts, in session order.

    ``known`` maps each dia_id of the dialogue to its speaker; a fact naming only turns the
    dialogue lacks is left out (with a warning), since no context could ever cover it.

    Raises:
        InputError: The field is not shaped as LoCoMo writes it.
    """
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise InputError(f"{where}: observation must be a JSON object of sessions")
    found: list[Observation] = []
    for key, speakers in raw.items():
        match = _OBSERVATION_KEY.fullmatch(str(key))
        if match is None or speakers is None:
            continue
        if not isinstance(speakers, dict):
            raise InputError(f"{where}: observation {key} must be an object of speakers")
        for speaker, facts in speakers.items():
            if not isinstance(facts, list):
                raise InputError(f"{where}: observation {key} of {speaker} must be a list")
            for fact in facts:
                found += _observation(int(match.group(1)), str(speaker), fact, where, known)
    return tuple(sorted(found, key=lambda o: o.session))


def _observation(
    session: int, speaker: str, fact: Any, where: str, known: Mapping[str, str]
) -> list[Observation]:
    """Return one ``[text, dia_id(s)]`` entry as an observation (none if it names no turn).

    Raises:
        InputError: The entry is not a text and its turn ids.
    """
    if not (isinstance(fact, list) and len(fact) == 2 and isinstance(fact[0], str)):
        raise InputError(f"{where}: an observation must be [text, dia_id], not {fact!r:.60}")
    ids = fact[1] if isinstance(fact[1], list) else [fact[1]]
    if not all(isinstance(i, str) for i in ids):
        raise InputError(f"{where}: an observation's dia_ids must be text, not {fact[1]!r:.60}")
    dia_ids = tuple(
        dict.fromkeys(p.strip() for i in ids for p in re.split(r"[;,]", i) if p.strip())
    )
    present = tuple(d for d in dia_ids if d in known)
    if len(present) < len(dia_ids):
        logger.warning("%s: an observation names turns the dialogue lacks: %s", where, dia_ids)
    if not present or not fact[0].strip():
        return []
    return [Observation(session, speaker, fact[0].strip(), present)]


def read_summaries(raw: Any, where: str) -> dict[int, str]:
    """Return a sample's ``session_summary`` field by session number.

    Raises:
        InputError: The field is not an object of texts.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"{where}: session_summary must be a JSON object")
    found: dict[int, str] = {}
    for key, text in raw.items():
        match = _SUMMARY_KEY.fullmatch(str(key))
        if match is None or text is None:
            continue
        if not isinstance(text, str):
            raise InputError(f"{where}: session_summary {key} must be text")
        if text.strip():
            found[int(match.group(1))] = text.strip()
    return found


def recaps(
    conversation: Conversation,
    observations: Sequence[Observation],
    summaries: Mapping[int, str],
) -> list[Recap]:
    """Return the conversation's session recaps, then its period recaps."""
    return _session_recaps(conversation, observations, summaries) + _period_recaps(
        conversation, observations
    )


def _recap(
    key: str, text: str, category: str, chosen: Sequence[Observation], reference: str | None
) -> Recap:
    """Return a recap whose evidence is the turns the ``chosen`` facts were written from."""
    facts: dict[str, list[str]] = {}
    for observation in chosen:
        for dia_id in observation.dia_ids:
            facts.setdefault(dia_id, []).append(observation.text)
    evidence = tuple(sorted(facts, key=_turn_order))
    return Recap(key, text, category, evidence, tuple(tuple(facts[d]) for d in evidence), reference)


def _session_recaps(
    conversation: Conversation,
    observations: Sequence[Observation],
    summaries: Mapping[int, str],
) -> list[Recap]:
    a, b = conversation.speakers
    by_date: dict[str, list[Session]] = {}
    for session in conversation.sessions:
        by_date.setdefault(_day(session), []).append(session)
    found = []
    for day, sessions in by_date.items():
        numbers = {s.number for s in sessions}
        chosen = [o for o in observations if o.session in numbers]
        if not chosen:
            continue
        parts = [summaries[n] for n in sorted(numbers) if n in summaries]
        found.append(
            _recap(
                f"{RECAP_SESSION}-{min(numbers)}",
                f"What did {a} and {b} talk about on {day}?",
                RECAP_SESSION,
                chosen,
                " ".join(parts) or None,
            )
        )
    return found


def _period_recaps(conversation: Conversation, observations: Sequence[Observation]) -> list[Recap]:
    found = []
    for index, period in enumerate(periods(conversation.sessions)):
        numbers = {s.number for s in period}
        for who, speaker in enumerate(conversation.speakers, 1):
            chosen = [o for o in observations if o.session in numbers and o.speaker == speaker]
            if not chosen:
                continue
            found.append(
                _recap(
                    f"{RECAP_PERIOD}-{index + 1}-{who}",
                    f"What happened in {speaker}'s life {_span(period)}?",
                    RECAP_PERIOD,
                    chosen,
                    None,
                )
            )
    return found


def periods(sessions: Sequence[Session]) -> list[list[Session]]:
    """Group sessions into runs of whole calendar months of at least
    :data:`MIN_PERIOD_SESSIONS` sessions each (a short tail joins the last run)."""
    months: dict[tuple[int, int], list[Session]] = {}
    for session in sessions:
        months.setdefault((session.started_at.year, session.started_at.month), []).append(session)
    runs: list[list[Session]] = []
    current: list[Session] = []
    for month in sorted(months):
        current += months[month]
        if len(current) >= MIN_PERIOD_SESSIONS:
            runs.append(current)
            current = []
    if current and runs:
        runs[-1] += current
    elif current and len(current) >= MIN_PERIOD_SESSIONS:
        runs.append(current)
    return runs


def _span(period: Sequence[Session]) -> str:
    """Say which months a period covers: "in July 2023", "between May and June 2023"."""
    first, last = period[0].started_at, period[-1].started_at
    if (first.year, first.month) == (last.year, last.month):
        return f"in {first:%B %Y}"
    if first.year == last.year:
        return f"between {first:%B} and {last:%B %Y}"
    return f"between {first:%B %Y} and {last:%B %Y}"


def _day(session: Session) -> str:
    """Return a session's date as people write it: "8 May 2023"."""
    return f"{session.started_at.day} {session.started_at:%B %Y}"


def _turn_order(dia_id: str) -> tuple[int, int, str]:
    match = re.fullmatch(r"D(\d+):(\d+)", dia_id)
    return (int(match.group(1)), int(match.group(2)), "") if match else (10**9, 0, dia_id)


__all__ = [
    "MIN_PERIOD_SESSIONS",
    "RECAP_CATEGORIES",
    "RECAP_PERIOD",
    "RECAP_SESSION",
    "Observation",
    "Recap",
    "periods",
    "read_observations",
    "read_summaries",
    "recaps",
]
