"""Propagating superseded facts into every structure: the stale-value guard.

When the fact ledger supersedes or ends a fact, every item that still presents the old
value (a turn, an assistant's echo of it, a MemTree node, a summary sentence, a memo, a
graph passage) must stop being presented as current. The guard finds them by content: an
item is stale for a value when it mentions the value and does not also mention what
replaced it ("I left the barista job and now I work as a librarian" is the evidence of the
change, not a stale claim). Not only the turns a fact was extracted from: people mention
an old value in passing ("two years in Lisbon this month"), and the other side echoes it
("so you're still in Lisbon?"), without any fact being extracted there.

What keeps collateral damage out: an item whose turns are the evidence for someone's
*current* fact holding the same value ("my sister lives in Boston" after the speaker left
Boston) is spared, and so are the turns that made the change (the ending "Pixel passed
away" is news, not a stale claim).

It runs eagerly after each write, and again on every recall for what a structure created
later (e.g. a summary consolidated at the session's end), so nothing stale reaches a prompt.

Only what changed is retired. An item that says other things besides the old value ("I
live in Lisbon and love surfing at Carcavelos with my brother Rui") stays current for
them and carries the change beside it (:class:`~agentmem.types.ValueChange`, shown as
"[since 3 May 2023: residence Lisbon → Berlin]"): retiring it whole would lose the
surfing, the beach and the brother, the over-invalidation Graphiti's users report
(getzep/graphiti#1728). An item whose only content is the old value is retired.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from agentmem.ledger.cues import ended_values, signals_change
from agentmem.ledger.extraction import ENDED
from agentmem.ledger.facts import FACT_STORE, holds_value, mentions, words_needed, words_of
from agentmem.ledger.slots import normalise
from agentmem.ledger.timeref import without_resolutions
from agentmem.protocols import MemoryStore
from agentmem.storage.records import Records
from agentmem.text import content_words
from agentmem.types import CHANGES_KEY, Change, MemoryItem, ValueChange, utcnow


@dataclass(frozen=True)
class StaleValue:
    """A value that no longer holds for a subject's slot, and the turns that asserted it."""

    subject_key: str
    attribute: str
    value: str
    replaced_by: str | None
    fact_id: str
    new_fact_id: str | None
    turn_ids: frozenset[int]
    ended_at: datetime | None
    spared_turn_ids: frozenset[int] = frozenset()
    subject: str = ""
    speaker: str = ""
    changed_by: int | None = None

    def change(self) -> ValueChange:
        """Return the change as an item that still holds for the rest carries it."""
        if self.attribute == ENDED:
            aspect = ""
        elif self.subject and normalise(self.subject) != normalise(self.speaker):
            aspect = f"{self.subject}'s {self.attribute}"
        else:
            aspect = self.attribute
        return ValueChange(
            value=self.value,
            replaced_by=self.replaced_by,
            aspect=aspect,
            since=self.ended_at,
            turn_id=self.changed_by,
            fact_id=self.fact_id,
        )


#: Content words an item must say outside the clauses naming an old value for it to stay
#: current for them (carrying the change) rather than be retired.
MIN_OTHER_WORDS = 2
#: Where a clause ends: punctuation, and the conjunctions that join two statements.
_CLAUSE = re.compile(
    r"[.!?;,:()\[\]\u2014\u2013\n]+|\s(?:and|but|while|so|because|though|although|or|plus)\s",
    re.IGNORECASE,
)
_SPEAKER = re.compile(r"^[^:\n]{1,60}:\s")


def says_more_than(text: str, value: str) -> bool:
    """Whether ``text`` says something besides ``value``: it then stays current for it.

    The clauses that name the value are set aside (with the speaker's name and resolved
    dates); what is left must hold :data:`MIN_OTHER_WORDS` content words. "I live in
    Lisbon and love surfing at Carcavelos" says more than Lisbon; "I live in Lisbon now"
    does not.
    """
    body = without_resolutions(_SPEAKER.sub("", text, count=1))
    rest = [c for c in _CLAUSE.split(body) if c.strip() and not mentions(words_of(c), value)]
    return len(set(content_words(" ".join(rest)))) >= MIN_OTHER_WORDS


#: From this many stale values on, an item is tested only against the values whose rarest
#: word it holds (an index by that word, built once per list of values).
INDEXED_FROM = 32


