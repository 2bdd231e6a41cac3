"""The small protocols everything plugs into: memory structures, chat models, embedders.

A memory structure needs only :class:`MemoryStore`; optional abilities are separate
protocols checked with ``isinstance``: :class:`Consolidating` for structures that build
memory at session ends, :class:`Editable` for structures whose items can be edited and
deleted in place, :class:`Browsable` for structures the chat app can show, and
:class:`Resumable` for structures that queue failed model builds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from agentmem.types import (
    Change,
    Completion,
    ItemEvent,
    MemoryItem,
    Message,
    Outline,
    Query,
    Recalled,
    Turn,
)

if TYPE_CHECKING:
    from agentmem.ledger.extraction import FactExtractor
    from agentmem.storage.chroma import Hit
    from agentmem.storage.records import ItemUpdate, PendingWorkRow


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


class RecordStore(Protocol):
    """The records database as a structure sees it: turns, items, their history, queued work.

    :class:`~agentmem.storage.records.Records` (SQLite or PostgreSQL) is the one agentmem
    ships; a structure depends only on this, so it can be given another.
    """

    def turns(
        self,
        user_id: str,
        *,
        session_id: str | None = None,
        ids: Iterable[int] | None = None,
        after_id: int | None = None,
    ) -> list[Turn]:
        """Return a user's turns (of a session, with these ids, or after an id), in order."""
        ...

    def previous_turn(self, turn: Turn) -> Turn | None:
        """Return the turn said just before ``turn`` in its session, if any."""
        ...

    def speakers(self, user_id: str) -> dict[str, str]:
        """Return each speaker of the user's turns with their role."""
        ...

    def search_turns(self, user_id: str, words: Sequence[str], limit: int) -> list[int]:
        """Return the ids of the turns best matching ``words`` (full-text), best first."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Group the writes made inside into one transaction (all kept, or none)."""
        ...

    def after_commit(self, call: Callable[[], None]) -> None:
        """Call ``call`` once the writes so far are committed (at once outside a transaction)."""
        ...

    def add_items(self, items: Sequence[MemoryItem], *, reason: str = "") -> list[MemoryItem]:
        """Store new items (an ADD in each one's history); return them as stored."""
        ...

    def update_item(
        self,
        item_id: str,
        *,
        text_value: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source_turn_ids: Sequence[int] | None = None,
        reason: str = "",
        at: datetime | None = None,
        user_id: str | None = None,
    ) -> MemoryItem:
        """Change an item's text, metadata or provenance (an UPDATE in its history)."""
        ...

    def update_items(
        self, changes: Sequence[ItemUpdate], *, user_id: str | None = None
    ) -> list[MemoryItem]:
        """Apply several changes in one transaction; return the items after."""
        ...

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
        action: str | None = None,
    ) -> list[MemoryItem]:
        """End items from dialogue time ``at`` (SUPERSEDE, or ``action``); return them."""
        ...

    def items(self, item_ids: Iterable[str], *, user_id: str | None = None) -> list[MemoryItem]:
        """Return the items with these ids (of ``user_id``, when given)."""
        ...

    def get_item(self, item_id: str, *, user_id: str | None = None) -> MemoryItem:
        """Return one item; raise :class:`~agentmem.errors.NotFoundError` if unknown."""
        ...

    def existing_ids(self, item_ids: Iterable[str]) -> set[str]:
        """Return which of these item ids are stored."""
        ...

    def store_items(
        self, store: str, user_id: str, *, kind: str | None = None, current_only: bool = True
    ) -> list[MemoryItem]:
        """Return a structure's items of a user (of a kind; current ones only by default)."""
        ...

    def items_from_turns(
        self, user_id: str, turn_ids: Iterable[int], *, store: str | None = None
    ) -> list[MemoryItem]:
        """Return the user's items derived from any of ``turn_ids`` (of ``store`` if given,
        else of every structure)."""
        ...

    def history(self, item_id: str, *, user_id: str | None = None) -> list[ItemEvent]:
        """Return every recorded change to an item, oldest first."""
        ...

    def queue_work(
        self, store: str, user_id: str, kind: str, payload: Mapping[str, Any], error: str
    ) -> int:
        """Queue a failed build to retry; return its id."""
        ...

    def pending_work(self, store: str, user_id: str | None = None) -> list[PendingWorkRow]:
        """Return a structure's queued builds (of a user, or all)."""
        ...

    def finish_work(self, work_id: int) -> None:
        """Drop a queued build that succeeded."""
        ...

    def fail_work(self, work_id: int, error: str) -> None:
        """Record another failed attempt of a queued build."""
        ...


