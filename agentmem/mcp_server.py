"""Serve memory over the Model Context Protocol on stdio (``agentmem mcp``).

The only module that imports the ``mcp`` SDK (the ``mcp`` extra). The tools wrap the
:class:`~agentmem.Memory` facade: ``remember`` (add what the user said, return the
changes), ``search``, ``history``, ``forget_memory`` (erase one item and every copy of
its text) and ``forget`` (erase the user).

Who a call is about is a boundary, not a convenience: a server started for one user
(``agentmem mcp --user ana``) serves that user only, and a call naming another user is
refused; a server started without one serves whoever each call names, and a call that
names nobody (or a blank id) is refused rather than given a default user.

Stdout carries the protocol and nothing else: logging goes to stderr. Errors agentmem
raises on purpose come back as tool errors carrying the message and the hint; the
server keeps serving after them and after malformed arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from agentmem.errors import AgentMemError, InputError, MissingExtraError
from agentmem.memory import Memory

logger = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])

#: What the server tells the client it is for (shown to the model by some clients).
INSTRUCTIONS = (
    "Long-term memory of the user. Call `remember` with what the user said that is worth "
    "keeping (one turn at a time); call `search` before answering questions about the "
    "user; items with current=false no longer hold (superseded_by names what replaced "
    "them). `forget_memory` erases one item for good; `forget` erases everything about "
    "the user."
)


def _server_classes() -> tuple[Any, type[Exception]]:
    """Return the SDK's high-level server class and its tool error, for mcp 2 or 1.

    Raises:
        MissingExtraError: The ``mcp`` SDK is not installed.
    """
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError

        return MCPServer, ToolError
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("mcp"):
            raise
    try:
        # mcp 1.x called the same server FastMCP.
        from mcp.server.fastmcp import FastMCP  # type: ignore[attr-defined,unused-ignore]
        from mcp.server.fastmcp.exceptions import ToolError as FastToolError

        return FastMCP, FastToolError
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("mcp"):
            raise
        raise MissingExtraError(
            "the MCP server needs the mcp SDK, which is not installed",
            hint="pip install 'agentmem[mcp]'",
        ) from exc


def check_sdk() -> None:
    """Check that the ``mcp`` SDK is installed.

    Raises:
        MissingExtraError: It is not.
    """
    _server_classes()


def _jsonable(value: Any) -> Any:
    """Return ``value`` with datetimes as ISO 8601 strings, ready for JSON."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _search_item(record: Mapping[str, Any]) -> dict[str, Any]:
    # The text as a prompt should show it: with the changes since beside it.
    found = {"id": record.get("id"), "text": record.get("memory")}
    keys = (
        "store",
        "kind",
        "score",
        "current",
        "valid_from",
        "invalid_at",
        "superseded_by",
        "source_turn_ids",
        "session_id",
        "changes",
    )
    return {**found, **{key: _jsonable(record.get(key)) for key in keys}}


def user_scope(served: str | None) -> Callable[[str | None], str]:
    """Return the check that turns a call's ``user_id`` into the user it may reach.

    Args:
        served: The one user the server serves, or ``None`` for a server whose calls each
            name their user.

    The check raises :class:`~agentmem.errors.InputError` for a blank id, for a call
    naming no user on a server that serves everyone, and for a call naming another user
    on a server that serves one (without saying whether that user exists).
    """

    def user_of(user_id: str | None) -> str:
        if user_id is not None and (not isinstance(user_id, str) or not user_id.strip()):
            raise InputError(
                "user_id is blank",
                hint="name the user, or leave user_id out on a server started with --user",
            )
        if served is None:
            if user_id is None:
                raise InputError(
                    "this server serves several users: name the user with user_id",
                    hint="or start the server for one user: agentmem mcp --user NAME",
                )
            return user_id
        if user_id is not None and user_id != served:
            raise InputError(
                "this server serves one user only; user_id names another",
                hint="leave user_id out, or connect to a server started for that user",
            )
        return served

    return user_of