class _ByRarestWord:
    """Positions of stale values by the word of theirs that the fewest values share.

    A text mentions a value only if it holds each of the value's words, so testing the
    values whose rarest word the text holds finds every value it mentions; the rarest word
    ("kraków" rather than "the") keeps those few.
    """

    def __init__(self, values: Sequence[StaleValue]) -> None:
        self.values = values  # held, so the list's id is not reused while indexed
        needed = [words_needed(stale.value) for stale in values]
        counts = Counter(word for words in needed for word in set(words))
        self.positions: dict[str, list[int]] = {}
        for position, words in enumerate(needed):
            if words:
                rarest = min(words, key=lambda word: counts[word])
                self.positions.setdefault(rarest, []).append(position)

    def candidates(self, text: str) -> list[StaleValue]:
        """Return the values ``text`` (from :func:`words_of`) may mention, in order."""
        found = {p for word in set(text.split()) for p in self.positions.get(word, ())}
        return [self.values[p] for p in sorted(found)]


class StaleGuard:
    """Knows each user's stale values and flags items that still assert them.

    Args:
        records: The records database (the fact ledger's items live there).
    """

    def __init__(self, records: Records) -> None:
        self.records = records
        self._cache: dict[str, list[StaleValue]] = {}
        self._indexes: dict[int, _ByRarestWord] = {}
        self._lock = threading.Lock()

    def reset(self, user_id: str | None = None) -> None:
        """Forget cached stale values (after the user's facts changed)."""
        with self._lock:
            if user_id is None:
                self._cache.clear()
            else:
                self._cache.pop(user_id, None)
            self._indexes.clear()

    def stale_values(self, user_id: str) -> list[StaleValue]:
        """Return the user's stale values (cached until :meth:`reset`)."""
        with self._lock:
            cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        facts = self.records.store_items(FACT_STORE, user_id, kind="fact", current_only=False)
        current = [f for f in facts if f.current]
        current_values: dict[tuple[str, str], set[str]] = {}
        by_id = {f.id: f for f in facts}
        for fact in current:
            key = (str(fact.metadata.get("subject_key")), str(fact.metadata.get("attribute")))
            current_values.setdefault(key, set()).add(str(fact.metadata.get("value_key")))
        found: list[StaleValue] = []
        for fact in facts:
            if fact.current or fact.metadata.get("rejected"):
                continue
            key = (str(fact.metadata.get("subject_key")), str(fact.metadata.get("attribute")))
            value_key = str(fact.metadata.get("value_key"))
            if key[1] == ENDED:
                ended_at = fact.invalid_at or datetime.min
                if any(holds_value(c, value_key) and _since(c) > ended_at for c in current):
                    continue  # said again after it ended: current again
            elif value_key in current_values.get(key, set()):
                continue  # the value came back (A -> B -> A): not stale
            newer = by_id.get(fact.superseded_by or "")
            # Turns that state someone's current fact with this value, and the turn that
            # made the change, are evidence, not stale claims.
            spared = {t for c in current if holds_value(c, value_key) for t in c.source_turn_ids}
            if key[1] == ENDED:
                spared.update(fact.source_turn_ids)
            if newer is not None:
                spared.update(newer.source_turn_ids)
            changed_by = newer.source_turn_ids if newer else fact.source_turn_ids
            if key[1] != ENDED and newer is None:
                changed_by = ()  # ended by a turn the fact's own history names
            found.append(
                StaleValue(
                    subject_key=key[0],
                    attribute=key[1],
                    value=str(fact.metadata.get("value")),
                    replaced_by=str(newer.metadata.get("value")) if newer else None,
                    fact_id=fact.id,
                    new_fact_id=newer.id if newer else None,
                    turn_ids=frozenset(fact.source_turn_ids) - spared,
                    ended_at=fact.invalid_at,
                    spared_turn_ids=frozenset(spared),
                    subject=str(fact.metadata.get("subject") or ""),
                    speaker=str(fact.metadata.get("speaker") or ""),
                    changed_by=changed_by[0] if changed_by else None,
                )
            )
        # A value both replaced and said to end ("I moved from Lisbon to Berlin") is noted
        # once, as the replacement: it says more.
        found.sort(key=lambda stale: stale.replaced_by is None)
        with self._lock:
            self._cache[user_id] = found
        return found

    def stale_for(
        self, item: MemoryItem, values: Sequence[StaleValue], *, as_of: datetime | None = None
    ) -> StaleValue | None:
        """Return the stale value ``item`` still presents as current, if any.

        An item is stale for a value when it mentions the value, does not also mention
        what replaced it, and is not wholly drawn from turns that are evidence for a
        current fact holding that value or that made the change.
        """
        if item.store == FACT_STORE or not item.current:
            return None
        noted = {c.fact_id for c in item.changes} | {normalise(c.value) for c in item.changes}
        sources = set(item.source_turn_ids)
        # Normalised once: recall checks every item it found against every stale value.
        # Dates added to the text ("yesterday [7 May 2023]") are not what was said.
        text = words_of(without_resolutions(item.text))
        said: dict[str, bool] = {}  # many stale values share a text ("Lisbon" twice)

        def says(value: str) -> bool:
            if value not in said:
                said[value] = mentions(text, value)
            return said[value]

        for stale in self._candidates(values, text):
            if as_of is not None and stale.ended_at is not None and stale.ended_at > as_of:
                continue
            if stale.fact_id in noted or normalise(stale.value) in noted:
                continue  # the item carries this change (of this value) beside it already
            if not says(stale.value):
                continue
            if stale.replaced_by and says(stale.replaced_by):
                continue
            if sources and sources <= stale.spared_turn_ids:
                continue
            if not sources & stale.turn_ids and _news_of_the_change(item, stale):
                continue  # news around the change (but never the old value's own claim)
            return stale
        return None

    def _candidates(self, values: Sequence[StaleValue], text: str) -> Sequence[StaleValue]:
        """Return the values among ``values`` that ``text`` may mention, in their order.

        Recall tests every item it found against every stale value; with thousands of
        values (a long history) the index by rarest word saves most of that.
        """
        if len(values) < INDEXED_FROM:
            return values
        with self._lock:
            index = self._indexes.get(id(values))
            if index is None or index.values is not values:
                if len(self._indexes) >= 64:
                    self._indexes.clear()
                index = self._indexes[id(values)] = _ByRarestWord(values)
        return index.candidates(text)

    def sweep(
        self,
        user_id: str,
        stores: Mapping[str, MemoryStore],
        *,
        spare_turn_ids: Iterable[int] = (),
        fact_ids: Iterable[str] | None = None,
        among: Sequence[MemoryItem] | None = None,
    ) -> list[Change]:
        """Deal with every current item that still asserts a stale value; return the changes.

        An item that says other things besides the value carries the change from now on
        (an UPDATE: :meth:`settle`); one that says nothing else is retired (a SUPERSEDE).
        Single-turn items go first, one call per structure and value, so structures that
        re-aggregate on invalidation (a MemTree's ancestors) get the chance to drop the
        value before their own check; multi-turn items are then re-read and checked one
        at a time.

        Args:
            user_id: Whose memory to sweep.
            stores: The structures by name.
            spare_turn_ids: Turns whose items are left alone (the turn that made the change
                mentions the old value).
            fact_ids: Only the values these superseded facts held (what a write just
                changed; earlier sweeps handled the rest); all stale values if ``None``.
            among: Only these items (e.g. just consolidated); the items of the stale
                values' turns if ``None``.
        """
        values = self.stale_values(user_id)
        if fact_ids is not None:
            wanted = set(fact_ids)
            values = [v for v in values if v.fact_id in wanted]
        if not values:
            return []
        turn_ids = set().union(*(v.turn_ids for v in values)) | self._mentioning(user_id, values)
        turn_ids -= set(spare_turn_ids)
        if among is None:
            found = self.records.items_from_turns(user_id, turn_ids)
        else:
            found = [i for i in among if turn_ids.intersection(i.source_turn_ids)]
        candidates = [i for i in found if i.store in stores and i.current]
        changes: list[Change] = []
        groups: dict[tuple[str, str], list[MemoryItem]] = {}
        by_fact = {v.fact_id: v for v in values}
        for item in (c for c in candidates if len(c.source_turn_ids) <= 1):
            stale = self.stale_for(item, values)
            if stale is not None:
                groups.setdefault((item.store, stale.fact_id), []).append(item)
        for (store, fact_id), items in groups.items():
            changes += self.settle(stores[store], items, by_fact[fact_id])
        multi = sorted(
            (c for c in candidates if len(c.source_turn_ids) > 1),
            key=lambda i: len(i.source_turn_ids),
        )
        # Read fresh: invalidating a child may have re-aggregated an item already. All of
        # them are read in one query first; once something changed, each is read again
        # just before it is checked (re-reading every remaining one after each change
        # made a full sweep quadratic: minutes at 100k items, benchmarks/bench_scale.py).
        fresh = {i.id: i for i in self.records.items([c.id for c in multi])}
        changed = False
        for candidate in multi:
            if changed:
                again = self.records.items([candidate.id])
                latest = again[0] if again else None
            else:
                latest = fresh.get(candidate.id)
            if latest is None:
                continue
            stale = self.stale_for(latest, values)
            for _ in values:  # an aggregate may hold several old values
                if stale is None:
                    break
                changes += self.settle(stores[latest.store], [latest], stale)
                latest = self.records.get_item(latest.id)
                stale = self.stale_for(latest, values)
                changed = True
        return changes

    def settle(
        self, store: MemoryStore, items: Sequence[MemoryItem], stale: StaleValue
    ) -> list[Change]:
        """Retire the items that say nothing but the stale value; note it on the others.

        A noted item stays current for the rest of what it says, the change recorded in
        its metadata and its history (an UPDATE), and shown beside its text from then on.
        Return the changes, with each item as it is now.
        """
        retire = [i for i in items if not says_more_than(i.text, stale.value)]
        keep = [i for i in items if says_more_than(i.text, stale.value)]
        change = stale.change()
        changes: list[Change] = []
        if retire:
            self._invalidate(store, [i.id for i in retire], stale)
            after = {i.id: i for i in self.records.items([i.id for i in retire])}
            why = f"asserted {stale.value!r}, which no longer holds: {change.phrase()}"
            changes += [Change("SUPERSEDE", after.get(i.id, i), why) for i in retire]
        if keep:
            why = f"still holds for the rest; {change.phrase()}"
            noted = self.records.note_changes([i.id for i in keep], change, reason=why)
            changes += [Change("UPDATE", item, why) for item in noted]
        return changes

    def _mentioning(self, user_id: str, values: Sequence[StaleValue]) -> set[int]:
        """Return the user's turns that mention one of the values (outside its evidence)."""
        found: set[int] = set()
        for turn in self.records.turns(user_id):
            text = words_of(turn.text)
            for stale in values:
                if turn.id not in stale.spared_turn_ids and mentions(text, stale.value):
                    found.add(turn.id)
                    break
        return found

    @staticmethod
    def _invalidate(store: MemoryStore, item_ids: list[str], stale: StaleValue) -> None:
        store.invalidate(
            item_ids,
            f"asserts {stale.value!r}, which no longer holds",
            at=stale.ended_at,
            superseded_by=stale.new_fact_id,
        )


def settled_in_passing(item: MemoryItem, stale: StaleValue) -> MemoryItem:
    """Return ``item`` as :meth:`StaleGuard.settle` would leave it, without writing it.

    For memory opened to read: the item is noted or retired for this recall only.
    """
    if says_more_than(item.text, stale.value):
        held = list(item.metadata.get(CHANGES_KEY) or ())
        return replace(
            item, metadata={**item.metadata, CHANGES_KEY: [*held, stale.change().to_json()]}
        )
    ended = stale.ended_at or utcnow()  # as Records.invalidate would date it
    return replace(item, invalid_at=ended, superseded_by=stale.new_fact_id)


def _news_of_the_change(item: MemoryItem, stale: StaleValue) -> bool:
    """Whether an item is part of the news of the change: said on the day the value
    ended, and itself saying that something is new or over ("sorry sushi, mole is my
    favourite food now" beside "the sushi era is over")."""
    said, ended = item.valid_from, stale.ended_at
    if said is None or ended is None or said.date() != ended.date():
        return False
    return signals_change(item.text) or bool(ended_values(item.text))


def _since(item: MemoryItem) -> datetime:
    return item.valid_from or item.created_at or datetime.min
