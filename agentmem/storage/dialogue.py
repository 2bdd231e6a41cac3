"""Users, sessions and turns in the records database, and full-text search over turns.

A turn is committed by :meth:`DialogueRecords.add_turn` before any model is called, so
an accepted turn survives any later failure. Input is checked here, at the door, with the
checks of :mod:`agentmem.inputs`: a turn that would not round-trip or could not be shown
safely (not text, too long, empty, not Unicode, a control character) or whose time memory
cannot store is refused with :class:`~agentmem.errors.InputError` and nothing is stored.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from agentmem.errors import ConstraintViolationError, InputError
from agentmem.inputs import (
    MAX_TURN_CHARS,
    check_plain,
    check_turn_text,
    check_unicode,
    stored_moment,
)
from agentmem.storage import pg_search
from agentmem.storage.database import Database
from agentmem.storage.tables import SessionRow, TurnRow, UserRow
from agentmem.types import Role, Turn, utcnow

logger = logging.getLogger(__name__)

#: The full-text index of turn texts: external content (the text is stored once, in
#: ``turns``), diacritics folded, kept in step with ``turns`` by triggers (a forgotten
#: user's turns leave the index with them).
TURN_SEARCH_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS turns_fts USING fts5(user_id, text, content='turns', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS turns_fts_insert AFTER INSERT ON turns BEGIN "
    "INSERT INTO turns_fts(rowid, user_id, text) VALUES (new.id, new.user_id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS turns_fts_delete AFTER DELETE ON turns BEGIN "
    "INSERT INTO turns_fts(turns_fts, rowid, user_id, text) "
    "VALUES ('delete', old.id, old.user_id, old.text); END",
    "CREATE TRIGGER IF NOT EXISTS turns_fts_update AFTER UPDATE OF text, user_id ON turns BEGIN "
    "INSERT INTO turns_fts(turns_fts, rowid, user_id, text) "
    "VALUES ('delete', old.id, old.user_id, old.text); "
    "INSERT INTO turns_fts(rowid, user_id, text) VALUES (new.id, new.user_id, new.text); END",
)


class DialogueRecords(Database):
    """The users, sessions and turns of :class:`~agentmem.storage.records.Records`; use that."""

    def __init__(self, url: str | Path, *, read_only: bool = False) -> None:
        super().__init__(url, read_only=read_only)
        self._turn_search = self._create_turn_search()

    def _create_turn_search(self) -> bool:
        """Create the full-text index of turn texts; return whether there is one.

        SQLite: an FTS5 table kept in step by triggers. PostgreSQL: a generated
        ``tsvector`` column with a GIN index (:mod:`agentmem.storage.pg_search`). A
        database written before the index existed gets it filled once, here. An SQLite
        built without FTS5 gets none (recall is then by meaning alone), with a warning, as
        does any other server database.
        """
        if self.engine.dialect.name == "postgresql":
            with self._connect() as connection:
                return pg_search.create_turn_search(connection)
        if not self._sqlite:
            logger.warning(
                "no full-text search of turns on %s: turns are recalled by meaning only",
                self.engine.dialect.name,
            )
            return False
        with self._guarded():
            try:
                with self.engine.begin() as connection:
                    exists = connection.execute(
                        text("SELECT 1 FROM sqlite_master WHERE name = 'turns_fts'")
                    ).first()
                    if self.read_only:  # what is there is searched; nothing is created
                        return exists is not None
                    for statement in TURN_SEARCH_SCHEMA:
                        connection.execute(text(statement))
                    if exists is None:
                        connection.execute(
                            text("INSERT INTO turns_fts(turns_fts) VALUES ('rebuild')")
                        )
            except OperationalError as exc:
                if "fts5" not in str(exc).lower():
                    raise
                logger.warning("this SQLite has no FTS5: turns are recalled by meaning only")
                return False
        return True

    def search_turns(self, user_id: str, words: Sequence[str], limit: int) -> list[int]:
        """Return ids of the user's turns that best match ``words`` by BM25, best first.

        Any of the words matches (each a phrase of its tokens). On PostgreSQL the rank is
        BM25's shape from ``ts_rank_cd`` (:mod:`agentmem.storage.pg_search`). Empty where
        the database has no full-text index (an SQLite without FTS5, a server database
        other than PostgreSQL): recall is then by meaning alone.
        """
        terms = [w for w in dict.fromkeys(words) if w]
        if not self._turn_search or not terms or limit <= 0:
            return []
        if not self._sqlite:
            with self._connect() as connection:
                return pg_search.search_turns(connection, user_id, terms, limit)
        # The user is part of the match, so the index intersects the user's rows with the
        # words' rows instead of ranking every user's matches; the join makes it exact.
        words_match = " OR ".join(_fts_phrase(term) for term in terms)
        match = f"text : ({words_match})"
        if any(ch.isalnum() for ch in user_id):  # an id with no word in it tokenizes to nothing
            match = f"user_id : {_fts_phrase(user_id)} AND {match}"
        query = text(
            "SELECT turns.id FROM turns_fts JOIN turns ON turns.id = turns_fts.rowid "
            "WHERE turns_fts MATCH :match AND turns.user_id = :user "
            "ORDER BY bm25(turns_fts, 0.0, 1.0) LIMIT :limit"
        )
        with self._guarded(), self.engine.connect() as connection:
            rows = connection.execute(query, {"match": match, "user": user_id, "limit": limit})
            return [int(row[0]) for row in rows]

    # -- users and sessions ---------------------------------------------------------------

    def ensure_user(self, user_id: str) -> None:
        """Create the user row if it does not exist."""
        _check_id(user_id, "user_id")
        try:
            with self.session() as s:
                if s.get(UserRow, user_id) is None:
                    s.add(UserRow(id=user_id))
        except ConstraintViolationError:
            # Another process added the row between this one's look and its insert.
            with self.session() as s:
                if s.get(UserRow, user_id) is None:
                    raise

    def users(self) -> list[str]:
        """Return every user id."""
        with self.session() as s:
            return list(s.exec(select(UserRow.id).order_by(UserRow.id)))

    def start_session(
        self,
        user_id: str,
        *,
        session_id: str | None = None,
        agent_id: str | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Create (or reuse) a dialogue session for ``user_id``; return its id."""
        # Everything is checked before the user row is written: a refusal stores nothing.
        started = stored_moment(started_at, "the session's start") if started_at else utcnow()
        session_id = _check_id(session_id, "session_id") if session_id else uuid.uuid4().hex[:12]
        if agent_id is not None:
            _check_id(agent_id, "agent_id")
        self.ensure_user(user_id)
        with self.session() as s:
            if _check_owner(s, session_id, user_id) is None:
                s.add(
                    SessionRow(
                        id=session_id,
                        user_id=user_id,
                        agent_id=agent_id,
                        started_at=started,
                    )
                )
        return session_id

    def sessions(self, user_id: str) -> list[SessionRow]:
        """Return the user's sessions, oldest first."""
        with self.session() as s:
            query = select(SessionRow).where(SessionRow.user_id == user_id)
            return list(s.exec(query.order_by(col(SessionRow.started_at))))

    # -- turns ------------------------------------------------------------------------------

    def add_turn(
        self,
        user_id: str,
        session_id: str,
        speaker: str,
        role: Role,
        text_value: str,
        *,
        timestamp: datetime | None = None,
        agent_id: str | None = None,
        external_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        memorized: bool = False,
    ) -> Turn:
        """Validate and commit one turn; return it with its id.

        ``memorized=True`` stores a turn that memory must never fold in (e.g. a
        recall-only answer), in the same commit, so a crash cannot make it pending.

        Raises:
            InputError: The text, ids or role are not acceptable; nothing was stored.
            StorageError: The database failed; nothing was stored.
        """
        return self.add_turns(
            [
                dict(
                    user_id=user_id,
                    session_id=session_id,
                    speaker=speaker,
                    role=role,
                    text=text_value,
                    timestamp=timestamp,
                    agent_id=agent_id,
                    external_id=external_id,
                    metadata=metadata,
                    memorized=memorized,
                )
            ]
        )[0]

    def add_turns(self, turns: Sequence[Mapping[str, Any]]) -> list[Turn]:
        """Validate and commit several turns in one transaction (all or none).

        Each mapping has the keyword arguments of :meth:`add_turn` (``text`` for the text).

        Raises:
            InputError: A turn is not acceptable; nothing was stored.
            StorageError: The database failed; nothing was stored.
        """
        rows = [_turn_row(spec) for spec in turns]
        with self.session() as s:
            for session_id, user_id in {(row.session_id, row.user_id) for row in rows}:
                _check_owner(s, session_id, user_id)
            for user_id in {row.user_id for row in rows}:
                if s.get(UserRow, user_id) is None:
                    s.add(UserRow(id=user_id))
            s.add_all(rows)
            s.flush()
            result = [_turn(row) for row in rows]
        return result

    def turns(
        self,
        user_id: str,
        *,
        session_id: str | None = None,
        ids: Iterable[int] | None = None,
        after_id: int | None = None,
    ) -> list[Turn]:
        """Return the user's turns (one session's, given ids, or after an id), oldest first."""
        query = select(TurnRow).where(TurnRow.user_id == user_id)
        if after_id is not None:
            query = query.where(col(TurnRow.id) > after_id)
        if session_id is not None:
            query = query.where(TurnRow.session_id == session_id)
        if ids is not None:
            query = query.where(col(TurnRow.id).in_(list(ids)))
        return self._turns(query.order_by(col(TurnRow.id)))

    def recent_turns(self, user_id: str, session_id: str, limit: int) -> list[Turn]:
        """Return the last ``limit`` turns of a session, oldest first."""
        if limit <= 0:
            return []
        query = (
            select(TurnRow)
            .where(TurnRow.user_id == user_id, TurnRow.session_id == session_id)
            .order_by(col(TurnRow.id).desc())
            .limit(limit)
        )
        return self._turns(query)[::-1]

    def previous_turn(self, turn: Turn) -> Turn | None:
        """Return the turn said just before ``turn`` in its session, if any."""
        query = (
            select(TurnRow)
            .where(
                TurnRow.user_id == turn.user_id,
                TurnRow.session_id == turn.session_id,
                col(TurnRow.id) < turn.id,
            )
            .order_by(col(TurnRow.id).desc())
            .limit(1)
        )
        found = self._turns(query)
        return found[0] if found else None

    def speakers(self, user_id: str) -> dict[str, str]:
        """Return each speaker in the user's turns with the role they speak in."""
        query = select(TurnRow.speaker, TurnRow.role).where(TurnRow.user_id == user_id).distinct()
        with self.session() as s:
            return {speaker: role for speaker, role in s.exec(query)}

    def count_turns(self, user_id: str) -> int:
        """Return how many turns the user has."""
        with self.session() as s:
            query = select(func.count()).select_from(TurnRow).where(TurnRow.user_id == user_id)
            return int(s.exec(query).one())

    def pending_turns(self, user_id: str | None = None) -> list[Turn]:
        """Return accepted turns not yet folded into memory (e.g. after a crash)."""
        query = select(TurnRow).where(col(TurnRow.memorized).is_(False))
        if user_id is not None:
            query = query.where(TurnRow.user_id == user_id)
        return self._turns(query.order_by(col(TurnRow.id)))

    def mark_memorized(self, turn_ids: Iterable[int]) -> None:
        """Record that these turns are folded into every memory structure."""
        ids = list(turn_ids)
        if not ids:
            return
        with self.session() as s:
            s.execute(
                TurnRow.__table__.update()  # type: ignore[attr-defined]
                .where(TurnRow.__table__.c.id.in_(ids))  # type: ignore[attr-defined]
                .values(memorized=True)
            )

    def _turns(self, query: Any) -> list[Turn]:
        """Return the turns a select of :class:`TurnRow` finds, in its order."""
        with self.session() as s:
            return [_turn(row) for row in s.exec(query)]


