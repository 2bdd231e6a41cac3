"""Files the chat app writes into the data folder for a user, named in one place.

The app saves exports (``export-<user>-<stamp>.json``) and the last answer it copied
(``last-answer.txt``) beside the memory it came from. They hold the user's words, so
forgetting the user removes them too (:meth:`agentmem.factory.Components.forget`): the
names are defined here, where both the app that writes them and the erasure that removes
them read them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

#: Where the app writes the last answer it copied (the clipboard cannot confirm receipt).
LAST_ANSWER_FILE = "last-answer.txt"


def _user_tag(user_id: str) -> str:
    # Readable, and exact: two ids that read alike once made file-safe differ in the hash.
    safe = re.sub(r"[^\w.-]+", "_", user_id)[:48] or "user"
    return f"{safe}-{hashlib.sha256(user_id.encode('utf-8')).hexdigest()[:8]}"


def export_file(data_dir: Path, user_id: str, stamp: str) -> Path:
    """Return where the app writes an export of ``user_id`` made at ``stamp``."""
    return Path(data_dir) / f"export-{_user_tag(user_id)}-{stamp}.json"


def remove_user_files(data_dir: Path, user_id: str) -> list[Path]:
    """Remove the files the app wrote for a user (and the last answer); return them.

    The last answer file is not kept per user: it goes whenever a user is forgotten,
    since it may be theirs.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        return []
    found = list(folder.glob(f"export-{_user_tag(user_id)}-*.json"))
    if (folder / LAST_ANSWER_FILE).is_file():
        found.append(folder / LAST_ANSWER_FILE)
    removed = []
    for path in found:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    if removed:
        logger.info("removed %d file(s) the chat app wrote", len(removed))
    return removed


__all__ = ["LAST_ANSWER_FILE", "export_file", "remove_user_files"]
