"""The connection to the records database, and the one place its errors are translated.

:class:`Database` opens the engine and hands out transactions (:meth:`Database.session`
for ORM rows, :meth:`Database._connect` for Core statements; :meth:`Database.transaction`
makes the calls inside it one transaction). They all run inside
:meth:`Database._guarded`, the boundary where every error of the database driver or of
SQLAlchemy becomes a :class:`~agentmem.errors.StorageError` with a hint, so no caller
ever sees ``sqlite3`` or ``sqlalchemy`` exceptions.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine

from agentmem.errors import (
    ConfigError,
    ConstraintViolationError,
    DatabaseBusyError,
    DiskFullError,
    ReadOnlyError,
    StorageError,
    folder_error,
)
from agentmem.storage import tables  # noqa: F401  (registers the tables with SQLModel)

#: How long (seconds) a write waits for another connection's write to finish before it
#: fails with DatabaseBusyError; an SQLite URL may set its own with ``?timeout=SECONDS``.
DEFAULT_TIMEOUT = 30.0

# SQLite primary result codes (the low byte of an extended code), see sqlite.org/rescode.html.
_BUSY, _LOCKED, _READONLY, _CORRUPT, _FULL, _CANTOPEN, _CONSTRAINT, _NOTADB = (
    5, 6, 8, 11, 13, 14, 19, 26
)  # fmt: skip
# PostgreSQL states a retry can clear: lock_not_available, serialization_failure,
# deadlock_detected.
_PG_BUSY = frozenset({"55P03", "40001", "40P01"})


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
        read_only: Open an SQLite file for reading only (see :func:`read_only_url`); a
            write raises :class:`~agentmem.errors.ReadOnlyError`. The file and its folder
            need not be writable.

    Raises:
        ConfigError: ``read_only`` with a database that is not an SQLite file.
        StorageError: The database cannot be opened (its folder, a damaged file, a server
            that cannot be reached).
    """

    def __init__(self, url: str | Path, *, read_only: bool = False) -> None:
        self.url = database_url(url)
        self._sqlite = self.url.startswith("sqlite")
        self.read_only = read_only
        if read_only:
            self.url = read_only_url(self.url)
        self._lock = threading.RLock()
        self._timeout: float | None = None
        # The connection of the transaction :meth:`transaction` holds open (only the
        # thread holding the lock ever sees it set), and what waits for its commit.
        self._open: Connection | None = None
        self._on_commit: list[Callable[[], None]] = []
        connect_args: dict[str, Any] = {}
        if self._sqlite:
            self._timeout = _sqlite_timeout(self.url)
            folder = _sqlite_folder(self.url)
            if folder is not None and not read_only:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise folder_error(folder, exc) from exc
            # Wait for another process's write instead of failing at once.
            connect_args = {"timeout": self._timeout, "check_same_thread": False}
        try:
            self.engine: Engine = create_engine(self.url, connect_args=connect_args)
        except (SQLAlchemyError, ImportError) as exc:
            raise StorageError(
                f"cannot open the records database {self.url}: {exc}",
                hint="check the database URL and that its driver is installed",
            ) from exc
        if self._sqlite and not read_only:  # journal settings are a writer's business
            event.listen(self.engine, "connect", _sqlite_pragmas)
        with self._guarded():
            # Only reads where the tables exist; a read-only file without them (an
            # older version's) fails here, with ReadOnlyError.
            SQLModel.metadata.create_all(self.engine)
            if not read_only:
                _add_missing_indexes(self.engine)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make every write inside one transaction: all of them are stored, or none.

        A structure's write touches several rows in several calls (new items, the items
        they extend, the ones they supersede); a process killed between two commits would
        leave half of it, which a resumed write cannot tell from a finished one. Inside,
        every call of this database joins the one transaction (and other threads wait for
        it): keep model and embedding calls out. Nested transactions join the outer one.

        Raises:
            StorageError: The database failed; nothing written inside was kept.
        """
        with self._guarded():
            if self._open is not None:
                yield
                return
            done: list[Callable[[], None]] = []
            try:
                with self.engine.begin() as connection:
                    self._open = connection
                    try:
                        yield
                    finally:
                        self._open = None
                        done, self._on_commit = self._on_commit, []
            except BaseException:
                done.clear()  # rolled back: what waited for the commit must not happen
                raise
        for call in done:
            call()

    def after_commit(self, call: Callable[[], None]) -> None:
        """Call ``call`` once what was written so far is committed (now, outside a transaction).

        For what mirrors the rows elsewhere (vector metadata): a rolled-back transaction
        must not leave the mirror ahead of the rows. Its errors reach the caller of the
        write that committed.
        """
        with self._lock:
            if self._open is not None:
                self._on_commit.append(call)
                return
        call()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open a session that commits on success and rolls back on error.

        Inside :meth:`transaction` the session joins it (the transaction commits).

        Raises:
            StorageError: The database failed (locked, full, unreachable).
        """
        with self._guarded():
            bind = self._open if self._open is not None else self.engine
            with Session(bind, expire_on_commit=False) as session:
                yield session
                session.commit()

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """Open a Core connection in a transaction (committed on success), as :meth:`session`.

        Inside :meth:`transaction` it is that transaction's connection.
        """
        with self._guarded():
            if self._open is not None:
                yield self._open
                return
            with self.engine.begin() as connection:
                yield connection

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Hold the lock and turn any database failure into a :class:`StorageError`."""
        with self._lock:
            try:
                yield
            except (SQLAlchemyError, sqlite3.Error) as exc:
                raise storage_error(exc, timeout=self._timeout) from exc


def storage_error(exc: SQLAlchemyError | sqlite3.Error, *, timeout: float | None) -> StorageError:
    """Return the typed error, with a hint, for a failure of the records database.

    Args:
        exc: What SQLAlchemy or the driver raised.
        timeout: How long a write waited for the database (SQLite), if known.
    """
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    message = str(cause).strip() or type(cause).__name__
    code = getattr(cause, "sqlite_errorcode", None)
    code = code & 0xFF if isinstance(code, int) else None
    state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    lowered = message.lower()
    if (
        code in (_BUSY, _LOCKED)
        or state in _PG_BUSY
        or (code is None and "database is locked" in lowered)
    ):
        waited = f" for longer than the {timeout:g} s it waits" if timeout is not None else ""
        return DatabaseBusyError(
            f"the records database is busy: another connection held its write lock{waited} "
            f"({message})",
            hint="another writer (an agentmem process, a script, an open sqlite3 shell) is "
            "in a long transaction; try again when it has finished, or give a SQLite URL a "
            "longer ?timeout=SECONDS",
        )
    if code == _CONSTRAINT or isinstance(exc, IntegrityError | sqlite3.IntegrityError):
        if "unique" in lowered or "duplicate" in lowered:
            hint = (
                "a row with this id is already stored; give new items fresh ids "
                "(new_item_id) or change the stored one with update_items"
            )
        else:
            hint = "the row conflicts with what is stored; nothing was written"
        return ConstraintViolationError(
            f"the records database refused a write: {message}", hint=hint
        )
    if code == _FULL or (code is None and "disk is full" in lowered) or "no space left" in lowered:
        return DiskFullError(
            f"the disk is full: the records database cannot grow ({message})",
            hint="free space on the disk that holds the data folder, then retry; nothing "
            "was written, and what was stored before is intact",
        )
    if code == _READONLY or "readonly database" in lowered:
        return ReadOnlyError(
            f"the records database is read-only: {message}",
            hint="to change memory, open it writable: the database file and its folder "
            "must be writable (SQLite also writes -wal and -shm files beside it); to only "
            "read it, open it with read_only=True",
        )
    if code in (_CORRUPT, _NOTADB) or "not a database" in lowered or "malformed" in lowered:
        return StorageError(
            f"the records database file is damaged or is not a database: {message}",
            hint="restore the file from a backup, or point --data-dir (or the database URL) "
            "at another location",
        )
    if code == _CANTOPEN:
        return StorageError(
            f"cannot open the records database file: {message}",
            hint="check that the file's folder exists and that you may read and write it",
        )
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return StorageError(
            f"lost the connection to the records database: {message}",
            hint="check that the database server is running and reachable",
            retryable=True,
        )
    return StorageError(
        f"records database error: {message}",
        hint="the change was not stored; check that the database (file or server) is "
        "reachable and writable",
    )


def read_only_url(url: str) -> str:
    """Return the URL that opens an SQLite file for reading only.

    ``mode=ro`` reads a database in WAL mode only where its ``-wal`` and ``-shm`` files
    exist or can be created: a read-only folder holding a cleanly closed database (no
    ``-wal`` file, as a writer leaves it) cannot be opened that way. Such a file has all
    its data in the main file, so it is opened ``immutable`` (no locks, no ``-shm``). With
    a ``-wal`` file beside it, its commits are read through it (``immutable`` would miss
    them). A URL that is already a ``file:`` URI is the caller's, and kept.

    Raises:
        ConfigError: The URL is not an SQLite file's.
    """
    parsed = _sqlite_url(url) if url.startswith("sqlite") else None
    database = parsed.database if parsed is not None else None
    if parsed is None or not database or database == ":memory:":
        raise ConfigError(
            "read-only memory needs the records in an SQLite file",
            hint="with a database server, give the user read-only rights there instead",
        )
    if parsed.query.get("uri") == "true":
        return url
    path = Path(database).expanduser().resolve()
    query = {"mode": "ro", "uri": "true"}
    if not Path(f"{path}-wal").exists():
        query["immutable"] = "1"
    if "timeout" in parsed.query:
        query["timeout"] = str(_sqlite_timeout(url))
    # Quoted twice: SQLAlchemy decodes the URL once, SQLite decodes the URI it is given
    # (a "#" or "?" in a folder name would otherwise end the file name).
    return f"sqlite:///file:{quote(quote(str(path)))}?{urlencode(query)}"


def _sqlite_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise StorageError(
            f"cannot read the records database URL {url!r}: {exc}",
            hint="give a file path or a URL such as sqlite:///path/to/records.db",
        ) from exc


def _sqlite_folder(url: str) -> Path | None:
    """Return the folder of an SQLite file URL, or ``None`` (in memory, a ``file:`` URI)."""
    parsed = _sqlite_url(url)
    database = parsed.database
    if not database or database == ":memory:" or parsed.query.get("uri") == "true":
        return None
    return Path(database).parent


def _sqlite_timeout(url: str) -> float:
    """Return the URL's ``timeout`` (seconds) or :data:`DEFAULT_TIMEOUT`."""
    value = _sqlite_url(url).query.get("timeout")
    if isinstance(value, tuple):
        value = value[-1]
    try:
        return float(value) if value is not None else DEFAULT_TIMEOUT
    except ValueError:
        raise StorageError(
            f"the records database URL has a timeout that is not a number: {value!r}",
            hint="give ?timeout= a number of seconds, e.g. ?timeout=30",
        ) from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers and one writer work at once across processes; NORMAL sync is
    # durable against process crashes (the guarantee we give for accepted turns). The
    # wait for a busy database is the driver's ``timeout`` (sqlite3 sets SQLite's busy
    # handler from it), so no busy_timeout pragma repeats it here.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


__all__ = ["DEFAULT_TIMEOUT", "Database", "database_url", "read_only_url", "storage_error"]


#: Indexes added to tables after their first release: ``create_all`` creates a missing
#: table with its indexes but adds none to a table that exists, so a folder written by an
#: older version gets them here (``IF NOT EXISTS``: SQLite and PostgreSQL alike).
_LATER_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_turns_user_time ON turns (user_id, timestamp)",
    "CREATE INDEX IF NOT EXISTS ix_events_user_at ON item_events (user_id, at)",
)


def _add_missing_indexes(engine: Engine) -> None:
    with engine.begin() as connection:
        for statement in _LATER_INDEXES:
            connection.execute(text(statement))
