"""The rule extractor's tables: slot patterns, implied-subject patterns and word lists.

Internal to :mod:`agentmem.ledger`: :mod:`agentmem.ledger.rules` reads these. One regular
expression a line reads better than wrapped ones, so this module is exempt from the line
length rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Slots a temporary stay must not fill ("in Rome this week for a conference").
LASTING = {"residence", "employer", "job"}

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
NAME = r"[A-Z][\w'\-]+"
PLACE = r"(?P<v>[A-Z][\w'\-.]*(?:\s+(?:[A-Z][\w'\-.]*|de|da|do|del|la|le|of|upon|am))*)"
NP = r"(?P<v>[A-Za-z][\w'\-]*(?:\s+[A-Za-z][\w'\-]*){0,3})"
BOUNDARY = {
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
SUBJECT = (
    rf"(?P<subj>\bI\b|\bwe\b|\bWe\b|\b[Mm]y (?P<rel>{RELATIONS})(?:,? (?P<relname>{NAME}))?"
    rf"|\b(?P<name>{NAME}))"
)


@dataclass(frozen=True)
class SlotPattern:
    """A way of saying a slot's value: the slot, the regex, and what a match means."""

    attribute: str
    regex: re.Pattern[str]
    stated: bool = True
    polarity: bool = True
    value_kind: str = "np"  # "np", "place" or "name"


def _p(attribute: str, body: str, **options: object) -> SlotPattern:
    return SlotPattern(attribute, re.compile(rf"{SUBJECT}(?:\s+|(?=')){body}"), **options)  # type: ignore[arg-type]


_AUX = (
    r"(?:(?:'m|am|is|are|was|were|'ve been|have been|has been|had been|'ve|have|'re|'s|just|also|"
    r"now|recently|finally|actually|still|really|do not|don't|does not|doesn't|did not|didn't|"
    r"not|no longer|never|'m not|am not|isn't|aren't|wasn't|officially|happily|all|fully|"
    r"properly|safely)\s+)*"
)
PATTERNS: tuple[SlotPattern, ...] = (
    # residence
    _p(
        "residence",
        rf"{_AUX}(?:live|lives|living|reside|resides|residing|based) in {PLACE}",
        value_kind="place",
    ),
    _p(
        "residence",
        rf"{_AUX}(?:moved|relocated|move|moving|relocating|relocate)(?: back| over| out)?"
        rf"(?: from [A-Z][\w'\-.]*(?:\s+[A-Z][\w'\-.]*)*)? to {PLACE}",
        value_kind="place",
    ),
    _p(
        "residence",
        rf"{_AUX}(?:settled|settling)(?: down)?(?: into (?:[\w']+\s+){{1,3}})? in {PLACE}",
        value_kind="place",
    ),
    _p(
        "residence",
        rf"{_AUX}(?:moved|moving|settled|settling) into {PLACE}",
        value_kind="place",
    ),
    _p("residence", rf"{_AUX}retired to {PLACE}", value_kind="place"),
    _p(
        "origin",
        rf"{_AUX}(?:(?:am|'m|is|are|come|comes|came) (?:originally )?from|grew up in) {PLACE}",
        value_kind="place",
    ),
    # "I'm in Vancouver now": where one is now, said as lasting (a visit is filtered out).
    _p(
        "residence",
        rf"{_AUX}(?:am|'m|is|are|'re) (?:now |currently )?(?:settled )?in {PLACE}"
        r"(?=,?\s+(?:now|these days|nowadays|for good|permanently)\b)",
        value_kind="place",
    ),
    # job
    _p(
        "job",
        rf"{_AUX}(?:work|works|working|worked|started working|start working|employed) as (?:a |an )?{NP}",
    ),
    _p(
        "job",
        rf"{_AUX}(?:got|landed|took|accepted|started|start|have|has) (?:a |an |my |the )?(?:new )?(?:job|position|role) as (?:a |an )?{NP}",
    ),
    _p("job", rf"{_AUX}(?:became|become|becoming) (?:a |an )?{NP}"),
    _p(
        "job",
        rf"{_AUX}(?:left|quit|quitting|leaving|leave) (?:my |the |her |his )?job as (?:a |an )?{NP}",
        polarity=False,
    ),
    _p(
        "job",
        rf"{_AUX}(?:left|quit|quitting|leaving|leave) (?:my |the |her |his )?(?P<v>[\w\-]+(?: [\w\-]+)?) (?:job|position|gig)\b",
        polarity=False,
    ),
    _p(
        "employer",
        rf"{_AUX}(?:work|works|working) (?:at|for) (?P<v>{NAME}(?:\s+{NAME})*)",
        value_kind="name",
    ),
    # "Aarav started at Camp Hill today": where one now works or studies.
    _p(
        "employer",
        rf"{_AUX}(?:started|starts|starting|joined|joining) (?:at|with) "
        rf"(?P<v>{NAME}(?:\s+(?:{NAME}|do|da|de|of|&))*)",
        value_kind="name",
    ),
    _p("job", rf"{_AUX}(?:started|starts|starting) as (?:a |an |the )?{NP}"),
    # hobby
    _p(
        "hobby",
        rf"{_AUX}(?:really |so )?(?:into|obsessed with|hooked on|passionate about|addicted to) {NP}",
    ),
    _p("hobby", rf"{_AUX}(?:took|take|taking|takes) up {NP}"),
    _p("hobby", rf"{_AUX}all about {NP}"),
    _p(
        "hobby",
        rf"{_AUX}(?:lost interest in|gave up|give up|giving up|stopped|quit|done with|bored of|tired of) {NP}",
        polarity=False,
    ),
    # pets
    _p(
        "pet",
        rf"{_AUX}(?:have|has|got|adopted|adopt|bought|rescued|getting) (?:a |an |another |two |three )?(?P<v>(?:[\w\-]+ ){{0,2}}(?:{PETS})(?: (?:named|called) {NAME})?)\b",
    ),
    _p("job", rf"{_AUX}(?:a|an) {NP}", value_kind="occupation"),
    # age
    _p("age", rf"{_AUX}(?:am|'m|is|turned|turning|turn) (?P<v>\d{{1,3}})(?: years old)?\b"),
    # study
    _p("study", rf"{_AUX}(?:study|studies|studying|majoring in|major in) {NP}"),
)
# Sentences whose subject is implied: "Life in Reno is quiet", "My shift as a barista ...".
IMPLIED: tuple[tuple[str, re.Pattern[str], bool, str], ...] = (
    (
        "residence",
        re.compile(rf"\b(?:[Ll]ife|[Ww]inter|[Ss]ummer|[Rr]ent|[Tt]he weather) in {PLACE}"),
        False,
        "place",
    ),
    (
        "residence",
        re.compile(
            rf"\b(?:[Mm]y|[Oo]ur) (?:new )?(?:home|place|apartment|flat|house|neighbou?rhood) in {PLACE}"
        ),
        False,
        "place",
    ),
    (
        "job",
        re.compile(rf"\b[Mm]y (?:shift|job|day|work|boss|manager|shifts) as (?:a |an )?{NP}"),
        False,
        "np",
    ),
    (
        "job",
        re.compile(rf"\b[Mm]y (?:job|work|position|role|career) (?:is|as) (?:a |an )?{NP}"),
        True,
        "np",
    ),
    (
        "hobby",
        re.compile(
            rf"\b[Mm]y (?:new |favou?rite )?(?:hobby|pastime|passion) (?:is|has become|these days is) {NP}"
        ),
        True,
        "np",
    ),
)
FAVOURITE = re.compile(
    r"\b[Mm]y (?:absolute |all-time )?favou?rite (?P<what>[a-z]+(?: [a-z]+)?) (?:is|are|has to be) "
    + NP
)
#: "Boogarins are my favourite band now", "sorry sushi, mole is my favourite food now".
FAVOURITE_AFTER = re.compile(
    r"(?:^|[,:;.!]\s+|\s[\u2014\u2013-]\s+)(?P<v>[\w'][\w'\-]*(?: [\w'][\w'\-]*){0,3}) "
    r"(?:is|are) (?:now )?(?:officially )?my (?:new )?(?:absolute |all-time )?favou?rite "
    r"(?P<what>[a-z]+(?: (?!now\b)[a-z]+)?)\b(?= now\b|[,.!;]|$)"
)
#: "sorry sushi": the value a new favourite displaces, addressed as it is given up.
SORRY = re.compile(r"\b[Ss]orry,? (?P<v>[\w'][\w'\-]*(?: [\w'][\w'\-]*){0,2}?)(?=[,.!;]|$)")
#: The start of something: "Lily's first day at Hillcrest", "my first shift as head chef at
#: Taberna do Mar". The possessor is the subject; "as" names a role, "at" a place.
_ROLE_WORD = r"(?!(?:at|with|for|and|in|on|today|tonight|this|since)\b)[a-z][\w\-]*"
FIRST_DAY = re.compile(
    rf"(?:^|\b)(?P<who>[Mm]y|[Oo]ur|[Hh]is|[Hh]er|{NAME}'s) (?:very )?first (?:full )?"
    r"(?:day|week|shift|service|night|term|month|lesson|class|job)(?: back)?"
    rf"(?: as (?:a |an |the )?(?P<role>{_ROLE_WORD}(?: {_ROLE_WORD}){{0,2}}))?"
    rf"(?: (?:at|with|for) (?P<v>{NAME}(?:\s+(?:{NAME}|do|da|de|of|&))*))?"
    r"(?=[\s,.!;:\u2014]|$)"
)
RELATIVE_NAMED = re.compile(rf"\b[Mm]y (?P<rel>{RELATIONS}),? (?P<v>{NAME})\b")
OCCUPATIONS = frozenset(
    """accountant actor actress analyst apprentice architect artist assistant baker banker barber barista
    bartender biologist blogger bookkeeper builder butcher carpenter cashier chef chemist
    cleaner clerk coach consultant cook counselor counsellor courier dancer dentist designer
    developer dietitian doctor driver economist editor electrician engineer farmer firefighter
    gardener designer hairdresser historian illustrator instructor intern janitor jeweler
    journalist judge lawyer lecturer librarian lifeguard machinist manager mechanic midwife
    model musician nanny nurse optician painter paramedic pharmacist photographer physician
    physicist physiotherapist pilot plumber poet police officer politician postman principal professor
    programmer psychologist receptionist reporter researcher retailer salesman scientist
    secretary singer social worker soldier student surgeon tailor teacher technician therapist
    translator tutor veterinarian vet waiter waitress welder writer youtuber streamer""".split()
)


