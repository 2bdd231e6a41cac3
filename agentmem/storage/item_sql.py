"""Prebuilt SQLAlchemy Core statements on memory items and their history.

The item paths (add, update, invalidate, read) use Core on the table, not ORM objects:
building an ORM object costs ~0.1 ms, and ingest makes ~16 of them a turn
(benchmarks/bench_scale.py ingest spent a quarter of its time there). The hot statements
are built once: a statement built per call costs SQLAlchemy a cache-key walk each time
(275 against 157 us for ten items by id, sqlite3 itself 25 us).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import select

from agentmem.storage.tables import ItemEventRow, MemoryItemRow
from agentmem.types import ItemEvent, MemoryItem

ITEMS = MemoryItemRow.__table__  # type: ignore[attr-defined]
EVENTS = ItemEventRow.__table__  # type: ignore[attr-defined]

ITEM_COLUMNS = tuple(
    ITEMS.c[name]
    for name in (
        "id",
        "store",
        "kind",
        "user_id",
        "text",
        "source_turn_ids",
        "valid_from",
        "invalid_at",
        "superseded_by",
        "agent_id",
        "session_id",
        "created_at",
        "metadata",
    )
)


def current_condition() -> ColumnElement[bool]:
    """Return the SQL condition that a ``memory_items`` row is current.

    The SQL twin of :attr:`agentmem.types.MemoryItem.current` (no ``invalid_at``), so a
    query that wants current items says so by name instead of spelling the test out.
    """
    return ITEMS.c.invalid_at.is_(None)  # type: ignore[no-any-return]


def item_of(row: Sequence[Any]) -> MemoryItem:
    """Return the item a Core row of :data:`ITEM_COLUMNS` holds."""
    (id_, store, kind, user_id, text_value, sources, valid_from, invalid_at, superseded_by,
     agent_id, session_id, created_at, metadata) = row  # fmt: skip
    return MemoryItem(
        id=id_,
        store=store,
        kind=kind,
        user_id=user_id,
        text=text_value,
        source_turn_ids=tuple(sources or ()),
        valid_from=valid_from,
        invalid_at=invalid_at,
        superseded_by=superseded_by,
        agent_id=agent_id,
        session_id=session_id,
        created_at=created_at,
        metadata=dict(metadata or {}),
    )


def item_params(item: MemoryItem, now: datetime) -> dict[str, Any]:
    """Return ``item`` as the parameters of :data:`INSERT_ITEMS`."""
    return {
        "id": item.id,
        "store": item.store,
        "kind": item.kind,
        "user_id": item.user_id,
        "agent_id": item.agent_id,
        "session_id": item.session_id,
        "text": item.text,
        "source_turn_ids": list(item.source_turn_ids),
        "valid_from": item.valid_from,
        "invalid_at": item.invalid_at,
        "superseded_by": item.superseded_by,
        "created_at": item.created_at,
        "updated_at": now,
        "metadata": dict(item.metadata),
    }


def event_params(
    item: MemoryItem,
    action: str,
    reason: str,
    at: datetime | None,
    *,
    old_text: str | None = None,
    new_text: str | None = None,
    related_item_id: str | None = None,
    created_at: datetime,
) -> dict[str, Any]:
    """Return an :class:`ItemEventRow` about ``item`` as the parameters of :data:`INSERT_EVENTS`."""
    return {
        "item_id": item.id,
        "user_id": item.user_id,
        "action": action,
        "reason": reason,
        "at": at,
        "created_at": created_at,
        "old_text": old_text,
        "new_text": new_text,
        "related_item_id": related_item_id,
    }


def event_of(row: Any) -> ItemEvent:
    """Return the event a Core row of the whole ``item_events`` table holds."""
    return ItemEvent(
        item_id=row.item_id,
        user_id=row.user_id,
        # "INVALIDATE": what an ending without a successor was called before every
        # ending became a SUPERSEDE (a deletion stays a DELETE); old folders still say it.
        action="SUPERSEDE" if row.action == "INVALIDATE" else row.action,
        reason=row.reason,
        at=row.at,
        created_at=row.created_at,
        old_text=row.old_text,
        new_text=row.new_text,
        related_item_id=row.related_item_id,
        id=row.id,
    )


def items_query() -> Any:
    """Return a Core select of :data:`ITEM_COLUMNS` (rows for :func:`item_of`)."""
    return select(*ITEM_COLUMNS)


_IDS: Any = bindparam("ids", expanding=True)
SELECT_BY_ID = items_query().where(ITEMS.c.id.in_(_IDS))
SELECT_CURRENT_BY_ID = SELECT_BY_ID.where(current_condition())
SELECT_IDS = select(ITEMS.c.id).where(ITEMS.c.id.in_(_IDS))
SELECT_EVENTS = select(EVENTS).where(EVENTS.c.item_id == bindparam("item_id")).order_by(EVENTS.c.id)
INSERT_ITEMS = ITEMS.insert()
INSERT_EVENTS = EVENTS.insert()
UPDATE_ITEM = (
    ITEMS.update()
    .where(ITEMS.c.id == bindparam("item_id"))
    .values(
        text=bindparam("new_text"),
        metadata=bindparam("new_metadata", type_=JSON),
        source_turn_ids=bindparam("new_sources", type_=JSON),
        updated_at=bindparam("now"),
    )
)
UPDATE_METADATA = (
    ITEMS.update()
    .where(ITEMS.c.id == bindparam("item_id"))
    .values(metadata=bindparam("new_metadata", type_=JSON), updated_at=bindparam("now"))
)
INVALIDATE = (
    ITEMS.update()
    .where(ITEMS.c.id == bindparam("item_id"))
    .values(
        invalid_at=bindparam("moment"),
        superseded_by=bindparam("superseded"),
        updated_at=bindparam("now"),
    )
)
