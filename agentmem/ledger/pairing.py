"""Which earlier value a new one replaces: like shapes, and something the two share.

Two values can be two states of one thing only when they have one shape (days with days,
a name with a name, a role with a role; see :mod:`agentmem.ledger.spans`) and something
says they are of one aspect: a frame's aspect ("band" in "X is my favourite band"), a
number's unit ("two cats", "a three-cat household"), two occupations, a word the values
share ("junior designer", "senior designer"), a content word both statements share
outside their values ("rent"), or a place or firm framed as where someone lives or works
("still in Leeds", "settled into his halls in Edinburgh"). A value whose shape says what
it is (an address, an email) is its own aspect. An ending names its value as an earlier
statement said it, when that says more ("Renault Logan" for "the Logan").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from agentmem.ledger.patterns import OCCUPATIONS
from agentmem.ledger.spans import STRONG, Span, stem
from agentmem.ledger.statements import NOT_ASPECTS, UNSURE, WORD, Said, clause_of, holds, stems_of
from agentmem.text import STOPWORDS


def new_role(value: Span) -> bool:
    """Whether a value is an occupation said as one's role ("being marketing manager")."""
    return value.kind == "role" and occupation(value.text)


def another_grade(new: Span, old: Span) -> bool:
    """Whether two roles are grades of one job: occupations sharing a word, not equal."""
    mine, theirs = value_stems(new.text), value_stems(old.text)
    return new_role(new) and new_role(old) and bool(mine & theirs) and mine != theirs


def relevance(value: Span, aspects: dict[str, str], frame: str) -> Callable[[Said], bool]:
    """Return a cheap test of whether an earlier sentence may hold what ``value`` replaces.

    It must share a word with the change or with the value, hold the frame's aspect or
    the number's unit, name an occupation beside a new one, or a place word beside a
    framed value; a value whose shape says what it is (an address) may be anywhere.
    """
    if value.kind in STRONG:
        return lambda old: True
    keys = set(aspects) | value_stems(value.text) | ({value.aspect} if value.aspect else set())
    jobs = value.kind == "role" and occupation(value.text)

    def relevant(old: Said) -> bool:
        if not keys.isdisjoint(old.words):
            return True
        if jobs and any(w in OCCUPATIONS for w in old.words.values()):
            return True
        return bool(frame) and bool(_FRAMED_NAME.search(old.text))

    return relevant


#: Kinds that may stand for one another: a number said with or without its currency.
_KINDS = {"money": "number", "named": "proper"}


def alike(new: Span, old: Span) -> bool:
    """Whether two values are of one shape, so that one can replace the other."""
    if _KINDS.get(new.kind, new.kind) != _KINDS.get(old.kind, old.kind):
        return False
    if new.kind in ("number", "money") or old.kind in ("number", "money"):
        return not new.aspect or not old.aspect or new.aspect == old.aspect
    if new.kind == "relation":
        return new.aspect == old.aspect
    if new.aspect and old.aspect:
        return new.aspect == old.aspect
    return True


def shared(new: Span, old: Span, aspects: dict[str, str], said: Said) -> str | None:
    """Return what two values are both of, or ``None`` when nothing says they are.

    A frame's aspect ("band"), a value's shape that says it (an address), a number's unit
    ("cats"), a job (two occupations), a word the two values share ("marketing analyst",
    "marketing manager"), or a content word both statements share in the old value's
    clause that is no word of a value ("rent").
    """
    if new.kind in STRONG:
        return new.kind
    if new.aspect and new.aspect == old.aspect:
        return "" if new.kind == "relation" else said.words.get(new.aspect, new.aspect)
    if new.kind == "relation":
        return None
    if new.kind in ("number", "money") and new.aspect and new.aspect == old.aspect:
        return new.aspect
    if new.kind == "role" and occupation(new.text) and occupation(old.text):
        return "job"
    spans = said.spans(frozenset())
    own = {k for s in spans for k in value_stems(s.text)}
    clause = stems_of(clause_of(said.text, old.start))
    common = [w for k, w in clause.items() if k in aspects and k not in own]
    if common:
        return common[0]
    if new.aspect and new.aspect in clause:
        return clause[new.aspect]
    mine, theirs = value_stems(new.text), value_stems(old.text)
    if new.kind not in ("proper", "number", "money") and mine & theirs and mine != theirs:
        return ""  # "oat milk" and "almond milk", "junior designer" and "senior designer"
    return None


def value_stems(text: str) -> set[str]:
    return {stem(w) for w in re.split(r"[\s\-]+", text) if w}


def occupation(text: str) -> bool:
    words = text.lower().replace("-", " ").split()
    return bool(words) and words[-1] in OCCUPATIONS


#: Prepositions that say where a value is: a stay "in" a place, a post "at" a firm.
_FRAMES = {"in": "in", "into": "in", "to": "in", "at": "at"}

_FRAMED_NAME = re.compile(r"\b(?i:in|into|to|at)\s+(?:the\s+)?[A-Z]")

