"""The MemTree store: inserts turns into each user's tree, retrieves from it, and ties in
its collaborators.

See the package docstring for the algorithm and the documented deviations from the paper.
The store's other concerns live beside it: :mod:`.persistence` (the cached trees, their
items and vector batches), :mod:`.editing` (ending and editing nodes, the outline) and
:mod:`.aggregation` (the model's rewrite of dirty nodes).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from agentmem.errors import ModelError
from agentmem.models.building import BuildStats, retry_work
from agentmem.protocols import StoreContext
from agentmem.questions import FORMS
from agentmem.storage.items import ItemIndex, visible
from agentmem.storage.records import PendingWorkRow
from agentmem.stores.memtree.aggregation import MAX_LISTED, consolidate
from agentmem.stores.memtree.editing import TreeEditor, outline
from agentmem.stores.memtree.persistence import NodeStorage, stale
from agentmem.stores.memtree.tree import Node, Tree
from agentmem.stores.memtree.window import within
from agentmem.types import Change, Outline, Query, Recalled, Turn

logger = logging.getLogger(__name__)

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

    #: The question forms it answers first (``Leading``; see ``agentmem.questions``).
    leads = frozenset({"topic"})
    #: The forms it answers at all: every one.
    serves = frozenset(FORMS)

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
        self._lock = threading.RLock()
        self._nodes = NodeStorage(context, name, self._index)
        self._editor = TreeEditor(self._nodes, self.word_limit, vector_batch, self._lock)

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
                tree = self._nodes.tree(user_id)
                # A resumed write may repeat turns already folded in.
                fresh = [t for t in group.values() if t.id not in tree.turn_ids]
                if not fresh:
                    continue
                # The utterance without its "speaker:" prefix: see the package docstring.
                vectors = self._index.embed([t.text for t in fresh])
                try:
                    changed += self._insert_all(tree, fresh, vectors)
                except Exception:
                    self._nodes.drop(user_id)  # rebuild from what was persisted
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
        aggregated = "aggregated new information below"
        records = self.context.records
        # One transaction: new leaves without their ancestors' aggregation would be
        # skipped by a resumed write (their turns are in the tree), leaving it stale.
        with records.transaction():
            stored = records.add_items(
                [self._nodes.item(tree, n) for n in new], reason="inserted into the memory tree"
            )
            updated = records.update_items(
                [
                    self._nodes.change(tree.nodes[i], aggregated, at)
                    for i, at in touched.items()
                    if i not in created
                ]
            )
        # Vector writes cost ~5 ms a call whatever their size: gather them.
        drifted = stale((n for n in nodes if n.id not in created), self.vector_drift)
        tree.pending.update(n.id for n in [*new, *drifted])
        if len(tree.pending) >= self.vector_batch:
            self._nodes.flush(tree)
        return [Change("ADD", i, "inserted into the memory tree") for i in stored] + [
            Change("UPDATE", i, aggregated) for i in updated
        ]

    # -- reading, invalidation, erasure -----------------------------------------------------

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Return the ``k`` nodes of the collapsed tree (any level) most similar to the query.

        Nodes whose vectors still wait to be written are scored in memory and merged in.
        For a topic question (``Query.form``) the nodes of every level compete as the
        paper has them, an inner node bringing the gist of its leaves. For other questions
        an internal node is returned only when it matches the query better than every
        leaf it quotes; otherwise its best quoted leaf stands in for it: the leaf says the
        part that matches in fewer tokens. A recap that names its time gets the nodes that
        best cover that time (:mod:`.window`).
        """
        if query.embedding is None or k <= 0:
            return []
        if query.window is not None and query.form == "recap":
            return self._within(query, k)
        target = np.asarray(query.embedding, dtype=np.float32)
        target = target / max(float(np.linalg.norm(target)), 1e-12)
        with self._lock:
            tree = self._nodes.cached(query.scope.user_id)
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
        if query.form != "topic":
            # A point question wants the part that matches, and a leaf says it in fewer
            # tokens (LoCoMo, the tree alone: 36.2% of evidence turns against 33.7% with
            # the inner nodes kept). A topic wants the gist the inner nodes gather.
            found = self._collapsed(found, target, query)
        return sorted(found, key=lambda r: r.score, reverse=True)[:k]

    def _within(self, query: Query, k: int) -> list[Recalled]:
        """Return the nodes that best cover a recap's window (:mod:`.window`)."""
        assert query.window is not None
        user_id = query.scope.user_id
        turns = {t.id: t for t in self.context.records.turns(user_id)}
        speakers = {t.speaker for t in turns.values() if t.speaker}
        named = {
            s for s in speakers if re.search(rf"\b{re.escape(s)}\b", query.text, re.IGNORECASE)
        }
        with self._lock:
            ids = within(self._nodes.tree(user_id), turns, query.window, named, k)
        found = {i.id: i for i in self.context.records.items(ids, user_id=user_id)}
        kept = [found[i] for i in ids if i in found and visible(found[i], query)]
        return [Recalled(item, 1.0 - rank / (2 * len(kept))) for rank, item in enumerate(kept)]

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
            tree = self._nodes.cached(user_id)
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
        self._editor.end(item_ids, reason, at=at, superseded_by=superseded_by)

    def delete(
        self, item_ids: Sequence[str], *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Delete nodes: a leaf leaves its ancestors' texts and vectors; an internal node
        takes every leaf below it along (what it said came only from them)."""
        return self._editor.delete(item_ids, reason=reason, at=at)

    def update(
        self, item_id: str, text: str, *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Change a node's text.

        A leaf is re-embedded: its ancestors' vectors take the new one in place of the
        old, and the ancestors that quote it are re-aggregated. An internal node's vector
        is the sum of its leaves', so only its text changes (and the model, when there is
        one, rewrites from it next time).
        """
        return self._editor.update(item_id, text, reason=reason, at=at)

    def outline(self, user_id: str, *, focus: str = "", limit: int = 200) -> list[Outline]:
        """Return the user's tree, top-level nodes first, ended nodes marked with ✗.

        The ``limit`` shallowest nodes are shown; a node whose parent is left out is shown
        at the top, so a partial tree still reads.
        """
        return outline(self.context.records, self.name, user_id, limit=limit)

    def forget(self, user_id: str) -> int:
        """Drop the user's node vectors and cached tree (``Records.forget`` drops the rows)."""
        with self._lock:
            self._nodes.drop(user_id)
            return self._index.forget(user_id)

    # -- model aggregation ------------------------------------------------------------------

    def end_session(self, user_id: str, session_id: str) -> list[Change]:
        """Rewrite the user's dirty nodes with the model in one call; refresh stale vectors."""
        changed: list[Change] = []
        with self._lock:
            tree = self._nodes.tree(user_id)
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
            self._nodes.flush(tree, stale(tree.nodes.values(), SESSION_DRIFT))
        return changed

    def _consolidate(self, tree: Tree) -> list[Change]:
        """Rewrite every dirty node of ``tree`` with the model in one call.

        Raises:
            ModelError: The call failed, or its answer stayed invalid after a repair.
        """
        assert self.context.model is not None
        return consolidate(self.context.model, self._nodes, tree, self.word_limit, self.stats)

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
        self._consolidate(self._nodes.tree(work.user_id))
        return True

    def _retry_failed(self, work: PendingWorkRow, error: ModelError) -> None:
        logger.warning("memtree aggregation retry failed: %s", error)
        self.stats.add_failure(queued=False)


__all__ = ["MAX_LISTED", "SESSION_DRIFT", "MemTreeStore"]
