"""Reading statements for the slot-free linker: sentences, clauses, and what they state.

A sentence is read once (:class:`Said`): its content words by stem (what it may share
with a change: "rent", "swim"), whether it may state what holds at all (no question, no
visit), and, lazily, its values (:mod:`agentmem.ledger.spans`). A clause states a change
when it holds change language ("now", "switched to", "went up to", "first day at") and no
hedge, plan or hypothetical ("maybe", "going to", "if", "next year") or refusal ("not
switching"). General English only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agentmem.ledger.cues import is_temporary
from agentmem.ledger.spans import Span, read_values, stem
from agentmem.text import STOPWORDS
from agentmem.types import Turn

#: Change language: the clause of a new value must hold one.
CHANGE = re.compile(
    r"\b(?:now|new|newly|switched|switching|changed|moved|went up|gone up|went down|"
    r"gone down|goes up|rose|raised|increased|promoted|promotion|upgraded|instead|"
    r"these days|nowadays|from now on|officially|just started|started|starting|"
    r"first (?:day|week|month|shift|service|night|lesson|class)|pushed|postponed|"
    r"rescheduled|became|become|settled|moved in|moved into)\b",
    re.IGNORECASE,
)

#: "now" that is no change: "right now", "for now", "now that ...", "just now".
_NOT_NOW = re.compile(r"\b(?:right|for|just|by|until|till|up to) now\b|\bnow that\b", re.I)

#: Not a statement of what holds: a hypothetical, a plan, a wish.
UNSURE = re.compile(
    r"\b(?:if|thinking (?:of|about)|considering|might|would|planning|plan to|plans to|"
    r"want to|wants to|hope to|hoping to|going to|gonna|will|wish|tempted|someday|one day|"
    r"in case|supposed to|next (?:week|month|year|summer|spring|autumn|fall|winter|term|"
    r"season|time))\b|'ll\b",
    re.IGNORECASE,
)

#: A hedge that makes a change no statement yet ("maybe I'll switch", "soon").
HEDGED = re.compile(r"\b(?:maybe|perhaps|could|should|soon|probably)\b", re.IGNORECASE)

#: A change refused or denied: "I'm not switching to Real Madrid".
REFUSED = re.compile(
    r"\b(?:not|never|no)\s+(?:\w+\s+)?(?:switch\w*|mov\w+|chang\w+|leav\w+|quit\w*)\b|"
    r"n't\s+(?:\w+\s+)?(?:switch\w*|mov\w+|chang\w+|leav\w+|quit\w*)\b",
    re.IGNORECASE,
)

#: Where a clause ends.
_CLAUSE = re.compile(
    r",(?!\d{3})|[;:()\u2014\u2013]|\s-\s"  # not the comma of "£30,000"
    r"|\s(?:and|but|so|because|while|though)\s"
)

#: Words of change, and words too common to be what two statements are about.
NOT_ASPECTS = STOPWORDS | frozenset(
    stem(w)
    for w in """now new newly switch switched changed change moved move went gone goes go
    going up down rose raised increased promoted promotion upgraded instead days nowadays
    officially just started start starting first week shift pushed postponed rescheduled
    became become settled anymore longer still always never really also even much many lot
    lots thing things stuff time times day week month year today tonight tomorrow yesterday
    morning evening night people way back one two three good great nice bad old little big
    long honestly actually probably maybe yes yeah okay ok oh well right sure fine best
    better have has had get got make made take took like love want need know think say
    said tell told see saw look feel felt guess mean sorry thanks thank wait ha haha lol
    omg god finally last next every all same other another kind sort bit""".split()
)

WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")


@dataclass
class Said:
    """One sentence of a turn, read once."""

    turn: Turn
    text: str
    position: int  # its place in the turn
    words: dict[str, str]  # content stem -> the word as said
    settled: bool  # it may state what holds: no question, no visit
    before: Said | None = None  # the sentence before it in the turn
    values: list[Span] | None = field(default=None)

    def spans(self, names: frozenset[str]) -> list[Span]:
        if self.values is None:
            self.values = read_values(self.text, names)
        return self.values


def may_end(said: Said) -> bool:
    """Whether a sentence may state an ending: no question, visit, plan, hedge or refusal."""
    text = said.text
    return said.settled and not (REFUSED.search(text) or UNSURE.search(text) or HEDGED.search(text))


def stems_of(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for said in WORD.findall(text):
        # "e-reader" is about reading too
        for word in (said, *said.split("-")) if "-" in said else (said,):
            key = stem(word)
            if len(key) > 2 and key not in NOT_ASPECTS and word.lower() not in STOPWORDS:
                found.setdefault(key, word.lower())
    return found


def clause_of(sentence: str, start: int) -> str:
    """Return the clause of ``sentence`` that holds position ``start``."""
    bounds = [0, *(m.end() for m in _CLAUSE.finditer(sentence)), len(sentence)]
    for left, right in zip(bounds, bounds[1:], strict=False):
        if left <= start < right:
            return sentence[left:right]
    return sentence


def is_settled(sentence: str) -> bool:
    """Whether a sentence may state what holds: no question, no visit ("this week")."""
    return not (sentence.rstrip("\"')”’*_ ").endswith("?") or is_temporary(sentence))


def holds(sentence: str, start: int) -> bool:
    """Whether the clause at ``start`` states what holds: no hypothetical, plan or wish
    ("if I move to Leeds", "I'll be in Lviv next week")."""
    return not UNSURE.search(clause_of(sentence, start))


def states_change(sentence: str, clause: str) -> bool:
    """Whether a clause states a change as done: change language, no hedge, plan or
    hypothetical in it ("Fine, I'll say it: X is my favourite band now" states one),
    and no question or visit in its sentence."""
    return _says_change(clause) and states(sentence, clause)


def states(sentence: str, clause: str) -> bool:
    """Whether a clause states what holds: no hedge, plan or hypothetical in it, no
    question or visit in its sentence."""
    return not (
        UNSURE.search(clause)
        or HEDGED.search(clause)
        or sentence.rstrip("\"')”’*_ ").endswith("?")
        or is_temporary(sentence)
        or REFUSED.search(clause)
    )


def _says_change(clause: str) -> bool:
    return (
        bool(CHANGE.search(clause))
        and not _NOT_NOW.search(clause)
        or bool(re.search(r"\b(?:switched|moved|went up|promoted|new)\b", clause, re.I))
    )


def plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


__all__ = [
    "CHANGE",
    "NOT_ASPECTS",
    "UNSURE",
    "WORD",
    "Said",
    "clause_of",
    "holds",
    "is_settled",
    "may_end",
    "plain",
    "states",
    "states_change",
    "stems_of",
]
