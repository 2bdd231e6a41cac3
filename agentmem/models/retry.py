"""Exponential backoff with jitter, shared by the retrying model and embedder wrappers."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Backoff:
    """Pauses between attempts and counts the retries; thread-safe.

    Args:
        name: What is retried (for the log line).
        attempts: Calls in all, the first one included.
        base_delay: Seconds before the first retry; doubled for each further one.
        max_delay: Upper bound of one pause, in seconds.
        sleep: Pauses for the given seconds (injected so tests need not wait).
        rng: Source of the jitter; a fresh ``random.Random()`` by default.

    Attributes:
        retries: Failed attempts that were tried again, so far.
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
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.name = name
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.retries = 0
        self._lock = threading.Lock()

    def pause(self, attempt: int, error: Exception) -> None:
        """Count a retry after failed ``attempt`` (1-based) and wait before the next one."""
        with self._lock:
            self.retries += 1
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        # "Equal jitter": at least half the backoff, so clients that failed together
        # spread out without retrying immediately.
        delay = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        logger.warning(
            "%s failed (%s); retry %d of %d in %.2f s",
            self.name,
            error,
            attempt,
            self.attempts - 1,
            delay,
        )
        self._sleep(delay)
