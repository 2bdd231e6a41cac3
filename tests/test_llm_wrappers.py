"""RetryingChatModel, MeteredChatModel and JSON answer parsing."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from agentmem.errors import (
    ModelError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    StructuredOutputError,
)
from agentmem.models.llm import (
    MeteredChatModel,
    RetryingChatModel,
    message_dicts,
    parse_json_answer,
)
from agentmem.models.openai_client import OpenAIChatModel
from agentmem.protocols import ChatModel
from agentmem.testing import FakeOpenAIServer, Fault, ScriptedChatModel
from agentmem.types import Completion, Message, Usage

MESSAGES = [Message("user", "What did I say about Lisbon?")]
SCHEMA = {"type": "object", "required": ["answer"]}


class Sleeps:
    """Records the pauses a RetryingChatModel asks for instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class BrokenStream:
    """A chat model whose streams yield some chunks, then fail (e.g. a dropped connection)."""

    name = "broken-stream"

    def __init__(self, chunks_before_failure: Sequence[int]) -> None:
        self._plans = list(chunks_before_failure)
        self.streams = 0

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        raise NotImplementedError

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        self.streams += 1
        failing_after = self._plans.pop(0) if self._plans else None
        for index, word in enumerate(["alpha ", "beta ", "gamma"]):
            if index == failing_after:
                raise ModelUnavailableError("connection dropped")
            yield word


def retrying(inner: ChatModel, sleeps: Sleeps, attempts: int = 3) -> RetryingChatModel:
    return RetryingChatModel(inner, attempts=attempts, sleep=sleeps, rng=random.Random(1))


# -- parse_json_answer and message_dicts ----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"answer": 1}',
        '  {"answer": 1}\n',
        '```json\n{"answer": 1}\n```',
        'Sure:\n```\n{"answer": 1}\n```\nAnything else?',
    ],
)
def test_parse_json_answer_accepts_plain_and_fenced_json(text: str) -> None:
    assert parse_json_answer(text, SCHEMA) == {"answer": 1}


@pytest.mark.parametrize(
    ("text", "reason"),
    [("no json here", "not valid JSON"), ("[1, 2]", "not an object"), ("{}", "answer")],
)
def test_parse_json_answer_rejects_bad_answers(text: str, reason: str) -> None:
    with pytest.raises(StructuredOutputError, match=reason) as caught:
        parse_json_answer(text, SCHEMA)

    assert caught.value.retryable


def test_parse_json_answer_without_schema_accepts_any_json() -> None:
    assert parse_json_answer("[1, 2]") == [1, 2]


def test_message_dicts_keep_names_only_when_set() -> None:
    converted = message_dicts([Message("system", "s"), Message("user", "u", name="ana")])

    assert converted == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u", "name": "ana"},
    ]


# -- RetryingChatModel ----------------------------------------------------------------------


def test_retrying_model_is_a_chat_model_named_like_its_inner() -> None:
    wrapper = RetryingChatModel(ScriptedChatModel(name="inner"))

    assert isinstance(wrapper, ChatModel)
    assert wrapper.name == "inner"


def test_retryable_failures_are_retried_with_growing_pauses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = ScriptedChatModel([ModelTimeoutError("slow"), ModelUnavailableError("down"), "done"])
    sleeps = Sleeps()

    with caplog.at_level(logging.WARNING, logger="agentmem.models.llm"):
        completion = retrying(inner, sleeps).complete(MESSAGES)

    assert completion.text == "done"
    assert len(inner.calls) == 3
    first, second = sleeps.delays
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    assert "retry 1 of 2" in caplog.records[0].getMessage()


def test_a_hint_is_logged_once_per_call_not_on_every_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hint = "is the server at OPENAI_BASE_URL running?"
    failure = ModelUnavailableError("cannot reach the endpoint", hint=hint)
    inner = ScriptedChatModel([failure] * 3 + ["done", failure, "again"])
    wrapper = retrying(inner, Sleeps(), attempts=4)

    with caplog.at_level(logging.WARNING):
        completion = wrapper.complete(MESSAGES)
        wrapper.complete(MESSAGES)  # a new call says the hint again

    assert completion.text == "done"
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 4 and wrapper.retries == 4
    assert all("cannot reach the endpoint" in line for line in lines)
    assert [hint in line for line in lines] == [True, False, False, True]
    assert [f"retry {n} of 3" in line for n, line in enumerate(lines[:3], 1)] == [True] * 3


