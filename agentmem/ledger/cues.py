"""Small lexicons of change cues, and the values they govern, for the offline fact path.

The slot patterns in :mod:`agentmem.ledger.patterns` know how people say where they live or
what they do; they do not know every way a value *ends*, nor when a statement is only
temporary. This module holds those cues as general English (no sentence of any data
set), each a mechanism rather than a phrase:

- **endings** end the value they govern, in any aspect and for any subject: a name that
  passed away, a car that was sold, a course that was dropped, "no more X", "X and I broke
  up", "out of X for good", "moved from X to Y" (X ends);
- **temporariness** ("this week", "visiting", "for a conference") marks a sentence whose
  place is a visit, not a home;
- **change** cues ("new", "now", "just started", "officially") mark a statement that
  replaces what was said before even when it only implies its value.
"""

from __future__ import annotations

import re

from agentmem.text import STOPWORDS

_CAP = r"[A-Z][\w'\-.&]*"
#: A proper-noun span: capitalised words, joined by a few lower-case particles.
_PROPER = rf"{_CAP}(?:\s+(?:of|de|da|do|del|la|le|van|von|am|upon|&)?\s*{_CAP})*"
_DET = r"(?:(?:my|our|the|her|his|their|a|an|this|that)\s+)?"
_SPAN = rf"(?P<v>{_PROPER}|[a-z][\w'\-]*(?:\s+[a-z][\w'\-]*)?)"

