"""Editing a MemTree: invalidating, deleting and changing nodes, and the tree's outline.

Ending a leaf re-aggregates its ancestors from their remaining current children, and an
ancestor left with no current memory below is invalidated too; ending an internal node
leaves its ancestors as they are. Editing a leaf re-embeds it and moves its ancestors'
vector sums with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from agentmem.errors import InputError
from agentmem.protocols import RecordStore
from agentmem.storage.records import ItemUpdate
from agentmem.stores.memtree.persistence import NodeStorage, stale
from agentmem.stores.memtree.tree import Node, Tree, snippet
from agentmem.text import content_words
from agentmem.types import Change, ChangeKind, MemoryItem, Outline


class TreeEditor:
    """Ends and edits the nodes of users' trees, keeping their ancestors in step.

    Args:
        storage: The trees, their items and their vectors.
        word_limit: The word limit of an internal node at a depth.
        vector_batch: Write waiting vectors to the index once this many wait.
        lock: The store's lock, held around every edit.
    """

    def __init__(
        self,
        storage: NodeStorage,
        word_limit: Callable[[int], int],
        vector_batch: int,
        lock: threading.RLock,
    ) -> None:
        self.storage = storage
        self.word_limit = word_limit
        self.vector_batch = vector_batch
        self._lock = lock
        self._index = storage.index
        self._name = storage.name

    @property
    def _records(self) -> RecordStore:
        return self.storage.context.records

    @property
    def _model_builds(self) -> bool:
        """Whether changed ancestors are also marked for the model's rewrite."""
        return self.storage.context.model is not None

    def delete(
        self, item_ids: Sequence[str], *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Delete nodes: a leaf leaves its ancestors' texts and vectors; an internal node
        takes every leaf below it along (what it said came only from them)."""
        with self._lock:
            mine = [i for i in self._records.items(item_ids) if i.store == self._name]
            below: list[str] = []
            for item in mine:
                node = self.storage.tree(item.user_id).nodes.get(item.id)
                if node is not None and not node.leaf:
                    below += [
                        leaf.id for leaf in self._leaves(self.storage.tree(item.user_id), node)
                    ]
            ids = [i.id for i in mine] + [i for i in below if i not in item_ids]
            return self.end(ids, reason, at=at, delete=True)

    def _leaves(self, tree: Tree, node: Node) -> list[Node]:
        """Return the current leaves below ``node``."""
        found, stack = [], list(node.children)
        while stack:
            child = tree.nodes.get(stack.pop())
            if child is None or not child.current:
                continue
            if child.leaf:
                found.append(child)
            stack += child.children
        return found

    def update(
        self, item_id: str, text: str, *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Change a node's text.

        A leaf is re-embedded: its ancestors' vectors take the new one in place of the
        old, and the ancestors that quote it are re-aggregated. An internal node's vector
        is the sum of its leaves', so only its text changes (and the model, when there is
        one, rewrites from it next time).
        """
        with self._lock:
            item = self._index.editable(item_id)
            tree = self.storage.tree(item.user_id)
            node = tree.nodes.get(item.id)
            if node is None:  # pragma: no cover - every stored node is in the rebuilt tree
                raise InputError(f"memory item {item_id!r} is not in the memory tree")
            self.storage.flush(tree)
            changes: list[Change] = []
            if node.leaf:
                body = text.removeprefix(f"{node.speaker}: ") if node.speaker else text
                vector = np.asarray(self._index.embed([body])[0], dtype=np.float32)
                ancestors = tree.ancestors(node)
                for ancestor in ancestors:
                    ancestor.vector = ancestor.vector - node.vector + vector
                node.vector, node.text = vector, text
                node.snippet, node.weight = snippet(node.speaker, node.body)
                node.terms = tuple(dict.fromkeys(content_words(node.body)))
                updated = self._index.update(item, text, reason=reason, at=at, embedding=vector)
                node.stored = vector.copy()
                changes.append(Change("UPDATE", updated, reason))
                changes += self._reaggregate(
                    tree, ancestors, f"a memory below was edited: {reason}", at
                )
            else:
                node.text = text
                if self._model_builds:
                    node.base_text = text
                changes.append(Change("UPDATE", self.storage.save(node, reason, at), reason))
            return changes

    def _reaggregate(
        self, tree: Tree, ancestors: list[Node], reason: str, at: datetime | None
    ) -> list[Change]:
        """Rewrite the current ``ancestors`` (nearest first) from their children."""
        updates = []
        for ancestor in ancestors:
            if ancestor.current and not ancestor.leaf:
                ancestor.text, ancestor.reps = tree.aggregate(
                    ancestor, self.word_limit(ancestor.depth)
                )
                updates.append(self.storage.change(ancestor, reason, at))
        tree.pending.update(n.id for n in stale(ancestors, 0.0))
        return [Change("UPDATE", i, reason) for i in self._records.update_items(updates)]

    def end(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
        delete: bool = False,
    ) -> list[Change]:
        """Invalidate (or delete) nodes; re-aggregate the ancestors of the leaves among them."""
        with self._lock:
            mine = [i for i in self._records.items(item_ids) if i.store == self._name]
            for user_id in {i.user_id for i in mine}:
                # Load before the change, so the sums still count it; the index must hold
                # every vector whose validity metadata is about to change.
                self.storage.flush(self.storage.tree(user_id))
            ids = [i.id for i in mine]
            if delete:
                changed = self._index.delete(ids, reason, at=at)
            else:
                changed = self._index.invalidate(ids, reason, at=at, superseded_by=superseded_by)
            kind: ChangeKind = "DELETE" if delete else "SUPERSEDE"
            changes = [Change(kind, item, reason) for item in changed]
            # Internal nodes first: a deleted node is not re-aggregated from what is left.
            for item in changed:
                node = self.storage.tree(item.user_id).nodes.get(item.id)
                if node is not None and not node.leaf:
                    node.current = False
            for item in changed:
                tree = self.storage.tree(item.user_id)
                node = tree.nodes.get(item.id)
                if node is None or not node.leaf or not node.current:
                    continue
                node.current = False
                changes += self._drop_leaf(tree, node, reason, item.invalid_at)
            return changes

    def _drop_leaf(self, tree: Tree, leaf: Node, reason: str, at: datetime | None) -> list[Change]:
        """Re-aggregate an invalidated leaf's ancestors; invalidate those left empty."""
        ancestors = tree.remove_leaf(leaf)
        emptied: list[str] = []
        changes: list[ItemUpdate] = []
        for ancestor in ancestors:  # nearest first: a parent quotes its children
            if self._model_builds:
                ancestor.dirty = True
                ancestor.removed.append(leaf.id)
            if ancestor.count <= 0 and ancestor.current:
                ancestor.current = False
                emptied.append(ancestor.id)
            elif ancestor.current:
                limit = self.word_limit(ancestor.depth)
                ancestor.text, ancestor.reps = tree.aggregate(ancestor, limit)
                changes.append(
                    self.storage.change(
                        ancestor, f"re-aggregated after an invalidation: {reason}", at
                    )
                )
        done = [
            Change("UPDATE", item, item_reason)
            for item, item_reason in zip(
                self._records.update_items(changes),
                [c.reason for c in changes],
                strict=True,
            )
        ]
        if emptied:
            why = "every memory below it is no longer current"
            done += [
                Change("SUPERSEDE", item, why)
                for item in self._index.invalidate(emptied, why, at=at)
            ]
        # Retrieval ranks with the in-memory means; the index catches up in the next batch.
        tree.pending.update(n.id for n in stale(ancestors, 0.0))
        if len(tree.pending) >= self.vector_batch:
            self.storage.flush(tree)
        return done


def outline(records: RecordStore, name: str, user_id: str, *, limit: int = 200) -> list[Outline]:
    """Return the user's tree, top-level nodes first, ended nodes marked with ✗.

    The ``limit`` shallowest nodes are shown; a node whose parent is left out is shown
    at the top, so a partial tree still reads.
    """
    items = records.store_items(name, user_id, kind="node", current_only=False)
    items.sort(
        key=lambda i: (
            int(i.metadata.get("depth", 0)),
            i.created_at or i.valid_from or datetime.min,
        )
    )
    items = items[:limit]
    known = {i.id for i in items}
    below: dict[str | None, list[MemoryItem]] = {}
    for item in items:
        parent = item.metadata.get("parent")
        below.setdefault(parent if parent in known else None, []).append(item)

    def entry(item: MemoryItem) -> Outline:
        label = item.text
        leaves = item.metadata.get("leaves")
        if not item.metadata.get("leaf") and leaves is not None:
            label = f"{label}  ({leaves} memories below)"
        if not item.current:
            label = f"✗ {label}"
        return Outline(label, item, tuple(entry(c) for c in below.get(item.id, [])))

    return [entry(item) for item in below.get(None, [])]


__all__ = ["TreeEditor", "outline"]
