"""Fusing the structures' rankings into one recall that fits a token budget.

See :class:`~agentmem.manager.MemoryManager` for the two modes: ``lead`` (the fact ledger
and the first structure are fitted first, the others fill the room left with what adds
new evidence) and ``rank`` (reciprocal rank fusion, Cormack et al. 2009).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from agentmem.models.tokens import Fitted, TokenCounter, fit_to_budget
from agentmem.ranking import RRF_K, reciprocal_rank_scores
from agentmem.text import STOPWORDS, words
from agentmem.types import MemoryItem, Recalled

#: Tokens each recalled item costs in a prompt beyond its text (its line's framing).
ITEM_OVERHEAD = 8
#: An item drawn from at most this many turns puts them before the reader (a turn, a fact
#: read from it); a larger aggregate only the words it quotes of them.
SMALL_ITEM = 3
_SPEAKER = re.compile(r"^[^:\n]{1,60}:\s")


def dedupe_key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def fit_rankings(
    rankings: Sequence[tuple[str, Sequence[Recalled]]],
    budget_tokens: int,
    counter: TokenCounter,
    *,
    leaders: frozenset[str] | None = None,
) -> Fitted[Recalled]:
    """Fuse named rankings and keep the best items that fit ``budget_tokens``.

    Args:
        rankings: Each structure's name and its items, best first (a name may repeat).
        budget_tokens: Most tokens the kept items may cost (with :data:`ITEM_OVERHEAD`).
        counter: Counts the tokens of an item's text.
        leaders: The structures that lead: their rankings are fused and fitted first, and
            the others', fused among themselves, fill the room left; an item of theirs is
            left out when its text repeats a kept one, or when every turn it came from is
            already the source of a kept item (it would add no evidence). ``None``: every
            ranking has an equal say (reciprocal rank fusion).
    """

    def fit(items: Sequence[Recalled], budget: int) -> Fitted[Recalled]:
        return fit_to_budget(
            items, lambda r: r.item.shown_text(), counter, budget, per_item_overhead=ITEM_OVERHEAD
        )

    if leaders is None:
        return fit(fuse([found for _, found in rankings]), budget_tokens)
    lead = fit(fuse([found for name, found in rankings if name in leaders]), budget_tokens)
    rest = fuse([found for name, found in rankings if name not in leaders])
    more = fit(_adding(rest, lead.kept), budget_tokens - lead.tokens)
    return Fitted([*lead.kept, *more.kept], lead.dropped + more.dropped, lead.tokens + more.tokens)


def _adding(ranked: Sequence[Recalled], kept: Sequence[Recalled]) -> list[Recalled]:
    """Return the items of ``ranked`` that add to ``kept``: not one of them, not the same
    text, and drawn from at least one turn not yet before the reader.

    A turn is before the reader when a kept item of at most :data:`SMALL_ITEM` turns came
    from it (the turn itself, a fact read from it), or when a kept aggregate drawn from it
    holds the candidate's words: a digest that quotes one sentence of a turn does not make
    the whole turn a repeat.
    """
    shown = {
        t for r in kept if len(r.item.source_turn_ids) <= SMALL_ITEM for t in r.item.source_turn_ids
    }
    aggregates = [r.item for r in kept if len(r.item.source_turn_ids) > SMALL_ITEM]
    texts = {dedupe_key(r.item.text) for r in kept}
    ids = {r.item.id for r in kept}

    def repeats(item: MemoryItem) -> bool:
        left = set(item.source_turn_ids) - shown
        if not item.source_turn_ids or not left:
            return bool(item.source_turn_ids)
        said = dedupe_key(_SPEAKER.sub("", item.text, count=1))
        return all(
            any(turn in a.source_turn_ids and said in dedupe_key(a.text) for a in aggregates)
            for turn in left
        )

    return [
        r
        for r in ranked
        if r.item.id not in ids and dedupe_key(r.item.text) not in texts and not repeats(r.item)
    ]


def fuse(rankings: Sequence[Sequence[Recalled]]) -> list[Recalled]:
    """Merge ranked lists by reciprocal rank fusion, dropping duplicate items and texts."""
    scores = reciprocal_rank_scores([r.item.id for r in ranking] for ranking in rankings)
    first: dict[str, Recalled] = {}
    for ranking in rankings:
        for recalled in ranking:
            first.setdefault(recalled.item.id, recalled)
    ordered = sorted(scores, key=lambda key: (-scores[key], -first[key].score))
    seen_texts: set[str] = set()
    fused = []
    for key in ordered:
        text_key = dedupe_key(first[key].item.text)
        if text_key in seen_texts:
            continue
        seen_texts.add(text_key)
        fused.append(Recalled(first[key].item, scores[key]))
    return fused


def current_first(ranked: Sequence[Recalled], query: str) -> list[Recalled]:
    """Order items that are equally relevant so that what still holds comes first.

    Two kinds of tie, both resolved for the current item:

    * An item and the item that replaced it (its ``superseded_by``, both found): they
      answer the same question at two times, "Sam lives in Boston" and "Sam lives in
      Denver" for "Where does Sam live?". They count as equally relevant unless the query
      names a word only the old one says ("Did Sam live in Boston?"); then the old one
      keeps its rank. Otherwise the old one moves to just after its replacement and takes
      its score if that is lower (so scores still fall down the list). Which of the two a
      retriever ranked first is noise here: they differ by one word the query lacks.
    * Adjacent items with the same score: current ones first, otherwise in order.

    Without superseded items (a search of current memory) the order is unchanged.
    """
    present = {r.item.id for r in ranked}
    waiting: dict[str, list[Recalled]] = {}
    placed: set[str] = set()
    ordered: list[Recalled] = []
    asked = _stems(words(query))

    def place(recalled: Recalled) -> None:
        ordered.append(recalled)
        placed.add(recalled.item.id)
        for older in waiting.pop(recalled.item.id, []):
            place(Recalled(older.item, min(older.score, recalled.score)))

    for recalled in ranked:
        newer = recalled.item.superseded_by
        if (
            newer is not None
            and newer in present
            and newer not in placed
            and not asked & _only_in(recalled.item, ranked, newer)
        ):
            waiting.setdefault(newer, []).append(recalled)
        else:
            place(recalled)
    for left in waiting.values():  # a cycle of replacements: keep them, in order
        ordered.extend(r for r in left if r.item.id not in placed)
    return _current_among_equals(ordered)


#: How many of the best items a question about the present orders newest first.
NOW_WINDOW = 3


def newest_first(ranked: Sequence[Recalled], window: int = NOW_WINDOW) -> list[Recalled]:
    """Order the ``window`` most relevant items newest first, for a question about now.

    "Where does Sam live now?" is answered by the latest of the statements that bear on
    it, which is seldom the one most like the question: the old "I live in Boston, I
    love it here" matches it better than "Finally unpacked the last box in Denver". The
    best few stay the best few (what fits the budget is unchanged); within them what was
    said last comes first, so a reader meets the latest state before an older one.
    Items without a time keep their place after the timed ones.
    """
    head, tail = list(ranked[:window]), list(ranked[window:])
    timed = [r for r in head if r.item.valid_from is not None]
    untimed = [r for r in head if r.item.valid_from is None]
    timed.sort(key=lambda r: r.item.valid_from or datetime.min, reverse=True)
    return [*timed, *untimed, *tail]


def _only_in(old: MemoryItem, ranked: Sequence[Recalled], newer_id: str) -> set[str]:
    """Return the content words (crudely stemmed) of ``old`` that its replacement lacks."""
    newer = next(r.item for r in ranked if r.item.id == newer_id)
    return _stems(words(old.text)) - _stems(words(newer.text))


def _stems(found: Sequence[str]) -> set[str]:
    # "lives" and "live" must match, or a turn's "I live" would look more relevant to
    # "Where does Sam live?" than the fact "Sam lives in Denver"; dropping a final "s"
    # is enough for that and harmless when both sides get it.
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in found if w not in STOPWORDS}


def _current_among_equals(ranked: list[Recalled]) -> list[Recalled]:
    out: list[Recalled] = []
    start = 0
    while start < len(ranked):
        end = start
        while end < len(ranked) and ranked[end].score == ranked[start].score:
            end += 1
        out += sorted(ranked[start:end], key=lambda r: not r.item.current)  # stable
        start = end
    return out


__all__ = [
    "ITEM_OVERHEAD",
    "NOW_WINDOW",
    "RRF_K",
    "current_first",
    "dedupe_key",
    "fit_rankings",
    "fuse",
    "newest_first",
]