_BEFORE = re.compile(r"\b(in|into|to|at)\s+(?:the\s+)?$", re.IGNORECASE)


def frame_of(sentence: str, span: Span) -> str:
    """Return where a proper value is framed ("in", "at"), or "" for none."""
    if span.kind != "proper":
        return ""
    found = _BEFORE.search(sentence[max(0, span.start - 12) : span.start])
    return _FRAMES[found.group(1).lower()] if found else ""


#: Words that make a place or a firm where someone lives, works or studies ("living in",
#: "my flat in", "still at", "managers at", "first week at"), not where something happened
#: ("lost in", "parked at", "a hospital in").
LASTING_HEADS = frozenset(
    stem(w)
    for w in """live lives living lived home house flat apartment place based settled still
    moved move halls dorm room neighbourhood neighborhood years work works working job
    position role post employee staff start starts started joined intern internship school
    college university uni year study studying student class office boss first day week
    new keys""".split()
)


def _frame_head(sentence: str, span: Span) -> str | None:
    """Return the word that frames a value as where someone stays or works, if one does.

    One of the two content words before the preposition must say so: "still in Leeds",
    "alone in her house in Whittier", "product managers at Alibaba".
    """
    before = [
        w.lower()
        for w in WORD.findall(sentence[: span.start])
        if w.lower() not in STOPWORDS or w.lower() in ("still",)
    ]
    for position, word in enumerate(reversed(before[-3:])):
        if word == "still" and position:
            continue  # "still in Leeds", but not "still get lost in Alfama"
        if stem(word) in LASTING_HEADS or word in OCCUPATIONS or word.rstrip("s") in OCCUPATIONS:
            return word
    return None


def framed_alike(new_text: str, new: Span, old_text: str, old: Span) -> str | None:
    """Return the aspect of two values framed alike as where one stays or works, if so."""
    head = _frame_head(new_text, new)
    if head is None or _frame_head(old_text, old) is None:
        return None
    return f"{head} {frame_of(new_text, new)}"


_OPENING_PRONOUN = re.compile(r"^\W*(?:they|it|he|she|that|this)\b", re.IGNORECASE)


def values_of(old: Said, new: Span, names: frozenset[str]) -> list[tuple[Span, Said]]:
    """Return the values an earlier sentence says, with the sentence each is in.

    A sentence that names its value only with a pronoun ("They've been my favourite band
    since I was fourteen") says the value of the sentence before it, when it has the
    aspect of the new one.
    """
    found = [(span, old) for span in old.spans(names)]
    if (
        old.before is not None
        and _OPENING_PRONOUN.match(old.text)
        and new.aspect
        and new.aspect in old.words
        and not any(alike(new, span) for span, _ in found)
    ):
        before = old.before
        found += [
            (Span(s.text, s.kind, s.start, s.end, new.aspect), before) for s in before.spans(names)
        ]
    return found


def fuller(old: Said, head: str, wanted: Sequence[str], names: frozenset[str]) -> str | None:
    """Return the value in ``old`` that holds ``head`` and says more, if any."""
    for span in old.spans(names):
        words = {stem(w) for w in span.text.split()}
        if all(w in words for w in wanted) and len(span.text.split()) > len(head.split()):
            return span.text if holds(old.text, span.start) else None
    if UNSURE.search(old.text) or not (head.islower() or head.isupper()):
        return None  # a name says more only as a longer name ("Renault Logan")
    tokens = old.text.split()
    bare = [t.strip(".,!?;:\"'()") for t in tokens]
    for position, word in enumerate(bare):
        if stem(word) != wanted[-1] or len(wanted) > 1:
            continue
        left = bare[position - 1] if position else ""
        right = bare[position + 1] if position + 1 < len(bare) else ""
        if right and _modifies(right) and tokens[position][-1:].isalnum():
            return f"{word} {right}"
        if left and _modifies(left) and tokens[position - 1][-1:].isalnum():
            return f"{left} {word}"
    return None


#: Words that never join a value as its modifier or head: verbs of having and doing,
#: fillers, and words of time.
_NOT_MODIFIERS = NOT_ASPECTS | frozenset(
    """drink drinks drank eat eats ate play plays played take takes use uses read reads
    watch watches buy bought sell sold drive drives ride rides left quit stopped started do
    does did doing done gone over again yet ago tbh lol haha anyway though too either""".split()
)


def _modifies(word: str) -> bool:
    return (
        word.isalpha()
        and word.islower()
        and len(word) > 2
        and word not in _NOT_MODIFIERS
        and stem(word) not in _NOT_MODIFIERS
        and not word.endswith(("ed", "ing", "ly"))
    )


__all__ = [
    "LASTING_HEADS",
    "alike",
    "another_grade",
    "frame_of",
    "framed_alike",
    "fuller",
    "new_role",
    "occupation",
    "relevance",
    "shared",
    "value_stems",
    "values_of",
]
