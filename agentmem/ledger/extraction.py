"""Facts and triples from dialogue turns: the rule-based extractor and the extractor protocol.

A :class:`Fact` is an atomic statement about a subject: who it is about (the speaker, a
named person, or a relative of the speaker), which slot it fills (where they live, their
job, a hobby, ...), the value, whether it was stated or only inferred, and whether it
starts or ends (``polarity``). Slot facts drive conflict detection (only facts about the
same subject and slot can conflict); ``generic`` facts are subject–verb–object triples
for the knowledge graph and never supersede anything.

:class:`RuleExtractor` is the offline builder: hand-written patterns over common ways of
saying where one lives, works, what one is into, pets, relatives, favourites, origin and
age. What it loses against a model: paraphrases outside its patterns, coreference beyond
"I/my/we" and sentence-initial names, implicit facts, and nuance (sarcasm, hypotheticals
other than simple negation). Extractors see a batch of turns at once so a model-based one
can spend one call per batch; :class:`CachingExtractor` lets several consumers (the graph
and the memory manager) share one extraction per turn.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from agentmem.building import BuildStats, structured_call
from agentmem.errors import AgentMemError, ModelError, StructuredOutputError
from agentmem.ledger.cues import (
    TIME_WORDS,
    WEAK_SHAPES,
    aspect_word,
    ended_values,
    is_correction,
    is_temporary,
    shaped_changes,
)
from agentmem.protocols import ChatModel
from agentmem.text import STOPWORDS, split_sentences
from agentmem.types import Turn

if TYPE_CHECKING:
    from agentmem.storage.records import Records

logger = logging.getLogger(__name__)


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
#: Slots a temporary stay must not fill ("in Rome this week for a conference").
_LASTING = {"residence", "employer", "job"}

RELATIONS = (
    "sister|brother|mom|mum|mother|dad|father|friend|best friend|wife|husband|partner|"
    "boyfriend|girlfriend|fiance|fiancee|son|daughter|uncle|aunt|cousin|grandma|grandmother|"
    "grandpa|grandfather|grandson|granddaughter|boss|neighbor|neighbour|roommate|flatmate|"
    "colleague|coworker|co-worker|niece|nephew|stepmom|stepdad|kid|parents|teacher|coach"
)
PARTNER_RELATIONS = {"wife", "husband", "partner", "boyfriend", "girlfriend", "fiance", "fiancee"}
PETS = (
    "dog|cat|puppy|kitten|parrot|rabbit|bunny|hamster|turtle|tortoise|horse|fish|goldfish|"
    "snake|lizard|guinea pig|ferret|bird"
)
_NAME = r"[A-Z][\w'\-]+"
_PLACE = r"(?P<v>[A-Z][\w'\-.]*(?:\s+(?:[A-Z][\w'\-.]*|de|da|do|del|la|le|of|upon|am))*)"
_NP = r"(?P<v>[A-Za-z][\w'\-]*(?:\s+[A-Za-z][\w'\-]*){0,3})"
_BOUNDARY = {
    "and",
    "but",
    "which",
    "because",
    "now",
    "lately",
    "again",
    "these",
    "this",
    "since",
    "at",
    "in",
    "for",
    "with",
    "so",
    "when",
    "while",
    "after",
    "before",
    "recently",
    "though",
    "although",
    "these days",
    "nowadays",
    "too",
    "as",
    "from",
    "on",
    "to",
    "right",
    "anymore",
    "any",
    "more",
    "every",
    "last",
    "next",
    "over",
    "here",
    "there",
    "then",
    "ever",
    "all",
}
_SUBJECT = (
    rf"(?P<subj>\bI\b|\bwe\b|\bWe\b|\b[Mm]y (?P<rel>{RELATIONS})(?:,? (?P<relname>{_NAME}))?"
    rf"|\b(?P<name>{_NAME}))"
)


@dataclass(frozen=True)
class _Pattern:
    attribute: str
    regex: re.Pattern[str]
    stated: bool = True
    polarity: bool = True
    value_kind: str = "np"  # "np", "place" or "name"


def _p(attribute: str, body: str, **options: object) -> _Pattern:
    return _Pattern(attribute, re.compile(rf"{_SUBJECT}(?:\s+|(?=')){body}"), **options)  # type: ignore[arg-type]


_AUX = (
    r"(?:(?:'m|am|is|are|was|were|'ve been|have been|has been|had been|'ve|have|'re|'s|just|also|"
    r"now|recently|finally|actually|still|really|do not|don't|does not|doesn't|did not|didn't|"
    r"not|no longer|never|'m not|am not|isn't|aren't|wasn't|officially|happily|all|fully|"
    r"properly|safely)\s+)*"
)
_PATTERNS: tuple[_Pattern, ...] = (
    # residence
    _p(
        "residence",
        rf"{_AUX}(?:live|lives|living|reside|resides|residing|based) in {_PLACE}",
        value_kind="place",
    ),
    _p(
        "residence",
        rf"{_AUX}(?:moved|relocated|move|moving|relocating|relocate)(?: back| over| out)?"
        rf"(?: from [A-Z][\w'\-.]*(?:\s+[A-Z][\w'\-.]*)*)? to {_PLACE}",
        value_kind="place",
    ),
    _p(
        "residence",
        rf"{_AUX}(?:settled|settling)(?: down)?(?: into (?:[\w']+\s+){{1,3}})? in {_PLACE}",
        value_kind="place",
    ),
    _p(
        "residence",
        rf"{_AUX}(?:moved|moving|settled|settling) into {_PLACE}",
        value_kind="place",
    ),
    _p("residence", rf"{_AUX}retired to {_PLACE}", value_kind="place"),
    _p(
        "origin",
        rf"{_AUX}(?:(?:am|'m|is|are|come|comes|came) (?:originally )?from|grew up in) {_PLACE}",
        value_kind="place",
    ),
    # "I'm in Vancouver now": where one is now, said as lasting (a visit is filtered out).
    _p(
        "residence",
        rf"{_AUX}(?:am|'m|is|are|'re) (?:now |currently )?(?:settled )?in {_PLACE}"
        r"(?=,?\s+(?:now|these days|nowadays|for good|permanently)\b)",
        value_kind="place",
    ),
    # job
    _p(
        "job",
        rf"{_AUX}(?:work|works|working|worked|started working|start working|employed) as (?:a |an )?{_NP}",
    ),
    _p(
        "job",
        rf"{_AUX}(?:got|landed|took|accepted|started|start|have|has) (?:a |an |my |the )?(?:new )?(?:job|position|role) as (?:a |an )?{_NP}",
    ),
    _p("job", rf"{_AUX}(?:became|become|becoming) (?:a |an )?{_NP}"),
    _p(
        "job",
        rf"{_AUX}(?:left|quit|quitting|leaving|leave) (?:my |the |her |his )?job as (?:a |an )?{_NP}",
        polarity=False,
    ),
    _p(
        "job",
        rf"{_AUX}(?:left|quit|quitting|leaving|leave) (?:my |the |her |his )?(?P<v>[\w\-]+(?: [\w\-]+)?) (?:job|position|gig)\b",
        polarity=False,
    ),
    _p(
        "employer",
        rf"{_AUX}(?:work|works|working) (?:at|for) (?P<v>{_NAME}(?:\s+{_NAME})*)",
        value_kind="name",
    ),
    # "Aarav started at Camp Hill today": where one now works or studies.
    _p(
        "employer",
        rf"{_AUX}(?:started|starts|starting|joined|joining) (?:at|with) "
        rf"(?P<v>{_NAME}(?:\s+(?:{_NAME}|do|da|de|of|&))*)",
        value_kind="name",
    ),
    _p("job", rf"{_AUX}(?:started|starts|starting) as (?:a |an |the )?{_NP}"),
    # hobby
    _p(
        "hobby",
        rf"{_AUX}(?:really |so )?(?:into|obsessed with|hooked on|passionate about|addicted to) {_NP}",
    ),
    _p("hobby", rf"{_AUX}(?:took|take|taking|takes) up {_NP}"),
    _p("hobby", rf"{_AUX}all about {_NP}"),
    _p(
        "hobby",
        rf"{_AUX}(?:lost interest in|gave up|give up|giving up|stopped|quit|done with|bored of|tired of) {_NP}",
        polarity=False,
    ),
    # pets
    _p(
        "pet",
        rf"{_AUX}(?:have|has|got|adopted|adopt|bought|rescued|getting) (?:a |an |another |two |three )?(?P<v>(?:[\w\-]+ ){{0,2}}(?:{PETS})(?: (?:named|called) {_NAME})?)\b",
    ),
    _p("job", rf"{_AUX}(?:a|an) {_NP}", value_kind="occupation"),
    # age
    _p("age", rf"{_AUX}(?:am|'m|is|turned|turning|turn) (?P<v>\d{{1,3}})(?: years old)?\b"),
    # study
    _p("study", rf"{_AUX}(?:study|studies|studying|majoring in|major in) {_NP}"),
)
# Sentences whose subject is implied: "Life in Reno is quiet", "My shift as a barista ...".
_IMPLIED: tuple[tuple[str, re.Pattern[str], bool, str], ...] = (
    (
        "residence",
        re.compile(rf"\b(?:[Ll]ife|[Ww]inter|[Ss]ummer|[Rr]ent|[Tt]he weather) in {_PLACE}"),
        False,
        "place",
    ),
    (
        "residence",
        re.compile(
            rf"\b(?:[Mm]y|[Oo]ur) (?:new )?(?:home|place|apartment|flat|house|neighbou?rhood) in {_PLACE}"
        ),
        False,
        "place",
    ),
    (
        "job",
        re.compile(rf"\b[Mm]y (?:shift|job|day|work|boss|manager|shifts) as (?:a |an )?{_NP}"),
        False,
        "np",
    ),
    (
        "job",
        re.compile(rf"\b[Mm]y (?:job|work|position|role|career) (?:is|as) (?:a |an )?{_NP}"),
        True,
        "np",
    ),
    (
        "hobby",
        re.compile(
            rf"\b[Mm]y (?:new |favou?rite )?(?:hobby|pastime|passion) (?:is|has become|these days is) {_NP}"
        ),
        True,
        "np",
    ),
)
_FAVOURITE = re.compile(
    r"\b[Mm]y (?:absolute |all-time )?favou?rite (?P<what>[a-z]+(?: [a-z]+)?) (?:is|are|has to be) "
    + _NP
)
#: "Boogarins are my favourite band now", "sorry sushi, mole is my favourite food now".
_FAVOURITE_AFTER = re.compile(
    r"(?:^|[,:;.!]\s+|\s[\u2014\u2013-]\s+)(?P<v>[\w'][\w'\-]*(?: [\w'][\w'\-]*){0,3}) "
    r"(?:is|are) (?:now )?(?:officially )?my (?:new )?(?:absolute |all-time )?favou?rite "
    r"(?P<what>[a-z]+(?: (?!now\b)[a-z]+)?)\b(?= now\b|[,.!;]|$)"
)
#: "sorry sushi": the value a new favourite displaces, addressed as it is given up.
_SORRY = re.compile(r"\b[Ss]orry,? (?P<v>[\w'][\w'\-]*(?: [\w'][\w'\-]*){0,2}?)(?=[,.!;]|$)")
#: The start of something: "Lily's first day at Hillcrest", "my first shift as head chef at
#: Taberna do Mar". The possessor is the subject; "as" names a role, "at" a place.
_ROLE_WORD = r"(?!(?:at|with|for|and|in|on|today|tonight|this|since)\b)[a-z][\w\-]*"
_FIRST_DAY = re.compile(
    rf"(?:^|\b)(?P<who>[Mm]y|[Oo]ur|[Hh]is|[Hh]er|{_NAME}'s) (?:very )?first (?:full )?"
    r"(?:day|week|shift|service|night|term|month|lesson|class|job)(?: back)?"
    rf"(?: as (?:a |an |the )?(?P<role>{_ROLE_WORD}(?: {_ROLE_WORD}){{0,2}}))?"
    rf"(?: (?:at|with|for) (?P<v>{_NAME}(?:\s+(?:{_NAME}|do|da|de|of|&))*))?"
    r"(?=[\s,.!;:\u2014]|$)"
)
_RELATIVE_NAMED = re.compile(rf"\b[Mm]y (?P<rel>{RELATIONS}),? (?P<v>{_NAME})\b")
_OCCUPATIONS = frozenset(
    """accountant actor actress architect artist assistant baker banker barber barista
    bartender biologist blogger bookkeeper builder butcher carpenter cashier chef chemist
    cleaner clerk coach consultant cook counselor counsellor courier dancer dentist designer
    developer dietitian doctor driver economist editor electrician engineer farmer firefighter
    gardener designer hairdresser historian illustrator instructor intern janitor jeweler
    journalist judge lawyer lecturer librarian lifeguard machinist manager mechanic midwife
    model musician nanny nurse optician painter paramedic pharmacist photographer physician
    physicist physiotherapist pilot plumber poet police officer politician postman professor
    programmer psychologist receptionist reporter researcher retailer salesman scientist
    secretary singer social worker soldier student surgeon tailor teacher technician therapist
    translator tutor veterinarian vet waiter waitress welder writer youtuber streamer""".split()
)


def _trim(value: str) -> str:
    words: list[str] = []
    for word in value.split():
        if word.lower().strip(".,!?") in _BOUNDARY and words:
            break
        words.append(word.strip(".,!?;:\"'()"))
    while words and words[-1].lower() in STOPWORDS:
        words.pop()
    return " ".join(w for w in words if w)


def _strip_article(value: str) -> str:
    return re.sub(r"^(?:the|a|an|my)\s+", "", value.strip(), flags=re.IGNORECASE)


def _subject(match: re.Match[str], speaker: str) -> tuple[str, str | None] | None:
    """Return (subject, relation) for a subject group, or None when it is no person."""
    if match.group("rel"):
        relation = match.group("rel")
        name = match.group("relname")
        return (name if name else f"{speaker}'s {relation}", relation)
    subject = match.group("subj")
    if subject in ("I", "we", "We"):
        return (speaker, None)
    return _named_person(match.group("name"), speaker)


def _named_person(name: str | None, speaker: str) -> tuple[str, str | None] | None:
    """Return (subject, relation) for a capitalised name, or None when it is no person."""
    if name and name.endswith("'s"):
        name = name[:-2]  # "Mum's all settled": the name, not a possessive
    if name and name.lower() in _RELATION_NAMES:
        # "Mum", "Dad", "Grandma" used as names are the speaker's relatives: one person
        # with "my mum".
        relation = name.lower()
        return (f"{speaker}'s {relation}", relation)
    if name and name.lower() not in STOPWORDS and name not in _NOT_NAMES:
        return (name, None)
    return None


_RELATION_NAMES = frozenset(
    "mum mom mother dad father mama papa grandma grandmother grandpa grandfather gran nan "
    "granny grandad".split()
)


_NOT_NAMES = frozenset(
    "Honestly Actually Also Anyway Today Yesterday Tomorrow Now Then Yes No Oh Well So And "
    "But Life Last Next This That These Those It Its There Here What When Where Why How Sure "
    "Lately Recently Finally Guess Maybe Haha Wow Hey Hi Hello Thanks Thank Good Great Nice "
    "Cool Sounds Ugh Sorry Just".split()
)


class RuleExtractor:
    """Extracts slot facts and generic triples with hand-written patterns (offline).

    A sentence that opens with "she" or "he" is read as being about the last third party
    the dialogue named ("my sister Claire ..." then "She moved to Dublin"): the cheapest
    coreference that carries over, kept per user in dialogue order.
    """

    name = "rules"

    def __init__(self) -> None:
        self._last_person: dict[str, str] = {}
        self._lock = threading.Lock()

    def extract(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Return the facts of each turn, by turn id."""
        return {turn.id: self.extract_turn(turn) for turn in turns}

    def extract_turn(self, turn: Turn) -> list[Fact]:
        """Return the facts stated or implied by one turn."""
        with self._lock:
            facts = self._extract_turn(turn)
            for fact in facts:
                person = _third_party(fact, turn)
                if person:
                    self._last_person[turn.user_id] = person
            return facts

    def _extract_turn(self, turn: Turn) -> list[Fact]:
        facts: list[Fact] = []
        speaker = turn.speaker
        for sentence in split_sentences(turn.text):
            if sentence.rstrip().endswith("?"):
                continue  # questions ask; they do not state
            person = self._last_person.get(turn.user_id)
            pronoun = _PRONOUN.match(sentence) if person else None
            if person and pronoun:
                named = person + (" is" if pronoun.group("is") else "")
                sentence = sentence[: pronoun.start("p")] + named + sentence[pronoun.end(0) :]
            negated = bool(re.search(_NEGATION, sentence, re.I))
            found = self._slots(sentence, turn, speaker, negated)
            if is_temporary(sentence):
                # "I'm in Rome this week for a conference": a visit is not a home.
                found = [f for f in found if f.attribute not in _LASTING or not f.polarity]
            stated, rejected = shaped_changes(sentence)
            ended = [
                Fact(speaker, ENDED, value, turn.id, speaker, polarity=False)
                for value in [*ended_values(sentence), *rejected]
            ]
            for shape, value in stated:
                # A time or a day is of something ("the gym at 6am"); a correction's may
                # be of whatever was just said ("sorry, I meant Thursdays").
                aspect = aspect_word(sentence, value) if shape in WEAK_SHAPES else None
                if shape in WEAK_SHAPES and aspect is None and not is_correction(sentence):
                    continue
                attribute = f"{shape} of {aspect}" if aspect else shape
                found.append(Fact(speaker, attribute, value, turn.id, speaker, single_valued=True))
            facts += found + ended
            if not found and not ended:
                facts += self._generic(sentence, turn, speaker)
        return _dedupe(facts)

    def _slots(self, sentence: str, turn: Turn, speaker: str, negated: bool) -> list[Fact]:
        facts: list[Fact] = []
        taken: list[tuple[int, int]] = []
        for pattern in _PATTERNS:
            for match in pattern.regex.finditer(sentence):
                subject = _subject(match, speaker)
                if subject is None:
                    continue
                value = _clean_value(match.group("v"), pattern.value_kind)
                if pattern.attribute == "job":
                    value = _occupation_cut(value)
                if not value or not _plausible(pattern.attribute, value, pattern.regex.pattern):
                    continue
                polarity = pattern.polarity
                if negated and pattern.polarity and _negates(sentence, match.start("v")):
                    polarity = False
                facts.append(
                    self._fact(
                        subject[0],
                        pattern.attribute,
                        value,
                        turn,
                        speaker,
                        pattern.stated,
                        polarity,
                    )
                )
                taken.append(match.span())
                if subject[1]:
                    facts += self._relative(subject[1], subject[0], turn, speaker)
        for attribute, regex, stated, kind in _IMPLIED:
            for match in regex.finditer(sentence):
                if any(s <= match.start() < e for s, e in taken):
                    continue
                value = _clean_value(match.group("v"), kind)
                if attribute == "job":
                    value = _occupation_cut(value)
                if value and _plausible(attribute, value, regex.pattern):
                    facts.append(self._fact(speaker, attribute, value, turn, speaker, stated, True))
        for match in _FAVOURITE.finditer(sentence):
            value = _clean_value(match.group("v"), "np")
            if value:
                attribute = "favourite " + match.group("what")
                facts.append(
                    self._fact(speaker, attribute, value, turn, speaker, True, True, single=True)
                )
        facts += self._favourites_after(sentence, turn, speaker)
        facts += self._first_days(sentence, turn, speaker)
        for match in _RELATIVE_NAMED.finditer(sentence):
            if match.group("v") not in _NOT_NAMES:
                facts += self._relative(match.group("rel"), match.group("v"), turn, speaker)
        return facts

    def _relative(self, relation: str, name: str, turn: Turn, speaker: str) -> list[Fact]:
        if name.endswith(f"'s {relation}"):
            return []
        attribute = "partner" if relation in PARTNER_RELATIONS else "relative"
        value = name if attribute == "partner" else f"{relation} {name}"
        return [self._fact(speaker, attribute, value, turn, speaker, True, True)]

    def _favourites_after(self, sentence: str, turn: Turn, speaker: str) -> list[Fact]:
        """A favourite named before its aspect, and the one it displaces ("sorry X")."""
        facts: list[Fact] = []
        for match in _FAVOURITE_AFTER.finditer(sentence):
            value = _clean_value(_strip_article(match.group("v")), "np")
            if not value or value.lower() in STOPWORDS or value in _NOT_NAMES:
                continue
            attribute = "favourite " + match.group("what")
            facts.append(
                self._fact(speaker, attribute, value, turn, speaker, True, True, single=True)
            )
            for sorry in _SORRY.finditer(sentence):
                old = _strip_article(sorry.group("v"))
                if old and normalise(old) != normalise(value) and old.lower() not in STOPWORDS:
                    facts.append(Fact(speaker, ENDED, old, turn.id, speaker, polarity=False))
        return facts

    def _first_days(self, sentence: str, turn: Turn, speaker: str) -> list[Fact]:
        """The start of a job, a school or a role, from "X's first day (as R) (at Y)"."""
        facts: list[Fact] = []
        for match in _FIRST_DAY.finditer(sentence):
            if not match.group("role") and not match.group("v"):
                continue
            who = match.group("who")
            if who.lower() in ("my", "our"):
                subject = speaker
            elif who.lower() in ("his", "her"):
                subject = self._last_person.get(turn.user_id, "")
            else:
                person = _named_person(who, speaker)
                subject = person[0] if person else ""
            if not subject:
                continue
            if match.group("v"):
                value = _clean_value(match.group("v"), "name")
                if value:
                    facts.append(self._fact(subject, "employer", value, turn, speaker, True, True))
            if match.group("role"):
                value = _occupation_cut(_clean_value(match.group("role"), "np"))
                if value:
                    facts.append(self._fact(subject, "job", value, turn, speaker, True, True))
        return facts

    @staticmethod
    def _fact(
        subject: str,
        attribute: str,
        value: str,
        turn: Turn,
        speaker: str,
        stated: bool,
        polarity: bool,
        *,
        single: bool | None = None,
    ) -> Fact:
        return Fact(
            subject=subject,
            attribute=attribute,
            value=value,
            turn_id=turn.id,
            speaker=speaker,
            stated=stated,
            polarity=polarity,
            single_valued=attribute in SINGLE_VALUED if single is None else single,
        )

    @staticmethod
    def _generic(sentence: str, turn: Turn, speaker: str) -> list[Fact]:
        """A subject-verb-object triple for the graph, from a sentence with a clear subject."""
        match = re.match(
            rf"^\W*{_SUBJECT}\s+(?:'m\s+|am\s+|'ve\s+|have\s+|had\s+|just\s+|really\s+)*(?P<verb>[a-z]+(?:ed|s|ing)?)\b\s*(?P<rest>.*)$",
            sentence,
        )
        if match is None:
            return []
        subject = _subject(match, speaker)
        if subject is None:
            return []
        verb = match.group("verb")
        if verb in STOPWORDS and verb not in ("went", "made", "saw", "got", "took", "had"):
            return []
        rest = [w.strip(".,!?;:\"'()") for w in match.group("rest").split()]
        content = [w for w in rest if w and w.lower() not in STOPWORDS][:4]
        if not content:
            return []
        return [Fact(subject[0], verb, " ".join(content), turn.id, speaker, generic=True)]


