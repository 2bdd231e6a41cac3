"""Documents kept under a namespace and key, for key-value clients such as LangGraph's store.

A document is a JSON value under a namespace (a tuple of labels) and a key. Writing a
key again ends its live version and adds a new one, and a delete only ends the live
version, so every version stays readable until :meth:`Records.forget` erases the user.
Each version records the turn that carried its text into memory, which links it to the
memory items built from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, or_, select

from agentmem.storage.database import Database
from agentmem.storage.tables import DocumentRow

#: What joins a namespace's labels in the ``namespace`` column (labels cannot contain it).
SEPARATOR = "."


def namespace_path(namespace: Sequence[str]) -> str:
    """Return the column form of a namespace: its labels joined by ``.``."""
    return SEPARATOR.join(namespace)


def namespace_of(path: str) -> tuple[str, ...]:
    """Return the namespace a column value stands for."""
    return tuple(path.split(SEPARATOR))


def expiry(moment: datetime, ttl_minutes: float | None) -> datetime | None:
    """Return when a document touched at ``moment`` expires (``None``: never)."""
    return None if ttl_minutes is None else moment + timedelta(minutes=ttl_minutes)


class DocumentRecords(Database):
    """The documents of :class:`~agentmem.storage.records.Records`; use that."""

    def put_document(
        self,
        *,
        user_id: str,
        agent_id: str | None,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        text: str,
        ttl_minutes: float | None,
        at: datetime,
        reason: str = "replaced",
    ) -> tuple[DocumentRow, DocumentRow | None]:
        """End the live version of ``namespace``/``key`` (if any) and add a new one.

        The new version keeps the first version's ``created_at``. Returns the new version
        and the one it ended.
        """
        with self.session() as s:
            old = _end_live(s, namespace, key, reason=reason, at=at)
            row = DocumentRow(
                user_id=user_id,
                agent_id=agent_id,
                namespace=namespace_path(namespace),
                key=key,
                value=dict(value),
                text=text,
                created_at=old.created_at if old is not None else at,
                updated_at=at,
                ttl_minutes=ttl_minutes,
                expires_at=expiry(at, ttl_minutes),
            )
            s.add(row)
            s.flush()
            return row, old

    def refresh_document(
        self, document_id: int, *, at: datetime, ttl_minutes: float | None
    ) -> None:
        """Record that a live version was written again unchanged: new times, no new version."""
        with self.session() as s:
            row = s.get(DocumentRow, document_id)
            if row is not None:
                row.updated_at = at
                row.ttl_minutes = ttl_minutes
                row.expires_at = expiry(at, ttl_minutes)
                s.add(row)

    def link_document(self, document_id: int, turn_id: int) -> None:
        """Record the turn that carried a document version into memory."""
        with self.session() as s:
            row = s.get(DocumentRow, document_id)
            if row is not None:
                row.turn_id = turn_id
                s.add(row)

    def end_document(
        self, namespace: Sequence[str], key: str, *, reason: str, at: datetime
    ) -> DocumentRow | None:
        """End the live version of ``namespace``/``key``; return it (``None``: none)."""
        with self.session() as s:
            return _end_live(s, namespace, key, reason=reason, at=at)

    def document(self, namespace: Sequence[str], key: str) -> DocumentRow | None:
        """Return the live version of ``namespace``/``key``, or ``None``."""
        with self.session() as s:
            return _live(s, namespace, key)

    def documents(self, prefix: Sequence[str] = ()) -> list[DocumentRow]:
        """Return the live documents under a namespace prefix, the latest written first."""
        query = select(DocumentRow).where(col(DocumentRow.ended_at).is_(None))
        if prefix:
            path = namespace_path(prefix)
            query = query.where(
                or_(
                    col(DocumentRow.namespace) == path,
                    col(DocumentRow.namespace).startswith(path + SEPARATOR, autoescape=True),
                )
            )
        query = query.order_by(col(DocumentRow.updated_at).desc(), col(DocumentRow.id).desc())
        with self.session() as s:
            rows = list(s.exec(query))
        if not prefix:
            return rows
        # SQLite's LIKE (what startswith compiles to) ignores ASCII case; namespaces, as
        # get and put compare them, do not: ("Foo",) is not under ("foo",).
        wanted = namespace_path(prefix)
        return [
            row
            for row in rows
            if row.namespace == wanted or row.namespace.startswith(wanted + SEPARATOR)
        ]

    def document_versions(self, namespace: Sequence[str], key: str) -> list[DocumentRow]:
        """Return every version of ``namespace``/``key``, oldest first (the live one last)."""
        query = (
            select(DocumentRow)
            .where(DocumentRow.namespace == namespace_path(namespace), DocumentRow.key == key)
            .order_by(col(DocumentRow.id))
        )
        with self.session() as s:
            return list(s.exec(query))

    def user_documents(self, user_id: str) -> list[DocumentRow]:
        """Return every version of every document of a user, oldest first."""
        query = select(DocumentRow).where(DocumentRow.user_id == user_id)
        with self.session() as s:
            return list(s.exec(query.order_by(col(DocumentRow.id))))

    def document_namespaces(self) -> list[tuple[str, ...]]:
        """Return the namespaces holding a live document, sorted."""
        query = select(DocumentRow.namespace).where(col(DocumentRow.ended_at).is_(None))
        with self.session() as s:
            return sorted({namespace_of(path) for path in s.exec(query.distinct())})

    def touch_documents(self, document_ids: Iterable[int], at: datetime) -> None:
        """Restart the time to live of live documents, counting from ``at``."""
        ids = list(document_ids)
        if not ids:
            return
        with self.session() as s:
            query = select(DocumentRow).where(
                col(DocumentRow.id).in_(ids),
                col(DocumentRow.ttl_minutes).is_not(None),
                col(DocumentRow.ended_at).is_(None),
            )
            for row in s.exec(query):
                row.expires_at = expiry(at, row.ttl_minutes)
                s.add(row)

    def expired_documents(self, at: datetime) -> list[DocumentRow]:
        """Return the live documents whose time to live ran out by ``at``."""
        query = select(DocumentRow).where(
            col(DocumentRow.ended_at).is_(None),
            col(DocumentRow.expires_at).is_not(None),
            col(DocumentRow.expires_at) <= at,
        )
        with self.session() as s:
            return list(s.exec(query.order_by(col(DocumentRow.id))))


def _live(s: Session, namespace: Sequence[str], key: str) -> DocumentRow | None:
    query = select(DocumentRow).where(
        DocumentRow.namespace == namespace_path(namespace),
        DocumentRow.key == key,
        col(DocumentRow.ended_at).is_(None),
    )
    return s.exec(query).first()


def _end_live(
    s: Session, namespace: Sequence[str], key: str, *, reason: str, at: datetime
) -> DocumentRow | None:
    """End the live version of ``namespace``/``key`` in session ``s``; return it."""
    row = _live(s, namespace, key)
    if row is not None:
        row.ended_at = at
        row.end_reason = reason
        s.add(row)
        s.flush()  # before a new live version of the key is added
    return row


__all__ = ["DocumentRecords", "expiry", "namespace_of", "namespace_path"]
