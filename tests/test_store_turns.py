"""The turns baseline against the shared store contract."""

from __future__ import annotations

from agentmem.protocols import MemoryStore, StoreContext
from agentmem.store_contract import MemoryStoreContract
from memory_stores.turns import TurnStore


class TestTurnStore(MemoryStoreContract):
    def make_store(self, context: StoreContext) -> MemoryStore:
        return TurnStore(context)
