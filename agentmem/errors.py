"""The exception tree of agentmem.

Every error agentmem raises on purpose derives from :class:`AgentMemError`::

    AgentMemError
    ├── ConfigError               bad configuration: a value, a file, a provider name
    │   └── MissingExtraError     an optional dependency is not installed
    ├── InputError (ValueError)   bad input from a caller: empty text, a malformed file
    ├── NotFoundError (KeyError)  an id that does not exist for this user
    ├── StorageError              the records database or the vector index failed
    │   ├── DataDirLockedError    another process holds the data directory
    │   ├── DatabaseBusyError     another writer kept the records database locked too long
    │   ├── DiskFullError         the disk holding the data is full; retry once space is freed
    │   ├── ReadOnlyError         a write to memory opened read-only, or to a read-only folder
    │   └── ConstraintViolationError  a write broke a constraint (e.g. an id already stored)
    ├── EmbeddingError            the embedder failed
    └── ModelError                a chat model failed; ``retryable`` says if a retry can help
        ├── ModelUnavailableError the endpoint could not be reached
        ├── ModelTimeoutError     the endpoint did not answer in time
        ├── ModelResponseError    the endpoint answered with an error status
        ├── StructuredOutputError the answer did not match the requested JSON schema
        └── UnusableAnswerError   the answer was empty or repeated the model's instructions

Errors from providers are wrapped at the boundary (``raise ... from exc``), so a caller
never needs to import ``openai`` or ``chromadb`` to handle them.
"""

from __future__ import annotations


class AgentMemError(Exception):
    """Base class of every error agentmem raises on purpose.

    Attributes:
        hint: A sentence telling the user how to fix the problem, or ``""``.
        retryable: Whether trying the same call again may succeed.
        turn_id: The user's turn that was stored before the failure (it is kept and
            remembered; resend nothing), or ``None`` when no turn was stored.
    """

    retryable: bool = False
    turn_id: int | None = None

    def __init__(self, message: str, *, hint: str = "", retryable: bool | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} ({self.hint})" if self.hint else message


class ConfigError(AgentMemError):
    """A configuration value, file or provider name is invalid."""


class MissingExtraError(ConfigError):
    """An optional dependency needed for the requested feature is not installed."""


class InputError(AgentMemError, ValueError):
    """A caller passed input agentmem cannot accept; nothing was stored."""


class NotFoundError(AgentMemError, KeyError):
    """An id does not exist, or does not belong to the caller's user."""

    def __str__(self) -> str:  # KeyError would quote the message
        return AgentMemError.__str__(self)


class StorageError(AgentMemError):
    """The records database or the vector index failed."""


def folder_error(folder: object, exc: OSError) -> StorageError:
    """Return the error for a data folder that cannot be created or used."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileExistsError | NotADirectoryError):
        reason = "a file of that name is in the way"
    message = f"cannot use {folder} as a data folder: {reason}"
    if isinstance(exc, PermissionError):
        return ReadOnlyError(
            message,
            hint="this process may not write there: give it write permission, pass "
            "--data-dir (or AGENTMEM_HOME) a folder it can write, or only read it "
            "(agentmem memory search/sessions/export, Memory(..., read_only=True))",
        )
    return StorageError(
        message, hint="pass --data-dir (or AGENTMEM_HOME) a folder you can create and write to"
    )


class DataDirLockedError(StorageError):
    """Another process holds the data directory for writing."""


class DatabaseBusyError(StorageError):
    """Another connection kept the records database locked past the wait for it.

    Unlike :class:`DataDirLockedError`, nothing holds the data directory: a writer is
    merely slow, so the same call may succeed once it has committed.
    """

    retryable = True


class DiskFullError(StorageError):
    """The disk (or the database's size limit) left no room for a write.

    Nothing is damaged: the write that failed was rolled back, what was stored before it
    is intact, and the same call succeeds once space is freed. A turn already stored
    stays pending and is folded in by the next write or resume.
    """

    retryable = True


class ReadOnlyError(StorageError):
    """A write reached memory opened read-only, or a data folder this process cannot write.

    Reading works on such a folder (``Memory(..., read_only=True)``, or the ``agentmem
    memory`` commands that only read); a write needs the folder writable.
    """


class ConstraintViolationError(StorageError):
    """The records database refused a write that breaks a constraint; nothing was written.

    Repeating the same write fails the same way, e.g. an item id that is already stored.
    """


class EmbeddingError(AgentMemError):
    """The embedder failed to embed a batch of texts."""


class ModelError(AgentMemError):
    """A chat model call failed."""


class ModelUnavailableError(ModelError):
    """The model endpoint could not be reached."""

    retryable = True


class ModelTimeoutError(ModelError):
    """The model endpoint did not answer within the timeout."""

    retryable = True


class ModelResponseError(ModelError):
    """The model endpoint answered with an error status.

    Attributes:
        status: The HTTP status code, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        hint: str = "",
        retryable: bool | None = None,
    ) -> None:
        if retryable is None:
            retryable = status is not None and (status == 429 or status >= 500)
        super().__init__(message, hint=hint, retryable=retryable)
        self.status = status


class StructuredOutputError(ModelError):
    """The model's answer was not valid JSON for the requested schema."""

    retryable = True


class UnusableAnswerError(ModelError):
    """The model's answer was empty or repeated its own instructions; it was not kept."""

    retryable = True