def test_pauses_are_capped_at_max_delay() -> None:
    inner = ScriptedChatModel([ModelTimeoutError("slow")] * 5)
    sleeps = Sleeps()
    wrapper = RetryingChatModel(
        inner, attempts=6, base_delay=1.0, max_delay=2.0, sleep=sleeps, rng=random.Random(3)
    )

    wrapper.complete(MESSAGES)

    assert len(sleeps.delays) == 5
    assert all(delay <= 2.0 for delay in sleeps.delays)
    assert all(delay >= 1.0 for delay in sleeps.delays[1:])


def test_non_retryable_failure_is_raised_at_once() -> None:
    inner = ScriptedChatModel([ModelResponseError("bad key", status=401), "never"])
    sleeps = Sleeps()

    with pytest.raises(ModelResponseError):
        retrying(inner, sleeps).complete(MESSAGES)

    assert len(inner.calls) == 1
    assert sleeps.delays == []


def test_last_failure_is_raised_when_attempts_run_out() -> None:
    failures = [ModelResponseError(f"HTTP 500 #{n}", status=500) for n in range(3)]
    inner = ScriptedChatModel(failures)

    with pytest.raises(ModelResponseError, match="#2"):
        retrying(inner, Sleeps()).complete(MESSAGES)

    assert len(inner.calls) == 3


def test_structured_output_errors_are_retried() -> None:
    inner = ScriptedChatModel(["not json", {"answer": 42}])

    completion = retrying(inner, Sleeps()).complete(MESSAGES, schema=SCHEMA)

    assert completion.data == {"answer": 42}
    assert inner.calls[1].schema == SCHEMA


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryingChatModel(ScriptedChatModel(), attempts=0)


def test_stream_is_retried_when_it_fails_before_the_first_chunk() -> None:
    inner = BrokenStream([0, 0])
    sleeps = Sleeps()

    chunks = list(retrying(inner, sleeps).stream(MESSAGES))

    assert chunks == ["alpha ", "beta ", "gamma"]
    assert inner.streams == 3
    assert len(sleeps.delays) == 2


def test_stream_is_not_retried_once_text_reached_the_caller() -> None:
    inner = BrokenStream([1])
    sleeps = Sleeps()
    chunks: list[str] = []

    with pytest.raises(ModelUnavailableError, match="connection dropped"):
        chunks.extend(retrying(inner, sleeps).stream(MESSAGES))

    assert chunks == ["alpha "]
    assert inner.streams == 1
    assert sleeps.delays == []


def test_stream_retry_gives_up_after_the_attempts() -> None:
    inner = BrokenStream([0, 0, 0, 0])

    with pytest.raises(ModelUnavailableError):
        list(retrying(inner, Sleeps(), attempts=2).stream(MESSAGES))

    assert inner.streams == 2


# -- RetryingChatModel over real HTTP ------------------------------------------------------


def test_a_500_then_success_succeeds_through_retries(
    server: FakeOpenAIServer, openai_model: OpenAIChatModel
) -> None:
    server.script("recovered")
    server.fail(Fault.status(500))
    sleeps = Sleeps()

    completion = retrying(openai_model, sleeps).complete(MESSAGES)

    assert completion.text == "recovered"
    assert len(server.requests) == 2
    assert len(sleeps.delays) == 1


def test_a_401_is_not_retried(server: FakeOpenAIServer, openai_model: OpenAIChatModel) -> None:
    server.fail(Fault.status(401))

    with pytest.raises(ModelResponseError) as caught:
        retrying(openai_model, Sleeps()).complete(MESSAGES)

    assert caught.value.status == 401
    assert len(server.requests) == 1


def test_a_timeout_is_retried(server: FakeOpenAIServer) -> None:
    server.script("in time")
    server.fail(Fault.delay(2))

    with OpenAIChatModel("fake-chat", base_url=server.base_url, timeout=0.3) as model:
        completion = retrying(model, Sleeps()).complete(MESSAGES)

    assert completion.text == "in time"
    assert len(server.requests) == 2


