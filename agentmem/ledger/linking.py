"""Slot-free change detection: a change linked to the earlier statements it outdates.

The slot patterns notice a change only when both the old and the new statement fill one
of their slots. Most changes people talk about are outside them ("my rent went up to
950", "swimming is on Wednesdays now", "I switched to an e-reader") or end something
said only in passing. Like Keep Me Updated (Bae et al. 2022) and mem0's update step, the
:class:`Linker` compares a statement that says something changed or ended with the
earlier statements about the same subject and the same thing, and names what they said
that no longer holds:

1. **a trigger**: a sentence with change language ("now", "new", "switched to", "went up
   to", "promoted", "first day") or an ending ("no longer", "not ... any more", "gave
   up", "sold"), that is no question, no hypothetical or plan ("thinking of moving",
   "next year"), no visit ("this week") and no refusal to change ("not switching");
2. **the subject**: the speaker, a relative ("my sister"), a named person, or "she" for
   the person just named (:mod:`agentmem.ledger.subjects`); earlier statements must be
   about the same one, and said by the same speaker, so someone else's change never
   touches a value;
3. **the candidates**: the subject's earlier sentences, latest first, that share a
   content word with the change (the aspect: "rent", "swim", "band"), or, for values
   whose shape says what they are (an address, an email), any earlier one;
4. **the values**: what the two statements say of like shape (:mod:`agentmem.ledger.spans`)
   and do not share: "900" and "950", "Mondays and Fridays" and "Wednesdays", "paper
   books" and "e-reader". An ending names its value in the earlier statement as that one
   said it: "sold the Logan" ends "Renault Logan", "no more MBA" ends "MBA class".

What comes out is a :class:`Link` per outdated value; the fact ledger records each as an
old fact (inferred, at the earlier turn) superseded by the new one, or ended
(:mod:`agentmem.ledger.linked`), so the stale guard settles every item that still asserts
it. Cheap by construction: only a turn that states a changed value or an ending searches
(:meth:`Linker.wanted`), each sentence is read once, and the history is the one the
lookback reads.

What it leaves to a model: similarity of meaning was tried for the changes these rules
leave unlinked (MiniLM, values masked, natural_dev even half, 28 values) and left out:
the earlier sentence most similar to the change scored 0.07-0.6 and was rarely the one it
outdates, with no threshold between right and wrong, and the value nearest in meaning was
a neighbour of the new one ("Spain" for "Madrid"), not its predecessor. The offline path
links only what the words show; the model path
(:class:`~agentmem.ledger.resolution.ModelResolver`) decides against the similar facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agentmem.ledger.cues import ended_values
from agentmem.ledger.pairing import (
    alike,
    another_grade,
    frame_of,
    framed_alike,
    fuller,
    new_role,
    relevance,
    shared,
    value_stems,
    values_of,
)
from agentmem.ledger.patterns import OCCUPATIONS
from agentmem.ledger.spans import Span, read_values, stem
from agentmem.ledger.statements import (
    CHANGE,
    WORD,
    Said,
    clause_of,
    holds,
    is_settled,
    may_end,
    plain,
    states,
    states_change,
    stems_of,
)
from agentmem.ledger.subjects import UNKNOWN, Subjects, display, vocabulary
from agentmem.text import split_sentences
from agentmem.types import Turn

#: Words without one of which no ending is said (a cheap test before the ending patterns).
_ENDING_HINT = re.compile(
    r"\b(?:any ?more|longer|more|gave|give|given|giving|got rid|rehom\w*|sold|sell\w*|quit\w*|"
    r"stopp?\w*|cancel\w*|dropp?\w*|ditch\w*|dump\w*|broke|split\w*|divorc\w*|left|leaving|"
    r"lost|passed|died|put|ran|stolen|written|closed|shut|went|over|ended|goodbye|bye|farewell|"
    r"out|off|from|mine|ours|resigned)\b",
    re.IGNORECASE,
)

_LOWER_WORD = re.compile(r"[a-z]+")

#: How many of the speaker's earlier sentences a change is compared with, latest first.
MAX_CANDIDATES = 400


@dataclass(frozen=True)
class Link:
    """An earlier statement's value that a later one outdates.

    Attributes:
        subject: Whose value it is, for display (the speaker's name, "Claire").
        aspect: What the two statements are about, in words ("rent"); may be empty.
        old: The outdated value as the earlier statement said it.
        source: The earlier turn that said it.
        new: The value that replaces it; ``None`` when it ended.
    """

    subject: str
    aspect: str
    old: str
    source: Turn
    new: str | None


class Linker:
    """Links statements of change to the earlier statements they outdate.

    Sentences are read once and kept (by turn id and text) between writes; whom each is
    about is decided per search, with the names known then.

    Args:
        capacity: How many turns' readings to keep.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._read: dict[tuple[int, str], list[Said]] = {}
        self._names: dict[tuple[int, str], tuple[frozenset[str], ...]] = {}

    @staticmethod
    def triggers(turn: Turn) -> bool:
        """Whether a turn has change or ending language (cheap)."""
        if turn.role == "assistant":
            return False
        if CHANGE.search(turn.text):
            return True
        # An occupation named: a role said without change language may be another grade
        # of a job (a set lookup: a regular expression of every occupation is ten times
        # slower).
        if not OCCUPATIONS.isdisjoint(_LOWER_WORD.findall(turn.text.lower())):
            return True
        return bool(_ENDING_HINT.search(turn.text)) and bool(ended_values(turn.text))

    def wanted(self, turn: Turn) -> bool:
        """Whether a turn states a changed value or an ending, so a search is worth the
        history (what :meth:`links` would look for, before any history is read)."""
        if not self.triggers(turn):
            return False
        for said in self._sentences(turn):
            if may_end(said) and ended_values(said.text):
                return True
            everyone = frozenset(w.lower() for w in WORD.findall(said.text))
            for value in read_values(said.text, everyone):
                clause = clause_of(said.text, value.start)
                if states_change(said.text, clause) or (
                    new_role(value) and states(said.text, clause)
                ):
                    return True
        return False

    def links(self, turn: Turn, history: Sequence[Turn], persons: Iterable[str] = ()) -> list[Link]:
        """Return the earlier values ``turn`` outdates, given the user's turns so far.

        Args:
            turn: The turn that may change something.
            history: The user's turns, oldest first (those after ``turn`` are ignored).
            persons: Names of people the dialogue knows (relatives, partners).
        """
        if not self.triggers(turn):
            return []
        earlier = [t for t in history if (t.timestamp, t.id) < (turn.timestamp, turn.id)]
        words = vocabulary([*earlier, turn], persons, self._names, self.capacity)
        said: list[Said] = []
        for position in range(len(earlier) - 1, -1, -1):
            if len(said) >= MAX_CANDIDATES:
                break
            if earlier[position].speaker == turn.speaker:
                said += reversed(self._sentences(earlier[position]))
        search = Subjects(words, [*earlier, turn])
        found: list[Link] = []
        for sentence in self._sentences(turn):
            found += self._changes(sentence, said, search)
            if may_end(sentence):
                found += self._endings(sentence, said, search)
        return list({(f.old.lower(), f.source.id, f.new): f for f in found}.values())

    # -- reading ------------------------------------------------------------------------------

    def _sentences(self, turn: Turn) -> list[Said]:
        """Return a turn's sentences, read once per turn (by id and text)."""
        key = (turn.id, turn.text)
        cached = self._read.get(key)
        if cached is not None:
            return cached
        read: list[Said] = []
        for position, text in enumerate(split_sentences(turn.text)):
            before = read[-1] if read else None
            read.append(Said(turn, text, position, stems_of(text), is_settled(text), before))
        if len(self._read) >= self.capacity:
            self._read.clear()
        self._read[key] = read
        return read

    # -- linking ------------------------------------------------------------------------------

    def _changes(self, now: Said, said: Sequence[Said], search: Subjects) -> list[Link]:
        """Link each new value a change states to the value it replaces, if any."""
        values = now.spans(search.names)
        ended = {stem(w) for value in ended_values(now.text) for w in value.split()}
        lowered = f" {plain(now.text)} "
        found: list[Link] = []
        for value in values:
            clause = clause_of(now.text, value.start)
            cued = states_change(now.text, clause)
            if not cued and not (new_role(value) and states(now.text, clause)):
                continue
            if {stem(w) for w in value.text.split()} & ended:
                continue  # what ended is no new value
            own = {stem(w) for v in values for w in v.text.split()}
            aspects = {k: w for k, w in now.words.items() if k not in own}
            link = self._predecessor(now, value, aspects, lowered, said, search, cued=cued)
            if link is not None:
                found.append(link)
        return found

    def _predecessor(
        self,
        now: Said,
        value: Span,
        aspects: dict[str, str],
        lowered: str,
        said: Sequence[Said],
        search: Subjects,
        *,
        cued: bool = True,
    ) -> Link | None:
        """Return the latest earlier value of the subject that ``value`` replaces.

        Without change language only another grade of the same job is replaced ("being
        marketing manager means ..." after "being a marketing analyst"): the newest
        statement wins.
        """
        subject = search.subject(now)
        if subject == UNKNOWN:
            return None
        frame = frame_of(now.text, value)
        relevant = relevance(value, aspects, frame)
        # A relation is its person's ("Akosua": girlfriend, then wife), whoever the
        # sentence is about.
        anyone = value.kind == "relation"
        for old in said:
            if not old.settled or not relevant(old):
                continue
            if not anyone and search.subject(old) != subject:
                continue
            for span, where in values_of(old, value, search.names):
                if not alike(value, span) or f" {span.key} " in lowered:
                    continue
                if not holds(where.text, span.start):
                    continue
                if not cued and not another_grade(value, span):
                    continue
                if value.kind == "proper" and value_stems(value.text) & value_stems(span.text):
                    continue  # "Hillcrest" and "Hillcrest Academy" are one place
                aspect = shared(value, span, aspects, where)
                if aspect is None and frame and frame == frame_of(where.text, span):
                    aspect = framed_alike(now.text, value, where.text, span)
                if aspect is not None:
                    return Link(display(now, subject), aspect, span.text, old.turn, value.text)
        return None

    def _endings(self, now: Said, said: Sequence[Said], search: Subjects) -> list[Link]:
        """Name each ended value as the subject's earlier statements said it, when fuller.

        "Sold the Logan" ends "Renault Logan"; "no more MBA" ends "MBA class". The ending
        itself already ends every item naming the shorter value; the fuller one makes the
        change say what each earlier statement said.
        """
        subject = search.subject(now)
        if subject == UNKNOWN:
            return []
        found: list[Link] = []
        for head in ended_values(now.text):
            wanted = [stem(w) for w in head.split()]
            for old in said:
                if not old.settled or not all(w in old.words for w in wanted):
                    continue
                if search.subject(old) != subject:
                    continue
                value = fuller(old, head, wanted, search.names)
                if value is not None and all(f.old.lower() != value.lower() for f in found):
                    aspect = next(
                        (w for k, w in now.words.items() if k in old.words and k not in wanted),
                        "",
                    )
                    found.append(Link(display(now, subject), aspect, value, old.turn, None))
        return found[:3]


__all__ = ["Link", "Linker", "is_settled"]
