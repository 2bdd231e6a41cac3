"""Loading long multi-session dialogues in the LoCoMo JSON format.

A file is a JSON list of samples; a sample has a ``sample_id``, a ``conversation`` (two
speakers, ``session_N`` turn lists and ``session_N_date_time`` strings such as
``"1:56 pm on 8 May, 2023"``) and ``qa`` items. Our stale-fact scenarios use the same
format with two more ``qa`` fields, ``stale`` and ``kind``.

What a memory system may see is kept apart from what only the scorer may see: a
:class:`Conversation` and the :class:`Question` texts go to ingestion and recall, the
:class:`Gold` answers, evidence and stale values go to the scorer alone.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agentmem.errors import InputError

logger = logging.getLogger(__name__)

#: Dialogue seconds between two turns of a session (LoCoMo stamps sessions, not turns).
SECONDS_PER_TURN = 5

_SESSION_KEY = re.compile(r"session_(\d+)")
_DATE_FORMATS = (
    "%I:%M %p on %d %B, %Y",
    "%I:%M %p on %d %B %Y",
    "%I:%M %p on %d %b, %Y",
    "%d %B, %Y",
    "%d %B %Y",
)


@dataclass(frozen=True)
class DialogueTurn:
    """One turn as the dataset gives it, with its dialogue time.

    Attributes:
        dia_id: The dataset's id of the turn, e.g. ``"D1:3"``.
        speaker: The speaker's name.
        text: What was said; an image turn carries its caption (see :func:`turn_text`).
        timestamp: The session's time plus :data:`SECONDS_PER_TURN` per earlier turn.
    """

    dia_id: str
    speaker: str
    text: str
    timestamp: datetime


@dataclass(frozen=True)
class Session:
    """One dialogue session: its number, start time and turns in order."""

    number: int
    started_at: datetime
    turns: tuple[DialogueTurn, ...]


@dataclass(frozen=True)
class Conversation:
    """A whole multi-session dialogue between two speakers (no questions, no answers)."""

    sample_id: str
    speakers: tuple[str, str]
    sessions: tuple[Session, ...]

    @property
    def turn_count(self) -> int:
        """How many turns the dialogue has."""
        return sum(len(s.turns) for s in self.sessions)

    @property
    def ends_at(self) -> datetime:
        """The dialogue time of the last turn: questions are asked as of this moment."""
        last = [s for s in self.sessions if s.turns]
        if not last:
            return self.sessions[-1].started_at if self.sessions else datetime(1970, 1, 1)
        return last[-1].turns[-1].timestamp


@dataclass(frozen=True)
class Question:
    """A question as the memory system receives it: an id and the text, nothing more."""

    id: str
    sample_id: str
    text: str


@dataclass(frozen=True)
class Gold:
    """What only the scorer may read about a question.

    Attributes:
        answer: The gold answer as text; ``None`` for adversarial (category 5) questions.
        evidence: The dia_ids of the turns that support the answer.
        category: LoCoMo's category: 1 multi-hop, 2 temporal, 3 open-domain,
            4 single-hop, 5 adversarial.
        kind: For the stale-fact scenarios: ``"update"``, ``"keep"`` or ``"when"``.
        stale: Values that held earlier and are outdated by the end of the dialogue.
        adversarial_answer: The misleading answer of a category 5 question.
    """

    answer: str | None
    evidence: tuple[str, ...]
    category: int
    kind: str | None = None
    stale: tuple[str, ...] = ()
    adversarial_answer: str | None = None


@dataclass(frozen=True)
class Sample:
    """A conversation with its questions and, aligned with them, the gold data."""

    conversation: Conversation
    questions: tuple[Question, ...]
    gold: tuple[Gold, ...]
    source: str = ""


def parse_dialogue_time(text: str) -> datetime:
    """Parse a LoCoMo session time such as ``"1:56 pm on 8 May, 2023"``.

    Raises:
        InputError: The text matches none of the known formats.
    """
    cleaned = " ".join(text.replace("\u202f", " ").split())
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, pattern)
        except ValueError:
            continue
    raise InputError(
        f"cannot read the session time {text!r}", hint='expected e.g. "1:56 pm on 8 May, 2023"'
    )


def turn_text(raw: dict[str, Any]) -> str:
    """Return a turn's text; an image turn says what the photo shows, from its caption."""
    text = str(raw.get("text") or "").strip()
    caption = str(raw.get("blip_caption") or "").strip()
    if caption:
        text = f"{text} [shares a photo: {caption}]".strip()
    return text


