"""Built-in memory structures, and the registry that names them.

Third-party structures register a factory (``StoreContext -> MemoryStore``) under the
``agentmem.stores`` entry-point group. Each built-in structure is imported only when a
configuration asks for it.
"""

from __future__ import annotations

from agentmem.protocols import MemoryStore, StoreContext, StoreFactory
from agentmem.stores.turns import TurnStore


def _turns(context: StoreContext) -> MemoryStore:
    return TurnStore(context)


def _memtree(context: StoreContext) -> MemoryStore:
    from agentmem.stores.memtree import MemTreeStore

    return MemTreeStore(context)


def _summary(context: StoreContext) -> MemoryStore:
    from agentmem.stores.summary import SummaryStore

    return SummaryStore(context)


def _graph(context: StoreContext) -> MemoryStore:
    from agentmem.stores.graph import GraphStore

    return GraphStore(context)


def _memo(context: StoreContext) -> MemoryStore:
    from agentmem.stores.memo import MemoStore

    return MemoStore(context)


#: Built-in structures by name; ``all`` in a configuration means every one of them, and
#: ``all-<name>`` every one but that.
BUILTIN: dict[str, StoreFactory] = {
    "turns": _turns,
    "memtree": _memtree,
    "summary": _summary,
    "graph": _graph,
    "memo": _memo,
}

__all__ = ["BUILTIN", "TurnStore"]
