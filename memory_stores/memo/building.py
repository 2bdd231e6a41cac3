"""Turning a chunk of dialogue into memo entries, offline or from a model's answer.

In-memory work over topics and turn vectors; the store embeds, persists and retires items
around it. The items' shapes (memo, topic, chunk record) are defined here too.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from agentmem.prompts.memo import MemoDraft
from agentmem.storage.records import new_item_id
from agentmem.text import informativeness, keywords, select_central, split_sentences, truncate_words
from agentmem.types import MemoryItem, Turn

#: Original turns kept in a memo's metadata, and the words kept of each.
SHOWN_TURNS = 12
SHOWN_WORDS = 80
#: Sentences an offline summary keeps of each turn it draws from.
SENTENCES_PER_TURN = 2


@dataclass(eq=False)  # identity: topics hold arrays
class Topic:
    """A topic in memory: its centroid kept as a running sum of unit turn vectors."""

    id: str
    name: str
    total: np.ndarray
    count: int = 0  # turn vectors in the centroid
    entries: int = 0  # memo entries written under it
    last_turn_id: int = 0
    item: MemoryItem | None = None  # None until persisted
    indexed: np.ndarray | None = None  # the vector last put in the index

    @classmethod
    def restore(cls, item: MemoryItem, indexed: np.ndarray | None) -> Topic:
        """Rebuild a topic from its item (and its vector in the index, if there is one)."""
        meta = item.metadata
        count = int(meta.get("turn_count", 0))
        entries, last = int(meta.get("entries", 0)), int(meta.get("last_turn_id", 0))
        exact = meta.get("total")
        if exact:
            total = np.frombuffer(base64.b64decode(exact), np.float32).copy()
            return cls(item.id, item.text, total, count, entries, last, item, indexed)
        # Written before the exact sum was kept: its direction in half precision.
        encoded = meta.get("centroid")
        direction = (
            np.frombuffer(base64.b64decode(encoded), np.float16).astype(np.float32)
            if encoded
            else indexed
        )
        if direction is None:
            raise ValueError(f"topic {item.id} has neither a stored centroid nor a vector")
        total = direction * float(meta.get("centroid_norm", 1.0)) * max(count, 1)
        return cls(item.id, item.text, total, count, entries, last, item, indexed)

    @classmethod
    def open(cls, name: str, dimension: int) -> Topic:
        """Return a new, empty topic."""
        return cls(new_item_id(), name, np.zeros(dimension, np.float32))

    def add(self, vector: np.ndarray) -> None:
        """Count one more turn vector into the centroid."""
        self.total = self.total + vector
        self.count += 1

    @property
    def centroid(self) -> np.ndarray:
        """The unit-length centroid of the topic's turns."""
        norm = float(np.linalg.norm(self.total))
        return self.total / norm if norm else self.total

    def metadata(self) -> dict[str, Any]:
        """Return the JSON metadata that lets the topic be rebuilt after a restart."""
        return {
            "name": self.name,
            "entries": self.entries,
            "turn_count": self.count,
            # The running sum itself, in full precision: a process restarted after a crash
            # goes on from the very sum an uninterrupted one holds, so turns join the same
            # topics (a half-precision direction drifted, 5 centroids in a replay of the
            # demo dialogues). The index's vector is refreshed only when it has drifted,
            # since chromadb re-upserts cost ~30 ms each.
            "total": base64.b64encode(self.total.astype(np.float32).tobytes()).decode(),
            "last_turn_id": self.last_turn_id,
        }


@dataclass(frozen=True)
class Entry:
    """A memo entry about to be written."""

    topic: Topic
    turns: tuple[Turn, ...]
    summary: str
    builder: str  # "offline" or "model"
    vector: np.ndarray | None = None  # None: embed the summary


def turn_informativeness(text: str) -> float:
    """Score a turn by the informativeness of its sentences (0 for pure filler)."""
    return sum(informativeness(sentence) for sentence in split_sentences(text))


