"""A chat model wrapper that answers repeated requests from a small SQLite cache.

A replay sends thousands of requests; caching each answer by a hash of the request
(model name, messages, schema) makes a re-run deterministic and free, and lets an
interrupted run continue without paying twice. It wraps the
:class:`~agentmem.protocols.ChatModel` protocol once, like the retry and metering wrappers.

The cache is a plain ``sqlite3`` file of its own rather than a SQLModel table: SQLModel
tables join one shared metadata, which would create this table in every records database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agentmem.errors import StorageError
from agentmem.protocols import ChatModel
from agentmem.types import Completion, Message, Usage

logger = logging.getLogger(__name__)


def request_key(model: str, messages: Sequence[Message], schema: dict[str, Any] | None) -> str:
    """Return the hash that identifies a request."""
    payload = {
        "model": model,
        "messages": [[m.role, m.content, m.name] for m in messages],
        "schema": schema,
    }
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


class CachedChatModel:
    """Answer from the cache when the same request was answered before.

    Args:
        inner: The model that answers what is not cached.
        path: The SQLite file of the cache (created if missing).

    Attributes:
        hits: Requests answered from the cache.
        misses: Requests passed to the inner model.
    """

    def __init__(self, inner: ChatModel, path: str | Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.path = Path(path)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, "
                "text TEXT, data TEXT, prompt_tokens INTEGER, completion_tokens INTEGER)"
            )
            self._db.commit()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the model cache {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the cache file (the inner model is closed by its owner)."""
        with self._lock:
            self._db.close()

    def _get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT model, text, data, prompt_tokens, completion_tokens FROM responses "
                "WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        model, text, data, prompt_tokens, completion_tokens = row
        return Completion(
            text=text,
            data=json.loads(data) if data is not None else None,
            usage=Usage(int(prompt_tokens), int(completion_tokens)),
            model=model,
        )

    def _put(self, key: str, completion: Completion) -> None:
        data = json.dumps(completion.data) if completion.data is not None else None
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    completion.model,
                    completion.text,
                    data,
                    completion.usage.prompt_tokens,
                    completion.usage.completion_tokens,
                ),
            )
            self._db.commit()

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Answer from the cache, or ask the inner model and remember its answer.

        Raises:
            ModelError: The inner model failed (failures are not cached).
        """
        key = request_key(self.name, messages, schema)
        cached = self._get(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        completion = self.inner.complete(messages, schema=schema)
        self._put(key, completion)
        return completion

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Stream a cached answer at once, or the inner model's, remembering it at the end.

        Raises:
            ModelError: The inner model failed.
        """
        key = request_key(self.name, messages, None)
        cached = self._get(key)
        if cached is not None:
            self.hits += 1
            yield cached.text
            return
        self.misses += 1
        chunks = []
        for chunk in self.inner.stream(messages):
            chunks.append(chunk)
            yield chunk
        usage = getattr(self.inner, "last_usage", None)
        self._put(
            key,
            Completion(
                "".join(chunks),
                usage=usage if isinstance(usage, Usage) else Usage(),
                model=self.name,
            ),
        )
