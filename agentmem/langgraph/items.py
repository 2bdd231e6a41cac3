"""What the LangGraph store returns: LangGraph's items, with what memory knows of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langgraph.store.base import Item, SearchItem


class StoredItem(Item):
    """A stored document, with what memory knows of it.

    Attributes:
        current: False when memory no longer holds it: a later fact superseded what it
            says (it is then left out of search), or this version was replaced or deleted
            (in :meth:`AgentMemStore.versions`).
        superseded_by: The memory item that replaced it, if one did.
        turn_id: The turn that carried its text into memory (``None``: not indexed);
            :meth:`Memory.search` results cite it in ``source_turn_ids``.
        ended_at: When this version was replaced, deleted or expired (``None``: live).
        end_reason: Why it ended ("replaced", "deleted", "expired").
    """

    __slots__ = ("current", "superseded_by", "turn_id", "ended_at", "end_reason")

    def __init__(
        self,
        *,
        value: dict[str, Any],
        key: str,
        namespace: tuple[str, ...],
        created_at: datetime,
        updated_at: datetime,
        current: bool = True,
        superseded_by: str | None = None,
        turn_id: int | None = None,
        ended_at: datetime | None = None,
        end_reason: str = "",
    ) -> None:
        super().__init__(
            value=value, key=key, namespace=namespace, created_at=created_at, updated_at=updated_at
        )
        self.current = current
        self.superseded_by = superseded_by
        self.turn_id = turn_id
        self.ended_at = ended_at
        self.end_reason = end_reason


class StoredSearchItem(SearchItem):
    """A search result, with the same memory facts as :class:`StoredItem`."""

    __slots__ = ("current", "superseded_by", "turn_id")

    def __init__(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        created_at: datetime,
        updated_at: datetime,
        score: float | None = None,
        *,
        current: bool = True,
        superseded_by: str | None = None,
        turn_id: int | None = None,
    ) -> None:
        super().__init__(namespace, key, value, created_at, updated_at, score)
        self.current = current
        self.superseded_by = superseded_by
        self.turn_id = turn_id


__all__ = ["StoredItem", "StoredSearchItem"]
