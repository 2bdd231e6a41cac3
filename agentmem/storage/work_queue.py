"""The queue of model builds that failed and wait for a retry.

A structure whose model call fails queues what it was building instead of dropping it,
and retries it later; a success removes the entry, a failure counts another attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import col, delete, select

from agentmem.storage.database import Database
from agentmem.storage.tables import PendingWorkRow
from agentmem.types import utcnow


class WorkQueue(Database):
    """The work queue of :class:`~agentmem.storage.records.Records`; use that."""

    def queue_work(
        self, store: str, user_id: str, kind: str, payload: Mapping[str, Any], error: str
    ) -> int:
        """Record a failed model build so it can be retried later; return its id."""
        with self.session() as s:
            row = PendingWorkRow(
                store=store, user_id=user_id, kind=kind, payload=dict(payload), last_error=error
            )
            s.add(row)
            s.flush()
            assert row.id is not None
            return row.id

    def pending_work(self, store: str, user_id: str | None = None) -> list[PendingWorkRow]:
        """Return queued failed builds of a structure (optionally one user's), oldest first."""
        query = select(PendingWorkRow).where(PendingWorkRow.store == store)
        if user_id is not None:
            query = query.where(PendingWorkRow.user_id == user_id)
        with self.session() as s:
            return list(s.exec(query.order_by(col(PendingWorkRow.id))))

    def finish_work(self, work_id: int) -> None:
        """Remove a queued build that has now succeeded."""
        with self.session() as s:
            s.execute(delete(PendingWorkRow).where(col(PendingWorkRow.id) == work_id))

    def fail_work(self, work_id: int, error: str) -> None:
        """Record another failed attempt of a queued build."""
        with self.session() as s:
            row = s.get(PendingWorkRow, work_id)
            if row is not None:
                row.attempts += 1
                row.last_error = error
                row.updated_at = utcnow()
                s.add(row)


__all__ = ["WorkQueue"]
