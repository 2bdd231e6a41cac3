"""Model-built memory: schema-constrained calls with validation, repair and accounting.

A structure that builds with a capable model calls :func:`structured_call`: the answer is
requested under a JSON schema, validated by the structure's own check, and on a bad answer
the model is shown its mistake and asked once more (repair). Each structure counts its calls
and failures in a :class:`BuildStats`; a build that still fails is queued in the records
database (``Records.queue_work``) and retried later, and the structure falls back to its
deterministic builder meanwhile, so nothing is silently dropped. :func:`retry_work` is the
one loop that takes such queued builds up again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentmem.errors import ModelError, StructuredOutputError
from agentmem.protocols import ChatModel
from agentmem.types import Message, Usage

if TYPE_CHECKING:
    from agentmem.protocols import RecordStore
    from agentmem.storage.tables import PendingWorkRow

logger = logging.getLogger(__name__)


@dataclass
class BuildStats:
    """Model calls, tokens and failures of one structure's builder."""

    calls: int = 0
    failures: int = 0
    queued: int = 0
    usage: Usage = field(default_factory=Usage)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_call(self, usage: Usage) -> None:
        """Count one model call and its tokens."""
        with self._lock:
            self.calls += 1
            self.usage = self.usage + usage

    def add_failure(self, *, queued: bool) -> None:
        """Count a build that failed (and whether it was queued for a retry)."""
        with self._lock:
            self.failures += 1
            self.queued += int(queued)

    def add_queued(self) -> None:
        """Count a retry queued for a failure counted elsewhere (a shared extractor's)."""
        with self._lock:
            self.queued += 1

    def as_dict(self) -> dict[str, int]:
        """Return the counters as plain numbers."""
        return {
            "calls": self.calls,
            "failures": self.failures,
            "queued": self.queued,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
        }


def structured_call(
    model: ChatModel,
    messages: Sequence[Message],
    schema: dict[str, Any],
    *,
    validate: Callable[[Any], Any] | None = None,
    stats: BuildStats | None = None,
    repairs: int = 1,
) -> Any:
    """Ask ``model`` for JSON under ``schema``; validate, repair once, and return it.

    Args:
        model: The chat model.
        messages: The prompt.
        schema: The JSON schema of the expected answer.
        validate: Checks (and may normalise) the parsed answer; raises ``ValueError`` with
            a message the model can act on when the answer is unusable.
        stats: Where to count calls and tokens.
        repairs: How many times to show the model its mistake and ask again.

    Raises:
        StructuredOutputError: The answer was still invalid after the repairs.
        ModelError: The model call itself failed.
    """
    history = list(messages)
    for attempt in range(repairs + 1):
        try:
            completion = model.complete(history, schema=schema)
        except StructuredOutputError as exc:
            problem = str(exc)
            answer_text = ""
        else:
            if stats is not None:
                stats.add_call(completion.usage)
            try:
                return validate(completion.data) if validate else completion.data
            except (ValueError, TypeError, KeyError) as exc:
                problem = str(exc)
                answer_text = completion.text
        logger.info("structured answer rejected (attempt %d): %s", attempt + 1, problem)
        if attempt < repairs:
            if answer_text:
                history.append(Message("assistant", answer_text))
            history.append(
                Message(
                    "user",
                    "Your answer was not usable: "
                    + problem
                    + ". Answer again with only JSON matching this schema: "
                    + json.dumps(schema),
                )
            )
    raise StructuredOutputError(f"the model's answer stayed invalid: {problem}")


def retry_work(
    records: RecordStore,
    store: str,
    user_id: str | None,
    perform: Callable[[PendingWorkRow], bool],
    *,
    kind: str | None = None,
    on_failure: Callable[[PendingWorkRow, ModelError], None] | None = None,
) -> int:
    """Take up again ``store``'s queued builds, oldest first; return how many were done.

    Each work item is handed to ``perform``. When it returns, the item leaves the queue
    (``records.finish_work``); when it raises :class:`~agentmem.errors.ModelError`, the
    item stays queued with one more attempt and the error recorded (``records.fail_work``),
    ``on_failure`` is told, and the loop goes on with the next item. Any other error
    propagates, leaving the item queued as it was.

    Args:
        records: The records database holding the queue.
        store: The structure whose work to retry.
        user_id: Only this user's work, or ``None`` for every user's.
        perform: Redoes one work item; returns ``True`` when it rebuilt something, or
            ``False`` when nothing was left to rebuild (its turns are gone), which also
            finishes the item but is not counted.
        kind: Only work of this kind; other kinds are left queued untouched.
        on_failure: Called with the item and the error after a failed attempt (to log it,
            to count it in a structure's :class:`BuildStats`).

    Raises:
        AgentMemError: Whatever ``perform`` raises other than ``ModelError``.
    """
    done = 0
    for work in records.pending_work(store, user_id):
        if kind is not None and work.kind != kind:
            continue
        assert work.id is not None  # rows read back from the queue always have their id
        try:
            rebuilt = perform(work)
        except ModelError as exc:
            records.fail_work(work.id, str(exc))
            if on_failure is not None:
                on_failure(work, exc)
            continue
        records.finish_work(work.id)
        done += int(rebuilt)
    return done


__all__ = ["BuildStats", "retry_work", "structured_call"]
