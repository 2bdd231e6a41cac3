"""Choosing the sentences of the next summary version (offline or from a model's answer)
and making its items.

Pure functions over candidates; the store embeds, persists and retires items around them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from agentmem.prompts.summary import SummarySentence
from agentmem.storage.records import derived_item_id
from agentmem.text import informativeness, select_central, split_sentences, truncate_words
from agentmem.types import MemoryItem, Turn

#: Weight of a sentence already in the summary relative to a new one of equal salience.
CARRY_WEIGHT = 0.8
#: Longest sentence (words) the offline builder copies into the summary.
MAX_SENTENCE_WORDS = 60
#: Maximal-marginal-relevance trade-off: a summary should cover many facts, not the
#: most central one in several phrasings.
DIVERSITY = 0.5
#: Cosine above which an older sentence counts as a repeat of a newly picked one.
REPEAT = 0.9


@dataclass(frozen=True)
class Version:
    """What a new summary version records about itself.

    Attributes:
        number: Its version number (1 for the first).
        id: Its item id.
        previous_id: The item id of the version it supersedes.
        valid_from: The dialogue time it holds from (its newest turn's).
        last_turn_id: The highest turn id covered once it exists (the restart cursor).
        builder: ``"offline"`` or ``"model"``.
    """

    number: int
    id: str
    previous_id: str | None
    valid_from: datetime
    last_turn_id: int
    builder: str


@dataclass(eq=False)  # identity: candidates hold arrays
class Candidate:
    """A sentence that may go into the next version.

    Attributes:
        text: The sentence as stored (offline: ``"speaker: sentence"``).
        turn_ids: The turns it came from.
        order: Its place in the dialogue (turn id, sentence index), for dialogue order.
        weight: Preference when the caps bind (higher stays).
        score: Its informativeness, kept in the item's metadata.
        vector: Its embedding, once known.
        item: The existing item, when carried over from the previous version.
        embed_as: What to embed instead of ``text`` (the sentence without its speaker).
    """

    text: str
    turn_ids: tuple[int, ...]
    order: tuple[int, int]
    weight: float
    score: float
    vector: np.ndarray | None = None
    item: MemoryItem | None = None
    embed_as: str | None = None


def normal(text: str) -> str:
    """Return ``text`` lower-cased with collapsed spaces (sentence identity)."""
    return " ".join(text.lower().split())


def carried(previous: Sequence[MemoryItem], vectors: Sequence[np.ndarray]) -> list[Candidate]:
    """Return the previous version's sentences as candidates, keeping their items."""
    found = []
    for item, vector in zip(previous, vectors, strict=True):
        score = float(item.metadata.get("score", 1.0))
        found.append(
            Candidate(
                item.text,
                item.source_turn_ids,
                _order(item),
                score * CARRY_WEIGHT,
                score,
                vector,
                item,
            )
        )
    return found


def dialogue_sentences(
    turns: Sequence[Turn], previous: Sequence[MemoryItem], min_informativeness: float
) -> list[Candidate]:
    """Return the informative sentences of ``turns`` not already in the summary.

    At most as many as there are turns (the most informative overall); each is embedded as
    its turn's text, which the embedding cache already holds. Returned in dialogue order.
    """
    seen = {normal(item.text) for item in previous}
    found: list[Candidate] = []
    for turn in turns:
        for position, sentence in enumerate(split_sentences(turn.text)):
            score = informativeness(sentence)
            bare = truncate_words(sentence, MAX_SENTENCE_WORDS)
            text = f"{turn.speaker}: {bare}"
            if score >= min_informativeness and normal(text) not in seen:
                seen.add(normal(text))
                # Ranked by its turn's vector: the turn's text is embedded once for every
                # structure (the embedding cache), so a sentence costs no new embedding,
                # and it is recalled by what its turn is about.
                found.append(
                    Candidate(
                        text, (turn.id,), (turn.id, position), score, score, embed_as=turn.text
                    )
                )
    best = sorted(found, key=lambda c: -c.weight)[: len(turns)]
    return sorted(best, key=lambda c: c.order)


def select_offline(
    old: list[Candidate],
    fresh: list[Candidate],
    *,
    max_sentences: int,
    max_words: int,
    recent_share: float,
) -> list[Candidate]:
    """Choose the next version from embedded candidates, in dialogue order.

    When the sentence cap binds, ``recent_share`` of it goes to the new dialogue's most
    central sentences (so the latest session survives), the rest to the most central of
    everything left, with diversity (MMR) so near-repeats do not crowd out other facts.
    """
    chosen = old + fresh
    if len(chosen) > max_sentences:
        quota = min(len(fresh), math.ceil(max_sentences * recent_share))
        recent = _central(fresh, quota)
        rest = [c for c in chosen if c not in recent and not _repeats(c, recent)]
        chosen = recent + _central(rest, max_sentences - len(recent))
    return sorted(cap(chosen, max_sentences, max_words), key=lambda c: c.order)


def from_model(
    answer: Sequence[SummarySentence], previous: Sequence[MemoryItem]
) -> list[Candidate]:
    """Turn a validated model answer into candidates, in the model's order.

    A sentence identical to one of the previous version keeps that item (and its
    provenance); over the caps, the sentences resting on the oldest turns go first.
    """
    by_text = {normal(i.text): i for i in previous}
    found: list[Candidate] = []
    seen: set[str] = set()
    for position, sentence in enumerate(answer):
        key = normal(sentence.text)
        if key in seen:
            continue
        seen.add(key)
        item = by_text.get(key)
        turn_ids = item.source_turn_ids if item else tuple(sorted(sentence.turn_ids))
        found.append(
            Candidate(
                sentence.text,
                turn_ids,
                (0, position),
                float(max(turn_ids)),
                informativeness(sentence.text),
                item=item,
            )
        )
    return found


def cap(chosen: list[Candidate], max_sentences: int, max_words: int) -> list[Candidate]:
    """Drop the lowest-weighted candidates until both caps hold (one sentence always may)."""
    kept = list(chosen)
    while kept and (
        len(kept) > max_sentences
        or (len(kept) > 1 and sum(len(c.text.split()) for c in kept) > max_words)
    ):
        kept.remove(min(kept, key=lambda c: (c.weight, c.order)))
    return kept


def new_sentences(
    store: str, user_id: str, chosen: Sequence[Candidate], turns: Sequence[Turn], version: Version
) -> tuple[list[MemoryItem], list[np.ndarray]]:
    """Make items of the chosen sentences that are new in ``version``, with their vectors.

    Each candidate is given its item, so the version can list every sentence id.
    """
    by_id = {t.id: t for t in turns}
    items: list[MemoryItem] = []
    vectors: list[np.ndarray] = []
    for position, candidate in enumerate(chosen):
        if candidate.item is not None:
            continue
        assert candidate.vector is not None
        source = by_id.get(candidate.turn_ids[0])
        candidate.item = MemoryItem(
            # Derived from the version: a commit resumed after a crash writes the same ids.
            id=derived_item_id(version.id, "sentence", position),
            store=store,
            kind="sentence",
            user_id=user_id,
            agent_id=source.agent_id if source else None,
            session_id=source.session_id if source else None,
            text=candidate.text,
            source_turn_ids=candidate.turn_ids,
            valid_from=version.valid_from,
            metadata={
                "first_version": version.number,
                "last_version": version.number,
                "summary_id": version.id,
                "position": position,
                "order": list(candidate.order),
                "score": candidate.score,
            },
        )
        items.append(candidate.item)
        vectors.append(candidate.vector)
    return items, vectors


def summary_item(
    store: str,
    user_id: str,
    chosen: Sequence[Candidate],
    turns: Sequence[Turn],
    version: Version,
    retry_of: int | None = None,
) -> MemoryItem:
    """Make the item of a whole summary version (after :func:`new_sentences`)."""
    turn_ids = [t.id for t in turns]
    return MemoryItem(
        id=version.id,
        store=store,
        kind="summary",
        user_id=user_id,
        session_id=max(turns, key=lambda t: t.id).session_id,
        text="\n".join(c.text for c in chosen),
        source_turn_ids=tuple(sorted({i for c in chosen for i in c.turn_ids})),
        valid_from=version.valid_from,
        metadata={
            "version": version.number,
            "previous_id": version.previous_id,
            "turn_range": [min(turn_ids), max(turn_ids)],
            "last_turn_id": version.last_turn_id,
            "sentence_ids": [c.item.id for c in chosen if c.item is not None],
            "builder": version.builder,
            **({"retry_of_work": retry_of} if retry_of is not None else {}),
        },
    )


def _order(item: MemoryItem) -> tuple[int, int]:
    stored: Any = item.metadata.get("order")
    if isinstance(stored, list) and len(stored) == 2:
        return int(stored[0]), int(stored[1])
    return min(item.source_turn_ids, default=0), 0


def _central(candidates: list[Candidate], k: int) -> list[Candidate]:
    """Pick ``k`` central yet diverse candidates, favouring the heavier ones."""
    if k <= 0 or not candidates:
        return []
    matrix = np.stack([c.vector for c in candidates if c.vector is not None])
    picked = select_central(matrix, k, weights=[c.weight for c in candidates], diversity=DIVERSITY)
    return [candidates[i] for i in picked]


def _repeats(candidate: Candidate, picked: Sequence[Candidate]) -> bool:
    """Return whether ``candidate`` says nearly what one of ``picked`` says."""
    if candidate.vector is None or not picked:
        return False
    matrix = np.stack([c.vector for c in picked if c.vector is not None])
    return bool((matrix @ candidate.vector).max() >= REPEAT)