def split_evidence(values: list[Any]) -> tuple[str, ...]:
    """Return evidence dia_ids, splitting entries like ``"D8:6; D9:17"``."""
    found: list[str] = []
    for value in values:
        for part in re.split(r"[;,]", str(value)):
            part = part.strip()
            if part and part not in found:
                found.append(part)
    return tuple(found)


def _sessions(sample_id: str, conversation: dict[str, Any]) -> tuple[Session, ...]:
    numbers = sorted(
        int(match.group(1))
        for key in conversation
        if (match := _SESSION_KEY.fullmatch(key)) and isinstance(conversation[key], list)
    )
    sessions = []
    for number in numbers:
        stamp = conversation.get(f"session_{number}_date_time")
        if not stamp:
            raise InputError(f"{sample_id}: session_{number} has no session_{number}_date_time")
        started = parse_dialogue_time(str(stamp))
        turns = []
        for position, raw in enumerate(conversation[f"session_{number}"]):
            text = turn_text(raw)
            if not text:
                logger.warning("%s: skipping empty turn %s", sample_id, raw.get("dia_id"))
                continue
            turns.append(
                DialogueTurn(
                    dia_id=str(raw.get("dia_id") or f"D{number}:{position + 1}"),
                    speaker=str(raw.get("speaker") or "unknown"),
                    text=text,
                    timestamp=started + timedelta(seconds=SECONDS_PER_TURN * position),
                )
            )
        sessions.append(Session(number, started, tuple(turns)))
    return tuple(sessions)


def _sample(raw: dict[str, Any], source: str) -> Sample:
    try:
        sample_id = str(raw["sample_id"])
        conversation = raw["conversation"]
        speakers = (str(conversation["speaker_a"]), str(conversation["speaker_b"]))
    except (KeyError, TypeError) as exc:
        raise InputError(f"{source}: a sample lacks {exc}; is this LoCoMo JSON?") from exc
    questions = []
    gold = []
    for index, qa in enumerate(raw.get("qa") or []):
        category = int(qa.get("category", 0))
        answer = qa.get("answer")
        questions.append(Question(f"{sample_id}#q{index}", sample_id, str(qa["question"])))
        gold.append(
            Gold(
                answer=None if answer is None else str(answer),
                evidence=split_evidence(list(qa.get("evidence") or [])),
                category=category,
                kind=qa.get("kind"),
                stale=tuple(str(v) for v in qa.get("stale") or ()),
                adversarial_answer=qa.get("adversarial_answer"),
            )
        )
    return Sample(
        Conversation(sample_id, speakers, _sessions(sample_id, conversation)),
        tuple(questions),
        tuple(gold),
        source,
    )


def load_samples(paths: Sequence[str | Path]) -> list[Sample]:
    """Load every sample of the given LoCoMo-format files, in order.

    Raises:
        InputError: A file is unreadable, not LoCoMo JSON, or repeats a sample id.
    """
    samples: list[Sample] = []
    seen: set[str] = set()
    for path in map(Path, paths):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of samples")
        for raw in data:
            sample = _sample(raw, str(path))
            if sample.conversation.sample_id in seen:
                raise InputError(
                    f"{path}: sample id {sample.conversation.sample_id!r} appears twice",
                    hint="each conversation needs its own sample_id",
                )
            seen.add(sample.conversation.sample_id)
            samples.append(sample)
    return samples
