"""The baseline structure: every dialogue turn embedded and recalled by similarity.

This is what most memory layers start with, and the baseline the replay compares the
other structures against. Each item is one turn, its provenance that turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from agentmem.items import ItemIndex
from agentmem.protocols import StoreContext
from agentmem.records import derived_item_id
from agentmem.types import MemoryItem, Query, Recalled, Turn


class TurnStore:
    """Dialogue turns in a vector index.

    Args:
        context: The core services.
        name: The structure's name in records and results.
    """

    def __init__(self, context: StoreContext, *, name: str = "turns") -> None:
        self.name = name
        self._index = ItemIndex(context, name)

    def write(self, turns: Sequence[Turn]) -> list[MemoryItem]:
        """Store each turn as one item, embedded as ``speaker: text``.

        A turn already stored (a resumed write repeating it) is not stored again.
        """
        items = [
            MemoryItem(
                id=derived_item_id(self.name, turn.user_id, turn.id),
                store=self.name,
                kind="turn",
                user_id=turn.user_id,
                agent_id=turn.agent_id,
                session_id=turn.session_id,
                text=turn.render(),
                source_turn_ids=(turn.id,),
                valid_from=turn.timestamp,
                metadata={"speaker": turn.speaker, "timestamp": turn.timestamp.isoformat()},
            )
            for turn in turns
        ]
        return self._index.add(items, reason="turn stored")

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Return the ``k`` turns most similar to the query."""
        return self._index.search(query, k)

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
    ) -> None:
        """Mark turn items invalid (e.g. a turn the user retracted)."""
        self._index.invalidate(item_ids, reason, at=at, superseded_by=superseded_by)

    def forget(self, user_id: str) -> int:
        """Drop the user's turn vectors (the records database forgets the rows)."""
        return self._index.forget(user_id)
