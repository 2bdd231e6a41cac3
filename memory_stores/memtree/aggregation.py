"""MemTree's model aggregation: every dirty node of a user rewritten in one model call.

Inserts and invalidations apply the extractive text at once and mark the nodes they change
dirty; at the session end (or when a queued aggregation is retried) the model rewrites
them all with the paper's aggregate prompt.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from agentmem.models.building import BuildStats, structured_call
from agentmem.prompts.memtree import (
    AGGREGATE_SCHEMA,
    NodeChange,
    aggregate_messages,
    validate_aggregation,
)
from agentmem.protocols import ChatModel
from agentmem.stores.memtree.persistence import NodeStorage
from agentmem.stores.memtree.tree import Tree
from agentmem.types import Change

#: How many added and removed memories of one node the model is shown at most.
MAX_LISTED = 20


def consolidate(
    model: ChatModel,
    storage: NodeStorage,
    tree: Tree,
    word_limit: Callable[[int], int],
    stats: BuildStats,
) -> list[Change]:
    """Ask the model for the new text of every dirty node at once; apply and save the answer.

    Args:
        model: The chat model.
        storage: Where the rewritten nodes are saved.
        tree: The user's tree.
        word_limit: The word limit of an internal node at a depth.
        stats: Where the call and its tokens are counted.

    Raises:
        ModelError: The call failed, or its answer stayed invalid after a repair.
    """
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
            max_words=word_limit(n.depth),
        )
        for n in dirty
    ]
    node_ids = [n.id for n in dirty]
    answer: dict[str, str] = structured_call(
        model,
        aggregate_messages(changes),
        AGGREGATE_SCHEMA,
        validate=functools.partial(validate_aggregation, node_ids=node_ids),
        stats=stats,
    )
    changed = []
    for node in dirty:
        node.text = node.base_text = answer[node.id]
        node.dirty, node.added, node.removed = False, [], []
        changed.append(Change("UPDATE", storage.save(node, "aggregated by the model", None)))
    return changed


__all__ = ["MAX_LISTED", "consolidate"]