#: Verbs (and phrases) that end their object: "sold the van", "dropped Italian".
_ENDING_VERBS = (
    r"sold|selling|gave away|given away|got rid of|rehome|rehomed|rehoming|dropped|dropping|quit|"
    r"quitting|cancelled|canceled|cancelling|canceling|ditched|dumped|broke up with|"
    r"split up with|split from|divorced|divorcing|stopped|stopping|gave up|give up|given up|"
    r"giving up|moved out of|moved away from|left|leaving|no longer have|no longer own|"
    r"no longer go to|no longer work at|no longer work for|no longer play|no longer drive|lost"
)
_ENDS_OBJECT = re.compile(rf"\b(?i:{_ENDING_VERBS})\s+(?i:{_DET}){_SPAN}")
#: A subject that ended: "Pixel passed away", "my old van died".
_SUBJECT_ENDINGS = (
    r"(?:has\s+|had\s+|just\s+|finally\s+)?(?:passed away|passed|died|was put down|"
    r"was put to sleep|ran away|got stolen|was stolen|was written off|closed down|closed|"
    r"shut down|went bust|got cancelled|was cancelled|is over|ended)\b"
)
_ENDS_SUBJECT = (
    re.compile(rf"(?P<v>{_PROPER})\s+{_SUBJECT_ENDINGS}"),
    re.compile(
        rf"\b(?i:my|our)\s+(?:old\s+|dear\s+|poor\s+|beloved\s+|little\s+)?"
        rf"(?P<v>[a-z][\w\-]*(?:\s+[a-z][\w\-]*)?)\s+{_SUBJECT_ENDINGS}"
    ),
)
#: "no more X", "goodbye X", "out of X for good", "X is over", "X and I broke up".
_ENDS_OTHER = (
    re.compile(rf"\b(?:[Nn]o more|[Gg]oodbye|[Bb]ye bye|[Bb]ye-bye|[Ff]arewell)\s+{_DET}{_SPAN}"),
    re.compile(rf"\b(?i:out of) (?P<v>{_PROPER}) for good\b"),
    # "the Vespa isn't mine anymore", "Bluebell is no longer ours"
    re.compile(
        rf"(?P<v>{_PROPER})\s+(?:isn't|is not|is no longer|aren't|are no longer)\s+"
        rf"(?:mine|ours|my \w+|our \w+)\b"
    ),
    # "officially off the statins", "completely off caffeine", "off X for good"
    re.compile(
        rf"\b(?i:officially|completely|finally|totally|now) off\s+(?i:{_DET}){_SPAN}|"
        rf"\boff\s+(?i:{_DET})(?P<v2>{_PROPER}|[a-z][\w'\-]*) (?:for good|now)\b"
    ),
    # "the sushi era is over", "my running days are over"
    re.compile(
        r"\b(?i:the|my|our)\s+(?P<v>[\w'\-]+) (?:era|phase|days) (?:is|are) (?:over|done)\b"
    ),
    re.compile(
        rf"\b(?i:quit|quitting|left|leaving|resigned from)\s+(?:my\s+)?(?:job|position|role|post)"
        rf"\s+(?:at|with|in)\s+(?:the\s+)?(?P<v>{_PROPER})"
    ),
    re.compile(rf"(?P<v>{_PROPER}) and I (?:broke up|split up|split|are over|are done)\b"),
    re.compile(rf"\b(?:things|it) with (?P<v>{_PROPER}) (?:is|are) over\b"),
    re.compile(
        rf"\b(?i:moved|switched|changed|went|transferred|relocated)\s+(?:over\s+|back\s+)?"
        rf"from {_DET}(?P<v>{_PROPER}|[a-z][\w'\-]*(?:\s+[a-z][\w'\-]*)?) to\b"
    ),
    # "I don't drink coffee any more", "she doesn't play tennis anymore"
    re.compile(
        rf"\b(?i:don't|do not|doesn't|does not|won't|can't|cannot)\s+[a-z]+\s+(?i:{_DET})"
        rf"(?P<v>{_PROPER}|[a-z][\w'\-]*(?:\s+[a-z][\w'\-]*)?)\s+(?i:any ?more)\b"
    ),
    # "I'm no longer a quantity surveyor", "I no longer eat meat"
    re.compile(
        rf"\b(?i:no longer)\s+(?:(?i:a|an|the|in|at|with)\s+(?P<v>{_PROPER}|"
        rf"[a-z][\w'\-]*(?:\s+[a-z][\w'\-]*)?)|(?!(?i:have|own|go|work|play|drive|my|our)\b)"
        rf"[a-z]+\s+(?i:{_DET})(?P<v2>{_PROPER}|[a-z][\w'\-]*(?:\s+[a-z][\w'\-]*)?))"
    ),
    # "I'm not a smoker anymore", "he isn't my manager any more"
    re.compile(
        rf"\b(?i:I'm not|I am not|isn't|is not|aren't|are not|wasn't)\s+(?i:a|an|the)\s+"
        rf"(?P<v>{_PROPER}|[a-z][\w'\-]*(?:\s+[a-z][\w'\-]*)?)\s+(?i:any ?more)\b"
    ),
)
#: Objects too vague to end anything by themselves ("I quit it", "I stopped by").
_VAGUE = frozenset(
    """it that this them him her me you us everything something anything nothing one thing
    things stuff lot bit way time day week month year job work by in at for off early late
    home there here again now today yesterday tomorrow soon back up out down over all some
    any both each more less eventually already just really still even""".split()
)

#: A visit, not a home: these never make a lasting residence or employer fact.
_TEMPORARY = re.compile(
    r"\b(?:this|next) (?:week|weekend)\b|\bfor (?:the|a) (?:week|weekend|few days|"
    r"couple of days|night|day|conference|wedding|funeral|holiday|holidays|vacation|trip|visit|"
    r"festival|meeting|work trip|business trip)\b|\bvisiting\b|\bon (?:a |my |our )?(?:trip|"
    r"holiday|vacation|business trip|work trip|layover|stopover)\b|\bfor a few (?:days|nights)\b|"
    r"\buntil (?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|tomorrow)\b|"
    r"\bflying (?:back|home)\b|\bstopover\b|\blayover\b",
    re.IGNORECASE,
)
#: Words of a lasting move, which a time reference does not make temporary ("we moved to
#: Denver this week").
_LASTING = re.compile(
    r"\b(?:moved|moving|relocated|relocating|settled|live|lives|living|home|for good|"
    r"permanently)\b",
    re.IGNORECASE,
)
#: Words that say a statement replaces what came before.
_CHANGE = re.compile(
    r"\b(?:new|now|just started|started|starting|switched|officially|finally|moved|since|"
    r"settled|first day|first week|anymore|any more|no longer|these days|nowadays|instead)\b",
    re.IGNORECASE,
)


