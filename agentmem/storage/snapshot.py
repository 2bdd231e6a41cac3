"""A private copy of a chromadb folder, for reading it without writing it.

chromadb cannot open a folder it may not write, and writes any folder it opens, so memory
opened read-only reads its vector index from a copy in the temporary directory. Beside a
process that holds the folder and writes it (the chat app, issue 35), the copy must be a
snapshot: SQLite databases are copied through SQLite's backup (one transaction's view,
the ``-wal`` file included, where copying the files could tear a commit in two), and
chromadb's index files are copied again if one changed while it was copied.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from agentmem.errors import StorageError
from agentmem.storage.chroma import storage_error

_SQLITE_HEADER = b"SQLite format 3\x00"
#: Copies of a folder a writer is changing tried before giving up.
_SNAPSHOT_TRIES = 5


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return False


def _backup(source: Path, target: Path) -> None:
    """Copy an SQLite database as one transaction sees it (its ``-wal`` file included)."""
    reading = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        writing = sqlite3.connect(target)
        try:
            reading.backup(writing)
        finally:
            writing.close()
    finally:
        reading.close()


def _snapshot(folder: Path, into: Path, leave_out: str) -> bool:
    """Copy ``folder`` into ``into`` while another process may write it; return whether
    no other file changed during the copy (each SQLite database is copied consistently,
    through SQLite; chromadb's index files are copied as bytes, so a copy that saw one
    change is made again)."""
    found = [Path(parent) / name for parent, _dirs, names in os.walk(folder) for name in names]
    databases = {path for path in found if _is_sqlite(path)}
    sidecars = {Path(f"{db}{end}") for db in databases for end in ("-wal", "-shm", "-journal")}
    files = [p for p in found if p.name != leave_out and p not in databases | sidecars]
    before = {p: (s.st_size, s.st_mtime_ns) for p in files if (s := _stat(p)) is not None}
    for path in sorted(databases):
        (into / path.parent.relative_to(folder)).mkdir(parents=True, exist_ok=True)
        _backup(path, into / path.relative_to(folder))
    for path in before:
        (into / path.parent.relative_to(folder)).mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(path, into / path.relative_to(folder))
        except FileNotFoundError:  # the writer removed it (a dropped collection's file)
            return False
    return all(
        (s.st_size, s.st_mtime_ns) == seen if (s := _stat(p)) else False
        for p, seen in before.items()
    )


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def private_copy(
    folder: Path, where: str, *, leave_out: str, live: bool = False
) -> tempfile.TemporaryDirectory[str]:
    """Copy a chromadb folder into a temporary one, for reading it without writing it.

    chromadb cannot open a folder it may not write: on open it creates its migrations
    table and writes its system database, whatever its settings (``migrations="validate"``
    included; chromadb 1.5), so a read-only folder fails with "attempt to write a readonly
    database". The copy is chromadb's to write; it goes when the directory is cleaned up.
    Files are copied without their modes (read-only files would be as unwritable in the
    copy); a missing folder gives an empty copy.

    Args:
        folder: The chromadb folder.
        where: The folder as errors name it.
        leave_out: A file name not to copy (the folder's lock).
        live: Another process holds the folder and may write it while it is copied: the
            copy is a snapshot (databases through SQLite's backup, the other files copied
            again until none changed during a copy).

    Raises:
        StorageError: The folder could not be read or copied (e.g. no space left).
    """
    copy = tempfile.TemporaryDirectory(prefix="agentmem-read-only-")
    try:
        if live:
            for _ in range(_SNAPSHOT_TRIES):
                if _snapshot(folder, Path(copy.name), leave_out):
                    return copy
                shutil.rmtree(copy.name)  # start the next try afresh
                Path(copy.name).mkdir()
            raise StorageError(
                f"{where} kept changing while it was copied to be read",
                hint="try again, or close the process that holds the folder",
                retryable=True,
            )
        for parent, _folders, files in os.walk(folder):
            inside = Path(copy.name) / Path(parent).relative_to(folder)
            inside.mkdir(parents=True, exist_ok=True)
            for name in files:
                if name != leave_out:
                    shutil.copyfile(Path(parent) / name, inside / name)
    except (OSError, sqlite3.Error) as exc:
        copy.cleanup()
        raise storage_error("copying the vector index to read it", exc, where=where) from exc
    except StorageError:
        copy.cleanup()
        raise
    return copy


__all__ = ["private_copy"]
