"""Serve memory over the Model Context Protocol (``agentmem mcp``): the tools.

The only modules that import the ``mcp`` SDK (the ``mcp`` extra) are this one and
:mod:`agentmem.mcp_transport` (stdio and Streamable HTTP). The tools wrap the
:class:`~agentmem.Memory` facade over a memory's whole life: ``remember`` (add what the
user said, return the changes), ``search``, ``list_memories``, ``get_memory``,
``update_memory``, ``delete_memory`` (end one item, its history kept), ``history``,
``forget_memory`` (erase one item and every copy of its text) and ``forget`` (erase the
user).

Who a call is about is a boundary, not a convenience: a server started for one user
(``agentmem mcp --user ana``) serves that user only, and a call naming another user is
refused; a server started without one serves whoever each call names, and a call that
names nobody (or a blank id) is refused rather than given a default user.

Every argument states its limits in the tool's schema (``maxLength``, ``maximum``,
``maxItems``, ...) and the SDK enforces them before a tool runs, so a 1 MB query is an
error, not a search; a string holding a lone surrogate is refused the same way. Every
tool carries annotations (``readOnlyHint``, ``destructiveHint``, ``idempotentHint``) and
every parameter a description. Times in results are ISO 8601 with their offset (UTC).
Errors agentmem raises on purpose come back as tool errors carrying the message and the
hint; the server keeps serving after them and after malformed arguments.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, Field

from agentmem.errors import AgentMemError, InputError, MissingExtraError
from agentmem.extras import install_command
from agentmem.inputs import MAX_TURN_CHARS
from agentmem.memory import Memory

logger = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])

#: What the server tells the client it is for (shown to the model by some clients).
INSTRUCTIONS = (
    "Long-term memory of the user. Call `remember` with what the user said that is worth "
    "keeping (one turn at a time); call `search` before answering questions about the "
    "user; items with current=false no longer hold (superseded_by names what replaced "
    "them). `update_memory` corrects an item's text and `delete_memory` ends one (both "
    "keep its history); `forget_memory` erases one item for good; `forget` erases "
    "everything about the user."
)

#: The longest search query, in characters: a question, not a document.
MAX_QUERY_CHARS = 4_000
#: The most turns one ``remember`` call may carry.
MAX_MESSAGES = 100
#: The longest id (user, item) a tool takes; :func:`agentmem.inputs.check_user` agrees.
MAX_ID_CHARS = 256
#: The most results ``search`` and ``list_memories`` return in one call.
MAX_RESULTS = 100
MAX_LISTED = 1_000
#: Filters and metadata: how many keys, how long a key, a value, a list of values.
MAX_KEYS = 32
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 1_000
MAX_VALUES = 50
MAX_REASON_CHARS = 1_000


def _unicode(text: str) -> str:
    """Refuse a string holding a lone surrogate (JSON can spell one: ``"\\udcff"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode text ({exc.reason} at {exc.start})") from exc
    return text


_Valid = AfterValidator(_unicode)
_Key = Annotated[str, Field(max_length=MAX_KEY_CHARS), _Valid]
_Scalar = Annotated[str, Field(max_length=MAX_VALUE_CHARS), _Valid] | int | float | bool | None

_UserIdText = Annotated[str, Field(max_length=MAX_ID_CHARS), _Valid]
UserId = Annotated[
    _UserIdText | None,
    Field(
        description="Whose memory (a non-blank id). Leave it out on a server started for "
        "one user (--user); required otherwise."
    ),
]
MemoryId = Annotated[
    str,
    Field(
        description="The memory item's id, as search or list_memories return it.",
        min_length=1,
        max_length=MAX_ID_CHARS,
    ),
    _Valid,
]
Query = Annotated[
    str,
    Field(
        description="What to look for (a question or a few words).",
        min_length=1,
        max_length=MAX_QUERY_CHARS,
    ),
    _Valid,
]
SaidText = Annotated[
    Annotated[str, Field(max_length=MAX_TURN_CHARS), _Valid] | None,
    Field(description="What the user said, or a fact about them (one turn)."),
]
NewText = Annotated[
    str,
    Field(description="The item's corrected text.", min_length=1, max_length=MAX_TURN_CHARS),
    _Valid,
]
AsOf = Annotated[
    Annotated[str, Field(max_length=64), _Valid] | None,
    Field(
        description="Search memory as it was at this time: an ISO 8601 date or time "
        "(without an offset: UTC). Items valid then count as current."
    ),
]
StoreName = Annotated[
    Annotated[str, Field(max_length=64), _Valid] | None,
    Field(description="Only the items of this structure (e.g. turns, memtree)."),
]
Reason = Annotated[
    Annotated[str, Field(max_length=MAX_REASON_CHARS), _Valid] | None,
    Field(description="Why, recorded in the item's history."),
]
TopK = Annotated[int, Field(description="The most items to return.", ge=1, le=MAX_RESULTS)]
Limit = Annotated[int, Field(description="The most items to return.", ge=1, le=MAX_LISTED)]
Offset = Annotated[int, Field(description="How many items to skip (for paging).", ge=0)]
WithHistory = Annotated[
    bool, Field(description="Also return items that no longer hold (current=false).")
]
Filters = Annotated[
    Annotated[
        dict[_Key, _Scalar | Annotated[list[_Scalar], Field(max_length=MAX_VALUES)]],
        Field(max_length=MAX_KEYS),
    ]
    | None,
    Field(
        description="Equality filters: store, kind, current, agent_id and session_id match "
        "the item's fields, any other key its metadata (as given to remember); a list "
        "matches any of its values.",
    ),
]
Metadata = Annotated[
    Annotated[dict[_Key, _Scalar], Field(max_length=MAX_KEYS)] | None,
    Field(
        description="JSON metadata recorded with the turns (search filters can match it).",
    ),
]
Message = Annotated[
    dict[
        Literal["role", "content", "name"], Annotated[str, Field(max_length=MAX_TURN_CHARS), _Valid]
    ],
    Field(
        description='One turn: {"role": "user" | "assistant", "content": "...", "name"?: speaker}.',
        max_length=3,
    ),
]
Messages = Annotated[
    Annotated[list[Message], Field(max_length=MAX_MESSAGES)] | None,
    Field(
        description="Turns of a conversation, oldest first (instead of text).",
    ),
]


def _server_classes() -> tuple[Any, type[Exception], Any]:
    """Return the SDK's high-level server class, its tool error and ToolAnnotations.

    Raises:
        MissingExtraError: The ``mcp`` SDK is not installed.
    """
    try:
        from mcp.types import ToolAnnotations
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("mcp"):
            raise
        raise MissingExtraError(
            "the MCP server needs the mcp SDK, which is not installed",
            hint=install_command("mcp"),
        ) from exc
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError

        return MCPServer, ToolError, ToolAnnotations
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("mcp"):
            raise
    # mcp 1.x called the same server FastMCP.
    from mcp.server.fastmcp import FastMCP  # type: ignore[attr-defined,unused-ignore]
    from mcp.server.fastmcp.exceptions import ToolError as FastToolError

    return FastMCP, FastToolError, ToolAnnotations


def check_sdk() -> None:
    """Check that the ``mcp`` SDK is installed.

    Raises:
        MissingExtraError: It is not.
    """
    _server_classes()


def _jsonable(value: Any) -> Any:
    """Return ``value`` ready for JSON: datetimes as ISO 8601 with their offset.

    agentmem stores times as naive UTC; a client cannot know that, so they are sent
    with ``+00:00``.
    """
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


_RECORD_KEYS = (
    "store",
    "kind",
    "score",
    "rank",
    "current",
    "valid_from",
    "invalid_at",
    "superseded_by",
    "source_turn_ids",
    "session_id",
    "created_at",
    "changes",
    "metadata",
)


def _record(record: Mapping[str, Any]) -> dict[str, Any]:
    # The text as a prompt should show it: with the changes since beside it.
    found = {"id": record.get("id"), "text": record.get("memory")}
    return {**found, **{key: _jsonable(record.get(key)) for key in _RECORD_KEYS if key in record}}


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


def _tool_error_text(exc: AgentMemError) -> str:
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    text = f"{type(exc).__name__}: {message}"
    if exc.hint:
        text += f"\nhint: {exc.hint}"
    if exc.retryable:
        text += "\n(retrying may help)"
    return text


def build_server(memory: Memory, served_user: str | None) -> Any:
    """Return an MCP server whose tools read and write ``memory``.

    Args:
        memory: The memory to serve (the caller closes it).
        served_user: The one user this server serves (calls naming another are
            refused), or ``None``: every call names its user.

    Raises:
        MissingExtraError: The ``mcp`` SDK is not installed.
    """
    server_class, tool_error, annotations_class = _server_classes()
    server = server_class("agentmem", instructions=INSTRUCTIONS)
    user_of = user_scope(served_user)
    # The SDK runs each synchronous tool in a worker thread, and over HTTP several clients
    # call at once: one call at a time reaches memory, as one agent's turns would.
    serial = threading.Lock()

    def tool(*, read_only: bool, destructive: bool = False, idempotent: bool = False) -> Any:
        hints = annotations_class.model_validate(
            {
                "readOnlyHint": read_only,
                "destructiveHint": destructive,
                "idempotentHint": idempotent,
                "openWorldHint": False,
            }
        )

        def register(function: _F) -> _F:
            """Register ``function`` as a tool whose typed errors become tool errors."""

            def wrapped(*args: Any, **kwargs: Any) -> Any:
                try:
                    with serial:
                        return function(*args, **kwargs)
                except AgentMemError as exc:
                    raise tool_error(_tool_error_text(exc)) from exc

            wrapped.__name__ = function.__name__
            wrapped.__doc__ = function.__doc__
            wrapped.__annotations__ = function.__annotations__
            wrapped.__wrapped__ = function  # type: ignore[attr-defined]
            server.tool(annotations=hints)(wrapped)
            return function

        return register

    _reading_tools(tool, memory, user_of)
    _writing_tools(tool, memory, user_of)
    return server


def _reading_tools(tool: Any, memory: Memory, user_of: Callable[[str | None], str]) -> None:
    """Register the tools that only read: search, list_memories, get_memory, history."""

    @tool(read_only=True, idempotent=True)
    def search(
        query: Query,
        user_id: UserId = None,
        top_k: TopK = 10,
        include_history: WithHistory = False,
        as_of: AsOf = None,
        filters: Filters = None,
    ) -> dict[str, Any]:
        """Search the user's memory; return the items found, best first.

        Each item has its text, the structure (store) that holds it, its score (a
        similarity in [0, 1]: 1 is the query itself) and rank, whether it is still
        current, when it held (valid_from, invalid_at), what superseded it, the ids of
        the turns it came from, and the values it states that changed since (changes:
        the item holds for the rest; its text shows them as "[since <date>: old → new]").
        """
        result = memory.search(
            query,
            user_id=user_of(user_id),
            top_k=top_k,
            include_history=include_history,
            as_of=as_of,
            filters=filters,
        )
        return {"query": result.query, "items": [_record(r) for r in result.items]}

    @tool(read_only=True, idempotent=True)
    def list_memories(
        user_id: UserId = None,
        store: StoreName = None,
        include_history: WithHistory = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """List the user's memory items, oldest first (total counts them all)."""
        records = memory.get_all(
            user_id=user_of(user_id), store=store, include_history=include_history
        )
        page = records[offset : offset + limit]
        return {"total": len(records), "items": [_record(r) for r in page]}

    @tool(read_only=True, idempotent=True)
    def get_memory(
        memory_id: MemoryId,
        user_id: UserId = None,
    ) -> dict[str, Any]:
        """Return one memory item: its text, structure, validity and provenance."""
        return _record(memory.get(memory_id, user_id=user_of(user_id)))

    @tool(read_only=True, idempotent=True)
    def history(
        memory_id: MemoryId,
        user_id: UserId = None,
    ) -> dict[str, Any]:
        """Return every recorded change to one memory item, oldest first."""
        entries = memory.history(memory_id, user_id=user_of(user_id))
        return {"history": _jsonable(entries)}


def _writing_tools(tool: Any, memory: Memory, user_of: Callable[[str | None], str]) -> None:
    """Register the tools that change memory."""

    @tool(read_only=False)
    def remember(
        text: SaidText = None,
        messages: Messages = None,
        user_id: UserId = None,
        metadata: Metadata = None,
    ) -> dict[str, Any]:
        """Add to the user's memory; return the changes.

        Give either text or messages. Events: ADD (new item), SUPERSEDE (an older item
        no longer holds), UPDATE, DELETE, NOOP (already known).
        """
        if (text is None) == (messages is None):
            raise InputError(
                "remember takes text or messages, one of the two",
                hint='e.g. {"text": "I live in Lisbon."}',
            )
        said: Any = text if text is not None else messages
        result = memory.add(said, user_id=user_of(user_id), metadata=metadata)
        return _jsonable(
            {
                "events": result.events,
                "turn_ids": result.turn_ids,
                "session_id": result.session_id,
                "failures": result.failures,
            }
        )

    @tool(read_only=False, destructive=True)
    def update_memory(
        memory_id: MemoryId,
        text: NewText,
        user_id: UserId = None,
    ) -> dict[str, Any]:
        """Correct one memory item's text; return the changes.

        The old text stays in the item's history; copies of it in other structures are
        superseded by the edited item. Only a current item can be updated.
        """
        result = memory.update(memory_id, text, user_id=user_of(user_id))
        return {"events": _jsonable(result.events)}

    @tool(read_only=False, destructive=True, idempotent=True)
    def delete_memory(
        memory_id: MemoryId,
        user_id: UserId = None,
        reason: Reason = None,
    ) -> dict[str, Any]:
        """End one memory item: it no longer holds and search leaves it out.

        Nothing is erased: the item and its history stay (search with include_history
        finds it, current=false). Copies of it in other structures end with it. To erase
        it for good use forget_memory.
        """
        result = memory.delete(memory_id, user_id=user_of(user_id), reason=reason)
        return {"events": _jsonable(result.events)}

    @tool(read_only=False, destructive=True, idempotent=True)
    def forget_memory(
        memory_id: MemoryId,
        user_id: UserId = None,
    ) -> dict[str, Any]:
        """Erase one memory item for good; return what was erased.

        The item, the turn it came from and everything derived from that turn or quoting
        it lose their text, history included (each keeps a tombstone without content),
        and their vectors are removed from disk. To end an item but keep its history,
        use delete_memory.
        """
        result = memory.delete(memory_id, user_id=user_of(user_id), erase=True)
        return {"events": _jsonable(result.events)}

    @tool(read_only=False, destructive=True, idempotent=True)
    def forget(user_id: UserId = None) -> dict[str, Any]:
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


__all__ = ["INSTRUCTIONS", "build_server", "check_sdk", "user_scope"]