_PRONOUN = re.compile(
    r"^\W*(?:(?i:oh|and|so|yes|yeah|yep|well|but|also|now|anyway|apparently|actually)\W+)*"
    r"(?P<p>[Ss]he|[Hh]e)\b(?P<is>'s\b)?"
)


def _third_party(fact: Fact, turn: Turn) -> str | None:
    """Return the name a fact introduces for someone other than the speaker, if any."""
    if fact.generic:
        return None
    if fact.attribute == "relative":
        name = fact.value.split()[-1]
        return name if name[:1].isupper() else None
    subject = fact.subject
    if subject == turn.speaker or "'s " in subject or not subject[:1].isupper():
        return None
    return subject


def _clean_value(raw: str | None, kind: str) -> str:
    if not raw:
        return ""
    if kind == "occupation":
        value = _trim(raw)
        return value if value.split() and value.split()[0].lower() in _OCCUPATIONS else ""
    if kind == "place" or kind == "name":
        words = [w.strip(".,!?;:\"'()") for w in raw.split()]
        while words and (words[-1][:1].islower() or words[-1] in _NOT_NAMES):
            words.pop()
        return " ".join(words)
    return _trim(raw)


def _occupation_cut(value: str) -> str:
    """Cut a job value after its last occupation word ("barista ran late" -> "barista")."""
    words = value.split()
    known = [i for i, w in enumerate(words) if w.lower() in _OCCUPATIONS]
    return " ".join(words[: known[-1] + 1]) if known else " ".join(words[:3])