def _clean(value: str) -> str:
    words = [w.strip(".,!?;:\"'()") for w in value.split()]
    while words and words[0].lower() in ("the", "a", "an", "my", "our"):
        words.pop(0)
    # "quit the bookshop last Friday": a time said after the object is no part of it.
    while words and (
        words[-1].lower() in STOPWORDS
        or words[-1].lower() in _VAGUE
        or words[-1].lower() in _WHEN_AFTER
        or words[-1].lower() in TIME_WORDS
    ):
        words.pop()
    return " ".join(w for w in words if w)


#: Words of a time that may follow an ended object ("last Friday", "this morning").
_WHEN_AFTER = frozenset(
    "last next this past coming yesterday tonight morning afternoon evening night week "
    "weekend month year".split()
)


def ended_values(sentence: str) -> list[str]:
    """Return the values a sentence says have ended, in order of appearance.

    >>> ended_values("Sold the Fiesta on Sunday, no more driving for me.")
    ['Fiesta', 'driving']
    """
    found: list[tuple[int, str]] = []
    for regex in (_ENDS_OBJECT, *_ENDS_SUBJECT, *_ENDS_OTHER):
        for match in regex.finditer(sentence):
            group = "v" if match.group("v") else "v2"
            value = _clean(match.group(group) or "")
            first = value.split()[0].lower() if value else ""
            named = value[:1].isupper() and len(value.split()) > 1  # "To Limani", "The Ivy"
            if not value or (first in _VAGUE or first in STOPWORDS) and not named:
                continue
            if regex is _ENDS_OBJECT and value[:1].islower() and _leaving_a_moment(match):
                continue
            if (
                regex is _ENDS_OBJECT
                and match.group(0).split()[0].lower() in _SETS_DOWN
                and _SET_DOWN.match(sentence, match.end())
            ):
                continue
            found.append((match.start(group), value))
    seen: set[str] = set()
    ordered = []
    for _, value in sorted(found):
        if value.lower() not in seen:
            seen.add(value.lower())
            ordered.append(value)
    return ordered


def _leaving_a_moment(match: re.Match[str]) -> bool:
    """Whether "left" or "lost" governs a passing moment, not a lasting value."""
    words = match.group(0).lower().split()
    # "left the party early", "lost the match": a common noun ends with these only when
    # it is one's own ("left my job", "lost my dog").
    return words[0] in {"left", "leaving", "lost"} and words[1:2] != ["my"]


#: "Dropped Obinna at the university", "left the keys at home": a ride or a place, not an
#: ending.
_SET_DOWN = re.compile(r"\s+(?:off|at|outside|by)\b", re.IGNORECASE)
_SETS_DOWN = frozenset({"dropped", "dropping", "left", "leaving"})


def is_temporary(sentence: str) -> bool:
    """Whether the sentence describes a visit or a stay, not a lasting state."""
    return bool(_TEMPORARY.search(sentence)) and not _LASTING.search(sentence)


#: A plan or a hypothetical: what it names does not hold yet ("moving to Lisbon next month").
_PLANNED = re.compile(
    r"\b(?:next (?:week|month|year|summer|spring|autumn|fall|winter|term|season)|"
    r"in (?:a|two|three|four|six|a few|a couple of) (?:weeks|months|years)|"
    r"(?:planning|plan|plans|hoping|hope|want|wants|going|thinking of|thinking about|"
    r"considering|might|may|could)(?: to)? (?:move|moving|relocate|relocating|live))\b",
    re.IGNORECASE,
)


def is_planned(sentence: str) -> bool:
    """Whether the sentence speaks of a plan or a hypothetical, not of what holds now."""
    return bool(_PLANNED.search(sentence))


def signals_change(sentence: str) -> bool:
    """Whether the sentence says that something is new or different now."""
    return bool(_CHANGE.search(sentence))


#: The prepositions that frame a value in place-like aspects: "in Leeds", "at Acme".
_FRAMES = {"in": ("in",), "to": ("in", "to"), "at": ("at",), "for": ("for", "at"), "into": ("in",)}
_FRAMED = re.compile(rf"\b(?P<p>in|to|at|for|into)\s+(?:the\s+)?(?P<v>{_PROPER})")


