"""Who each user's dialogue last named: the rule extractor's coreference, kept on disk.

See :class:`~agentmem.storage.tables.NamedPersonRow`. A row per turn where the person last
named changes; a lookup reads the latest row before a turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, select

from agentmem.storage.database import Database
from agentmem.storage.tables import NamedPersonRow

_ROWS = NamedPersonRow.__table__  # type: ignore[attr-defined]


class PersonRecords(Database):
    """The named persons of :class:`~agentmem.storage.records.Records`; use that."""

    def person_before(self, user_id: str, turn_id: int) -> str | None:
        """Return the third party the user's dialogue last named before turn ``turn_id``."""
        query = (
            select(_ROWS.c.person)
            .where(_ROWS.c.user_id == user_id, _ROWS.c.turn_id < turn_id)
            .order_by(_ROWS.c.turn_id.desc())
            .limit(1)
        )
        with self._connect() as connection:
            found = connection.execute(query).scalar()
        return None if found is None else str(found)

    def note_persons(
        self, user_id: str, turn_ids: Sequence[int], named: Sequence[tuple[int, str]]
    ) -> None:
        """Replace what is noted of ``turn_ids`` (extracted again) with ``named``: from each
        of those turns on, the dialogue last named that third party."""
        if not turn_ids and not named:
            return
        with self._connect() as connection:
            for start in range(0, len(turn_ids), 500):
                chunk = list(turn_ids[start : start + 500])
                connection.execute(
                    delete(_ROWS).where(_ROWS.c.user_id == user_id, _ROWS.c.turn_id.in_(chunk))
                )
            if named:
                connection.execute(
                    insert(_ROWS),
                    [{"user_id": user_id, "turn_id": t, "person": p} for t, p in named],
                )


__all__ = ["PersonRecords"]
