"""The small protocols everything plugs into: memory structures, chat models, embedders.

A memory structure needs only :class:`MemoryStore`; optional abilities are separate
protocols checked with ``isinstance``: :class:`Consolidating` for structures that build
memory at session ends, :class:`Editable` for structures whose items can be edited and
deleted in place, :class:`Browsable` for structures the chat app can show, and
:class:`Resumable` for structures that queue failed model builds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from agentmem.types import Change, Completion, Message, Outline, Query, Recalled, Turn

if TYPE_CHECKING:
    from agentmem.ledger.extraction import FactExtractor
    from agentmem.storage.records import Records
    from agentmem.storage.vectors import VectorIndex


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors, a batch at a time."""

    name: str

    @property
    def dimension(self) -> int:
        """Return the length of the vectors."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a ``(len(texts), dimension)`` float32 array of unit rows.

        Raises:
            EmbeddingError: The backend failed.
        """
        ...


@runtime_checkable
class ChatModel(Protocol):
    """A chat model: one answer at a time, optionally streamed or JSON-constrained."""

    name: str

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Answer ``messages``; with ``schema``, the answer is JSON parsed into ``data``.

        Raises:
            ModelError: The call failed; ``retryable`` says if a retry may help.
        """
        ...

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Answer ``messages`` as a stream of text chunks.

        Raises:
            ModelError: The call failed.
        """
        ...


@dataclass
class StoreContext:
    """The core services a memory structure is built on, injected by the composition point.

    Attributes:
        records: The records database (turns, memory items, their history).
        vectors: The vector index.
        embedder: The embedder used for items and queries.
        model: A chat model capable of extraction, or ``None`` for the offline builders.
        clock: Returns "now" for wall-clock fields (``created_at``).
        extractor: Extracts facts/triples from turns, shared by every consumer so a model
            is asked once per turn (``None``: consumers use the rule extractor).
    """

    records: Records
    vectors: VectorIndex
    embedder: Embedder
    model: ChatModel | None = None
    clock: Callable[[], datetime] | None = None
    extractor: FactExtractor | None = None


@runtime_checkable
class MemoryStore(Protocol):
    """A memory structure: writes turns, retrieves items, invalidates items.

    Every structure keeps its items in the shared records database (so provenance and
    history are queryable the same way for all of them), scoped by user.
    """

    name: str

    def write(self, turns: Sequence[Turn]) -> list[Change]:
        """Fold ``turns`` (already stored records) into the structure.

        Returns:
            What changed: ADD for each new item, UPDATE for each item revised (a MemTree
            ancestor re-aggregated, say), SUPERSEDE for each item it replaced.
        """
        ...

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Return up to ``k`` items for ``query``, best first, within ``query.scope``.

        Invalidated items are left out unless ``query.include_history``; with
        ``query.as_of``, items are judged by their validity at that time.
        """
        ...

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
    ) -> None:
        """Mark items as no longer valid from dialogue time ``at``; never delete them.

        The structure keeps itself consistent: what it built from an invalidated item (a
        MemTree ancestor's text, a graph edge's weight) no longer counts it.
        """
        ...

    def forget(self, user_id: str) -> int:
        """Erase everything the structure holds for ``user_id``; return how many items."""
        ...


@runtime_checkable
class Consolidating(Protocol):
    """A structure that also builds memory when a session ends (summaries, memos)."""

    def end_session(self, user_id: str, session_id: str) -> list[Change]:
        """Consolidate what the session added; return what changed."""
        ...


@runtime_checkable
class Editable(Protocol):
    """A structure whose items can be edited or deleted through :class:`MemoryManager`.

    The structure keeps itself consistent with the change: it re-embeds the item under
    its own vectors, re-aggregates what quotes it and re-derives what was built from it.
    Nothing is erased: the old text and the deletion stay in the item's history.
    """

    def update(
        self, item_id: str, text: str, *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Change one current item's text; return the changes (the UPDATE first).

        Raises:
            NotFoundError: The item is not one of this structure's.
        """
        ...

    def delete(
        self, item_ids: Sequence[str], *, reason: str, at: datetime | None = None
    ) -> list[Change]:
        """Invalidate items as deleted (and what was built only from them); return changes."""
        ...


@runtime_checkable
class Browsable(Protocol):
    """A structure with a shape worth showing: a tree, topics, versions, a graph.

    Attributes:
        focus_hint: What :meth:`outline`'s ``focus`` takes, as a prompt for the user (an
            entity of a graph, say); ``""`` when the structure takes no focus.
    """

    focus_hint: str

    def outline(self, user_id: str, *, focus: str = "", limit: int = 200) -> list[Outline]:
        """Return the user's items as a forest of entries, at most ``limit`` items in all.

        Args:
            user_id: Whose items.
            focus: What the user asked to look at (an entity of a graph, say); a
                structure without such a notion ignores it.
            limit: The most items to include.
        """
        ...


@runtime_checkable
class Resumable(Protocol):
    """A structure that queues failed model builds and can retry them."""

    def retry_pending(self, user_id: str | None = None) -> int:
        """Retry queued builds (all users, or one); return how many now succeeded."""
        ...


StoreFactory = Callable[[StoreContext], MemoryStore]
