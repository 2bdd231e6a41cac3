"""The structure contract, where plugins' test suites first imported it from.

It lives in :mod:`agentmem.testing.contract` with agentmem's other testing aids; this name
stays so that ``from agentmem.store_contract import MemoryStoreContract`` keeps working.
Importing either needs pytest (a test dependency); ``import agentmem.testing`` does not.
"""

from agentmem.testing.contract import DIALOGUE, QUERY, START, MemoryStoreContract, shared_embedder

__all__ = ["DIALOGUE", "QUERY", "START", "MemoryStoreContract", "shared_embedder"]
