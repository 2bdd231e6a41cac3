"""The memo store: buffering, persistence, retrieval by topic, retries of model builds."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from agentmem.errors import InputError, ModelError
from agentmem.models.building import BuildStats, retry_work, structured_call
from agentmem.prompts.memo import MEMO_SCHEMA, MemoDraft, memo_messages, validate_memos
from agentmem.protocols import StoreContext
from agentmem.questions import FORMS
from agentmem.storage.items import ItemIndex, vector_metadata, visible
from agentmem.storage.records import ItemUpdate, PendingWorkRow
from agentmem.stores.memo.building import (
    Entry,
    OfflineBuilder,
    Topic,
    chunk_item,
    entries_from_drafts,
    memo_item,
    topic_item,
)
from agentmem.types import Change, MemoryItem, Outline, Query, Recalled, Turn

logger = logging.getLogger(__name__)

#: Existing topic names shown to the model (the most recently used).
PROMPT_TOPICS = 50
#: A topic's vector in the index is refreshed once its centroid drifts below this cosine.
REINDEX_COSINE = 0.98
#: The kind of queued work: a chunk to rebuild with the model.
WORK_KIND = "memo_chunk"


def _log_retry_failure(work: PendingWorkRow, error: ModelError) -> None:
    logger.warning("memo retry %d failed again: %s", work.id, error)


@dataclass
class _UserState:
    """One user's memo state, rebuilt lazily from the records after a restart."""

    topics: dict[str, Topic]  # current topics: the ones turns may join and that boost
    watermark: int = 0  # the highest turn id a chunk has covered (loaded with the buffer)
    buffer: list[Turn] | None = None  # the turns after the watermark; loaded on first write


