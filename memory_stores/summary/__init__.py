"""Recursive summary memory (Wang et al. 2023, "Recursively Summarizing Enables Long-Term
Dialogue Memory in Large Language Models").

The memory is one running summary per user, updated recursively: after each session (and
every ``every_turns`` new turns, so a long session is summarised too)
``M_i = summarize(M_{i-1}, dialogue since the last update)``, capped in length.

Every version is kept as an item (kind ``"summary"``) that the next version supersedes, so
``Records.history`` and ``as_of`` show the old ones. The summary is also split into
sentence items (kind ``"sentence"``), each with the turns it came from; those are what
retrieval ranks. A sentence carried over unchanged keeps its item (no re-embedding, no
duplicate); a dropped one is invalidated, superseded by the version that dropped it. An
extracted sentence is ranked by its turn's vector, which every structure shares through the
embedding cache: a new sentence costs no embedding (it cost the summary most of its write
time, 22 of 43 s for a LoCoMo conversation through ``all``).

Offline builder (no model): extractive. Candidates are the previous summary's sentences and
the new dialogue's sentences (``"Sam: I moved to Denver."``) that pass an informativeness
threshold; a share of the cap is reserved for the new dialogue (so the latest session
survives), and the slots are filled by centrality with diversity (maximal marginal
relevance), keeping dialogue order. Against a model it loses: no paraphrase or merging (a
fact spread over two turns stays two fragments, pronouns and "there" stay unresolved), no
resolution of contradictions (an old "I live in Boston" may sit beside a newer "I moved to
Denver" until the cap pushes it out), no abstraction (it never concludes "Sam is a runner"
unless someone said so), and what is dropped at the cap is chosen by salience scores, not
by understanding what matters.

With a model: one structured call per update (previous summary + new turns with their ids
-> sentences with turn ids), validated and repaired once; a failure is queued for
:meth:`SummaryStore.retry_pending` and the offline builder is used meanwhile.
"""

from agentmem.stores.summary.store import SummaryStore

__all__ = ["SummaryStore"]
