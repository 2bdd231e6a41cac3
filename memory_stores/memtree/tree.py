"""One user's MemTree in memory: nodes, routing, leaf expansion and extractive aggregation.

Nothing here touches storage: :class:`~memory_stores.memtree.store.MemTreeStore` persists
what changes and rebuilds a :class:`Tree` from the records database with
:meth:`Tree.from_items`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from agentmem.storage.records import new_item_id
from agentmem.text import (
    content_words,
    informativeness,
    select_central,
    split_sentences,
    truncate_words,
)
from agentmem.types import MemoryItem, Turn

#: About how many words one picked sentence adds to an internal node's text.
WORDS_PER_PICK = 20


@dataclass(eq=False)
class Node:
    """One tree node as cached in memory (the records database holds the truth).

    A leaf's ``vector`` is its text's embedding; an internal node's is the running sum over
    its current descendant leaves (``count`` of them), whose direction routes and retrieves.
    """

    id: str
    parent: str | None
    depth: int
    leaf: bool
    text: str
    valid_from: datetime | None
    vector: np.ndarray
    current: bool = True
    count: int = 0
    turns: set[int] = field(default_factory=set)
    children: list[str] = field(default_factory=list)
    reps: list[str] = field(default_factory=list)  # leaves whose sentences make the text
    speaker: str = ""
    snippet: str = ""  # a leaf's most informative sentence, with its speaker
    weight: float = 0.0  # the informativeness of that sentence
    terms: tuple[str, ...] = ()  # a leaf's distinct content words, for keywords
    agent_id: str | None = None
    session_id: str | None = None
    stored: np.ndarray | None = None  # the vector the index holds
    dirty: bool = False  # waiting for the model to rewrite its text
    base_text: str | None = None  # the last text the model wrote
    added: list[str] = field(default_factory=list)  # leaves added since then
    removed: list[str] = field(default_factory=list)  # leaves invalidated since then
    # (the vector it was computed from, the unit direction): ``vector`` is only ever
    # replaced, never changed in place, so the identity tells whether it is still valid.
    _unit: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def direction(self) -> np.ndarray:
        """Return the unit routing vector."""
        if self.leaf:
            return self.vector
        cached = self._unit
        if cached is not None and cached[0] is self.vector:
            return cached[1]
        norm = float(np.linalg.norm(self.vector))
        unit = self.vector / norm if norm else self.vector
        self._unit = (self.vector, unit)
        return unit

    @property
    def body(self) -> str:
        """Return a leaf's text without its ``speaker:`` prefix."""
        return self.text.removeprefix(f"{self.speaker}: ")


def snippet(speaker: str, text: str) -> tuple[str, float]:
    """Return the most informative sentence of ``text`` (prefixed by speaker) and its score."""
    sentences = split_sentences(text) or [text]
    best = max(sentences, key=informativeness)
    return f"{speaker}: {best}", informativeness(best)


@dataclass
class Insertion:
    """What one insert changed: the new leaf, the nodes it passed, the nodes it created."""

    leaf: Node
    path: list[Node]
    created: list[Node]
    moved: Node | None = None  # a leaf pushed down by an expansion


