"""MemTree nodes as items and vectors: each user's cached tree, its rows and its vector batches.

The in-memory :class:`~agentmem.stores.memtree.tree.Tree` is the working copy; the records
database holds every node as an item (its text, provenance and tree metadata), and the
vector index holds each current node's vector, written in batches (see the package
docstring for why).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np

from agentmem.protocols import StoreContext
from agentmem.storage.items import ItemIndex, vector_metadata
from agentmem.storage.records import ItemUpdate
from agentmem.stores.memtree.tree import Node, Tree
from agentmem.types import MemoryItem


def node_metadata(node: Node) -> dict[str, Any]:
    """Return what a node's item records about its place in the tree."""
    meta: dict[str, Any] = {
        "parent": node.parent,
        "depth": node.depth,
        "children": len(node.children),
        "leaf": node.leaf,
    }
    if node.leaf:
        meta["speaker"] = node.speaker
    else:
        meta |= {"leaves": node.count, "reps": node.reps, "dirty": node.dirty}
        meta |= {"added": node.added, "removed": node.removed, "base_text": node.base_text}
    return meta


def stale(nodes: Iterable[Node], tolerance: float) -> list[Node]:
    """Return the current internal nodes whose stored vector drifted beyond ``tolerance``."""
    return [
        n
        for n in nodes
        if n.current
        and not n.leaf
        and n.count > 0
        and (n.stored is None or float(n.direction @ n.stored) < 1 - tolerance)
    ]


class NodeStorage:
    """Keeps each user's tree in memory and its nodes in the records and the vector index.

    Not thread-safe on its own: :class:`~agentmem.stores.memtree.MemTreeStore` calls it
    under its lock.

    Args:
        context: The core services.
        name: The structure's name in records and results.
        index: The structure's items in the records and the vector index.
    """

    def __init__(self, context: StoreContext, name: str, index: ItemIndex) -> None:
        self.context = context
        self.name = name
        self.index = index
        self._trees: dict[str, Tree] = {}

    def tree(self, user_id: str) -> Tree:
        """Return the user's cached tree, rebuilding it from storage on first use."""
        tree = self._trees.get(user_id)
        if tree is None:
            items = self.context.records.store_items(
                self.name, user_id, kind="node", current_only=False
            )
            vectors = self.context.vectors.get(self.name, user_id, [i.id for i in items])
            unindexed = {i.id for i in items if i.current and i.id not in vectors}
            lost = [i for i in items if i.metadata.get("leaf") and i.id not in vectors]
            if lost:  # a crash before pending vectors were written
                speakers = [str(i.metadata.get("speaker", "")) for i in lost]
                embedded = self.index.embed(
                    [i.text.removeprefix(f"{s}: ") for i, s in zip(lost, speakers, strict=True)]
                )
                vectors.update(zip([i.id for i in lost], embedded, strict=True))
            tree = self._trees[user_id] = Tree.from_items(user_id, items, vectors)
            tree.pending = unindexed
        return tree

    def cached(self, user_id: str) -> Tree | None:
        """Return the user's tree if it is loaded (without loading it)."""
        return self._trees.get(user_id)

    def drop(self, user_id: str) -> None:
        """Forget the user's cached tree; the next use rebuilds it from what was persisted."""
        self._trees.pop(user_id, None)

    def item(self, tree: Tree, node: Node) -> MemoryItem:
        """Return the item that stores ``node``."""
        return MemoryItem(
            id=node.id,
            store=self.name,
            kind="node",
            user_id=tree.user_id,
            text=node.text,
            source_turn_ids=tuple(sorted(node.turns)),
            valid_from=node.valid_from,
            agent_id=node.agent_id,
            session_id=node.session_id,
            metadata=node_metadata(node),
        )

    def change(self, node: Node, reason: str, at: datetime | None) -> ItemUpdate:
        """Return the update that writes ``node``'s text, provenance and metadata."""
        return ItemUpdate(
            node.id,
            text_value=None if node.leaf else node.text,
            metadata=node_metadata(node),
            source_turn_ids=None if node.leaf else sorted(node.turns),
            reason=reason,
            at=at,
        )

    def save(self, node: Node, reason: str, at: datetime | None) -> MemoryItem:
        """Write a node's text, provenance and metadata; a text change enters its history."""
        return self.context.records.update_items([self.change(node, reason, at)])[0]

    def flush(self, tree: Tree, also: Iterable[Node] = ()) -> None:
        """Write the pending vectors (and ``also``) to the index in one call."""
        waiting = [tree.nodes[i] for i in tree.pending if i in tree.nodes]
        self.upsert(tree, list({n.id: n for n in [*waiting, *also] if n.current}.values()))
        tree.pending.clear()

    def upsert(self, tree: Tree, nodes: list[Node]) -> None:
        """Write the nodes' current vectors (and their validity metadata) to the index."""
        if not nodes:
            return
        self.context.vectors.upsert(
            self.name,
            tree.user_id,
            [n.id for n in nodes],
            np.stack([n.direction for n in nodes]),
            [vector_metadata(self.item(tree, n)) for n in nodes],
        )
        for node in nodes:
            node.stored = node.direction.copy()


__all__ = ["NodeStorage", "node_metadata", "stale"]
