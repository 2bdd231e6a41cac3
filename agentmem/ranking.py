"""Reciprocal rank fusion (Cormack et al. 2009), the one definition the library uses.

The manager fuses the structures' rankings with it (``fusion = "rank"``,
:mod:`agentmem.fusion`), and the turns structure its dense and lexical rankings.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

#: Reciprocal rank fusion's constant (Cormack et al. 2009).
RRF_K = 60


def reciprocal_rank_scores(
    rankings: Iterable[Sequence[K]], weights: Sequence[float] | None = None
) -> dict[K, float]:
    """Return each key's fused score: the sum over rankings of ``weight / (RRF_K + rank)``.

    Ranks count from 1. ``weights`` gives one weight per ranking (1.0 each by default).
    The dict lists keys in the order they were first met.
    """
    scores: dict[K, float] = {}
    for index, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[index]
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (RRF_K + rank)
    return scores


__all__ = ["RRF_K", "reciprocal_rank_scores"]
