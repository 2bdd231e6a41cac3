"""HippoRAG 2's knowledge graph as a memory structure (``"graph"``).

:class:`GraphStore` keeps, per user, a graph of entities and passages built from extracted
triples and ranks passages by Personalized PageRank; :mod:`memory_stores.graph.ppr` is the
sparse PageRank engine it keeps in step with the graph.
"""

from __future__ import annotations

from agentmem.stores.graph.ppr import EngineStats, PersonalizedPageRank
from agentmem.stores.graph.store import GraphStore

__all__ = ["EngineStats", "GraphStore", "PersonalizedPageRank"]
