"""The MemTree store: persists each user's tree as items and vectors, and builds it.

See the package docstring for the algorithm and the documented deviations from the paper.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from agentmem.building import BuildStats, retry_work, structured_call
from agentmem.errors import InputError, ModelError
from agentmem.prompts.memtree import (
    AGGREGATE_SCHEMA,
    NodeChange,
    aggregate_messages,
    validate_aggregation,
)
from agentmem.protocols import StoreContext
from agentmem.storage.items import ItemIndex, vector_metadata, visible
from agentmem.storage.records import ItemUpdate, PendingWorkRow
from agentmem.stores.memtree.tree import Node, Tree, snippet
from agentmem.text import content_words
from agentmem.types import Change, ChangeKind, MemoryItem, Outline, Query, Recalled, Turn

logger = logging.getLogger(__name__)

#: How many added and removed memories of one node the model is shown at most.
MAX_LISTED = 20

#: At a session end, rewrite internal vectors that drifted at all (cosine below 0.99).
SESSION_DRIFT = 0.01


class MemTreeStore:
    """A dynamic tree of aggregated memories per user (MemTree).

    Args:
        context: The core services; with ``context.model`` set, the nodes an insert or an
            invalidation changed are rewritten by the model at the session end.
        name: The structure's name in records and results.
        base_threshold: ``θ0``, the similarity needed to descend below the root.
        threshold_growth: ``λ``, how much stricter the threshold gets with depth.
        top_words: The word limit of a depth-1 node's extractive text.
        words_per_level: How many more words each level further down may hold.
        max_words: The word limit of any internal node.
        vector_drift: Rewrite an internal node's stored vector once its cosine with the
            current mean of its leaves falls below ``1 - vector_drift`` (at session ends, once
            it falls below ``1 - SESSION_DRIFT``).
        duplicate: A new memory at least this similar to a leaf is a restatement: it joins
            the leaf as a sibling instead of expanding it one level deeper.
        vector_batch: Write new and drifted vectors to the index once this many wait (and
            at session ends); until then retrieval scores them in memory. 1 writes at once.
    """

    #: What :meth:`outline`'s ``focus`` takes (see ``Browsable``).
    focus_hint = ""

    def __init__(
        self,
        context: StoreContext,
        *,
        name: str = "memtree",
        base_threshold: float = 0.4,
        threshold_growth: float = 0.5,
        top_words: int = 40,
        words_per_level: int = 20,
        max_words: int = 120,
        vector_drift: float = 0.1,
        duplicate: float = 0.95,
        vector_batch: int = 16,
    ) -> None:
        self.name = name
        self.context = context
        self.base_threshold = base_threshold
        self.threshold_growth = threshold_growth
        self.top_words = top_words
        self.words_per_level = words_per_level
        self.max_words = max_words
        self.vector_drift = vector_drift
        self.duplicate = duplicate
        self.vector_batch = vector_batch
        self.stats = BuildStats()
        self._index = ItemIndex(context, name)
        self._trees: dict[str, Tree] = {}
        self._lock = threading.RLock()

    def threshold(self, depth: int, tree_depth: int) -> float:
        """Return ``θ(d) = θ0 · exp(λ · d / D)`` for a node at ``depth`` (the root is 0)."""
        return self.base_threshold * math.exp(self.threshold_growth * depth / max(tree_depth, 1))

    def word_limit(self, depth: int) -> int:
        """Return the word limit of an internal node at ``depth`` (1 = below the root)."""
        return min(self.max_words, self.top_words + self.words_per_level * max(depth - 1, 0))

    # -- writing ----------------------------------------------------------------------------

    def write(self, turns: Sequence[Turn]) -> list[Change]:
        """Insert one leaf per turn and re-aggregate the nodes it passed on the way down."""
        by_user: dict[str, dict[int, Turn]] = {}
        for turn in turns:
            by_user.setdefault(turn.user_id, {})[turn.id] = turn
        changed: list[Change] = []
        with self._lock:
            for user_id, group in by_user.items():
                tree = self._tree(user_id)
                # A resumed write may repeat turns already folded in.
                fresh = [t for t in group.values() if t.id not in tree.turn_ids]
                if not fresh:
                    continue
                # The utterance without its "speaker:" prefix: see the package docstring.
                vectors = self._index.embed([t.text for t in fresh])
                try:
                    changed += self._insert_all(tree, fresh, vectors)
                except Exception:
                    self._trees.pop(user_id, None)  # rebuild from what was persisted
                    raise
        return changed

    def _insert_all(self, tree: Tree, turns: list[Turn], vectors: np.ndarray) -> list[Change]:
        """Insert in memory, aggregate each changed node once, then persist in batches."""
        created: dict[str, Node] = {}
        touched: dict[str, datetime] = {}  # existing nodes to save, with the change's time
        track = self.context.model is not None
        for turn, vector in zip(turns, vectors, strict=True):
            done = tree.insert(turn, vector, self.threshold, duplicate=self.duplicate, track=track)
            created.update((n.id, n) for n in done.created)
            for node in [*done.path, *([done.moved] if done.moved else [])]:
                touched[node.id] = turn.timestamp
        nodes = [tree.nodes[i] for i in created.keys() | touched.keys()]
        # Children first: a parent quotes its children's representatives.
        for node in sorted((n for n in nodes if not n.leaf), key=lambda n: -n.depth):
            node.text, node.reps = tree.aggregate(node, self.word_limit(node.depth))
        new = list(created.values())
        stored = self.context.records.add_items(
            [self._item(tree, n) for n in new], reason="inserted into the memory tree"
        )
        aggregated = "aggregated new information below"
        updated = self.context.records.update_items(
            [
                self._change(tree.nodes[i], aggregated, at)
                for i, at in touched.items()
                if i not in created
            ]
        )
        # Vector writes cost ~5 ms a call whatever their size: gather them.
        stale = self._stale((n for n in nodes if n.id not in created), self.vector_drift)
        tree.pending.update(n.id for n in [*new, *stale])
        if len(tree.pending) >= self.vector_batch:
            self._flush(tree)
        return [Change("ADD", i, "inserted into the memory tree") for i in stored] + [
            Change("UPDATE", i, aggregated) for i in updated
        ]

    # -- persistence ------------------------------------------------------------------------

    def _metadata(self, node: Node) -> dict[str, Any]:
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

    def _item(self, tree: Tree, node: Node) -> MemoryItem:
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
            metadata=self._metadata(node),
        )

    def _save(self, node: Node, reason: str, at: datetime | None) -> MemoryItem:
        """Write a node's text, provenance and metadata; a text change enters its history."""
        return self.context.records.update_items([self._change(node, reason, at)])[0]

    def _change(self, node: Node, reason: str, at: datetime | None) -> ItemUpdate:
        return ItemUpdate(
            node.id,
            text_value=None if node.leaf else node.text,
            metadata=self._metadata(node),
            source_turn_ids=None if node.leaf else sorted(node.turns),
            reason=reason,
            at=at,
        )

    def _stale(self, nodes: Iterable[Node], tolerance: float) -> list[Node]:
        """Return the current internal nodes whose stored vector drifted beyond ``tolerance``."""
        return [
            n
            for n in nodes
            if n.current
            and not n.leaf
            and n.count > 0
            and (n.stored is None or float(n.direction @ n.stored) < 1 - tolerance)
        ]

    def _flush(self, tree: Tree, also: Iterable[Node] = ()) -> None:
        """Write the pending vectors (and ``also``) to the index in one call."""
        waiting = [tree.nodes[i] for i in tree.pending if i in tree.nodes]
        self._upsert(tree, list({n.id: n for n in [*waiting, *also] if n.current}.values()))
        tree.pending.clear()

    def _upsert(self, tree: Tree, nodes: list[Node]) -> None:
        """Write the nodes' current vectors (and their validity metadata) to the index."""
        if not nodes:
            return
        self.context.vectors.upsert(
            self.name,
            tree.user_id,
            [n.id for n in nodes],
            np.stack([n.direction for n in nodes]),
            [vector_metadata(self._item(tree, n)) for n in nodes],
        )
        for node in nodes:
            node.stored = node.direction.copy()

    def _tree(self, user_id: str) -> Tree:
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
                embedded = self._index.embed(
                    [i.text.removeprefix(f"{s}: ") for i, s in zip(lost, speakers, strict=True)]
                )
                vectors.update(zip([i.id for i in lost], embedded, strict=True))
            tree = self._trees[user_id] = Tree.from_items(user_id, items, vectors)
            tree.pending = unindexed
        return tree

    # -- reading, invalidation, erasure -----------------------------------------------------

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Return the ``k`` nodes of the collapsed tree (any level) most similar to the query.

        Nodes whose vectors still wait to be written are scored in memory and merged in. An
        internal node is returned only when it matches the query better than every leaf it
        quotes; otherwise its best quoted leaf stands in for it: the leaf says the part
        that matches in fewer tokens.
        """
        if query.embedding is None or k <= 0:
            return []
        target = np.asarray(query.embedding, dtype=np.float32)
        target = target / max(float(np.linalg.norm(target)), 1e-12)
        with self._lock:
            tree = self._trees.get(query.scope.user_id)
            waiting = [tree.nodes[i] for i in tree.pending if i in tree.nodes] if tree else []
            vectors = {n.id: n.direction.copy() for n in waiting}
        if not vectors:
            found = self._index.search(query, k)
        else:
            found = [
                r for r in self._index.search(query, k + len(vectors)) if r.item.id not in vectors
            ]
            for item in self.context.records.items(vectors, user_id=query.scope.user_id):
                if visible(item, query):
                    found.append(Recalled(item, float(vectors[item.id] @ target)))
        found = self._collapsed(found, target, query)
        return sorted(found, key=lambda r: r.score, reverse=True)[:k]

    def _collapsed(self, found: list[Recalled], target: np.ndarray, query: Query) -> list[Recalled]:
        """Put in place of each internal node its best quoted leaf, if that matches better."""
        user_id = query.scope.user_id
        reps = {
            r.item.id: [str(rep) for rep in r.item.metadata.get("reps") or []]
            for r in found
            if not r.item.metadata.get("leaf")
        }
        wanted = list(dict.fromkeys(rep for ids in reps.values() for rep in ids))
        if not wanted:
            return found
        with self._lock:
            tree = self._trees.get(user_id)
            known = {i: tree.nodes[i].direction for i in wanted if tree and i in tree.nodes}
        missing = [i for i in wanted if i not in known]
        if missing:
            known |= self.context.vectors.get(self.name, user_id, missing)
        similarity = {i: float(np.asarray(v, dtype=np.float32) @ target) for i, v in known.items()}
        best: dict[str, tuple[str, float]] = {}
        for recalled in found:
            scored = [(i, similarity[i]) for i in reps.get(recalled.item.id, []) if i in similarity]
            if scored:
                leaf, score = max(scored, key=lambda pair: pair[1])
                if score >= recalled.score:
                    best[recalled.item.id] = (leaf, score)
        leaves = {
            item.id: item
            for item in self.context.records.items(
                [leaf for leaf, _ in best.values()], user_id=user_id
            )
            if visible(item, query)
        }
        kept: dict[str, Recalled] = {}
        for recalled in found:
            if recalled.item.id in best:
                leaf, score = best[recalled.item.id]
                if leaf in leaves:
                    recalled = Recalled(leaves[leaf], score)
            known_one = kept.get(recalled.item.id)
            if known_one is None or recalled.score > known_one.score:
                kept[recalled.item.id] = recalled
        return list(kept.values())

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
    ) -> None:
        """Mark nodes invalid; re-aggregate the ancestors of invalidated leaves."""
        self._end(item_ids, reason, at=at, superseded_by=superseded_by)

    def delete(
        self, item_ids: Sequence[str], *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Delete nodes: a leaf leaves its ancestors' texts and vectors; an internal node
        takes every leaf below it along (what it said came only from them)."""
        with self._lock:
            mine = [i for i in self.context.records.items(item_ids) if i.store == self.name]
            below: list[str] = []
            for item in mine:
                node = self._tree(item.user_id).nodes.get(item.id)
                if node is not None and not node.leaf:
                    below += [leaf.id for leaf in self._leaves(self._tree(item.user_id), node)]
            ids = [i.id for i in mine] + [i for i in below if i not in item_ids]
            return self._end(ids, reason, at=at, delete=True)

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
            tree = self._tree(item.user_id)
            node = tree.nodes.get(item.id)
            if node is None:  # pragma: no cover - every stored node is in the rebuilt tree
                raise InputError(f"memory item {item_id!r} is not in the memory tree")
            self._flush(tree)
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
                if self.context.model is not None:
                    node.base_text = text
                changes.append(Change("UPDATE", self._save(node, reason, at), reason))
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
                updates.append(self._change(ancestor, reason, at))
        tree.pending.update(n.id for n in self._stale(ancestors, 0.0))
        return [Change("UPDATE", i, reason) for i in self.context.records.update_items(updates)]

    def _end(
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
            mine = [i for i in self.context.records.items(item_ids) if i.store == self.name]
            for user_id in {i.user_id for i in mine}:
                # Load before the change, so the sums still count it; the index must hold
                # every vector whose validity metadata is about to change.
                self._flush(self._tree(user_id))
            ids = [i.id for i in mine]
            if delete:
                changed = self._index.delete(ids, reason, at=at)
            else:
                changed = self._index.invalidate(ids, reason, at=at, superseded_by=superseded_by)
            kind: ChangeKind = "DELETE" if delete else "SUPERSEDE"
            changes = [Change(kind, item, reason) for item in changed]
            # Internal nodes first: a deleted node is not re-aggregated from what is left.
            for item in changed:
                node = self._tree(item.user_id).nodes.get(item.id)
                if node is not None and not node.leaf:
                    node.current = False
            for item in changed:
                tree = self._tree(item.user_id)
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
            if self.context.model is not None:
                ancestor.dirty = True
                ancestor.removed.append(leaf.id)
            if ancestor.count <= 0 and ancestor.current:
                ancestor.current = False
                emptied.append(ancestor.id)
            elif ancestor.current:
                limit = self.word_limit(ancestor.depth)
                ancestor.text, ancestor.reps = tree.aggregate(ancestor, limit)
                changes.append(
                    self._change(ancestor, f"re-aggregated after an invalidation: {reason}", at)
                )
        done = [
            Change("UPDATE", item, item_reason)
            for item, item_reason in zip(
                self.context.records.update_items(changes), [c.reason for c in changes], strict=True
            )
        ]
        if emptied:
            why = "every memory below it is no longer current"
            done += [
                Change("SUPERSEDE", item, why)
                for item in self._index.invalidate(emptied, why, at=at)
            ]
        # Retrieval ranks with the in-memory means; the index catches up in the next batch.
        tree.pending.update(n.id for n in self._stale(ancestors, 0.0))
        if len(tree.pending) >= self.vector_batch:
            self._flush(tree)
        return done

    def outline(self, user_id: str, *, focus: str = "", limit: int = 200) -> list[Outline]:
        """Return the user's tree, top-level nodes first, ended nodes marked with ✗.

        The ``limit`` shallowest nodes are shown; a node whose parent is left out is shown
        at the top, so a partial tree still reads.
        """
        items = self.context.records.store_items(
            self.name, user_id, kind="node", current_only=False
        )
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

    def forget(self, user_id: str) -> int:
        """Drop the user's node vectors and cached tree (``Records.forget`` drops the rows)."""
        with self._lock:
            self._trees.pop(user_id, None)
            return self._index.forget(user_id)

    # -- model aggregation ------------------------------------------------------------------

    def end_session(self, user_id: str, session_id: str) -> list[Change]:
        """Rewrite the user's dirty nodes with the model in one call; refresh stale vectors."""
        changed: list[Change] = []
        with self._lock:
            tree = self._tree(user_id)
            if self.context.model is not None:
                try:
                    changed = self._consolidate(tree)
                except ModelError as exc:
                    logger.warning("memtree aggregation for %s failed, queued: %s", user_id, exc)
                    self.stats.add_failure(queued=True)
                    dirty = [n.id for n in tree.nodes.values() if n.dirty]
                    self.context.records.queue_work(
                        self.name,
                        user_id,
                        "aggregate",
                        {"session_id": session_id, "node_ids": dirty},
                        str(exc),
                    )
            # Offline texts stay in place; the stored vectors catch up with the means.
            self._flush(tree, self._stale(tree.nodes.values(), SESSION_DRIFT))
        return changed

    def _consolidate(self, tree: Tree) -> list[Change]:
        """Ask the model for the new text of every dirty node at once; apply the answer.

        Raises:
            ModelError: The call failed, or its answer stayed invalid after a repair.
        """
        assert self.context.model is not None
        dirty = [n for n in tree.nodes.values() if n.dirty and n.current and not n.leaf]
        if not dirty:
            return []

        def texts(ids: list[str], *, current: bool) -> tuple[str, ...]:
            found = [tree.nodes[i] for i in ids if i in tree.nodes]
            return tuple(n.text for n in found if n.current == current)[-MAX_LISTED:]

        changes = [
            NodeChange(
                node_id=n.id,
                depth=n.depth,
                memories=n.count,
                existing=n.base_text or n.text,
                added=texts(n.added, current=True),
                removed=texts(n.removed, current=False),
                max_words=self.word_limit(n.depth),
            )
            for n in dirty
        ]
        node_ids = [n.id for n in dirty]
        answer: dict[str, str] = structured_call(
            self.context.model,
            aggregate_messages(changes),
            AGGREGATE_SCHEMA,
            validate=functools.partial(validate_aggregation, node_ids=node_ids),
            stats=self.stats,
        )
        changed = []
        for node in dirty:
            node.text = node.base_text = answer[node.id]
            node.dirty, node.added, node.removed = False, [], []
            changed.append(Change("UPDATE", self._save(node, "aggregated by the model", None)))
        return changed

    def retry_pending(self, user_id: str | None = None) -> int:
        """Retry queued model aggregations; return how many now succeeded."""
        if self.context.model is None:
            return 0
        with self._lock:
            return retry_work(
                self.context.records,
                self.name,
                user_id,
                self._reconsolidate,
                on_failure=self._retry_failed,
            )

    def _reconsolidate(self, work: PendingWorkRow) -> bool:
        """Rewrite the work's user's dirty nodes with the model.

        Raises:
            ModelError: The call failed again (the offline texts stay).
        """
        self._consolidate(self._tree(work.user_id))
        return True

    def _retry_failed(self, work: PendingWorkRow, error: ModelError) -> None:
        logger.warning("memtree aggregation retry failed: %s", error)
        self.stats.add_failure(queued=False)


__all__ = ["MAX_LISTED", "SESSION_DRIFT", "MemTreeStore"]
