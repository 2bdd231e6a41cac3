"""Fusing the structures' rankings into one recall that fits a token budget.

See :class:`~agentmem.manager.MemoryManager` for the two modes: ``lead`` (the fact ledger
and the first structure are fitted first, the others fill the room left with what adds
new evidence) and ``rank`` (reciprocal rank fusion, Cormack et al. 2009).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agentmem.models.tokens import Fitted, TokenCounter, fit_to_budget
from agentmem.types import Recalled

#: The ``k`` of reciprocal rank fusion (Cormack et al. 2009).
RRF_K = 60
#: Tokens each recalled item costs in a prompt beyond its text (its line's framing).
ITEM_OVERHEAD = 8


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
            items, lambda r: r.item.text, counter, budget, per_item_overhead=ITEM_OVERHEAD
        )

    if leaders is None:
        return fit(fuse([found for _, found in rankings]), budget_tokens)
    lead = fit(fuse([found for name, found in rankings if name in leaders]), budget_tokens)
    rest = fuse([found for name, found in rankings if name not in leaders])
    covered = {t for r in lead.kept for t in r.item.source_turn_ids}
    texts = {dedupe_key(r.item.text) for r in lead.kept}
    ids = {r.item.id for r in lead.kept}
    extra = [
        r
        for r in rest
        if r.item.id not in ids
        and dedupe_key(r.item.text) not in texts
        and not (r.item.source_turn_ids and set(r.item.source_turn_ids) <= covered)
    ]
    more = fit(extra, budget_tokens - lead.tokens)
    return Fitted([*lead.kept, *more.kept], lead.dropped + more.dropped, lead.tokens + more.tokens)


def fuse(rankings: Sequence[Sequence[Recalled]]) -> list[Recalled]:
    """Merge ranked lists by reciprocal rank fusion, dropping duplicate items and texts."""
    scores: dict[str, float] = {}
    first: dict[str, Recalled] = {}
    for ranking in rankings:
        for rank, recalled in enumerate(ranking):
            key = recalled.item.id
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank + 1)
            first.setdefault(key, recalled)
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


__all__ = ["ITEM_OVERHEAD", "RRF_K", "dedupe_key", "fit_rankings", "fuse"]
