"""Fakes of the outside world, shipped so that users can test their agents without models.

* :class:`ScriptedChatModel` implements the :class:`~agentmem.protocols.ChatModel`
  protocol in-process: it answers from a script and records every call.
* :class:`FakeOpenAIServer` is a real HTTP server on ``127.0.0.1`` that speaks enough of
  OpenAI's API (chat completions, streamed or not; embeddings; the model list) for the
  real ``openai`` client, with scripted replies and injectable faults::

      with FakeOpenAIServer() as server:
          server.script("Hello!", {"facts": []})
          server.fail(Fault.status(500))
          model = OpenAIChatModel("fake", base_url=server.base_url)

  With ``default_reply=schema_reply`` it answers any structured-output request with a
  valid instance of the requested schema, so whole pipelines can run against it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

import numpy as np

from agentmem.models.llm import parse_json_answer
from agentmem.types import Completion, Message, Usage

logger = logging.getLogger(__name__)

ScriptedReply = str | dict[str, Any] | Exception | Callable[[list[Message]], str | dict[str, Any]]
"""One scripted answer: text, a JSON object, an error to raise, or a function of the messages."""

_CHUNKS = re.compile(r"\s*\S+\s*|\s+")


def split_into_chunks(text: str) -> list[str]:
    """Split ``text`` into word-sized chunks that join back into exactly ``text``."""
    return _CHUNKS.findall(text) or [text]


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of ``text`` as the fakes count them: a token per 4 characters."""
    return len(text) // 4


@dataclass(frozen=True)
class ScriptedCall:
    """One call a :class:`ScriptedChatModel` received."""

    messages: tuple[Message, ...]
    schema: dict[str, Any] | None
    streamed: bool