@dataclass(frozen=True)
class OfflineBuilder:
    """Segments a chunk into topics by embedding and writes extractive summaries.

    Attributes:
        topic_threshold: Least cosine similarity of a turn to a topic's centroid to join it.
        continuity_bonus: Added to the similarity of the previous turn's topic.
        min_informativeness: Turns scoring below this are filler (never open a topic).
        summary_words: Most words of a summary.
        summary_turns: Most turns a summary draws sentences from.
    """

    topic_threshold: float = 0.35
    continuity_bonus: float = 0.1
    min_informativeness: float = 2.0
    summary_words: int = 60
    summary_turns: int = 3

    def build(
        self, topics: dict[str, Topic], chunk: Sequence[Turn], vectors: np.ndarray
    ) -> list[Entry]:
        """Assign turns to ``topics`` (adding new ones); runs of one topic become entries."""
        scores = [turn_informativeness(t.text) for t in chunk]
        labels: list[Topic | None] = []
        previous: Topic | None = None
        for index, turn in enumerate(chunk):
            if index and turn.session_id != chunk[index - 1].session_id:
                previous = None  # a new session need not continue the last subject
            if scores[index] < self.min_informativeness:
                labels.append(None)
                continue
            previous = self._closest(topics, vectors[index], previous)
            previous.add(vectors[index])
            labels.append(previous)
        # Filler joins the segment before it, else the one after it, within its session.
        for step in (1, -1):
            order = range(1, len(chunk)) if step == 1 else range(len(chunk) - 2, -1, -1)
            for i in order:
                if labels[i] is None and chunk[i].session_id == chunk[i - step].session_id:
                    labels[i] = labels[i - step]
        runs: list[tuple[Topic, list[int]]] = []
        for index, label in enumerate(labels):
            if label is None:
                continue  # a chunk of pure filler writes nothing
            last = runs[-1] if runs else None
            if (
                last
                and last[0] is label
                and chunk[last[1][-1]].session_id == chunk[index].session_id
            ):
                last[1].append(index)
            else:
                runs.append((label, [index]))
        for topic in {id(t): t for t, _ in runs}.values():
            if not topic.name:
                texts = [chunk[i].text for t, run in runs if t is topic for i in run]
                topic.name = ", ".join(keywords(texts, 3)) or "small talk"
        entries = []
        for topic, run in runs:
            summary, picked = self.summarise(run, chunk, vectors, scores)
            # The summary copies these turns, so the mean of their vectors stands in for
            # its embedding: the write path embeds nothing beyond the turns themselves.
            mean = vectors[picked].sum(axis=0)
            vector = mean / max(float(np.linalg.norm(mean)), 1e-9)
            entries.append(Entry(topic, tuple(chunk[i] for i in run), summary, "offline", vector))
        return entries

    def _closest(
        self, topics: dict[str, Topic], vector: np.ndarray, previous: Topic | None
    ) -> Topic:
        candidates = [t for t in topics.values() if t.count]
        if candidates:
            sims = np.stack([t.centroid for t in candidates]) @ vector
            if previous is not None and previous in candidates:
                sims[candidates.index(previous)] += self.continuity_bonus
            best = int(np.argmax(sims))
            if sims[best] >= self.topic_threshold:
                return candidates[best]
        topic = Topic.open("", len(vector))  # named once its turns are known
        topics[topic.id] = topic
        return topic

    def summarise(
        self, run: list[int], chunk: Sequence[Turn], vectors: np.ndarray, scores: list[float]
    ) -> tuple[str, list[int]]:
        """Pick the most central informative turns, then their most informative sentences.

        Returns:
            The summary, and the indices (into ``chunk``) of the turns it draws from.
        """
        useful = [i for i in run if scores[i] >= self.min_informativeness] or run
        weights = [max(scores[i], 0.1) for i in useful]
        central = select_central(vectors[useful], self.summary_turns, weights=weights)
        parts: dict[int, str] = {}
        for i in (useful[p] for p in central):
            sentences = split_sentences(chunk[i].text) or [chunk[i].text]
            ranked = sorted(range(len(sentences)), key=lambda s: -informativeness(sentences[s]))
            kept = " ".join(sentences[s] for s in sorted(ranked[:SENTENCES_PER_TURN]))
            parts[i] = f"{chunk[i].speaker}: {kept}"
        # Over the cap, the least informative turns go first; the rest keep dialogue order.
        while len(parts) > 1 and sum(len(p.split()) for p in parts.values()) > self.summary_words:
            del parts[min(parts, key=lambda i: scores[i])]
        picked = sorted(parts)
        return truncate_words(" ".join(parts[i] for i in picked), self.summary_words), picked