def frame_of(sentence: str, value: str) -> tuple[str, ...]:
    """Return the prepositions that frame ``value`` in ``sentence`` ("living in X": in).

    A move "to X" is framed like a stay "in X"; "into X" likewise.
    """
    for match in _FRAMED.finditer(sentence):
        if match.group("v").lower().startswith(value.lower()):
            return _FRAMES[match.group("p")]
    return ()


def framed_values(sentence: str, prepositions: tuple[str, ...]) -> list[str]:
    """Return the proper-noun values ``sentence`` puts after one of ``prepositions``.

    A month, a weekday or a season is when, not where ("she moves in June").
    """
    return [
        _clean(m.group("v"))
        for m in _FRAMED.finditer(sentence)
        if m.group("p") in prepositions
        and _clean(m.group("v"))
        and _clean(m.group("v")).split()[0].lower() not in TIME_WORDS
    ]


#: Names of months, weekdays, seasons and holidays: when something happens, never where.
TIME_WORDS = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday spring summer autumn fall "
    "winter christmas easter".split()
)


#: Values with a shape of their own: the shape names the aspect ("phone number").
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"\b[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+\b")),
    ("phone number", re.compile(r"(?<![\w:])\+?\d[\d \-]{6,}\d\b")),
    ("time", re.compile(r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.)|\b\d{1,2}:\d{2}\b", re.I)),
    (
        "day",
        re.compile(r"\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)days?\b"),
    ),
)
#: Shapes common enough that a change needs a shared aspect word ("gym", "bridge") too.
WEAK_SHAPES = frozenset({"time", "day"})
_CORRECTION = re.compile(
    r"\b(?:sorry|I meant|I mean|correction|scratch that|my mistake|typo)\b", re.IGNORECASE
)


def shaped_values(sentence: str) -> list[tuple[str, str]]:
    """Return ``(shape, value)`` for the emails, phone numbers, times and days in a sentence."""
    found: list[tuple[int, str, str]] = []
    taken: list[tuple[int, int]] = []
    for shape, regex in _SHAPES:
        for match in regex.finditer(sentence):
            if any(s < match.end() and match.start() < e for s, e in taken):
                continue
            taken.append(match.span())
            found.append((match.start(), shape, match.group(0).strip()))
    return [(shape, value) for _, shape, value in sorted(found)]


def is_correction(sentence: str) -> bool:
    """Whether the sentence corrects something just said ("sorry, I meant Tuesdays")."""
    return bool(_CORRECTION.search(sentence))


def aspect_word(sentence: str, value: str) -> str | None:
    """Return the content word nearest before ``value``: what a time or a day is of.

    A name is no aspect ("started at Deloitte on Monday" says when, not of what).
    """
    position = sentence.find(value)
    before = re.findall(r"[A-Za-z][a-z\-]+", sentence[: max(position, 0)])
    for word in reversed(before):
        lowered = word.lower()
        if word[0].isupper():
            continue
        if (
            len(lowered) > 2
            and lowered not in STOPWORDS
            and lowered not in _VAGUE
            and lowered not in _NOT_ASPECTS
            and not _CHANGE.fullmatch(lowered)
        ):
            return lowered
    return None


_NOT_ASPECTS = frozenset("sorry meant mean correction mistake typo please update".split())
_REJECTED = re.compile(
    r"\b(?:not|instead of|rather than|no longer|never)\s+(?:on\s+|at\s+)?$", re.I
)


def shaped_changes(sentence: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Return the shaped values a change or correction states, and those it rejects.

    Only for a sentence that signals a change or corrects itself: "New email is X",
    "I go to the gym at 6am now", "sorry, I meant Thursdays, not Tuesdays" (Thursdays
    stated, Tuesdays rejected).
    """
    if not (signals_change(sentence) or is_correction(sentence)):
        return [], []
    stated: list[tuple[str, str]] = []
    rejected: list[str] = []
    for shape, value in shaped_values(sentence):
        before = sentence[: sentence.find(value)]
        if _REJECTED.search(before[-20:]):
            rejected.append(value)
        else:
            stated.append((shape, value))
    return stated, rejected
