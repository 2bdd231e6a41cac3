"""The faults :class:`~agentmem.testing.FakeOpenAIServer` injects and the requests it records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


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
