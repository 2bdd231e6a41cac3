"""Recall queries built from the turn and its recent context (Ma et al. 2023, query rewriting).

"What about her job?" says nothing on its own; with the turns before it, it means "what
is Ana's job". The deterministic rewrite appends the names and content words of the recent
turns when the query leans on them (pronouns, ellipsis, very few content words); with a
capable model, :func:`model_rewrite` asks it for a standalone question.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from agentmem.errors import ModelError
from agentmem.protocols import ChatModel
from agentmem.text import content_words, proper_nouns
from agentmem.types import Turn

logger = logging.getLogger(__name__)

_LEANING = re.compile(
    r"\b(he|she|him|her|his|hers|they|them|their|it|its|that|this|those|these|there|"
    r"what about|how about|and you|the same|which one)\b",
    re.IGNORECASE,
)


def needs_context(query: str) -> bool:
    """Whether a query leans on the dialogue before it."""
    return bool(_LEANING.search(query)) or len(content_words(query)) < 2


def rewrite_query(query: str, recent: Sequence[Turn], *, max_words: int = 10) -> str:
    """Return ``query`` with context words from recent turns appended when it needs them."""
    if not recent or not needs_context(query):
        return query
    present = set(content_words(query))
    extra: list[str] = []
    for turn in reversed(recent[-4:]):
        for word in proper_nouns(turn.text) + content_words(turn.text):
            key = word.lower()
            if key not in present and key not in (w.lower() for w in extra):
                extra.append(word)
    if not extra:
        return query
    return f"{query} ({' '.join(extra[:max_words])})"


def model_rewrite(model: ChatModel, query: str, recent: Sequence[Turn]) -> str:
    """Ask the model for a standalone question; fall back to the rule rewrite on failure."""
    from agentmem.prompts.rewrite import rewrite_messages

    if not recent or not needs_context(query):
        return query
    try:
        answer = model.complete(rewrite_messages(query, recent)).text.strip()
    except ModelError as exc:
        logger.warning("query rewrite failed, using the rule rewrite: %s", exc)
        return rewrite_query(query, recent)
    return answer.splitlines()[0].strip() if answer else rewrite_query(query, recent)
