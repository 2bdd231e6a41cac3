"""A scripted chat model that answers from a script and records every call."""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agentmem.models.llm import parse_json_answer
from agentmem.types import Completion, Message, Usage

ScriptedReply = str | dict[str, Any] | Exception | Callable[[list[Message]], str | dict[str, Any]]
"""One scripted answer: text, a JSON object, an error to raise, or a function of the messages."""

_CHUNKS = re.compile(r"\s*\S+\s*|\s+")


def split_into_chunks(text: str) -> list[str]:
    """Split ``text`` into word-sized chunks that join back into exactly ``text``."""
    return _CHUNKS.findall(text) or [text]


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of ``text`` as the fakes count them: a token per 4 characters."""
    return len(text) // 4


@dataclass(frozen=True)
class ScriptedCall:
    """One call a :class:`ScriptedChatModel` received."""

    messages: tuple[Message, ...]
    schema: dict[str, Any] | None
    streamed: bool


class ScriptedChatModel:
    """A chat model that answers from a script and records its calls.

    Each call takes the next scripted reply: a string is the answer's text; a dict is
    answered as its JSON text (and as ``data`` for a schema call); an exception instance
    is raised; a callable computes the reply from the messages. With a schema, a text
    reply is parsed like a real model's, so malformed JSON raises
    :class:`~agentmem.errors.StructuredOutputError`.

    Args:
        replies: The script, consumed one reply per call.
        default: The answer once the script is exhausted; ``None`` makes an extra call
            fail with ``AssertionError``.
        name: The model's name.

    Attributes:
        calls: Every call received, in order.
        last_usage: The estimated usage of the last finished stream.
    """

    def __init__(
        self,
        replies: Iterable[ScriptedReply] = (),
        *,
        default: str | None = "OK",
        name: str = "scripted",
    ) -> None:
        self.name = name
        self.default = default
        self.calls: list[ScriptedCall] = []
        self.last_usage: Usage | None = None
        self._replies: deque[ScriptedReply] = deque(replies)
        self._lock = threading.Lock()

    def add(self, *replies: ScriptedReply) -> None:
        """Append replies to the script."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def remaining(self) -> int:
        """How many scripted replies have not been used."""
        with self._lock:
            return len(self._replies)

    def _next_text(
        self, messages: Sequence[Message], schema: dict[str, Any] | None, *, streamed: bool
    ) -> tuple[str, Any]:
        with self._lock:
            self.calls.append(ScriptedCall(tuple(messages), schema, streamed))
            reply: ScriptedReply | None = self._replies.popleft() if self._replies else None
        if reply is None:
            if self.default is None:
                raise AssertionError(
                    f"{self.name} ran out of scripted replies (call {len(self.calls)})"
                )
            reply = self.default
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            reply = reply(list(messages))
        if isinstance(reply, dict):
            return json.dumps(reply), reply if schema is not None else None
        return reply, parse_json_answer(reply, schema) if schema is not None else None

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Answer with the next scripted reply.

        Raises:
            Exception: The scripted exception, when the reply is one.
            StructuredOutputError: A text reply to a schema call is not valid JSON.
            AssertionError: The script is exhausted and there is no default.
        """
        text, data = self._next_text(messages, schema, streamed=False)
        return Completion(text=text, data=data, usage=self._usage(messages, text), model=self.name)

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Yield the next scripted reply in word-sized chunks.

        Raises:
            Exception: The scripted exception, before any chunk.
            AssertionError: The script is exhausted and there is no default.
        """
        self.last_usage = None
        text, _ = self._next_text(messages, None, streamed=True)
        yield from split_into_chunks(text)
        self.last_usage = self._usage(messages, text)

    @staticmethod
    def _usage(messages: Sequence[Message], text: str) -> Usage:
        prompt = sum(estimate_tokens(message.content) for message in messages)
        return Usage(prompt, estimate_tokens(text))
