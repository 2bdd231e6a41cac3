"""Loading long multi-session dialogues in the LoCoMo JSON format.

A file is a JSON list of samples; a sample has a ``sample_id``, a ``conversation`` (two
speakers, ``session_N`` turn lists and ``session_N_date_time`` strings such as
``"1:56 pm on 8 May, 2023"``) and ``qa`` items. Our stale-fact scenarios use the same
format with two more ``qa`` fields, ``stale`` and ``kind``, and may annotate which turns
assert the old value (``stale_evidence``), which state the change (``change_evidence``)
and, on ``keep`` questions, which turns could be mistaken for a change
(``distractor_evidence``): lists of dia_ids, like ``evidence``.

What a memory system may see is kept apart from what only the scorer may see: a
:class:`Conversation` and the :class:`Question` texts go to ingestion and recall, the
:class:`Gold` answers, evidence and stale values go to the scorer alone.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from agentmem.errors import InputError
from agentmem.inputs import check_plain, stored_moment
from agentmem.replay import breadth

logger = logging.getLogger(__name__)

#: Dialogue seconds between two turns of a session (LoCoMo stamps sessions, not turns).
SECONDS_PER_TURN = 5

#: Which half of a file's samples to keep: those at an even or an odd 0-based index.
Split = Literal["even", "odd"]

#: The accepted values of :data:`Split`.
SPLITS: tuple[str, ...] = get_args(Split)

#: What an image turn's caption is introduced by in its text (see :func:`turn_text`).
PHOTO_NOTE = "shares a photo:"

#: The ``qa`` fields that annotate turns for the stale-fact scorer, each a list of dia_ids.
ANNOTATIONS = ("stale_evidence", "change_evidence", "distractor_evidence")

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
        kind: For the stale-fact scenarios: ``"update"``, ``"indirect"``,
            ``"negation"``, ``"third-party"``, ``"keep"`` or ``"when"``.
        stale: Values that held earlier and are outdated by the end of the dialogue.
        adversarial_answer: The misleading answer of a category 5 question.
        evidence_texts: The texts of the evidence turns, in the order of ``evidence``
            (empty for a turn the dialogue lacks): an aggregate that quotes one whole
            covers it, and a stale value an item mentions only where it quotes them is the
            evidence, not a leak.
        stale_evidence: The dia_ids of the turns that assert an old value as then true
            about the asked subject and aspect; ``None`` when the file does not annotate
            them (an empty tuple: annotated, and no turn does).
        change_evidence: The dia_ids of the turns that state or imply the change; ``None``
            when not annotated.
        distractor_evidence: For a ``keep`` question, the dia_ids of the turns that could
            be mistaken for a change of its value; ``None`` when not annotated.
        subject_turns: The dia_ids of every turn spoken by the speakers of the
            ``stale_evidence`` turns: the question's subject without parsing names (a fact
            derived from one of these turns is taken to be about the subject). Empty
            without ``stale_evidence``.
        turn_texts: The text of every turn of the dialogue by dia_id, shared by its
            questions (empty without ``stale_evidence``): what an aggregate quotes of a
            turn that asserts no old value is that turn's, not a stale claim.
        recap: For a breadth question (:mod:`agentmem.replay.breadth`), its category
            (``"recap-session"``, ``"recap-period"``); ``None`` for a point question.
        observations: For a recap, per evidence turn, the facts LoCoMo wrote from it: an
            aggregate covers the turn by saying what one of them says.
        reference: For a session recap, LoCoMo's summary of the session.
        names: The speakers' names as lower-case words: they say whom a fact is about,
            not which fact, so coverage does not count them.
    """

    answer: str | None
    evidence: tuple[str, ...]
    category: int
    kind: str | None = None
    stale: tuple[str, ...] = ()
    adversarial_answer: str | None = None
    evidence_texts: tuple[str, ...] = ()
    stale_evidence: tuple[str, ...] | None = None
    change_evidence: tuple[str, ...] | None = None
    distractor_evidence: tuple[str, ...] | None = None
    subject_turns: frozenset[str] = field(default=frozenset(), repr=False)
    turn_texts: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    recap: str | None = None
    observations: tuple[tuple[str, ...], ...] = field(default=(), repr=False)
    reference: str | None = field(default=None, repr=False)
    names: frozenset[str] = field(default=frozenset(), repr=False)


