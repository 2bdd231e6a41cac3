"""One embedder for every configuration, with the common texts embedded once, up front.

Every configuration embeds the same turns (as ``text`` and as ``speaker: text``) and the
same questions. Those vectors are computed once, before any configuration runs, and served
to all of them; each configuration then gets its own cache over them for what only it
embeds (its facts, summaries, memos). So the model is loaded once, the shared work is done
once, and no configuration's ingest time includes another's work: through one shared
cache, the first configuration would pay for the texts the later ones reuse.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from agentmem.models.embeddings import CachingEmbedder
from agentmem.protocols import Embedder
from agentmem.replay.dataset import Question, Sample


class PrecomputedEmbedder:
    """Serves vectors computed up front and embeds any other text with ``inner``.

    Args:
        inner: The embedding model.
        vectors: Vectors already computed, by text.
    """

    def __init__(self, inner: Embedder, vectors: Mapping[str, np.ndarray]) -> None:
        self.inner = inner
        self.name = inner.name
        self.vectors = vectors

    @property
    def dimension(self) -> int:
        """Return the inner embedder's dimension."""
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return the vectors of ``texts``, computing only those not known (in one batch)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        computed = dict(zip(missing, self.inner.embed(missing), strict=True)) if missing else {}
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows = [self.vectors[t] if t in self.vectors else computed[t] for t in texts]
        return np.stack(rows).astype(np.float32, copy=False)


def shared_texts(samples: Sequence[Sample], asked: Sequence[Sequence[Question]]) -> list[str]:
    """Return the texts every configuration embeds: turns both ways, and the questions."""
    texts: list[str] = []
    for sample, questions in zip(samples, asked, strict=True):
        for session in sample.conversation.sessions:
            for turn in session.turns:
                texts += [turn.text, f"{turn.speaker}: {turn.text}"]
        texts += [q.text for q in questions]
    return list(dict.fromkeys(texts))


def embed_up_front(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    batch: int = 256,
    advance: Callable[[int], None] | None = None,
) -> tuple[dict[str, np.ndarray], float]:
    """Embed ``texts`` in batches; return the vectors by text and the seconds it took."""
    started = time.perf_counter()
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(texts), batch):
        chunk = list(texts[start : start + batch])
        vectors.update(zip(chunk, embedder.embed(chunk), strict=True))
        if advance is not None:
            advance(len(chunk))
    return vectors, time.perf_counter() - started


def configuration_embedder(inner: Embedder, vectors: Mapping[str, np.ndarray]) -> CachingEmbedder:
    """Return one configuration's embedder: its own cache over the shared vectors."""
    return CachingEmbedder(PrecomputedEmbedder(inner, vectors), capacity=50_000)
