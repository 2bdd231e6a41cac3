"""The rule-based fact extractor: hand-written patterns over common ways of saying things.

:class:`RuleExtractor` is the offline builder: patterns (in :mod:`agentmem.ledger.patterns`)
over common ways of saying where one lives, works, what one is into, pets, relatives,
favourites, origin and age. What it loses against a model: paraphrases outside its
patterns, coreference beyond "I/my/we", sentence-initial names and notes naming their speaker
("The user lives in ..." said by ``user``), implicit facts, and nuance (sarcasm,
hypotheticals other than simple negation).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Protocol

from agentmem.ledger.cues import (
    TIME_WORDS,
    WEAK_SHAPES,
    aspect_word,
    ended_values,
    is_correction,
    is_planned,
    is_temporary,
    shaped_changes,
)
from agentmem.ledger.patterns import (
    BOUNDARY,
    FAVOURITE,
    FAVOURITE_AFTER,
    FIRST_DAY,
    GENERIC,
    IMPLIED,
    LASTING,
    NEGATION,
    NOT_NAMES,
    NOT_NAMES_LOWER,
    OCCUPATIONS,
    PARTNER_RELATIONS,
    PATTERNS,
    PRONOUN,
    RELATION_NAMES,
    RELATIVE_NAMED,
    SORRY,
)
from agentmem.ledger.slots import ENDED, SINGLE_VALUED, Fact, normalise
from agentmem.text import STOPWORDS, split_sentences
from agentmem.types import Turn


def _trim(value: str) -> str:
    words: list[str] = []
    for word in value.split():
        if word.lower().strip(".,!?") in BOUNDARY and words:
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
    if name and name.lower() in RELATION_NAMES:
        # "Mum", "Dad", "Grandma" used as names are the speaker's relatives: one person
        # with "my mum".
        relation = name.lower()
        return (f"{speaker}'s {relation}", relation)
    if name and normalise(name) == normalise(speaker):
        return (speaker, None)  # "User lives in Lisbon", said by "user": the speaker
    if name and name.lower() not in STOPWORDS and name not in NOT_NAMES:
        return (name, None)
    return None


def _self_reference(sentence: str, speaker: str) -> str:
    """Read a sentence that opens by naming its speaker in the third person as their own.

    Notes about a user, as LangMem's tools or a profile write them, say "The user lives in
    Lisbon" and "User's favourite food is sushi" of the speaker ``user``: they read as
    "User lives in Lisbon" and "My favourite food is sushi". Only the speaker's own name
    counts, and only at the start of the sentence.
    """
    if not speaker.strip():
        return sentence
    name = re.escape(speaker.strip())
    owner = re.match(rf"(\W*)(?:the\s+)?{name}'s\s+", sentence, re.IGNORECASE)
    if owner:
        return f"{owner.group(1)}My {sentence[owner.end() :]}"
    named = re.match(rf"(\W*)the\s+({name})\b(?!')", sentence, re.IGNORECASE)
    if named:
        said = named.group(2)
        return f"{named.group(1)}{said[:1].upper()}{said[1:]}{sentence[named.end() :]}"
    return sentence


class PersonLog(Protocol):
    """Where :class:`RuleExtractor` keeps who each user's dialogue last named, turn by turn.

    :class:`~agentmem.storage.records.Records` is one (the ``named_persons`` table).
    """

    def person_before(self, user_id: str, turn_id: int) -> str | None:
        """Return the third party last named before turn ``turn_id``, if any."""
        ...

    def note_persons(
        self, user_id: str, turn_ids: Sequence[int], named: Sequence[tuple[int, str]]
    ) -> None:
        """Replace what is noted of ``turn_ids``: from each turn of ``named`` on, the
        dialogue last named that third party."""
        ...


class RuleExtractor:
    """Extracts slot facts and generic triples with hand-written patterns (offline).

    A sentence that opens with "she" or "he" is read as being about the last third party
    the dialogue named ("my sister Claire ..." then "She moved to Dublin"): the cheapest
    coreference that carries over, kept per user in dialogue order.

    Args:
        persons: Where to keep who was last named. Without one it is kept in memory, and a
            process restarted after a crash would read "She practises every evening" in
            a resumed write as about no one, where the process that was killed read it
            as about Lily; with one, :meth:`extract` starts each batch from the person
            named before its first turn.
    """

    name = "rules"

    def __init__(self, persons: PersonLog | None = None) -> None:
        self._last_person: dict[str, str] = {}
        self._persons = persons
        self._lock = threading.Lock()

    def extract(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Return the facts of each turn, by turn id."""
        if self._persons is None:
            return {turn.id: self.extract_turn(turn) for turn in turns}
        found: dict[int, list[Fact]] = {}
        with self._lock:
            for user_id in dict.fromkeys(t.user_id for t in turns):
                mine = sorted((t for t in turns if t.user_id == user_id), key=lambda t: t.id)
                before = self._persons.person_before(user_id, mine[0].id)
                if before is None:
                    self._last_person.pop(user_id, None)
                else:
                    self._last_person[user_id] = before
                named: list[tuple[int, str]] = []
                for turn in mine:
                    found[turn.id] = self._extract_and_note(turn)
                    person = self._last_person.get(user_id)
                    if person is not None and person != before:
                        named.append((turn.id, person))
                    before = person
                self._persons.note_persons(user_id, [t.id for t in mine], named)
        return {turn.id: found[turn.id] for turn in turns}

    def extract_turn(self, turn: Turn) -> list[Fact]:
        """Return the facts stated or implied by one turn."""
        with self._lock:
            return self._extract_and_note(turn)

    def _extract_and_note(self, turn: Turn) -> list[Fact]:
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
            pronoun = PRONOUN.match(sentence) if person else None
            if person and pronoun:
                named = person + (" is" if pronoun.group("is") else "")
                sentence = sentence[: pronoun.start("p")] + named + sentence[pronoun.end(0) :]
            sentence = _self_reference(sentence, speaker)
            negated = bool(re.search(NEGATION, sentence, re.I))
            found = self._slots(sentence, turn, speaker, negated)
            if is_temporary(sentence) or is_planned(sentence):
                # "I'm in Rome this week for a conference": a visit is not a home; "my
                # sister is moving to Lisbon next month": a plan is not one yet.
                found = [f for f in found if f.attribute not in LASTING or not f.polarity]
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
        for pattern in PATTERNS:
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
        for attribute, regex, stated, kind in IMPLIED:
            for match in regex.finditer(sentence):
                if any(s <= match.start() < e for s, e in taken):
                    continue
                value = _clean_value(match.group("v"), kind)
                if attribute == "job":
                    value = _occupation_cut(value)
                if value and _plausible(attribute, value, regex.pattern):
                    facts.append(self._fact(speaker, attribute, value, turn, speaker, stated, True))
        for match in FAVOURITE.finditer(sentence):
            value = _clean_value(match.group("v"), "np")
            if value:
                attribute = "favourite " + match.group("what")
                facts.append(
                    self._fact(speaker, attribute, value, turn, speaker, True, True, single=True)
                )
        facts += self._favourites_after(sentence, turn, speaker)
        facts += self._first_days(sentence, turn, speaker)
        for match in RELATIVE_NAMED.finditer(sentence):
            if match.group("v") not in NOT_NAMES:
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
        for match in FAVOURITE_AFTER.finditer(sentence):
            value = _clean_value(_strip_article(match.group("v")), "np")
            if not value or value.lower() in STOPWORDS or value in NOT_NAMES:
                continue
            attribute = "favourite " + match.group("what")
            facts.append(
                self._fact(speaker, attribute, value, turn, speaker, True, True, single=True)
            )
            for sorry in SORRY.finditer(sentence):
                old = _strip_article(sorry.group("v"))
                if old and normalise(old) != normalise(value) and old.lower() not in STOPWORDS:
                    facts.append(Fact(speaker, ENDED, old, turn.id, speaker, polarity=False))
        return facts

    def _first_days(self, sentence: str, turn: Turn, speaker: str) -> list[Fact]:
        """The start of a job, a school or a role, from "X's first day (as R) (at Y)"."""
        facts: list[Fact] = []
        for match in FIRST_DAY.finditer(sentence):
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
        match = GENERIC.match(sentence)
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
        return value if value.split() and value.split()[0].lower() in OCCUPATIONS else ""
    if kind == "place" or kind == "name":
        words = [w.strip(".,!?;:\"'()") for w in raw.split()]
        while words and (words[-1][:1].islower() or words[-1] in NOT_NAMES):
            words.pop()
        return " ".join(words)
    return _trim(raw)


