"""Whether a text or a fact mentions a value: whole words, possessives split off.

Shared by the fact ledger (which turns talk about whom, which facts hold a value) and the
stale guard (which items still assert a value that no longer holds).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from agentmem.ledger.slots import Fact, normalise
from agentmem.types import MemoryItem, Turn


def holds_value(item: MemoryItem, value_key: str) -> bool:
    """Whether a fact item holds ``value_key``: as its value, inside it, or as its subject."""
    if not value_key:
        return False
    meta = item.metadata
    held = f" {meta.get('value_key') or ''} "
    return f" {value_key} " in held or meta.get("subject_key") == value_key


def asserts_value(text: str, value: str) -> bool:
    """Whether ``text`` mentions ``value`` as whole words (case-insensitive)."""
    return mentions(words_of(text), value)


def words_of(text: str) -> str:
    """Return ``text`` normalised for :func:`mentions` (normalise it once, test many).

    A possessive ``'s`` is split off its word: "Mochi's bowl" mentions Mochi.
    """
    return f" {_POSSESSIVE.sub(' s', normalise(text))} "


_POSSESSIVE = re.compile(r"'s\b")


@functools.lru_cache(maxsize=4096)
def _needle(value: str) -> str:
    key = _POSSESSIVE.sub(" s", normalise(value))
    return f" {key} " if key else ""


def words_needed(value: str) -> list[str]:
    """Return the words a text must each hold, as whole words, to :func:`mentions` ``value``.

    Empty for a value no text mentions (nothing left after normalising).
    """
    return _needle(value).split()


def mentions(words: str, value: str) -> bool:
    """Whether ``words`` (from :func:`words_of`) mention ``value`` as whole words."""
    needle = _needle(value)
    return bool(needle) and needle in words


def earlier_first(history: Sequence[Turn], turn: Turn) -> list[Turn]:
    """Return the turns said before ``turn``, latest first."""
    before = [t for t in history if (t.timestamp, t.id) < (turn.timestamp, turn.id)]
    return sorted(before, key=lambda t: (t.timestamp, t.id), reverse=True)


def about(sentence: str, turn: Turn, fact: Fact, *, around: str = "") -> bool:
    """Whether a sentence of ``turn`` talks about the fact's subject.

    About the speaker: their own words, or the other side asking or saying "you". About
    someone else: the sentence names them (by name, or by the relation in "Sam's sister"),
    or refers to someone as he or she while ``around`` (the turn and the one before it)
    names them: "How's your mum?" / "Still in her house in Whittier".
    """
    lowered = f" {normalise(sentence)} "
    if normalise(fact.subject) == normalise(fact.speaker):
        if turn.speaker == fact.speaker:
            return True
        return " you " in lowered or " your " in lowered or " you're " in lowered
    name = normalise(fact.subject).split("'s ")[-1]
    if not name:
        return False
    if f" {name} " in lowered:
        return True
    return bool(_THIRD_PERSON.search(sentence)) and f" {name} " in words_of(around)


_THIRD_PERSON = re.compile(r"\b(?:he|she|his|her|him)\b", re.IGNORECASE)


__all__ = [
    "about",
    "asserts_value",
    "earlier_first",
    "holds_value",
    "mentions",
    "words_needed",
    "words_of",
]
