"""Chat model adapters, both ways: LangChain's as agentmem's, and agentmem's as LangChain's.

* :class:`LangChainChatModel` makes any LangChain chat model an agentmem
  :class:`~agentmem.protocols.ChatModel`.
* :class:`AgentMemChatModel` makes an agentmem chat model a LangChain ``BaseChatModel``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import BaseModel, ConfigDict

from agentmem.errors import (
    AgentMemError,
    ModelError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    StructuredOutputError,
)
from agentmem.langchain.messages import from_langchain_messages, to_langchain_messages
from agentmem.models.llm import parse_json_answer
from agentmem.protocols import ChatModel
from agentmem.types import Completion, Message, Usage

logger = logging.getLogger(__name__)

T = TypeVar("T")
StructuredMode = Literal["auto", "native", "json"]


def json_instruction(schema: dict[str, Any]) -> str:
    """Return the instruction that asks a model without structured output for JSON."""
    return (
        "Answer with one JSON object and nothing else (no prose, no code fence). "
        f"It must follow this JSON schema:\n{json.dumps(schema, sort_keys=True)}"
    )


class LangChainChatModel:
    """Use any LangChain chat model where agentmem takes a :class:`ChatModel`.

    With a schema, the model's native structured output (``with_structured_output``) is
    used when it has one, else the schema is put in the prompt and the answer parsed as
    JSON. Errors are wrapped in :class:`~agentmem.errors.ModelError` subclasses.

    Args:
        model: The LangChain chat model.
        name: The model's name in reports (default: its ``model_name`` or type).
        structured_output: ``"auto"`` (native when supported, else JSON prompting),
            ``"native"`` or ``"json"``.

    Attributes:
        last_usage: The usage of the last finished stream, when the model reported one.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        name: str | None = None,
        structured_output: StructuredMode = "auto",
    ) -> None:
        self.model = model
        self.name = name or str(getattr(model, "model_name", None) or model._llm_type)
        self.structured_output = structured_output
        self.last_usage: Usage | None = None

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Answer ``messages``; with ``schema``, the parsed JSON answer is in ``data``.

        Raises:
            ModelError: The model failed.
            StructuredOutputError: The answer does not match ``schema``.
        """
        prompt = to_langchain_messages(messages)
        if schema is not None and self.structured_output != "json":
            native = self._native(prompt, schema)
            if native is not None:
                return native
        if schema is not None:
            prompt = _with_instruction(prompt, json_instruction(schema))
        reply = self._call(lambda: self.model.invoke(prompt))
        text = str(reply.text)
        data = parse_json_answer(text, schema) if schema is not None else None
        return Completion(text=text, data=data, usage=_usage(reply), model=self.name)

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Answer ``messages`` as a stream of text chunks.

        Raises:
            ModelError: The model failed.
        """
        self.last_usage = None
        prompt = to_langchain_messages(messages)
        usage = Usage()
        chunks = self._call(lambda: iter(self.model.stream(prompt)))
        while True:
            chunk = self._call(lambda: next(chunks, None))
            if chunk is None:
                break
            usage = usage + _usage(chunk)
            text = str(chunk.text)
            if text:
                yield text
        self.last_usage = usage

    def _native(self, prompt: list[BaseMessage], schema: dict[str, Any]) -> Completion | None:
        """Answer with the model's structured output; ``None`` if it has none (auto mode)."""
        titled = {"title": "answer", **schema}  # function-calling backends need a name
        try:
            runnable = self.model.with_structured_output(titled, include_raw=True)
        except NotImplementedError as exc:
            if self.structured_output == "native":
                raise ModelError(
                    f"{self.name} has no native structured output",
                    hint="use structured_output='auto' or 'json'",
                ) from exc
            logger.debug("%s has no structured output; prompting for JSON", self.name)
            return None
        result = self._call(lambda: runnable.invoke(prompt))
        raw = result.get("raw") if isinstance(result, dict) else None
        parsed = result.get("parsed") if isinstance(result, dict) else result
        if isinstance(parsed, BaseModel):
            parsed = parsed.model_dump()
        if parsed is None:
            error = result.get("parsing_error") if isinstance(result, dict) else None
            raise StructuredOutputError(f"{self.name} gave no parsable structured answer: {error}")
        text = json.dumps(parsed)
        data = parse_json_answer(text, schema)  # the same required-key check as JSON mode
        return Completion(text=text, data=data, usage=_usage(raw), model=self.name)

    def _call(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except AgentMemError:
            raise
        except Exception as exc:  # a provider's error: wrap it at the boundary
            raise _model_error(self.name, exc) from exc


def _with_instruction(prompt: list[BaseMessage], instruction: str) -> list[BaseMessage]:
    """Put ``instruction`` in the leading system message (some providers take only one)."""
    if prompt and isinstance(prompt[0], SystemMessage):
        merged = SystemMessage(content=f"{prompt[0].text}\n\n{instruction}")
        return [merged, *prompt[1:]]
    return [SystemMessage(content=instruction), *prompt]


def _model_error(name: str, exc: Exception) -> ModelError:
    message = f"{name} failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower():
        return ModelTimeoutError(message)
    if isinstance(exc, ConnectionError) or "connection" in type(exc).__name__.lower():
        return ModelUnavailableError(message)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return ModelResponseError(message, status=status)
    return ModelError(message)


class AgentMemChatModel(BaseChatModel):
    """Use an agentmem :class:`ChatModel` as a LangChain chat model.

    Example:
        ```python
        from agentmem.testing import ScriptedChatModel

        model = AgentMemChatModel(chat_model=ScriptedChatModel(["Hi!"]))
        model.invoke("Hello").content  # "Hi!"
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    chat_model: ChatModel
    """The agentmem chat model that answers."""

    @property
    def _llm_type(self) -> str:
        return "agentmem"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.chat_model.name}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        completion = self.chat_model.complete(from_langchain_messages(messages))
        text = completion.text
        cut = _first_stop(text, stop)
        message = AIMessage(
            content=text if cut is None else text[:cut],
            usage_metadata=_usage_metadata(completion.usage),
            response_metadata={"model_name": completion.model or self.chat_model.name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # Hold back a tail that could be the start of a stop sequence until it is decided.
        hold = max((len(s) - 1 for s in stop or ()), default=0)
        buffer = ""
        for piece in self.chat_model.stream(from_langchain_messages(messages)):
            buffer += piece
            cut = _first_stop(buffer, stop)
            if cut is not None:
                buffer = buffer[:cut]
                break
            ready, buffer = buffer[: len(buffer) - hold], buffer[len(buffer) - hold :]
            if ready:
                yield self._chunk(ready, run_manager)
        if buffer:
            yield self._chunk(buffer, run_manager)
        # One closing chunk carries what belongs to the whole answer, once.
        usage = getattr(self.chat_model, "last_usage", None)
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=_usage_metadata(usage) if isinstance(usage, Usage) else None,
                response_metadata={"model_name": self.chat_model.name},
                chunk_position="last",
            )
        )

    @staticmethod
    def _chunk(text: str, run_manager: CallbackManagerForLLMRun | None) -> ChatGenerationChunk:
        chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
        if run_manager is not None:
            run_manager.on_llm_new_token(text, chunk=chunk)
        return chunk


def _first_stop(text: str, stop: Sequence[str] | None) -> int | None:
    found = [text.find(s) for s in stop or () if s and s in text]
    return min(found) if found else None


def _usage(message: object) -> Usage:
    metadata = getattr(message, "usage_metadata", None) or {}
    return Usage(int(metadata.get("input_tokens", 0)), int(metadata.get("output_tokens", 0)))


def _usage_metadata(usage: Usage) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )
