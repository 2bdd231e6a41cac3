"""The one retry policy of the model and embedder wrappers, built on tenacity.

tenacity runs the loop (stop after the attempts, retry only what may help, sleep between
attempts); this module decides what "may help" means for agentmem (an
:class:`~agentmem.errors.AgentMemError` whose ``retryable`` flag is set), how long to
wait, what to log and what to count.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from agentmem.errors import AgentMemError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RetryPolicy:
    """Call a function again after a retryable failure, pausing longer each time.

    Pauses follow exponential backoff with "equal jitter": before retry *n* the ceiling is
    ``min(max_delay, base_delay * 2 ** (n - 1))`` and the pause lies between half the
    ceiling and the ceiling, so clients that failed together spread out without retrying
    at once. Each retry logs one warning; the error's hint is logged only the first time
    it appears in a call, so a retried call does not repeat it on every line.

    Args:
        name: What is retried (for the log line).
        attempts: Calls in all, the first one included (``1`` means no retry).
        base_delay: Seconds before the first retry; doubled for each further one.
        max_delay: Upper bound of one pause, in seconds.
        sleep: Pauses for the given seconds (injected so tests need not wait).
        rng: Source of the jitter; a fresh ``random.Random()`` by default.
        retry_on: The errors considered for a retry (those with ``retryable`` set);
            any other error is raised at once.

    Raises:
        ValueError: ``attempts`` is less than 1.
    """

    def __init__(
        self,
        name: str,
        *,
        attempts: int,
        base_delay: float,
        max_delay: float,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        retry_on: type[AgentMemError] = AgentMemError,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.name = name
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.retry_on = retry_on
        self._retries = 0
        self._lock = threading.Lock()

    @property
    def retries(self) -> int:
        """Failed attempts that were tried again, so far, over all calls; thread-safe."""
        return self._retries

    def call(self, function: Callable[[], T]) -> T:
        """Return ``function()``, calling it again after each retryable failure.

        Raises:
            Exception: The error of the last attempt, or the first error that is not
                retryable, unchanged.
        """
        hints_logged: set[str] = set()

        def before_sleep(state: RetryCallState) -> None:
            self._count_and_log(state, hints_logged)

        # A Retrying per call: its statistics and our per-call hint memory stay with the
        # call, so one policy serves many threads at once.
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            retry=retry_if_exception(self._retryable),
            wait=self._delay,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(function)

    def _retryable(self, error: BaseException) -> bool:
        return isinstance(error, self.retry_on) and error.retryable

    def _delay(self, state: RetryCallState) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (state.attempt_number - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def _count_and_log(self, state: RetryCallState, hints_logged: set[str]) -> None:
        with self._lock:
            self._retries += 1
        error = state.outcome.exception() if state.outcome is not None else None
        reason = str(error)
        hint = getattr(error, "hint", "")
        if hint:
            # AgentMemError.__str__ appends the hint; say it once per call.
            reason = str(error.args[0]) if error is not None and error.args else reason
            if hint not in hints_logged:
                hints_logged.add(hint)
                reason = f"{reason} ({hint})"
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "%s failed (%s); retry %d of %d in %.2f s",
            self.name,
            reason,
            state.attempt_number,
            self.attempts - 1,
            delay,
        )
