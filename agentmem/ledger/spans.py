"""Values as spans: what a sentence says a thing *is*, found by its shape, not by a slot.

The slot patterns know a handful of aspects (where one lives, one's job, ...). A change
can be about anything ("my rent went up to 950", "swimming is on Wednesdays now"), so the
slot-free linker (:mod:`agentmem.ledger.linking`) reads values by their shape instead:

- **shaped** values: addresses ("12 Park Road"), emails, phone numbers, times, days
  ("Mondays and Fridays"), months, money ("£950") and numbers with their unit ("two
  sugars", "a three-cat household");
- **proper** nouns: capitalised spans ("Renault Logan", "Ms. Tan");
- **phrases** that frames make values: a role ("as head chef", "I'm a barista"), what
  one switched to ("switched to an e-reader"), what one does ("I only read paper books"),
  what a possessive names ("my favourite band is ...", "... is my favourite band").

Each span knows its kind, so only like values are compared ("Wednesdays" with
"Mondays", never with "Lisbon"). General English only: no sentence of any data set.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from agentmem.ledger.cues import TIME_WORDS
from agentmem.ledger.patterns import OCCUPATIONS
from agentmem.text import STOPWORDS

#: Titles that open a name even at the start of a sentence ("Mr Whiskers is asleep").
_TITLES = frozenset("mr mrs ms miss dr prof sir dame aunt auntie uncle saint st".split())
#: Kinds whose shape alone says what they are of: one address replaces another.
STRONG = frozenset({"address", "email", "phone"})

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    "fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    "eighty|ninety|hundred|thousand"
)
_DAY = r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)days?"
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"\b[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+\b")),
    (
        "address",
        re.compile(
            r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][\w'\-]*\s+){1,3}(?:Road|Rd|Street|St|Lane|Ln|"
            r"Avenue|Ave|Drive|Way|Close|Court|Place|Crescent|Terrace|Square|Boulevard|Blvd|"
            r"Gardens|Grove|Row|Walk|Mews|Parade|Hill)\b"
        ),
    ),
    ("phone", re.compile(r"(?<![\w:])\+?\d[\d \-]{6,}\d\b")),
    (
        "time",
        re.compile(r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.)|\b\d{1,2}:\d{2}\b", re.I),
    ),
    ("day", re.compile(rf"\b{_DAY}(?:\s*(?:,|and|&|or|/)\s*{_DAY})*\b")),
    (
        "month",
        re.compile(
            r"(?<!^)(?<![.!?]\s)\b(?:January|February|March|April|May|June|July|August|"
            r"September|October|November|December)\b"
        ),
    ),
    (
        "money",
        re.compile(
            r"[£$€¥₹]\s?\d[\d,]*(?:\.\d+)?(?:\s?[kKmM]\b)?|\b\d[\d,]*(?:\.\d+)?\s?(?:k\s)?"
            r"(?:pounds|euros|dollars|quid|bucks|rupees|pesos|reais|francs|yen)\b"
        ),
    ),
    (
        "number",
        re.compile(
            rf"\b(?:\d[\d,]*(?:\.\d+)?%?|(?i:{_NUMBER_WORDS})(?:[\s\-](?i:{_NUMBER_WORDS}))*)"
            rf"(?:[\s\-]+(?P<unit>[a-z][a-z\-]+))?\b"
        ),
    ),
)
#: Units that make a number a duration or a count of times, not a value that holds.
_DURATIONS = frozenset(
    "second minute hour day night week weekend month year decade time o'clock am pm".split()
)
_CAP = r"[A-Z][\w'\-&]*\.?"
_PROPER = re.compile(
    rf"\b{_CAP}(?:\s+(?:of|de|da|do|del|la|le|van|von|am|upon|&|the)?\s*{_CAP})*(?<!\.)"
)
#: A name as a frame's value ("is a Mr. Osei", "Boogarins are").
_NAME = r"[A-Z][\w'\-&]*\.?(?:\s+[A-Z][\w'\-&]*)*"
#: A common-noun value: up to three lower-case words.
_RUN = r"[a-z][a-z\-]*(?:\s+[a-z][a-z\-]*){0,2}"
_PHRASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # a role: "as head chef", "being a marketing analyst", "I'm a barista", "she's a teacher"
    (
        "role",
        re.compile(
            rf"\b(?:(?i:as|being)\s+(?:a\s+|an\s+|the\s+|my\s+)?|(?i:I'm|I am|she's|he's|she is|"
            rf"he is|I became|became|I've become)\s+(?:now\s+|officially\s+|still\s+)?"
            rf"(?:a|an)\s+)(?P<v>{_RUN})"
        ),
    ),
    # a state said of oneself with "now": "I'm pescatarian now"
    ("role", re.compile(r"\b(?i:I'm|I am)\s+(?:officially\s+)?(?P<v>[a-z][\w\-]+)\s+now\b")),
    # what one switched to: "switched to an e-reader", "moved over to oat milk"
    (
        "object",
        re.compile(
            rf"\b(?i:switched|switching|changed|converted|upgraded|moved|gone|went)\s+"
            rf"(?:over\s+|back\s+)?to\s+(?:a\s+|an\s+|the\s+|my\s+)?(?P<v>{_RUN})"
        ),
    ),
    # what one does: "I only read paper books", "we drink oat milk"
    (
        "object",
        re.compile(
            rf"\b(?:I|[Ww]e)(?:'m|'re|\s+am|\s+are)?\s+(?:(?:only|always|usually|still|mostly|just|really|often|"
            rf"normally|mainly|basically)\s+)*(?P<a>[a-z]{{3,}})\s+(?:a\s+|an\s+|the\s+|my\s+|"
            rf"some\s+)?(?P<v>{_RUN})"
        ),
    ),
    # what a possessive names: "my favourite band is X", "the new address is X"
    (
        "named",
        re.compile(
            rf"\b(?:(?i:my|our|his|her|their)\s+(?:(?i:new|current|old|favourite|favorite)\s+)*|"
            rf"(?i:the)\s+(?:(?i:new|current)\s+)+)"
            rf"(?P<a>[a-z][\w\-]*(?:\s+[a-z][\w\-]*)?)\s+(?:is|are|was|were|has become)\s+"
            rf"(?:now\s+|still\s+|currently\s+)?(?:a\s+|an\s+|the\s+)?(?P<v>{_NAME}|{_RUN})"
        ),
    ),
    # "X is my favourite band", "Akosua has been my wife"
    (
        "named",
        re.compile(
            rf"(?P<v>\b{_NAME}|\b{_RUN})\s+(?:is|are|has been|have been)\s+(?:now\s+)?"
            rf"(?i:my|our)\s+(?:new\s+)?(?:(?:favourite|favorite)\s+)?(?P<a>[a-z][\w\-]*)"
        ),
    ),
)
#: A relation to the speaker, named: "my girlfriend Akosua", "Akosua has been my wife".
_RELATION_WORDS = (
    r"wife|husband|partner|boyfriend|girlfriend|fianc[eé]e?|ex|ex-wife|ex-husband|"
    r"ex-boyfriend|ex-girlfriend|friend|best friend|boss|manager|flatmate|roommate|colleague|"
    r"teacher|coach|tutor|landlord|landlady|doctor|therapist|trainer|neighbour|neighbor"
)
_RELATIONS = (
    re.compile(rf"\b(?i:my|our)\s+(?P<v>{_RELATION_WORDS}),?\s+(?P<a>[A-Z][\w'\-]+)"),
    re.compile(
        rf"\b(?P<a>[A-Z][\w'\-]+)(?:,| is| has been| is now| became)\s+(?:now\s+)?(?i:my|our)\s+"
        rf"(?:new\s+)?(?P<v>{_RELATION_WORDS})\b"
    ),
)
#: Words a value never starts or ends with (a frame caught a pronoun or a filler).
_NOT_VALUES = frozenset(
    """it that this them him her me you us everything something anything nothing one thing
    things stuff lot bit way time day week month year job work home there here again now
    today yesterday tomorrow soon back up out down over all some any both each more less
    just really still even very so too also much many kind sort actually honestly literally
    basically probably going gonna doing done getting got good great fine okay ok sure
    lovely nice bad new old same different other another own""".split()
) | frozenset(_NUMBER_WORDS.split("|"))
#: Words of a phrase after which the value has ended (a verb follows a noun phrase).
_FOLLOWERS = frozenset("i you he she we they it the a an my our his her that this".split())


@dataclass(frozen=True)
class Span:
    """A value said in a sentence.

    Attributes:
        text: The value as said ("Mondays and Fridays", "two sugars").
        kind: Its shape: address, email, phone, time, day, month, money, number,
            proper, role, object or named.
        start: Where it starts in the sentence.
        end: Where it ends.
        aspect: What a frame says it is of ("band" in "my favourite band is X", the verb
            of "I read X", a number's unit); empty when the frame says nothing.
    """

    text: str
    kind: str
    start: int
    end: int
    aspect: str = ""

    @property
    def key(self) -> str:
        """The value normalised for comparison."""
        return " ".join(re.sub(r"[^\w\s]", " ", self.text.lower()).split())


@functools.lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """Return a crude stem: plural, -ing, -ed, -er and a final e off ("swimmer" -> "swim")."""
    word = word.lower().strip("'-")
    if word.endswith("'s"):
        word = word[:-2]
    suffixes = (
        ("ies", "y"),
        ("ing", ""),
        ("ed", ""),
        ("ers", ""),
        ("er", ""),
        ("es", ""),
        ("s", ""),
    )
    for suffix, keep in suffixes:
        if len(word) > len(suffix) + 2 and word.endswith(suffix) and not word.endswith("ss"):
            word = word[: -len(suffix)] + keep
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiousl":
        word = word[:-1]  # swimm -> swim
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]  # move -> mov, like moved
    return word


def _trim_phrase(sentence: str, start: int, text: str) -> tuple[int, int, str] | None:
    """Cut a phrase at its first function word, and a verb that follows it."""
    words = text.split()
    kept: list[str] = []
    for word in words:
        if word in STOPWORDS or word in _NOT_VALUES:
            break
        kept.append(word)
    rest = sentence[start + len(" ".join(words[: len(kept)])) :].split()
    if len(kept) >= 2 and rest and rest[0].lower().strip(",.") in _FOLLOWERS:
        kept.pop()  # "marketing manager means I ...": the verb is no part of the value
    if not kept:
        return None
    value = " ".join(kept)
    return start, start + len(value), value


def shaped_spans(sentence: str) -> list[Span]:
    """Return the sentence's shaped values (addresses, days, numbers, ...), in order."""
    spans: list[Span] = []
    taken: list[tuple[int, int]] = []
    for kind, regex in _SHAPES:
        for match in regex.finditer(sentence):
            start, end = match.span()
            if any(s < end and start < e for s, e in taken):
                continue
            text = match.group(0).strip()
            unit = ""
            if kind == "number":
                said = match.group("unit") or ""
                if said.lower() in _DURATIONS_SAID or stem(said) in _DURATIONS:
                    continue  # "two years in Lisbon": how long, not what holds
                number = match.group(0)[: len(match.group(0)) - len(said)].rstrip(" -")
                if not said or said in STOPWORDS or said in _NOT_VALUES:
                    if not number[:1].isdigit():
                        continue  # a bare "one" or "two" is too common to be a value
                    text, end = number, start + len(number)
                else:
                    unit = stem(said)
            taken.append((start, end))
            spans.append(Span(text, kind, start, end, unit))
    return sorted(spans, key=lambda s: s.start)


#: Duration words as said (checked before stemming lets "minutes" through as "minut").
_DURATIONS_SAID = frozenset(
    "seconds minutes hours days nights weeks weekends months years decades times".split()
)


def proper_spans(sentence: str, known_names: frozenset[str], taken: list[Span]) -> list[Span]:
    """Return the capitalised spans of a sentence that are values, not sentence openers.

    A sentence's first word is a value only when the dialogue also capitalises it
    elsewhere (``known_names``, lower-cased): "Swimming is on Wednesdays now" opens with a
    common word, "Boogarins are my favourite band" with a name.
    """
    spans: list[Span] = []
    first = len(sentence) - len(sentence.lstrip(" \"'(*"))
    for match in _PROPER.finditer(sentence):
        start, end = match.span()
        text = match.group(0)
        words = text.split()
        if start == first or sentence[:start].rstrip().endswith((":", "—", "-")):
            opener = words[0].lower().strip(".")
            if opener not in known_names and not (opener in _TITLES and len(words) > 1):
                words = words[1:]
                if not words:
                    continue
                start = sentence.index(words[0], start)
                text = sentence[start:end]
        lowered = words[0].lower().strip(".")
        if lowered in STOPWORDS and len(words) > 1:
            words = words[1:]  # "The Bear" at the start of a sentence: Bear
            lowered = words[0].lower().strip(".")
            start = sentence.index(words[0], start)
            text = sentence[start:end]
        if lowered in ("i", "i'm", "i've", "i'd", "i'll") or lowered in STOPWORDS:
            continue
        if lowered in TIME_WORDS and len(words) == 1:
            continue
        if any(s.start < end and start < s.end for s in taken):
            continue
        text = text.removesuffix("'s").removesuffix("\u2019s")  # "Mariana's" is Mariana
        spans.append(Span(text, "proper", start, start + len(text)))
    return spans


def _occupation_cut(text: str) -> str:
    """Cut a role after its last occupation word, if it has one."""
    words = text.split()
    known = [n for n, w in enumerate(words) if w.lower() in OCCUPATIONS]
    return " ".join(words[: known[-1] + 1]) if known else text


def phrase_spans(sentence: str) -> list[Span]:
    """Return the values frames make: roles, objects, named aspects (a name stays proper)."""
    spans: list[Span] = []
    for kind, regex in _PHRASES:
        for match in regex.finditer(sentence):
            said = match.group("v")
            if said[:1].isupper():
                start, end, text = match.start("v"), match.end("v"), said.rstrip(".")
                kind = "proper"
            else:
                trimmed = _trim_phrase(sentence, match.start("v"), said)
                if trimmed is None:
                    continue
                start, end, text = trimmed
                if kind == "role":
                    text = _occupation_cut(text)  # "senior analyst means ...": the role
                    end = start + len(text)
            said_aspect = (match.groupdict().get("a") or "").split()
            if kind == "object" and said_aspect and said_aspect[0] in _NOT_VERBS:
                continue  # "I was fourteen", "we have ...": no verb of doing
            aspect = [w for w in said_aspect if w not in _NOT_ASPECTS]
            spans.append(Span(text, kind, start, end, stem(aspect[-1]) if aspect else ""))
    return spans


#: Words after "I" that are no verb one does something with ("I was", "I think").
_NOT_VERBS = STOPWORDS | frozenset(
    "was were am got get guess mean meant think thought know knew feel felt hope wish wonder "
    "suppose bet told said say tell miss missed love loved hate hated want wanted need needed "
    "can could would should might will shall must start started starting begin began begun "
    "stop stopped try tried trying keep kept decide decided plan planned used enjoy enjoyed "
    "like liked remember realize realise realized realised learn learned learnt saw see "
    "talked talk wanted finished finish".split()
)
#: Words a frame's aspect never is ("my X is" where X is a filler).
_NOT_ASPECTS = STOPWORDS | _NOT_VALUES | frozenset({"favourite", "favorite"})


def relation_spans(sentence: str) -> list[Span]:
    """Return what a named person is to the speaker ("girlfriend", aspect "akosua")."""
    return [
        Span(m.group("v"), "relation", m.start("v"), m.end("v"), m.group("a").lower())
        for regex in _RELATIONS
        for m in regex.finditer(sentence)
    ]


def read_values(sentence: str, known_names: frozenset[str]) -> list[Span]:
    """Return every value a sentence says, in order: shaped, framed, then proper nouns.

    A proper noun a frame names keeps the frame's aspect ("band" in "X is my favourite
    band"); a phrase inside a shaped value or a name is dropped.
    """
    shaped = shaped_spans(sentence)
    framed = [p for p in phrase_spans(sentence) if not _overlaps(p, shaped)]
    names = proper_spans(sentence, known_names, shaped)
    found = list(shaped)
    for name in names:
        frame = next((f for f in framed if f.kind == "proper" and _overlaps(f, [name])), None)
        if frame is None:
            found.append(name)
        elif frame.start <= name.start and frame.end >= name.end:
            found.append(frame)  # "Wet Leg is my favourite band": the frame's whole name
        else:
            found.append(Span(name.text, "proper", name.start, name.end, frame.aspect))
    found += [f for f in framed if not _overlaps(f, names)]
    found += relation_spans(sentence)
    return sorted(found, key=lambda s: s.start)


def _overlaps(span: Span, others: list[Span]) -> bool:
    return any(o.start < span.end and span.start < o.end for o in others)


__all__ = [
    "STRONG",
    "Span",
    "phrase_spans",
    "proper_spans",
    "read_values",
    "relation_spans",
    "shaped_spans",
    "stem",
]
