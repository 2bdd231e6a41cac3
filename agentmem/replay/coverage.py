"""Scoring breadth questions: how much of what a recap asks for the context holds.

A recap ("What did Caroline and Melanie talk about on 8 May 2023?") has no one answer; its
gold is a set of evidence turns, each with the facts LoCoMo wrote from it (its
``observation``), and for a session recap LoCoMo's summary of the session
(:mod:`agentmem.replay.breadth`).

* **coverage**: the share of evidence turns the context holds. A turn counts when it is
  there itself (an item drawn from at most :data:`~agentmem.replay.scoring.MAX_EVIDENCE_SOURCES`
  turns, among them this one, as for evidence recall), or when an aggregate drawn from it
  (a summary, a tree node, a memo of more turns) either quotes its whole text (at least
  :data:`~agentmem.replay.scoring.MIN_QUOTE_WORDS` words) or says at least half
  (:data:`FACT_SHARE`) of the content words of a fact written from it. Listing the turn
  among an aggregate's sources is not enough: the aggregate earns the turn by what it
  says. Content words are compared stemmed, without stop words and without the speakers'
  names (they say whom a fact is about, not which fact).
* **ROUGE-L** (session recaps): the recall of LoCoMo's session summary by the context,
  the longest common subsequence of their normalised, stemmed words over the summary's
  length (Lin 2004): how much of the reference's wording, in order, the context holds.

Only the scorer reads the evidence, the facts and the summary.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from agentmem.replay.dataset import Gold
from agentmem.replay.scoring import (
    MAX_EVIDENCE_SOURCES,
    MIN_QUOTE_WORDS,
    ContextItem,
    _stem,
    contains_phrase,
    normalize_answer,
)
from agentmem.text import content_words

#: The share of a fact's content words an aggregate must say to cover the fact's turn.
FACT_SHARE = 0.5


@functools.lru_cache(maxsize=65_536)
def _stemmed(word: str) -> str:
    return _stem(word)


def fact_words(text: str, names: Iterable[str] = ()) -> set[str]:
    """Return the stemmed content words of ``text``, without the words in ``names``."""
    left_out = set(names)
    return {_stemmed(w) for w in content_words(text) if w not in left_out}


def says_fact(words: set[str], fact: str, names: Iterable[str] = ()) -> bool:
    """Whether ``words`` (stemmed content words of a text) hold at least
    :data:`FACT_SHARE` of the content words of ``fact``."""
    wanted = fact_words(fact, names)
    return bool(wanted) and len(wanted & words) >= FACT_SHARE * len(wanted)


def coverage(items: Sequence[ContextItem], gold: Gold) -> float | None:
    """Return the share of a recap's evidence turns the context covers (module docstring).

    ``None`` for a question that is no recap or has no evidence.
    """
    if gold.recap is None or not gold.evidence:
        return None
    wanted = set(gold.evidence)
    quotes = dict(zip(gold.evidence, gold.evidence_texts, strict=False))
    facts = dict(zip(gold.evidence, gold.observations, strict=False))
    covered: set[str] = set()
    for item in items:
        sources = set(item.dia_ids) & wanted
        if 0 < len(item.dia_ids) <= MAX_EVIDENCE_SOURCES:
            covered |= sources
            continue
        said: set[str] | None = None
        for dia_id in sorted(sources - covered):
            quote = normalize_answer(quotes.get(dia_id, ""))
            if len(quote.split()) >= MIN_QUOTE_WORDS and contains_phrase(item.text, quote):
                covered.add(dia_id)
                continue
            said = said if said is not None else fact_words(item.text, gold.names)
            if any(says_fact(said, fact, gold.names) for fact in facts.get(dia_id, ())):
                covered.add(dia_id)
    return len(covered) / len(wanted)


def rouge_l_recall(context: str, reference: str | None) -> float | None:
    """Return the ROUGE-L recall of ``reference`` by ``context`` (``None`` without one).

    Words are normalised as LoCoMo's scorer does and Porter-stemmed.
    """
    if not reference:
        return None
    expected = [_stemmed(w) for w in normalize_answer(reference).split()]
    if not expected:
        return None
    given = [_stemmed(w) for w in normalize_answer(context).split()]
    return lcs_length(given, expected) / len(expected)


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Return the length of the longest common subsequence of two word lists.

    Bit-parallel (Allison & Dix 1986): one pass over ``first`` with a bit per word of
    ``second``, so a 1,000-word context against a 150-word summary costs 1,000 big-integer
    steps, not 150,000 table cells.
    """
    if not first or not second:
        return 0
    masks: dict[str, int] = {}
    for position, word in enumerate(second):
        masks[word] = masks.get(word, 0) | (1 << position)
    width = (1 << len(second)) - 1
    row = width
    for word in first:
        matched = row & masks.get(word, 0)
        row = ((row + matched) | (row - matched)) & width
    return len(second) - bin(row).count("1")


__all__ = ["FACT_SHARE", "coverage", "fact_words", "lcs_length", "rouge_l_recall", "says_fact"]
