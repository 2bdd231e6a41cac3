"""The recursive summary store: versions, sentence items, triggers, cursor and retrieval.

See the package docstring for the method and what the offline builder loses.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from agentmem.errors import InputError, ModelError
from agentmem.models.building import BuildStats, retry_work, structured_call
from agentmem.prompts.summary import (
    SUMMARY_SCHEMA,
    SummarySentence,
    summary_messages,
    validate_summary,
)
from agentmem.protocols import StoreContext
from agentmem.questions import FORMS
from agentmem.storage.items import ItemIndex, visible
from agentmem.storage.records import ItemUpdate, PendingWorkRow, derived_item_id
from agentmem.stores.summary.building import (
    Candidate,
    Version,
    cap,
    carried,
    dialogue_sentences,
    from_model,
    new_sentences,
    select_offline,
    summary_item,
)
from agentmem.stores.summary.digests import Digests
from agentmem.types import Change, MemoryItem, Outline, Query, Recalled, Turn

logger = logging.getLogger(__name__)

#: Sentence vectors kept in memory (retrieval ranks the current summary without chromadb).
VECTOR_CACHE_SIZE = 20_000


@dataclass
class _UserState:
    """What the next update needs, rebuilt lazily from the records after a restart."""

    version: int = 0
    version_id: str | None = None
    valid_from: datetime | None = None
    cursor: int = 0  # the highest turn id a version has covered
    pending: dict[int, Turn] = field(default_factory=dict)


class SummaryStore:
    """A per-user recursive summary, versioned, retrieved sentence by sentence.

    Args:
        context: The core services.
        name: The structure's name in records and results.
        every_turns: Summarise after this many new turns even without a session end.
        max_sentences: The most sentences a summary version holds.
        max_words: The most words a summary version holds.
        min_informativeness: Offline builder: sentences scoring below this (see
            :func:`agentmem.text.informativeness`) never enter the summary.
        recent_share: Offline builder: the share of ``max_sentences`` reserved for the
            new dialogue when the cap binds.

    Raises:
        InputError: A limit is not positive.
    """

    #: The question forms it answers first (``Leading``; see ``agentmem.questions``).
    leads = frozenset({"recap"})
    #: The forms it answers at all: every one.
    serves = frozenset(FORMS)

    #: What :meth:`outline`'s ``focus`` takes (see ``Browsable``).
    focus_hint = ""

    def __init__(
        self,
        context: StoreContext,
        *,
        name: str = "summary",
        every_turns: int = 40,
        max_sentences: int = 30,
        max_words: int = 400,
        min_informativeness: float = 2.0,
        recent_share: float = 0.5,
    ) -> None:
        if every_turns < 1 or max_sentences < 1 or max_words < 1:
            raise InputError("every_turns, max_sentences and max_words must be positive")
        if not 0.0 < recent_share <= 1.0:
            raise InputError("recent_share must be in (0, 1]")
        self.name = name
        self.context = context
        self.every_turns = every_turns
        self.max_sentences = max_sentences
        self.max_words = max_words
        self.min_informativeness = min_informativeness
        self.recent_share = recent_share
        self.stats = BuildStats()
        self._index = ItemIndex(context, name)
        self._users: dict[str, _UserState] = {}
        # Per user: (valid_from, sentence ids) of each version, oldest first, for as_of.
        self._timelines: dict[str, list[tuple[datetime | None, list[str]]]] = {}
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()
        self._digests = Digests(context, name, self._index, min_informativeness=min_informativeness)

    # -- the protocol -----------------------------------------------------------------------

    def write(self, turns: Sequence[Turn]) -> list[Change]:
        """Queue the turns; summarise each full chunk of ``every_turns`` pending turns."""
        changed: list[Change] = []
        with self._lock:
            for user_id in dict.fromkeys(t.user_id for t in turns):
                mine = [t for t in turns if t.user_id == user_id]
                state = self._state(user_id, upto=max(t.id for t in mine))
                for turn in mine:
                    if turn.id > state.cursor:
                        state.pending[turn.id] = turn
                while len(state.pending) >= self.every_turns:
                    chunk = sorted(state.pending.values(), key=lambda t: t.id)
                    changed += self._update(user_id, chunk[: self.every_turns])
        return changed

    def end_session(self, user_id: str, session_id: str) -> list[Change]:
        """Fold the dialogue since the last update into a new summary version."""
        changed: list[Change] = []
        with self._lock:
            state = self._state(user_id)
            # Turns of the session stored but never passed to write still belong in it.
            for turn in self.context.records.turns(user_id, session_id=session_id):
                if turn.id > state.cursor and not turn.quotes_memory:
                    state.pending.setdefault(turn.id, turn)
            while state.pending:
                chunk = sorted(state.pending.values(), key=lambda t: t.id)
                changed += self._update(user_id, chunk[: self.every_turns])
            changed += self._digests.end_session(user_id, session_id)
        return changed

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Return the summary's sentences most similar to the query, best first.

        A recap, or a question naming a stretch of time, gets the digests of the sessions
        and months it asks about first (:mod:`.digests`). The current summary is small, so
        it is ranked exactly in memory; ``as_of`` ranks the version in force then;
        ``include_history`` searches every sentence ever kept.
        """
        if query.embedding is None or k <= 0:
            return []
        digests = self._digests.retrieve(query, k)
        if digests is None:
            return self._sentences(query, k)
        # The running summary is about the whole dialogue, not the time asked about.
        if query.window is not None:
            return digests
        return (digests + self._sentences(query, k))[:k]

    def _sentences(self, query: Query, k: int) -> list[Recalled]:
        """Return the summary's sentences most similar to the query (see :meth:`retrieve`)."""
        if query.embedding is None or k <= 0:
            return []
        if query.include_history:
            return self._index.search(query, k, kinds=["sentence"])
        user_id = query.scope.user_id
        if query.as_of is None:
            candidates = self.context.records.store_items(self.name, user_id, kind="sentence")
        else:
            candidates = self._sentences_as_of(user_id, query.as_of)
        items = [i for i in candidates if visible(i, query)]
        if not items:
            return []
        with self._lock:
            matrix = np.stack(self._vectors_of(user_id, items))
        scores = matrix @ np.asarray(query.embedding, dtype=np.float32)
        best = np.argsort(-scores, kind="stable")[:k]
        return [Recalled(items[i], float(scores[i])) for i in best]

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
    ) -> None:
        """Mark items invalid; an invalidated sentence is not carried into the next version."""
        self._index.invalidate(item_ids, reason, at=at, superseded_by=superseded_by)

    def update(
        self, item_id: str, text: str, *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Change a sentence of the summary (re-embedded); the version that holds it is
        rewritten with it. A version's own text is the join of its sentences: edit those."""
        with self._lock:
            item = self._index.editable(item_id)
            if item.kind != "sentence":
                raise InputError(
                    "a summary version is the join of its sentences: edit a sentence instead"
                )
            vector = self._index.embed([text])[0]
            updated = self._index.update(item, text, reason=reason, at=at, embedding=vector)
            self._remember_vector(item.id, vector)
            return [Change("UPDATE", updated, reason), *self._rewrite_versions(updated, reason, at)]

    def delete(
        self, item_ids: Sequence[str], *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Delete sentences of the summary (a deleted version takes its sentences along);
        the current version is rewritten without them."""
        with self._lock:
            mine = [i for i in self.context.records.items(item_ids) if i.store == self.name]
            ids = [i.id for i in mine]
            for version in (i for i in mine if i.kind == "summary"):
                ids += [str(s) for s in version.metadata.get("sentence_ids", [])]
            changed = self._index.delete(list(dict.fromkeys(ids)), reason, at=at)
            changes = [Change("DELETE", i, reason) for i in changed]
            for item in changed:
                if item.kind == "sentence":
                    changes += self._rewrite_versions(item, reason, at)
            return changes

    def _rewrite_versions(
        self, sentence: MemoryItem, reason: str, at: datetime | None
    ) -> list[Change]:
        """Rewrite the current version holding ``sentence`` from its current sentences."""
        current = self.current_summary(sentence.user_id)
        if current is None or sentence.id not in current.metadata.get("sentence_ids", []):
            return []
        ids = [str(i) for i in current.metadata.get("sentence_ids", [])]
        by_id = {i.id: i for i in self.context.records.items(ids, user_id=sentence.user_id)}
        text = "\n".join(by_id[i].text for i in ids if i in by_id and by_id[i].current)
        why = f"a sentence was changed: {reason}"
        updated = self.context.records.update_item(current.id, text_value=text, reason=why, at=at)
        return [Change("UPDATE", updated, why)]

    def outline(self, user_id: str, *, focus: str = "", limit: int = 200) -> list[Outline]:
        """Return the summary's versions, newest first, each with its sentences."""
        entries = []
        for version in reversed(self.versions(user_id)[-limit:]):
            number = version.metadata.get("version")
            span = version.metadata.get("turn_range")
            covers = (
                f", turns #{span[0]}–#{span[1]}"
                if isinstance(span, list) and len(span) == 2
                else ""
            )
            state = "current" if version.current else "older version"
            ids = [str(i) for i in version.metadata.get("sentence_ids", [])]
            found = {i.id: i for i in self.context.records.items(ids, user_id=user_id)}
            sentences = tuple(Outline(found[i].text, found[i]) for i in ids if i in found)
            entries.append(Outline(f"v{number} ({state}{covers})", version, sentences))
        return entries

    def forget(self, user_id: str) -> int:
        """Drop the user's vectors and cached state (the records database forgets the rows)."""
        with self._lock:
            self._users.pop(user_id, None)
            self._timelines.pop(user_id, None)
            for item in self.context.records.store_items(self.name, user_id, current_only=False):
                self._vectors.pop(item.id, None)
            return self._index.forget(user_id)

    def retry_pending(self, user_id: str | None = None) -> int:
        """Redo queued model updates over the current summary; return how many succeeded."""
        if self.context.model is None:
            return 0
        with self._lock:
            return retry_work(
                self.context.records,
                self.name,
                user_id,
                self._redo,
                on_failure=self._retry_failed,
            )

    def _redo(self, work: PendingWorkRow) -> bool:
        """Redo one queued update; ``False`` when its turns are gone.

        Raises:
            ModelError: The model failed again.
        """
        ids = [int(i) for i in work.payload.get("turn_ids", [])]
        turns = self.context.records.turns(work.user_id, ids=ids) if ids else []
        if not turns:  # the user was forgotten meanwhile
            return False
        self._update(work.user_id, turns, retry_of=work.id)
        return True

    def _retry_failed(self, work: PendingWorkRow, error: ModelError) -> None:
        logger.warning("summary retry %d failed again: %s", work.id, error)
        self.stats.add_failure(queued=False)

    # -- inspection -------------------------------------------------------------------------

    def current_summary(self, user_id: str) -> MemoryItem | None:
        """Return the user's current summary version, or ``None`` before the first."""
        found = self.context.records.store_items(self.name, user_id, kind="summary")
        return max(found, key=_version, default=None)

    def versions(self, user_id: str) -> list[MemoryItem]:
        """Return every summary version of the user (superseded ones too), oldest first."""
        found = self.context.records.store_items(
            self.name, user_id, kind="summary", current_only=False
        )
        return sorted(found, key=_version)

    # -- building ---------------------------------------------------------------------------

    def _state(self, user_id: str, *, upto: int | None = None) -> _UserState:
        """Return the user's state, on first use rebuilt from the records.

        After a restart the cursor is the highest turn a version covered, and the stored
        turns after it (up to ``upto``, the newest turn being written; later ones arrive
        through ``write``) wait for the next update.
        """
        state = self._users.get(user_id)
        if state is None:
            versions = self.versions(user_id)
            latest = versions[-1] if versions else None
            cursor = max((int(v.metadata.get("last_turn_id", 0)) for v in versions), default=0)
            pending = {
                t.id: t
                for t in self.context.records.turns(user_id)
                if cursor < t.id and (upto is None or t.id <= upto) and not t.quotes_memory
            }
            state = _UserState(
                version=_version(latest) if latest else 0,
                version_id=latest.id if latest else None,
                valid_from=latest.valid_from if latest else None,
                cursor=cursor,
                pending=pending,
            )
            self._users[user_id] = state
        return state

    def _update(
        self, user_id: str, turns: list[Turn], *, retry_of: int | None = None
    ) -> list[Change]:
        """Build and store the next version from the current one and ``turns``."""
        previous = sorted(
            self.context.records.store_items(self.name, user_id, kind="sentence"),
            key=lambda i: (int(i.metadata.get("position", 0)), i.created_at or datetime.min),
        )
        chosen: list[Candidate] | None = None
        builder = "offline"
        if self.context.model is not None:
            try:
                chosen = self._model_build(user_id, previous, turns)
                builder = "model"
            except ModelError as exc:
                if retry_of is not None:
                    raise
                logger.warning("summary model update failed for %s; queued: %s", user_id, exc)
                self.context.records.queue_work(
                    self.name, user_id, "summarize", {"turn_ids": [t.id for t in turns]}, str(exc)
                )
                self.stats.add_failure(queued=True)
        if chosen is None:
            chosen = self._offline_build(user_id, previous, turns)
        return self._commit(user_id, previous, chosen, turns, builder, retry_of)

    def _offline_build(
        self, user_id: str, previous: list[MemoryItem], turns: list[Turn]
    ) -> list[Candidate]:
        old = carried(previous, self._vectors_of(user_id, previous))
        fresh = dialogue_sentences(turns, previous, self.min_informativeness)
        self._embed(fresh)
        return select_offline(
            old,
            fresh,
            max_sentences=self.max_sentences,
            max_words=self.max_words,
            recent_share=self.recent_share,
        )

    def _model_build(
        self, user_id: str, previous: list[MemoryItem], turns: list[Turn]
    ) -> list[Candidate]:
        assert self.context.model is not None
        shown = [SummarySentence(i.text, i.source_turn_ids) for i in previous]
        allowed = {t.id for t in turns}.union(*(i.source_turn_ids for i in previous))
        answer: list[SummarySentence] = structured_call(
            self.context.model,
            summary_messages(
                shown, turns, max_sentences=self.max_sentences, max_words=self.max_words
            ),
            SUMMARY_SCHEMA,
            validate=lambda data: validate_summary(data, allowed),
            stats=self.stats,
        )
        chosen = cap(from_model(answer, previous), self.max_sentences, self.max_words)
        kept = [c for c in chosen if c.item is not None]
        for candidate, vector in zip(
            kept, self._vectors_of(user_id, [c.item for c in kept if c.item]), strict=True
        ):
            candidate.vector = vector
        self._embed([c for c in chosen if c.item is None])
        return chosen

    def _commit(
        self,
        user_id: str,
        previous: list[MemoryItem],
        chosen: list[Candidate],
        turns: list[Turn],
        builder: str,
        retry_of: int | None,
    ) -> list[Change]:
        """Store the new version and its new sentences; retire what it replaced."""
        state = self._state(user_id)
        version = state.version + 1
        # Derived, as the sentences' ids: a commit a crash interrupted after its vectors
        # went out is redone over the same ids (see agentmem.storage.repair).
        last = max(turns, key=lambda t: t.id)
        # With its last turn (never reused: turn ids only grow), so that a forgotten
        # user's version ids are never handed to a later summary of theirs.
        version_id = derived_item_id(self.name, user_id, "version", version, last.id)
        moment = max(t.timestamp for t in turns)
        if state.valid_from is not None and state.valid_from > moment:
            moment = state.valid_from  # versions never go back in dialogue time
        info = Version(
            version, version_id, state.version_id, moment, max(state.cursor, last.id), builder
        )
        carried = []
        for position, candidate in enumerate(chosen):
            if candidate.item is not None:
                meta = {"last_version": version, "summary_id": version_id, "position": position}
                carried.append(
                    ItemUpdate(candidate.item.id, metadata={**candidate.item.metadata, **meta})
                )
        new_items, fresh_vectors = new_sentences(self.name, user_id, chosen, turns, info)
        summary = summary_item(self.name, user_id, chosen, turns, info, retry_of)
        vectors = [c.vector for c in chosen if c.vector is not None]
        summary_vector = np.sum(vectors, axis=0) if vectors else self._index.embed([""])[0]
        summary_vector = summary_vector / max(float(np.linalg.norm(summary_vector)), 1e-9)
        kept = {c.item.id for c in chosen if c.item is not None}
        records = self.context.records
        # One transaction: a version stored without retiring the one before would leave
        # two current summaries, and a resumed run nothing left to summarise.
        with records.transaction():
            records.update_items(carried)
            stored = self._index.add(
                [*new_items, summary],
                np.stack([*fresh_vectors, summary_vector]).astype(np.float32),
                reason=f"summary version {version} ({builder})",
            )
            retired = records.invalidate(
                [i.id for i in previous if i.id not in kept],
                f"dropped from summary version {version}",
                at=moment,
                superseded_by=version_id,
            )
            if state.version_id is not None:
                retired += records.invalidate(
                    [state.version_id],
                    f"superseded by summary version {version}",
                    at=moment,
                    superseded_by=version_id,
                )
            # One vector-metadata update for both (what ItemIndex.invalidate does per call).
            self._index.follow(retired)
        for item, vector in zip(new_items, fresh_vectors, strict=True):
            self._remember_vector(item.id, vector)
        if user_id in self._timelines:
            self._timelines[user_id].append((moment, summary.metadata["sentence_ids"]))
        state.version, state.version_id, state.valid_from = version, version_id, moment
        state.cursor = max(state.cursor, last.id)
        for turn_id in list(state.pending):
            if turn_id <= state.cursor:
                del state.pending[turn_id]
        logger.debug("summary v%d for %s: %d sentences", version, user_id, len(chosen))
        why = f"summary version {version}"
        return [Change("ADD", i, why) for i in stored] + [
            Change("SUPERSEDE", i, why) for i in retired
        ]

    # -- helpers ----------------------------------------------------------------------------

    def _sentences_as_of(self, user_id: str, moment: datetime) -> list[MemoryItem]:
        """Return the sentences of the version in force at dialogue time ``moment``."""
        with self._lock:
            timeline = self._timelines.get(user_id)
            if timeline is None:
                timeline = [
                    (v.valid_from, [str(i) for i in v.metadata.get("sentence_ids", [])])
                    for v in self.versions(user_id)
                ]
                self._timelines[user_id] = timeline
            earlier = [ids for start, ids in timeline if start is not None and start <= moment]
        return self.context.records.items(earlier[-1], user_id=user_id) if earlier else []

    def _vectors_of(self, user_id: str, items: Sequence[MemoryItem]) -> list[np.ndarray]:
        """Return the stored vectors of items (cached; re-embedded only if lost)."""
        missing = [i.id for i in items if i.id not in self._vectors]
        if missing:
            for item_id, vector in self.context.vectors.get(self.name, user_id, missing).items():
                self._remember_vector(item_id, vector)
        lost = [i for i in items if i.id not in self._vectors]
        if lost:
            for item, vector in zip(lost, self._index.embed([i.text for i in lost]), strict=True):
                self._remember_vector(item.id, vector)
        return [self._vectors[i.id] for i in items]

    def _embed(self, candidates: Sequence[Candidate]) -> None:
        """Embed the candidates' texts in one batch."""
        if candidates:
            vectors = self._index.embed([c.embed_as or c.text for c in candidates])
            for candidate, vector in zip(candidates, vectors, strict=True):
                candidate.vector = vector

    def _remember_vector(self, item_id: str, vector: np.ndarray) -> None:
        self._vectors[item_id] = np.asarray(vector, dtype=np.float32)
        self._vectors.move_to_end(item_id)
        while len(self._vectors) > VECTOR_CACHE_SIZE:
            self._vectors.popitem(last=False)


def _version(item: MemoryItem) -> int:
    return int(item.metadata.get("version", 0))
