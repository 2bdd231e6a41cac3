"""The extracted fact, the slots it fills, and the protocol every extractor meets.

A :class:`Fact` is an atomic statement about a subject: who it is about (the speaker, a
named person, or a relative of the speaker), which slot it fills (where they live, their
job, a hobby, ...), the value, whether it was stated or only inferred, and whether it
starts or ends (``polarity``). Slot facts drive conflict detection (only facts about the
same subject and slot can conflict); ``generic`` facts are subject–verb–object triples
for the knowledge graph and never supersede anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agentmem.types import Turn


@dataclass(frozen=True)
class Fact:
    """One atomic statement extracted from a turn.

    Attributes:
        subject: Who it is about, for display ("Sam", "Sam's uncle", "Ana").
        attribute: The slot ("residence", "job", "hobby", ...) or, for generic triples,
            the verb.
        value: The slot's value ("Denver", "librarian").
        turn_id: The turn it came from.
        speaker: Who said it.
        stated: True when said outright; False when inferred ("my shift as a barista").
        polarity: False when the statement ends the value ("I quit chess").
        single_valued: Whether the slot holds one value at a time (a residence) rather
            than several (hobbies).
        generic: A subject–verb–object triple outside the known slots.
    """

    subject: str
    attribute: str
    value: str
    turn_id: int
    speaker: str
    stated: bool = True
    polarity: bool = True
    single_valued: bool = False
    generic: bool = False

    @property
    def subject_key(self) -> str:
        """The subject, normalised for comparison."""
        return normalise(self.subject)

    @property
    def value_key(self) -> str:
        """The value, normalised for comparison."""
        return normalise(self.value)

    @property
    def slot(self) -> tuple[str, str]:
        """(subject, attribute): facts can only conflict within one slot."""
        return (self.subject_key, self.attribute)

    def render(self) -> str:
        """Return the fact as a short sentence for memory and prompts."""
        if self.attribute == ENDED:
            return f"{self.subject}: {self.value} has ended"
        if self.attribute.startswith("favourite ") or self.attribute.split(" of ")[0] in SHAPED:
            verb = "is" if self.polarity else "is no longer"
            return f"{self.subject}'s {self.attribute} {verb} {self.value}"
        label = ATTRIBUTE_LABELS.get(self.attribute)
        if self.generic:
            return f"{self.subject} {self.attribute} {self.value}"
        if label is None:  # an open aspect, named by a model ("car", "diet")
            verb = "" if self.polarity else "no longer "
            return f"{self.subject}'s {self.attribute}: {verb}{self.value}"
        if not self.polarity:
            return f"{self.subject} no longer: {label} {self.value}"
        return f"{self.subject} {label} {self.value}"


def normalise(text: str) -> str:
    """Lower-case, drop articles and punctuation, fold spaces."""
    text = re.sub(r"[^\w\s']", " ", text.lower())
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


#: How each slot reads in a rendered fact.
ATTRIBUTE_LABELS = {
    "residence": "lives in",
    "origin": "is from",
    "job": "works as",
    "employer": "is at",
    "hobby": "is into",
    "pet": "has a pet:",
    "age": "is aged",
    "study": "studies",
    "partner": "has a partner:",
    "relative": "has a relative:",
}
SINGLE_VALUED = {"residence", "origin", "job", "employer", "age", "partner", "study"}
#: The attribute of an ending that names only its value ("Pixel passed away", "I sold the
#: van"): it ends that value in whatever aspect and for whichever subject held it.
ENDED = "*"
#: Attributes named after the shape of their value ("phone number", "time of gym").
SHAPED = frozenset({"email", "phone number", "time", "day"})


@runtime_checkable
class FactExtractor(Protocol):
    """Extracts facts from a batch of turns (one model call per batch at most)."""

    name: str

    def extract(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Return the facts of each turn, by turn id."""
        ...
