"""The agent over the OpenAI path, built from configuration, against a real HTTP fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmem.config import load_config
from agentmem.errors import ModelTimeoutError
from agentmem.factory import Components, build, build_agent
from agentmem.testing import FakeOpenAIServer, Fault


@pytest.fixture
def components(server: FakeOpenAIServer, tmp_path: Path) -> Iterator[Components]:
    config = load_config(
        env={},
        data_dir=tmp_path,
        user_id="ana",
        model="openai:fake-chat",
        openai_base_url=server.base_url,
        timeout=0.5,
        retries=2,
        model_builders="no",
    )
    built = build(config)
    yield built
    built.close()


def test_streamed_answer_uses_memory(server: FakeOpenAIServer, components: Components) -> None:
    agent = build_agent(components)
    server.script("Noted.", "She lives in Porto.")
    agent.send("My sister Ana lives in Porto")
    agent.new_session()  # so the fact comes from memory, not the recent-turns window
    chunks: list[str] = []
    result = agent.send("Where does my sister live?", on_token=chunks.append)
    assert len(chunks) > 1 and "".join(chunks) == "She lives in Porto."
    last = server.chat_requests()[-1]
    assert last["stream"] is True
    assert "My sister Ana lives in Porto" in last["messages"][0]["content"]
    assert result.answer == "She lives in Porto."


def test_a_500_is_retried(server: FakeOpenAIServer, components: Components) -> None:
    agent = build_agent(components)
    server.fail(Fault.status(500))
    server.script("Hello again.")
    result = agent.send("Hi there", on_token=lambda _c: None)
    assert result.answer == "Hello again."
    assert len(server.chat_requests()) == 2
    assert components.model is not None
    assert getattr(components.model, "failures", 0) == 0  # the retry hid the failure


def test_timeout_is_typed_and_the_turn_is_kept(
    server: FakeOpenAIServer, components: Components
) -> None:
    agent = build_agent(components)
    server.fail(Fault.delay(3), Fault.delay(3))
    with pytest.raises(ModelTimeoutError) as caught:
        agent.send("My bike is red", on_token=lambda _c: None)
    assert caught.value.retryable
    turns = components.records.turns("ana")
    assert [t.text for t in turns] == ["My bike is red"]
    recall = components.manager.recall("what colour is my bike", agent.scope)
    assert any("bike is red" in item.text for item in recall.memory)


def test_json_schema_call_through_the_configured_model(
    server: FakeOpenAIServer, components: Components
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    server.script({"city": "Porto"})
    from agentmem.types import Message

    assert components.model is not None
    completion = components.model.complete([Message("user", "Where?")], schema=schema)
    assert completion.data == {"city": "Porto"}
    sent = server.chat_requests()[-1]
    assert sent["response_format"]["type"] == "json_schema"
    assert completion.usage.total_tokens > 0


def test_model_builds_memory_with_one_call_per_turn(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    config = load_config(
        env={},
        data_dir=tmp_path,
        user_id="sam",
        model="openai:fake-chat",
        openai_base_url=server.base_url,
        retries=1,
    )
    built = build(config)
    try:
        agent = build_agent(built)
        fact = {
            "subject": "Sam",
            "aspect": "job",
            "value": "barista",
            "stated": True,
            "single_valued": True,
        }
        add = {"op": "ADD", "id": None, "fact": fact, "reason": "a new job"}
        server.script("Nice.", {"operations": [add]})
        result = agent.send("I work as a barista.", on_token=lambda _c: None)
        # The answer, then one resolution call for the user's turn (none for the answer).
        assert len(server.chat_requests()) == 2
        assert "response_format" in server.chat_requests()[1].body
        superseding = {**fact, "value": "librarian"}
        update = {"op": "UPDATE", "id": "F1", "fact": superseding, "reason": "a new job"}
        server.script("Congrats!", {"operations": [update]})
        second = agent.send("I now work as a librarian.", on_token=lambda _c: None)
        assert len(server.chat_requests()) == 4
        prompt = str(server.chat_requests()[3].body["messages"])
        assert "F1" in prompt and "Sam works as barista" in prompt
        assert result.memory.count("ADD") >= 1
        assert second.memory.count("SUPERSEDE") >= 1
        facts = built.records.store_items("facts", "sam", current_only=False)
        assert {(f.text, f.current) for f in facts} == {
            ("Sam works as barista", False),
            ("Sam works as librarian", True),
        }
    finally:
        built.close()
