"""Every dialogue turn, recalled by meaning and by its words.

This is what most memory layers start with. Each item is one turn, its provenance that
turn. What makes it recall better than embedding ``speaker: text`` as it stands (the
replay's ``similarity`` baseline does that):

* **Who said it is matched, not embedded.** In a short turn the speaker's name weighs
  more than what was said ("Elif: Probably." is nearer "Which company does Elif work
  for?" than the turn naming her employer). A turn's vector is that of its text alone, plus
  a little (:data:`CONTEXT_WEIGHT`) of the turn before it: an answer such as "Petra.
  She's brilliant." means something only after "Who's your new manager?". At recall, the
  speakers the query names are taken out of the query before it is embedded, and their
  turns get :data:`SPEAKER_BONUS` instead; a query in the first person ("where do I
  live") names the speakers on the user's side.
* **Candidates are re-ranked**: the index returns more neighbours than asked
  (:data:`OVERSAMPLE`), which are scored as above.
* **Words count too**: the turns whose text best matches the query's words by BM25 (the
  records database's full-text index) are fused with the dense ranking by reciprocal
  rank, the lexical ranking at :data:`LEXICAL_WEIGHT`. A name, a date or a rare word that
  the embedding blurs still finds its turn. (A server database has no such index; recall
  is then dense only.)

An item's text is the turn as said, with its relative dates resolved
(:mod:`agentmem.ledger.timeref`): "Caroline: I went to the support group yesterday [7 May
2023]", so that a question about when finds its answer in the text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np

from agentmem.ledger.timeref import resolve_relative_dates
from agentmem.models.embeddings import normalize_rows
from agentmem.protocols import StoreContext
from agentmem.questions import FORMS
from agentmem.ranking import reciprocal_rank_scores
from agentmem.storage.items import ItemIndex, visible
from agentmem.storage.records import derived_item_id
from agentmem.text import asks_only, content_words, echoes, says_nothing
from agentmem.types import NOT_EVIDENCE, Change, MemoryItem, Query, Recalled, Turn

#: Added to the similarity of a turn said by a speaker the query names.
SPEAKER_BONUS = 0.1
#: How much of the previous turn's vector a turn's vector carries.
CONTEXT_WEIGHT = 0.3
#: The lexical ranking's weight beside the dense one in their rank fusion.
LEXICAL_WEIGHT = 0.25
#: How many of the dense ranking's first turns the lexical ranking never displaces.
KEPT_ON_TOP = 3
#: Neighbours fetched per item asked for, before re-ranking.
OVERSAMPLE = 2
#: The question forms for which a named stretch of time bounds the search.
WINDOWED_FORMS = frozenset({"recap"})
_FIRST_PERSON = re.compile(r"\b(?:i|me|my|mine|myself|i'm|i've|i'd|i'll)\b", re.IGNORECASE)


def _not_evidence(turn: Turn, before: str) -> dict[str, str]:
    """Say why a turn is no evidence of anything: a question, nothing said, an echo.

    A question asks, it asserts nothing ("Where does my sister live?" recalled for "where
    does my sister live" would rank first and answer nothing); "Got it." says nothing;
    an assistant restating what it was just told ("So you live in Lisbon!") is no second
    witness. They stay in the dialogue's history; recall leaves them out.
    """
    if asks_only(turn.text):
        return {NOT_EVIDENCE: "a question"}
    if says_nothing(turn.text):
        return {NOT_EVIDENCE: "nothing said"}
    if turn.role == "assistant" and echoes(turn.text, before):
        return {NOT_EVIDENCE: "an echo of the turn before"}
    return {}


class TurnStore:
    """Dialogue turns in a vector index.

    Args:
        context: The core services.
        name: The structure's name in records and results.
    """

    #: The question forms it answers first (``Leading``; see ``agentmem.questions``).
    #: It keeps the turns as said (``Verbatim``): ``add(..., infer=False)`` writes here.
    verbatim = True
    leads = frozenset({"point"})
    #: The forms it answers at all: every one.
    serves = frozenset(FORMS)

    def __init__(self, context: StoreContext, *, name: str = "turns") -> None:
        self.name = name
        self._context = context
        self._index = ItemIndex(context, name)
        self._speakers: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def write(self, turns: Sequence[Turn]) -> list[Change]:
        """Store each turn as one item (see the module docstring for its vector).

        A turn already stored (a resumed write repeating it) is not stored again.
        """
        if not turns:
            return []
        previous = self._previous(turns)
        items = [
            MemoryItem(
                id=derived_item_id(self.name, turn.user_id, turn.id),
                store=self.name,
                kind="turn",
                user_id=turn.user_id,
                agent_id=turn.agent_id,
                session_id=turn.session_id,
                text=f"{turn.speaker}: {resolve_relative_dates(turn.text, turn.timestamp)}",
                source_turn_ids=(turn.id,),
                valid_from=turn.timestamp,
                metadata={
                    "speaker": turn.speaker,
                    "role": turn.role,
                    "timestamp": turn.timestamp.isoformat(),
                    **_not_evidence(turn, before),
                },
            )
            for turn, before in zip(turns, previous, strict=True)
        ]
        with self._lock:
            for turn in turns:
                known = self._speakers.get(turn.user_id)
                if known is not None:
                    known.setdefault(turn.speaker, turn.role)
        stored = self._index.add(items, self._vectors(turns, previous), reason="turn stored")
        return [Change("ADD", item, "turn stored") for item in stored]

    def _previous(self, turns: Sequence[Turn]) -> list[str]:
        """Return the text of the turn before each turn in its session ("" for none)."""
        previous: list[str] = []
        last: Turn | None = None
        for turn in turns:
            if last is None or last.session_id != turn.session_id:
                last = self._context.records.previous_turn(turn)
            previous.append(last.text if last is not None else "")
            last = turn
        return previous

    def _vectors(self, turns: Sequence[Turn], previous: Sequence[str]) -> np.ndarray:
        """Each turn's vector: its text's, plus :data:`CONTEXT_WEIGHT` of the turn before."""
        texts = [turn.text for turn in turns]
        leads = [text for text in dict.fromkeys(previous) if text and text not in texts]
        vectors = normalize_rows(self._index.embed(texts + leads))
        by_text = dict(zip(texts + leads, vectors, strict=True))
        context = np.stack(
            [by_text[text] if text else np.zeros_like(vectors[0]) for text in previous]
        )
        return normalize_rows(vectors[: len(turns)] + CONTEXT_WEIGHT * context)

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Return the ``k`` turns that best match the query (see the module docstring)."""
        if query.embedding is None or k <= 0:
            return []
        named = self._named_speakers(query)
        if query.window is not None and query.form in WINDOWED_FORMS:
            return self._in_window(query, k, named)
        stripped = query.text
        for speaker in named:
            stripped = re.sub(rf"\b{re.escape(speaker)}(?:'s)?\b", " ", stripped, flags=re.I)
        # Only a query that names a speaker costs a second embedding ("where do I live"
        # names none: it only favours the user's side).
        embedding = (
            normalize_rows(self._index.embed([stripped]))[0]
            if stripped != query.text
            else query.embedding
        )
        found = self._index.search(replace(query, embedding=embedding), k * OVERSAMPLE)
        dense = sorted(
            (
                Recalled(
                    r.item,
                    r.score + (SPEAKER_BONUS if r.item.metadata.get("speaker") in named else 0),
                )
                for r in found
            ),
            key=lambda r: -r.score,
        )
        known = {r.item.id: r.item for r in found}
        lexical = self.lexical(query, content_words(stripped), k * OVERSAMPLE, known)
        fused = _fuse(dense, lexical)
        return [r for r in fused if not r.item.metadata.get(NOT_EVIDENCE)][:k]

    def _in_window(self, query: Query, k: int, named: set[str]) -> list[Recalled]:
        """Return the ``k`` turns said within ``query.window`` that best match the query.

        A recap names when ("what did we talk about on 8 May"): its answer is what was
        said then, which a search by meaning over the whole dialogue seldom finds (the
        question's words are about talking, not about what was said).
        """
        assert query.window is not None and query.embedding is not None
        start, end = query.window
        user_id = query.scope.user_id
        turns = [t for t in self._context.records.turns(user_id) if start <= t.timestamp < end]
        ids = [derived_item_id(self.name, user_id, t.id) for t in turns]
        items = [
            i
            for i in self._context.records.items(ids, user_id=user_id)
            if visible(i, query) and not i.metadata.get(NOT_EVIDENCE)
        ]
        if not items:
            return []
        vectors = self._context.vectors.get(self.name, user_id, [i.id for i in items])
        target = np.asarray(query.embedding, dtype=np.float32)
        scored = [
            Recalled(
                item,
                float(np.asarray(vectors[item.id]) @ target)
                + (SPEAKER_BONUS if item.metadata.get("speaker") in named else 0.0),
            )
            for item in items
            if item.id in vectors
        ]
        return sorted(scored, key=lambda r: -r.score)[:k]

    def lexical(
        self,
        query: Query,
        words: list[str],
        limit: int,
        known: dict[str, MemoryItem] | None = None,
    ) -> list[MemoryItem]:
        """The visible turn items whose text best matches ``words`` (BM25), best first.

        Items in ``known`` (already found and judged visible) are not read again.
        """
        user_id = query.scope.user_id
        turn_ids = self._context.records.search_turns(user_id, words, limit)
        if not turn_ids:
            return []
        known = known or {}
        ids = [derived_item_id(self.name, user_id, turn_id) for turn_id in turn_ids]
        missing = [i for i in ids if i not in known]
        by_id = dict(known)
        if missing:
            read = self._context.records.items(missing, user_id=user_id)
            by_id.update((i.id, i) for i in read if visible(i, query))
        return [by_id[i] for i in ids if i in by_id]

    def _named_speakers(self, query: Query) -> set[str]:
        """Return the speakers of the user's turns that the query names."""
        user_id = query.scope.user_id
        with self._lock:
            speakers = self._speakers.get(user_id)
        if speakers is None:
            speakers = self._context.records.speakers(user_id)
            with self._lock:
                speakers = self._speakers.setdefault(user_id, speakers)
        first_person = bool(_FIRST_PERSON.search(query.text))
        return {
            speaker
            for speaker, role in speakers.items()
            if speaker
            and (
                (first_person and role == "user")
                or re.search(rf"\b{re.escape(speaker)}\b", query.text, re.IGNORECASE)
            )
        }

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
    ) -> None:
        """Mark turn items invalid (e.g. a turn the user retracted)."""
        self._index.invalidate(item_ids, reason, at=at, superseded_by=superseded_by)

    def update(
        self, item_id: str, text: str, *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Change a turn item's text and re-embed it as :meth:`write` would have.

        The turn itself stays as it was said (it is the provenance); only the memory of
        it changes.
        """
        item = self._index.editable(item_id)
        speaker = str(item.metadata.get("speaker", ""))
        body = text.removeprefix(f"{speaker}: ") if speaker else text
        turns = self._context.records.turns(item.user_id, ids=list(item.source_turn_ids))
        previous = self._context.records.previous_turn(turns[0]) if turns else None
        texts = [body] + ([previous.text] if previous is not None else [])
        vectors = normalize_rows(self._index.embed(texts))
        vector = vectors[0] + (CONTEXT_WEIGHT * vectors[1] if len(vectors) > 1 else 0)
        updated = self._index.update(
            item, text, reason=reason, at=at, embedding=normalize_rows(vector[None, :])[0]
        )
        return [Change("UPDATE", updated, reason)]

    def delete(
        self, item_ids: Sequence[str], *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Invalidate turn items as deleted; the turns stay in the records as provenance."""
        return [
            Change("DELETE", item, reason) for item in self._index.delete(item_ids, reason, at=at)
        ]

    def forget(self, user_id: str) -> int:
        """Drop the user's turn vectors (the records database forgets the rows)."""
        with self._lock:
            self._speakers.pop(user_id, None)
        return self._index.forget(user_id)


def _fuse(dense: list[Recalled], lexical: list[MemoryItem]) -> list[Recalled]:
    """Reciprocal rank fusion of the dense and the lexical ranking (lexical weighs less).

    The dense ranking's first :data:`KEPT_ON_TOP` stay first, in their order: a word match
    adds turns further down, but never displaces the turns that match best in meaning.
    """
    scores = reciprocal_rank_scores(
        [[r.item.id for r in dense], [item.id for item in lexical]], [1.0, LEXICAL_WEIGHT]
    )
    items = {r.item.id: r.item for r in dense}
    for item in lexical:
        items.setdefault(item.id, item)
    top = [r.item.id for r in dense[:KEPT_ON_TOP]]
    rest = sorted((key for key in scores if key not in top), key=lambda key: -scores[key])
    # Scores stay similarities (what fusion across structures breaks ties with); a turn
    # found by its words alone scores as the least similar one found by meaning.
    similarity = {r.item.id: r.score for r in dense}
    floor = min(similarity.values(), default=0.0)
    return [Recalled(items[key], similarity.get(key, floor)) for key in top + rest]
