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

Erasure leaves no copy behind in the database file: deleted or blanked rows still sit in
SQLite's free pages, in the full-text index's older segments and in the write-ahead log
until they are overwritten, so :meth:`Records.compact` merges the index, rewrites the file
(``VACUUM``) and empties the log after every erasure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from datetime import datetime

import sqlalchemy
from sqlalchemy import Connection, func, text
from sqlmodel import col, delete, select, update

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
from agentmem.types import utcnow

logger = logging.getLogger(__name__)


#: The two maxima of :meth:`Records.latest_moment`, in one statement.
_LATEST = sqlalchemy.select(
    sqlalchemy.select(func.max(TurnRow.timestamp))
    .where(col(TurnRow.user_id) == sqlalchemy.bindparam("user_id"))
    .scalar_subquery(),
    sqlalchemy.select(func.max(ItemEventRow.at))
    .where(col(ItemEventRow.user_id) == sqlalchemy.bindparam("user_id"))
    .scalar_subquery(),
)


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
        read_only: Open an SQLite file for reading only, even in a folder this process
            cannot write; a write raises :class:`~agentmem.errors.ReadOnlyError`.

    Raises:
        StorageError: The database cannot be opened.
    """

    def latest_moment(self, user_id: str) -> datetime | None:
        """Return the latest dialogue time at which anything of the user's memory changed.

        The latest of a turn's time and a recorded change's (``item_events.at``: an item's
        start of validity is its ADD event's, its end its SUPERSEDE or DELETE event's, a
        value change noted on it its UPDATE event's). Memory as of any moment at or after
        it is memory as it stands now, which the structures answer without filtering by
        validity (issue 32: the graph's and memos' validity-filtered searches cost ``all``
        35 ms a recall). Two index lookups. ``None`` for a user with no memory.
        """
        with self._connect() as connection:
            found = connection.execute(_LATEST, {"user_id": user_id}).one()
        return max((moment for moment in found if moment is not None), default=None)

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

    def erase(self, user_id: str, item_ids: Collection[str], turn_ids: Collection[int]) -> int:
        """Blank items and turns of a user, keeping tombstones; return how many rows changed.

        An erased item keeps its id, structure, kind, validity and source turn ids (no
        content), its text becomes :data:`ERASED` and its metadata only says it was
        erased; every event of its history loses its texts and reason, and one ``DELETE``
        event saying so is added. An erased turn keeps its place in its session with the text
        :data:`ERASED`. A document whose turn is erased is ended and blanked. Run
        :meth:`compact` afterwards for the bytes to leave the file.
        """
        items, turns = sorted(set(item_ids)), sorted(set(turn_ids))
        changed = 0
        with self.session() as s:
            for chunk in _chunks(items):
                changed += _count(
                    s.execute(
                        update(MemoryItemRow)
                        .where(
                            col(MemoryItemRow.user_id) == user_id, col(MemoryItemRow.id).in_(chunk)
                        )
                        .values(text=ERASED, metadata_={"erased": True}, updated_at=utcnow())
                    )
                )
                s.execute(
                    update(ItemEventRow)
                    .where(
                        col(ItemEventRow.user_id) == user_id, col(ItemEventRow.item_id).in_(chunk)
                    )
                    .values(old_text=None, new_text=None, reason="")
                )
                for item_id in chunk:
                    s.add(
                        ItemEventRow(
                            item_id=item_id, user_id=user_id, action="DELETE", reason=ERASED_REASON
                        )
                    )
            for chunk in _chunks(turns):
                changed += _count(
                    s.execute(
                        update(TurnRow)
                        .where(col(TurnRow.user_id) == user_id, col(TurnRow.id).in_(chunk))
                        .values(text=ERASED, metadata_={"erased": True})
                    )
                )
                s.execute(  # the names a turn said are its words too
                    delete(NamedPersonRow).where(
                        col(NamedPersonRow.user_id) == user_id,
                        col(NamedPersonRow.turn_id).in_(chunk),
                    )
                )
                s.execute(
                    update(DocumentRow)
                    .where(col(DocumentRow.user_id) == user_id, col(DocumentRow.turn_id).in_(chunk))
                    .values(
                        value={},
                        text="",
                        ended_at=utcnow(),
                        end_reason="erased",
                    )
                )
        return changed

    def erase_event_texts(self, user_id: str, item_ids: Collection[str]) -> None:
        """Blank the texts of some history events of a user's items (quotes of erased text)."""
        with self.session() as s:
            for chunk in _chunks(sorted(set(item_ids))):
                s.execute(
                    update(ItemEventRow)
                    .where(
                        col(ItemEventRow.user_id) == user_id, col(ItemEventRow.item_id).in_(chunk)
                    )
                    .values(old_text=None, new_text=None)
                )

    def event_texts(self, user_id: str) -> list[tuple[str, str]]:
        """Return ``(item id, text)`` for every text in the user's item histories."""
        with self.session() as s:
            rows = s.exec(
                select(ItemEventRow.item_id, ItemEventRow.old_text, ItemEventRow.new_text).where(
                    ItemEventRow.user_id == user_id
                )
            )
            return [(i, t) for i, old, new in rows for t in (old, new) if t]

    def compact(self) -> list[str]:
        """Rewrite the database so that no deleted or blanked data stays in the file.

        On SQLite: the full-text index is merged into one segment (older segments keep
        the words of deleted turns), the file is rebuilt (``VACUUM``: free pages and the
        unused space of pages keep old rows) and the write-ahead log is checkpointed and
        truncated (it keeps old page images). On a server database, ``VACUUM`` marks the
        dead rows' space free (the server reuses it; only ``VACUUM FULL``, which locks the
        tables, rewrites the files at once). Return what was rewritten, in words.

        Raises:
            StorageError: The database is busy or failed.
        """
        done: list[str] = []
        with self._guarded(), self.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            if self._sqlite:
                if self._turn_search:
                    connection.execute(text("INSERT INTO turns_fts(turns_fts) VALUES ('optimize')"))
                    done.append("the full-text index of turns (merged)")
                connection.execute(text("VACUUM"))
                done.append("the records database (VACUUM)")
                if _truncate_log(connection):
                    done.append("its write-ahead log (truncated)")
            elif self.engine.dialect.name == "postgresql":
                for table in ("turns", "memory_items", "item_events", "documents", "pending_work"):
                    connection.execute(text(f"VACUUM {table}"))
                done.append("the records database (VACUUM)")
        return done


def _truncate_log(connection: Connection, attempts: int = 50) -> bool:
    """Copy the write-ahead log into the file and empty it; return whether it was emptied.

    The log keeps the old images of every page a write changed, erased rows included,
    until a checkpoint copies them back and truncates it. A reader of an older snapshot
    (another connection, another process) blocks the truncation: wait for it a little,
    then leave the log to SQLite's next checkpoint, with a warning.
    """
    for _ in range(attempts):
        busy = connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).first()
        if busy is None or not busy[0]:
            return True
        time.sleep(0.1)
    logger.warning("the records database's log could not be truncated: a reader holds it")
    return False


#: The text an erased item or turn keeps: a tombstone says something was there, not what.
ERASED = "[erased]"
#: The reason of the event that records an erasure in an item's history.
ERASED_REASON = "erased: its text was removed everywhere"


def _chunks(values: list, size: int = 500) -> list[list]:  # type: ignore[type-arg]
    return [values[n : n + size] for n in range(0, len(values), size)]


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


__all__ = [
    "ERASED",
    "ERASED_REASON",
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
