"""The fact ledger against the shared structure contract.

The ledger is a memory structure like the others (the manager recalls from it and the
fusion leads with it for point questions), so it keeps the same promises: provenance,
history after invalidation, persistence, users apart, forget, ``as_of``.
"""

from __future__ import annotations

from agentmem.ledger.facts import FactLedger
from agentmem.protocols import MemoryStore, StoreContext
from agentmem.testing.contract import MemoryStoreContract


class TestFactLedger(MemoryStoreContract):
    """The rule-based ledger (no model): facts extracted from the contract's dialogue."""

    def make_store(self, context: StoreContext) -> MemoryStore:
        return FactLedger(context)
