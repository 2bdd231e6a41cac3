"""Chat models and embedders behind OpenAI's API or any OpenAI-compatible server.

This is the only module that imports ``openai``. Its errors are wrapped here into
agentmem's (:mod:`agentmem.errors`), so callers never handle ``openai`` exceptions. The
client is built with ``max_retries=0``: retries belong to
:class:`~agentmem.models.llm.RetryingChatModel`, which wraps every backend the same way.

Local servers (Ollama, llama.cpp's ``llama-server``, vLLM) speak the same API; point
``base_url`` at them, e.g. ``http://127.0.0.1:11434/v1``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Self

import numpy as np
import openai

from agentmem.errors import (
    AgentMemError,
    EmbeddingError,
    ModelError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from agentmem.models.embeddings import normalize_rows
from agentmem.models.llm import message_dicts, parse_json_answer
from agentmem.types import Completion, Message, Usage

logger = logging.getLogger(__name__)

EMBEDDING_BATCH_SIZE = 256
"""The most texts sent in one embeddings request."""

_SCHEMA_NAME_CHARACTERS = re.compile(r"[^a-zA-Z0-9_-]")


def _schema_name(schema: dict[str, Any]) -> str:
    # OpenAI requires a name matching ^[a-zA-Z0-9_-]{1,64}$ for a json_schema format.
    title = str(schema.get("title") or "answer")
    return _SCHEMA_NAME_CHARACTERS.sub("_", title)[:64] or "answer"


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    return Usage(int(raw.prompt_tokens or 0), int(raw.completion_tokens or 0))


def _status_hint(status: int, model: str) -> str:
    if status in (401, 403):
        return "check the API key: set OPENAI_API_KEY or pass api_key=..."
    if status == 404:
        return f"check the model name {model!r} and the base URL (most servers end it in /v1)"
    if status == 429:
        return "the endpoint is rate-limiting; wait, or lower the request rate"
    return ""


def _wrap_error(
    exc: openai.OpenAIError, *, model: str, base_url: str, family: type[AgentMemError]
) -> AgentMemError:
    """Translate an ``openai`` exception into agentmem's error for ``family``.

    ``family`` is :class:`ModelError` for chat models (which have finer subclasses) or
    :class:`EmbeddingError`.
    """
    chat = family is ModelError
    if isinstance(exc, openai.APITimeoutError):
        message = f"{model} at {base_url} did not answer in time"
        if chat:
            return ModelTimeoutError(message, hint="raise timeout=..., or use a smaller model")
        return family(message, hint="raise timeout=...", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        # httpx (or httpx2, in newer openai releases) raises ConnectError when nothing
        # listens; any other transport error means the server was reached and then lost.
        if cause is None or type(cause).__name__ == "ConnectError":
            message = f"cannot reach {base_url}: {cause or exc}"
            hint = (
                "start the server, or set OPENAI_BASE_URL (or pass base_url=...) to where it "
                "runs, e.g. http://127.0.0.1:11434/v1 for Ollama"
            )
        else:
            message = f"lost the connection to {base_url} mid-answer: {cause}"
            hint = ""
        if chat:
            return ModelUnavailableError(message, hint=hint)
        return family(message, hint=hint, retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = exc.body.get("message") if isinstance(exc.body, dict) else None
        message = f"{model} at {base_url} answered HTTP {status}: {detail or exc.message}"
        hint = _status_hint(status, model)
        if chat:
            return ModelResponseError(message, status=status, hint=hint)
        return family(message, hint=hint, retryable=status == 429 or status >= 500)
    # APIResponseValidationError and other protocol-level surprises: a retry may help.
    message = f"{model} at {base_url} failed: {exc}"
    if chat:
        return ModelResponseError(message, retryable=True)
    return family(message, retryable=True)


class _OpenAIResource:
    """Owns the ``openai.OpenAI`` client; closable and usable as a context manager."""

    def __init__(self, *, api_key: str | None, base_url: str | None, timeout: float) -> None:
        # Keyless local servers still need some key: the client refuses to start without one.
        self._client = openai.OpenAI(
            api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, max_retries=0
        )
        self.base_url = str(self._client.base_url).rstrip("/")

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class OpenAIChatModel(_OpenAIResource):
    """A chat model behind OpenAI's chat completions API or a compatible server.

    Args:
        model: The model name, e.g. ``"gpt-4o-mini"`` or ``"llama3.2"``.
        api_key: The API key; keyless local servers need none.
        base_url: The API root, e.g. ``http://127.0.0.1:11434/v1``; the ``openai``
            client's default (``OPENAI_BASE_URL`` or OpenAI's) when ``None``.
        timeout: Seconds to wait for an answer.
        temperature: Sampling temperature.
        max_tokens: Most tokens one answer may have; the server's default when ``None``.

    Attributes:
        name: ``"openai:<model>"``.
        last_usage: The tokens of the last finished stream, when the server reported them.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        temperature: float = 0.2,
        max_tokens: int | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout)
        self.model = model
        self.name = f"openai:{model}"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.last_usage: Usage | None = None

    def _request(self, messages: Sequence[Message]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": message_dicts(messages),
            "temperature": self.temperature,
        }
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        return request

    def _wrap(self, exc: openai.OpenAIError) -> AgentMemError:
        return _wrap_error(exc, model=self.model, base_url=self.base_url, family=ModelError)

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Answer ``messages``; with ``schema``, ask for JSON and parse it into ``data``.

        Raises:
            ModelTimeoutError: The server did not answer within ``timeout``.
            ModelUnavailableError: The server could not be reached.
            ModelResponseError: The server answered with an error status or a malformed body.
            StructuredOutputError: The answer is not JSON with the schema's required keys.
        """
        request = self._request(messages)
        if schema is not None:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(schema), "schema": schema, "strict": False},
            }
        try:
            response = self._client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            raise self._wrap(exc) from exc
        except ValueError as exc:  # a 200 whose body is not JSON
            raise ModelResponseError(
                f"{self.model} at {self.base_url} sent a malformed response: {exc}", retryable=True
            ) from exc
        choices = getattr(response, "choices", None)
        if not choices:
            raise ModelResponseError(
                f"{self.model} at {self.base_url} sent a response without choices: "
                f"{str(response)[:200]!r}",
                retryable=True,
            )
        text = choices[0].message.content or ""
        data = parse_json_answer(text, schema) if schema is not None else None
        return Completion(
            text=text, data=data, usage=_usage(response.usage), model=response.model or self.model
        )

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Answer ``messages`` as a stream of text chunks; the usage lands in ``last_usage``.

        Raises:
            ModelTimeoutError: The server did not answer within ``timeout``.
            ModelUnavailableError: The server could not be reached, or dropped the stream.
            ModelResponseError: The server answered with an error status, sent a malformed
                chunk, or ended the stream before the answer finished (retryable).
        """
        self.last_usage = None
        request = self._request(messages)
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
        try:
            chunks = self._client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            raise self._wrap(exc) from exc
        finished = False
        with chunks:
            try:
                for chunk in chunks:
                    if chunk.usage is not None:
                        self.last_usage = _usage(chunk.usage)
                    for choice in chunk.choices:
                        if choice.finish_reason is not None:
                            finished = True
                        if choice.delta is not None and choice.delta.content:
                            yield choice.delta.content
            except openai.OpenAIError as exc:
                raise self._wrap(exc) from exc
            except ValueError as exc:  # an event whose data is not JSON
                raise ModelResponseError(
                    f"{self.model} at {self.base_url} sent a malformed stream chunk: {exc}",
                    retryable=True,
                ) from exc
        if not finished:
            # A connection cut between events ends the iteration quietly; without a
            # finish_reason the answer is incomplete, and asking again may complete it.
            raise ModelResponseError(
                f"{self.model} at {self.base_url} ended the stream before the answer finished",
                retryable=True,
            )