@dataclass(frozen=True)
class Sample:
    """A conversation with its questions and, aligned with them, the gold data.

    Attributes:
        conversation: The dialogue.
        questions: The file's own (point) questions.
        gold: Their gold data, aligned with ``questions``.
        source: The file it came from.
        recaps: The breadth questions generated from the file's ``observation`` and
            ``session_summary`` (:mod:`agentmem.replay.breadth`); asked with ``breadth``.
        recap_gold: Their gold data, aligned with ``recaps``.
    """

    conversation: Conversation
    questions: tuple[Question, ...]
    gold: tuple[Gold, ...]
    source: str = ""
    recaps: tuple[Question, ...] = ()
    recap_gold: tuple[Gold, ...] = ()


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
    """Return a turn's text; an image turn says what the photo shows, from its caption.

    Raises:
        InputError: The text or the caption is not a string.
    """
    text = _optional_text(raw.get("text"), "a turn's text").strip()
    caption = _optional_text(raw.get("blip_caption"), "a turn's blip_caption").strip()
    if caption:
        text = f"{text} [{PHOTO_NOTE} {caption}]".strip()
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


def _optional_text(value: Any, what: str) -> str:
    """Return a JSON scalar as text (``""`` for null); a list or an object is refused."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # "\ud800" escapes decode to lone surrogates
            raise InputError(f"{what} is not valid Unicode text: {exc.reason}") from exc
        return value
    if isinstance(value, int | float):  # bool included: LoCoMo has numeric answers
        return str(value)
    raise InputError(f"{what} must be text, not a JSON {_json_type(value)}")


def _listed(value: Any, what: str) -> list[Any]:
    """Return a JSON list (a lone string counts as a list of one; null as empty)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise InputError(f"{what} must be a list, not a JSON {_json_type(value)}")


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def _sessions(sample_id: str, conversation: dict[str, Any]) -> tuple[Session, ...]:
    """Return the sessions in number order.

    Raises:
        InputError: A session repeats a number, lacks its time, or holds a malformed turn.
    """
    keys: dict[int, str] = {}
    for key, value in conversation.items():
        match = _SESSION_KEY.fullmatch(key)
        if match is None or value is None:
            continue
        if not isinstance(value, list):  # skipping it would silently lose a session
            raise InputError(f"{sample_id}: {key} is a JSON {_json_type(value)}, not a list")
        number = int(match.group(1))
        if number in keys:  # "session_1" and "session_01": one would silently be lost
            raise InputError(f"{sample_id}: {keys[number]} and {key} are the same session")
        keys[number] = key
    sessions = []
    for number in sorted(keys):
        key = keys[number]
        stamp = conversation.get(f"{key}_date_time")
        if not stamp:
            raise InputError(f"{sample_id}: {key} has no {key}_date_time")
        try:
            started = parse_dialogue_time(_optional_text(stamp, "it"))
            started = stored_moment(started, "the session time")
        except InputError as exc:
            raise InputError(f"{sample_id}: {key}_date_time: {exc.args[0]}", hint=exc.hint) from exc
        turns = []
        for position, raw in enumerate(conversation[key]):
            where = f"{sample_id}: turn {position + 1} of {key}"
            if not isinstance(raw, dict):
                raise InputError(f"{where} is a JSON {_json_type(raw)}, not an object")
            try:
                text = turn_text(raw)
                check_plain(text, "its text")
                speaker = _optional_text(raw.get("speaker"), "speaker") or "unknown"
                check_plain(speaker, "its speaker")
            except InputError as exc:
                raise InputError(f"{where}: {exc.args[0]}", hint=exc.hint) from exc
            dia_id = _optional_text(raw.get("dia_id"), f"{where}: dia_id")
            if not text:
                logger.warning("%s: skipping empty turn %s", sample_id, dia_id or position + 1)
                continue
            try:
                # Memory stores it with this time: refused here, the file is refused whole.
                timestamp = stored_moment(
                    started + timedelta(seconds=SECONDS_PER_TURN * position), "its time"
                )
            except OverflowError as exc:
                raise InputError(f"{where} falls after the year 9999") from exc
            except InputError as exc:
                raise InputError(f"{where}: {exc.args[0]}") from exc
            turns.append(
                DialogueTurn(
                    dia_id=dia_id or f"D{number}:{position + 1}",
                    speaker=speaker,
                    text=text,
                    timestamp=timestamp,
                )
            )
        sessions.append(Session(number, started, tuple(turns)))
    return tuple(sessions)


