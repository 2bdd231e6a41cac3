"""Topic memos (Lu et al. 2023, "MemoChat: Tuning LLMs to Use Memos for Consistent
Long-Range Open-Domain Conversation").

The memory is a set of notes organised by topic, ``{topic: [(summary, turn span)]}``. The
dialogue a user has not yet had memo'd is buffered; when it reaches ``chunk_turns`` turns
(and at every session end, for what is left) the chunk is written into memos. Topics are
items (kind ``"topic"``: the name as text, the centroid of their turns as vector, kept
exactly in the item's metadata and refreshed in the index when it drifts) and so
is every memo entry (kind ``"memo"``: ``"Topic: <topic>. <summary>"`` when the model
named the topic, the summary alone when the offline builder named it by keywords, its turns as
provenance, the original turns in its metadata). A record per chunk (kind ``"chunk"``, no
vector) marks how far the dialogue is memo'd, so the buffer is rebuilt after a restart.

Offline builder (no model): each informative turn joins the user's topic whose centroid it
is most similar to (the topic of the turn before it gets a small bonus, since dialogue
stays on a subject), or opens a new topic named by its top keywords ("puppy, rex,
adopted"). Filler ("Oh really?") joins the segment around it and never opens a topic.
Consecutive turns of one topic in one session form a memo whose summary is extractive:
the most central informative turns, each cut to its most informative sentences. It embeds
nothing but the turns (a memo's vector is the mean of the turns it copies). Against a
model it loses: topics are clusters of similar wording, not subjects (pets, zoo animals
and a neighbour's cat share one topic; a vet's bill may land with money; one subject
phrased two ways opens two topics); names are keyword lists, never renamed or merged;
summaries copy sentences (no paraphrase, no pronoun resolution, no "who did what" beyond
the speaker label, nothing inferred or dated: "last weekend" stays relative); a segment
boundary is a similarity step, not an understood change of subject, and a new chunk
starts without knowing which topic the previous one ended on.

With a model: one structured call per chunk (the chunk with turn ids plus the user's topic
names -> memos), validated and repaired once; a named existing topic is reused. A failure
is queued for :meth:`MemoStore.retry_pending` and the offline builder is used meanwhile;
a successful retry supersedes the offline memos (and the topics only they used).

Retrieval (no model): the ``candidates * k`` memo entries nearest the query, re-ranked by
``max(own similarity, topic_boost * similarity of the topic's centroid)`` for the best
matching current topics. MemoChat shows every entry of a chosen topic; here an entry far
from the query in its own wording is boosted only if it is among those candidates. A
question about what was said of a subject across the conversation ("What did we say about
the move?", ``Query.form`` ``"mentions"``) gets MemoChat's answer: every entry of the
``mention_topics`` best-matching topics, from every session, oldest first, then the
ranking above. For such a question the memos lead the fusion. ("What did Jon say about
X?" asks what one person said: a point question, which the turns answer; on LoCoMo's five
such questions the memos recalled the evidence of one, the turns of three.)
"""

from agentmem.stores.memo.store import MemoStore

__all__ = ["MemoStore"]
