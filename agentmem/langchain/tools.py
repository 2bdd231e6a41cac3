"""Memory tools for LangChain tool-calling agents: search, save and forget."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from agentmem.errors import InputError, NotFoundError
from agentmem.langchain.retriever import iso
from agentmem.memory import Memory, MemoryRecord
from agentmem.results import ChangeResult


def memory_tools(
    memory: Memory, user_id: str, *, agent_id: str | None = None, top_k: int = 5
) -> list[BaseTool]:
    """Return the tools that let a tool-calling agent use a user's memory.

    * ``search_memory(query)``: the current items most relevant to ``query``, as JSON with
      each item's id, text, validity (``valid_from``) and provenance (``source_turn_ids``,
      ``session_id``).
    * ``save_memory(text)``: adds ``text`` as a user turn; returns what changed.
    * ``forget_memory(item_id)``: deletes one item through :meth:`Memory.delete` (it stays
      in history); returns what changed.

    A failure (an unknown id, an empty query) comes back to the model as the tool's
    answer, so it can correct itself.

    Args:
        memory: The memory the tools work on.
        user_id: Whose memory; the model cannot reach another user's.
        agent_id: The agent, recorded on saved turns and used to scope searches.
        top_k: How many items ``search_memory`` returns (at most).
    """

    def search_memory(query: str) -> str:
        """Search the user's long-term memory for what is known about the query."""
        with _tool_errors():
            result = memory.search(query, user_id=user_id, top_k=top_k, agent_id=agent_id)
        return _json([_tool_item(record) for record in result.items])

    def save_memory(text: str) -> str:
        """Save something the user said, or wants remembered, to long-term memory."""
        with _tool_errors():
            result = memory.add(
                [{"role": "user", "content": text}], user_id=user_id, agent_id=agent_id
            )
        return _json({"turn_ids": result.turn_ids, "events": _events(result)})

    def forget_memory(item_id: str) -> str:
        """Forget one memory item by its id (as search_memory returns it): its text is erased."""
        with _tool_errors():
            result = memory.delete(item_id, user_id=user_id, erase=True)
        return _json({"events": _events(result)})

    return [
        StructuredTool.from_function(function, handle_tool_error=True)
        for function in (search_memory, save_memory, forget_memory)
    ]


@contextmanager
def _tool_errors() -> Iterator[None]:
    """Turn agentmem's input errors into tool errors the model reads as the answer."""
    try:
        yield
    except (InputError, NotFoundError) as exc:
        raise ToolException(str(exc)) from exc


def _tool_item(record: MemoryRecord) -> dict[str, Any]:
    return {
        "id": record["id"],
        "memory": record["memory"],
        "store": record["store"],
        "current": record["current"],
        "valid_from": iso(record["valid_from"]),
        "invalid_at": iso(record["invalid_at"]),
        "session_id": record["session_id"],
        "source_turn_ids": list(record["source_turn_ids"]),
    }


def _events(result: ChangeResult) -> list[dict[str, Any]]:
    return [
        {
            "event": event["event"],
            "id": event["id"],
            "memory": event["memory"],
            "store": event["store"],
            "reason": event["reason"],
            "current": event["current"],
        }
        for event in result.events
    ]


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
