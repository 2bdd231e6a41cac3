"""Whom a sentence is about, for the slot-free linker: the speaker, a relative, a name.

Two statements can only be about one value when they are about one person. A sentence is
about the first person it refers to: "I"/"my"/"we" is the speaker, "my sister (Claire)"
the relative (Claire once named), "Chiara's first day" or "Camila moved ..." the name,
"she" the person named just before; a sentence that refers to no one is about whom the
one before it was about, and the first sentence of a reply about whom the other side
just asked ("How's your mum?" / "Still in her house in Whittier"). A pronoun no one can
resolve makes the sentence about no one the linker may compare (:data:`UNKNOWN`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass

from agentmem.ledger.patterns import RELATIONS
from agentmem.ledger.statements import WORD, Said
from agentmem.text import split_sentences
from agentmem.types import Turn

RELATION = re.compile(
    rf"\b(?i:my|our)\s+(?P<rel>(?i:{RELATIONS}))\b(?:,?\s+(?P<name>[A-Z][\w'\-]+))?"
)

_SELF = re.compile(
    r"\b(?:(?i:i|i'm|i've|i'd|im)|we|We|we're|We're|we've|We've|my|My|our|Our|me|us)\b"
)

_PRONOUN = re.compile(r"\b(?:he|she|his|her|him|He|She|His|Her)\b")

#: One person under several words: "mum" and "mom" and "mother".
SAME_RELATION = {
    "mum": "mother",
    "mom": "mother",
    "dad": "father",
    "grandma": "grandmother",
    "grandpa": "grandfather",
    "coworker": "colleague",
    "co-worker": "colleague",
    "neighbor": "neighbour",
}

#: The speaker, as a subject key; and someone a pronoun names that no one can tell.
SELF = "\u0000self"

UNKNOWN = "\u0000unknown"


@dataclass(frozen=True)
class Vocabulary:
    """The names of a dialogue (lower-cased): capitalised words, relatives' names, and
    who "he" or "she" may be."""

    names: frozenset[str]
    people: frozenset[str]
    figures: frozenset[str]


class Subjects:
    """Whom each sentence is about, decided once per search with the names known then.

    A sentence that names no one is about whom the one before it was about; the first
    one, about whom the other side just asked ("How's Oliver?" / "Still in Leeds").
    """

    def __init__(self, words: Vocabulary, turns: Sequence[Turn]) -> None:
        self.words = words
        self._before = {t.id: turns[n - 1] if n else None for n, t in enumerate(turns)}
        self._subjects: dict[int, list[str]] = {}

    @property
    def names(self) -> frozenset[str]:
        return self.words.names

    def subject(self, said: Said) -> str:
        """Return whom ``said`` is about: SELF, UNKNOWN, a relation or a name."""
        found = self._subjects.get(said.turn.id)
        if found is None:
            found = self._subjects[said.turn.id] = self._read(said.turn)
        return found[said.position] if said.position < len(found) else UNKNOWN

    def _read(self, turn: Turn) -> list[str]:
        words = self.words
        before = self._before.get(turn.id)
        person, subject = None, SELF
        if before is not None and before.session_id == turn.session_id:
            person = _last_person(before.text, words.figures)
            if before.speaker != turn.speaker and "?" in before.text:
                subject = _asked_about(before.text, words.figures) or SELF
        subjects = []
        for text in split_sentences(turn.text):
            found = _reference(text, words.people, person, words.names, words.figures)
            if found is not None:
                subject = found
            if subject not in (SELF, UNKNOWN):
                person = subject
            subjects.append(subject)
            person = _last_person(text, words.figures) or person
        return subjects


_PLACED = re.compile(r"\b(?:in|at|to|from|into|near|around)\s+(?:the\s+)?([A-Z][\w'\-]+)")


def names_of(text: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Return a text's capitalised words inside sentences, those after a place word, and
    the names it gives relatives ("my sister Claire"), lower-cased."""
    names = frozenset(
        word.lower()
        for sentence in split_sentences(text)
        for word in WORD.findall(sentence)[1:]
        if word[:1].isupper() and word not in ("I", "I'm", "I've", "I'd", "I'll")
    )
    placed = frozenset(m.group(1).lower() for m in _PLACED.finditer(text))
    related = frozenset(m.group("name").lower() for m in RELATION.finditer(text) if m.group("name"))
    return names, placed, related


def display(said: Said, subject: str) -> str:
    """Return whom a sentence is about, as a fact's subject: "Sam", "Sam's sister", "Lily"."""
    if subject == SELF:
        return said.turn.speaker
    if subject in _RELATION_WORDS:
        return f"{said.turn.speaker}'s {subject}"
    return subject[:1].upper() + subject[1:]


_RELATION_WORDS = frozenset(SAME_RELATION.get(r, r) for r in RELATIONS.split("|")) | frozenset(
    SAME_RELATION.values()
)

_OPENING_NAME = re.compile(r"^\W*([A-Z][\w\-]+)(?:'s|\u2019s)?\s+(?!and\b)[a-z]")

_IS_MY = re.compile(
    r"^\W*[A-Z][\w\-]+(?:\s+[A-Z][\w\-]+)*\s+(?:is|are|was|were|has been|have been|'s|'re)\s+"
    r"(?:now\s+|officially\s+|still\s+)?(?:my|our)\b"
)