def _plausible(attribute: str, value: str, pattern: str) -> bool:
    lowered = value.lower()
    if lowered in STOPWORDS or lowered in _NOT_NAMES_LOWER:
        return False
    if attribute in ("residence", "origin", "employer") and lowered.split()[0] in TIME_WORDS:
        return False  # "she moves in June": when, not where
    if attribute == "job" and ("became" in pattern or "become" in pattern):
        return any(w in _OCCUPATIONS for w in lowered.split())
    if attribute == "hobby":
        first = lowered.split()[0]
        return first not in (
            "it",
            "that",
            "this",
            "them",
            "him",
            "her",
            "my",
            "his",
            "our",
        ) and not ({"job", "work", "position", "role"} & set(lowered.split()))
    return True


_NEGATION = r"(?:\bnot\b|n't\b|\bnever\b|\bno longer\b)"
_NOT_NAMES_LOWER = frozenset(w.lower() for w in _NOT_NAMES)


def _negates(sentence: str, value_start: int) -> bool:
    """Whether a negation word governs the clause before the value."""
    before = sentence[:value_start]
    clause = re.split(r"[,;]|\bbut\b", before)[-1]
    return bool(re.search(_NEGATION, clause, re.I))


def _dedupe(facts: list[Fact]) -> list[Fact]:
    seen: set[tuple[str, str, str, bool]] = set()
    kept = []
    for fact in facts:
        key = (fact.subject_key, fact.attribute, fact.value_key, fact.polarity)
        if key not in seen:
            seen.add(key)
            kept.append(fact)
    return kept