def entries_from_drafts(
    topics: dict[str, Topic],
    turns: Sequence[Turn],
    vectors: np.ndarray,
    drafts: Sequence[MemoDraft],
) -> list[Entry]:
    """Turn the model's memos into entries, reusing a topic it names (case-insensitively)."""
    by_id = {t.id: (t, v) for t, v in zip(turns, vectors, strict=True)}
    names = {t.name.casefold(): t for t in topics.values()}
    entries = []
    for draft in drafts:
        topic = names.get(draft.topic.casefold())
        if topic is None:
            topic = Topic.open(draft.topic, vectors.shape[1])
            topics[topic.id] = names[draft.topic.casefold()] = topic
        for turn_id in draft.turn_ids:
            topic.add(by_id[turn_id][1])
        span = tuple(by_id[i][0] for i in draft.turn_ids)
        entries.append(Entry(topic, span, draft.summary, "model"))
    return entries


def memo_item(
    store: str, user_id: str, entry: Entry, chunk_last_id: int, now: datetime
) -> MemoryItem:
    """Return the item of a memo entry: its text, turns as provenance, span in metadata."""
    turns = entry.turns
    sessions = list(dict.fromkeys(t.session_id for t in turns))
    agents = {t.agent_id for t in turns}
    shown = [
        {
            "id": t.id,
            "speaker": t.speaker,
            "text": truncate_words(t.text, SHOWN_WORDS),
            "timestamp": t.timestamp.isoformat(),
        }
        for t in turns[:SHOWN_TURNS]
    ]
    return MemoryItem(
        id=new_item_id(),
        store=store,
        kind="memo",
        user_id=user_id,
        agent_id=agents.pop() if len(agents) == 1 else None,
        session_id=sessions[0] if len(sessions) == 1 else None,
        # A topic the model named heads its memo; the offline builder's names are keyword
        # lists ("jake, done, broke"), which read as no content and would carry a word
        # the summary itself may no longer say: they stay in the metadata.
        text=(
            f"Topic: {entry.topic.name}. {entry.summary}"
            if entry.builder == "model"
            else entry.summary
        ),
        source_turn_ids=tuple(t.id for t in turns),
        # The memo holds once its last turn was said (it summarises up to there).
        valid_from=max(t.timestamp for t in turns),
        created_at=now,
        metadata={
            "topic": entry.topic.name,
            "topic_id": entry.topic.id,
            "summary": entry.summary,
            "first_turn_id": turns[0].id,
            "last_turn_id": turns[-1].id,
            "turn_ids": [t.id for t in turns],
            "external_ids": [t.external_id for t in turns if t.external_id],
            "session_ids": sessions,
            "turns": shown,
            "chunk_last_turn_id": chunk_last_id,
            "builder": entry.builder,
        },
    )


def topic_item(
    store: str, user_id: str, topic: Topic, turns: Sequence[Turn], now: datetime
) -> MemoryItem:
    """Return the item of a new topic: its name as text, its turns as provenance."""
    return MemoryItem(
        id=topic.id,
        store=store,
        kind="topic",
        user_id=user_id,
        text=topic.name,
        source_turn_ids=tuple(sorted({t.id for t in turns})),
        valid_from=min(t.timestamp for t in turns),
        created_at=now,
        metadata=topic.metadata(),
    )


def chunk_item(
    store: str, user_id: str, chunk: Sequence[Turn], memo_ids: list[str], now: datetime
) -> MemoryItem:
    """Return the record that a chunk was memo'd (no vector: it marks the buffer's start)."""
    last_id = max(t.id for t in chunk)
    return MemoryItem(
        id=new_item_id(),
        store=store,
        kind="chunk",
        user_id=user_id,
        text=f"Memo chunk of turns {chunk[0].id}-{last_id}",
        source_turn_ids=tuple(t.id for t in chunk),
        valid_from=chunk[-1].timestamp,
        created_at=now,
        metadata={"first_turn_id": chunk[0].id, "last_turn_id": last_id, "memo_ids": memo_ids},
    )
