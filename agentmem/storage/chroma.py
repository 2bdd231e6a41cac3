"""The boundary with chromadb: opening a client, our embedding function, typed errors.

Every chromadb call of :mod:`agentmem.storage.vectors` goes through :func:`guarded`, so
a chromadb, SQLite or HTTP failure reaches the caller as a
:class:`~agentmem.errors.StorageError` that says what failed, how to fix it and whether
a retry can help, never as a chromadb exception.

Telemetry is off and our own embedding function is always attached, so chromadb never
downloads its default model.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import chromadb
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings
from chromadb.utils.embedding_functions import register_embedding_function

from agentmem.errors import AgentMemError, ConfigError, StorageError
from agentmem.protocols import Embedder

T = TypeVar("T")

#: Words of an error that say the same call may succeed later (a busy database, a server
#: restarting, a dropped connection).
_TRANSIENT = ("locked", "busy", "timed out", "timeout", "connect", "unavailable", "refused")


@register_embedding_function
class AgentMemEmbeddingFunction(EmbeddingFunction[Documents]):
    """Adapts an agentmem :class:`Embedder` to chromadb, so chromadb never uses its default."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self._embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 (chromadb's name)
        if self._embedder is None:
            from agentmem.models.embeddings import MiniLMEmbedder

            self._embedder = MiniLMEmbedder()
        return list(self._embedder.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "agentmem"

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        return {"embedder": self._embedder.name if self._embedder else "minilm"}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> AgentMemEmbeddingFunction:
        return AgentMemEmbeddingFunction()


def storage_error(action: str, exc: BaseException, *, where: str) -> StorageError:
    """Return the typed error for a failed vector-index or journal call.

    Args:
        action: What was being done ("vector query", "journal write", ...).
        exc: The provider's exception.
        where: The folder or server URL of the index, for the message and the hint.
    """
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    server = where.startswith(("http://", "https://"))
    transient = isinstance(exc, ConnectionError | TimeoutError) or any(
        word in lowered for word in _TRANSIENT
    )
    if transient and server:
        hint = f"check that the Chroma server at {where} is running and reachable, then retry"
    elif transient:
        hint = "another thread or process is using the index; retry in a moment"
    elif isinstance(exc, PermissionError) or "readonly" in lowered or "read-only" in lowered:
        hint = f"make {where} writable by this user"
    elif isinstance(exc, OSError) and exc.errno == 28 or "disk is full" in lowered:
        hint = f"free disk space where {where} lives"
    elif isinstance(exc, sqlite3.DatabaseError) or "no such table" in lowered:
        hint = (
            f"the vector index in {where} is damaged or was changed by another program: "
            "restore the folder from a backup, or start a new --data-dir"
        )
    elif server:
        hint = f"the Chroma server at {where} refused the call; see its log"
    else:
        hint = f"the vector index in {where} failed; see the cause above"
    return StorageError(f"{action} failed: {text}", hint=hint, retryable=transient)


def guarded(action: str, where: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Return ``call(*args, **kwargs)``, raising :class:`StorageError` (with a hint) if it fails.

    Raises:
        StorageError: The call failed; ``retryable`` says whether trying again may help.
    """
    try:
        return call(*args, **kwargs)
    except AgentMemError:
        raise
    except Exception as exc:
        raise storage_error(action, exc, where=where) from exc


def open_client(path: str | Path | None, url: str | None) -> Any:
    """Return a chromadb client: a server's, a folder's, or an in-memory one.

    Raises:
        ConfigError: ``url`` is not a ``http(s)://host:port`` URL.
        StorageError: chromadb could not open the folder or reach the server.
    """
    settings = Settings(anonymized_telemetry=False, allow_reset=True)
    if url:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        if not parsed.hostname:
            raise ConfigError(f"bad Chroma server URL {url!r}", hint="use http://host:port")
        return guarded(
            "opening the vector index",
            url,
            lambda: chromadb.HttpClient(
                host=str(parsed.hostname),
                port=parsed.port or 8000,
                ssl=parsed.scheme == "https",
                settings=settings,
            ),
        )
    if path is not None:
        return guarded(
            "opening the vector index",
            str(path),
            lambda: chromadb.PersistentClient(path=str(path), settings=settings),
        )
    return guarded(
        "opening the vector index", "memory", lambda: chromadb.EphemeralClient(settings=settings)
    )
