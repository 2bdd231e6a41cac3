"""The fakes shipped in agentmem.testing: the scripted chat model and the fake OpenAI server.

The server is exercised here with the standard library's HTTP client, independently of
the ``openai`` client (which tests/test_openai_client.py drives against it).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from agentmem.errors import ModelTimeoutError, StructuredOutputError
from agentmem.protocols import ChatModel
from agentmem.testing import (
    FakeOpenAIServer,
    Fault,
    ScriptedCall,
    ScriptedChatModel,
    schema_reply,
    split_into_chunks,
)
from agentmem.types import Message, Turn, Usage

HELLO = [Message("system", "Be brief."), Message("user", "Say hello to the whole world")]
SCHEMA = {"type": "object", "properties": {"facts": {"type": "array"}}, "required": ["facts"]}


# -- ScriptedChatModel --------------------------------------------------------------------


def test_scripted_model_is_a_chat_model() -> None:
    assert isinstance(ScriptedChatModel(), ChatModel)


def test_scripted_model_answers_in_order_then_default() -> None:
    model = ScriptedChatModel(["first", "second"], default="fallback")

    answers = [model.complete(HELLO).text for _ in range(3)]

    assert answers == ["first", "second", "fallback"]
    assert model.remaining == 0


def test_scripted_model_without_default_fails_when_exhausted() -> None:
    model = ScriptedChatModel(["only"], default=None)
    model.complete(HELLO)

    with pytest.raises(AssertionError, match="ran out of scripted replies"):
        model.complete(HELLO)


def test_scripted_model_records_calls() -> None:
    model = ScriptedChatModel([{"facts": []}, "streamed answer"])

    model.complete(HELLO, schema=SCHEMA)
    list(model.stream(HELLO[1:]))

    assert model.calls == [
        ScriptedCall(tuple(HELLO), SCHEMA, streamed=False),
        ScriptedCall((HELLO[1],), None, streamed=True),
    ]


def test_scripted_dict_reply_is_json_text_and_data_for_schema_calls() -> None:
    model = ScriptedChatModel([{"facts": ["likes tea"]}, {"facts": []}])

    with_schema = model.complete(HELLO, schema=SCHEMA)
    without_schema = model.complete(HELLO)

    assert json.loads(with_schema.text) == {"facts": ["likes tea"]}
    assert with_schema.data == {"facts": ["likes tea"]}
    assert json.loads(without_schema.text) == {"facts": []}
    assert without_schema.data is None


def test_scripted_text_reply_to_schema_call_is_parsed_like_a_model_answer() -> None:
    model = ScriptedChatModel(['```json\n{"facts": [1]}\n```', "not json", '{"other": 1}'])

    assert model.complete(HELLO, schema=SCHEMA).data == {"facts": [1]}
    with pytest.raises(StructuredOutputError, match="not valid JSON"):
        model.complete(HELLO, schema=SCHEMA)
    with pytest.raises(StructuredOutputError, match="misses required keys"):
        model.complete(HELLO, schema=SCHEMA)


def test_scripted_exception_is_raised_once() -> None:
    model = ScriptedChatModel([ModelTimeoutError("slow"), "recovered"])

    with pytest.raises(ModelTimeoutError):
        model.complete(HELLO)
    assert model.complete(HELLO).text == "recovered"


def test_scripted_exception_in_stream_is_raised_before_any_chunk() -> None:
    model = ScriptedChatModel([ModelTimeoutError("slow")])
    chunks: list[str] = []

    with pytest.raises(ModelTimeoutError):
        chunks.extend(model.stream(HELLO))
    assert chunks == []


def test_scripted_callable_computes_the_reply_from_the_messages() -> None:
    model = ScriptedChatModel([lambda messages: messages[-1].content.upper()])

    assert model.complete(HELLO).text == "SAY HELLO TO THE WHOLE WORLD"


def test_scripted_stream_yields_several_chunks_that_join_into_the_reply() -> None:
    model = ScriptedChatModel(["Hello  there, dear world! "])

    chunks = list(model.stream(HELLO))

    assert len(chunks) > 1
    assert "".join(chunks) == "Hello  there, dear world! "
    assert model.last_usage == Usage(prompt_tokens=9, completion_tokens=6)


def test_scripted_usage_is_a_token_per_four_characters() -> None:
    completion = ScriptedChatModel(["x" * 40]).complete([Message("user", "y" * 21)])

    assert completion.usage == Usage(prompt_tokens=5, completion_tokens=10)
    assert completion.model == "scripted"


@pytest.mark.parametrize("text", ["", "one", " lead and trail ", "a\nb\tc", "   "])
def test_split_into_chunks_round_trips(text: str) -> None:
    assert "".join(split_into_chunks(text)) == text


# -- FakeOpenAIServer over plain HTTP ------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(embedding_dimension=16) as fake:
        yield fake


def _request(
    server: FakeOpenAIServer,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _chat(server: FakeOpenAIServer, **extra: Any) -> tuple[int, bytes]:
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi there"}], **extra}
    return _request(server, "POST", "/v1/chat/completions", body)


def _events(raw: bytes) -> list[str]:
    return [block[len("data: ") :] for block in raw.decode().split("\n\n") if block]


def test_base_url_points_at_v1_on_localhost(server: FakeOpenAIServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"


def test_models_are_listed(server: FakeOpenAIServer) -> None:
    status, raw = _request(server, "GET", "/v1/models")

    assert status == 200
    assert [model["id"] for model in json.loads(raw)["data"]] == ["fake-chat", "fake-embedding"]


def test_chat_completion_has_openai_shape_and_usage(server: FakeOpenAIServer) -> None:
    server.script("Hello back to you")

    status, raw = _chat(server)
    payload = json.loads(raw)

    assert status == 200
    assert payload["object"] == "chat.completion"
    assert payload["choices"][0]["message"] == {"role": "assistant", "content": "Hello back to you"}
    assert payload["choices"][0]["finish_reason"] == "stop"
    assert payload["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}


def test_script_serves_replies_in_order_then_the_default(server: FakeOpenAIServer) -> None:
    server.script("one", {"two": 2}, lambda body: body["model"])

    contents = [json.loads(_chat(server)[1])["choices"][0]["message"]["content"] for _ in range(4)]

    assert contents == ["one", '{"two": 2}', "fake-chat", "OK"]


def test_streaming_sends_chunks_a_finish_a_usage_chunk_and_done(server: FakeOpenAIServer) -> None:
    server.script("streamed three words")

    status, raw = _chat(server, stream=True, stream_options={"include_usage": True})
    events = _events(raw)
    chunks = [json.loads(event) for event in events[:-1]]

    assert status == 200
    assert events[-1] == "[DONE]"
    text = "".join(
        choice["delta"].get("content", "") for chunk in chunks for choice in chunk["choices"]
    )
    assert text == "streamed three words"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_streaming_without_include_usage_sends_no_usage(server: FakeOpenAIServer) -> None:
    _, raw = _chat(server, stream=True)

    chunks = [json.loads(event) for event in _events(raw)[:-1]]

    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_requests_are_recorded_with_path_and_body(server: FakeOpenAIServer) -> None:
    _chat(server, temperature=0.5)
    _request(server, "GET", "/v1/models")

    first, second = server.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first["path"] == "/v1/chat/completions"
    assert first["temperature"] == 0.5
    assert first.headers["content-type"] == "application/json"
    assert (second.method, second.path, second.body) == ("GET", "/v1/models", {})
    assert server.chat_requests() == [first]


def test_unknown_route_is_a_json_404(server: FakeOpenAIServer) -> None:
    status, raw = _request(server, "POST", "/v1/nothing", {})

    assert status == 404
    assert "no route" in json.loads(raw)["error"]["message"]


def test_embeddings_are_deterministic_unit_vectors(server: FakeOpenAIServer) -> None:
    body = {"model": "fake-embedding", "input": ["the cat sat", "the cat sat", "stock prices"]}

    _, raw = _request(server, "POST", "/v1/embeddings", body)
    payload = json.loads(raw)
    vectors = np.array([row["embedding"] for row in payload["data"]])

    assert [row["index"] for row in payload["data"]] == [0, 1, 2]
    assert vectors.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[1])
    assert payload["usage"]["prompt_tokens"] == 2 + 2 + 3


def test_embeddings_share_words_share_direction(server: FakeOpenAIServer) -> None:
    body = {"input": ["red apple pie", "red apple", "quantum tunnelling"], "dimensions": 256}

    _, raw = _request(server, "POST", "/v1/embeddings", body)
    vectors = np.array([row["embedding"] for row in json.loads(raw)["data"]])

    assert vectors.shape == (3, 256)
    assert vectors[0] @ vectors[1] > 0.6 > abs(vectors[0] @ vectors[2])


def test_embeddings_in_base64(server: FakeOpenAIServer) -> None:
    _, plain = _request(server, "POST", "/v1/embeddings", {"input": "hello"})
    _, encoded = _request(
        server, "POST", "/v1/embeddings", {"input": "hello", "encoding_format": "base64"}
    )

    decoded = np.frombuffer(
        base64.b64decode(json.loads(encoded)["data"][0]["embedding"]), dtype="<f4"
    )
    np.testing.assert_allclose(decoded, json.loads(plain)["data"][0]["embedding"], rtol=1e-6)


def test_api_key_is_enforced_when_set() -> None:
    with FakeOpenAIServer(api_key="sk-right") as fake:
        assert _request(fake, "GET", "/v1/models")[0] == 401
        assert (
            _request(fake, "GET", "/v1/models", headers={"Authorization": "Bearer sk-right"})[0]
            == 200
        )


# -- faults --------------------------------------------------------------------------------


def test_status_fault_answers_a_json_error_then_is_used_up(server: FakeOpenAIServer) -> None:
    server.script("after the fault")
    server.fail(Fault.status(503))

    status, raw = _chat(server)
    assert status == 503
    assert json.loads(raw)["error"]["type"] == "server_error"

    status, raw = _chat(server)
    assert status == 200
    assert json.loads(raw)["choices"][0]["message"]["content"] == "after the fault"


def test_faults_apply_to_embeddings_too(server: FakeOpenAIServer) -> None:
    server.fail(Fault.status(429))

    assert _request(server, "POST", "/v1/embeddings", {"input": "x"})[0] == 429


def test_malformed_fault_sends_content_that_is_not_json(server: FakeOpenAIServer) -> None:
    server.fail(Fault.malformed())

    _, raw = _chat(server)
    content = json.loads(raw)["choices"][0]["message"]["content"]

    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_raw_malformed_fault_sends_a_body_that_is_not_json(server: FakeOpenAIServer) -> None:
    server.fail(Fault.malformed(raw=True))

    status, raw = _chat(server)

    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


def test_truncate_fault_cuts_a_stream_after_one_chunk(server: FakeOpenAIServer) -> None:
    server.script("a long answer that never arrives")
    server.fail(Fault.truncate())

    with pytest.raises(http.client.IncompleteRead) as caught:
        _chat(server, stream=True)

    received = _events(caught.value.partial)
    assert len(received) == 1
    assert "[DONE]" not in received


def test_clean_truncate_ends_the_body_without_done(server: FakeOpenAIServer) -> None:
    server.fail(Fault.truncate(clean=True))

    status, raw = _chat(server, stream=True)

    assert status == 200
    assert len(_events(raw)) == 1
    assert json.loads(_events(raw)[0])["choices"][0]["finish_reason"] is None


def test_delay_fault_answers_late(server: FakeOpenAIServer) -> None:
    server.fail(Fault.delay(0.2))

    started = time.monotonic()
    status, _ = _chat(server)

    assert status == 200
    assert time.monotonic() - started >= 0.2


def test_delayed_request_whose_client_left_uses_no_reply(server: FakeOpenAIServer) -> None:
    server.script("kept for the next request")
    server.fail(Fault.delay(0.3))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=0.05)
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    connection.request("POST", "/v1/chat/completions", body=body)
    with pytest.raises(TimeoutError):
        connection.getresponse()
    connection.close()
    time.sleep(0.4)

    _, raw = _chat(server)

    assert json.loads(raw)["choices"][0]["message"]["content"] == "kept for the next request"


def test_recorded_requests_keep_their_fault(server: FakeOpenAIServer) -> None:
    server.fail(Fault.status(503))

    _chat(server)
    _chat(server)

    first, second = server.chat_requests()
    assert first.fault == Fault.status(503)
    assert second.fault is None


def test_fault_rate_is_reproducible_with_a_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with FakeOpenAIServer(
            fault_rate=0.5, seed=seed, random_faults=[Fault.status(500), Fault.status(503)]
        ) as fake:
            return [_chat(fake)[0] for _ in range(12)]

    first, again = statuses(7), statuses(7)

    assert first == again
    assert {200, 500, 503} <= set(first)


# -- schema_reply ----------------------------------------------------------------------------


def _schema_body(schema: dict[str, Any], *contents: str) -> dict[str, Any]:
    return {
        "model": "fake-chat",
        "messages": [{"role": "user", "content": content} for content in contents],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": False},
        },
    }


def test_schema_reply_fills_a_schema_from_the_numbered_lines_of_the_prompt() -> None:
    schema = {
        "type": "object",
        "properties": {
            "notes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "line": {"type": "integer"},
                        "gist": {"type": "string", "maxLength": 12},
                        "mood": {"enum": ["calm", "angry"]},
                        "sure": {"type": "boolean"},
                        "optional": {"type": "string"},
                    },
                    "required": ["line", "gist", "mood", "sure"],
                },
                "minItems": 2,
            },
            "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "kind": {"const": "notes"},
        },
        "required": ["notes", "score", "kind"],
    }
    prompt = "Take notes.\n[7] Ana: I moved to Porto last spring!\n[9] Ben: Nice, why Porto?"

    reply = schema_reply(_schema_body(schema, prompt))

    assert reply == {
        "notes": [
            {"line": 7, "gist": "Ana I moved", "mood": "calm", "sure": True},
            {"line": 9, "gist": "Ben Nice why", "mood": "calm", "sure": True},
        ],
        "score": 7.0,
        "kind": "notes",
    }


def test_schema_reply_answers_every_item_the_prompt_quotes() -> None:
    schema = {
        "type": "object",
        "properties": {
            "nodes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"node_id": {"type": "string"}, "text": {"type": "string"}},
                    "required": ["node_id", "text"],
                },
            }
        },
        "required": ["nodes"],
    }
    example = 'Answer {"nodes": [{"node_id": "...", "text": "..."}]}'
    listing = json.dumps([{"node_id": "a1", "depth": 1}, {"node_id": "b2", "depth": 2}])

    reply = schema_reply(_schema_body(schema, example, "Rewrite these nodes: " + listing))

    assert isinstance(reply, dict)
    assert [node["node_id"] for node in reply["nodes"]] == ["a1", "b2"]
    assert all(node["text"].startswith("Rewrite these nodes") for node in reply["nodes"])


def test_schema_reply_without_a_schema_is_text_or_an_empty_object() -> None:
    plain = {"messages": [{"role": "user", "content": "hi"}]}
    json_object = {**plain, "response_format": {"type": "json_object"}}

    assert schema_reply(plain) == "OK"
    assert schema_reply(plain, text="Hello") == "Hello"
    assert schema_reply(json_object) == {}


def _prompts() -> list[tuple[str, Callable[[list[Turn]], tuple[list[Message], Any, Any]]]]:
    from agentmem.prompts import extraction, memo, memtree, summary

    def facts(turns: list[Turn]) -> tuple[list[Message], Any, Any]:
        ids = {t.id for t in turns}
        return (
            extraction.extraction_messages(turns),
            extraction.FACTS_SCHEMA,
            lambda data: extraction.validate_facts(data, ids),
        )

    def memos(turns: list[Turn]) -> tuple[list[Message], Any, Any]:
        ids = [t.id for t in turns]
        return (
            memo.memo_messages(turns, ["moving house"]),
            memo.MEMO_SCHEMA,
            lambda data: memo.validate_memos(data, ids),
        )

    def sentences(turns: list[Turn]) -> tuple[list[Message], Any, Any]:
        previous = [summary.SummarySentence("Ana lives in Lisbon.", (2,))]
        ids = {2} | {t.id for t in turns}
        return (
            summary.summary_messages(previous, turns, max_sentences=5, max_words=60),
            summary.SUMMARY_SCHEMA,
            lambda data: summary.validate_summary(data, ids),
        )

    def nodes(turns: list[Turn]) -> tuple[list[Message], Any, Any]:
        changes = [
            memtree.NodeChange("n-1", 1, 4, "Ana's moves", ("Ana moved to Porto",)),
            memtree.NodeChange("n-2", 2, 1, "Ben asks why"),
        ]
        return (
            memtree.aggregate_messages(changes),
            memtree.AGGREGATE_SCHEMA,
            lambda data: memtree.validate_aggregation(data, ["n-1", "n-2"]),
        )

    return [("facts", facts), ("memos", memos), ("summary", sentences), ("memtree", nodes)]


@pytest.mark.parametrize(("name", "prompt"), _prompts(), ids=[name for name, _ in _prompts()])
def test_schema_reply_passes_the_validators_of_agentmem_prompts(
    name: str, prompt: Callable[[list[Turn]], tuple[list[Message], Any, Any]]
) -> None:
    when = datetime(2024, 1, 4, 9, 5)
    turns = [
        Turn(7, "ana", "s1", "Ana", "user", "I moved to Porto last spring!", when),
        Turn(8, "ana", "s1", "Ben", "user", "Nice, why Porto?", when),
    ]
    messages, schema, validate = prompt(turns)
    body = _schema_body(schema)
    body["messages"] = [{"role": m.role, "content": m.content} for m in messages]

    reply = schema_reply(body)

    assert validate(reply), name


def test_server_with_schema_reply_answers_structured_requests_validly() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "turn": {"type": "integer"}},
        "required": ["city", "turn"],
    }
    with FakeOpenAIServer(default_reply=schema_reply) as fake:
        status, raw = _request(
            fake, "POST", "/v1/chat/completions", _schema_body(schema, "[3] Ana: Porto")
        )
        plain = json.loads(_chat(fake)[1])["choices"][0]["message"]["content"]

    content = json.loads(raw)["choices"][0]["message"]["content"]
    assert status == 200
    assert json.loads(content) == {"city": "Ana Porto", "turn": 3}
    assert plain == "OK"


# -- lifecycle -----------------------------------------------------------------------------


def test_close_stops_serving_and_joins_threads() -> None:
    before = set(threading.enumerate())
    fake = FakeOpenAIServer()
    # A kept-alive connection leaves a handler thread blocked reading the next request.
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    connection.request("GET", "/v1/models")
    connection.getresponse().read()

    started = time.monotonic()
    fake.close()
    fake.close()  # idempotent

    assert time.monotonic() - started < 1
    assert set(threading.enumerate()) <= before
    connection.close()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", fake.port), timeout=1),
    ):
        pass


def test_close_interrupts_a_pending_delay() -> None:
    fake = FakeOpenAIServer()
    fake.fail(Fault.delay(30))
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=0.1)
    connection.request("GET", "/v1/models")
    with pytest.raises(TimeoutError):
        connection.getresponse()

    started = time.monotonic()
    fake.close()
    connection.close()

    assert time.monotonic() - started < 1


def test_delay_fault_works_past_a_thousand_open_descriptors(server: FakeOpenAIServer) -> None:
    """A long test session holds many files; the hang-up check must not rely on select()."""
    import os
    import resource

    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 1400:
        pytest.skip("the open-file limit is too low")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        server.fail(Fault.delay(0.05))
        status, _ = _chat(server)
    finally:
        for fd in held:
            os.close(fd)
    assert status == 200
