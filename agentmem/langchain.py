"""LangChain interop: a retriever over :class:`~agentmem.memory.Memory`, and chat model adapters.

This is the only module that imports ``langchain_core``; ``import agentmem`` never loads it.
It ships as the ``langchain`` extra (``pip install 'agentmem[langchain]'``): without it,
importing this module, or one of its names from ``agentmem``, raises
:class:`~agentmem.errors.MissingExtraError`.

* :class:`AgentMemRetriever` is a ``BaseRetriever`` over :meth:`Memory.search`: drop it into
  any LangChain chain that takes a retriever. It passes langchain-tests' standard
  retriever suite (``top_k`` is its number-of-results argument, in the constructor and in
  ``invoke``).
* :class:`LangChainChatModel` makes any LangChain chat model an agentmem
  :class:`~agentmem.protocols.ChatModel` (to build memory or answer in the agent loop).
* :class:`AgentMemChatModel` is the reverse: an agentmem chat model (an OpenAI-compatible
  endpoint, the local GGUF model, the scripted fake) as a LangChain ``BaseChatModel``.
* :class:`AgentMemChatMessageHistory` is a ``BaseChatMessageHistory`` over a session's
  turns, so ``RunnableWithMessageHistory`` stores every exchange in memory.
* :func:`memory_tools` gives a tool-calling agent ``search_memory``, ``save_memory`` and
  ``forget_memory``.

This module is longer than the house's ~400 lines: splitting it into a package would need
a new entry in pyproject's package list, and every name here is one adapter of one library.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from agentmem.errors import (
    AgentMemError,
    InputError,
    MissingExtraError,
    ModelError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    NotFoundError,
    StructuredOutputError,
)
from agentmem.memory import Memory, MemoryRecord
from agentmem.models.llm import parse_json_answer
from agentmem.protocols import ChatModel
from agentmem.results import ChangeResult
from agentmem.types import Completion, Message, Role, Usage

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.documents import Document
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import (
        AIMessage,
        AIMessageChunk,
        BaseMessage,
        ChatMessage,
        HumanMessage,
        SystemMessage,
    )
    from langchain_core.messages.ai import UsageMetadata
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.tools import BaseTool, StructuredTool, ToolException
except ImportError as exc:
    raise MissingExtraError(
        "the LangChain adapters need langchain-core", hint="pip install 'agentmem[langchain]'"
    ) from exc

logger = logging.getLogger(__name__)

T = TypeVar("T")
StructuredMode = Literal["auto", "native", "json"]


# -- the retriever ---------------------------------------------------------------------------


class AgentMemRetriever(BaseRetriever):
    """Retrieve a user's memory items as LangChain documents.

    Each document's ``page_content`` is the item's text, its ``id`` the item's id, and its
    metadata JSON-safe: ``id``, ``store``, ``kind``, ``score``, ``source_turn_ids``,
    ``current``, ``valid_from`` / ``invalid_at`` (ISO 8601 or ``None``) and
    ``superseded_by``.

    Example:
        ```python
        retriever = AgentMemRetriever(memory=memory, user_id="ana", top_k=5)
        docs = retriever.invoke("Where does Ana live?")
        docs = retriever.invoke("Where does Ana live?", top_k=2)
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Memory
    """The memory to search."""
    user_id: str
    """Whose memory to search (a user never sees another's items)."""
    top_k: int = Field(default=10, ge=1)
    """How many documents to return (at most)."""
    include_history: bool = False
    """Also return invalidated items (their ``current`` metadata is False)."""
    agent_id: str | None = None
    """Only items of this agent (and items with no agent)."""
    filters: dict[str, Any] | None = None
    """Equality filters, as :meth:`Memory.search` takes them."""

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        top_k: int | None = None,
        filters: dict[str, Any] | None = None,
        as_of: datetime | str | None = None,
    ) -> list[Document]:
        result = self.memory.search(
            query,
            user_id=self.user_id,
            top_k=self.top_k if top_k is None else top_k,
            filters=self.filters if filters is None else filters,
            as_of=as_of,
            include_history=self.include_history,
            agent_id=self.agent_id,
        )
        return [record_document(record) for record in result.items]


def record_document(record: MemoryRecord) -> Document:
    """Return a memory item as a LangChain document with JSON-safe metadata."""
    return Document(
        id=record["id"],
        page_content=record["memory"],
        metadata={
            "id": record["id"],
            "store": record["store"],
            "kind": record["kind"],
            "score": record["score"],
            "source_turn_ids": list(record["source_turn_ids"]),
            "current": record["current"],
            "valid_from": _iso(record["valid_from"]),
            "invalid_at": _iso(record["invalid_at"]),
            "superseded_by": record["superseded_by"],
        },
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# -- message conversion ------------------------------------------------------------------------

_ROLES: dict[str, Role] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
}


def to_langchain_messages(messages: Sequence[Message]) -> list[BaseMessage]:
    """Convert agentmem messages to LangChain messages."""
    converted: list[BaseMessage] = []
    for message in messages:
        if message.role == "system":
            converted.append(SystemMessage(content=message.content))
        elif message.role == "assistant":
            converted.append(AIMessage(content=message.content, name=message.name))
        else:
            converted.append(HumanMessage(content=message.content, name=message.name))
    return converted


def from_langchain_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """Convert LangChain messages to agentmem messages.

    Raises:
        InputError: A message has a role agentmem's chat models do not take (e.g. a tool
            result).
    """
    converted = []
    for message in messages:
        kind = message.role if isinstance(message, ChatMessage) else message.type
        role = _ROLES.get(kind)
        if role is None:
            raise InputError(
                f"agentmem chat models take system, user and assistant messages, not {kind!r}"
            )
        converted.append(Message(role, str(message.text), message.name))
    return converted


def _usage(message: object) -> Usage:
    metadata = getattr(message, "usage_metadata", None) or {}
    return Usage(int(metadata.get("input_tokens", 0)), int(metadata.get("output_tokens", 0)))


def _usage_metadata(usage: Usage) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


# -- a LangChain chat model as an agentmem ChatModel --------------------------------------------


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


# -- an agentmem ChatModel as a LangChain chat model --------------------------------------------


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


# -- conversation history ----------------------------------------------------------------------


class AgentMemChatMessageHistory(BaseChatMessageHistory):
    """Keep a LangChain conversation's history as a session of agentmem turns.

    With ``RunnableWithMessageHistory``, every exchange goes through :meth:`Memory.add`
    (human messages as user turns, AI messages as assistant turns, in the given session),
    so memory learns from it as it would from any conversation, and a later session
    recalls it (through :class:`AgentMemRetriever`, say). :attr:`messages` reads the
    session's turns back, oldest first.

    History is memory here: :meth:`clear` ends the session (letting the memory structures
    consolidate it) and erases nothing; the session's turns stay its history. To erase a
    user's memory use :meth:`Memory.forget`, to remove one item :meth:`Memory.delete`.

    System messages are instructions, not memory, and tool calls and tool results are the
    agent's work, not the dialogue: neither is stored.

    Example:
        ```python
        chain_with_history = RunnableWithMessageHistory(
            chain,
            lambda session_id: AgentMemChatMessageHistory(memory, "ana", session_id),
            input_messages_key="question",
            history_messages_key="history",
        )
        chain_with_history.invoke(
            {"question": "Hi"}, config={"configurable": {"session_id": "s1"}}
        )
        ```

    Args:
        memory: The memory that stores the turns.
        user_id: Whose conversation this is.
        session_id: The dialogue session (created on the first message if new).
        agent_id: The agent in the conversation, recorded on turns and items.
    """

    def __init__(
        self, memory: Memory, user_id: str, session_id: str, *, agent_id: str | None = None
    ) -> None:
        self.memory = memory
        self.user_id = user_id
        self.session_id = session_id
        self.agent_id = agent_id

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]  # read-only: the turns
        """Return the session's turns as LangChain messages, oldest first."""
        turns = self.memory.records.turns(self.user_id, session_id=self.session_id)
        converted: list[BaseMessage] = []
        for turn in turns:
            name = turn.speaker if turn.speaker != turn.role else None
            if turn.role == "assistant":
                converted.append(AIMessage(content=turn.text, name=name))
            else:
                converted.append(HumanMessage(content=turn.text, name=name))
        return converted

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store the human and AI messages as turns of the session, in one :meth:`Memory.add`.

        Raises:
            InputError: A message's text is not acceptable; nothing was stored.
        """
        turns = []
        for message in messages:
            role = _HISTORY_ROLES.get(message.type)
            text = str(message.text)
            if role is None or not text.strip():
                logger.debug("not storing a %s message in history", message.type)
                continue
            turn: dict[str, Any] = {"role": role, "content": text}
            if message.name:
                turn["name"] = message.name
            turns.append(turn)
        if turns:
            self.memory.add(
                turns, user_id=self.user_id, agent_id=self.agent_id, session_id=self.session_id
            )

    def clear(self) -> None:
        """End the session; its turns, and what memory learned from them, are kept."""
        self.memory.end_session(self.user_id, self.session_id)


_HISTORY_ROLES: dict[str, Role] = {"human": "user", "ai": "assistant"}


# -- memory tools for tool-calling agents -------------------------------------------------------


def memory_tools(
    memory: Memory, user_id: str, *, agent_id: str | None = None, top_k: int = 5
) -> list[BaseTool]:
    """Return the tools that let a tool-calling agent use a user's memory.

    * ``search_memory(query)``: the current items most relevant to ``query``, as JSON with
      each item's id, text, validity (``valid_from``) and provenance (``source_turn_ids``,
      ``session_id``).
    * ``save_memory(text)``: adds ``text`` as a user turn; returns what changed.
    * ``forget_memory(item_id)``: deletes one item through :meth:`Memory.delete` (it stays
      in history); returns what changed.

    A failure (an unknown id, an empty query) comes back to the model as the tool's
    answer, so it can correct itself.

    Args:
        memory: The memory the tools work on.
        user_id: Whose memory; the model cannot reach another user's.
        agent_id: The agent, recorded on saved turns and used to scope searches.
        top_k: How many items ``search_memory`` returns (at most).
    """

    def search_memory(query: str) -> str:
        """Search the user's long-term memory for what is known about the query."""
        with _tool_errors():
            result = memory.search(query, user_id=user_id, top_k=top_k, agent_id=agent_id)
        return _json([_tool_item(record) for record in result.items])

    def save_memory(text: str) -> str:
        """Save something the user said, or wants remembered, to long-term memory."""
        with _tool_errors():
            result = memory.add(
                [{"role": "user", "content": text}], user_id=user_id, agent_id=agent_id
            )
        return _json({"turn_ids": result.turn_ids, "events": _events(result)})

    def forget_memory(item_id: str) -> str:
        """Forget one memory item by its id (as search_memory returns it)."""
        with _tool_errors():
            result = memory.delete(item_id, user_id=user_id)
        return _json({"events": _events(result)})

    return [
        StructuredTool.from_function(function, handle_tool_error=True)
        for function in (search_memory, save_memory, forget_memory)
    ]


@contextmanager
def _tool_errors() -> Iterator[None]:
    """Turn agentmem's input errors into tool errors the model reads as the answer."""
    try:
        yield
    except (InputError, NotFoundError) as exc:
        raise ToolException(str(exc)) from exc


def _tool_item(record: MemoryRecord) -> dict[str, Any]:
    return {
        "id": record["id"],
        "memory": record["memory"],
        "store": record["store"],
        "current": record["current"],
        "valid_from": _iso(record["valid_from"]),
        "invalid_at": _iso(record["invalid_at"]),
        "session_id": record["session_id"],
        "source_turn_ids": list(record["source_turn_ids"]),
    }


def _events(result: ChangeResult) -> list[dict[str, Any]]:
    return [
        {
            "event": event["event"],
            "id": event["id"],
            "memory": event["memory"],
            "store": event["store"],
            "reason": event["reason"],
            "current": event["current"],
        }
        for event in result.events
    ]


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


__all__ = [
    "AgentMemChatMessageHistory",
    "AgentMemChatModel",
    "AgentMemRetriever",
    "LangChainChatModel",
    "from_langchain_messages",
    "json_instruction",
    "memory_tools",
    "record_document",
    "to_langchain_messages",
]