def _occupation_cut(value: str) -> str:
    """Cut a job value after its last occupation word ("barista ran late" -> "barista")."""
    words = value.split()
    known = [i for i, w in enumerate(words) if w.lower() in OCCUPATIONS]
    return " ".join(words[: known[-1] + 1]) if known else " ".join(words[:3])


def _plausible(attribute: str, value: str, pattern: str) -> bool:
    lowered = value.lower()
    if lowered in STOPWORDS or lowered in NOT_NAMES_LOWER:
        return False
    if attribute in ("residence", "origin", "employer") and lowered.split()[0] in TIME_WORDS:
        return False  # "she moves in June": when, not where
    if attribute == "job" and ("became" in pattern or "become" in pattern):
        return any(w in OCCUPATIONS for w in lowered.split())
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


def _negates(sentence: str, value_start: int) -> bool:
    """Whether a negation word governs the clause before the value."""
    before = sentence[:value_start]
    clause = re.split(r"[,;]|\bbut\b", before)[-1]
    return bool(re.search(NEGATION, clause, re.I))


def _dedupe(facts: list[Fact]) -> list[Fact]:
    seen: set[tuple[str, str, str, bool]] = set()
    kept = []
    for fact in facts:
        key = (fact.subject_key, fact.attribute, fact.value_key, fact.polarity)
        if key not in seen:
            seen.add(key)
            kept.append(fact)
    return kept
