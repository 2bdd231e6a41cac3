"""The collapsed tree under a window of time: what a recap gets from the tree.

MemTree's collapsed-tree retrieval lets the nodes of every level compete by similarity to
the query. A recap ("What happened in Sam's life between May and June?") is not similar
to what it asks for: its words are about time, not about what happened. What it wants is
as much of what was said in that time, by whom it names, as a context holds; and that is
what the tree's inner nodes are for: a node quotes the gist of its leaves (their most
informative sentences) in fewer words than the leaves themselves.

So for a recap that names its time, the nodes of every level compete by how many turns of
the window (of the speakers the question names, when it names some) they put before the
reader per word: a leaf is its one turn; an inner node the leaves it quotes, provided at
least half of them fall in the window. The densest come first, and a node adds nothing
when every turn it quotes is already quoted by a node chosen before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from agentmem.stores.memtree.tree import Tree
from agentmem.types import Turn


def within(
    tree: Tree,
    turns: Mapping[int, Turn],
    window: tuple[datetime, datetime],
    named: set[str],
    k: int,
) -> list[str]:
    """Return up to ``k`` current node ids that best cover the window's turns, best first.

    Args:
        tree: The user's tree.
        turns: The user's turns by id (their times and speakers).
        window: ``[start, end)`` in dialogue time.
        named: The speakers the question names (empty: everyone's turns count).
        k: The most nodes to return.
    """
    start, end = window
    wanted = {
        turn_id
        for turn_id, turn in turns.items()
        if start <= turn.timestamp < end and (not named or turn.speaker in named)
    }
    if not wanted:
        return []
    scored: list[tuple[float, int, str, frozenset[int]]] = []
    for node in tree.nodes.values():
        if not node.current:
            continue
        quoted = set(node.turns) if node.leaf else _quoted(tree, node.reps)
        inside = frozenset(quoted & wanted)
        if not inside or len(inside) * 2 < len(quoted):
            continue
        size = max(len(node.text.split()), 1)
        scored.append((len(inside) / size, len(inside), node.id, inside))
    chosen: list[str] = []
    covered: set[int] = set()
    for _, _, node_id, inside in sorted(scored, key=lambda s: (-s[0], -s[1], s[2])):
        if inside <= covered:
            continue
        chosen.append(node_id)
        covered |= inside
        if len(chosen) >= k:
            break
    return chosen


def _quoted(tree: Tree, reps: list[str]) -> set[int]:
    """Return the turns of the leaves an inner node quotes."""
    found: set[int] = set()
    for rep in reps:
        leaf = tree.nodes.get(rep)
        if leaf is not None and leaf.current:
            found |= leaf.turns
    return found


__all__ = ["within"]
