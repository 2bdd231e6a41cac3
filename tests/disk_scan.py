"""Looking through every file of a data folder for copies of some texts and vectors.

Used by the erasure tests: after a user is forgotten (or an item erased), no file under
the data folder may hold their strings, in any encoding agentmem stores them in, nor a
vector close to one of their texts' embeddings, wherever the bytes sit (a live row, a
free page, an index segment, a log, a file nobody references).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: How text may be stored: UTF-8 (SQLite, JSON), UTF-16 (SQLite's other text encodings).
ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be")


@dataclass(frozen=True)
class Finding:
    path: Path
    what: str


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def find_strings(folder: Path, strings: list[str]) -> list[Finding]:
    """Return each file holding one of ``strings`` (case-insensitively, ASCII strings)."""
    found = []
    for path in files_under(folder):
        data = path.read_bytes().lower()
        for text in strings:
            for encoding in ENCODINGS:
                if text.lower().encode(encoding) in data:
                    found.append(Finding(path, f"{text!r} in {encoding}"))
    return found


def find_vectors(
    folder: Path, targets: np.ndarray, threshold: float = 0.99, chunk: int = 16384
) -> list[Finding]:
    """Return each file holding a float32 vector within cosine ``threshold`` of a target.

    Every byte offset is tried (a vector may sit at any alignment inside a page), each
    window of ``dimension`` floats compared with every target.
    """
    unit = targets / np.linalg.norm(targets, axis=1, keepdims=True)
    dimension = unit.shape[1]
    found = []
    for path in files_under(folder):
        data = path.read_bytes()
        hits = 0
        for offset in range(4):
            count = (len(data) - offset) // 4
            if count < dimension:
                continue
            with np.errstate(all="ignore"):
                floats = np.frombuffer(data, dtype="<f4", count=count, offset=offset)
                floats = np.nan_to_num(floats.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            floats[np.abs(floats) > 1e3] = 0.0
            windows = sliding_window_view(floats, dimension)
            for start in range(0, len(windows), chunk):
                block = windows[start : start + chunk]
                norms = np.linalg.norm(block, axis=1)
                usable = norms > 1e-3
                if not usable.any():
                    continue
                cosines = (block[usable] @ unit.T) / norms[usable, None]
                hits += int((cosines.max(axis=1) > threshold).sum())
        if hits:
            found.append(Finding(path, f"{hits} vector(s) within cosine {threshold}"))
    return found
