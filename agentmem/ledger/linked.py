"""What the fact ledger records of a link: an inferred old fact, replaced or ended.

:class:`~agentmem.ledger.linking.Linker` finds that a change outdates a value an earlier
statement said; :class:`LinkedFacts` records it as facts the ledger knows, so the stale
guard (:mod:`agentmem.ledger.propagation`) settles every item that still asserts it and
the change is reported like any other ("rent: 900 → 950 (turn 12)"): the old value as an
inferred fact (``stated=False``) at the turn that said it, superseded by the new value's
fact (the rules' own when they extracted it, else one whose attribute is what the two
statements share), or ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agentmem.ledger.batch import Batch, Decision, Slots, change_phrase, recorded_before
from agentmem.ledger.linking import Link, Linker
from agentmem.ledger.lookback import Lookback
from agentmem.ledger.mentions import holds_value
from agentmem.ledger.slots import ENDED, Fact, normalise
from agentmem.protocols import RecordStore
from agentmem.types import MemoryItem, Turn


class LinkedFacts:
    """Records the links of each turn as the ledger's facts.

    Args:
        records: The records database (to tell a fact recorded before).
        lookback: The user's turns, read once per write.
        item_of: How the ledger makes a fact's item (its id derived from turn and fact).
    """

    def __init__(
        self,
        records: RecordStore,
        lookback: Lookback,
        item_of: Callable[[Fact, Turn], MemoryItem],
    ) -> None:
        self.records = records
        self.lookback = lookback
        self.item_of = item_of
        self.linker = Linker()

    def decide(
        self, turn: Turn, made: Sequence[Decision], slots: Slots, batch: Batch
    ) -> list[Decision]:
        """Record what a change outdates that no slot held (:mod:`agentmem.ledger.linking`).

        A value the rules already replaced or ended is theirs; a value someone's current
        fact holds is no stale claim; a value recorded before is never recorded twice.
        """
        if not self.linker.wanted(turn):
            return []
        current = [item for items in slots.values() for item in items]
        persons = [
            str(i.metadata.get("value") or "").split()[-1]
            for i in current
            if i.metadata.get("attribute") in ("relative", "partner") and i.metadata.get("value")
        ]
        history = self.lookback.turns_of(turn.user_id)
        # Values the rules replaced or ended, and the new values that replaced a stated
        # fact, are theirs (one the lookback guessed from a passing mention may have had
        # another predecessor too).
        settled = {
            normalise(str(o.metadata.get("value") or "")) for d in made for o in d.superseded
        } | {
            d.fact.value_key
            for d in made
            if d.operation == "DELETE"
            or (d.operation == "REPLACE" and any(o.metadata.get("stated") for o in d.superseded))
        }
        decisions = []
        for link in self.linker.links(turn, history, persons):
            old_key = normalise(link.old)
            if old_key in settled or any(holds_value(i, old_key) for i in current):
                continue
            if link.new is not None and normalise(link.new) in settled:
                continue
            decision = self._record(link, turn, made, slots, batch)
            if decision is not None:
                settled.add(old_key)
                decisions.append(decision)
        return decisions

    def _record(
        self, link: Link, turn: Turn, made: Sequence[Decision], slots: Slots, batch: Batch
    ) -> Decision | None:
        """Record a link: the old value as an inferred fact at its turn, ended or replaced.

        A new value the rules extracted from the turn keeps their slot; otherwise the new
        fact's attribute is what the two statements share ("rent").
        """
        rule = next(
            (
                d
                for d in made
                if link.new is not None
                and d.item is not None
                and d.item.current
                and d.fact.value_key == normalise(link.new)
            ),
            None,
        )
        subject = rule.fact.subject if rule is not None else link.subject
        attribute = rule.fact.attribute if rule is not None else link.aspect
        said = Fact(
            subject,
            attribute,
            link.old,
            link.source.id,
            link.source.speaker,
            stated=False,
            single_valued=True,
        )
        old = self.item_of(said, link.source)
        if any(a.id == old.id for a in batch.added) or recorded_before(self.records, old):
            return None
        if link.new is None:
            batch.add(old)
            ended = batch.invalidate(
                [old], change_phrase([old], None, turn.id), turn.timestamp, None
            )
            ending = Fact(subject, ENDED, link.old, turn.id, turn.speaker, polarity=False)
            return Decision("DELETE", ending, None, ended, "an earlier statement's value ended")
        if rule is not None and rule.item is not None:
            fact, item = rule.fact, rule.item
        else:
            fact = Fact(subject, attribute, link.new, turn.id, turn.speaker, single_valued=True)
            item = self.item_of(fact, turn)
            if any(a.id == item.id for a in batch.added) or self.records.existing_ids([item.id]):
                return None
            batch.add(item)
            slots.setdefault(fact.slot, []).append(item)
        batch.add(old)
        reason = change_phrase([old], link.new, turn.id)
        replaced = batch.invalidate([old], reason, turn.timestamp, item.id)
        return Decision("REPLACE", fact, item, replaced, "an earlier statement's value changed")


__all__ = ["LinkedFacts"]
