"""LangChain interop: the retriever passes the standard suite; chat models adapt both ways."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_tests.integration_tests import ChatModelIntegrationTests, RetrieversIntegrationTests

from agentmem.errors import InputError, ModelError, ModelTimeoutError, StructuredOutputError
from agentmem.langchain import AgentMemChatModel, AgentMemRetriever, LangChainChatModel
from agentmem.memory import Memory
from agentmem.testing import ScriptedChatModel
from agentmem.types import Message, Usage

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
DIALOGUE = [
    "My sister Ana lives in Porto and teaches piano there.",
    "I adopted a beagle puppy named Rex last weekend.",
    "I work as a nurse at the city hospital.",
    "My favourite food is spicy ramen.",
    "We are planning a hiking trip to the Alps next summer.",
    "My brother Tom just bought a red electric car.",
]


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    """Memory seeded with one user's dialogue (and another user's, for scoping)."""
    folder: Path = tmp_path_factory.mktemp("langchain-memory")
    with Memory(folder, model="none", stores=("turns",), env={}) as seeded:
        for day, line in enumerate(DIALOGUE):
            seeded.add(line, user_id="ana", timestamp=datetime(2024, 1, 1 + day))
        seeded.add("I live in Boston.", user_id="ana", timestamp=datetime(2024, 2, 1))
        seeded.add("We moved to Denver last week.", user_id="ana", timestamp=datetime(2024, 3, 1))
        seeded.add("My cat Tiger sleeps all day.", user_id="bob", timestamp=datetime(2024, 1, 1))
        yield seeded


class TestAgentMemRetrieverStandard(RetrieversIntegrationTests):
    """langchain-tests' standard retriever suite, over real seeded memory."""

    # The suite has an async test; anyio's plugin runs it (sync tests are left alone,
    # where an asyncio mark on the class would warn about each of them).
    pytestmark = pytest.mark.anyio

    @pytest.fixture(autouse=True)
    def _seeded(self, memory: Memory) -> None:
        self.memory = memory

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return AgentMemRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"memory": self.memory, "user_id": "ana"}

    @property
    def retriever_query_example(self) -> str:
        return "Where does my sister Ana live?"

    # num_results_arg_name is left at the suite's default, "k", as LangChain's retrievers take.


# -- the retriever's own behaviour ------------------------------------------------------------


def test_documents_carry_item_text_and_json_safe_provenance(memory: Memory) -> None:
    docs = AgentMemRetriever(memory=memory, user_id="ana", top_k=3).invoke(
        "Where does my sister Ana live?"
    )
    assert "Porto" in docs[0].page_content
    top = docs[0].metadata
    assert json.loads(json.dumps(top)) == top  # JSON-safe as it is
    assert top["id"] == docs[0].id and top["current"] is True
    assert top["source_turn_ids"] and all(isinstance(t, int) for t in top["source_turn_ids"])
    assert top["valid_from"] == "2024-01-01T00:00:00"
    assert top["store"] in ("turns", "facts") and isinstance(top["score"], float)


def test_history_flag_brings_back_superseded_items(memory: Memory) -> None:
    current = AgentMemRetriever(memory=memory, user_id="ana", top_k=10)
    texts = [d.page_content for d in current.invoke("Where does the user live?")]
    assert not any("Boston" in t for t in texts)
    history = AgentMemRetriever(memory=memory, user_id="ana", top_k=10, include_history=True)
    old = [d for d in history.invoke("Where does the user live?") if "Boston" in d.page_content]
    assert old and all(d.metadata["current"] is False for d in old)
    assert all(d.metadata["invalid_at"] == "2024-03-01T00:00:00" for d in old)


def test_retriever_is_scoped_by_user(memory: Memory) -> None:
    docs = AgentMemRetriever(memory=memory, user_id="bob").invoke("Where does Ana live?")
    assert docs and all("Ana" not in d.page_content for d in docs)
    assert AgentMemRetriever(memory=memory, user_id="nobody").invoke("anything") == []


def test_retriever_passes_filters(memory: Memory) -> None:
    retriever = AgentMemRetriever(memory=memory, user_id="ana", filters={"store": "facts"})
    docs = retriever.invoke("Where does the user live?")
    assert docs and {d.metadata["store"] for d in docs} == {"facts"}
    turns = retriever.invoke("Where does the user live?", filters={"kind": "turn"})
    assert turns and {d.metadata["kind"] for d in turns} == {"turn"}


# -- a LangChain chat model as an agentmem ChatModel -------------------------------------------


