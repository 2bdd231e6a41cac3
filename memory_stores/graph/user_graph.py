"""One user's graph of record (networkx) and the PageRank engine that mirrors it.

Nodes are entities (``e:<normalised name>``) and passages (``p:<item id>``). Every edge
remembers why it exists: the facts that support it (each with its validity, shared with
the other edges the fact supports), whether the passage names the entity, and a synonym
similarity. What an edge conducts is derived from that support in a *view* (what is
current, everything, or what held at a time), so invalidation changes weights without
forgetting history; the current view is kept in the engine by weight deltas, other views
get a throwaway engine built on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import networkx as nx
import numpy as np

from agentmem.stores.graph.ppr import PersonalizedPageRank
from agentmem.types import MemoryItem

#: A validity view: ``None`` = what is current, ``"history"`` = everything, or a time.
View = datetime | str | None


@dataclass
class Life:
    """When a node or fact holds (shared by every edge a fact supports)."""

    valid_from: datetime | None
    invalid_at: datetime | None = None

    def alive(self, view: View) -> bool:
        """Return whether it holds in ``view``."""
        if view is None:
            return self.invalid_at is None
        if isinstance(view, str):
            return True
        if self.valid_from is not None and self.valid_from > view:
            return False
        return self.invalid_at is None or self.invalid_at > view


def entity_node(key: str) -> str:
    """Return the graph node of an entity."""
    return f"e:{key}"


def passage_node(item_id: str) -> str:
    """Return the graph node of a passage."""
    return f"p:{item_id}"


class UserGraph:
    """One user's graph of record (networkx) and its PageRank mirror.

    Edge attributes: ``facts`` (fact id -> :class:`Life`), ``mentioned`` (a passage names
    the entity), ``synonym`` (similarity) and ``weight`` (what the engine holds now).

    Args:
        engine: A factory of empty PageRank engines.
    """

    def __init__(self, engine: Callable[[], PersonalizedPageRank]) -> None:
        self.graph = nx.Graph()
        self.new_engine = engine
        self.engine: PersonalizedPageRank = engine()
        self.facts: dict[str, tuple[Life, list[tuple[str, str]]]] = {}
        self.entities: dict[str, str] = {}  # key -> item id
        self.nodes: dict[str, str] = {}  # item id -> node
        self.turns: dict[int, str] = {}  # turn id -> passage node
        self.speakers: set[str] = set()  # who said the passages
        self.passage_index: list[int] = []
        self.passage_nodes: list[str] = []
        self.version = 0
        self._view: tuple[tuple[View, int], PersonalizedPageRank] | None = None
        self._passages = np.zeros(0, dtype=np.int64)

    def add_node(self, item: MemoryItem) -> str:
        """Add an entity or passage node for ``item``; return the node."""
        if item.kind == "entity":
            node = entity_node(item.metadata["key"])
            self.entities[item.metadata["key"]] = item.id
            extra: dict[str, Any] = {"passages": 0, "turns": list(item.source_turn_ids)}
        else:
            node = passage_node(item.id)
            self.turns[item.source_turn_ids[0]] = node
            speaker = str(item.metadata.get("speaker", ""))
            extra = {"turn": item.source_turn_ids[0], "speaker": speaker}
            if speaker:
                self.speakers.add(speaker)
        life = Life(item.valid_from, item.invalid_at)
        self.graph.add_node(node, kind=item.kind, item=item.id, life=life, **extra)
        self.nodes[item.id] = node
        index = self.engine.add_node(node)
        if item.kind == "passage":
            self.passage_index.append(index)
            self.passage_nodes.append(node)
        self.version += 1
        return node

    def support(
        self,
        u: str,
        v: str,
        *,
        fact: tuple[str, Life] | None = None,
        mention: bool = False,
        synonym: float = 0.0,
    ) -> None:
        """Add support to the edge ``u``–``v`` (created if new) and update its weight."""
        if u == v or u not in self.graph or v not in self.graph:
            return
        data = self.graph.get_edge_data(u, v)
        if data is None:
            self.graph.add_edge(u, v, facts={}, mentioned=False, synonym=0.0, weight=0.0)
            data = self.graph.edges[u, v]
            ends = [self.graph.nodes[u], self.graph.nodes[v]]
            if {end["kind"] for end in ends} == {"entity", "passage"}:
                next(end for end in ends if end["kind"] == "entity")["passages"] += 1
        if fact is not None:
            data["facts"][fact[0]] = fact[1]
        data["mentioned"] = data["mentioned"] or mention
        data["synonym"] = max(data["synonym"], synonym)
        self.refresh(u, v)

    def add_fact(self, item: MemoryItem) -> None:
        """Add a fact's relation edge and its passage's context edges."""
        meta = item.metadata
        subject, obj = entity_node(meta["subject_key"]), entity_node(meta["object_key"])
        passage = passage_node(meta["passage"])
        life = Life(item.valid_from, item.invalid_at)
        edges = [(subject, obj)] + [(passage, end) for end in dict.fromkeys((subject, obj))]
        self.facts[item.id] = (life, edges)
        for u, v in edges:
            self.support(u, v, fact=(item.id, life))

    def weight(self, u: str, v: str, data: dict[str, Any], view: View) -> float:
        """Return what the edge conducts in ``view``: zero once its support is gone."""
        nodes = self.graph.nodes
        if not (nodes[u]["life"].alive(view) and nodes[v]["life"].alive(view)):
            return 0.0
        facts = sum(1 for life in data["facts"].values() if life.alive(view))
        if nodes[u]["kind"] == "passage" or nodes[v]["kind"] == "passage":
            return 1.0 if facts or data["mentioned"] else 0.0
        return facts + data["synonym"]

    def refresh(self, u: str, v: str) -> None:
        """Push the change of an edge's current weight to the engine."""
        data = self.graph.edges[u, v]
        weight = self.weight(u, v, data, None)
        delta = weight - data["weight"]
        if delta:
            data["weight"] = weight
            index = self.engine.index
            self.engine.add_weight(index(u), index(v), delta)  # type: ignore[arg-type]
        self.version += 1

    def invalidate(self, item: MemoryItem) -> None:
        """Stop an invalidated fact, passage or entity from conducting (history stays)."""
        if item.id in self.facts:
            life, edges = self.facts[item.id]
        elif item.id in self.nodes:
            node = self.nodes[item.id]
            life = self.graph.nodes[node]["life"]
            edges = [(node, other) for other in self.graph.neighbors(node)]
        else:
            return
        life.invalid_at = item.invalid_at
        for u, v in edges:
            if self.graph.has_edge(u, v):
                self.refresh(u, v)

    def view_engine(self, view: View) -> PersonalizedPageRank:
        """Return an engine for a past or historical view (cached until the next change)."""
        if view is None:
            return self.engine
        key = (view, self.version)
        if self._view is not None and self._view[0] == key:
            return self._view[1]
        engine: PersonalizedPageRank = self.new_engine()
        engine.add_nodes(self.engine.labels)
        index = self.engine.index
        edges = [
            (index(u), index(v), self.weight(u, v, data, view))
            for u, v, data in self.graph.edges(data=True)
        ]
        if edges:
            us, vs, ws = zip(*edges, strict=True)
            engine.add_weights(np.array(us), np.array(vs), np.array(ws))
        self._view = (key, engine)
        return engine

    def passages(self) -> np.ndarray:
        """Return the engine indices of the passage nodes (cached until one is added)."""
        if len(self._passages) != len(self.passage_index):
            self._passages = np.asarray(self.passage_index, dtype=np.int64)
        return self._passages


__all__ = ["Life", "UserGraph", "View", "entity_node", "passage_node"]