def _sample(raw: Any, source: str) -> Sample:
    """Return one sample of a file.

    Raises:
        InputError: The sample is not LoCoMo-shaped (a field is missing or of a wrong type).
    """
    if not isinstance(raw, dict):
        raise InputError(
            f"{source}: a sample is a JSON {_json_type(raw)}, not an object; is this LoCoMo JSON?"
        )
    conversation = raw.get("conversation")
    missing = [k for k in ("sample_id", "conversation") if raw.get(k) is None]
    if isinstance(conversation, dict):
        missing += [k for k in ("speaker_a", "speaker_b") if conversation.get(k) is None]
    elif not missing:
        missing = ["a conversation object"]
    if missing or not isinstance(conversation, dict):
        raise InputError(f"{source}: a sample lacks {', '.join(missing)}; is this LoCoMo JSON?")
    sample_id = _optional_text(raw["sample_id"], f"{source}: sample_id")
    check_plain(sample_id, f"{source}: sample_id")  # the replay's user id
    speakers = (
        _optional_text(conversation["speaker_a"], f"{sample_id}: speaker_a"),
        _optional_text(conversation["speaker_b"], f"{sample_id}: speaker_b"),
    )
    questions = []
    gold = []
    for index, qa in enumerate(_listed(raw.get("qa"), f"{sample_id}: qa")):
        where = f"{sample_id}: question {index}"
        if not isinstance(qa, dict):
            raise InputError(f"{where} is a JSON {_json_type(qa)}, not an object")
        if not isinstance(qa.get("question"), str):
            raise InputError(f"{where} has no question text")
        questions.append(Question(f"{sample_id}#q{index}", sample_id, qa["question"]))
        gold.append(_gold(qa, where))
    sessions = _sessions(sample_id, conversation)
    said = {turn.dia_id: turn for session in sessions for turn in session.turns}
    texts = {dia_id: turn.text for dia_id, turn in said.items()}
    gold = [_with_turns(g, said, texts, f"{sample_id}: question {i}") for i, g in enumerate(gold)]
    conversation = Conversation(sample_id, speakers, sessions)
    recaps = _recaps(raw, conversation, texts)
    return Sample(
        conversation,
        tuple(questions),
        tuple(gold),
        source,
        tuple(q for q, _ in recaps),
        tuple(g for _, g in recaps),
    )


def _recaps(
    raw: dict[str, Any], conversation: Conversation, texts: Mapping[str, str]
) -> list[tuple[Question, Gold]]:
    """Return the sample's breadth questions with their gold data (none without notes).

    Raises:
        InputError: ``observation`` or ``session_summary`` is malformed.
    """
    sample_id = conversation.sample_id
    observations = breadth.read_observations(raw.get("observation"), sample_id, texts)
    summaries = breadth.read_summaries(raw.get("session_summary"), sample_id)
    names = frozenset(w.lower() for name in conversation.speakers for w in re.findall(r"\w+", name))
    return [
        (
            Question(f"{sample_id}#{recap.id}", sample_id, recap.text),
            Gold(
                answer=None,
                evidence=recap.evidence,
                category=0,
                evidence_texts=tuple(texts.get(d, "") for d in recap.evidence),
                recap=recap.category,
                observations=recap.observations,
                reference=recap.reference,
                names=names,
            ),
        )
        for recap in breadth.recaps(conversation, observations, summaries)
    ]


def _gold(qa: dict[str, Any], where: str) -> Gold:
    """Return a question's gold data as the file gives it (no turn texts yet).

    Raises:
        InputError: A field has the wrong JSON type.
    """
    category = qa.get("category", 0)
    if isinstance(category, bool) or not isinstance(category, int):
        raise InputError(f"{where}: category must be an integer, not {category!r:.40}")
    answer = qa.get("answer")
    adversarial = qa.get("adversarial_answer")
    kind = qa.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise InputError(f"{where}: kind must be text, not a JSON {_json_type(kind)}")
    stale_evidence, change_evidence, distractor_evidence = (
        _dia_ids(qa, name, where) for name in ANNOTATIONS
    )
    return Gold(
        answer=None if answer is None else _optional_text(answer, f"{where}: answer"),
        evidence=_dia_ids(qa, "evidence", where) or (),
        category=category,
        kind=kind,
        stale=tuple(
            _optional_text(v, f"{where}: stale")
            for v in _listed(qa.get("stale"), f"{where}: stale")
        ),
        adversarial_answer=None
        if adversarial is None
        else _optional_text(adversarial, f"{where}: adversarial_answer"),
        stale_evidence=stale_evidence,
        change_evidence=change_evidence,
        distractor_evidence=distractor_evidence,
    )


