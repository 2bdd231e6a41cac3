"""Looking back in the dialogue for the value a change replaces when no fact held it.

"We're officially living in Berlin" after months of "two years in Lisbon": no fact ever
recorded Lisbon, yet the change replaces it. :class:`Lookback` finds that value in the
user's earlier turns (see :meth:`Lookback.predecessor`).
"""

from __future__ import annotations

from agentmem.ledger.batch import Slots
from agentmem.ledger.cues import WEAK_SHAPES, frame_of, framed_values, shaped_values, signals_change
from agentmem.ledger.mentions import about, earlier_first
from agentmem.ledger.slots import SHAPED, Fact, normalise
from agentmem.protocols import RecordStore
from agentmem.text import split_sentences
from agentmem.types import Turn


class Lookback:
    """Finds values said in passing before a change; the user's turns are read once.

    Args:
        records: The records database the turns are read from.
    """

    def __init__(self, records: RecordStore) -> None:
        self.records = records
        self._turns: dict[str, list[Turn]] = {}

    def reset(self) -> None:
        """Forget the turns read (a new write may have added some)."""
        self._turns = {}

    def _shaped(self, fact: Fact, turn: Turn, shape: str, aspect: str) -> tuple[str, Turn] | None:
        """The last value of the same shape said about the subject before a change.

        An email or a phone number is its own aspect. A time or a day needs the same
        aspect word in the earlier sentence ("gym"), or, for a correction with no aspect
        ("sorry, I meant Thursdays"), to have been said in the same session.
        """
        for earlier in earlier_first(self.turns_of(turn.user_id), turn):
            if shape in WEAK_SHAPES and not aspect and earlier.session_id != turn.session_id:
                return None
            for said in reversed(split_sentences(earlier.text)):
                if not about(said, earlier, fact):
                    continue
                if aspect and f" {aspect}" not in f" {said.lower()}":
                    continue
                for found, value in reversed(shaped_values(said)):
                    if found == shape and normalise(value) != fact.value_key:
                        return value, earlier
        return None

    def turns_of(self, user_id: str) -> list[Turn]:
        """Return the user's turns, read once per write."""
        history = self._turns.get(user_id)
        if history is None:
            history = self._turns[user_id] = self.records.turns(user_id)
        return history

    def predecessor(
        self,
        fact: Fact,
        turn: Turn,
        slots: Slots,
    ) -> tuple[str, Turn] | None:
        """Find the value a change replaces when it was only ever said in passing.

        "We're officially living in Berlin" after months of "two years in Lisbon" and "so
        you're still in Lisbon?": no fact ever held Lisbon, yet the change replaces it.
        A statement that signals a change ("now", "new", "moved", "first day") and frames
        its value with a preposition ("in Berlin", "at Acme") replaces the value the same
        preposition framed most often in earlier talk about the same subject (ties: the
        latest), unless that value is someone's current fact, a person, or the new value.
        """
        shape, _, aspect = fact.attribute.partition(" of ")
        if shape in SHAPED:
            return self._shaped(fact, turn, shape, aspect)
        sentence = next((s for s in split_sentences(turn.text) if fact.value in s), turn.text)
        frame = frame_of(sentence, fact.value)
        if not frame or not signals_change(sentence):
            return None
        taken = {
            str(i.metadata.get(k))
            for items in slots.values()
            for i in items
            for k in ("value_key", "subject_key")
        }
        history = self.turns_of(turn.user_id)
        speakers = {normalise(t.speaker) for t in history}
        counts: dict[str, int] = {}
        latest: dict[str, tuple[str, Turn]] = {}
        ordered = earlier_first(history, turn)
        for position, earlier in enumerate(ordered):
            before = ordered[position + 1] if position + 1 < len(ordered) else None
            around = earlier.text
            if before is not None and before.session_id == earlier.session_id:
                around += " " + before.text
            for said in split_sentences(earlier.text):
                if not about(said, earlier, fact, around=around):
                    continue
                for value in framed_values(said, frame):
                    key = normalise(value)
                    if not key or key in taken or key in speakers:
                        continue
                    if key in fact.value_key or fact.value_key in key:
                        continue
                    counts[key] = counts.get(key, 0) + 1
                    latest.setdefault(key, (value, earlier))  # latest first
        if not counts:
            return None
        best = max(counts, key=lambda k: (counts[k], latest[k][1].timestamp, latest[k][1].id))
        return latest[best]


__all__ = ["Lookback"]
