"""A fake OpenAI-compatible HTTP server on ``127.0.0.1`` with scripted replies and faults."""

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
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import numpy as np

from agentmem.testing.chat import estimate_tokens, split_into_chunks
from agentmem.testing.faults import (
    DEFAULT_RANDOM_FAULTS,
    MALFORMED_CONTENT,
    Fault,
    RecordedRequest,
    ServerReply,
)

logger = logging.getLogger(__name__)


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