@runtime_checkable
class FactExtractor(Protocol):
    """Extracts facts from a batch of turns (one model call per batch at most)."""

    name: str

    def extract(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Return the facts of each turn, by turn id."""
        ...


_TurnKey = tuple[int, str, str]


def _key(turn: Turn) -> _TurnKey:
    return (turn.id, turn.user_id, turn.text)


class CachingExtractor:
    """Shares one extraction per turn between consumers (the graph, the manager).

    Args:
        inner: The extractor that does the work.
        capacity: How many turns' facts to keep.
    """

    def __init__(self, inner: FactExtractor, *, capacity: int = 10_000) -> None:
        self.inner = inner
        self.name = inner.name
        self.capacity = capacity
        # Keyed by the turn's id, user and text, not the id alone: a row id can come back
        # for another user's turn (another process forgot a user), and must not bring the
        # forgotten turn's facts with it.
        self._cache: dict[_TurnKey, list[Fact]] = {}
        self._degraded: set[_TurnKey] = set()
        self._lock = threading.Lock()

    def clear(self) -> int:
        """Forget every cached extraction; return how many turns were cached."""
        with self._lock:
            count = len(self._cache)
            self._cache.clear()
            self._degraded.clear()
            return count

    def extract(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Return cached facts, extracting the turns not seen yet in one batch."""
        with self._lock:
            missing = [t for t in turns if _key(t) not in self._cache]
        if missing:
            self._extract(missing)
        with self._lock:
            return {t.id: list(self._cache.get(_key(t), [])) for t in turns}

    def degraded(self, turn_ids: Iterable[int]) -> set[int]:
        """Return which of these turns got a fallback's facts because the model failed."""
        with self._lock:
            wanted = set(turn_ids)
            return {key[0] for key in self._degraded if key[0] in wanted}

    def retry(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Extract again the turns whose facts came from the fallback; return all facts.

        Turns the model already handled come from the cache, so several consumers of one
        failed batch (the fact ledger, the graph) cost one retry between them.
        """
        with self._lock:
            again = [t for t in turns if _key(t) in self._degraded or _key(t) not in self._cache]
        if again:
            self._extract(again)
        with self._lock:
            return {t.id: list(self._cache.get(_key(t), [])) for t in turns}

    def _extract(self, turns: Sequence[Turn]) -> None:
        marked = getattr(self.inner, "extract_marked", None)
        if callable(marked):
            fresh, fell_back = marked(turns)
        else:
            fresh, fell_back = self.inner.extract(turns), set()
        with self._lock:
            for turn in turns:
                self._cache[_key(turn)] = fresh.get(turn.id, [])
            self._degraded.difference_update(_key(t) for t in turns)
            self._degraded.update(_key(t) for t in turns if t.id in fell_back)
            while len(self._cache) > self.capacity:
                self._degraded.discard(oldest := next(iter(self._cache)))
                self._cache.pop(oldest)


def degraded_turns(extractor: FactExtractor, turn_ids: Iterable[int]) -> set[int]:
    """Return which turns got fallback facts from ``extractor`` (a :class:`CachingExtractor`)."""
    if isinstance(extractor, CachingExtractor):
        return extractor.degraded(turn_ids)
    return set()


def extract_again(extractor: FactExtractor, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
    """Return the turns' facts, asking the model again for those it failed on before."""
    if isinstance(extractor, CachingExtractor):
        return extractor.retry(turns)
    return extractor.extract(turns)


def queue_degraded(
    extractor: FactExtractor,
    turns: Sequence[Turn],
    records: Records,
    store: str,
    stats: BuildStats,
) -> None:
    """Queue for ``store`` the turns ``extractor`` answered with fallback facts, per user.

    The extractor counted each failed call itself; ``stats`` counts the queued retries.
    """
    failed = degraded_turns(extractor, (t.id for t in turns))
    if not failed:
        return
    for user_id in dict.fromkeys(t.user_id for t in turns):
        ids = sorted(t.id for t in turns if t.user_id == user_id and t.id in failed)
        if ids:
            stats.add_queued()
            logger.info("%s: queued %d turns for model extraction again", store, len(ids))
            records.queue_work(
                store, user_id, "extract", {"turn_ids": ids}, "model extraction failed"
            )


def retry_queued(
    extractor: FactExtractor,
    records: Records,
    store: str,
    user_id: str | None,
    apply: Callable[[str, list[Turn], dict[int, list[Fact]]], None],
) -> int:
    """Extract ``store``'s queued turns again and ``apply`` the facts; return batches done.

    Work whose extraction fails again (an error, or fallback facts again) stays queued,
    its attempts counted.
    """
    done = 0
    for work in records.pending_work(store, user_id):
        ids = [int(i) for i in work.payload.get("turn_ids", [])]
        turns = records.turns(work.user_id, ids=ids)
        try:
            # A shared caching extractor re-asks the model only for turns it fell back on.
            facts = extract_again(extractor, turns)
        except AgentMemError as exc:
            records.fail_work(work.id or 0, str(exc))
            continue
        if degraded_turns(extractor, ids):
            records.fail_work(work.id or 0, "model extraction failed again")
            continue
        apply(work.user_id, turns, facts)
        records.finish_work(work.id or 0)
        done += 1
    return done


class ModelExtractor:
    """Extracts facts with a chat model: one schema-constrained call per batch of turns.

    A failed call falls back to the rule extractor for that batch (logged and counted in
    ``stats``), so memory is never left without facts.

    Args:
        model: A capable chat model.
        fallback: The extractor used when the model fails.
        batch_size: Turns per call.
    """

    name = "model"

    def __init__(
        self,
        model: ChatModel,
        *,
        fallback: FactExtractor | None = None,
        batch_size: int = 20,
    ) -> None:
        self.model = model
        self.fallback = fallback or RuleExtractor()
        self.batch_size = batch_size
        self.stats = BuildStats()

    def extract(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Return the facts of each turn, one model call per ``batch_size`` turns."""
        return self.extract_marked(turns)[0]

    def extract_marked(self, turns: Sequence[Turn]) -> tuple[dict[int, list[Fact]], set[int]]:
        """Return the facts of each turn, and the turns whose facts came from the fallback.

        Those turns deserve another try once the model answers again (see
        :meth:`agentmem.ledger.facts.FactLedger.retry_pending`).
        """
        from agentmem.prompts.extraction import FACTS_SCHEMA, extraction_messages, validate_facts

        result: dict[int, list[Fact]] = {}
        fell_back: set[int] = set()
        for start in range(0, len(turns), self.batch_size):
            batch = list(turns[start : start + self.batch_size])
            ids = {t.id for t in batch}
            speakers = {t.id: t.speaker for t in batch}
            try:
                raw = structured_call(
                    self.model,
                    extraction_messages(batch),
                    FACTS_SCHEMA,
                    validate=lambda data, ids=ids: validate_facts(data, ids),  # type: ignore[misc]
                    stats=self.stats,
                )
            except (ModelError, StructuredOutputError) as exc:
                logger.warning(
                    "fact extraction failed, using rules for %d turns: %s", len(batch), exc
                )
                self.stats.add_failure(queued=False)
                result.update(self.fallback.extract(batch))
                fell_back.update(ids)
                continue
            for turn in batch:
                result.setdefault(turn.id, [])
            for fact in raw:
                attribute = str(fact["attribute"]).strip().lower()
                known = attribute in ATTRIBUTE_LABELS or attribute.startswith("favourite ")
                result[int(fact["turn_id"])].append(
                    Fact(
                        subject=str(fact["subject"]).strip(),
                        attribute=attribute,
                        value=str(fact["value"]).strip(),
                        turn_id=int(fact["turn_id"]),
                        speaker=speakers[int(fact["turn_id"])],
                        stated=bool(fact.get("stated", True)),
                        polarity=bool(fact.get("polarity", True)),
                        single_valued=bool(fact.get("single_valued", attribute in SINGLE_VALUED)),
                        generic=not known,
                    )
                )
        return result, fell_back
