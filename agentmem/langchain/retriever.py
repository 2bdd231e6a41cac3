"""A LangChain retriever over :meth:`Memory.search <agentmem.memory.Memory.search>`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from agentmem.memory import Memory, MemoryRecord


class AgentMemRetriever(BaseRetriever):
    """Retrieve a user's memory items as LangChain documents.

    Each document's ``page_content`` is the item's text, its ``id`` the item's id, and its
    metadata JSON-safe: ``id``, ``store``, ``kind``, ``score`` (the similarity to the query,
    in [0, 1]), ``rank``, ``source_turn_ids``,
    ``current``, ``valid_from`` / ``invalid_at`` (ISO 8601 or ``None``) and
    ``superseded_by``.

    Example:
        ```python
        retriever = AgentMemRetriever(memory=memory, user_id="ana", k=5)
        docs = retriever.invoke("Where does Ana live?")
        docs = retriever.invoke("Where does Ana live?", k=2)
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    memory: Memory
    """The memory to search."""
    user_id: str
    """Whose memory to search (a user never sees another's items)."""
    k: int = Field(default=10, ge=1, alias="top_k")
    """How many documents to return (at most); ``top_k`` is accepted too."""
    include_history: bool = False
    """Also return invalidated items (their ``current`` metadata is False)."""
    include_assistant: bool = False
    """Also return the assistant's own lines (turns it said): by default a retriever
    returns what memory holds about the user, not what the agent told them."""
    agent_id: str | None = None
    """Only items of this agent (and items with no agent)."""
    filters: dict[str, Any] | None = None
    """Equality filters, as :meth:`Memory.search` takes them."""

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        top_k: int | None = None,
        filters: dict[str, Any] | None = None,
        as_of: datetime | str | None = None,
    ) -> list[Document]:
        wanted = k if k is not None else top_k if top_k is not None else self.k
        # The assistant's lines are left out after the search: ask for room to fill k.
        asked = wanted if self.include_assistant else wanted + _ASSISTANT_ROOM
        result = self.memory.search(
            query,
            user_id=self.user_id,
            top_k=asked,
            filters=self.filters if filters is None else filters,
            as_of=as_of,
            include_history=self.include_history,
            agent_id=self.agent_id,
        )
        records = [
            record
            for record in result.items
            if self.include_assistant or not _said_by_assistant(record)
        ]
        return [record_document(record) for record in records[:wanted]]

    @property
    def top_k(self) -> int:
        """The number of documents returned (the same as :attr:`k`)."""
        return self.k


#: How many more items to ask for when the assistant's lines will be left out.
_ASSISTANT_ROOM = 10


def _said_by_assistant(record: MemoryRecord) -> bool:
    """Whether an item is one of the assistant's own turns, not something about the user."""
    return record["kind"] == "turn" and record["metadata"].get("role") == "assistant"


def record_document(record: MemoryRecord) -> Document:
    """Return a memory item as a LangChain document with JSON-safe metadata."""
    return Document(
        id=record["id"],
        page_content=record["memory"],
        metadata={
            "id": record["id"],
            "store": record["store"],
            "kind": record["kind"],
            "score": record["score"],
            "rank": record["rank"],
            "source_turn_ids": list(record["source_turn_ids"]),
            "current": record["current"],
            "valid_from": iso(record["valid_from"]),
            "invalid_at": iso(record["invalid_at"]),
            "superseded_by": record["superseded_by"],
            # The page shows them beside the text; here as data (value, replaced_by, ...).
            "changes": list(record["changes"]),
            "text": record["text"],
        },
    )


def iso(moment: datetime | None) -> str | None:
    """Return ``moment`` as ISO 8601, or ``None`` (JSON-safe metadata; the tools use it too)."""
    return moment.isoformat() if moment is not None else None
