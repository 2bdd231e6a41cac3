"""Scoring a replay: LoCoMo's answer metrics, evidence recall and stale-fact consistency.

The answer metrics follow LoCoMo's official scorer (``task_eval/evaluation.py`` of
snap-research/locomo), re-implemented here:

* normalisation: drop commas, lower-case, strip ASCII punctuation, drop the words
  ``a``, ``an``, ``the`` and ``and``, fold white space;
* F1: token overlap after Porter stemming (NLTK's ``PorterStemmer``);
* category 1 (multi-hop): prediction and gold are split on commas, and the score is the
  mean over gold parts of the best F1 against any predicted part;
* category 3 (open-domain): only the gold text before the first ``;`` counts;
* category 5 (adversarial): correct (1) iff the prediction says ``not mentioned`` or
  ``no information available``, else 0;
* exact match: the normalised prediction and gold have the same *set* of words.

The other metrics judge the context a system put in front of the model:

* evidence recall: the share of a question's evidence turns present in the context. An
  item counts for the turns it came from if it came from at most
  :data:`MAX_EVIDENCE_SOURCES` turns: a summary of a whole session does not "contain"
  every turn of it. An aggregate of more turns counts for an evidence turn it came from
  whose whole text it quotes.
* answer in context: whether the normalised gold answer occurs, as a contiguous run of
  words, in the normalised context text (category 1: the share of comma-separated gold
  parts that occur). Not defined for category 5, which has no answer, nor for an answer
  that is only a yes/no verdict ("No", "Likely no": any context may hold the word).
* stale leak: an item is a stale leak when it is presented as current (not marked as no
  longer current), mentions a ``stale`` value (normalised whole-word match) and does not
  also mention the gold current answer. An item that mentions both states the change
  ("I left the barista job and now I work as a librarian") rather than presenting the old
  value as current. Counted on every question with ``stale`` values, whatever its kind. A
  yes/no question (kind ``negation``) has no current value to mention, so the answer
  excuses nothing there. An item drawn only from the question's evidence turns is no
  leak either: those turns state the current truth, and for an ending ("I sold the van")
  they name the ended value while saying that it ended. Likewise an aggregate (a memo, a
  tree node) that mentions the stale value only inside a sentence it quotes from an
  evidence turn: outside that quote it says nothing of the old value. This is the
  "any mention" rule, the only one for files without the annotations below.
* stale leak by the gold rule: for a question whose file annotates ``stale_evidence``
  (the turns asserting the old value as then true about the asked subject and aspect).
  An item leaks iff it is presented as current, mentions a ``stale`` value (normalised
  whole-word match), does not carry the change beside it, and either draws on a
  ``stale_evidence`` turn (its ``dia_ids`` meet them) or is a derived item (see
  :func:`is_derived`) drawn from a turn of the question's subject (``subject_turns``:
  the turns of the speakers of the ``stale_evidence`` turns). An item carries the change
  beside it when it mentions the gold current answer (value kinds only, as above) or
  when the stale value occurs inside a change note: a bracketed span ``[...]`` holding
  the value and a change marker (an arrow such as ``→`` or ``->``, or words such as "no
  longer", "ended", "not anymore", "until", "formerly"; see :data:`CHANGE_WORDS`), as in
  ``[since 3 May 2023: residence Lisbon → Berlin]`` or ``[since 3 May 2023: no longer
  has the cat Mochi]``. An image caption (``[shares a photo: ...]``) is no note. Each
  stale value an item mentions must be carried so: a note about one value excuses no
  other. So the old value in someone else's facts, in the news of the change (a
  ``change_evidence`` turn) and in remarks after it (turns not in ``stale_evidence``)
  leaks no more. An aggregate (a memo, a tree node) that draws on a ``stale_evidence``
  turn but mentions the value only inside sentences it quotes whole from its other
  source turns (the news, a remark after it) repeats those turns and does not leak.
* stale ranked above current: for a question with ``stale`` values and a value answer
  (:func:`has_value_answer`), whether the best-ranked leaking item (the gold rule where
  annotated, else the any-mention rule) comes before the best-ranked current item that
  mentions the answer, or leaks while no current item mentions the answer.
* keep recall: for a ``keep`` question, whether the gold answer appears (normalised
  whole-word match) in an item presented as current.
* false invalidation: for a question whose answer is a current value (see
  :func:`has_value_answer`), whether the gold answer appears in the context only in items
  marked as no longer current: the current value was invalidated by mistake.
* current in the top 3: for a question with ``stale`` values or of kind ``keep`` whose
  answer is a value, whether the gold answer appears in an item presented as current
  among the first :data:`TOP_ITEMS` items of the context (the context is best first).

Only this module reads gold answers, evidence and stale values.
"""