class ScriptedChatModel:
    """A chat model that answers from a script and records its calls.

    Each call takes the next scripted reply: a string is the answer's text; a dict is
    answered as its JSON text (and as ``data`` for a schema call); an exception instance
    is raised; a callable computes the reply from the messages. With a schema, a text
    reply is parsed like a real model's, so malformed JSON raises
    :class:`~agentmem.errors.StructuredOutputError`.

    Args:
        replies: The script, consumed one reply per call.
        default: The answer once the script is exhausted; ``None`` makes an extra call
            fail with ``AssertionError``.
        name: The model's name.

    Attributes:
        calls: Every call received, in order.
        last_usage: The estimated usage of the last finished stream.
    """

    def __init__(
        self,
        replies: Iterable[ScriptedReply] = (),
        *,
        default: str | None = "OK",
        name: str = "scripted",
    ) -> None:
        self.name = name
        self.default = default
        self.calls: list[ScriptedCall] = []
        self.last_usage: Usage | None = None
        self._replies: deque[ScriptedReply] = deque(replies)
        self._lock = threading.Lock()

    def add(self, *replies: ScriptedReply) -> None:
        """Append replies to the script."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def remaining(self) -> int:
        """How many scripted replies have not been used."""
        with self._lock:
            return len(self._replies)

    def _next_text(
        self, messages: Sequence[Message], schema: dict[str, Any] | None, *, streamed: bool
    ) -> tuple[str, Any]:
        with self._lock:
            self.calls.append(ScriptedCall(tuple(messages), schema, streamed))
            reply: ScriptedReply | None = self._replies.popleft() if self._replies else None
        if reply is None:
            if self.default is None:
                raise AssertionError(
                    f"{self.name} ran out of scripted replies (call {len(self.calls)})"
                )
            reply = self.default
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            reply = reply(list(messages))
        if isinstance(reply, dict):
            return json.dumps(reply), reply if schema is not None else None
        return reply, parse_json_answer(reply, schema) if schema is not None else None

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Answer with the next scripted reply.

        Raises:
            Exception: The scripted exception, when the reply is one.
            StructuredOutputError: A text reply to a schema call is not valid JSON.
            AssertionError: The script is exhausted and there is no default.
        """
        text, data = self._next_text(messages, schema, streamed=False)
        return Completion(text=text, data=data, usage=self._usage(messages, text), model=self.name)

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Yield the next scripted reply in word-sized chunks.

        Raises:
            Exception: The scripted exception, before any chunk.
            AssertionError: The script is exhausted and there is no default.
        """
        self.last_usage = None
        text, _ = self._next_text(messages, None, streamed=True)
        yield from split_into_chunks(text)
        self.last_usage = self._usage(messages, text)

    @staticmethod
    def _usage(messages: Sequence[Message], text: str) -> Usage:
        prompt = sum(estimate_tokens(message.content) for message in messages)
        return Usage(prompt, estimate_tokens(text))


@dataclass(frozen=True)
class Fault:
    """A failure :class:`FakeOpenAIServer` injects into one request.

    Build one with the class methods: :meth:`status`, :meth:`delay`, :meth:`truncate`,
    :meth:`malformed`.
    """

    kind: Literal["status", "delay", "truncate", "malformed"]
    status_code: int = 500
    seconds: float = 0.0
    clean: bool = False
    raw: bool = False

    @classmethod
    def status(cls, status_code: int = 500) -> Fault:
        """Answer with this HTTP error status and an OpenAI-style JSON error body."""
        return cls("status", status_code=status_code)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before answering (to trigger client timeouts).

        If the client hung up meanwhile, the request is dropped without using a reply.
        """
        return cls("delay", seconds=seconds)

    @classmethod
    def truncate(cls, *, clean: bool = False) -> Fault:
        """Send the first part of the answer, then drop the connection.

        A stream sends its first chunk and no ``[DONE]``. By default the connection is cut
        mid-body (the client sees a protocol error); with ``clean=True`` the body ends
        properly, only without the rest of the answer and its ``finish_reason``.
        """
        return cls("truncate", clean=clean)

    @classmethod
    def malformed(cls, *, raw: bool = False) -> Fault:
        """Answer 200 with content that is not JSON (so a schema call cannot parse it).

        With ``raw=True`` the HTTP body itself is not valid JSON.
        """
        return cls("malformed", raw=raw)


DEFAULT_RANDOM_FAULTS: tuple[Fault, ...] = (
    Fault.status(500),
    Fault.status(503),
    Fault.status(429),
    Fault.truncate(),
)
"""The faults ``fault_rate`` draws from unless told otherwise."""

MALFORMED_CONTENT = "Sure! {this is not JSON"


@dataclass(frozen=True)
class RecordedRequest:
    """A request :class:`FakeOpenAIServer` received.

    Attributes:
        method: ``"GET"`` or ``"POST"``.
        path: The URL path, e.g. ``"/v1/chat/completions"``.
        body: The parsed JSON body (empty for a GET, or a body that is not JSON).
        headers: The request headers, names lower-cased.
        fault: The fault injected into this request, or ``None``.
    """

    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    fault: Fault | None = None

    def get(self, key: str, default: Any = None) -> Any:
        """Return ``body[key]``, or ``default``."""
        return self.body.get(key, default)

    def __getitem__(self, key: str) -> Any:
        if key == "path":
            return self.path
        return self.body[key]


ServerReply = str | dict[str, Any] | Callable[[dict[str, Any]], str | dict[str, Any]]
"""A scripted chat answer of the fake server: text, a JSON object, or a function of the body."""