def _dia_ids(qa: dict[str, Any], name: str, where: str) -> tuple[str, ...] | None:
    """Return the dia_ids a ``qa`` field lists; ``None`` when the field is absent or null.

    Raises:
        InputError: The field is an object, or lists an object or a list.
    """
    if qa.get(name) is None:
        return None
    what = f"{where}: {name}"
    return split_evidence([_optional_text(e, what) for e in _listed(qa[name], what)])


def _with_turns(
    gold: Gold, said: Mapping[str, DialogueTurn], texts: Mapping[str, str], where: str
) -> Gold:
    """Return ``gold`` with the texts of its evidence and the turns of its subject.

    ``said`` maps each dia_id of the dialogue to its turn, ``texts`` to its text.

    Raises:
        InputError: An annotation names a dia_id that is no turn of the dialogue: the
            scorer would silently lose what it annotates.
    """
    for name in ANNOTATIONS:
        unknown = [d for d in getattr(gold, name) or () if d not in said]
        if unknown:
            raise InputError(
                f"{where}: {name} names {', '.join(unknown)}, which the dialogue does not have",
                hint="list the dia_ids of non-empty turns",
            )
    speakers = {said[d].speaker for d in gold.stale_evidence or ()}
    return replace(
        gold,
        evidence_texts=tuple(said[e].text if e in said else "" for e in gold.evidence),
        subject_turns=frozenset(d for d, turn in said.items() if turn.speaker in speakers),
        turn_texts=texts if gold.stale_evidence is not None else {},
    )


def in_split(index: int, split: Split | None) -> bool:
    """Whether the sample at 0-based ``index`` of its file belongs to ``split``.

    Raises:
        InputError: ``split`` is neither ``"even"``, ``"odd"`` nor ``None``.
    """
    if split is None:
        return True
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}", hint="use 'even' or 'odd'")
    return index % 2 == (0 if split == "even" else 1)


def load_samples(paths: Sequence[str | Path], *, split: Split | None = None) -> list[Sample]:
    """Load the samples of the given LoCoMo-format files, in order.

    Args:
        paths: LoCoMo-format JSON files.
        split: Keep only the samples at an even (``"even"``) or odd (``"odd"``) 0-based
            index within their file; ``None`` keeps them all. The two halves are disjoint
            and fixed by the file's order: develop on one, report the other as unseen.
            Every sample is still read and checked.

    Raises:
        InputError: A file is unreadable, not UTF-8 JSON, not LoCoMo-shaped (a field is
            missing or of a wrong type), or repeats a sample id; ``split`` is unknown.
    """
    in_split(0, split)  # an unknown split fails before any file is read
    samples: list[Sample] = []
    seen: set[str] = set()
    for path in map(Path, paths):
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except ValueError as exc:  # a path with a NUL character
            raise InputError(f"cannot read {str(path)!r}: {exc}") from exc
        try:
            # utf-8-sig: a byte order mark, as some editors write, is not an error.
            data = json.loads(content.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path} is not UTF-8 text: invalid byte at offset {exc.start}",
                hint="LoCoMo files are UTF-8 JSON",
            ) from exc
        except ValueError as exc:  # JSONDecodeError, or a number of over 4,300 digits
            raise InputError(f"{path} is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise InputError(f"{path} is nested too deeply to be LoCoMo JSON") from exc
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of samples")
        for index, raw in enumerate(data):
            try:
                sample = _sample(raw, str(path))
            except InputError as exc:  # say which file, when a sample's id is all it names
                message = str(exc.args[0])
                if not message.startswith(str(path)):
                    message = f"{path}: {message}"
                raise InputError(message, hint=exc.hint) from exc
            if sample.conversation.sample_id in seen:
                raise InputError(
                    f"{path}: sample id {sample.conversation.sample_id!r} appears twice",
                    hint="each conversation needs its own sample_id",
                )
            seen.add(sample.conversation.sample_id)
            if in_split(index, split):
                samples.append(sample)
    return samples
