"""MemTree (Rezazadeh et al., ICLR 2025): memory as a dynamic tree of aggregated nodes.

Each turn becomes a leaf holding ``speaker: text``. It is inserted from the virtual root,
which holds no content: at every node the new leaf is compared with the node's current
children, and if the best similarity reaches the depth-dependent threshold
``θ(d) = θ0 · exp(λ · d / D)`` (``d`` the depth of the node whose children are compared,
the root being 0; ``D`` the tree's current depth, at least 1) the insertion descends into
that child, otherwise the leaf is attached there. Descending into a leaf expands it as in
the paper: a new internal node takes the leaf's place, with the old leaf and the new one as
its children. Every node passed on the way re-aggregates its content with the new
information, higher nodes more abstractly. Retrieval searches the collapsed tree (every
node, leaves and internal ones) by similarity; a topic question ("What do you know about
Sam's family?") gets the nodes of every level as they rank, an inner node bringing its
leaves' gist, while for other questions a leaf stands in for a node it matches better
(below). A recap that names its time ("What happened in Sam's life in May?") gets the
nodes of every level that put the most turns of that time before the reader per word
(:mod:`.window`): mostly the inner nodes, whose gist quotes several leaves.
Invalidating a leaf re-aggregates its ancestors from their remaining current children; an
ancestor left with no current memory below is invalidated too, and inserts never descend
into invalid nodes.

Aggregation offline is an extractive merge: a node quotes the most central, informative
sentences among its children's representative leaves, under a word limit that shrinks
toward the root. (It used to open with a keyword label, "[jake, done, broke]": that read
as no content, and kept a name or value in the text after the sentences saying it were
gone.) With a model, inserts still apply
the extractive text at once and mark the nodes they change dirty; at the session end every
dirty node of the user is rewritten with the paper's aggregate prompt in one model call.

Documented deviations from the paper:

* The routing and retrieval vector of an internal node is the normalised mean of its
  current descendant leaves' embeddings (a running sum and count), not the embedding of
  its aggregated text: re-embedding every changed ancestor on every insert would cost
  several embeddings per turn. Leaves use the embedding of their own text.
* Vector writes are gathered: chromadb takes ~5 ms a call (~15 ms to rewrite an existing
  vector), so new nodes' vectors and those of internal nodes that drifted (cosine below
  ``1 - vector_drift`` since last written) are written once ``vector_batch`` wait, and
  at every session end (with every internal vector whose cosine fell below 0.99).
  Meanwhile retrieval scores the waiting ones in memory, and a restart re-embeds leaves
  whose vectors never reached the index. Routing always uses the exact in-memory means.
* Model aggregation is batched per session end (one call for all dirty nodes) instead of
  one call per node passed on every insert.
* A new memory nearly identical to a leaf (cosine >= ``duplicate``) joins it as a sibling
  instead of expanding it: otherwise each repetition of a line such as "Ugh, sorry." adds
  one level to a chain (52 levels on the LoCoMo dev turns), and a deep chain lowers
  ``θ(d)`` everywhere through ``D``.
* Expansion keeps the old leaf as an item (with its provenance and history) and moves it
  one level down, rather than copying its content into a new child.
* A leaf is embedded without its ``speaker:`` prefix (its text keeps it). With MiniLM the
  prefix lifts the similarity of any two turns between the same speakers to ~0.42 on
  average (LoCoMo), above ``θ0``, so every turn would descend into one ever deeper chain;
  without it the average is ~0.26, the regime the paper's threshold was set for.
* Internal nodes carry no agent or session id: they span sessions (and agents).
"""

from __future__ import annotations

from agentmem.stores.memtree.store import MemTreeStore

__all__ = ["MemTreeStore"]