_NUMBERED_LINE = re.compile(r"^\[(\d+)\]\s*(.*)$", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z0-9][\w'-]*")
_STRING_WORDS = 8


@dataclass(frozen=True)
class _Prompt:
    """What :func:`schema_reply` borrows from a request's messages to fill a schema."""

    text: str
    lines: tuple[tuple[int, str], ...]  # ("[12] Nora: I moved" -> (12, "Nora: I moved"))
    fallback_words: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> _Prompt:
        contents: list[str] = []
        for message in body.get("messages") or ():
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                contents.append(content)
        text = "\n".join(contents)
        lines = tuple((int(n), rest) for n, rest in _NUMBERED_LINE.findall(text))
        last = contents[-1] if contents else ""
        return cls(text, lines, _words(last) or "OK")

    def line(self, index: int) -> tuple[int | None, str]:
        if not self.lines:
            return None, self.fallback_words
        number, rest = self.lines[index % len(self.lines)]
        return number, _words(rest) or self.fallback_words

    def quoted(self, key: str) -> list[Any]:
        """Return the values the prompt quotes as JSON ``"key": value``, in order, once each.

        Placeholders without a letter or digit (``"..."`` in a format example) are no data.
        """
        pattern = re.compile(rf'"{re.escape(key)}"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')
        values: list[Any] = []
        for raw in pattern.findall(self.text):
            value = json.loads(raw)
            if re.search(r"\w", str(value)) and value not in values:
                values.append(value)
        return values


def _words(text: str) -> str:
    return " ".join(_WORD.findall(text)[:_STRING_WORDS])


def schema_reply(body: Mapping[str, Any], *, text: str = "OK") -> str | dict[str, Any]:
    """Answer a chat request validly: an instance of its JSON schema, else ``text``.

    Meant as ``FakeOpenAIServer(default_reply=schema_reply)``. For a request whose
    ``response_format`` is a ``json_schema``, the schema is walked: an object gets its
    required properties; ``const``, ``enum`` and ``anyOf``/``oneOf``/``allOf`` take their
    first choice; a boolean is ``true``, ``null`` is ``null``. Values are borrowed from the
    prompt the way prompts show what an answer may cite:

    * lines numbered ``[N] ...`` are the items an answer can refer to: integers are such
      an ``N``, strings are the first words of its line (of the last message when the
      prompt numbers no lines), and the elements of an array go through the lines in
      order;
    * an array of objects whose property the prompt quotes as JSON (``"node_id": "a1"``)
      gets one element per quoted value, so an answer covers every item it was shown.

    Other arrays get one element (or ``minItems``). A ``json_object`` request gets ``{}``.

    Args:
        body: The chat completion request body.
        text: The answer to a request without a JSON format.
    """
    response_format = body.get("response_format") or {}
    if not isinstance(response_format, dict):
        return text
    if response_format.get("type") == "json_object":
        return {}
    if response_format.get("type") != "json_schema":
        return text
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    value = _instance(schema, _Prompt.of(body), 0)
    return value if isinstance(value, dict) else json.dumps(value)


def _instance(schema: Mapping[str, Any], prompt: _Prompt, index: int) -> Any:
    """Return a value valid under ``schema``, filled from the ``index``-th numbered line."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        choices = schema.get(combinator)
        if choices:
            return _instance(choices[0], prompt, index)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            name: _instance(properties.get(name) or {}, prompt, index)
            for name in schema.get("required") or ()
        }
    if kind == "array":
        return _array(schema, prompt, index)
    number, words = prompt.line(index)
    if kind == "integer":
        return number if number is not None else int(schema.get("minimum", 0))
    if kind == "number":
        return float(number if number is not None else schema.get("minimum", 0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    limit = schema.get("maxLength")
    return words[:limit].rstrip() if isinstance(limit, int) else words


def _array(schema: Mapping[str, Any], prompt: _Prompt, index: int) -> list[Any]:
    if schema.get("maxItems") == 0:
        return []
    items = schema.get("items")
    items = items if isinstance(items, dict) else {}
    if items.get("type") == "object" or "properties" in items:
        for name in items.get("required") or ():
            quoted = prompt.quoted(name)
            if quoted:
                rows = []
                for position, value in enumerate(quoted):
                    row = _instance(items, prompt, index + position)
                    row[name] = value
                    rows.append(row)
                return rows
    count = max(1, int(schema.get("minItems", 1)))
    return [_instance(items, prompt, index + position) for position in range(count)]


class _Server(ThreadingHTTPServer):
    # Handler threads are tracked and joined by FakeOpenAIServer.close(); being daemons
    # only guarantees that a stuck one can never keep the interpreter alive.
    daemon_threads = True
    fake: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a client hanging up is normal here.
        logger.debug("fake OpenAI server: error handling %s", client_address, exc_info=True)


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP server on ``127.0.0.1`` with scripted replies and faults.

    It serves ``POST /v1/chat/completions`` (JSON, or server-sent events with
    ``"stream": true``, ending in a usage chunk when ``stream_options.include_usage``),
    ``POST /v1/embeddings`` (deterministic vectors: hashed words summed, so texts sharing
    words are similar) and ``GET /v1/models``.

    Each request first takes a queued fault (see :meth:`fail`); with none queued, a
    ``fault_rate`` draws one at random from ``random_faults`` using a seeded generator;
    each recorded request keeps the fault it got. Chat requests then take the next
    scripted reply (see :meth:`script`) or ``default_reply``. Token usage is estimated as
    a token per 4 characters.

    Args:
        default_reply: The chat answer when the script is empty: text, a JSON object, or
            a function of the request body, such as :func:`schema_reply`.
        embedding_dimension: The vector length unless a request asks for ``dimensions``.
        fault_rate: The probability of a random fault per request without a queued one.
        seed: Seeds the random faults.
        random_faults: The faults ``fault_rate`` draws from.
        api_key: When set, requests without ``Authorization: Bearer <api_key>`` get 401.
        models: The model ids ``GET /v1/models`` lists.

    Attributes:
        base_url: The API root to give a client, e.g. ``http://127.0.0.1:PORT/v1``.
    """

    def __init__(
        self,
        *,
        default_reply: ServerReply = "OK",
        embedding_dimension: int = 64,
        fault_rate: float = 0.0,
        seed: int = 0,
        random_faults: Sequence[Fault] = DEFAULT_RANDOM_FAULTS,
        api_key: str | None = None,
        models: Sequence[str] = ("fake-chat", "fake-embedding"),
    ) -> None:
        self.default_reply = default_reply
        self.embedding_dimension = embedding_dimension
        self.fault_rate = fault_rate
        self.random_faults = tuple(random_faults)
        self.api_key = api_key
        self.models = tuple(models)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._replies: deque[ServerReply] = deque()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._closing = threading.Event()
        self._completion_ids = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fake-openai-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    # -- the test-facing API ---------------------------------------------------------

    def script(self, *replies: ServerReply) -> None:
        """Queue chat answers for successive chat requests (dicts are sent as JSON text)."""
        with self._lock:
            self._replies.extend(replies)

    def fail(self, *faults: Fault) -> None:
        """Queue faults, consumed one per request (any path) before any reply."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[RecordedRequest]:
        """The chat completion requests received so far."""
        return [request for request in self.requests if request.path.endswith("/chat/completions")]

    def close(self) -> None:
        """Stop serving, drop open connections and join every thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._server.shutdown()
        with self._lock:
            connections = dict(self._connections)
        for connection in connections:
            # Wakes handler threads blocked reading a kept-alive connection.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in connections.values():
            thread.join(timeout=5)
            if thread.is_alive():
                logger.warning("fake OpenAI server: handler thread %s did not stop", thread.name)
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- used by the handler -----------------------------------------------------------

    def _register(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections[connection] = threading.current_thread()

    def _unregister(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.pop(connection, None)

    def _admit(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        headers: Mapping[str, str],
        *,
        authorized: bool,
    ) -> Fault | None:
        """Draw the request's fault (none when unauthorized) and record both, atomically."""
        with self._lock:
            fault = self._next_fault() if authorized else None
            self._requests.append(RecordedRequest(method, path, body, headers, fault))
        return fault

    def _next_fault(self) -> Fault | None:
        # Called with self._lock held.
        if self._faults:
            return self._faults.popleft()
        if self.fault_rate > 0 and self.random_faults and self._rng.random() < self.fault_rate:
            return self._rng.choice(self.random_faults)
        return None

    def _next_reply(self, body: dict[str, Any]) -> str:
        with self._lock:
            reply: ServerReply = self._replies.popleft() if self._replies else self.default_reply
        if callable(reply):
            reply = reply(body)
        return json.dumps(reply) if isinstance(reply, dict) else reply

    def _next_completion_id(self) -> str:
        with self._lock:
            self._completion_ids += 1
            return f"chatcmpl-fake-{self._completion_ids}"

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the server closes first; return whether it stayed open."""
        return not self._closing.wait(seconds)

    def _vector(self, text: str, dimension: int) -> np.ndarray:
        words = re.findall(r"\w+", text.lower()) or [text]
        total = np.zeros(dimension, dtype=np.float64)
        for word in words:
            digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
            total += np.random.default_rng(int.from_bytes(digest, "big")).standard_normal(dimension)
        norm = float(np.linalg.norm(total))
        return (total / norm if norm > 0 else total).astype(np.float32)


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        total += estimate_tokens(content if isinstance(content, str) else json.dumps(content))
    return total


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"
    timeout = 30  # seconds a kept-alive connection may idle before the thread gives up
    # Headers and body go out in separate writes; with Nagle's algorithm the second waits
    # for the client's delayed ACK, adding 40 ms to every request.
    disable_nagle_algorithm = True
    server: _Server

    # -- plumbing ------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.fake._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        logger.debug("fake OpenAI server: " + format, *args)

    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_error_json(self, status: int, message: str) -> None:
        error_type = "server_error" if status >= 500 else "invalid_request_error"
        self._send_json(
            status, {"error": {"message": message, "type": error_type, "param": None, "code": None}}
        )

    def _client_hung_up(self) -> bool:
        # A non-blocking peek, not select(): select() fails on descriptors past 1024,
        # which a long test session reaches.
        timeout = self.connection.gettimeout()
        try:
            # Non-blocking for the peek (a socket with a timeout would wait on EAGAIN).
            self.connection.settimeout(0.0)
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, InterruptedError, TimeoutError):
            return False  # nothing to read: the client is still waiting
        except OSError:
            return True
        finally:
            self.connection.settimeout(timeout)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- dispatch ------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET", {})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {}
        self._dispatch("POST", body if isinstance(body, dict) else {})

    def _dispatch(self, method: str, body: dict[str, Any]) -> None:
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        authorized = (
            fake.api_key is None or self.headers.get("Authorization") == f"Bearer {fake.api_key}"
        )
        headers = {name.lower(): value for name, value in self.headers.items()}
        fault = fake._admit(method, path, body, headers, authorized=authorized)
        try:
            if authorized:
                self._answer(method, path, body, fault)
            else:
                self._send_error_json(401, "Incorrect API key provided.")
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout); nobody is left to answer.
            self.close_connection = True

    def _answer(self, method: str, path: str, body: dict[str, Any], fault: Fault | None) -> None:
        fake = self.server.fake
        if fault is not None and fault.kind == "delay":
            if not fake._wait(fault.seconds) or self._client_hung_up():
                self._drop()
                return
            fault = None
        if fault is not None and fault.kind == "status":
            try:
                phrase = HTTPStatus(fault.status_code).phrase
            except ValueError:
                phrase = "error"
            self._send_error_json(fault.status_code, f"injected fault: {phrase}")
            return
        route = (method, path.rstrip("/"))
        if route == ("POST", "/v1/chat/completions"):
            self._chat(body, fault)
        elif route == ("POST", "/v1/embeddings"):
            self._embeddings(body, fault)
        elif route == ("GET", "/v1/models"):
            self._send_json(200, self._models_payload())
        else:
            self._send_error_json(404, f"no route for {method} {path}")

    # -- routes --------------------------------------------------------------------------

    def _models_payload(self) -> dict[str, Any]:
        models = [
            {"id": model, "object": "model", "created": 0, "owned_by": "agentmem-fake"}
            for model in self.server.fake.models
        ]
        return {"object": "list", "data": models}

    def _send_truncated_json(self, payload: Any) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self._drop()

    def _send_malformed_raw(self) -> None:
        body = b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "message": '
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_malformed_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._write_chunk(b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
        self._write_chunk(b"")

    def _chat(self, body: dict[str, Any], fault: Fault | None) -> None:
        fake = self.server.fake
        if fault is not None and fault.kind == "malformed" and fault.raw:
            if body.get("stream"):
                self._send_malformed_stream()
            else:
                self._send_malformed_raw()
            return
        if fault is not None and fault.kind == "malformed":
            text = MALFORMED_CONTENT
        else:
            text = fake._next_reply(body)
        model = str(body.get("model") or "fake-chat")
        usage = {
            "prompt_tokens": _prompt_tokens(body),
            "completion_tokens": estimate_tokens(text),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = fake._next_completion_id()
        if body.get("stream"):
            self._stream_chat(body, text, model, usage, completion_id, fault)
            return
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        if fault is not None and fault.kind == "truncate":
            self._send_truncated_json(payload)
            return
        self._send_json(200, payload)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def _stream_chat(
        self,
        body: dict[str, Any],
        text: str,
        model: str,
        usage: dict[str, int],
        completion_id: str,
        fault: Fault | None,
    ) -> None:
        stream_options = body.get("stream_options") or {}
        include_usage = bool(stream_options.get("include_usage"))
        created = int(time.time())

        def event(
            choices: list[dict[str, Any]], chunk_usage: dict[str, int] | None = None
        ) -> bytes:
            chunk: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            }
            if include_usage:
                chunk["usage"] = chunk_usage
            return b"data: " + json.dumps(chunk).encode("utf-8") + b"\n\n"

        def delta(content: str, *, role: bool = False) -> dict[str, Any]:
            piece: dict[str, Any] = {"content": content}
            if role:
                piece["role"] = "assistant"
            return {"index": 0, "delta": piece, "logprobs": None, "finish_reason": None}

        pieces = split_into_chunks(text)
        events = [event([delta(pieces[0], role=True)])]
        events += [event([delta(piece)]) for piece in pieces[1:]]
        events.append(event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
        if include_usage:
            events.append(event([], usage))
        events.append(b"data: [DONE]\n\n")

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if fault is not None and fault.kind == "truncate":
            self._write_chunk(events[0])
            if fault.clean:
                self._write_chunk(b"")
            self._drop()
            return
        for data in events:
            self._write_chunk(data)
        self._write_chunk(b"")

    def _embeddings(self, body: dict[str, Any], fault: Fault | None) -> None:
        fake = self.server.fake
        if fault is not None and fault.kind == "malformed":
            self._send_malformed_raw()
            return
        raw_input = body.get("input", "")
        texts = [raw_input] if isinstance(raw_input, str) else list(raw_input)
        texts = [text if isinstance(text, str) else json.dumps(text) for text in texts]
        dimension = int(body.get("dimensions") or fake.embedding_dimension)
        as_base64 = body.get("encoding_format") == "base64"
        rows = []
        for index, text in enumerate(texts):
            vector = fake._vector(text, dimension)
            embedding: Any = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
                if as_base64
                else vector.tolist()
            )
            rows.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(estimate_tokens(text) for text in texts)
        payload = {
            "object": "list",
            "data": rows,
            "model": str(body.get("model") or "fake-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        if fault is not None and fault.kind == "truncate":
            self._send_truncated_json(payload)
            return
        self._send_json(200, payload)