def _check_owner(s: Session, session_id: str, user_id: str) -> SessionRow | None:
    """Return the session row, if any.

    Raises:
        InputError: The session belongs to another user.
    """
    row = s.get(SessionRow, session_id)
    if row is not None and row.user_id != user_id:
        raise InputError(f"session {session_id!r} belongs to another user")
    return row


def _turn_row(spec: Mapping[str, Any]) -> TurnRow:
    """Return the row of one :meth:`DialogueRecords.add_turns` mapping, checked.

    Raises:
        InputError: The text, ids or role are not acceptable.
    """
    role = spec.get("role", "user")
    if role not in ("user", "assistant"):
        raise InputError(f"role must be 'user' or 'assistant', not {role!r}")
    stamp = spec.get("timestamp")
    agent_id = spec.get("agent_id")
    return TurnRow(
        user_id=_check_id(spec["user_id"], "user_id"),
        session_id=_check_id(spec["session_id"], "session_id"),
        agent_id=_check_id(agent_id, "agent_id") if agent_id is not None else None,
        speaker=_check_id(spec.get("speaker") or role, "speaker"),
        role=role,
        text=check_turn_text(spec["text"]),
        timestamp=stored_moment(stamp, "the turn's timestamp") if stamp else utcnow(),
        external_id=spec.get("external_id"),
        metadata_=dict(spec.get("metadata") or {}),
        memorized=bool(spec.get("memorized", False)),
    )


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise InputError(f"{what} must be a non-empty string of at most 256 characters")
    check_unicode(value, what)
    check_plain(value, what)  # an id is printed and logged: no escape sequences
    return value


def _turn(row: TurnRow) -> Turn:
    assert row.id is not None
    return Turn(
        id=row.id,
        user_id=row.user_id,
        session_id=row.session_id,
        speaker=row.speaker,
        role="assistant" if row.role == "assistant" else "user",
        text=row.text,
        timestamp=row.timestamp,
        agent_id=row.agent_id,
        external_id=row.external_id,
        metadata=dict(row.metadata_ or {}),
    )


def _fts_phrase(value: str) -> str:
    """Quote ``value`` as an FTS5 phrase (never query syntax)."""
    return '"' + value.replace('"', '""') + '"'


__all__ = ["MAX_TURN_CHARS", "TURN_SEARCH_SCHEMA", "DialogueRecords"]
