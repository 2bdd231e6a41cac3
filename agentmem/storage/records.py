"""The records database: users, sessions, turns, memory items and their history.

SQLModel tables on SQLite by default (any SQLAlchemy URL works, e.g. PostgreSQL). Every
read and write is scoped by user in the SQL itself. A turn is committed by
:meth:`Records.add_turn` before any model is called, so an accepted turn survives any
later failure; memory items are invalidated, never deleted, except by :meth:`Records.forget`.

:class:`Records` is assembled from one part per concern, each in its own module:

- :mod:`~agentmem.storage.tables`: the tables;
- :mod:`~agentmem.storage.database`: the engine, transactions, and the one boundary where
  database errors become :class:`~agentmem.errors.StorageError`;
- :mod:`~agentmem.storage.dialogue`: users, sessions, turns and turn search;
- :mod:`~agentmem.storage.memory_items` (with :mod:`~agentmem.storage.item_sql`):
  memory items and their history;
- :mod:`~agentmem.storage.work_queue`: failed model builds awaiting a retry;
- :mod:`~agentmem.storage.documents`: documents under a namespace and key (the LangGraph
  store);
- :mod:`~agentmem.storage.persons`: who each dialogue last named (the rule extractor's
  coreference);
- here: erasure, which spans every table.
"""

from __future__ import annotations

from sqlmodel import delete

from agentmem.storage.database import database_url
from agentmem.storage.dialogue import MAX_TURN_CHARS, DialogueRecords
from agentmem.storage.documents import DocumentRecords
from agentmem.storage.item_sql import current_condition
from agentmem.storage.memory_items import ItemRecords, ItemUpdate, derived_item_id, new_item_id
from agentmem.storage.persons import PersonRecords
from agentmem.storage.tables import (
    DocumentRow,
    ItemEventRow,
    MemoryItemRow,
    NamedPersonRow,
    PendingWorkRow,
    SessionRow,
    TurnRow,
    UserRow,
)
from agentmem.storage.work_queue import WorkQueue


class Records(DialogueRecords, ItemRecords, WorkQueue, DocumentRecords, PersonRecords):
    """Access to the records database.

    Every error of the database reaches the caller as a
    :class:`~agentmem.errors.StorageError` with a hint:
    :class:`~agentmem.errors.DatabaseBusyError` (retryable) when another writer kept it
    locked past the wait, :class:`~agentmem.errors.ConstraintViolationError` when a
    write breaks a constraint (an id already stored).

    Args:
        url: A SQLAlchemy URL or a path to a SQLite file (created if missing). An SQLite
            URL may set how long a write waits for another writer, e.g.
            ``sqlite:///records.db?timeout=5`` (default 30 seconds).

    Raises:
        StorageError: The database cannot be opened.
    """

    def forget(self, user_id: str) -> dict[str, int]:
        """Delete every row about ``user_id``; return how many rows of each table went."""
        receipt: dict[str, int] = {}
        with self.session() as s:
            for name, table, column in (
                ("pending_work", PendingWorkRow, PendingWorkRow.user_id),
                ("named_persons", NamedPersonRow, NamedPersonRow.user_id),
                ("documents", DocumentRow, DocumentRow.user_id),
                ("item_events", ItemEventRow, ItemEventRow.user_id),
                ("memory_items", MemoryItemRow, MemoryItemRow.user_id),
                ("turns", TurnRow, TurnRow.user_id),
                ("sessions", SessionRow, SessionRow.user_id),
                ("users", UserRow, UserRow.id),
            ):
                result = s.execute(delete(table).where(column == user_id))  # type: ignore[arg-type]
                receipt[name] = int(result.rowcount or 0)  # type: ignore[attr-defined]
        return receipt


__all__ = [
    "MAX_TURN_CHARS",
    "DocumentRow",
    "ItemEventRow",
    "ItemUpdate",
    "MemoryItemRow",
    "PendingWorkRow",
    "Records",
    "SessionRow",
    "TurnRow",
    "UserRow",
    "current_condition",
    "database_url",
    "derived_item_id",
    "new_item_id",
]
