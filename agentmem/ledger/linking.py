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
   the person just named (:func:`_reference`); earlier statements must be about the same
   one, and said by the same speaker, so someone else's change never touches a value;
3. **the candidates**: the subject's earlier sentences, latest first, that share a
   content word with the change (the aspect: "rent", "swim", "band"), or, for values
   whose shape says what they are (an address, an email), any earlier one;
4. **the values**: what the two statements say of like shape (:mod:`agentmem.ledger.spans`)
   and do not share: "900" and "950", "Mondays and Fridays" and "Wednesdays", "paper
   books" and "e-reader". An ending names its value in the earlier statement as that one
   said it: "sold the Logan" ends "Renault Logan", "no more MBA" ends "MBA class".

What comes out is a :class:`Link` per outdated value; the fact ledger records each as an
old fact (inferred, at the earlier turn) superseded by the new one, or ended, so the stale
guard settles every item that still asserts it. Cheap by construction: only triggers
search, each sentence is read once, and the history is the one the lookback reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from agentmem.ledger.cues import ended_values, is_temporary
from agentmem.ledger.patterns import OCCUPATIONS, RELATIONS
from agentmem.ledger.spans import STRONG, Span, read_values, stem
from agentmem.text import STOPWORDS, split_sentences
from agentmem.types import Turn