RELATION_NAMES = frozenset(
    "mum mom mother dad father mama papa grandma grandmother grandpa grandfather gran nan "
    "granny grandad".split()
)


NOT_NAMES = frozenset(
    "Honestly Actually Also Anyway Today Yesterday Tomorrow Now Then Yes No Oh Well So And "
    "But Life Last Next This That These Those It Its There Here What When Where Why How Sure "
    "Lately Recently Finally Guess Maybe Haha Wow Hey Hi Hello Thanks Thank Good Great Nice "
    "Cool Sounds Ugh Sorry Just".split()
)


PRONOUN = re.compile(
    r"^\W*(?:(?i:oh|and|so|yes|yeah|yep|well|but|also|now|anyway|apparently|actually)\W+)*"
    r"(?P<p>[Ss]he|[Hh]e)\b(?P<is>'s\b)?"
)
#: A subject-verb-object sentence: a triple for the graph when no slot pattern matched.
GENERIC = re.compile(
    rf"^\W*{SUBJECT}\s+(?:'m\s+|am\s+|'ve\s+|have\s+|had\s+|just\s+|really\s+)*(?P<verb>[a-z]+(?:ed|s|ing)?)\b\s*(?P<rest>.*)$"
)
NEGATION = r"(?:\bnot\b|n't\b|\bnever\b|\bno longer\b)"
NOT_NAMES_LOWER = frozenset(w.lower() for w in NOT_NAMES)