def test_http_stream_failing_before_text_is_retried(
    server: FakeOpenAIServer, openai_model: OpenAIChatModel
) -> None:
    server.script("streamed after a retry")
    server.fail(Fault.status(503))

    chunks = list(retrying(openai_model, Sleeps()).stream(MESSAGES))

    assert "".join(chunks) == "streamed after a retry"
    assert len(server.requests) == 2


def test_http_stream_cut_after_text_is_not_retried(
    server: FakeOpenAIServer, openai_model: OpenAIChatModel
) -> None:
    server.script("cut after the first word")
    server.fail(Fault.truncate())
    chunks: list[str] = []

    with pytest.raises(ModelError) as caught:
        chunks.extend(retrying(openai_model, Sleeps()).stream(MESSAGES))

    assert caught.value.retryable
    assert chunks == ["cut "]
    assert len(server.requests) == 1


# -- MeteredChatModel ------------------------------------------------------------------------


def test_metered_model_counts_calls_failures_and_usage() -> None:
    inner = ScriptedChatModel(["x" * 40, ModelTimeoutError("slow"), "y" * 8])
    metered = MeteredChatModel(inner)

    metered.complete([Message("user", "z" * 20)])
    with pytest.raises(ModelTimeoutError):
        metered.complete(MESSAGES)
    list(metered.stream([Message("user", "z" * 4)]))

    assert isinstance(metered, ChatModel)
    assert metered.name == "scripted"
    assert (metered.calls, metered.failures) == (3, 1)
    assert metered.usage == Usage(prompt_tokens=5 + 1, completion_tokens=10 + 2)


def test_metered_model_counts_a_failing_stream() -> None:
    metered = MeteredChatModel(BrokenStream([1]))

    with pytest.raises(ModelUnavailableError):
        list(metered.stream(MESSAGES))

    assert (metered.calls, metered.failures, metered.usage) == (1, 1, Usage())


def test_metered_model_is_thread_safe() -> None:
    metered = MeteredChatModel(ScriptedChatModel(default="abcdefgh"))

    def work() -> None:
        for _ in range(200):
            metered.complete([Message("user", "abcd")])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert metered.calls == 1600
    assert metered.usage == Usage(prompt_tokens=1600, completion_tokens=3200)


def test_metered_retrying_openai_model_accounts_http_usage(
    server: FakeOpenAIServer, openai_model: OpenAIChatModel
) -> None:
    server.script("a" * 40, "b" * 20)
    server.fail(Fault.status(500))
    metered = MeteredChatModel(retrying(openai_model, Sleeps()))

    metered.complete(MESSAGES)
    "".join(metered.stream(MESSAGES))

    assert (metered.calls, metered.failures) == (2, 0)
    assert metered.usage == Usage(prompt_tokens=7 + 7, completion_tokens=10 + 5)
    assert metered.last_usage == Usage(prompt_tokens=7, completion_tokens=5)


def test_retrying_embedder_retries_transient_failures_only() -> None:
    from agentmem.errors import EmbeddingError
    from agentmem.models.embeddings import RetryingEmbedder
    from agentmem.models.openai_client import OpenAIEmbedder
    from agentmem.testing import FakeOpenAIServer, Fault

    with FakeOpenAIServer(embedding_dimension=8) as server:
        remote = OpenAIEmbedder("fake-embedding", base_url=server.base_url, api_key="k")
        embedder = RetryingEmbedder(remote, attempts=3, sleep=lambda _: None)
        server.fail(Fault.status(503), Fault.status(500))
        vectors = embedder.embed(["a red bike", "a blue car"])
        assert vectors.shape == (2, 8) and embedder.retries == 2
        server.fail(Fault.status(500), Fault.status(500), Fault.status(500))
        with pytest.raises(EmbeddingError) as failed:
            embedder.embed(["again"])
        assert failed.value.retryable and embedder.retries == 4
        server.fail(Fault.status(401))
        with pytest.raises(EmbeddingError):
            embedder.embed(["unauthorised"])
        assert embedder.retries == 4  # not retried
        remote.close()