class VectorStore(Protocol):
    """The vector index as a structure sees it: vectors per (structure, user).

    :class:`~agentmem.storage.vectors.VectorIndex` (chromadb, embedded or a server) is
    the one agentmem ships.
    """

    def upsert(
        self,
        store: str,
        user_id: str,
        ids: Sequence[str],
        embeddings: np.ndarray,
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Write vectors with their validity metadata (replacing those with the same id)."""
        ...

    def update_metadata(
        self, store: str, user_id: str, ids: Sequence[str], metadatas: Sequence[Mapping[str, Any]]
    ) -> None:
        """Replace the metadata of stored vectors (an invalidated item's, say)."""
        ...

    def query(
        self,
        store: str,
        user_id: str,
        embedding: np.ndarray,
        k: int,
        *,
        where: Mapping[str, Any] | None = None,
        history: bool = False,
    ) -> list[Hit]:
        """Return the ``k`` nearest vectors (current ones, or all with ``history``)."""
        ...

    def get(self, store: str, user_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the stored vectors of these ids (the missing ones left out)."""
        ...

    def pending(self, store: str, user_id: str) -> frozenset[str]:
        """Return the ids whose metadata change is accepted but not yet written."""
        ...

    def delete(self, store: str, user_id: str, ids: Sequence[str]) -> None:
        """Remove vectors."""
        ...

    def count(self, store: str, user_id: str, *, history: bool | None = None) -> int:
        """Return how many vectors a structure holds for a user."""
        ...

    def drop(self, store: str, user_id: str) -> int:
        """Remove every vector of a structure's user; return how many there were."""
        ...


@runtime_checkable
class ErasableVectors(Protocol):
    """A vector index that can erase so that no copy stays in its files.

    :class:`~agentmem.storage.vectors.VectorIndex` is one; the memory manager uses it to
    forget a user or erase an item for good.
    """

    def user_stores(self, user_id: str) -> list[str]:
        """Return every structure holding vectors of a user (configured or not)."""
        ...

    def drop(self, store: str, user_id: str) -> int:
        """Remove every vector of a structure's user; return how many there were."""
        ...

    def erase(self, user_id: str, ids: Collection[str]) -> int:
        """Remove a user's vectors by id from every structure; return how many went."""
        ...

    def compact(self) -> list[str]:
        """Rewrite the files so that removed vectors leave no copy; say what was rewritten."""
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

    records: RecordStore
    vectors: VectorStore
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
class Leading(Protocol):
    """A structure built for some forms of question (:mod:`agentmem.questions`).

    For a question of one of those forms the manager lets it lead the fusion: its items
    are fitted into the budget first (a recap gets the summaries before the turns).

    Attributes:
        leads: The forms it answers first (``"recap"``, ``"topic"``, ...).
        serves: The forms it answers at all: for another form it is not searched (a
            structure that knows nothing of time adds nothing to a recap of a day).
    """

    leads: frozenset[str]
    serves: frozenset[str]


@runtime_checkable
class Verbatim(Protocol):
    """A structure that keeps what was said as it was said (the turns), inferring nothing.

    ``Memory.add(..., infer=False)`` (mem0's name) writes only to these: the messages are
    stored and searchable, and no fact, tree node or triple is drawn from them.

    Attributes:
        verbatim: Always true for such a structure.
    """

    verbatim: bool


@runtime_checkable
class Resumable(Protocol):
    """A structure that queues failed model builds and can retry them."""

    def retry_pending(self, user_id: str | None = None) -> int:
        """Retry queued builds (all users, or one); return how many now succeeded."""
        ...


StoreFactory = Callable[[StoreContext], MemoryStore]
