"""The tables of the records database, as SQLModel rows.

Users, their dialogue sessions and turns, the memory items the structures build from
those turns, each item's change history, the queue of model builds awaiting a retry, and
the documents a key-value client (the LangGraph store) keeps under a namespace and key.
Every table but ``users`` carries ``user_id``, so one user's rows can be read, scoped and
erased in SQL.
"""

from __future__ import annotations

from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, Column, Index, text
from sqlmodel import Field, SQLModel

from agentmem.types import utcnow


class UserRow(SQLModel, table=True):
    __tablename__ = "users"
    id: str = Field(primary_key=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class SessionRow(SQLModel, table=True):
    __tablename__ = "sessions"
    id: str = Field(primary_key=True)
    user_id: str = Field(index=True)
    agent_id: str | None = None
    started_at: NaiveDatetime = Field(default_factory=utcnow)
    ended_at: NaiveDatetime | None = None


class TurnRow(SQLModel, table=True):
    __tablename__ = "turns"
    # AUTOINCREMENT: a forgotten user's turn ids are never handed to a later turn, so
    # nothing keyed by a turn id (provenance, caches) can point at the wrong turn.
    __table_args__ = (
        Index("ix_turns_user_session", "user_id", "session_id", "id"),
        # The latest moment of a user's memory (Records.latest_moment), read per recall.
        Index("ix_turns_user_time", "user_id", "timestamp"),
        {"sqlite_autoincrement": True},
    )
    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(index=True)
    agent_id: str | None = None
    session_id: str
    speaker: str
    role: str
    text: str
    timestamp: NaiveDatetime
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    external_id: str | None = None
    # False until every memory structure has folded the turn in; restart resumes these.
    memorized: bool = Field(default=False, index=True)
    metadata_: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSON))


class MemoryItemRow(SQLModel, table=True):
    __tablename__ = "memory_items"
    __table_args__ = (Index("ix_items_user_store", "user_id", "store", "invalid_at"),)
    id: str = Field(primary_key=True)
    store: str
    kind: str
    user_id: str
    agent_id: str | None = None
    session_id: str | None = None
    text: str
    source_turn_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    valid_from: NaiveDatetime | None = None
    invalid_at: NaiveDatetime | None = None
    superseded_by: str | None = None
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)
    metadata_: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSON))


class ItemEventRow(SQLModel, table=True):
    """One change to a memory item: the audit trail behind ``history``."""

    __tablename__ = "item_events"
    __table_args__ = (Index("ix_events_user_at", "user_id", "at"),)  # see TurnRow's
    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(index=True)
    user_id: str = Field(index=True)
    action: str  # ADD, UPDATE, SUPERSEDE, DELETE (older folders: INVALIDATE)
    reason: str = ""
    at: NaiveDatetime | None = None  # dialogue time of the change
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    old_text: str | None = None
    new_text: str | None = None
    related_item_id: str | None = None


class PendingWorkRow(SQLModel, table=True):
    """Model-built memory that failed and waits for a retry (never silently dropped)."""

    __tablename__ = "pending_work"
    id: int | None = Field(default=None, primary_key=True)
    store: str = Field(index=True)
    user_id: str = Field(index=True)
    kind: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    attempts: int = 1
    last_error: str = ""
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)


class NamedPersonRow(SQLModel, table=True):
    """From which turn on a user's dialogue last named a third party (coreference state).

    The rule extractor reads "She moved to Dublin" as about the last person named; a row
    is kept only where that person changes, so a process restarted after a crash resumes
    the reading from the turn it resumes at (:class:`agentmem.ledger.rules.RuleExtractor`).
    """

    __tablename__ = "named_persons"
    user_id: str = Field(primary_key=True)
    turn_id: int = Field(primary_key=True)
    person: str


class DocumentRow(SQLModel, table=True):
    """One version of a document kept under a namespace and key (the LangGraph store).

    A put ends the live version (``ended_at``) and adds a new one, so every version stays
    readable. The document reaches memory as a turn (``turn_id``); ``None`` when it was
    put without indexing. At most one version of a namespace and key is live.
    """

    __tablename__ = "documents"
    __table_args__ = (
        Index(
            "ux_documents_live",
            "namespace",
            "key",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(index=True)
    agent_id: str | None = None
    # The labels joined by "." (a label cannot contain one), so a prefix is a LIKE.
    namespace: str = Field(index=True)
    key: str
    value: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    text: str = ""
    turn_id: int | None = Field(default=None, index=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)
    ttl_minutes: float | None = None
    expires_at: NaiveDatetime | None = None
    ended_at: NaiveDatetime | None = None
    end_reason: str = ""


__all__ = [
    "DocumentRow",
    "ItemEventRow",
    "MemoryItemRow",
    "NamedPersonRow",
    "PendingWorkRow",
    "SessionRow",
    "TurnRow",
    "UserRow",
]
