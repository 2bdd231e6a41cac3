"""The fact ledger: atomic facts with validity, and Keep-Me-Updated conflict resolution.

Each fact extracted from a turn is resolved against the current facts of the same subject
and slot (Bae et al. 2022, "Keep Me Updated!"): ``keep`` (NOOP: the same value again, its
provenance grows), ``replace`` (a single-valued slot changes: the old fact is superseded),
``append`` (a multi-valued slot gains a value) or ``delete`` (the value ended: "I quit
chess"). The guards that keep collateral damage at zero:

- a fact can only conflict with facts about the *same subject and the same attribute*, so
  "my uncle retired to Bruges" never touches where the speaker lives;
- the newest statement wins, even when it is only implied ("my new flat in Valencia"),
  unless a still newer one says otherwise; a back-dated statement goes in as history;
- an ending that names only its value ("Pixel passed away", "I sold the van") ends that
  value in whichever slot holds it, and is kept as an ended fact so the items that
  mention the value can be found even when no fact held it;
- generic triples (outside the known slots) never supersede anything.

Every decision is recorded with its reason in the item's history.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from datetime import datetime

from agentmem.ledger.batch import (
    Batch,
    Decision,
    Operation,
    Slots,
    change_phrase,
    drop,
    fact_key,
    fact_metadata,
    named,
    recorded_before,
    recorded_values,
    when,
)
from agentmem.ledger.extraction import (
    ENDED,
    Fact,
    normalise,
    queue_degraded,
    retry_queued,
)
from agentmem.ledger.linked import LinkedFacts
from agentmem.ledger.lookback import Lookback
from agentmem.ledger.mentions import (
    asserts_value,
    holds_value,
    mentions,
    words_needed,
    words_of,
)
from agentmem.ledger.resolution import FactOperation, ModelResolver
from agentmem.models.building import BuildStats
from agentmem.protocols import StoreContext
from agentmem.storage.items import ItemIndex
from agentmem.storage.records import ItemUpdate, derived_item_id
from agentmem.types import Change, MemoryItem, Query, Recalled, Turn, utcnow

logger = logging.getLogger(__name__)

FACT_STORE = "facts"


def is_ending(item: MemoryItem) -> bool:
    """Whether a fact item is the record of an ending, not a fact anyone stated.

    "Mochi passed away" ends Mochi in whichever slot held it; the ledger keeps the ending
    (never current) so that the items naming the value can be found and settled. It is
    never recalled or listed as a fact: the facts it ended say so in their histories.
    """
    return item.store == FACT_STORE and item.metadata.get("attribute") == ENDED


class FactLedger:
    """The user's facts as memory items (structure name ``facts``), resolved on arrival.

    It is itself a memory structure (``write`` / ``retrieve`` / ``invalidate`` /
    ``forget``), so recall fans out to it like to any other; the manager calls
    :meth:`resolve` to learn what each new turn superseded.

    Args:
        context: The core services (``context.extractor`` provides the facts).
    """

    name = FACT_STORE

    def __init__(self, context: StoreContext, *, resolver: ModelResolver | None = None) -> None:
        from agentmem.ledger.extraction import RuleExtractor

        self.context = context
        self.extractor = context.extractor or RuleExtractor()
        #: With a model, one call per turn decides against the related current facts
        #: (mem0's update step); the offline path stays the fallback.
        self.resolver = resolver or (ModelResolver(context.model) if context.model else None)
        self._rules = RuleExtractor()
        self._index = ItemIndex(context, FACT_STORE)
        #: Retries queued here; the extractor counts the failed calls themselves.
        self.stats = BuildStats()
        #: Looks back in the users' turns (read once per resolution) for a value said in
        #: passing before a change.
        self._lookback = Lookback(context.records)
        #: Links a change to the earlier statements it outdates, slot or no slot.
        self._linked = LinkedFacts(context.records, self._lookback, self._item)

    # -- the MemoryStore protocol -----------------------------------------------------------

    def write(self, turns: Sequence[Turn]) -> list[Change]:
        """Extract and resolve the turns' facts; return what changed."""
        return [c for d in self.resolve(turns) for c in d.changes]

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Return the facts most similar to the query.

        The record of an ending ("Mochi" ended, kept so that the items naming it can be
        found) is no fact anyone stated: it is never recalled.
        """
        return [r for r in self._index.search(query, k) if not is_ending(r.item)]

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
    ) -> None:
        """Mark facts invalid."""
        self._index.invalidate(item_ids, reason, at=at, superseded_by=superseded_by)

    def update(
        self, item_id: str, text: str, *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Change a fact's text and re-embed it.

        Its slot and value (what change detection compares) stay as extracted: the text is
        how the fact reads, not a new statement. To change a value, say so in a turn.
        """
        item = self._index.editable(item_id)
        return [Change("UPDATE", self._index.update(item, text, reason=reason, at=at), reason)]

    def delete(
        self, item_ids: Sequence[str], *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Invalidate facts as deleted (the manager then ends what still asserts them)."""
        return [Change("DELETE", i, reason) for i in self._index.delete(item_ids, reason, at=at)]

    def forget(self, user_id: str) -> int:
        """Drop the user's fact vectors (the records database drops the rows)."""
        return self._index.forget(user_id)

    # -- resolution -------------------------------------------------------------------------

    def current(self, user_id: str) -> list[MemoryItem]:
        """Return the user's current facts, oldest first."""
        return self.context.records.store_items(FACT_STORE, user_id, kind="fact")

    def _slots(
        self, user_id: str, *, leave_out: AbstractSet[str] = frozenset()
    ) -> dict[tuple[str, str], list[MemoryItem]]:
        """Return the user's current facts by slot, (subject, attribute)."""
        slots: Slots = {}
        for item in self.current(user_id):
            if item.id not in leave_out:
                key = (str(item.metadata.get("subject_key")), str(item.metadata.get("attribute")))
                slots.setdefault(key, []).append(item)
        return slots

    def resolve(self, turns: Sequence[Turn]) -> list[Decision]:
        """Extract the turns' facts and apply keep / replace / append / delete.

        Decisions are taken in dialogue order against an in-memory view of the slots, then
        persisted in one go: new facts embedded and stored in one batch, then provenance
        growth, then invalidations (so a fact added and superseded within one batch still
        shows both events in its history).

        With a model resolver, each turn is decided by one model call against the related
        current facts instead (:meth:`_resolve_by_model`).
        """
        if self.resolver is not None:
            return self._resolve_by_model(turns, self.resolver)
        extracted = self.extractor.extract(turns)
        queue_degraded(self.extractor, turns, self.context.records, FACT_STORE, self.stats)
        self._lookback.reset()
        decisions: list[Decision] = []
        by_id = {t.id: t for t in turns}
        batch = Batch()
        # Facts a write interrupted by a crash already stored: resolved then, not again.
        done = self.context.records.existing_ids(
            self._item(fact, by_id[fact.turn_id]).id
            for found in extracted.values()
            for fact in found
            if not fact.generic and fact.turn_id in by_id
        )
        done |= self._folded_before(extracted, by_id)
        for user_id in dict.fromkeys(t.user_id for t in turns):
            slots = self._slots(user_id)
            for turn in (t for t in turns if t.user_id == user_id):
                made = [
                    self._resolve_one(fact, by_id[fact.turn_id], slots, batch, done)
                    for fact in extracted.get(turn.id, [])
                    if not fact.generic
                ]
                decisions += made
                decisions += self._linked.decide(turn, made, slots, batch)
        self._persist(batch)
        return decisions

    def _folded_before(
        self, extracted: Mapping[int, Sequence[Fact]], by_id: Mapping[int, Turn]
    ) -> set[str]:
        """Return the item ids of facts an interrupted write already folded into a fact
        that later turns have superseded since.

        A fact that repeats a current value adds its turn to that fact's sources and
        stores nothing of its own, so the derived ids :meth:`resolve` checks do not show
        it was resolved. Resumed after later turns replaced the value, it would go in
        again, as history of its own (tests/test_crash_safety.py: "Felix works as editor"
        twice). Such a fact is done: the superseded fact lists its turn with its value.
        """
        folded: set[tuple[int, str, str]] = set()
        for user_id in dict.fromkeys(t.user_id for t in by_id.values()):
            mine = [t.id for t in by_id.values() if t.user_id == user_id]
            # Still current, a fact changes nothing when its turn is resolved again.
            folded |= recorded_values(
                self.context.records, user_id, mine, FACT_STORE, superseded_only=True
            )
        return {
            self._item(fact, by_id[fact.turn_id]).id
            for found in extracted.values()
            for fact in found
            if not fact.generic
            and fact.turn_id in by_id
            and (fact.turn_id, fact.subject_key, fact.value_key) in folded
        }

    def _resolve_by_model(self, turns: Sequence[Turn], resolver: ModelResolver) -> list[Decision]:
        """Decide each turn with one model call against its related current facts.

        The candidates are the current facts (those this batch added included) whose
        value or subject the turn names, then the most similar ones by embedding. A turn
        the model fails on for good is resolved by the offline rules. One call per turn
        at most (plus one repair of an unusable answer); none for the agent's own answers.
        """
        self._lookback.reset()
        decisions: list[Decision] = []
        batch = Batch()
        for user_id in dict.fromkeys(t.user_id for t in turns):
            slots = self._slots(user_id)
            # The agent's own answers state nothing new about anyone: no call for them
            # (echoes of an old value are still invalidated, by the stale guard).
            mine = [t for t in turns if t.user_id == user_id and t.speaker != "assistant"]
            failed: list[int] = []
            for turn in mine:
                candidates = self._candidates(turn, slots)
                recent = [t for t in self._lookback.turns_of(user_id) if t.id < turn.id][-6:]
                resolution = resolver.resolve(turn, recent, candidates)
                if resolution.fell_back:
                    # The rules stand in; the turn is queued for the model again
                    # (retry_pending), resolved then as of its turn's time.
                    failed.append(turn.id)
                    for fact in self._rules.extract_turn(turn):
                        if not fact.generic:
                            decisions.append(self._resolve_one(fact, turn, slots, batch))
                    continue
                for operation in resolution.operations:
                    decision = self._apply(operation, turn, slots, batch)
                    if decision is not None:
                        decisions.append(decision)
            if failed:
                self.stats.add_queued()
                self.context.records.queue_work(
                    FACT_STORE, user_id, "extract", {"turn_ids": failed}, "model resolution failed"
                )
        self._persist(batch)
        return decisions

    def _candidates(self, turn: Turn, slots: Slots, k: int = 8) -> list[MemoryItem]:
        """Return the current facts a turn may change: named in it first, then similar."""
        current = [item for items in slots.values() for item in items]
        if not current:
            return []
        said = f" {normalise(turn.text)} "
        named = [
            item
            for item in current
            if any(
                f" {item.metadata.get(key)} " in said
                for key in ("value_key", "subject_key")
                if item.metadata.get(key)
            )
        ]
        vectors = self.context.embedder.embed([turn.text] + [i.text for i in current])
        scores = vectors[1:] @ vectors[0]
        similar = [current[i] for i in scores.argsort()[::-1][:k]]
        return list({item.id: item for item in named + similar}.values())[: k + len(named)]

    def _apply(
        self,
        operation: FactOperation,
        turn: Turn,
        slots: Slots,
        batch: Batch,
    ) -> Decision | None:
        """Apply one of the model's operations to the slots and the batch."""
        fact = operation.fact
        target = next(
            (i for items in slots.values() for i in items if i.id == operation.target_id), None
        )
        if operation.kind == "ADD" and fact is not None:
            return self._resolve_one(fact, turn, slots, batch)
        if operation.kind == "UPDATE" and fact is not None:
            if target is None:
                return self._resolve_one(fact, turn, slots, batch)
            item = batch.add(self._item(fact, turn))
            reason = f"{change_phrase([target], fact.value, turn.id)}: {operation.reason}"
            replaced = batch.invalidate([target], reason, turn.timestamp, item.id)
            drop(slots, [target])
            slots.setdefault(fact.slot, []).append(item)
            return Decision("REPLACE", fact, item, replaced, operation.reason)
        if operation.kind == "DELETE" and target is not None:
            value = str(target.metadata.get("value") or "")
            ending = Fact(turn.speaker, ENDED, value, turn.id, turn.speaker, polarity=False)
            reason = f"{change_phrase([target], None, turn.id)}: {operation.reason}"
            ended = batch.invalidate([target], reason, turn.timestamp, None)
            drop(slots, [target])
            marker = batch.add(replace(self._item(ending, turn), invalid_at=turn.timestamp))
            return Decision("DELETE", ending, marker, ended, operation.reason)
        return None

    # -- retrying failed model extraction ---------------------------------------------------

    def retry_pending(self, user_id: str | None = None) -> int:
        """Extract again, with the model, turns whose facts came from the rules.

        The model's facts are resolved as of their turn's time: one older than the slot's
        current value goes in as history (already superseded), never over a newer value.
        Rule facts of those turns that the model does not confirm are invalidated. Work
        whose extraction fails again stays queued, its attempts counted.

        Returns:
            How many queued batches were done.
        """
        records = self.context.records
        return retry_queued(self.extractor, records, FACT_STORE, user_id, self._apply_retry)

    def _apply_retry(
        self, user_id: str, turns: Sequence[Turn], facts: dict[int, list[Fact]]
    ) -> None:
        ids = {t.id for t in turns}
        self._lookback.reset()
        mine = [
            i
            for i in self.context.records.store_items(FACT_STORE, user_id, current_only=False)
            if i.source_turn_ids and i.source_turn_ids[0] in ids
        ]
        wanted = {
            (t, *f.slot, f.value_key, f.polarity)
            for t, found in facts.items()
            for f in found
            if not f.generic
        }
        batch = Batch()
        unconfirmed = [i for i in mine if i.current and fact_key(i) not in wanted]
        if unconfirmed:
            batch.invalidate(unconfirmed, "not confirmed by model extraction", utcnow(), None)
        slots = self._slots(user_id, leave_out={i.id for i in unconfirmed})
        have = {fact_key(i) for i in mine}
        for turn in sorted(turns, key=lambda t: t.id):
            for fact in facts.get(turn.id, []):
                if fact.generic or (turn.id, *fact.slot, fact.value_key, fact.polarity) in have:
                    continue
                self._resolve_one(fact, turn, slots, batch)
        self._persist(batch)

    def _resolve_one(
        self,
        fact: Fact,
        turn: Turn,
        slots: Slots,
        batch: Batch,
        done: AbstractSet[str] = frozenset(),
    ) -> Decision:
        """Decide one fact against the slots' current values (as of its turn's time).

        A fact whose item ``done`` holds was resolved by a write a crash interrupted: if
        that item is no longer current, later turns already superseded it, and resolving
        it again would undo their decisions. A fact said before a newer current value of
        its slot (a resumed or back-dated write) goes in as history, superseded by that
        value; an ending said before a value was stated again leaves that value alone.
        """
        at = turn.timestamp
        fact = named(fact, slots)
        own = self._item(fact, turn)
        if fact.attribute == ENDED:
            return self._end_value(fact, turn, own, slots, batch, done)
        existing = slots.setdefault(fact.slot, [])
        if own.id in done and all(i.id != own.id for i in existing):
            return Decision("NOOP", fact, None, (), "resolved before an interruption")
        same = [i for i in existing if i.metadata.get("value_key") == fact.value_key]
        newer = [
            i for i in existing if i.metadata.get("value_key") != fact.value_key and when(i) > at
        ]
        if fact.single_valued and fact.polarity and not same and newer:
            first = min(newer, key=when)
            item = batch.add(replace(own, invalid_at=when(first), superseded_by=first.id))
            return Decision("NOOP", fact, item, (), "said before the slot's current value")
        if not fact.polarity:
            same = [i for i in same if when(i) <= at]
            if not same:
                return Decision("NOOP", fact, None, (), "ends a value that was not recorded")
            ended = batch.invalidate(same, change_phrase(same, None, turn.id), at, None)
            for item in same:
                existing.remove(item)
            return Decision("DELETE", fact, None, ended, "the speaker said it ended")
        if same:
            item = same[0]
            if turn.id not in item.source_turn_ids:
                item = replace(item, source_turn_ids=(*item.source_turn_ids, turn.id))
                existing[existing.index(same[0])] = item
                batch.provenance[item.id] = item
            if fact.single_valued and fact.polarity:
                # Two current values in a single-valued slot: a write interrupted after
                # the new value was stored but before the old one was invalidated.
                older = [
                    i
                    for i in existing
                    if i.metadata.get("value_key") != fact.value_key and when(i) <= when(item)
                ]
                if older:
                    reason = f"{change_phrase(older, fact.value, turn.id)}, repaired"
                    repaired = batch.invalidate(older, reason, item.valid_from or at, item.id)
                    for old in older:
                        existing.remove(old)
                    return Decision("REPLACE", fact, item, repaired, "a single-valued slot changed")
            return Decision("NOOP", fact, item, (), "the same value again")
        others = [i for i in existing if i.metadata.get("value_key") != fact.value_key]
        if fact.single_valued and others:
            # The newest statement wins, even an implied one ("my new flat in Valencia"):
            # people rarely restate a change outright; what was said later says otherwise.
            item = batch.add(own)
            reason = change_phrase(others, fact.value, turn.id)
            replaced = batch.invalidate(others, reason, at, item.id)
            # A value said only in passing before the recorded one ends too ("still in
            # her house in Whittier" before a wrong guess about where she is).
            replaced = (*replaced, *self._end_in_passing(fact, turn, slots, item, at, batch))
            existing.clear()
            existing.append(item)
            return Decision("REPLACE", fact, item, replaced, "a single-valued slot changed")
        item = batch.add(own)
        existing.append(item)
        if fact.single_valued and fact.polarity and not others:
            replaced = self._end_in_passing(fact, turn, slots, item, at, batch)
            if replaced:
                return Decision(
                    "REPLACE", fact, item, replaced, "a change from a value said in passing"
                )
        operation: Operation = "APPEND" if others else "ADD"
        return Decision(operation, fact, item, (), "a new value" if others else "a new slot")

    def _end_in_passing(
        self,
        fact: Fact,
        turn: Turn,
        slots: Slots,
        item: MemoryItem,
        at: datetime,
        batch: Batch,
    ) -> tuple[MemoryItem, ...]:
        """Record the value a change replaces that was only said in passing, as ended."""
        if not fact.polarity:
            return ()
        earlier = self._lookback.predecessor(fact, turn, slots)
        if earlier is None:
            return ()
        value, source = earlier
        said = Fact(
            fact.subject,
            fact.attribute,
            value,
            source.id,
            source.speaker,
            stated=False,
            single_valued=True,
        )
        candidate = self._item(said, source)
        if any(a.id == candidate.id for a in batch.added) or recorded_before(
            self.context.records, candidate
        ):
            # Already a recorded fact (stated, then replaced, possibly in this very
            # write): the ledger has dealt with that value; never record it twice.
            return ()
        reason = change_phrase([candidate], fact.value, turn.id)
        before = batch.add(candidate)
        return tuple(batch.invalidate([before], reason, at, item.id))

    def _end_value(
        self,
        fact: Fact,
        turn: Turn,
        own: MemoryItem,
        slots: Slots,
        batch: Batch,
        done: AbstractSet[str],
    ) -> Decision:
        """End a value named without its aspect ("Pixel passed away", "I sold the van").

        Every current fact said no later than the ending that holds the value (as its
        value, inside it, or as its subject) ends with it, whatever its slot. The ending
        itself is kept as an ended fact, so that items mentioning the value are found and
        invalidated even when no fact ever held it (see :mod:`agentmem.ledger.propagation`).
        """
        if own.id in done:
            return Decision("NOOP", fact, None, (), "resolved before an interruption")
        at = turn.timestamp
        holders = [
            item
            for items in slots.values()
            for item in items
            if holds_value(item, fact.value_key) and when(item) <= at
        ]
        ended: tuple[MemoryItem, ...] = ()
        for holder in holders:  # each says what of its own ended
            reason = change_phrase([holder], None, turn.id)
            ended += batch.invalidate([holder], reason, at, None)
        drop(slots, holders)
        marker = batch.add(replace(own, invalid_at=at))
        return Decision("DELETE", fact, marker, ended, "the speaker said it ended")

    def _item(self, fact: Fact, turn: Turn) -> MemoryItem:
        # Derived from the turn and the fact, so a resumed write re-deriving it is
        # recognised instead of stored twice.
        key = (FACT_STORE, turn.user_id, turn.id, *fact.slot, fact.value_key, fact.polarity)
        return MemoryItem(
            id=derived_item_id(*key),
            store=FACT_STORE,
            kind="fact",
            user_id=turn.user_id,
            agent_id=turn.agent_id,
            session_id=turn.session_id,
            text=fact.render(),
            source_turn_ids=(turn.id,),
            valid_from=turn.timestamp,
            metadata=fact_metadata(fact),
        )

    def _persist(self, batch: Batch) -> None:
        """Store a batch's decisions: the new facts' vectors, then every row at once.

        One transaction for the new facts, their provenance and what they supersede: a
        resumed write finds all of a batch's decisions stored, or none of them.
        """
        final = [batch.provenance.pop(i.id, i) for i in batch.added]
        # Embedded before the transaction opens: it holds the records database.
        vectors = self._index.embed([i.text for i in final]) if final else None
        records = self.context.records
        with records.transaction():
            if final:
                self._index.add(final, vectors, reason="extracted")
            if batch.provenance:
                records.update_items(
                    [
                        ItemUpdate(item.id, source_turn_ids=item.source_turn_ids)
                        for item in batch.provenance.values()
                    ]
                )
            for ids, reason, at, superseded_by in batch.invalidations:
                self._index.invalidate(ids, reason, at=at, superseded_by=superseded_by)


__all__ = [
    "FACT_STORE",
    "is_ending",
    "Decision",
    "FactLedger",
    "Operation",
    "asserts_value",
    "fact_metadata",
    "holds_value",
    "mentions",
    "words_needed",
    "words_of",
]
