"""The replay's progress file: which sessions were ingested and which questions answered.

A re-run reads it to continue where an earlier run stopped: ingested sessions are not
ingested again, answered questions are not asked again (for the same answering settings).
Like the model cache, it is a plain ``sqlite3`` file of its own (one commit per session or
answer, so an interruption loses at most the step in flight).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentmem.errors import StorageError


@dataclass(frozen=True)
class IngestStats:
    """What ingesting one session cost one configuration.

    Attributes:
        turns: Turns written.
        seconds: Wall-clock seconds for storing, writing into memory and consolidating.
        model_calls: Chat model calls made while doing so.
        prompt_tokens: Prompt tokens of those calls.
        completion_tokens: Completion tokens of those calls.
        failures: Structures that failed to write (their turns stay pending).
        model_failures: Model calls that still failed after their retries.
        model_retries: Failed model attempts that were retried (answers excluded).
        build_failures: Model builds (facts, memos, summaries, aggregations) that failed
            after retries and repair; the structure's offline builder stood in.
        builds_queued: Of those, the builds queued in the records for a later retry.
    """

    turns: int
    seconds: float
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0
    model_failures: int = 0
    model_retries: int = 0
    build_failures: int = 0
    builds_queued: int = 0


class Progress:
    """Read and record replay progress in ``path``.

    Args:
        path: The SQLite file (created if missing).

    Raises:
        StorageError: The file cannot be opened.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False)
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS sessions (
                    config TEXT, sample_id TEXT, session INTEGER, stats TEXT,
                    PRIMARY KEY (config, sample_id, session));
                CREATE TABLE IF NOT EXISTS answers (
                    config TEXT, question_id TEXT, settings TEXT, output TEXT,
                    PRIMARY KEY (config, question_id, settings));
                """
            )
            self._db.commit()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the replay progress file {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def ingested(self, config: str, sample_id: str) -> dict[int, IngestStats]:
        """Return the sessions of a conversation already ingested by a configuration."""
        with self._lock:
            rows = self._db.execute(
                "SELECT session, stats FROM sessions WHERE config = ? AND sample_id = ?",
                (config, sample_id),
            ).fetchall()
        return {int(session): IngestStats(**json.loads(stats)) for session, stats in rows}

    def record_session(self, config: str, sample_id: str, session: int, stats: IngestStats) -> None:
        """Record that a session is ingested."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
                (config, sample_id, session, json.dumps(asdict(stats))),
            )
            self._db.commit()

    def answer(self, config: str, question_id: str, settings: str) -> dict[str, Any] | None:
        """Return the recorded output for a question, or ``None`` if not yet answered."""
        with self._lock:
            row = self._db.execute(
                "SELECT output FROM answers WHERE config = ? AND question_id = ? AND settings = ?",
                (config, question_id, settings),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def record_answer(
        self, config: str, question_id: str, settings: str, output: dict[str, Any]
    ) -> None:
        """Record a question's output (context, answer, timings)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                (config, question_id, settings, json.dumps(output)),
            )
            self._db.commit()

    def counts(self) -> dict[str, int]:
        """Return how many sessions and answers are recorded in all."""
        with self._lock:
            sessions = self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
            answers = self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        return {"sessions": int(sessions), "answers": int(answers)}