from __future__ import annotations

import re
import string
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentmem.errors import MissingExtraError
from agentmem.extras import install_command
from agentmem.replay.dataset import PHOTO_NOTE, Gold
from agentmem.text import split_sentences

#: An item counts as evidence for its turns only if it came from at most this many turns.
MAX_EVIDENCE_SOURCES = 3

#: The words of a yes/no verdict ("Likely no"): an answer made only of them is not looked
#: for in a context (:func:`answer_in_context`).
VERDICT_WORDS = frozenset({"yes", "no", "likely", "unlikely", "probably", "maybe", "perhaps"})

#: The fewest words of a turn an aggregate must quote whole to cover it as evidence.
MIN_QUOTE_WORDS = 3

#: How many of a context's first items :func:`current_in_top` looks at.
TOP_ITEMS = 3

#: Scenario kinds whose gold answer is not the current value of a fact: a date of change
#: (``when``) or yes/no (``negation``).
NON_VALUE_KINDS = frozenset({"when", "negation"})

#: The kinds of item a structure derives from turns about a speaker rather than quoting
#: them: under the gold rule such an item leaks when drawn from any turn of the question's
#: subject, not only from a ``stale_evidence`` turn (see :func:`is_derived`).
DERIVED_KINDS = frozenset({"fact", "triple", "note"})

#: The fact ledger's store: every item it returns is derived (agentmem.ledger's
#: ``FACT_STORE``, named here so the scorer does not import the ledger).
FACT_STORE = "facts"

#: Words of a change note saying that a value no longer holds (normalised, whole words;
#: "anymore" covers "not anymore").
CHANGE_WORDS = (
    "no longer",
    "anymore",
    "any more",
    "no more",
    "ended",
    "until",
    "formerly",
    "former",
    "previously",
    "used to",
    "stopped",
    "left",
    "replaced",
    "superseded",
)

#: An arrow from an old value to a new one, as written or after the prompt escaped ``>``.
_ARROW = re.compile(r"[→⟶⇒➔➝]|[-=]+\s*[>›]")
_BRACKETED = re.compile(r"\[([^\[\]]*)\]")

#: The phrases LoCoMo's scorer accepts as "the conversation does not say" (category 5).
NOT_MENTIONED_PHRASES = ("no information available", "not mentioned")

_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCTUATION = frozenset(string.punctuation)
_stemmer: Any = None
_stemmer_lock = threading.Lock()


@dataclass(frozen=True)
class ContextItem:
    """One item of a context as the system presented it, with its provenance.

    Attributes:
        text: The item's text as put in the prompt.
        store: The structure that returned it.
        kind: Its kind within that structure.
        score: Its fused (or similarity) score.
        dia_ids: The dataset ids of the turns it came from.
        current: Whether it is presented as current (not marked as no longer current).
        valid_from: Dialogue time from which it holds.
        invalid_at: Dialogue time at which it stopped holding.
    """

    text: str
    store: str
    kind: str
    score: float
    dia_ids: tuple[str, ...]
    current: bool = True
    valid_from: datetime | None = None
    invalid_at: datetime | None = None


def normalize_answer(text: str) -> str:
    """Normalise text the way LoCoMo's scorer does before comparing answers."""
    text = text.replace(",", "").lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _stem(word: str) -> str:
    global _stemmer
    with _stemmer_lock:
        if _stemmer is None:
            try:
                from nltk.stem import PorterStemmer
            except ImportError as exc:
                raise MissingExtraError(
                    "LoCoMo's F1 needs NLTK's Porter stemmer", hint=install_command("replay")
                ) from exc
            _stemmer = PorterStemmer()
    return str(_stemmer.stem(word))