@dataclass
class Tree:
    """One user's tree below the virtual root (which holds no content)."""

    user_id: str
    nodes: dict[str, Node] = field(default_factory=dict)
    top: list[str] = field(default_factory=list)  # the root's children
    depth: int = 0
    turn_ids: set[int] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)  # nodes the index lacks or has stale

    def children(self, node: Node | None) -> list[str]:
        """Return the child id list of ``node`` (``None`` is the root)."""
        return self.top if node is None else node.children

    def ancestors(self, node: Node) -> list[Node]:
        """Return the node's ancestors, nearest first (the root left out)."""
        found = []
        while node.parent is not None and node.parent in self.nodes:
            node = self.nodes[node.parent]
            found.append(node)
        return found

    def insert(
        self,
        turn: Turn,
        vector: np.ndarray,
        threshold: Callable[[int, int], float],
        *,
        duplicate: float = 1.0,
        track: bool = False,
    ) -> Insertion:
        """Route a turn's leaf down from the root and attach it (MemTree's insert).

        Args:
            turn: The turn the leaf holds.
            vector: The embedding of ``turn.text`` (the leaf holds ``turn.render()``).
            threshold: ``θ(depth, tree_depth)``, the similarity needed to descend below a
                node at ``depth`` (the root is 0).
            duplicate: A leaf at least this similar is a restatement: the new leaf becomes its
                sibling instead of expanding it, so repeated lines ("Ugh, sorry.") do not
                grow a chain one level deeper per repetition.
            track: Record the change on the nodes passed, for a later model rewrite.
        """
        line, weight = snippet(turn.speaker, turn.text)
        leaf = Node(
            id=new_item_id(),
            parent=None,
            depth=1,
            leaf=True,
            text=turn.render(),
            valid_from=turn.timestamp,
            vector=np.asarray(vector, dtype=np.float32),
            turns={turn.id},
            speaker=turn.speaker,
            snippet=line,
            weight=weight,
            terms=tuple(dict.fromkeys(content_words(turn.text))),
            agent_id=turn.agent_id,
            session_id=turn.session_id,
        )
        done = Insertion(leaf, [], [])
        parent: Node | None = None
        while True:
            kids = [self.nodes[c] for c in self.children(parent) if self.nodes[c].current]
            if not kids:
                break
            similarities = np.stack([k.direction for k in kids]) @ leaf.vector
            best = int(np.argmax(similarities))
            depth = parent.depth if parent is not None else 0
            if float(similarities[best]) < threshold(depth, self.depth):
                break
            if kids[best].leaf and float(similarities[best]) >= duplicate:
                break
            parent = kids[best]
            if parent.leaf:
                done.moved = parent
                parent = self._expand(parent)
                if track:
                    parent.added.append(done.moved.id)
                done.created.append(parent)
                done.path.append(parent)
                break
            done.path.append(parent)
        leaf.parent = parent.id if parent is not None else None
        leaf.depth = parent.depth + 1 if parent is not None else 1
        self.children(parent).append(leaf.id)
        self.nodes[leaf.id] = leaf
        self.depth = max(self.depth, leaf.depth)
        self.turn_ids.add(turn.id)
        done.created.append(leaf)
        for node in done.path:
            node.vector = node.vector + leaf.vector
            node.count += 1
            node.turns.add(turn.id)
            if track:
                node.dirty = True
                node.added.append(leaf.id)
        return done

    def _expand(self, leaf: Node) -> Node:
        """Put a new internal node in the leaf's place, with the leaf as its first child."""
        inner = Node(
            id=new_item_id(),
            parent=leaf.parent,
            depth=leaf.depth,
            leaf=False,
            text="",
            valid_from=leaf.valid_from,
            vector=leaf.vector.copy(),
            count=1,
            turns=set(leaf.turns),
            children=[leaf.id],
        )
        siblings = self.children(self.nodes.get(leaf.parent) if leaf.parent else None)
        siblings[siblings.index(leaf.id)] = inner.id
        leaf.parent = inner.id
        leaf.depth += 1
        self.nodes[inner.id] = inner
        self.depth = max(self.depth, leaf.depth)
        return inner

    def remove_leaf(self, leaf: Node) -> list[Node]:
        """Take an invalidated leaf out of its ancestors' sums; return them, nearest first."""
        leaf.current = False
        ancestors = self.ancestors(leaf)
        for ancestor in ancestors:
            ancestor.vector = ancestor.vector - leaf.vector
            ancestor.count -= 1
            ancestor.turns -= leaf.turns
        return ancestors

    def aggregate(self, node: Node, limit: int) -> tuple[str, list[str]]:
        """Merge the children's representative leaves into an extractive text.

        The pool is every current leaf child plus the representatives of every internal
        child; the most central yet diverse, informative ones are kept (about one per
        ``WORDS_PER_PICK`` words of ``limit``), in dialogue order. Returns the text and the
        ids of the leaves it quotes.
        """
        pool: dict[str, Node] = {}
        for child_id in node.children:
            child = self.nodes[child_id]
            for rep_id in [child.id] if child.leaf else child.reps:
                rep = self.nodes.get(rep_id)
                if rep is not None and rep.current:
                    pool[rep.id] = rep
        if not pool:
            return node.text, node.reps
        leaves = list(pool.values())
        chosen = select_central(
            np.stack([leaf.vector for leaf in leaves]),
            max(1, limit // WORDS_PER_PICK),
            weights=[leaf.weight + 0.1 for leaf in leaves],
        )
        quoted = sorted((leaves[i] for i in chosen), key=lambda leaf: min(leaf.turns))
        share = max(limit // len(quoted), 5)
        # What was said, without a keyword label: a label reads as no content, and carries
        # a word (a name, a value) that the quoted sentences may no longer say.
        body = " ".join(truncate_words(leaf.snippet, share) for leaf in quoted)
        return body, [leaf.id for leaf in quoted]

    @classmethod
    def from_items(
        cls, user_id: str, items: Iterable[MemoryItem], vectors: Mapping[str, np.ndarray]
    ) -> Tree:
        """Rebuild a tree from its stored node items and vectors (leaves' are required).

        Internal nodes' sums, counts and provenance are recomputed from their current
        leaves, so they always agree with what the leaves say.
        """
        tree = cls(user_id)
        dimension = len(next(iter(vectors.values()))) if vectors else 0
        for item in items:
            meta = item.metadata
            leaf = bool(meta.get("leaf"))
            node = Node(
                id=item.id,
                parent=meta.get("parent"),
                depth=int(meta.get("depth", 1)),
                leaf=leaf,
                text=item.text,
                valid_from=item.valid_from,
                vector=vectors[item.id] if leaf else np.zeros(dimension, dtype=np.float32),
                current=item.current,
                turns=set(item.source_turn_ids) if leaf else set(),
                reps=list(meta.get("reps") or []),
                speaker=str(meta.get("speaker", "")),
                agent_id=item.agent_id,
                session_id=item.session_id,
                stored=vectors.get(item.id),
                dirty=bool(meta.get("dirty")),
                base_text=meta.get("base_text"),
                added=list(meta.get("added") or []),
                removed=list(meta.get("removed") or []),
            )
            if leaf:
                node.snippet, node.weight = snippet(node.speaker, node.body)
                node.terms = tuple(dict.fromkeys(content_words(node.body)))
                tree.turn_ids |= node.turns
            tree.nodes[node.id] = node
        for node in tree.nodes.values():
            tree.children(tree.nodes.get(node.parent) if node.parent else None).append(node.id)
            tree.depth = max(tree.depth, node.depth)
        for node in tree.nodes.values():
            if node.leaf and node.current:
                for ancestor in tree.ancestors(node):
                    ancestor.vector = ancestor.vector + node.vector
                    ancestor.count += 1
                    ancestor.turns |= node.turns
        return tree


__all__ = ["Insertion", "Node", "Tree", "snippet"]