_POSSESSOR = re.compile(r"\b([A-Z][\w\-]+)(?:'s|\u2019s)\s+(?:new\s+|first\s+|old\s+)*[a-z]")


def _reference(
    text: str,
    people: frozenset[str],
    person: str | None,
    names: frozenset[str] = frozenset(),
    figures: frozenset[str] = frozenset(),
) -> str | None:
    """Return whom a sentence is about by its first reference, or ``None`` if it names none.

    "My sister Claire ..." is Claire, "my mum ..." the speaker's mother, "I ..." the speaker,
    "she ..." the person named just before, a known name that person.
    """
    # (position, rank, who): at one position "my sister" outranks "my".
    found: list[tuple[int, int, str]] = []
    for match in RELATION.finditer(text):
        name = match.group("name")
        if name and name.lower() in people:
            found.append((match.start(), 0, name.lower()))
        else:
            rel = match.group("rel").lower()
            found.append((match.start(), 0, SAME_RELATION.get(rel, rel)))
    found += [(m.start(), 1, SELF) for m in _SELF.finditer(text)]
    for match in _POSSESSOR.finditer(text):
        if match.group(1).lower() in figures:
            found.append((match.start(), 0, match.group(1).lower()))  # "Chiara's first day"
    opening = _OPENING_NAME.match(text)
    if opening and opening.group(1).lower() in names and not _IS_MY.match(text):
        # "Camila moved to Copenhagen", "Biscuit lives with Mum and Dad": the sentence is
        # about the name it opens with ("Boogarins are my favourite band" is not).
        found.append((opening.start(1), 0, opening.group(1).lower()))
    for match in WORD.finditer(text):
        word = match.group(0).removesuffix("'s").removesuffix("\u2019s")
        if word[:1].isupper() and word.lower() in people:
            found.append((match.start(), 0, word.lower()))
        elif word[:1].isupper() and word.lower() in SAME_RELATION and match.start() == 0:
            found.append((match.start(), 0, SAME_RELATION[word.lower()]))
    found += [(m.start(), 0, person or UNKNOWN) for m in _PRONOUN.finditer(text)]
    return min(found)[2] if found else None


_ASKED_RELATION = re.compile(rf"\b(?i:your)\s+(?P<rel>(?i:{RELATIONS}))\b")

_YOU = re.compile(r"\b(?i:you|your|you're|you've)\b")


def _asked_about(text: str, people: frozenset[str]) -> str | None:
    """Return whom the other side's last question asks about: "How's your mum?" is the
    answerer's mother, "How's Oliver?" Oliver, "How are you?" the answerer."""
    question = next((q for q in reversed(split_sentences(text)) if "?" in q), "")
    found: list[tuple[int, str]] = []
    for match in _ASKED_RELATION.finditer(question):
        rel = match.group("rel").lower()
        found.append((match.start(), SAME_RELATION.get(rel, rel)))
    for match in WORD.finditer(question):
        word = match.group(0).removesuffix("'s")
        if word[:1].isupper() and word.lower() in people:
            found.append((match.start(), word.lower()))
    if found:
        return min(found)[1]
    return SELF if _YOU.search(question) else None


def _last_person(text: str, people: frozenset[str]) -> str | None:
    """Return the last person a text names (by name or as "my sister"), if any."""
    last: tuple[int, str] | None = None
    for match in RELATION.finditer(text):
        name = match.group("name")
        rel = match.group("rel").lower()
        key = name.lower() if name and name.lower() in people else SAME_RELATION.get(rel, rel)
        last = max(last or (-1, ""), (match.start(), key))
    for match in WORD.finditer(text):
        word = match.group(0).removesuffix("'s")
        if word[:1].isupper() and word.lower() in people:
            last = max(last or (-1, ""), (match.start(), word.lower()))
    return last[1] if last else None


def vocabulary(
    turns: Sequence[Turn],
    persons: Iterable[str],
    cache: MutableMapping[tuple[int, str], tuple[frozenset[str], ...]],
    capacity: int,
) -> Vocabulary:
    """Return the names the dialogue capitalises inside sentences, its people, and who
    "he" or "she" may be.

    People are the names given to relatives ("my sister Claire"). "He" or "she" may also
    be any name never said after "in", "at", "to" or "from" (where a place is): "How is
    Oliver?" makes Oliver someone "he" can be, "two years in Lisbon" keeps Lisbon a
    place. The speakers are no third party. All lower-cased; each turn is read once
    (``cache``, by turn id and text, up to ``capacity`` turns).
    """
    names: set[str] = set()
    placed: set[str] = set()
    people = {p.lower() for p in persons}
    for turn in turns:
        key = (turn.id, turn.text)
        read = cache.get(key)
        if read is None:
            read = names_of(turn.text)
            if len(cache) >= capacity:
                cache.clear()
            cache[key] = read
        names |= read[0]
        placed |= read[1]
        people |= read[2]
    speakers = {t.speaker.lower() for t in turns}
    return Vocabulary(
        frozenset(names), frozenset(people - speakers), frozenset(names - placed - speakers)
    )


__all__ = ["SELF", "UNKNOWN", "Subjects", "Vocabulary", "display", "names_of", "vocabulary"]
