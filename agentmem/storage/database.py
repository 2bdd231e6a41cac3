"""The connection to the records database, and the one place its errors are translated.

:class:`Database` opens the engine and hands out transactions (:meth:`Database.session`
for ORM rows, :meth:`Database._connect` for Core statements). Both run inside
:meth:`Database._guarded`, where a failure of the database becomes a
:class:`~agentmem.errors.StorageError`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine

from agentmem.errors import DataDirLockedError, StorageError, folder_error
from agentmem.storage import tables  # noqa: F401  (registers the tables with SQLModel)


def database_url(path_or_url: str | Path) -> str:
    """Turn a file path or a SQLAlchemy URL into a SQLAlchemy URL."""
    text_value = str(path_or_url)
    if "://" in text_value:
        return text_value
    return f"sqlite:///{Path(text_value).expanduser()}"


class Database:
    """An engine on the records database with guarded transactions.

    The base of :class:`~agentmem.storage.records.Records`; use that.

    Args:
        url: A SQLAlchemy URL or a path to a SQLite file (created if missing).

    Raises:
        StorageError: The database cannot be opened (its folder, a damaged file, a server
            that cannot be reached).
    """

    def __init__(self, url: str | Path) -> None:
        self.url = database_url(url)
        self._sqlite = self.url.startswith("sqlite")
        self._lock = threading.RLock()
        connect_args: dict[str, Any] = {}
        if self._sqlite:
            if self.url.startswith("sqlite:///") and self.url != "sqlite:///:memory:":
                folder = Path(self.url.removeprefix("sqlite:///")).parent
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise folder_error(folder, exc) from exc
            # Wait for another process's write instead of failing at once.
            connect_args = {"timeout": 30, "check_same_thread": False}
        try:
            self.engine: Engine = create_engine(self.url, connect_args=connect_args)
        except (SQLAlchemyError, ImportError) as exc:
            raise StorageError(f"cannot open the records database {self.url}: {exc}") from exc
        if self._sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            SQLModel.metadata.create_all(self.engine)
        except OperationalError as exc:
            raise storage_error(exc) from exc

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open a session that commits on success and rolls back on error.

        Raises:
            StorageError: The database failed (locked, full, unreachable).
        """
        with self._guarded(), Session(self.engine, expire_on_commit=False) as session:
            yield session
            session.commit()

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """Open a Core connection in a transaction (committed on success), as :meth:`session`."""
        with self._guarded(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Hold the lock and turn a database failure into a :class:`StorageError`."""
        with self._lock:
            try:
                yield
            except (OperationalError, InterfaceError) as exc:
                raise storage_error(exc) from exc


def storage_error(exc: OperationalError | InterfaceError) -> StorageError:
    """Return the :class:`StorageError` for a failure of the records database."""
    message = str(exc.orig) if exc.orig is not None else str(exc)
    if "locked" in message or "busy" in message:
        return DataDirLockedError(
            f"the records database is locked by another process: {message}",
            hint="close the other agentmem process or use another --data-dir",
            retryable=True,
        )
    return StorageError(f"records database error: {message}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers and one writer work at once across processes; NORMAL sync is
    # durable against process crashes (the guarantee we give for accepted turns).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


__all__ = ["Database", "database_url", "storage_error"]
