"""One process at a time in a data directory's embedded vector index.

SQLite in WAL mode lets several processes write the records database safely, but the
embedded chromadb keeps each collection's HNSW index in process memory and writes it back
on its own schedule: two processes writing the same folder lose or corrupt vectors. So a
process opening the folder takes an exclusive advisory lock on ``agentmem.lock`` inside
it, and a second process gets :class:`~agentmem.errors.DataDirLockedError` naming the
holder, instead of silent damage. The operating system drops the lock when the holder
exits, however it exits (a SIGKILL included), so a crash never leaves a stale lock.

Within one process the folder may be opened any number of times (chromadb shares one
client per path); the lock is counted and released with the last holder.

A process that only reads (memory opened read-only, e.g. on a folder it may not write)
takes the lock shared instead: readers exclude a writer and a writer them, but readers
do not exclude each other, and a reader needs no write permission on the lock file.

Why not the ``filelock`` package (4.3.1, already installed with huggingface_hub): it
takes the same ``flock`` without waiting (``timeout=0``), counts re-entries (per object,
or per path with ``is_singleton=True``) and is dropped by the OS on SIGKILL, but it
records no holder: only its soft (marker-file) fallback knows a pid, so the error could
not say which process to close, and writing the pid ourselves would keep half of this
module. Its 4.x package is ~15,700 lines for cases we do not have (soft locks,
async, Windows oplocks); this module is about 150.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

from agentmem.errors import DataDirLockedError, folder_error

logger = logging.getLogger(__name__)

LOCK_NAME = "agentmem.lock"

_lock = threading.Lock()
#: folder -> (lock file descriptor, holders, whether held exclusively)
_held: dict[Path, tuple[int, int, bool]] = {}


def _try_lock(fd: int, *, shared: bool = False) -> bool:
    """Take a lock on ``fd`` without waiting (exclusive, or ``shared`` with other readers);
    return whether it was free. Taken again on the same descriptor, it converts."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:  # Windows has no shared byte-range lock here: a reader excludes everyone
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "another process"
    if not text.isdigit():
        return "another process"
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:  # the last writer is gone: readers hold it (they write no pid)
        return "another process reading it"
    except OSError:  # alive, another user's
        pass
    return f"process {text}"


def _in_use(folder: Path, path: Path) -> DataDirLockedError:
    return DataDirLockedError(
        f"{folder} is in use by {_holder(path)}",
        hint="close the other agentmem process, or give this one another "
        "--data-dir (a Chroma server, AGENTMEM_CHROMA_URL, can be shared)",
        retryable=True,
    )


class FolderLock:
    """A process-wide hold on a folder; release it with :meth:`release`.

    Args:
        folder: The folder to hold (created if missing, unless ``shared``).
        shared: Hold it to read only: other readers may hold it too, no writer may. The
            lock file is opened for reading, so the folder need not be writable; without
            a lock file (no agentmem ever wrote there) nothing is locked.

    Raises:
        DataDirLockedError: Another process holds the folder (for writing, or, to take
            it for writing, for reading).
        StorageError: The folder or its lock file cannot be created or opened (a file or
            folder in the way, no permission: :class:`~agentmem.errors.ReadOnlyError`).
    """

    def __init__(self, folder: str | Path, *, shared: bool = False) -> None:
        if not shared:
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise folder_error(folder, exc) from exc
        self.folder = Path(folder).resolve()
        self._released = False
        path = self.folder / LOCK_NAME
        with _lock:
            if self.folder in _held:
                fd, count, exclusive = _held[self.folder]
                if not shared and not exclusive:  # this process read it; now it writes
                    if not _try_lock(fd):
                        raise _in_use(self.folder, path)
                    exclusive = True
                _held[self.folder] = (fd, count + 1, exclusive)
                return
            # A raw descriptor: it lives as long as the hold, not as long as an object.
            try:
                fd = os.open(path, os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                if not shared:
                    raise
                self._released = True  # nothing to hold: no agentmem process wrote here
                return
            except OSError as exc:  # a folder in the way, no permission
                raise folder_error(self.folder, exc) from exc
            if not _try_lock(fd, shared=shared):
                os.close(fd)
                raise _in_use(self.folder, path)
            if not shared:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
            _held[self.folder] = (fd, 1, not shared)

    def release(self) -> None:
        """Let go of the folder (the lock ends with the process's last holder); idempotent."""
        if self._released:
            return
        self._released = True
        with _lock:
            fd, count, exclusive = _held[self.folder]
            if count > 1:
                _held[self.folder] = (fd, count - 1, exclusive)
                return
            del _held[self.folder]
            os.close(fd)  # closing the descriptor drops the lock