class OpenAIEmbedder(_OpenAIResource):
    """An embedder behind OpenAI's embeddings API or a compatible server.

    Args:
        model: The embedding model name.
        api_key: The API key; keyless local servers need none.
        base_url: The API root; the ``openai`` client's default when ``None``.
        timeout: Seconds to wait for one batch.
        dimension: The vector length. When given it is also sent as ``dimensions``
            (text-embedding-3 models shorten their vectors to it); when ``None`` it is
            learnt from the first answer, asking the server once if needed.

    Attributes:
        name: ``"openai:<model>"``.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        dimension: int | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout)
        self.model = model
        self.name = f"openai:{model}"
        self._requested_dimension = dimension
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        """Return the vector length, asking the server once when it was not given.

        Raises:
            EmbeddingError: The server had to be asked and failed.
        """
        if self._dimension is None:
            self.embed(["dimension probe"])
        assert self._dimension is not None  # set by embed()
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into unit-length float32 rows, at most 256 texts per request.

        Raises:
            EmbeddingError: A request failed (``retryable`` says if a retry may help), or
                the server answered with vectors of the wrong count or length.
        """
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batches = [
            self._embed_batch(texts[start : start + EMBEDDING_BATCH_SIZE])
            for start in range(0, len(texts), EMBEDDING_BATCH_SIZE)
        ]
        return normalize_rows(np.concatenate(batches, axis=0))

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        # OpenAI rejects empty strings; a space embeds as "nothing" and keeps rows aligned.
        inputs = [text if text.strip() else " " for text in texts]
        options: dict[str, Any] = {}
        if self._requested_dimension is not None:
            options["dimensions"] = self._requested_dimension
        try:
            response = self._client.embeddings.create(
                model=self.model, input=inputs, encoding_format="float", **options
            )
        except openai.OpenAIError as exc:
            raise _wrap_error(
                exc, model=self.model, base_url=self.base_url, family=EmbeddingError
            ) from exc
        except ValueError as exc:
            raise EmbeddingError(
                f"{self.model} at {self.base_url} sent a malformed response: {exc}", retryable=True
            ) from exc
        rows = sorted(getattr(response, "data", None) or (), key=lambda row: row.index)
        if len(rows) != len(inputs):
            raise EmbeddingError(
                f"{self.model} at {self.base_url} returned {len(rows)} vectors "
                f"for {len(inputs)} texts",
                retryable=True,
            )
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        if self._dimension is None:
            self._dimension = int(vectors.shape[1])
        elif vectors.shape[1] != self._dimension:
            raise EmbeddingError(
                f"{self.model} returned vectors of length {vectors.shape[1]}, "
                f"expected {self._dimension}",
                hint="pass the model's real dimension, or a model that supports `dimensions`",
            )
        return vectors
