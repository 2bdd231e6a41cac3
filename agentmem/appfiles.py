"""Files the chat app writes into the data folder for a user, named in one place.

The app saves exports (``export-<user>-<stamp>.json``) and the last answer it copied
(``last-answer.txt``) beside the memory it came from. They hold the user's words, so
forgetting the user removes them too (:meth:`agentmem.factory.Components.forget`): the
names are defined here, where both the app that writes them and the erasure that removes
them read them.

It also keeps the structures chosen in it (``chat-choices.json``: names only, no one's
words), so ``agentmem chat --stores all`` is still ``all`` on the next launch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Where the app writes the last answer it copied (the clipboard cannot confirm receipt).
LAST_ANSWER_FILE = "last-answer.txt"
#: Where the app keeps the structures chosen in it, for the next launch on the folder.
CHOICES_FILE = "chat-choices.json"


def read_choices(data_dir: Path) -> dict[str, Any]:
    """Return the choices the app kept in ``data_dir`` (``stores``, ``recall_off``), or ``{}``.

    A missing, unreadable or malformed file is no choice: the configuration's defaults
    stand, and the app writes the file again.
    """
    try:
        found = json.loads((Path(data_dir) / CHOICES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    kept: dict[str, Any] = {}
    for key in ("stores", "recall_off"):
        names = found.get(key)
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            kept[key] = names
    if not kept.get("stores"):
        kept.pop("stores", None)
    return kept


def save_choices(data_dir: Path, *, stores: Iterable[str], recall_off: Iterable[str]) -> None:
    """Keep the structures chosen in the app for the next launch on ``data_dir``.

    Written to a temporary file and renamed over the old one, so a crash never leaves
    half a file. A failure is logged, not raised: a choice not kept costs a flag.
    """
    path = Path(data_dir) / CHOICES_FILE
    data = {"stores": list(stores), "recall_off": sorted(recall_off)}
    partial = path.with_name(f".{CHOICES_FILE}.{os.getpid()}")
    try:
        partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        logger.warning("could not keep the chosen structures in %s: %s", path, exc)
        partial.unlink(missing_ok=True)


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


__all__ = [
    "CHOICES_FILE",
    "LAST_ANSWER_FILE",
    "export_file",
    "read_choices",
    "remove_user_files",
    "save_choices",
]
