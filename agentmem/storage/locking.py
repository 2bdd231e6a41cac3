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

Why not the ``filelock`` package (4.3.1, already installed with huggingface_hub): it
takes the same ``flock`` without waiting (``timeout=0``), counts re-entries (per object,
or per path with ``is_singleton=True``) and is dropped by the OS on SIGKILL, but it
records no holder: only its soft (marker-file) fallback knows a pid, so the error could
not say which process to close, and writing the pid ourselves would keep half of this
module. Its 4.x package is ~15,700 lines for cases we do not have (soft locks,
async, Windows oplocks); this module is 110.
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
_held: dict[Path, tuple[int, int]] = {}  # folder -> (lock file descriptor, holders)


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; return whether it was free."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "another process"
    return f"process {text}" if text.isdigit() else "another process"


class FolderLock:
    """An exclusive, process-wide hold on a folder; release it with :meth:`release`.

    Args:
        folder: The folder to hold (created if missing).

    Raises:
        DataDirLockedError: Another process holds the folder.
        StorageError: The folder or its lock file cannot be created (a file or folder in
            the way, no permission).
    """

    def __init__(self, folder: str | Path) -> None:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise folder_error(folder, exc) from exc
        self.folder = Path(folder).resolve()
        self._released = False
        path = self.folder / LOCK_NAME
        with _lock:
            if self.folder in _held:
                fd, count = _held[self.folder]
                _held[self.folder] = (fd, count + 1)
                return
            # A raw descriptor: it lives as long as the hold, not as long as an object.
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:  # a folder in the way, no permission
                raise folder_error(self.folder, exc) from exc
            if not _try_lock(fd):
                os.close(fd)
                raise DataDirLockedError(
                    f"{self.folder} is in use by {_holder(path)}",
                    hint="close the other agentmem process, or give this one another "
                    "--data-dir (a Chroma server, AGENTMEM_CHROMA_URL, can be shared)",
                    retryable=True,
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
            _held[self.folder] = (fd, 1)

    def release(self) -> None:
        """Let go of the folder (the lock ends with the process's last holder); idempotent."""
        if self._released:
            return
        self._released = True
        with _lock:
            fd, count = _held[self.folder]
            if count > 1:
                _held[self.folder] = (fd, count - 1)
                return
            del _held[self.folder]
            os.close(fd)  # closing the descriptor drops the lock