class MemoStore:
    """MemoChat's memos: topic-organised summaries of dialogue spans.

    Args:
        context: The core services.
        name: The structure's name in records and results.
        chunk_turns: Buffered turns that trigger writing memos without a session end.
        topic_threshold: Least cosine similarity of a turn to a topic's centroid to join it.
        continuity_bonus: Added to the similarity of the previous turn's topic.
        min_informativeness: Turns scoring below this are filler (never open a topic).
        summary_words: Most words of an offline summary (and asked of the model).
        summary_turns: Most turns an offline summary draws sentences from.
        topic_boost: An entry scores at least this times its topic's similarity.
        boost_topics: How many best-matching topics boost their entries.
        candidates: Nearest entries re-ranked per result asked for (``candidates * k``).
        mention_topics: For a question about what was said of a subject, how many of the
            best-matching topics give all their entries first.

    Raises:
        InputError: A parameter is out of range.
    """

    #: The question forms it answers first (``Leading``; see ``agentmem.questions``).
    leads = frozenset({"mentions"})
    #: The forms it answers at all: not a recap, which names a time it knows nothing of
    #: (its items were kept out of recaps by their time anyway, at a search's cost).
    serves = frozenset(FORMS) - {"recap"}

    #: What :meth:`outline`'s ``focus`` takes (see ``Browsable``).
    focus_hint = ""

    def __init__(
        self,
        context: StoreContext,
        *,
        name: str = "memo",
        chunk_turns: int = 10,
        topic_threshold: float = 0.35,
        continuity_bonus: float = 0.1,
        min_informativeness: float = 2.0,
        summary_words: int = 60,
        summary_turns: int = 3,
        topic_boost: float = 0.9,
        boost_topics: int = 3,
        candidates: int = 3,
        mention_topics: int = 2,
    ) -> None:
        if min(chunk_turns, summary_words, summary_turns, candidates) < 1 or boost_topics < 0:
            raise InputError("chunk_turns, summary sizes and candidates must be positive")
        if not 0.0 <= topic_boost <= 1.0:
            raise InputError(f"topic_boost must lie in [0, 1], not {topic_boost}")
        self.name = name
        self.context = context
        self.chunk_turns = chunk_turns
        self.topic_boost = topic_boost
        self.boost_topics = boost_topics
        self.candidates = candidates
        self.mention_topics = mention_topics
        self.builder = OfflineBuilder(
            topic_threshold, continuity_bonus, min_informativeness, summary_words, summary_turns
        )
        self.stats = BuildStats()
        self._index = ItemIndex(context, name)
        self._states: dict[str, _UserState] = {}
        self._lock = threading.RLock()

    # -- the protocol -----------------------------------------------------------------------

    def write(self, turns: Sequence[Turn]) -> list[Change]:
        """Buffer the turns; write memos for every full chunk of ``chunk_turns``."""
        changed: list[Change] = []
        with self._lock:
            for user_id in dict.fromkeys(t.user_id for t in turns):
                buffer = self._buffer(user_id)
                state = self._states[user_id]
                known = {t.id for t in buffer}
                # A turn at or below the watermark was memo'd already (a replayed write).
                buffer += [
                    t
                    for t in turns
                    if t.user_id == user_id and t.id not in known and t.id > state.watermark
                ]
                buffer.sort(key=lambda t: t.id)
                while len(buffer) >= self.chunk_turns:
                    changed += self._memo_chunk(user_id, state, buffer[: self.chunk_turns])
                    buffer = state.buffer or []
        return changed

    def end_session(self, user_id: str, session_id: str) -> list[Change]:
        """Write memos for whatever the user's buffer holds (from any of their sessions)."""
        changed: list[Change] = []
        with self._lock:
            buffer = self._buffer(user_id)
            while buffer:
                state = self._states[user_id]
                changed += self._memo_chunk(user_id, state, buffer[: self.chunk_turns])
                buffer = state.buffer or []
        return changed

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Return up to ``k`` memo entries, by their own and their topic's similarity."""
        if query.embedding is None or k <= 0:
            return []
        hits = self._nearest_memos(query, self.candidates * k)
        with self._lock:
            boost = self._topic_boost(self._state(query.scope.user_id), query)
        ranked = sorted(
            ((self._score(r.item, r.score, boost), r) for r in hits),
            key=lambda p: (-p[0], -p[1].score, p[1].item.id),
        )
        found = [Recalled(r.item, score) for score, r in ranked[:k]]
        if query.form != "mentions" or not boost:
            return found
        # "What did we say about the move?": every memo of the subject's topics, across
        # sessions, oldest first (MemoChat shows a chosen topic's entries whole).
        chosen = sorted(boost, key=lambda t: -boost[t])[: self.mention_topics]
        memos = self.context.records.store_items(self.name, query.scope.user_id, kind="memo")
        entries = [
            Recalled(m, boost[str(m.metadata.get("topic_id"))])
            for m in sorted(
                memos,
                key=lambda m: (
                    chosen.index(m.metadata.get("topic_id", ""))
                    if m.metadata.get("topic_id") in chosen
                    else 99,
                    m.valid_from or datetime.min,
                ),
            )
            if m.metadata.get("topic_id") in chosen and visible(m, query)
        ]
        seen = {r.item.id for r in entries}
        return (entries + [r for r in found if r.item.id not in seen])[:k]

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
    ) -> None:
        """Mark memo entries or topics invalid; an invalid topic takes no turns, boosts none."""
        with self._lock:
            changed = self._index.invalidate(item_ids, reason, at=at, superseded_by=superseded_by)
            for user_id in {i.user_id for i in changed}:
                self._states.pop(user_id, None)  # rebuilt from the records on next use

    def update(
        self, item_id: str, text: str, *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Change a memo's (or a topic's) text and re-embed it."""
        with self._lock:
            item = self._index.editable(item_id)
            metadata = dict(item.metadata)
            if item.kind == "memo":
                metadata["summary"] = text
            updated = self._index.update(item, text, reason=reason, at=at, metadata=metadata)
            self._states.pop(item.user_id, None)  # rebuilt from the records on next use
            return [Change("UPDATE", updated, reason)]

    def delete(
        self, item_ids: Sequence[str], *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Delete memos; a deleted topic takes its memos along (they were its content)."""
        with self._lock:
            mine = [i for i in self.context.records.items(item_ids) if i.store == self.name]
            ids = [i.id for i in mine]
            for topic in (i for i in mine if i.kind == "topic"):
                memos = self.context.records.store_items(self.name, topic.user_id, kind="memo")
                ids += [m.id for m in memos if m.metadata.get("topic_id") == topic.id]
            changed = self._index.delete(list(dict.fromkeys(ids)), reason, at=at)
            for user_id in {i.user_id for i in changed}:
                self._states.pop(user_id, None)
            return [Change("DELETE", item, reason) for item in changed]

    def outline(self, user_id: str, *, focus: str = "", limit: int = 200) -> list[Outline]:
        """Return the current memos grouped by topic, the most recently updated topic first."""
        memos = self.context.records.store_items(self.name, user_id, kind="memo")
        names = {
            t.id: t.text for t in self.context.records.store_items(self.name, user_id, kind="topic")
        }
        topics: dict[str, list[MemoryItem]] = {}
        for memo in memos:
            name = names.get(str(memo.metadata.get("topic_id"))) or str(
                memo.metadata.get("topic") or "(no topic)"
            )
            topics.setdefault(name, []).append(memo)
        ordered = sorted(
            topics.items(),
            key=lambda pair: max(m.created_at or m.valid_from or datetime.min for m in pair[1]),
            reverse=True,
        )
        entries, shown = [], 0
        for name, group in ordered:
            if shown >= limit:
                break
            group = list(reversed(group))[: limit - shown]
            shown += len(group)
            entries.append(
                Outline(
                    f"{name}  ({len(group)})",
                    None,
                    tuple(Outline(str(m.metadata.get("summary") or m.text), m) for m in group),
                )
            )
        return entries

    def forget(self, user_id: str) -> int:
        """Drop the user's vectors and cached state (the records database forgets the rows)."""
        with self._lock:
            self._states.pop(user_id, None)
            return self._index.forget(user_id)

    def retry_pending(self, user_id: str | None = None) -> int:
        """Rebuild queued chunks with the model, replacing their offline memos."""
        if self.context.model is None:
            return 0
        with self._lock:
            return retry_work(
                self.context.records,
                self.name,
                user_id,
                self._rebuild,
                kind=WORK_KIND,
                on_failure=_log_retry_failure,
            )

    def _rebuild(self, work: PendingWorkRow) -> bool:
        """Rebuild one queued chunk with the model; ``False`` when its turns are gone.

        Raises:
            ModelError: The model failed again (the offline memos stay).
        """
        turns = self.context.records.turns(work.user_id, ids=work.payload.get("turn_ids", []))
        if not turns:
            return False  # the turns are gone: nothing to rebuild
        state = self._state(work.user_id)
        drafts = self._ask_model(state, turns)
        try:
            vectors = self._index.embed([t.text for t in turns])
            entries = entries_from_drafts(state.topics, turns, vectors, drafts)
            memos, _ = self._commit(work.user_id, state, turns, entries, record=False)
            old = work.payload.get("fallback_memo_ids", [])
            self._replace(work.user_id, state, old, memos)
        finally:
            self._states.pop(work.user_id, None)  # rebuilt without replaced topics
        return True

    # -- state ------------------------------------------------------------------------------

    def _state(self, user_id: str) -> _UserState:
        state = self._states.get(user_id)
        if state is not None:
            return state
        records = self.context.records
        topic_items = records.store_items(self.name, user_id, kind="topic")
        stored = self.context.vectors.get(self.name, user_id, [t.id for t in topic_items])
        topics: dict[str, Topic] = {}
        for item in topic_items:
            try:
                topics[item.id] = Topic.restore(item, stored.get(item.id))
            except ValueError as exc:  # lost between records and vectors; takes no turns
                logger.warning("memo topic skipped: %s", exc)
        state = _UserState(topics)
        self._states[user_id] = state
        return state

    def _buffer(self, user_id: str) -> list[Turn]:
        state = self._state(user_id)
        if state.buffer is None:
            records = self.context.records
            # Chunk records are committed with their memos, so they mark exactly what
            # was memo'd; every session of the user counts towards the rest.
            chunks = records.store_items(self.name, user_id, kind="chunk", current_only=False)
            marks = [int(c.metadata.get("last_turn_id", 0)) for c in chunks]
            state.watermark = max(marks, default=0)
            state.buffer = [
                t for t in records.turns(user_id, after_id=state.watermark) if not t.quotes_memory
            ]
        return state.buffer

    # -- building ---------------------------------------------------------------------------

    def _memo_chunk(self, user_id: str, state: _UserState, chunk: list[Turn]) -> list[Change]:
        """Write one chunk's memos and advance the watermark past it."""
        try:
            vectors = self._index.embed([t.text for t in chunk])
            failure: ModelError | None = None
            if self.context.model is None:
                entries = self.builder.build(state.topics, chunk, vectors)
            else:
                try:
                    drafts = self._ask_model(state, chunk)
                    entries = entries_from_drafts(state.topics, chunk, vectors, drafts)
                except ModelError as exc:
                    logger.warning("memo model build failed, using the offline one: %s", exc)
                    failure = exc
                    entries = self.builder.build(state.topics, chunk, vectors)
            memos, changed = self._commit(user_id, state, chunk, entries, record=True)
        except BaseException:
            self._states.pop(user_id, None)  # the cache may be half-updated: rebuild it
            raise
        if failure is not None:
            payload = {
                "turn_ids": [t.id for t in chunk],
                "fallback_memo_ids": [m.id for m in memos],
            }
            self.context.records.queue_work(self.name, user_id, WORK_KIND, payload, str(failure))
            self.stats.add_failure(queued=True)
        state.watermark = max(state.watermark, chunk[-1].id)
        covered = {t.id for t in chunk}
        state.buffer = [t for t in state.buffer or [] if t.id not in covered]
        return changed

    def _ask_model(self, state: _UserState, turns: Sequence[Turn]) -> list[MemoDraft]:
        assert self.context.model is not None
        recent = sorted(state.topics.values(), key=lambda t: -t.last_turn_id)[:PROMPT_TOPICS]
        ids = [t.id for t in turns]
        words = self.builder.summary_words
        drafts: list[MemoDraft] = structured_call(
            self.context.model,
            memo_messages(turns, [t.name for t in recent], max_summary_words=words),
            MEMO_SCHEMA,
            validate=lambda data: validate_memos(data, ids),
            stats=self.stats,
        )
        return drafts

    # -- persistence ------------------------------------------------------------------------

    def _commit(
        self,
        user_id: str,
        state: _UserState,
        chunk: Sequence[Turn],
        entries: list[Entry],
        *,
        record: bool,
    ) -> tuple[list[MemoryItem], list[Change]]:
        """Persist a chunk's memos: their vectors first, then every row in one transaction.

        The rows are the memos, the new topics, the chunk record and the topics that grew.
        A kill before the commit leaves vectors no record names (repaired on the next
        open, see :mod:`agentmem.storage.repair`) and the chunk to memo again, from the
        topics as they were; after it, the chunk is done as a whole.

        Returns:
            The new memos, and what changed: memos and new topics added, topics grown.
        """
        records = self.context.records
        now = self._index.clock
        chunk_last = max(t.id for t in chunk)
        memos = []
        turns_of: dict[str, list[Turn]] = {}
        for entry in entries:
            memos.append(memo_item(self.name, user_id, entry, chunk_last, now))
            entry.topic.entries += 1
            turns_of.setdefault(entry.topic.id, []).extend(entry.turns)
            topic = entry.topic
            topic.last_turn_id = max(topic.last_turn_id, *(t.id for t in entry.turns))
        topics = list({e.topic.id: e.topic for e in entries}.values())
        new_topics = {
            t.id: topic_item(self.name, user_id, t, turns_of[t.id], now)
            for t in topics
            if t.item is None
        }
        grown = [t for t in topics if t.id not in new_topics]
        changes = []
        for topic in grown:
            assert topic.item is not None
            ids = set(topic.item.source_turn_ids) | {t.id for t in turns_of[topic.id]}
            changes.append(
                ItemUpdate(
                    topic.id,
                    metadata=topic.metadata(),
                    source_turn_ids=sorted(ids),
                    reason="memo added to topic",
                )
            )
        moved = self._write_vectors(user_id, entries, memos, topics, new_topics)
        marker = [chunk_item(self.name, user_id, chunk, [m.id for m in memos], now)]
        with records.transaction():
            records.add_items(
                [*new_topics.values(), *memos, *(marker if record else [])],
                reason="memo written",
            )
            after = records.update_items(changes)
        for item in new_topics.values():
            state.topics[item.id].item = item
        for topic, item in zip(grown, after, strict=True):
            topic.item = item
        for topic in moved:
            topic.indexed = topic.centroid
        done = [Change("ADD", i, "memo written") for i in [*new_topics.values(), *memos]] + [
            Change("UPDATE", t.item, "memo added to topic") for t in grown if t.item is not None
        ]
        return memos, done

    def _write_vectors(
        self,
        user_id: str,
        entries: list[Entry],
        memos: list[MemoryItem],
        topics: list[Topic],
        new_topics: dict[str, MemoryItem],
    ) -> list[Topic]:
        """Write the memos' vectors and the drifted topics'; return those topics."""
        if not memos:
            return []
        # A memo's vector is its summary's without the topic name (a keyword list would
        # only blur it); the offline builder supplies one from the turns it copied.
        todo = [e.summary for e in entries if e.vector is None]
        fresh = iter(self._index.embed(todo) if todo else [])
        rows = [e.vector if e.vector is not None else next(fresh) for e in entries]
        # A topic's vector is refreshed when its centroid has drifted: topics match
        # queries through the in-memory centroids, the index serves ``as_of`` queries.
        moved = [
            t for t in topics if t.indexed is None or float(t.indexed @ t.centroid) < REINDEX_COSINE
        ]
        rows += [t.centroid for t in moved]
        items = list(memos)
        for topic in moved:
            item = new_topics.get(topic.id) or topic.item
            assert item is not None  # a topic is new or stored
            items.append(item)
        self.context.vectors.upsert(
            self.name,
            user_id,
            [i.id for i in items],
            np.stack(rows).astype(np.float32),
            [vector_metadata(i) for i in items],
        )
        return moved

    def _replace(
        self, user_id: str, state: _UserState, old_ids: Sequence[str], new: list[MemoryItem]
    ) -> None:
        """Invalidate offline memos a model rebuild replaced, and the topics they opened."""
        old = [m for m in self.context.records.items(old_ids, user_id=user_id) if m.current]
        replaced = Counter(str(m.metadata.get("topic_id")) for m in old)
        for memo in old:
            cited = set(memo.source_turn_ids)
            best = max(new, key=lambda n: len(cited & set(n.source_turn_ids)), default=None)
            successor = best.id if best and cited & set(best.source_turn_ids) else None
            # Invalid from its own start: a correction, not a change in the world, so an
            # ``as_of`` view shows only the model's memo.
            self._index.invalidate(
                [memo.id], "rebuilt by the model", at=memo.valid_from, superseded_by=successor
            )
        for topic_id, count in replaced.items():
            topic = state.topics.get(topic_id)
            if topic and topic.item and topic.entries <= count:  # only the replaced memos
                self._index.invalidate(
                    [topic_id], "its memos were rebuilt by the model", at=topic.item.valid_from
                )

    def _nearest_memos(self, query: Query, n: int) -> list[Recalled]:
        """Return the ``n`` visible memo entries nearest the query, best first."""
        assert query.embedding is not None
        if query.as_of is None and not query.include_history:
            # chromadb answers an unfiltered query several times faster than a filtered one
            # (5 vs 30 ms at 7,000 vectors); nearly every vector is a current memo, so the
            # records (the source of truth) filter afterwards.
            user_id = query.scope.user_id
            wanted = n + 10 + len(query.exclude_turn_ids)
            hits = self.context.vectors.query(self.name, user_id, query.embedding, wanted)
            rows = {
                i.id: i for i in self.context.records.items([h.id for h in hits], user_id=user_id)
            }
            found = [
                Recalled(rows[h.id], h.similarity)
                for h in hits
                if h.id in rows and rows[h.id].kind == "memo" and visible(rows[h.id], query)
            ][:n]
            if len(found) == n or len(hits) < wanted:
                return found
        return self._index.search(query, n, kinds=["memo"])

    def _topic_boost(self, state: _UserState, query: Query) -> dict[str, float]:
        """Return the boost of the best-matching topics: factor times their similarity."""
        assert query.embedding is not None
        if query.as_of is not None:
            # What held then, which the in-memory (current) topics cannot tell.
            past = replace(query, include_history=False, exclude_turn_ids=frozenset())
            found = self._index.search(past, self.boost_topics, kinds=["topic"])
            return {r.item.id: self.topic_boost * r.score for r in found}
        # Current topics only: an invalidated one boosts nothing. Their exact centroids
        # are in memory (the index's copy may lag a little), which spares a vector query.
        topics = [t for t in state.topics.values() if t.item is not None and t.count]
        if not topics or not self.boost_topics:
            return {}
        sims = np.stack([t.centroid for t in topics]) @ query.embedding
        best = np.argsort(-sims)[: self.boost_topics]
        return {topics[i].id: self.topic_boost * float(sims[i]) for i in best}

    def _score(self, item: MemoryItem, own: float, boost: dict[str, float]) -> float:
        return max(own, boost.get(str(item.metadata.get("topic_id")), 0.0))