def token_f1(prediction: str, truth: str) -> float:
    """Return LoCoMo's token F1 of ``prediction`` against ``truth`` (stemmed words)."""
    predicted = [_stem(w) for w in normalize_answer(prediction).split()]
    expected = [_stem(w) for w in normalize_answer(truth).split()]
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(expected)
    return 2 * precision * recall / (precision + recall)


def multi_answer_f1(prediction: str, truth: str) -> float:
    """Return LoCoMo's category 1 F1: mean over gold parts of the best predicted part."""
    predicted = [p.strip() for p in prediction.split(",")]
    expected = [g.strip() for g in truth.split(",")]
    best = [max(token_f1(p, g) for p in predicted) for g in expected]
    return sum(best) / len(best)


def exact_match(prediction: str, truth: str) -> bool:
    """Return LoCoMo's exact match: the same set of normalised words."""
    return set(normalize_answer(prediction).split()) == set(normalize_answer(truth).split())


def says_not_mentioned(prediction: str) -> bool:
    """Whether an answer says the conversation does not tell (LoCoMo's category 5 check)."""
    lowered = prediction.lower()
    return any(phrase in lowered for phrase in NOT_MENTIONED_PHRASES)


def gold_text(gold: Gold) -> str | None:
    """Return the gold answer LoCoMo scores against (category 3: the part before ``;``)."""
    if gold.answer is None:
        return None
    return gold.answer.split(";")[0].strip() if gold.category == 3 else gold.answer


@dataclass(frozen=True)
class AnswerScore:
    """LoCoMo's F1 and exact match of one generated answer."""

    f1: float
    exact: bool


