"""Model-independent chat model wrappers and JSON answer parsing.

Retries and usage accounting wrap the :class:`~agentmem.protocols.ChatModel` protocol once,
here, instead of living inside each backend::

    model = MeteredChatModel(RetryingChatModel(OpenAIChatModel("gpt-4o-mini")))

:class:`~agentmem.models.local_model.LlamaCppChatModel` (the local GGUF model, run in a child
process) lives in :mod:`agentmem.models.local_model`.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from agentmem.errors import ModelError, StructuredOutputError
from agentmem.models.retry import RetryPolicy
from agentmem.protocols import ChatModel
from agentmem.types import Completion, Message, Usage

logger = logging.getLogger(__name__)

_FENCED_BLOCK = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL | re.IGNORECASE)


def message_dicts(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Convert messages to the ``{"role": ..., "content": ...}`` dicts chat APIs take."""
    converted: list[dict[str, str]] = []
    for message in messages:
        entry = {"role": message.role, "content": message.content}
        if message.name is not None:
            entry["name"] = message.name
        converted.append(entry)
    return converted


def parse_json_answer(text: str, schema: Mapping[str, Any] | None = None) -> Any:
    """Parse a model's JSON answer, tolerating a Markdown ```json fenced block around it.

    Only the schema's top-level ``required`` keys are checked: small models drift on the
    details, and callers validate the fields they use.

    Args:
        text: The raw answer.
        schema: The JSON schema the answer was asked to follow.

    Returns:
        The parsed JSON value.

    Raises:
        StructuredOutputError: The answer is not JSON, or misses a required key.
    """
    candidate = text.strip()
    fenced = _FENCED_BLOCK.search(candidate)
    if fenced is not None:
        candidate = fenced.group(1)
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError as exc:
        raise StructuredOutputError(
            f"the model's answer is not valid JSON: {text[:200]!r}"
        ) from exc
    required = list(schema.get("required") or ()) if schema is not None else []
    expects_object = schema is not None and (schema.get("type") == "object" or bool(required))
    if expects_object and not isinstance(data, dict):
        raise StructuredOutputError(f"the model's answer is JSON but not an object: {text[:200]!r}")
    missing = [key for key in required if key not in data]
    if missing:
        raise StructuredOutputError(
            f"the model's answer misses required keys {missing}: {text[:200]!r}"
        )
    return data


class RetryingChatModel:
    """Retry a chat model's retryable failures with exponential backoff and jitter.

    Only errors whose ``retryable`` flag is set are retried (timeouts, unreachable
    endpoints, 429/5xx statuses, unparseable JSON); an authentication error is raised at
    once. A stream is retried only while nothing has reached the caller: once text was
    yielded, a retry would repeat it, so the error is raised instead.

    Args:
        inner: The model to call.
        attempts: Calls in all, the first one included.
        base_delay: Seconds before the first retry; doubled for each further one.
        max_delay: Upper bound of one pause, in seconds.
        sleep: Pauses for the given seconds (injected so tests need not wait).
        rng: Source of the jitter; a fresh ``random.Random()`` by default.

    Attributes:
        retries: Failed attempts that were tried again, so far (a call's last failed
            attempt is raised, not retried, and is not counted); thread-safe.
        policy: The :class:`~agentmem.models.retry.RetryPolicy` that runs the attempts.
    """

    def __init__(
        self,
        inner: ChatModel,
        *,
        attempts: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.attempts = attempts
        self.policy = RetryPolicy(
            inner.name,
            attempts=attempts,
            base_delay=base_delay,
            max_delay=max_delay,
            sleep=sleep,
            rng=rng,
            retry_on=ModelError,
        )

    @property
    def retries(self) -> int:
        """Failed attempts that were tried again, so far."""
        return self.policy.retries

    @property
    def last_usage(self) -> Usage | None:
        """The usage of the inner model's last stream, if it reports one."""
        return getattr(self.inner, "last_usage", None)

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Answer ``messages`` through the inner model, retrying retryable failures.

        Raises:
            ModelError: The last attempt failed, or the failure is not retryable.
        """
        return self.policy.call(lambda: self.inner.complete(messages, schema=schema))

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Stream the inner model's answer, retrying only failures before the first chunk.

        Raises:
            ModelError: The last attempt failed, the failure is not retryable, or it
                happened after text was yielded.
        """

        def first_chunk() -> tuple[str | None, Iterator[str]]:
            chunks = self.inner.stream(messages)
            try:
                return next(chunks, None), chunks
            except BaseException:
                _close(chunks)
                raise

        # Only the first chunk is retried: once text reached the caller, a retry would
        # repeat it, so a later failure is raised as it is.
        first, chunks = self.policy.call(first_chunk)
        try:
            if first is not None:
                yield first
                yield from chunks
        finally:
            _close(chunks)


def _close(chunks: Iterator[str]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


class MeteredChatModel:
    """Count a chat model's calls and failures and sum the tokens it used; thread-safe.

    A stream's tokens are taken from the inner model's ``last_usage`` after the stream
    ends, when the inner model reports one; otherwise the stream adds no tokens.

    Attributes:
        calls: Calls made, streams included.
        failures: Calls that raised.
        usage: Tokens used by all successful calls.
    """

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self.failures = 0
        self.usage = Usage()
        self._lock = threading.Lock()

    @property
    def last_usage(self) -> Usage | None:
        """The usage of the inner model's last stream, if it reports one."""
        return getattr(self.inner, "last_usage", None)

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Answer ``messages`` through the inner model, counting the call.

        Raises:
            ModelError: The inner model failed.
        """
        self._count_call()
        try:
            completion = self.inner.complete(messages, schema=schema)
        except Exception:
            self._count_failure()
            raise
        self._add_usage(completion.usage)
        return completion

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Stream the inner model's answer, counting the call.

        Raises:
            ModelError: The inner model failed.
        """
        self._count_call()
        try:
            yield from self.inner.stream(messages)
        except Exception:
            self._count_failure()
            raise
        usage = getattr(self.inner, "last_usage", None)
        if isinstance(usage, Usage):
            self._add_usage(usage)

    def _count_call(self) -> None:
        with self._lock:
            self.calls += 1

    def _count_failure(self) -> None:
        with self._lock:
            self.failures += 1

    def _add_usage(self, usage: Usage) -> None:
        with self._lock:
            self.usage = self.usage + usage