class PromptRecorder(BaseCallbackHandler):
    """Keeps the prompts a LangChain chat model was called with."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.prompts += messages


def fake(*replies: str | AIMessage, recorder: PromptRecorder | None = None) -> BaseChatModel:
    return GenericFakeChatModel(
        messages=iter(replies), callbacks=[recorder] if recorder is not None else None
    )


def test_langchain_model_completes_and_reports_usage() -> None:
    reply = AIMessage(
        "Porto.", usage_metadata={"input_tokens": 12, "output_tokens": 2, "total_tokens": 14}
    )
    recorder = PromptRecorder()
    model = LangChainChatModel(fake(reply, recorder=recorder))
    completion = model.complete(
        [Message("system", "Be brief."), Message("user", "Where?", name="Ana")]
    )
    assert completion.text == "Porto." and completion.data is None
    assert completion.usage == Usage(12, 2)
    sent = recorder.prompts[0]
    assert isinstance(sent[0], SystemMessage) and isinstance(sent[1], HumanMessage)
    assert sent[1].name == "Ana" and sent[1].content == "Where?"


def test_langchain_model_without_structured_output_is_prompted_for_json() -> None:
    recorder = PromptRecorder()
    model = LangChainChatModel(fake('```json\n{"city": "Porto"}\n```', recorder=recorder))
    completion = model.complete([Message("user", "Where does Ana live?")], schema=SCHEMA)
    assert completion.data == {"city": "Porto"}
    system = recorder.prompts[0][0]
    assert isinstance(system, SystemMessage) and '"required": ["city"]' in str(system.content)


def test_langchain_model_json_answer_missing_a_key_is_a_structured_output_error() -> None:
    model = LangChainChatModel(fake('{"town": "Porto"}'))
    with pytest.raises(StructuredOutputError):
        model.complete([Message("user", "Where?")], schema=SCHEMA)


class StructuredFake(BaseChatModel):
    """A LangChain chat model with native structured output, answering from a script."""

    answers: list[dict[str, Any] | None]
    schemas: list[dict[str, Any]] = []

    @property
    def _llm_type(self) -> str:
        return "structured-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("plain"))])

    def with_structured_output(  # type: ignore[override]
        self, schema: dict[str, Any], *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[Any, Any]:
        self.schemas.append(schema)
        usage = {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}

        def answer(_prompt: Any) -> dict[str, Any]:
            parsed = self.answers.pop(0)
            raw = AIMessage("", usage_metadata=usage)  # type: ignore[arg-type]
            return {"raw": raw, "parsed": parsed, "parsing_error": None if parsed else "bad"}

        return RunnableLambda(answer)


def test_langchain_model_uses_native_structured_output_when_it_has_one() -> None:
    native = StructuredFake(answers=[{"city": "Porto"}, None], schemas=[])
    model = LangChainChatModel(native)
    completion = model.complete([Message("user", "Where?")], schema=SCHEMA)
    assert completion.data == {"city": "Porto"} and completion.usage == Usage(5, 3)
    assert native.schemas[0]["title"] == "answer" and native.schemas[0]["required"] == ["city"]
    with pytest.raises(StructuredOutputError):
        model.complete([Message("user", "Where?")], schema=SCHEMA)


def test_native_mode_refuses_a_model_without_structured_output() -> None:
    model = LangChainChatModel(fake("{}"), structured_output="native")
    with pytest.raises(ModelError, match="no native structured output"):
        model.complete([Message("user", "Where?")], schema=SCHEMA)


def test_langchain_model_streams_and_wraps_errors() -> None:
    model = LangChainChatModel(FakeListChatModel(responses=["Your sister lives in Porto."]))
    chunks = list(model.stream([Message("user", "Where?")]))
    assert len(chunks) > 1 and "".join(chunks) == "Your sister lives in Porto."

    def timing_out() -> Iterator[str]:
        raise TimeoutError("the endpoint did not answer")
        yield "never"

    with pytest.raises(ModelTimeoutError) as caught:
        LangChainChatModel(GenericFakeChatModel(messages=timing_out())).complete(
            [Message("user", "Where?")]
        )
    assert caught.value.retryable
    with pytest.raises(ModelTimeoutError):
        list(LangChainChatModel(GenericFakeChatModel(messages=timing_out())).stream([]))


# -- an agentmem ChatModel as a LangChain chat model -------------------------------------------


class TestAgentMemChatModelStandard(ChatModelIntegrationTests):
    """langchain-tests' standard chat model suite (tool calling and structured output skip)."""

    pytestmark = pytest.mark.anyio

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return AgentMemChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"chat_model": ScriptedChatModel(default="Hello! Two haikus, as asked.")}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False


def test_agentmem_model_answers_through_langchain_with_usage() -> None:
    scripted = ScriptedChatModel(["It is in Porto."])
    model = AgentMemChatModel(chat_model=scripted)
    reply = model.invoke(
        [SystemMessage("Be brief."), HumanMessage("Where?"), AIMessage("Hm?"), HumanMessage("Ana")]
    )
    assert reply.content == "It is in Porto."
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] > 0
    sent = scripted.calls[0].messages
    assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[-1].content == "Ana"


def test_agentmem_model_streams_tokens_to_callbacks() -> None:
    tokens: list[str] = []

    class Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            tokens.append(str(token))

    scripted = ScriptedChatModel(["Your sister lives in Porto."])
    model = AgentMemChatModel(chat_model=scripted, callbacks=[Tokens()])
    chunks = list(model.stream("Where?"))
    assert "".join(str(c.content) for c in chunks) == "Your sister lives in Porto."
    assert "".join(tokens) == "Your sister lives in Porto." and len(tokens) > 1
    assert scripted.calls[0].streamed
    assert chunks[-1].usage_metadata is not None  # the scripted model reports its usage


def test_agentmem_model_honours_stop_sequences() -> None:
    scripted = ScriptedChatModel(["Porto.\nUser: and Tom?", "Porto.\nUser: and Tom?"])
    model = AgentMemChatModel(chat_model=scripted)
    assert model.invoke("Where?", stop=["\nUser:"]).content == "Porto."
    streamed = "".join(str(c.content) for c in model.stream("Where?", stop=["\nUser:"]))
    assert streamed == "Porto."


def test_agentmem_model_refuses_tool_messages() -> None:
    model = AgentMemChatModel(chat_model=ScriptedChatModel())
    with pytest.raises(InputError):
        model.invoke([HumanMessage("hi"), ToolMessage("42", tool_call_id="t1")])


def test_round_trip_through_both_adapters_keeps_json_answers() -> None:
    scripted = ScriptedChatModel([{"city": "Porto"}])
    model = LangChainChatModel(AgentMemChatModel(chat_model=scripted))
    completion = model.complete([Message("user", "Where does Ana live?")], schema=SCHEMA)
    assert completion.data == {"city": "Porto"}
    instruction = scripted.calls[0].messages[0]
    assert instruction.role == "system" and re.search(r"JSON schema", instruction.content)
