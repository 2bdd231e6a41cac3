"""The write side of the graph: turning turns and their facts into passage, fact and entity items.

A :class:`Batch` gathers one write's new items before anything is embedded, so that the
store can embed them all in one call and store them in one transaction. It reads the
user's graph only to tell known entities from new ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from agentmem.ledger.extraction import ENDED, Fact, normalise
from agentmem.ledger.timeref import resolve_relative_dates
from agentmem.storage.records import derived_item_id, new_item_id
from agentmem.stores.graph.user_graph import UserGraph, entity_node
from agentmem.text import proper_nouns
from agentmem.types import MemoryItem, Turn


class Batch:
    """One write's new passages, facts and entities, in the order they will be stored.

    Args:
        store: The structure's name.
        state: The user's graph (read only, to find known entities).
        turn_cap: Most turns recorded as an entity's provenance.
    """

    def __init__(self, store: str, state: UserGraph, turn_cap: int) -> None:
        self.store = store
        self.state = state
        self.turn_cap = turn_cap
        self.passages: list[MemoryItem] = []
        self.facts: list[MemoryItem] = []
        #: New entities: key -> (display name, turns mentioning it, first turn).
        self.entities: dict[str, tuple[str, list[int], Turn]] = {}
        #: Known entities whose provenance gains turns once the batch is stored.
        self.extended: dict[str, list[int]] = {}
        #: What each passage is embedded as (its turn's text).
        self.passage_texts: list[str] = []

    def add_turn(self, turn: Turn, facts: Sequence[Fact], *, passage: bool) -> None:
        """Add a turn's passage (unless it exists already), its facts and its entities."""
        if passage:
            # Derived from the turn: a write resumed after a crash writes the same vectors.
            passage_id = derived_item_id(self.store, turn.user_id, "passage", turn.id)
            found = names(turn.text)
            for name in found:
                self.mention(name, turn)
        else:
            passage_id = self.state.graph.nodes[self.state.turns[turn.id]]["item"]
        for fact in facts:
            item = fact_item(self.store, fact, turn, passage_id)
            if item is not None:
                self.facts.append(item)
                self.mention(fact.subject, turn)
                self.mention(item.metadata["object"], turn)
        if passage:
            meta = {
                "speaker": turn.speaker,
                "timestamp": turn.timestamp.isoformat(),
                "mentions": list(dict.fromkeys(k for k in map(normalise, found) if k)),
            }
            # Its relative dates written down, as the turns structure writes them: "When
            # did ...?" finds its answer in the text ("yesterday [7 May 2023]").
            text = f"{turn.speaker}: {resolve_relative_dates(turn.text, turn.timestamp)}"
            self.passages.append(
                new_item(self.store, "passage", turn, text, meta, item_id=passage_id)
            )
            # Embedded without the "speaker:" prefix: the same text every other structure
            # embeds for the turn, so the shared embedding cache answers it.
            self.passage_texts.append(turn.text)

    def mention(self, name: str, turn: Turn) -> None:
        """Record that ``turn`` mentions an entity; a new one becomes an item of this batch."""
        key = normalise(name)
        if not key:
            return
        if key in self.entities:
            turn_ids = self.entities[key][1]
            if turn.id not in turn_ids and len(turn_ids) < self.turn_cap:
                turn_ids.append(turn.id)
        elif key in self.state.entities:
            known = self.state.graph.nodes[entity_node(key)]["turns"]
            added = self.extended.setdefault(key, [])
            if turn.id not in known + added and len(known) + len(added) < self.turn_cap:
                added.append(turn.id)
        else:
            self.entities[key] = (name, [turn.id], turn)

    def texts(self) -> list[str]:
        """Return what to embed: passages, facts, then new entity names."""
        entities = [name for name, _, _ in self.entities.values()]
        return self.passage_texts + [i.text for i in self.facts] + entities

    def entity_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Return the rows of :meth:`texts`'s embeddings that belong to new entities."""
        return vectors[len(self.passages) + len(self.facts) :]

    def items(
        self, vectors: np.ndarray, synonyms: dict[str, dict[str, float]]
    ) -> tuple[list[MemoryItem], np.ndarray]:
        """Return the items to store (passages, entities, facts) and their embeddings."""
        entities = [
            replace(
                new_item(
                    self.store,
                    "entity",
                    first,
                    name,
                    {"key": key, "synonyms": synonyms[key]},
                    # With the turn that first named it: a forgotten user's entity ids
                    # are never handed to the entities they name again later.
                    item_id=derived_item_id(self.store, first.user_id, "entity", key, first.id),
                ),
                source_turn_ids=tuple(turn_ids),
            )
            for key, (name, turn_ids, first) in self.entities.items()
        ]
        passages, facts = len(self.passages), len(self.facts)
        embeddings = np.concatenate(
            [vectors[:passages], self.entity_vectors(vectors), vectors[passages : passages + facts]]
        )
        return self.passages + entities + self.facts, embeddings


def fact_item(store: str, fact: Fact, turn: Turn, passage_id: str) -> MemoryItem | None:
    """Return the item of an extracted fact (``None`` when a side normalises to nothing).

    An ending that names only its value ("Pixel passed away") is no edge between two
    entities: the fact ledger keeps it, and the passage carries the news.
    """
    if fact.attribute == ENDED:
        return None
    obj = object_name(fact)
    subject_key, object_key = normalise(fact.subject), normalise(obj)
    if not subject_key or not object_key:
        return None
    meta = {
        "subject": fact.subject,
        "predicate": fact.attribute,
        "object": obj,
        "value": fact.value,
        "subject_key": subject_key,
        "object_key": object_key,
        "stated": fact.stated,
        "polarity": fact.polarity,
        "generic": fact.generic,
        "single_valued": fact.single_valued,
        "speaker": fact.speaker,
        "passage": passage_id,
    }
    return new_item(store, "fact", turn, fact.render(), meta)


def fact_key(fact: Fact | MemoryItem) -> tuple[str, str, str, bool]:
    """Identify a fact by subject, predicate, value and polarity (an item or an extraction)."""
    if isinstance(fact, MemoryItem):
        meta = fact.metadata
        return (meta["subject_key"], meta["predicate"], normalise(meta["value"]), meta["polarity"])
    return (fact.subject_key, fact.attribute, fact.value_key, fact.polarity)


def new_item(
    store: str,
    kind: str,
    turn: Turn,
    text: str,
    metadata: dict[str, Any],
    *,
    item_id: str | None = None,
) -> MemoryItem:
    """Return an item derived from ``turn``, valid from the turn's dialogue time."""
    return MemoryItem(
        id=item_id or new_item_id(),
        store=store,
        kind=kind,
        user_id=turn.user_id,
        agent_id=turn.agent_id,
        session_id=turn.session_id,
        text=text,
        source_turn_ids=(turn.id,),
        valid_from=turn.timestamp,
        metadata=metadata,
    )


def names(text: str) -> list[str]:
    """Return the proper nouns of ``text``, adjacent ones joined ("New York City")."""
    found: list[str] = []
    for token in proper_nouns(text):
        if found and f"{found[-1]} {token}" in text:
            found[-1] = f"{found[-1]} {token}"
        else:
            found.append(token)
    return found


def object_name(fact: Fact) -> str:
    """Return a fact's object entity: the name in a relative's "sister Ana", else the value."""
    if fact.attribute == "relative":
        words = fact.value.split()
        for position, word in enumerate(words[1:], start=1):
            if word[:1].isupper():
                return " ".join(words[position:])
    return fact.value


__all__ = ["Batch", "fact_item", "fact_key", "names", "new_item", "object_name"]
