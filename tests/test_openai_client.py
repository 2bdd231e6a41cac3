"""OpenAIChatModel and OpenAIEmbedder: the real ``openai`` client over real HTTP to the fake."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from agentmem.errors import (
    EmbeddingError,
    ModelError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    StructuredOutputError,
)
from agentmem.models.openai_client import OpenAIChatModel, OpenAIEmbedder
from agentmem.protocols import ChatModel, Embedder
from agentmem.testing import FakeOpenAIServer, Fault
from agentmem.types import Message, Usage

MESSAGES = [Message("system", "You extract facts."), Message("user", "I moved to Lisbon in May")]
SCHEMA = {
    "title": "extracted facts",
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
    "required": ["facts"],
}


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(embedding_dimension=32) as fake:
        yield fake


@pytest.fixture
def model(server: FakeOpenAIServer) -> Iterator[OpenAIChatModel]:
    with OpenAIChatModel("fake-chat", base_url=server.base_url, timeout=5) as chat:
        yield chat


@pytest.fixture
def embedder(server: FakeOpenAIServer) -> Iterator[OpenAIEmbedder]:
    with OpenAIEmbedder("fake-embedding", base_url=server.base_url) as instance:
        yield instance


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- chat ------------------------------------------------------------------------------------


def test_implements_the_chat_model_protocol(model: OpenAIChatModel) -> None:
    assert isinstance(model, ChatModel)
    assert model.name == "openai:fake-chat"


def test_complete_returns_text_and_usage(model: OpenAIChatModel, server: FakeOpenAIServer) -> None:
    server.script("You moved to Lisbon.")

    completion = model.complete(MESSAGES)

    assert completion.text == "You moved to Lisbon."
    assert completion.data is None
    assert completion.usage == Usage(prompt_tokens=10, completion_tokens=5)
    assert completion.model == "fake-chat"


def test_complete_sends_messages_and_settings(server: FakeOpenAIServer) -> None:
    named = [*MESSAGES, Message("user", "hi", name="ana")]
    with OpenAIChatModel(
        "fake-chat", base_url=server.base_url, temperature=0.7, max_tokens=64
    ) as chat:
        chat.complete(named)

    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request["model"] == "fake-chat"
    assert request["messages"][0] == {"role": "system", "content": "You extract facts."}
    assert request["messages"][2] == {"role": "user", "content": "hi", "name": "ana"}
    assert request["temperature"] == 0.7
    assert request["max_tokens"] == 64
    assert "response_format" not in request.body
    assert request.headers["authorization"] == "Bearer not-needed"


def test_stream_assembles_chunks_and_keeps_usage(
    model: OpenAIChatModel, server: FakeOpenAIServer
) -> None:
    server.script("You moved to Lisbon in May.")

    chunks = list(model.stream(MESSAGES))

    assert len(chunks) > 1
    assert "".join(chunks) == "You moved to Lisbon in May."
    assert model.last_usage == Usage(prompt_tokens=10, completion_tokens=6)
    request = server.requests[0]
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}


def test_stream_closed_early_releases_the_connection(
    model: OpenAIChatModel, server: FakeOpenAIServer
) -> None:
    server.script("one two three four", "next")

    chunks = model.stream(MESSAGES)
    assert next(chunks) == "one "
    chunks.close()

    assert model.complete(MESSAGES).text == "next"


def test_schema_call_returns_parsed_data(model: OpenAIChatModel, server: FakeOpenAIServer) -> None:
    server.script({"facts": ["lives in Lisbon"]})

    completion = model.complete(MESSAGES, schema=SCHEMA)

    assert completion.data == {"facts": ["lives in Lisbon"]}
    response_format = server.requests[0]["response_format"]
    assert response_format == {
        "type": "json_schema",
        "json_schema": {"name": "extracted_facts", "schema": SCHEMA, "strict": False},
    }


def test_schema_call_tolerates_a_fenced_block(
    model: OpenAIChatModel, server: FakeOpenAIServer
) -> None:
    server.script('Here you go:\n```json\n{"facts": []}\n```')

    assert model.complete(MESSAGES, schema=SCHEMA).data == {"facts": []}


def test_malformed_json_on_schema_call_raises_structured_output_error(
    model: OpenAIChatModel, server: FakeOpenAIServer
) -> None:
    server.fail(Fault.malformed())

    with pytest.raises(StructuredOutputError) as caught:
        model.complete(MESSAGES, schema=SCHEMA)

    assert caught.value.retryable


def test_missing_required_key_raises_structured_output_error(
    model: OpenAIChatModel, server: FakeOpenAIServer
) -> None:
    server.script({"fact": "singular"})

    with pytest.raises(StructuredOutputError, match="facts"):
        model.complete(MESSAGES, schema=SCHEMA)


def test_body_that_is_not_json_raises_retryable_response_error(
    model: OpenAIChatModel, server: FakeOpenAIServer
) -> None:
    server.fail(Fault.malformed(raw=True), Fault.malformed(raw=True))

    with pytest.raises(ModelResponseError, match="malformed response") as caught:
        model.complete(MESSAGES)
    assert caught.value.retryable
    with pytest.raises(ModelResponseError, match="malformed stream chunk"):
        list(model.stream(MESSAGES))


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_retryable_response_errors(
    model: OpenAIChatModel, server: FakeOpenAIServer, status: int
) -> None:
    server.fail(Fault.status(status))

    with pytest.raises(ModelResponseError) as caught:
        model.complete(MESSAGES)

    assert caught.value.status == status
    assert caught.value.retryable
    assert "injected fault" in str(caught.value)


def test_401_is_a_response_error_that_is_not_retryable(
    model: OpenAIChatModel, server: FakeOpenAIServer
) -> None:
    server.fail(Fault.status(401))

    with pytest.raises(ModelResponseError) as caught:
        model.complete(MESSAGES)

    assert caught.value.status == 401
    assert not caught.value.retryable
    assert "OPENAI_API_KEY" in caught.value.hint


def test_404_hints_at_the_model_name(model: OpenAIChatModel, server: FakeOpenAIServer) -> None:
    server.fail(Fault.status(404))

    with pytest.raises(ModelResponseError) as caught:
        list(model.stream(MESSAGES))

    assert caught.value.status == 404
    assert "fake-chat" in caught.value.hint


def test_timeout_raises_retryable_model_timeout_error(server: FakeOpenAIServer) -> None:
    server.fail(Fault.delay(5))

    with (
        OpenAIChatModel("fake-chat", base_url=server.base_url, timeout=0.5) as chat,
        pytest.raises(ModelTimeoutError) as caught,
    ):
        chat.complete(MESSAGES)

    assert caught.value.retryable


def test_connection_refused_raises_model_unavailable_with_a_hint() -> None:
    base_url = f"http://127.0.0.1:{unused_port()}/v1"

    with (
        OpenAIChatModel("fake-chat", base_url=base_url, timeout=2) as chat,
        pytest.raises(ModelUnavailableError) as caught,
    ):
        chat.complete(MESSAGES)

    assert caught.value.retryable
    assert "OPENAI_BASE_URL" in caught.value.hint
    assert base_url in str(caught.value)


def test_truncated_stream_raises_a_retryable_model_error_after_the_first_chunk(
    model: OpenAIChatModel, server: FakeOpenAIServer
) -> None:
    server.script("this answer is cut short")
    server.fail(Fault.truncate())
    chunks: list[str] = []

    with pytest.raises(ModelError) as caught:
        chunks.extend(model.stream(MESSAGES))

    assert chunks == ["this "]
    assert isinstance(caught.value, ModelUnavailableError | ModelResponseError)
    assert caught.value.retryable


def test_stream_ending_without_a_finish_is_a_retryable_error(
    model: OpenAIChatModel, server: FakeOpenAIServer
) -> None:
    server.fail(Fault.truncate(clean=True))

    with pytest.raises(ModelResponseError, match="before the answer finished") as caught:
        list(model.stream(MESSAGES))

    assert caught.value.retryable


def test_truncated_completion_body_is_a_retryable_unavailable_error(
    model: OpenAIChatModel, server: FakeOpenAIServer
) -> None:
    server.fail(Fault.truncate())

    with pytest.raises(ModelUnavailableError, match="mid-answer") as caught:
        model.complete(MESSAGES)

    assert caught.value.retryable


# -- embeddings ------------------------------------------------------------------------------


def test_embedder_implements_the_protocol(embedder: OpenAIEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.name == "openai:fake-embedding"


def test_embedder_returns_unit_float32_rows(embedder: OpenAIEmbedder) -> None:
    vectors = embedder.embed(["I moved to Lisbon", "Lisbon in May", "", "quarterly tax"])

    assert vectors.shape == (4, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[3]


def test_embedder_learns_its_dimension_from_the_server(
    embedder: OpenAIEmbedder, server: FakeOpenAIServer
) -> None:
    assert embedder.dimension == 32
    assert embedder.dimension == 32
    assert len(server.requests) == 1
    assert embedder.embed([]).shape == (0, 32)
    assert len(server.requests) == 1


def test_embedder_sends_a_requested_dimension(server: FakeOpenAIServer) -> None:
    with OpenAIEmbedder("fake-embedding", base_url=server.base_url, dimension=8) as embedder:
        assert embedder.dimension == 8
        assert embedder.embed(["a", "b"]).shape == (2, 8)

    assert server.requests[0]["dimensions"] == 8


def test_embedder_batches_at_most_256_texts(
    embedder: OpenAIEmbedder, server: FakeOpenAIServer
) -> None:
    texts = [f"text number {index}" for index in range(600)]

    vectors = embedder.embed(texts)

    assert vectors.shape == (600, 32)
    assert [len(request["input"]) for request in server.requests] == [256, 256, 88]
    np.testing.assert_allclose(vectors[300], embedder.embed(["text number 300"])[0], rtol=1e-6)


def test_embedder_server_error_is_retryable(
    embedder: OpenAIEmbedder, server: FakeOpenAIServer
) -> None:
    server.fail(Fault.status(500))

    with pytest.raises(EmbeddingError) as caught:
        embedder.embed(["x"])

    assert caught.value.retryable


def test_embedder_auth_error_is_not_retryable(
    embedder: OpenAIEmbedder, server: FakeOpenAIServer
) -> None:
    server.fail(Fault.status(401))

    with pytest.raises(EmbeddingError) as caught:
        embedder.embed(["x"])

    assert not caught.value.retryable
    assert "OPENAI_API_KEY" in caught.value.hint


def test_embedder_connection_refused_is_retryable() -> None:
    base_url = f"http://127.0.0.1:{unused_port()}/v1"

    with (
        OpenAIEmbedder(base_url=base_url, dimension=4) as embedder,
        pytest.raises(EmbeddingError) as caught,
    ):
        embedder.embed(["x"])

    assert caught.value.retryable
    assert "OPENAI_BASE_URL" in caught.value.hint