def score_answer(prediction: str, gold: Gold) -> AnswerScore:
    """Score a generated answer as LoCoMo's official scorer does for its category."""
    if gold.category == 5:
        correct = says_not_mentioned(prediction)
        return AnswerScore(float(correct), correct)
    truth = gold_text(gold) or ""
    f1 = multi_answer_f1(prediction, truth) if gold.category == 1 else token_f1(prediction, truth)
    return AnswerScore(f1, exact_match(prediction, truth))


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether normalised ``phrase`` occurs as whole words in normalised ``text``."""
    needle = normalize_answer(phrase)
    return bool(needle) and f" {needle} " in f" {normalize_answer(text)} "


def answer_in_context(context_text: str, gold: Gold) -> float | None:
    """Return whether (or, for category 1, how much of) the gold answer is in the context.

    Returns:
        1.0 or 0.0 (category 1: the share of comma-separated gold parts found), or
        ``None`` when the question has no answer (category 5).
    """
    truth = gold_text(gold)
    if gold.category == 5 or truth is None or _only_a_verdict(truth):
        return None
    parts = [p for p in truth.split(",") if normalize_answer(p)] if gold.category == 1 else [truth]
    if not parts:
        return None
    return sum(contains_phrase(context_text, p) for p in parts) / len(parts)


def _only_a_verdict(answer: str) -> bool:
    """Whether ``answer`` is only a yes/no verdict ("No", "Likely no"): a word that any
    context may hold, whatever it says."""
    words = normalize_answer(answer).split()
    return bool(words) and set(words) <= VERDICT_WORDS


def evidence_recall(items: Sequence[ContextItem], gold: Gold) -> float | None:
    """Return the share of evidence turns the context covers (``None`` without evidence).

    An item covers the turns it came from if it came from at most
    :data:`MAX_EVIDENCE_SOURCES` turns. An aggregate of more turns (a memo, a tree node, a
    summary) covers an evidence turn it came from only if its text contains that turn's
    whole text (normalised, at least :data:`MIN_QUOTE_WORDS` words): it then puts the
    turn itself before the model.
    """
    if not gold.evidence:
        return None
    said = dict(zip(gold.evidence, gold.evidence_texts, strict=False))
    covered: set[str] = set()
    for item in items:
        if 0 < len(item.dia_ids) <= MAX_EVIDENCE_SOURCES:
            covered.update(item.dia_ids)
            continue
        for dia_id in set(gold.evidence) & set(item.dia_ids) - covered:
            quote = normalize_answer(said.get(dia_id, ""))
            if len(quote.split()) >= MIN_QUOTE_WORDS and contains_phrase(item.text, quote):
                covered.add(dia_id)
    return sum(e in covered for e in gold.evidence) / len(gold.evidence)


def has_value_answer(gold: Gold) -> bool:
    """Whether a scenario question's gold answer is the current value of a fact.

    True for the kinds ``update``, ``indirect``, ``third-party`` and ``keep``; false for
    ``when`` (a date), ``negation`` (yes/no), questions without an answer and questions
    that are not scenario questions (no ``kind``, e.g. LoCoMo's).
    """
    return gold.kind is not None and gold.kind not in NON_VALUE_KINDS and bool(gold_text(gold))


def stale_leaks(items: Sequence[ContextItem], gold: Gold) -> list[ContextItem]:
    """Return the items that present a stale value as current (see the module docstring).

    An item leaks when it is presented as current, mentions one of ``gold.stale`` as whole
    words after normalisation, and does not also mention the gold answer. The exception
    does not hold for the kinds in :data:`NON_VALUE_KINDS`: the ``no`` of a yes/no
    question is no current value, and an item that happens to say "no" is not excused.
    """
    if not gold.stale:
        return []
    answer = None if gold.kind in NON_VALUE_KINDS else gold_text(gold)
    evidence = set(gold.evidence)
    leaks = []
    for item in items:
        if not item.current:
            continue
        if item.dia_ids and set(item.dia_ids) <= evidence:
            continue  # the evidence itself: it states the change
        text = _outside_quotes(item.text, gold.evidence_texts)
        if not any(contains_phrase(text, value) for value in gold.stale):
            continue
        if answer and contains_phrase(item.text, answer):
            continue
        leaks.append(item)
    return leaks


def has_stale_annotations(gold: Gold) -> bool:
    """Whether the gold rule of stale leaks applies: stale values and ``stale_evidence``."""
    return bool(gold.stale) and gold.stale_evidence is not None


def is_derived(item: ContextItem) -> bool:
    """Whether an item was derived from turns (a fact, a triple, a note), not quoted."""
    return item.store == FACT_STORE or item.kind in DERIVED_KINDS


def change_notes(text: str) -> list[str]:
    """Return the change notes of ``text``: bracketed spans with a change marker.

    A change marker is an arrow (``→``, ``->``, ``=>``, ...) or one of
    :data:`CHANGE_WORDS`. An image caption (``[shares a photo: ...]``) is no note.
    """
    notes = []
    for match in _BRACKETED.finditer(text):
        span = match.group(1)
        if span.strip().lower().startswith(PHOTO_NOTE):
            continue
        if _ARROW.search(span) or any(contains_phrase(span, w) for w in CHANGE_WORDS):
            notes.append(span)
    return notes


def carries_change(item: ContextItem, gold: Gold, values: Sequence[str]) -> bool:
    """Whether an item states the change beside the stale ``values`` it mentions.

    True when it mentions the gold current answer (not for the kinds in
    :data:`NON_VALUE_KINDS`), or when each of ``values`` occurs inside one of its
    :func:`change_notes`: a note about one value excuses no other.
    """
    answer = None if gold.kind in NON_VALUE_KINDS else gold_text(gold)
    if answer and contains_phrase(item.text, answer):
        return True
    notes = change_notes(item.text)
    return all(any(contains_phrase(note, v) for note in notes) for v in values)


def gold_stale_leaks(items: Sequence[ContextItem], gold: Gold) -> list[ContextItem]:
    """Return the items that leak a stale value by the gold rule (module docstring).

    An item leaks when it is presented as current, mentions a stale value (not only in
    sentences it quotes from source turns outside ``stale_evidence``), does not carry
    the change beside it (:func:`carries_change`), and draws on a ``stale_evidence`` turn
    or is a derived item (:func:`is_derived`) drawn from a turn of the question's subject.
    Empty for a question without stale values or without ``stale_evidence``.
    """
    if not has_stale_annotations(gold):
        return []
    asserted = set(gold.stale_evidence or ())
    leaks = []
    for item in items:
        sources = set(item.dia_ids)
        asserts = bool(sources & asserted)
        about_subject = is_derived(item) and bool(sources & gold.subject_turns)
        if not item.current or not (asserts or about_subject):
            continue
        others = [gold.turn_texts.get(d, "") for d in item.dia_ids if d not in asserted]
        text = _outside_quotes(item.text, others)
        mentioned = [value for value in gold.stale if contains_phrase(text, value)]
        if mentioned and not carries_change(item, gold, mentioned):
            leaks.append(item)
    return leaks


def stale_ranked_above_current(items: Sequence[ContextItem], gold: Gold) -> bool:
    """Whether a stale leak comes before the first current item with the answer.

    The leaks are those of :func:`gold_stale_leaks` where the question is annotated, else
    of :func:`stale_leaks`; the context is best first. Meant for questions with stale
    values and a value answer (:func:`has_value_answer`).
    """
    rule = gold_stale_leaks if has_stale_annotations(gold) else stale_leaks
    # By identity: two items of a context may be equal (the same text from two stores).
    leaking = {id(item) for item in rule(items, gold)}
    answer = gold_text(gold) or ""
    for item in items:  # best first: whichever comes first decides
        if id(item) in leaking:
            return True
        if item.current and contains_phrase(item.text, answer):
            return False
    return False


def _outside_quotes(text: str, quoted: Sequence[str]) -> str:
    """Return ``text`` without the sentences it quotes from ``quoted`` (normalised)."""
    rest = f" {normalize_answer(text)} "
    for source in quoted:
        for sentence in split_sentences(source):
            key = normalize_answer(sentence)
            if len(key.split()) >= 3:  # a long enough run to be a quote, not a phrase
                rest = rest.replace(f" {key} ", " ")
    return rest


def keep_recalled(items: Sequence[ContextItem], gold: Gold) -> bool:
    """Whether the gold answer appears in an item presented as current."""
    answer = gold_text(gold)
    return bool(answer) and any(
        item.current and contains_phrase(item.text, answer or "") for item in items
    )


def falsely_invalidated(items: Sequence[ContextItem], gold: Gold) -> bool:
    """Whether the gold answer is in the context only as history: wrongly invalidated.

    True when at least one item marked as no longer current mentions the gold answer
    (normalised whole-word match) and no item presented as current does. A context that
    does not mention the answer at all is a recall miss, not a false invalidation. Meant
    for questions whose answer is a current value (:func:`has_value_answer`).
    """
    answer = gold_text(gold)
    if not answer:
        return False
    mentions = [item for item in items if contains_phrase(item.text, answer)]
    return bool(mentions) and not any(item.current for item in mentions)


def current_in_top(items: Sequence[ContextItem], gold: Gold, n: int = TOP_ITEMS) -> bool:
    """Whether the gold answer appears in a current item among the first ``n`` items.

    The context is ordered best first, as recalled; an answer found only further down, or
    only in items marked as no longer current, does not count.
    """
    return keep_recalled(items[:n], gold)


__all__ = [
    "CHANGE_WORDS",
    "DERIVED_KINDS",
    "FACT_STORE",
    "MAX_EVIDENCE_SOURCES",
    "NON_VALUE_KINDS",
    "TOP_ITEMS",
    "AnswerScore",
    "ContextItem",
    "answer_in_context",
    "carries_change",
    "change_notes",
    "contains_phrase",
    "current_in_top",
    "evidence_recall",
    "exact_match",
    "falsely_invalidated",
    "gold_stale_leaks",
    "gold_text",
    "has_stale_annotations",
    "has_value_answer",
    "is_derived",
    "keep_recalled",
    "multi_answer_f1",
    "normalize_answer",
    "says_not_mentioned",
    "score_answer",
    "stale_leaks",
    "stale_ranked_above_current",
    "token_f1",
]
