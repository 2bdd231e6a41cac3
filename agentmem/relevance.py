"""How relevant a result is to its query: a similarity in [0, 1] a caller can threshold.

Recall orders results by fusing the structures' rankings (:mod:`agentmem.fusion`), and a
fused score is a rank in disguise: every top hit scores 1/61 whatever it says. A caller
deciding whether a result is relevant at all needs a measure of the result itself, so
every search result also carries the cosine similarity of the query and its text under
the memory's own embedder, clipped to [0, 1] (1: the query itself; two results of the
same text score the same). The order stays the fusion's; this only says how close each
result is. The embedder caches what it embedded, so items written recently cost no
model call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agentmem.protocols import Embedder


def similarities(embedder: Embedder, query: str, texts: Sequence[Sequence[str]]) -> list[float]:
    """Return, per result, the best cosine similarity of ``query`` and one of its texts.

    Args:
        embedder: Embeds unit rows (the memory's embedder, so scores match its index).
        query: What was searched.
        texts: Per result, the texts it is known by (an item's text; a document's
            indexed fields). A result with none scores 0.

    Raises:
        EmbeddingError: The embedder failed.
    """
    unique = list(dict.fromkeys(text for group in texts for text in group if text.strip()))
    if not unique:
        return [0.0 for _ in texts]
    rows = embedder.embed([query, *unique])
    # Unit rows: the dot product is the cosine.
    cosine = dict(zip(unique, (rows[1:] @ rows[0]).tolist(), strict=True))
    scores = []
    for group in texts:
        best = max((cosine[text] for text in group if text in cosine), default=0.0)
        scores.append(round(float(np.clip(best, 0.0, 1.0)), 6))
    return scores


__all__ = ["similarities"]
