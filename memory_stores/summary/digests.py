"""Digests of sessions and months: what a recap question gets first.

The running summary (the package docstring) answers "what do you know about me" in a few
hundred words; a recap ("What did we talk about on 8 May?", "What happened in Sam's life
between May and June?") needs what was said *then*, and more of it than a whole-dialogue
summary keeps. So the store also keeps, per speaker:

* a **session digest** (kind ``"session"``) when a session ends: the speaker's most
  informative sentences of the session, whole, in dialogue order, under
  ``session_words``, introduced by who said them and when ("Melanie, 8 May 2023: I'm
  swamped with the kids and work. ... | I painted that lake sunrise last year!");
* a **period digest** (kind ``"period"``) of the calendar month, recursively built from
  that month's session digests (the most informative of their sentences, each with its
  day, under ``period_words``), rebuilt when a session of the month ends: the new version
  supersedes the old one, which stays in the history.

Offline the digests are extractive, as the running summary is: sentences are chosen by
:func:`agentmem.text.informativeness`, never rewritten. With a model, the digest is what
the model wrote: the sentences of the running summary's new version (written by the model
when the session ended) that cite the session's turns, each in the digest of the speaker
of the first turn it cites; no call of its own. When the model's update failed, the
extractive digest stands in. An item's provenance is the turns
it quotes. Its vector is the mean of those turns' vectors (already embedded for every
structure), so a digest costs no embedding of its own.

Retrieval: a question that names a stretch of time (``Query.window``, see
:mod:`agentmem.questions`) gets the digests of the sessions in it, oldest first (the month
digests first when more than :data:`MAX_SESSIONS` sessions fall in it), those of the
speakers it names when it names some; a recap that names no time gets the latest
sessions', newest first. Other questions get nothing here: the running summary's
sentences answer them. A month digest repeats lines of its sessions' digests, so it is
returned only for a window of more sessions than a context holds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from agentmem.protocols import StoreContext
from agentmem.storage.items import ItemIndex, visible
from agentmem.storage.records import derived_item_id
from agentmem.text import informativeness, split_sentences, truncate_words
from agentmem.types import Change, MemoryItem, Query, Recalled, Turn

logger = logging.getLogger(__name__)

#: A window holding more sessions than this gets the month digests before the sessions'.
MAX_SESSIONS = 8
#: Longest sentence (words) a digest quotes whole; a longer one is cut.
MAX_SENTENCE_WORDS = 40
#: The most sentences of one turn a digest quotes.
PER_TURN = 2
#: The item kinds of the digests.
SESSION, PERIOD = "session", "period"


@dataclass(frozen=True)
class Line:
    """A sentence of a digest: the turn it is from (the first it cites), when, the
    sentence, its weight when a cap binds, and every turn it rests on."""

    turn_id: int
    said_at: datetime
    text: str
    weight: float
    turn_ids: tuple[int, ...] = ()

    @property
    def sources(self) -> tuple[int, ...]:
        """The turns it rests on."""
        return self.turn_ids or (self.turn_id,)


class Digests:
    """Builds and retrieves the session and month digests of a summary store.

    Args:
        context: The core services.
        store: The summary store's name (its items carry it).
        index: The summary store's items and vectors.
        session_words: The most words of a speaker's session digest.
        period_words: The most words of a speaker's month digest.
        min_informativeness: Sentences below this are never quoted.
    """

    def __init__(
        self,
        context: StoreContext,
        store: str,
        index: ItemIndex,
        *,
        session_words: int = 160,
        period_words: int = 200,
        min_informativeness: float = 2.0,
    ) -> None:
        self.context = context
        self.store = store
        self.index = index
        self.session_words = session_words
        self.period_words = period_words
        self.min_informativeness = min_informativeness

    # -- building ---------------------------------------------------------------------------

    def end_session(self, user_id: str, session_id: str) -> list[Change]:
        """Digest the session per speaker, then rebuild the month digests it changes."""
        turns = [
            t
            for t in self.context.records.turns(user_id, session_id=session_id)
            if not t.quotes_memory
        ]
        if not turns:
            return []
        started = turns[0].timestamp
        changes: list[Change] = []
        written = self._model_lines(turns)
        for speaker in dict.fromkeys(t.speaker for t in turns):
            if written is not None:
                lines = written.get(speaker, [])
            else:
                lines = self._lines([t for t in turns if t.speaker == speaker])
            chosen = _choose(lines, self.session_words)
            if not chosen:
                continue
            last = max(t.id for t in turns)
            item_id = derived_item_id(self.store, user_id, SESSION, session_id, speaker, last)
            text = f"{speaker}, {_day(started)}: " + " | ".join(line.text for line in chosen)
            extra = {"session_start": started.isoformat(), "month": _month_key(started)}
            builder = "offline" if written is None else "model"
            item = self._item(
                item_id, SESSION, user_id, speaker, text, chosen, turns[-1], extra, builder
            )
            changes += self._replace(item, chosen)
            # Also when the session digest was stored already: a process killed between
            # storing it and rebuilding the month left the month without it, and the
            # resumed call must finish that (stored already, the rebuild is a no-op).
            changes += self._rebuild_month(user_id, speaker, started, turns[-1])
        return changes

    def _model_lines(self, turns: Sequence[Turn]) -> dict[str, list[Line]] | None:
        """Return, by speaker, the sentences the model wrote about the session in the
        running summary's current version (each credited to the speaker of the first turn
        it cites); ``None`` when that version was not written by a model."""
        records = self.context.records
        versions = records.store_items(self.store, turns[0].user_id, kind="summary")
        if not versions or any(v.metadata.get("builder") != "model" for v in versions):
            return None
        shown = {t.id: t for t in turns}
        ids = [str(i) for v in versions for i in v.metadata.get("sentence_ids", [])]
        found: dict[str, list[Line]] = {}
        for position, item in enumerate(records.items(ids, user_id=turns[0].user_id)):
            cited = [t for t in item.source_turn_ids if t in shown]
            if not cited or not item.current:
                continue
            first = shown[min(cited)]
            line = Line(first.id, first.timestamp, item.text, float(-position), tuple(cited))
            found.setdefault(first.speaker, []).append(line)
        return found

    def _lines(self, turns: Sequence[Turn]) -> list[Line]:
        """Return the sentences worth quoting: each turn's :data:`PER_TURN` most
        informative ones (a fact often takes two sentences: "5 years already! I put
        this dress on ...")."""
        found = []
        for turn in turns:
            sentences = split_sentences(turn.text)
            best = sorted(sentences, key=informativeness, reverse=True)[:PER_TURN]
            for sentence in sorted(best, key=sentences.index):
                weight = informativeness(sentence)
                if weight >= self.min_informativeness:
                    text = truncate_words(sentence, MAX_SENTENCE_WORDS)
                    found.append(Line(turn.id, turn.timestamp, text, weight))
        return found

    def _rebuild_month(
        self, user_id: str, speaker: str, moment: datetime, last: Turn
    ) -> list[Change]:
        """Rebuild the speaker's digest of ``moment``'s month from its session digests."""
        month = _month_key(moment)
        sessions = [
            d
            for d in self.context.records.store_items(self.store, user_id, kind=SESSION)
            if d.metadata.get("speaker") == speaker and d.metadata.get("month") == month
        ]
        lines = [
            Line(
                int(line[0]),
                datetime.fromisoformat(str(line[1])),
                str(line[2]),
                float(line[3]),
                tuple(int(t) for t in (line[4] if len(line) > 4 else [line[0]])),
            )
            for d in sessions
            for line in d.metadata.get("lines", [])
        ]
        chosen = _choose(lines, self.period_words)
        if not chosen:
            return []
        item_id = derived_item_id(self.store, user_id, PERIOD, speaker, month, last.id)
        body = "; ".join(f"({line.said_at.day} {line.said_at:%B}) {line.text}" for line in chosen)
        text = f"{speaker} in {moment:%B %Y}: {body}"
        extra = {"month": month, "sessions": len(sessions)}
        item = self._item(item_id, PERIOD, user_id, speaker, text, chosen, last, extra, "offline")
        return self._replace(item, chosen)

    def _item(
        self,
        item_id: str,
        kind: str,
        user_id: str,
        speaker: str,
        text: str,
        chosen: Sequence[Line],
        last: Turn,
        extra: Mapping[str, object],
        builder: str,
    ) -> MemoryItem:
        return MemoryItem(
            id=item_id,
            store=self.store,
            kind=kind,
            user_id=user_id,
            agent_id=last.agent_id,
            session_id=last.session_id if kind == SESSION else None,
            text=text,
            source_turn_ids=tuple(sorted({t for line in chosen for t in line.sources})),
            valid_from=last.timestamp,
            metadata={
                "speaker": speaker,
                "builder": builder,
                "lines": [
                    [
                        line.turn_id,
                        line.said_at.isoformat(),
                        line.text,
                        line.weight,
                        list(line.sources),
                    ]
                    for line in chosen
                ],
                **extra,
            },
        )

    def _replace(self, item: MemoryItem, chosen: Sequence[Line]) -> list[Change]:
        """Store ``item``; supersede the current digest it replaces (the same speaker's of
        the same session, or of the same month). Nothing when it is stored already."""
        meta = item.metadata
        older = [
            d
            for d in self.context.records.store_items(self.store, item.user_id, kind=item.kind)
            if d.id != item.id
            and d.metadata.get("speaker") == meta["speaker"]
            and (
                d.session_id == item.session_id
                if item.kind == SESSION
                else d.metadata.get("month") == meta.get("month")
            )
        ]
        ids = [line.turn_id for line in chosen]
        turns = {t.id: t for t in self.context.records.turns(item.user_id, ids=ids)}
        texts = [turns[i].text for i in ids if i in turns] or [item.text]
        vector = np.mean(self.index.embed(texts), axis=0)
        vector = vector / max(float(np.linalg.norm(vector)), 1e-9)
        records = self.context.records
        why = f"{item.kind} digest of {meta['speaker']}"
        with records.transaction():
            stored = self.index.add([item], vector[None, :].astype(np.float32), reason=why)
            if not stored:
                return []
            retired = records.invalidate(
                [d.id for d in older],
                f"replaced by a newer {why}",
                at=item.valid_from,
                superseded_by=item.id,
            )
            self.index.follow(retired)
        return [Change("ADD", i, why) for i in stored] + [
            Change("SUPERSEDE", i, f"replaced by a newer {why}") for i in retired
        ]

    # -- retrieval --------------------------------------------------------------------------

    def retrieve(self, query: Query, k: int) -> list[Recalled] | None:
        """Return the digests a recap or a dated question gets, best first.

        ``None`` for a question that names no time and is no recap: the running summary
        answers those.
        """
        if k <= 0 or (query.window is None and query.form != "recap"):
            return None
        user_id = query.scope.user_id
        records = self.context.records
        current_only = query.as_of is None and not query.include_history
        found = [
            d
            for kind in (SESSION, PERIOD)
            for d in records.store_items(self.store, user_id, kind=kind, current_only=current_only)
            if visible(d, query)
        ]
        named = _named(query.text, {str(d.metadata.get("speaker", "")) for d in found})
        if named:
            found = [d for d in found if d.metadata.get("speaker") in named]
        sessions = sorted((d for d in found if d.kind == SESSION), key=_start)
        periods = sorted((d for d in found if d.kind == PERIOD), key=_month_of)
        if query.window is not None:
            start, end = query.window
            sessions = [d for d in sessions if start <= _start(d) < end]
            periods = [d for d in periods if _overlaps(_month_of(d), start, end)]
        else:
            days = sorted({_start(d).date() for d in sessions})[-2:]  # the latest sessions
            sessions = [d for d in sessions if _start(d).date() in days][::-1]  # newest first
            periods = []
        # A month digest repeats its sessions' lines: worth its tokens only in place of
        # more sessions than a context holds.
        several = len({d.session_id for d in sessions}) > MAX_SESSIONS
        ordered = periods + sessions if several else sessions
        return [Recalled(d, 1.0 - rank / (2 * len(ordered))) for rank, d in enumerate(ordered)][:k]


def _choose(lines: Sequence[Line], words: int) -> list[Line]:
    """Pick the most informative lines under ``words``; return them in dialogue order."""
    chosen: list[Line] = []
    used = 0
    for line in sorted(lines, key=lambda line: -line.weight):
        size = len(line.text.split())
        if used + size <= words:
            chosen.append(line)
            used += size
    return sorted(chosen, key=lambda line: (line.said_at, line.turn_id))


def _named(text: str, speakers: set[str]) -> set[str]:
    """Return the speakers ``text`` names."""
    return {s for s in speakers if s and re.search(rf"\b{re.escape(s)}\b", text, re.IGNORECASE)}


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


def _month_key(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def _start(item: MemoryItem) -> datetime:
    stamp = item.metadata.get("session_start")
    return datetime.fromisoformat(str(stamp)) if stamp else item.valid_from or datetime.min


def _month_of(item: MemoryItem) -> datetime:
    year, month = str(item.metadata.get("month", "0001-01")).split("-")
    return datetime(int(year), int(month), 1)


def _overlaps(month: datetime, start: datetime, end: datetime) -> bool:
    following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1)
    return month < end and following > start


__all__ = ["MAX_SESSIONS", "PERIOD", "SESSION", "Digests"]