def build_server(memory: Memory, served_user: str | None) -> Any:
    """Return an MCP server whose tools read and write ``memory``.

    Args:
        memory: The memory to serve (the caller closes it).
        served_user: The one user this server serves (calls naming another are
            refused), or ``None``: every call names its user.

    Raises:
        MissingExtraError: The ``mcp`` SDK is not installed.
    """
    server_class, tool_error = _server_classes()
    server = server_class("agentmem", instructions=INSTRUCTIONS)
    user_of = user_scope(served_user)

    def tool(function: _F) -> _F:
        """Register ``function`` as a tool whose typed errors become tool errors."""

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except AgentMemError as exc:
                message = str(exc.args[0]) if exc.args else type(exc).__name__
                text = f"{type(exc).__name__}: {message}"
                if exc.hint:
                    text += f"\nhint: {exc.hint}"
                if exc.retryable:
                    text += "\n(retrying may help)"
                raise tool_error(text) from exc

        wrapped.__name__ = function.__name__
        wrapped.__doc__ = function.__doc__
        wrapped.__annotations__ = function.__annotations__
        wrapped.__wrapped__ = function  # type: ignore[attr-defined]
        server.tool()(wrapped)
        return function

    @tool
    def remember(
        text: str | None = None,
        messages: list[dict[str, str]] | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """Add to the user's memory; return the changes.

        Give either text (what the user said, or a fact about them: one turn) or messages
        (turns of a conversation, oldest first: [{"role": "user" | "assistant",
        "content": "..."}]). Events: ADD (new item), SUPERSEDE (an older item no longer
        holds), UPDATE, DELETE, NOOP (already known).
        """
        if (text is None) == (messages is None):
            raise InputError(
                "remember takes text or messages, one of the two",
                hint='e.g. {"text": "I live in Lisbon."}',
            )
        said: Any = text if text is not None else messages
        result = memory.add(said, user_id=user_of(user_id))
        return _jsonable(
            {
                "events": result.events,
                "turn_ids": result.turn_ids,
                "session_id": result.session_id,
                "failures": result.failures,
            }
        )

    @tool
    def search(
        query: str, user_id: str | None = None, top_k: int = 10, include_history: bool = False
    ) -> dict[str, Any]:
        """Search the user's memory; return the items found, best first.

        Each item has its text, the structure (store) that holds it, whether it is still
        current, when it held (valid_from, invalid_at), what superseded it, the ids of the
        turns it came from, and the values it states that changed since (changes: the
        item holds for the rest; its text shows them as "[since <date>: old → new]").
        include_history also returns items that no longer hold.
        """
        result = memory.search(
            query, user_id=user_of(user_id), top_k=top_k, include_history=include_history
        )
        return {"query": result.query, "items": [_search_item(r) for r in result.items]}

    @tool
    def forget(user_id: str | None = None) -> dict[str, Any]:
        """Erase everything memory holds about the user; return what was removed.

        Nothing of the user stays on disk: the files that held their data are rewritten
        (listed under "rewritten").
        """
        receipt = memory.forget(user_of(user_id))
        return {
            "removed": dict(receipt),
            "caches_cleared": dict(receipt.caches_cleared),
            "rewritten": list(receipt.rewritten),
        }

    @tool
    def forget_memory(memory_id: str, user_id: str | None = None) -> dict[str, Any]:
        """Erase one memory item for good; return what was erased.

        The item, the turn it came from and everything derived from that turn or quoting
        it lose their text, history included (each keeps a tombstone without content),
        and their vectors are removed from disk. To end an item but keep its history,
        say the correction with remember instead.
        """
        result = memory.delete(memory_id, user_id=user_of(user_id), erase=True)
        return {"events": _jsonable(result.events)}

    @tool
    def history(memory_id: str, user_id: str | None = None) -> dict[str, Any]:
        """Return every recorded change to one memory item, oldest first."""
        entries = memory.history(memory_id, user_id=user_of(user_id))
        return {"history": _jsonable(entries)}

    return server


def serve(memory: Memory, served_user: str | None) -> None:
    """Serve ``memory`` over MCP on stdio until the client closes the connection.

    Raises:
        MissingExtraError: The ``mcp`` SDK is not installed.
    """
    server = build_server(memory, served_user)
    logger.info(
        "serving agentmem over MCP on stdio (%s)",
        f"user {served_user!r} only" if served_user else "each call names its user",
    )
    server.run("stdio")
