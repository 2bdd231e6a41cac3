"""Carry the MCP server's messages: stdio that answers bad lines, and Streamable HTTP.

Why not the SDK's stdio transport as it is: it drops a line it cannot read (malformed
JSON, or a string holding a lone surrogate such as ``"\\udcff"``, which Python's JSON
accepts and the SDK's parser refuses) without a word, so the client waits for its
timeout. Here every line is read first: one that is not a JSON-RPC message is answered
at once with a JSON-RPC error (``-32700`` parse error, ``-32602`` for a lone surrogate,
``-32600`` for a message of no known shape), with the request's id when it has one,
and the server keeps serving. The rest goes to the SDK unchanged. Both writers (the
SDK's and the error answers) share one lock, so lines never interleave.

Over HTTP the SDK's Streamable HTTP transport already answers such a body with a
``400`` and a JSON-RPC error. :func:`serve_http` binds to the loopback interface unless
told otherwise: the server has no authentication, so whoever reaches the port reaches
the memory.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import contextmanager
from io import TextIOWrapper
from typing import IO, Any

from agentmem.errors import ConfigError

logger = logging.getLogger(__name__)

#: Where ``agentmem mcp --http`` listens when it is given no address or only a port.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

_PARSE_ERROR = -32700
_INVALID_REQUEST = -32600
_INVALID_PARAMS = -32602


def parse_address(text: str) -> tuple[str, int]:
    """Return the host and port of ``--http``'s value: ``HOST:PORT``, ``PORT`` or ``""``.

    Raises:
        ConfigError: The port is not a number from 1 to 65535.
    """
    host, _, port_text = text.rpartition(":") if ":" in text else ("", "", text)
    host = host.strip("[]") or DEFAULT_HOST
    if not port_text:
        return host, DEFAULT_PORT
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise ConfigError(
            f"--http takes HOST:PORT or PORT, not {text!r}",
            hint=f"e.g. --http {DEFAULT_HOST}:{DEFAULT_PORT}",
        )
    return host, port


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, ``127.x``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_http(server: Any, host: str, port: int) -> None:
    """Serve over Streamable HTTP at ``http://host:port/mcp`` until interrupted.

    Every client shares the one memory the server holds; each has its own MCP session.
    """
    if not is_loopback(host):
        logger.warning(
            "serving MCP on %s:%d, beyond this machine: the server has no authentication, "
            "so whoever reaches the port reaches the memory",
            host,
            port,
        )
    logger.info("serving agentmem over MCP at http://%s:%d/mcp", host, port)
    server.run("streamable-http", host=host, port=port)


def error_answer(line: str) -> str | None:
    """Return the JSON-RPC error answering ``line``, or ``None`` if it is a good message.

    A notification (a message without an id) that cannot be read gets no answer, as
    JSON-RPC says, unless the line cannot be parsed at all (then its id is unknown and
    the answer's id is null).
    """
    if not line.strip():
        return None
    try:
        message = json.loads(line)
    except ValueError as exc:
        return _error(None, _PARSE_ERROR, f"Parse error: the line is not JSON ({exc})")
    request_id = message.get("id") if isinstance(message, dict) else None
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        request_id = None
    try:
        # The line itself is text; what its escapes spell may not be.
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return _error(
            request_id,
            _INVALID_PARAMS,
            "Invalid params: a string holds a lone surrogate (as \\udcff spells one), "
            "which is not Unicode text",
        )
    problem = _shape_problem(line)
    if problem is None:
        return None
    if request_id is None and isinstance(message, dict) and "method" in message:
        return None  # a notification: never answered
    return _error(request_id, _INVALID_REQUEST, f"Invalid Request: {problem}")


def _shape_problem(line: str) -> str | None:
    """Return why the SDK would refuse ``line`` as a JSON-RPC message, or ``None``."""
    try:
        from mcp.types import jsonrpc_message_adapter

        validate: Callable[[str], Any] = jsonrpc_message_adapter.validate_json
    except ImportError:  # mcp 1.x: a root model instead of an adapter
        from mcp.types import JSONRPCMessage

        validate = JSONRPCMessage.model_validate_json  # type: ignore[attr-defined,unused-ignore]
    try:
        validate(line)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return " ".join(line.strip() for line in str(exc).splitlines()[:3])
    return None


def _error(request_id: str | int | None, code: int, message: str) -> str:
    answer = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return json.dumps(answer)


class _Wire:
    """Stdout as the SDK writes it (``write`` then ``flush``), shared with the error answers."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    async def write(self, text: str) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self._write, text)

    async def flush(self) -> None:
        """Flush nothing more: every write is flushed whole, under the lock."""

    def _write(self, text: str) -> None:
        with self._lock:
            self._stream.write(text)
            self._stream.flush()


class _CheckedLines:
    """Stdin's lines for the SDK; a bad one is answered on the wire instead of passed on."""

    def __init__(self, stream: IO[str], wire: _Wire) -> None:
        self._stream = stream
        self._wire = wire

    async def __aiter__(self) -> AsyncIterator[str]:
        import anyio.to_thread

        while True:
            line = await anyio.to_thread.run_sync(self._stream.readline)
            if not line:
                return
            answer = error_answer(line)
            if answer is None:
                yield line
                continue
            logger.info("answered an unreadable message with an error: %s", answer[:200])
            await self._wire.write(answer + "\n")


@contextmanager
def _claimed_stdio() -> Any:
    """Yield the protocol's stdin and stdout, with fd 0 and 1 pointed elsewhere.

    What a library prints while serving (to fd 1) must not reach the wire, and nothing
    but the transport may read fd 0: the protocol gets private copies of both, fd 1 goes
    to stderr and fd 0 to the null device until serving ends.
    """
    sys.stdout.flush()
    wire_in, wire_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    reader = TextIOWrapper(os.fdopen(wire_in, "rb"), encoding="utf-8", errors="replace")
    writer = TextIOWrapper(os.fdopen(wire_out, "wb"), encoding="utf-8", newline="\n")
    try:
        yield reader, writer
    finally:
        os.dup2(writer.fileno(), 1)
        os.dup2(reader.fileno(), 0)
        writer.close()
        reader.close()


def serve_stdio(server: Any) -> None:
    """Serve over stdin and stdout until the client closes stdin."""
    import anyio
    from mcp.server.stdio import stdio_server

    # The SDK's high-level server runs stdio only over the process's own streams; given
    # streams of our own, the connection is run by its low-level server (named
    # _mcp_server in mcp 1.x).
    lowlevel = getattr(server, "_lowlevel_server", None) or server._mcp_server

    async def run(reader: IO[str], writer: IO[str]) -> None:
        # Duck-typed stand-ins for the anyio files the SDK reads and writes.
        wire: Any = _Wire(writer)
        lines: Any = _CheckedLines(reader, wire)
        async with stdio_server(stdin=lines, stdout=wire) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())

    with _claimed_stdio() as (reader, writer):
        anyio.run(run, reader, writer)


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "error_answer",
    "is_loopback",
    "parse_address",
    "serve_http",
    "serve_stdio",
]
