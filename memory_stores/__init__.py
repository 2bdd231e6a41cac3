"""Built-in memory structures, and the registry that names them.

Third-party structures register a factory (``StoreContext -> MemoryStore``) under the
``agentmem.stores`` entry-point group.
"""

from __future__ import annotations

from agentmem.protocols import StoreContext, StoreFactory
from memory_stores.turns import TurnStore


def _turns(context: StoreContext) -> TurnStore:
    return TurnStore(context)


#: Built-in structures by name.
BUILTIN: dict[str, StoreFactory] = {
    "turns": _turns,
}

__all__ = ["BUILTIN", "TurnStore"]