#: Change language: the clause of a new value must hold one.
_CHANGE = re.compile(
    r"\b(?:now|new|newly|switched|switching|changed|moved|went up|gone up|went down|"
    r"gone down|goes up|rose|raised|increased|promoted|promotion|upgraded|instead|"
    r"these days|nowadays|from now on|officially|just started|started|starting|"
    r"first (?:day|week|month|shift|service|night|lesson|class)|pushed|postponed|"
    r"rescheduled|became|become|settled|moved in|moved into)\b",
    re.IGNORECASE,
)
#: Words without one of which no ending is said (a cheap test before the ending patterns).
_ENDING_HINT = re.compile(
    r"\b(?:any ?more|longer|more|gave|give|given|giving|got rid|rehom\w*|sold|sell\w*|quit\w*|"
    r"stopp?\w*|cancel\w*|dropp?\w*|ditch\w*|dump\w*|broke|split\w*|divorc\w*|left|leaving|"
    r"lost|passed|died|put|ran|stolen|written|closed|shut|went|over|ended|goodbye|bye|farewell|"
    r"out|off|from|mine|ours|resigned)\b",
    re.IGNORECASE,
)
#: "now" that is no change: "right now", "for now", "now that ...", "just now".
_NOT_NOW = re.compile(r"\b(?:right|for|just|by|until|till|up to) now\b|\bnow that\b", re.I)
#: Not a statement of what holds: a hypothetical, a plan, a wish.
_UNSURE = re.compile(
    r"\b(?:if|thinking (?:of|about)|considering|might|would|planning|plan to|plans to|"
    r"want to|wants to|hope to|hoping to|going to|gonna|will|wish|tempted|someday|one day|"
    r"in case|supposed to|next (?:week|month|year|summer|spring|autumn|fall|winter|term|"
    r"season|time))\b|'ll\b",
    re.IGNORECASE,
)
#: A hedge that makes a change no statement yet ("maybe I'll switch", "soon").
_HEDGED = re.compile(r"\b(?:maybe|perhaps|could|should|soon|probably)\b", re.IGNORECASE)
#: A change refused or denied: "I'm not switching to Real Madrid".
_REFUSED = re.compile(
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
_NOT_ASPECTS = STOPWORDS | frozenset(
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
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_RELATION = re.compile(
    rf"\b(?i:my|our)\s+(?P<rel>(?i:{RELATIONS}))\b(?:,?\s+(?P<name>[A-Z][\w'\-]+))?"
)
_SELF = re.compile(
    r"\b(?:(?i:i|i'm|i've|i'd|im)|we|We|we're|We're|we've|We've|my|My|our|Our|me|us)\b"
)
_PRONOUN = re.compile(r"\b(?:he|she|his|her|him|He|She|His|Her)\b")
#: One person under several words: "mum" and "mom" and "mother".
_SAME_RELATION = {
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


@dataclass(frozen=True)
class _Vocabulary:
    """The names of a dialogue (lower-cased): capitalised words, relatives' names, and
    who "he" or "she" may be."""

    names: frozenset[str]
    people: frozenset[str]
    figures: frozenset[str]


@dataclass
class _Said:
    """One sentence of a turn, read once."""

    turn: Turn
    text: str
    position: int  # its place in the turn
    words: dict[str, str]  # content stem -> the word as said
    settled: bool  # it may state what holds: no question, no visit
    before: _Said | None = None  # the sentence before it in the turn
    values: list[Span] | None = field(default=None)

    def spans(self, names: frozenset[str]) -> list[Span]:
        if self.values is None:
            self.values = read_values(self.text, names)
        return self.values


class _Search:
    """Whom each sentence is about, decided once per search with the names known then.

    A sentence that names no one is about whom the one before it was about; the first
    one, about whom the other side just asked ("How's Oliver?" / "Still in Leeds").
    """

    def __init__(self, words: _Vocabulary, turns: Sequence[Turn]) -> None:
        self.words = words
        self._before = {t.id: turns[n - 1] if n else None for n, t in enumerate(turns)}
        self._subjects: dict[int, list[str]] = {}

    @property
    def names(self) -> frozenset[str]:
        return self.words.names

    def subject(self, said: _Said) -> str:
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


def _ends(said: _Said) -> bool:
    """Whether a sentence may state an ending: no question, visit, plan, hedge or refusal."""
    text = said.text
    return said.settled and not (
        _REFUSED.search(text) or _UNSURE.search(text) or _HEDGED.search(text)
    )


def _stems(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for said in _WORD.findall(text):
        # "e-reader" is about reading too
        for word in (said, *said.split("-")) if "-" in said else (said,):
            key = stem(word)
            if len(key) > 2 and key not in _NOT_ASPECTS and word.lower() not in STOPWORDS:
                found.setdefault(key, word.lower())
    return found


def _clause_of(sentence: str, start: int) -> str:
    """Return the clause of ``sentence`` that holds position ``start``."""
    bounds = [0, *(m.end() for m in _CLAUSE.finditer(sentence)), len(sentence)]
    for left, right in zip(bounds, bounds[1:], strict=False):
        if left <= start < right:
            return sentence[left:right]
    return sentence


def is_settled(sentence: str) -> bool:
    """Whether a sentence may state what holds: no question, no visit ("this week")."""
    return not (sentence.rstrip("\"')”’*_ ").endswith("?") or is_temporary(sentence))


def _holds(sentence: str, start: int) -> bool:
    """Whether the clause at ``start`` states what holds: no hypothetical, plan or wish
    ("if I move to Leeds", "I'll be in Lviv next week")."""
    return not _UNSURE.search(_clause_of(sentence, start))


def _states_change(sentence: str, clause: str) -> bool:
    """Whether a clause states a change as done: change language, no hedge, plan or
    hypothetical in it ("Fine, I'll say it: X is my favourite band now" states one),
    and no question or visit in its sentence."""
    return (
        _says_change(clause)
        and not _UNSURE.search(clause)
        and not _HEDGED.search(clause)
        and not sentence.rstrip("\"')”’*_ ").endswith("?")
        and not is_temporary(sentence)
        and not _REFUSED.search(clause)
    )


def _says_change(clause: str) -> bool:
    return (
        bool(_CHANGE.search(clause))
        and not _NOT_NOW.search(clause)
        or bool(re.search(r"\b(?:switched|moved|went up|promoted|new)\b", clause, re.I))
    )


class Linker:
    """Links statements of change to the earlier statements they outdate.

    Sentences are read once and kept (by turn id and text) between writes; whom each is
    about is decided per search, with the names known then.

    Args:
        capacity: How many turns' readings to keep.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._read: dict[tuple[int, str], list[_Said]] = {}
        self._names: dict[tuple[int, str], tuple[frozenset[str], ...]] = {}

    @staticmethod
    def triggers(turn: Turn) -> bool:
        """Whether a turn has change or ending language (cheap)."""
        if turn.role == "assistant":
            return False
        if _CHANGE.search(turn.text):
            return True
        return bool(_ENDING_HINT.search(turn.text)) and bool(ended_values(turn.text))

    def wanted(self, turn: Turn) -> bool:
        """Whether a turn states a changed value or an ending, so a search is worth the
        history (what :meth:`links` would look for, before any history is read)."""
        if not self.triggers(turn):
            return False
        for said in self._sentences(turn):
            if _ends(said) and ended_values(said.text):
                return True
            everyone = frozenset(w.lower() for w in _WORD.findall(said.text))
            for value in read_values(said.text, everyone):
                if _states_change(said.text, _clause_of(said.text, value.start)):
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
        words = self._vocabulary([*earlier, turn], persons)
        said: list[_Said] = []
        for position in range(len(earlier) - 1, -1, -1):
            if len(said) >= MAX_CANDIDATES:
                break
            if earlier[position].speaker == turn.speaker:
                said += reversed(self._sentences(earlier[position]))
        search = _Search(words, [*earlier, turn])
        found: list[Link] = []
        for sentence in self._sentences(turn):
            found += self._changes(sentence, said, search)
            if _ends(sentence):
                found += self._endings(sentence, said, search)
        return list({(f.old.lower(), f.source.id, f.new): f for f in found}.values())

    # -- reading ------------------------------------------------------------------------------

    def _sentences(self, turn: Turn) -> list[_Said]:
        """Return a turn's sentences, read once per turn (by id and text)."""
        key = (turn.id, turn.text)
        cached = self._read.get(key)
        if cached is not None:
            return cached
        read: list[_Said] = []
        for position, text in enumerate(split_sentences(turn.text)):
            before = read[-1] if read else None
            read.append(_Said(turn, text, position, _stems(text), is_settled(text), before))
        if len(self._read) >= self.capacity:
            self._read.clear()
        self._read[key] = read
        return read

    def _vocabulary(self, turns: Sequence[Turn], persons: Iterable[str]) -> _Vocabulary:
        """Return the names the dialogue capitalises inside sentences, its people, and
        who "he" or "she" may be.

        People are the names given to relatives ("my sister Claire"). "He" or "she" may
        also be any name never said after "in", "at", "to" or "from" (where a place is):
        "How is Oliver?" makes Oliver someone "he" can be, "two years in Lisbon" keeps
        Lisbon a place. The speakers are no third party. All lower-cased.
        """
        names: set[str] = set()
        placed: set[str] = set()
        people = {p.lower() for p in persons}
        for turn in turns:
            key = (turn.id, turn.text)
            read = self._names.get(key)
            if read is None:
                read = _names_of(turn.text)
                if len(self._names) >= self.capacity:
                    self._names.clear()
                self._names[key] = read
            names |= read[0]
            placed |= read[1]
            people |= read[2]
        speakers = {t.speaker.lower() for t in turns}
        return _Vocabulary(
            frozenset(names), frozenset(people - speakers), frozenset(names - placed - speakers)
        )

    # -- linking ------------------------------------------------------------------------------

    def _changes(self, now: _Said, said: Sequence[_Said], search: _Search) -> list[Link]:
        """Link each new value a change states to the value it replaces, if any."""
        values = now.spans(search.names)
        ended = {stem(w) for value in ended_values(now.text) for w in value.split()}
        lowered = f" {_plain(now.text)} "
        found: list[Link] = []
        for value in values:
            if not _states_change(now.text, _clause_of(now.text, value.start)):
                continue
            if {stem(w) for w in value.text.split()} & ended:
                continue  # what ended is no new value
            own = {stem(w) for v in values for w in v.text.split()}
            aspects = {k: w for k, w in now.words.items() if k not in own}
            link = self._predecessor(now, value, aspects, lowered, said, search)
            if link is not None:
                found.append(link)
        return found

    def _predecessor(
        self,
        now: _Said,
        value: Span,
        aspects: dict[str, str],
        lowered: str,
        said: Sequence[_Said],
        search: _Search,
    ) -> Link | None:
        """Return the latest earlier value of the subject that ``value`` replaces."""
        subject = search.subject(now)
        if subject == UNKNOWN:
            return None
        frame = _frame(now.text, value)
        relevant = _relevance(value, aspects, frame)
        # A relation is its person's ("Akosua": girlfriend, then wife), whoever the
        # sentence is about.
        anyone = value.kind == "relation"
        for old in said:
            if not old.settled or not relevant(old):
                continue
            if not anyone and search.subject(old) != subject:
                continue
            for span, where in _values_of(old, value, search.names):
                if not _alike(value, span) or f" {span.key} " in lowered:
                    continue
                if not _holds(where.text, span.start):
                    continue
                if value.kind == "proper" and _value_stems(value.text) & _value_stems(span.text):
                    continue  # "Hillcrest" and "Hillcrest Academy" are one place
                aspect = _shared(value, span, aspects, where)
                if aspect is None and frame and frame == _frame(where.text, span):
                    aspect = _framed_alike(now.text, value, where.text, span)
                if aspect is not None:
                    return Link(_display(now, subject), aspect, span.text, old.turn, value.text)
        return None

    def _endings(self, now: _Said, said: Sequence[_Said], search: _Search) -> list[Link]:
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
                fuller = _fuller(old, head, wanted, search.names)
                if fuller is not None and all(f.old.lower() != fuller.lower() for f in found):
                    aspect = next(
                        (w for k, w in now.words.items() if k in old.words and k not in wanted),
                        "",
                    )
                    found.append(Link(_display(now, subject), aspect, fuller, old.turn, None))
        return found[:3]


def _relevance(value: Span, aspects: dict[str, str], frame: str) -> Callable[[_Said], bool]:
    """Return a cheap test of whether an earlier sentence may hold what ``value`` replaces.

    It must share a word with the change or with the value, hold the frame's aspect or
    the number's unit, name an occupation beside a new one, or a place word beside a
    framed value; a value whose shape says what it is (an address) may be anywhere.
    """
    if value.kind in STRONG:
        return lambda old: True
    keys = set(aspects) | _value_stems(value.text) | ({value.aspect} if value.aspect else set())
    jobs = value.kind == "role" and _occupation(value.text)

    def relevant(old: _Said) -> bool:
        if not keys.isdisjoint(old.words):
            return True
        if jobs and any(w in OCCUPATIONS for w in old.words.values()):
            return True
        return bool(frame) and bool(_FRAMED_NAME.search(old.text))

    return relevant


_CAPITALISED = re.compile(r"\b[A-Z][\w\-]+")
_PLACED = re.compile(r"\b(?:in|at|to|from|into|near|around)\s+(?:the\s+)?([A-Z][\w'\-]+)")


def _names_of(text: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Return a text's capitalised words inside sentences, those after a place word, and
    the names it gives relatives ("my sister Claire"), lower-cased."""
    names = frozenset(
        word.lower()
        for sentence in split_sentences(text)
        for word in _WORD.findall(sentence)[1:]
        if word[:1].isupper() and word not in ("I", "I'm", "I've", "I'd", "I'll")
    )
    placed = frozenset(m.group(1).lower() for m in _PLACED.finditer(text))
    related = frozenset(
        m.group("name").lower() for m in _RELATION.finditer(text) if m.group("name")
    )
    return names, placed, related


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _display(said: _Said, subject: str) -> str:
    """Return whom a sentence is about, as a fact's subject: "Sam", "Sam's sister", "Lily"."""
    if subject == SELF:
        return said.turn.speaker
    if subject in _RELATION_WORDS:
        return f"{said.turn.speaker}'s {subject}"
    return subject[:1].upper() + subject[1:]


_RELATION_WORDS = frozenset(_SAME_RELATION.get(r, r) for r in RELATIONS.split("|")) | frozenset(
    _SAME_RELATION.values()
)
#: Kinds that may stand for one another: a number said with or without its currency.
_KINDS = {"money": "number", "named": "proper"}


def _alike(new: Span, old: Span) -> bool:
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


def _shared(new: Span, old: Span, aspects: dict[str, str], said: _Said) -> str | None:
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
    if new.kind == "role" and _occupation(new.text) and _occupation(old.text):
        return "job"
    spans = said.spans(frozenset())
    own = {k for s in spans for k in _value_stems(s.text)}
    clause = _stems(_clause_of(said.text, old.start))
    common = [w for k, w in clause.items() if k in aspects and k not in own]
    if common:
        return common[0]
    if new.aspect and new.aspect in clause:
        return clause[new.aspect]
    mine, theirs = _value_stems(new.text), _value_stems(old.text)
    if new.kind not in ("proper", "number", "money") and mine & theirs and mine != theirs:
        return ""  # "oat milk" and "almond milk", "junior designer" and "senior designer"
    return None


def _value_stems(text: str) -> set[str]:
    return {stem(w) for w in re.split(r"[\s\-]+", text) if w}


def _occupation(text: str) -> bool:
    words = text.lower().replace("-", " ").split()
    return bool(words) and words[-1] in OCCUPATIONS


#: Prepositions that say where a value is: a stay "in" a place, a post "at" a firm.
_FRAMES = {"in": "in", "into": "in", "to": "in", "at": "at"}
_FRAMED_NAME = re.compile(r"\b(?i:in|into|to|at)\s+(?:the\s+)?[A-Z]")
_BEFORE = re.compile(r"\b(in|into|to|at)\s+(?:the\s+)?$", re.IGNORECASE)


def _frame(sentence: str, span: Span) -> str:
    """Return where a proper value is framed ("in", "at"), or "" for none."""
    if span.kind != "proper":
        return ""
    found = _BEFORE.search(sentence[max(0, span.start - 12) : span.start])
    return _FRAMES[found.group(1).lower()] if found else ""


#: Words that make a place or a firm where someone lives, works or studies ("living in",
#: "my flat in", "still at", "managers at", "first week at"), not where something happened
#: ("lost in", "parked at", "a hospital in").
_LASTING_HEADS = frozenset(
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
        for w in _WORD.findall(sentence[: span.start])
        if w.lower() not in STOPWORDS or w.lower() in ("still",)
    ]
    for position, word in enumerate(reversed(before[-3:])):
        if word == "still" and position:
            continue  # "still in Leeds", but not "still get lost in Alfama"
        if stem(word) in _LASTING_HEADS or word in OCCUPATIONS or word.rstrip("s") in OCCUPATIONS:
            return word
    return None


def _framed_alike(new_text: str, new: Span, old_text: str, old: Span) -> str | None:
    """Return the aspect of two values framed alike as where one stays or works, if so."""
    head = _frame_head(new_text, new)
    if head is None or _frame_head(old_text, old) is None:
        return None
    return f"{head} {_frame(new_text, new)}"


_OPENING_PRONOUN = re.compile(r"^\W*(?:they|it|he|she|that|this)\b", re.IGNORECASE)


def _values_of(old: _Said, new: Span, names: frozenset[str]) -> list[tuple[Span, _Said]]:
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
        and not any(_alike(new, span) for span, _ in found)
    ):
        before = old.before
        found += [
            (Span(s.text, s.kind, s.start, s.end, new.aspect), before) for s in before.spans(names)
        ]
    return found


def _fuller(old: _Said, head: str, wanted: Sequence[str], names: frozenset[str]) -> str | None:
    """Return the value in ``old`` that holds ``head`` and says more, if any."""
    for span in old.spans(names):
        words = {stem(w) for w in span.text.split()}
        if all(w in words for w in wanted) and len(span.text.split()) > len(head.split()):
            return span.text if _holds(old.text, span.start) else None
    if _UNSURE.search(old.text) or not (head.islower() or head.isupper()):
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
_NOT_MODIFIERS = _NOT_ASPECTS | frozenset(
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
    for match in _RELATION.finditer(text):
        name = match.group("name")
        if name and name.lower() in people:
            found.append((match.start(), 0, name.lower()))
        else:
            rel = match.group("rel").lower()
            found.append((match.start(), 0, _SAME_RELATION.get(rel, rel)))
    found += [(m.start(), 1, SELF) for m in _SELF.finditer(text)]
    for match in _POSSESSOR.finditer(text):
        if match.group(1).lower() in figures:
            found.append((match.start(), 0, match.group(1).lower()))  # "Chiara's first day"
    opening = _OPENING_NAME.match(text)
    if opening and opening.group(1).lower() in names and not _IS_MY.match(text):
        # "Camila moved to Copenhagen", "Biscuit lives with Mum and Dad": the sentence is
        # about the name it opens with ("Boogarins are my favourite band" is not).
        found.append((opening.start(1), 0, opening.group(1).lower()))
    for match in _WORD.finditer(text):
        word = match.group(0).removesuffix("'s").removesuffix("\u2019s")
        if word[:1].isupper() and word.lower() in people:
            found.append((match.start(), 0, word.lower()))
        elif word[:1].isupper() and word.lower() in _SAME_RELATION and match.start() == 0:
            found.append((match.start(), 0, _SAME_RELATION[word.lower()]))
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
        found.append((match.start(), _SAME_RELATION.get(rel, rel)))
    for match in _WORD.finditer(question):
        word = match.group(0).removesuffix("'s")
        if word[:1].isupper() and word.lower() in people:
            found.append((match.start(), word.lower()))
    if found:
        return min(found)[1]
    return SELF if _YOU.search(question) else None


def _last_person(text: str, people: frozenset[str]) -> str | None:
    """Return the last person a text names (by name or as "my sister"), if any."""
    last: tuple[int, str] | None = None
    for match in _RELATION.finditer(text):
        name = match.group("name")
        rel = match.group("rel").lower()
        key = name.lower() if name and name.lower() in people else _SAME_RELATION.get(rel, rel)
        last = max(last or (-1, ""), (match.start(), key))
    for match in _WORD.finditer(text):
        word = match.group(0).removesuffix("'s")
        if word[:1].isupper() and word.lower() in people:
            last = max(last or (-1, ""), (match.start(), word.lower()))
    return last[1] if last else None


__all__ = ["Link", "Linker", "SELF", "is_settled"]
