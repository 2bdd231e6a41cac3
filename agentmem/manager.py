"""The memory manager: the one door between the agent loop and the memory structures.

It knows the structures only through the :class:`~agentmem.protocols.MemoryStore`
protocol. On write it resolves the turns' facts first (the fact ledger: keep / replace /
append / delete), then folds the turns into every structure, then invalidates, in every
structure, what still asserts a superseded value — so the next recall already sees the
change. On recall it builds the query from the turn and its context, fans out, drops
anything stale, fuses the rankings, de-duplicates, and fits the result into a token
budget, reporting what it used and what it cost.

How the rankings are fused (``fusion``):

* ``"lead"`` (the default): the *lead* structure is fitted into the budget first. Which
  one leads depends on the question's form (:mod:`agentmem.questions`, read from the
  question's own words): the first configured structure built for it (``Leading``: the
  summaries for a recap, the tree for a topic), else the first configured one (``turns``
  in ``all``); for a question whose answer is a fact the fact ledger leads beside it. The
  other structures' items, fused among themselves, take the room that leaves; one whose
  source turns are all in the context already (a tree leaf or a graph passage repeating a
  kept turn, a turn a digest quotes) is left out. So a weaker structure never displaces a
  lead item that fits, and adds what it finds when the lead leaves room; when the lead
  leaves none, the others are not even searched. A recap whose turns all fit the budget
  (one day's talk) is answered by the turns themselves: an aggregate of them adds
  nothing and gives way. A recap that names its time keeps only what was said then.
  Measured on LoCoMo, equal rank fusion let structures built offline push out the turns
  that held the answer (docs/concepts.md, "Fusion").
* ``"rank"``: every structure an equal say, by reciprocal rank fusion (Cormack et al.
  2009).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from agentmem.editing import delete_item, erase_plan, update_item
from agentmem.errors import AgentMemError, InputError, ReadOnlyError
from agentmem.fusion import (
    ITEM_OVERHEAD,
    RRF_K,
    current_first,
    fit_rankings,
    fuse,
    newest_first,
)
from agentmem.ledger.facts import FACT_STORE, Decision, FactLedger
from agentmem.ledger.propagation import StaleGuard, StaleValue, settled_in_passing
from agentmem.models.tokens import Fitted, TokenCounter
from agentmem.protocols import (
    ChatModel,
    Consolidating,
    Embedder,
    ErasableVectors,
    Leading,
    MemoryStore,
    Resumable,
    Verbatim,
)
from agentmem.questions import Reading, read_question
from agentmem.rewrite import model_rewrite, rewrite_query
from agentmem.storage.records import Records
from agentmem.text import asks_only, says_nothing
from agentmem.types import (
    FUSIONS,
    NOT_EVIDENCE,
    Change,
    Fusion,
    ItemEvent,
    MemoryItem,
    Query,
    Recalled,
    RecallResult,
    Scope,
    Turn,
    WriteReport,
    utcnow,
)

logger = logging.getLogger(__name__)

#: The question forms whose answer is a fact: for them the fact ledger leads the fusion.
LEDGER_FORMS = frozenset({"point", "multi-hop"})
#: The least room (tokens) the lead must leave for the other structures to be searched:
#: the overhead of an item and a short sentence.
MIN_ROOM = ITEM_OVERHEAD + 32


class MemoryManager:
    """Coordinates the fact ledger and the configured memory structures.

    Args:
        records: The records database.
        embedder: Embeds recall queries (once per recall, shared by all structures).
        stores: The memory structures, in order of preference for ties.
        facts: The fact ledger; ``None`` turns off fact tracking and invalidation.
        counter: Counts tokens for the budget.
        rewriter: A capable chat model to rewrite recall queries; rules when ``None``.
        iterative: Recall a second time with what the first recall found.
        parallel: Search the structures in parallel threads. Worth it when they wait on
            I/O (a Chroma server, a remote records database); on local data their search
            is CPU-bound, and on a small machine threads only contend: at 100k items on
            two cores, recall took 47.8 / 64.1 ms p50/p95 in parallel against 39.3 / 43.8
            one structure after another (benchmarks/bench_scale.py recall).
        fusion: How the structures' rankings are merged: ``"lead"`` or ``"rank"`` (see
            the module docstring).
        vectors: The vector index, for :meth:`forget` and :meth:`erase` to leave no
            copy in its files (the structures drop their own vectors either way).
    """

    def __init__(
        self,
        records: Records,
        embedder: Embedder,
        stores: Sequence[MemoryStore],
        *,
        facts: FactLedger | None = None,
        counter: TokenCounter | None = None,
        rewriter: ChatModel | None = None,
        iterative: bool = False,
        parallel: bool = False,
        fusion: Fusion = "lead",
        vectors: ErasableVectors | None = None,
    ) -> None:
        if not stores and facts is None:
            raise InputError("a memory manager needs at least one memory structure")
        if fusion not in FUSIONS:
            raise InputError(f"fusion must be 'lead' or 'rank', not {fusion!r}")
        names = [s.name for s in stores] + ([facts.name] if facts else [])
        if len(set(names)) != len(names):
            raise InputError(f"memory structure names must be unique, got {names}")
        self.records = records
        self.embedder = embedder
        self.stores = list(stores)
        self.facts = facts
        self.counter = counter or TokenCounter()
        self.rewriter = rewriter
        self.iterative = iterative
        self.parallel = parallel
        self.fusion: Fusion = fusion
        self.guard = StaleGuard(records)
        self.vectors = vectors
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        #: Names of the structures recall fans out to; ``None`` for all. Writes always
        #: reach every structure, so narrowing recall loses nothing.
        self.recall_from: frozenset[str] | None = None

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=max(2, len(self.structures)), thread_name_prefix="agentmem-recall"
                )
            return self._executor

    def close(self) -> None:
        """Stop the recall threads (the backends are closed by their owner)."""
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    @property
    def structures(self) -> list[MemoryStore]:
        """Every structure recall fans out to: the fact ledger and the configured ones."""
        return ([self.facts] if self.facts is not None else []) + self.stores

    def _by_name(self) -> dict[str, MemoryStore]:
        return {s.name: s for s in self.structures}

    # -- writing ----------------------------------------------------------------------------

    def write(self, turns: Sequence[Turn], *, mark: bool = True, infer: bool = True) -> WriteReport:
        """Fold stored turns into memory: facts first, then structures, then invalidation.

        A structure that fails is logged and reported; the turns stay pending, and
        :meth:`resume` retries them. The turns themselves are already on disk. With
        ``mark=False`` the caller marks them memorized itself, once its own follow-up
        is done (so a crash before then leaves them pending). With ``infer=False`` only
        the :class:`~agentmem.protocols.Verbatim` structures take them: no fact is
        resolved and nothing is superseded by them.
        """
        started = time.perf_counter()
        given = turns
        # A turn that only quotes memory (a recall-only answer) is no evidence: folding it
        # in would make memory confirm itself, and keep an old value alive after it changed.
        turns = [t for t in turns if not t.quotes_memory]
        changes: list[Change] = []
        failures: dict[str, str] = {}
        decisions: list[Decision] = []
        if self.facts is not None and turns and infer:
            try:
                decisions = self.facts.resolve(turns)
            except AgentMemError as exc:
                logger.warning("fact resolution failed: %s", exc)
                failures[self.facts.name] = str(exc)
            changes += [c for d in decisions for c in d.changes]
        for store in self.stores:
            if not infer and not (isinstance(store, Verbatim) and store.verbatim):
                continue
            try:
                changes += store.write(turns)
            except AgentMemError as exc:
                logger.warning("memory structure %s failed to write: %s", store.name, exc)
                failures[store.name] = str(exc)
        # What changed: superseded facts, and endings (an ended fact may have ended no
        # fact, yet items still mention its value).
        superseded = [i.id for d in decisions for i in d.superseded] + [
            d.item.id for d in decisions if d.operation == "DELETE" and d.item is not None
        ]
        if decisions:
            for user_id in dict.fromkeys(t.user_id for t in turns):
                self.guard.reset(user_id)  # new facts spare the turns that state them
        if superseded:
            for user_id in dict.fromkeys(t.user_id for t in turns):
                self.guard.reset(user_id)
                changes += self.guard.sweep(
                    user_id,
                    self._by_name(),
                    spare_turn_ids=[t.id for t in turns],
                    fact_ids=superseded,
                )
        if not failures and mark:
            self.records.mark_memorized(t.id for t in given)
        return WriteReport(
            tuple(t.id for t in given), tuple(changes), failures, time.perf_counter() - started
        )

    def resume(self, user_id: str | None = None) -> WriteReport | None:
        """Fold in turns that were accepted but never memorized, and retry failed builds."""
        # The fact ledger first: the graph reuses the facts its retry extracts.
        for store in self.structures:
            if isinstance(store, Resumable):
                try:
                    store.retry_pending(user_id)
                except AgentMemError as exc:
                    logger.warning("retrying %s's queued builds failed: %s", store.name, exc)
        pending = self.records.pending_turns(user_id)
        if not pending:
            return None
        logger.info("resuming memory writes for %d pending turns", len(pending))
        report = self.write(pending, mark=False)
        if self.facts is not None:
            self._sweep_after_resume(pending)
        # Only now: a crash during that sweep leaves the turns pending, to sweep again.
        if report.ok:
            self.records.mark_memorized(t.id for t in pending)
        return report

    def _sweep_after_resume(self, pending: Sequence[Turn]) -> None:
        """Do the sweep an interrupted write may not have reached.

        A write killed after the fact ledger stored a new value but before its sweep
        leaves other structures asserting the old one; re-resolving finds the new value
        already there (NOOP) and does not sweep. So the values the pending turns ended
        are swept here, sparing those turns as the write would have.
        """
        turn_ids = {t.id for t in pending}
        moments = {t.timestamp for t in pending}
        for user_id in dict.fromkeys(t.user_id for t in pending):
            facts = self.records.store_items(FACT_STORE, user_id, kind="fact", current_only=False)
            new = {f.id for f in facts if f.source_turn_ids and f.source_turn_ids[0] in turn_ids}
            ended = [
                f.id
                for f in facts
                if not f.current
                and not f.metadata.get("rejected")
                and (
                    f.superseded_by in new or (f.superseded_by is None and f.invalid_at in moments)
                )
            ]
            if ended:
                self.guard.reset(user_id)
                self.guard.sweep(
                    user_id, self._by_name(), spare_turn_ids=list(turn_ids), fact_ids=ended
                )

    def end_session(self, user_id: str, session_id: str) -> list[Change]:
        """Let structures that consolidate per session (summaries, memos) do so."""
        changed: list[Change] = []
        for store in self.stores:
            if isinstance(store, Consolidating):
                try:
                    changed += store.end_session(user_id, session_id)
                except AgentMemError as exc:
                    logger.warning("%s failed to consolidate: %s", store.name, exc)
        # Sweep what consolidation built, and what an earlier, interrupted call built from
        # this session: a process killed after a structure stored its consolidation but
        # before this sweep would otherwise keep stale values current, since the call that
        # resumes the session finds nothing left to consolidate.
        consolidating = {s.name for s in self.stores if isinstance(s, Consolidating)}
        among = {c.item.id: c.item for c in changed}
        if consolidating:
            turns = [t.id for t in self.records.turns(user_id, session_id=session_id)]
            for item in self.records.items_from_turns(user_id, turns):
                if item.store in consolidating and item.current:
                    among.setdefault(item.id, item)
        if among:
            self.guard.sweep(user_id, self._by_name(), among=list(among.values()))
        return changed

    # -- editing ----------------------------------------------------------------------------

    def update(
        self,
        item_id: str,
        text: str,
        *,
        user_id: str,
        reason: str = "updated by user",
        at: datetime | None = None,
    ) -> list[Change]:
        """Change an item's text through its structure; end what still says the old one.

        See :func:`agentmem.editing.update_item`.

        Raises:
            NotFoundError: No such item for this user.
            InputError: The text is empty, the item is no longer current, or its structure
                cannot edit its items.
        """
        changes = update_item(self, item_id, text, user_id=user_id, reason=reason, at=at)
        self.guard.reset(user_id)
        return changes

    def delete(
        self,
        item_id: str,
        *,
        user_id: str,
        reason: str = "deleted by user",
        at: datetime | None = None,
    ) -> list[Change]:
        """Delete an item through its structure, and what was derived from it elsewhere.

        See :func:`agentmem.editing.delete_item`; a deleted fact also ends what still
        asserts its value.

        Raises:
            NotFoundError: No such item for this user.
        """
        changes = delete_item(self, item_id, user_id=user_id, reason=reason, at=at or utcnow())
        if changes and changes[0].kind != "NOOP":
            # Items that still assert a deleted fact's value are stale now: only those
            # values are swept (every stale value of a user with 50,000 items took
            # minutes; benchmarks/bench_scale.py).
            self.guard.reset(user_id)
            facts = [c.item.id for c in changes if c.item.kind == "fact"]
            if facts:
                changes += self.guard.sweep(user_id, self._by_name(), fact_ids=facts)
        return changes

    # -- recall -----------------------------------------------------------------------------

    def recall(
        self,
        text: str,
        scope: Scope,
        *,
        budget_tokens: int = 1000,
        k: int = 10,
        exclude_turn_ids: Sequence[int] = (),
        as_of: datetime | None = None,
        include_history: bool = False,
        context: Sequence[Turn] = (),
        iterative: bool | None = None,
        structures: Collection[str] | None = None,
    ) -> RecallResult:
        """Recall what memory holds for ``text`` within ``scope``, under a token budget.

        Args:
            text: The user's turn (or any query).
            scope: Whose memory to search.
            budget_tokens: Most tokens the recalled items may cost.
            k: Items per structure before fusion.
            exclude_turn_ids: Turns already quoted in the prompt.
            as_of: Recall what was valid at this dialogue time.
            include_history: Also return invalidated items, marked as not current; an item
                and the one that replaced it rank current first unless the query names
                what only the old one says (see :func:`agentmem.fusion.current_first`).
            context: Recent turns, used to rewrite a query that leans on them.
            iterative: Recall again with what the first pass found (default: the manager's).
            structures: Recall only from these structures (by name; the first of them that
                is configured leads the fusion), within :attr:`recall_from`.
        """
        started = time.perf_counter()
        timings: dict[str, float] = {}
        query_text = (
            model_rewrite(self.rewriter, text, context)
            if self.rewriter is not None
            else rewrite_query(text, context)
        )
        timings["rewrite"] = time.perf_counter() - started
        active = [
            s
            for s in self.structures
            if (self.recall_from is None or s.name in self.recall_from)
            and (structures is None or s.name in structures)
        ]
        # The form is the asker's own words', not the rewrite's (which adds context).
        reading = read_question(text, now=as_of or utcnow())
        as_of = self._searched_as_of(as_of, scope, include_history)
        query = self._query(
            query_text, scope, exclude_turn_ids, as_of, include_history, reading, timings
        )
        rankings, stale = self._recall_staged(query, k, active, budget_tokens, timings)
        if iterative if iterative is not None else self.iterative:
            first = self._fit(rankings, budget_tokens, reading.form, k).kept
            follow_up = query_text + " " + " ".join(r.item.text for r in first[:3])
            again = self._query(
                follow_up, scope, exclude_turn_ids, as_of, include_history, reading, timings
            )
            more, stale_more = self._fan_out(again, k, active, timings)
            rankings += more
            stale += stale_more
        fitted = self._fit(rankings, budget_tokens, reading.form, k)
        # With history, an old version and the item that replaced it are often both found;
        # where the query does not tell them apart, what holds now comes first.
        kept = current_first(fitted.kept, query_text)
        if reading.now and not include_history:
            kept = newest_first(kept)
        timings["total"] = time.perf_counter() - started
        return RecallResult(tuple(kept), fitted.tokens, fitted.dropped, timings, query_text, stale)

    def _fit(
        self,
        rankings: Sequence[tuple[str, list[Recalled]]],
        budget_tokens: int,
        form: str = "point",
        k: int | None = None,
    ) -> Fitted[Recalled]:
        """Fuse the structures' rankings (see the module docstring) into the budget."""
        if self.fusion == "rank":
            return fit_rankings(rankings, budget_tokens, self.counter)
        names = [n for n, _ in rankings]
        if form != "point" and self._whole(rankings, budget_tokens, k):
            form = "point"
        return fit_rankings(
            rankings, budget_tokens, self.counter, leaders=self.leaders(names, form)
        )

    def _whole(
        self, rankings: Sequence[tuple[str, list[Recalled]]], budget_tokens: int, k: int | None
    ) -> bool:
        """Whether the point lead found all there is (fewer than ``k`` items) and it all fits.

        Then what it found is the answer itself ("what did we talk about on 8 May": that
        day's turns), and an aggregate of it adds nothing: it leads, as for a point
        question, and the aggregates give way (they add only turns it lacks).
        """
        names = [n for n, _ in rankings]
        point = next(iter(self.leaders(names, "point") - {FACT_STORE}), None)
        found = [r for name, ranking in rankings if name == point for r in ranking]
        if point is None or not found or k is None or len(found) >= k:
            return False
        if not fit_rankings(rankings, budget_tokens, self.counter).dropped:
            return False  # no budget to save (a search): the aggregates still come first
        return not fit_rankings([(point, found)], budget_tokens, self.counter).dropped

    def leaders(self, names: Sequence[str], form: str = "point") -> frozenset[str]:
        """Return which of the structures ``names`` lead the fusion for a question's form.

        The first configured structure among ``names`` built for the form (``Leading``:
        a recap is led by the summaries), else the first configured one; with it the fact
        ledger, for the forms whose answer is a fact (:data:`LEDGER_FORMS`).
        """
        present = [s for s in self.stores if s.name in set(names)]
        built = [s.name for s in present if isinstance(s, Leading) and form in s.leads]
        lead = built[0] if built else (present[0].name if present else None)
        ledger = self.facts.name if self.facts is not None and form in LEDGER_FORMS else None
        return frozenset(n for n in (ledger, lead) if n is not None and n in set(names))

    def _searched_as_of(
        self, as_of: datetime | None, scope: Scope, include_history: bool
    ) -> datetime | None:
        """Return the moment the structures search as of, once per recall.

        ``as_of`` at or after the latest change to the user's memory asks for memory as it
        stands now: ``None``, so the structures search their current items only, without
        filtering by validity (the same answer, see
        :meth:`~agentmem.storage.records.Records.latest_moment`).
        """
        if as_of is None or include_history:
            return as_of
        latest = self.records.latest_moment(scope.user_id)
        return None if latest is None or as_of >= latest else as_of

    def _query(
        self,
        text: str,
        scope: Scope,
        exclude_turn_ids: Sequence[int],
        as_of: datetime | None,
        include_history: bool,
        reading: Reading,
        timings: dict[str, float],
    ) -> Query:
        """Return the query the structures receive, embedded once for all of them."""
        tick = time.perf_counter()
        query = Query(
            text=text,
            scope=scope,
            embedding=self.embedder.embed([text])[0],
            as_of=as_of,
            include_history=include_history,
            exclude_turn_ids=frozenset(exclude_turn_ids),
            form=reading.form,
            window=reading.window,
        )
        timings["embed"] = timings.get("embed", 0.0) + time.perf_counter() - tick
        return query

    def _recall_staged(
        self,
        query: Query,
        k: int,
        active: Sequence[MemoryStore],
        budget_tokens: int,
        timings: dict[str, float],
    ) -> tuple[list[tuple[str, list[Recalled]]], int]:
        """Search the leading structures, then the others only if the lead left room.

        Under lead fusion the others only fill the room the lead leaves: when less than
        :data:`MIN_ROOM` tokens are left, no item of theirs would fit, and searching them
        only costs time (on LoCoMo at ``k = 50``, the lead fills 1,470 of 1,500 tokens).
        """
        if self.fusion == "rank":
            return self._fan_out(query, k, active, timings)
        leaders = self.leaders([s.name for s in active], query.form)
        first = [s for s in active if s.name in leaders]
        rest = [
            s
            for s in active
            if s.name not in leaders and (not isinstance(s, Leading) or query.form in s.serves)
        ]
        rankings, stale = self._fan_out(query, k, first, timings)
        if rest:
            room = budget_tokens - self._fit(rankings, budget_tokens, query.form, k).tokens
            if room >= MIN_ROOM:
                more, stale_more = self._fan_out(query, k, rest, timings)
                rankings += more
                stale += stale_more
        return rankings, stale

    def _fan_out(
        self,
        query: Query,
        k: int,
        active: Sequence[MemoryStore],
        timings: dict[str, float],
    ) -> tuple[list[tuple[str, list[Recalled]]], int]:
        """Search ``active`` for ``query``; settle what is stale; return the rankings."""
        as_of, include_history, scope = query.as_of, query.include_history, query.scope
        values = self.guard.stale_values(scope.user_id)
        by_name = self._by_name()
        rankings: list[tuple[str, list[Recalled]]] = []
        stale_count = 0

        def retrieve(store: MemoryStore) -> tuple[list[Recalled], float]:
            tick = time.perf_counter()
            return store.retrieve(query, k), time.perf_counter() - tick

        # Stale checks (which may write) run in order once every structure has searched.
        if self.parallel and len(active) > 1:
            found = list(self._pool().map(retrieve, active))
        else:
            found = [retrieve(store) for store in active]
        for store, (results, seconds) in zip(active, found, strict=True):
            tick = time.perf_counter() - seconds
            kept = []
            for recalled in results:
                if recalled.item.metadata.get("erased"):
                    continue  # a tombstone: something was erased here, nothing to recall
                if not _evidence(recalled.item) or not _in_window(recalled.item, query):
                    continue
                stale = self.guard.stale_for(recalled.item, values, as_of=as_of)
                if stale is None:
                    kept.append(recalled)
                    continue
                # Created after the write-time sweep (e.g. consolidated later): settle it
                # now (noted, or retired and kept out of this prompt).
                stale_count += 1
                item = self._settle_found(recalled.item, stale, values, by_name[store.name])
                if item.current or include_history:
                    kept.append(Recalled(item, recalled.score))
            rankings.append((store.name, kept))
            timings[store.name] = timings.get(store.name, 0.0) + time.perf_counter() - tick
        return rankings, stale_count

    def _settle_found(
        self,
        item: MemoryItem,
        stale: StaleValue,
        values: Sequence[StaleValue],
        store: MemoryStore,
    ) -> MemoryItem:
        """Settle a stale item recall met: noted where it says more, else retired.

        Return the item as it is now. Memory opened to read settles it for this recall
        only, as :meth:`StaleGuard.settle` would have.
        """
        found: StaleValue | None = stale
        for _ in values:  # an aggregate may hold several old values
            if found is None or not item.current:
                break
            try:
                settled = self.guard.settle(store, [item], found)
                item = settled[0].item if settled else item
            except ReadOnlyError:
                item = settled_in_passing(item, found)
            found = self.guard.stale_for(item, values)
        return item

    # -- inspection, export and erasure -----------------------------------------------------

    def history(self, item_id: str, *, user_id: str | None = None) -> list[ItemEvent]:
        """Return every recorded change to an item, oldest first."""
        return self.records.history(item_id, user_id=user_id)

    def export(self, user_id: str, path: str | Path | None = None) -> dict[str, Any]:
        """Return (and optionally write as JSON) everything memory holds about a user."""
        items = []
        for store in self.structures:
            for item in self.records.store_items(store.name, user_id, current_only=False):
                entry = asdict(item)
                entry["current"] = item.current
                entry["history"] = [
                    {k: v for k, v in asdict(event).items() if k != "user_id"}
                    for event in self.records.history(item.id)
                ]
                items.append(entry)
        data = {
            "user_id": user_id,
            "sessions": [s.model_dump() for s in self.records.sessions(user_id)],
            "turns": [asdict(t) for t in self.records.turns(user_id)],
            "items": items,
            "documents": [row.model_dump() for row in self.records.user_documents(user_id)],
        }
        if path is not None:
            Path(path).write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        return data

    def forget(self, user_id: str) -> ForgetReceipt:
        """Erase a user from every backend; return a receipt of that user's data removed.

        Structures drop the user's vectors and cached state (and the vector index any
        collection of the user a structure no longer configured left), and the records
        database drops every row of the user (turns, sessions, items, history, queued
        work). Then the files are rewritten so that no copy stays in them (free pages,
        old index segments, logs, dropped collections' index files): the receipt's
        ``rewritten`` says what. The caches shared by all users (embeddings, extracted
        facts) are emptied too: they may hold the user's texts (an embedded query is in
        no table), and the embedding cache cannot tell whose a text is. What they held is
        reported apart, in :attr:`ForgetReceipt.caches_cleared`, not as the user's data.
        """
        vectors = sum(store.forget(user_id) for store in self.structures)
        if self.vectors is not None:
            vectors += sum(self.vectors.drop(s, user_id) for s in self.vectors.user_stores(user_id))
        rows = self.records.forget(user_id)
        self.guard.reset(user_id)
        caches = self._clear_caches()
        counts = {words: rows.get(table, 0) for words, table in _RECEIPT_ROWS.items()}
        return ForgetReceipt({**counts, "vectors": vectors}, caches, self._compact())

    def erase(
        self,
        item_id: str,
        *,
        user_id: str,
        reason: str = "erased by user",
        at: datetime | None = None,
    ) -> list[Change]:
        """Erase an item and every copy of its text, history included; keep tombstones.

        What it reaches is decided by :func:`agentmem.editing.erase_plan` (the item, the
        turn it came from, what was derived only from that turn or quotes it). The
        current ones are deleted through their structures first; then their texts,
        metadata and history texts are blanked (each keeps its id, structure, validity
        and provenance, with a DELETE event saying it was erased), their vectors are
        removed, and the files are rewritten so that no copy stays.

        Raises:
            NotFoundError: No such item for this user.
        """
        plan = erase_plan(self, item_id, user_id=user_id, reason=reason, at=at)
        self.records.erase_event_texts(user_id, plan.event_item_ids)
        self.records.erase(user_id, plan.item_ids, plan.turn_ids)
        if self.vectors is not None:
            self.vectors.erase(user_id, plan.item_ids)
        self.guard.reset(user_id)
        self._clear_caches()
        self._compact()
        erased = {i.id: i for i in self.records.items(plan.item_ids, user_id=user_id)}
        ended = {c.item.id for c in plan.changes}
        changes = [replace(c, item=erased.get(c.item.id, c.item)) for c in plan.changes]
        changes += [
            Change("DELETE", item, reason) for key, item in erased.items() if key not in ended
        ]
        return changes

    def _clear_caches(self) -> dict[str, int]:
        caches = {"embeddings": _clear(self.embedder)}
        if self.facts is not None:
            caches["fact extractions"] = _clear(self.facts.extractor)
        return caches

    def _compact(self) -> list[str]:
        rewritten = self.records.compact()
        if self.vectors is not None:
            rewritten += self.vectors.compact()
        return rewritten


class ForgetReceipt(dict[str, int]):
    """What forgetting a user removed: counts of that user's own data, by what it is.

    The keys are ``turns``, ``sessions``, ``memory items``, ``history events`` (recorded
    changes to the items), ``queued retries`` (model builds waiting to be retried),
    ``documents`` (versions of documents kept under a namespace and key, by the LangGraph
    store) and ``vectors`` (embeddings, over every structure). It is a plain ``dict`` of those
    counts, with the shared caches emptied alongside kept out of it.

    Attributes:
        caches_cleared: Entries of the caches shared by every user that were emptied too,
            e.g. ``{"embeddings": 9, "fact extractions": 2}``: they may hold the user's
            texts, but most entries are usually other users', so they are not counted
            as this user's data.
        rewritten: What was rewritten so that no copy of the user's data stays in the
            files, in words (the records database, its full-text index, the vector
            index's files, the vector journal).
    """

    def __init__(
        self,
        counts: dict[str, int],
        caches_cleared: dict[str, int],
        rewritten: Sequence[str] = (),
    ) -> None:
        super().__init__(counts)
        self.caches_cleared = dict(caches_cleared)
        self.rewritten = list(rewritten)


#: The receipt's words for the records database's tables.
_RECEIPT_ROWS = {
    "turns": "turns",
    "sessions": "sessions",
    "memory items": "memory_items",
    "history events": "item_events",
    "queued retries": "pending_work",
    "documents": "documents",
}


def _evidence(item: MemoryItem) -> bool:
    """Whether an item may be recalled as evidence: not a question, an echo or nothing.

    A structure may say so itself (the turns structure marks its turns); an item of one
    turn that only asks, or says nothing, is judged here by its text, whatever its
    structure (a MemTree leaf, a graph passage, a turn of an older folder).
    """
    if item.metadata.get(NOT_EVIDENCE):
        return False
    if len(item.source_turn_ids) > 1 or item.store == FACT_STORE:
        return True
    said = _SPEAKER_PREFIX.sub("", item.text, count=1)
    return not (asks_only(said) or says_nothing(said))


def _in_window(item: MemoryItem, query: Query) -> bool:
    """Whether an item may answer a recap of ``query.window``: said within it.

    A recap names its time ("what did we talk about on 8 May"): what holds from another
    time (a fact of March, a memo of last year) is not what was said then. Other forms
    keep everything: a point question's date is part of what it asks, not a filter.
    """
    if query.form != "recap" or query.window is None or item.valid_from is None:
        return True
    start, end = query.window
    return start <= item.valid_from < end


#: "Ana: " before what a turn said.
_SPEAKER_PREFIX = re.compile(r"^[^:\n]{1,60}:\s")


def _clear(cache: object) -> int:
    clear = getattr(cache, "clear", None)
    return int(clear()) if callable(clear) else 0


__all__ = [
    "ITEM_OVERHEAD",
    "ForgetReceipt",
    "RRF_K",
    "MemoryManager",
    "RecallResult",
    "WriteReport",
    "fit_rankings",
    "fuse",
]
