"""Shared by ``bench_ingest.py`` and ``bench_recall.py``: the LoCoMo dev replay, timed.

Not a benchmark on its own. It loads the replay's data set with the replay's own loader,
embeds every turn (as ``text`` and as ``speaker: text``) and every question once, up front,
as ``agentmem replay`` does (:mod:`agentmem.replay.embedding`), opens each configuration
with the replay's :func:`~agentmem.replay.systems.open_memory`, and ingests it with the
replay's :func:`~agentmem.replay.runner.ingest_conversation` (a session a write, then the
session ended).

Where the time goes is taken at the protocol boundary: each structure behind the manager
(the fact ledger included) is replaced by a :class:`TimedStructure`, an object that
implements the same protocol by passing every call to the structure and timing ``write``,
``end_session``, ``invalidate``, ``resolve`` and ``retrieve``. Times are exclusive: a call
made inside another timed call is charged to itself only. The embedding model behind the
precomputed vectors is wrapped too (:class:`TimedModel`), so the texts only one
configuration embeds (its facts, summaries, memos, a rewritten query) are counted, and
charged to the structure whose call embedded them.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agentmem.ledger.facts import FactLedger  # noqa: E402
from agentmem.ledger.propagation import StaleGuard  # noqa: E402
from agentmem.protocols import Embedder, MemoryStore  # noqa: E402
from agentmem.replay.dataset import Sample, load_samples  # noqa: E402
from agentmem.replay.embedding import (  # noqa: E402
    configuration_embedder,
    embed_up_front,
    shared_texts,
)
from agentmem.replay.progress import Progress  # noqa: E402
from agentmem.replay.runner import ingest_conversation  # noqa: E402
from agentmem.replay.systems import ManagerMemory, open_memory  # noqa: E402
from agentmem.storage.records import Records  # noqa: E402
from agentmem.types import Change, Query, Recalled, Turn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

#: Where the shared data usually is: beside the main checkout, or two levels up from a
#: worktree under /work/wt.
DATA_CANDIDATES = (
    Path("../shared/data/locomo/locomo_dev.json"),
    ROOT.parent / "shared/data/locomo/locomo_dev.json",
    ROOT.parent.parent / "shared/data/locomo/locomo_dev.json",
)

#: The methods whose time is charged to a structure.
TIMED = ("write", "end_session", "invalidate", "resolve", "retrieve", "retry_pending")

#: Where time spent outside every structure is charged.
OUTSIDE = "(manager)"

#: The stale guard's label: its sweeps after a write or a session, the structures'
#: ``invalidate`` calls inside them excluded.
GUARD = "(stale sweep)"

#: The records' label, for what the replay itself calls to store a session's turns.
RECORDS = "(records: storing turns)"


def find_data(given: str | None) -> Path | None:
    """Return the data file: ``given``, or the first of :data:`DATA_CANDIDATES` present."""
    if given:
        return Path(given)
    return next((p.resolve() for p in DATA_CANDIDATES if p.exists()), None)


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (linear interpolation); NaN for no values."""
    return float(np.percentile(values, q)) if values else float("nan")


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages as text."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Clock:
    """Seconds per (structure, method), exclusive of nested timed calls."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self._stack: list[tuple[str, str]] = []

    @contextmanager
    def timing(self, structure: str, method: str) -> Iterator[None]:
        """Charge the time of the block to ``structure``'s ``method``."""
        label = (structure, method)
        self._stack.append(label)
        tick = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - tick
            self._stack.pop()
            self.seconds[label] += spent
            if self._stack:  # exclusive: the caller is not charged for it as well
                self.seconds[self._stack[-1]] -= spent

    @property
    def current(self) -> str:
        """Return the structure whose call is running, or :data:`OUTSIDE`."""
        return self._stack[-1][0] if self._stack else OUTSIDE

    def snapshot(self) -> dict[tuple[str, str], float]:
        """Return a copy of the totals so far."""
        return dict(self.seconds)

    @staticmethod
    def since(
        now: dict[tuple[str, str], float], before: dict[tuple[str, str], float]
    ) -> dict[tuple[str, str], float]:
        """Return what was spent between two snapshots."""
        return {k: v - before.get(k, 0.0) for k, v in now.items() if v - before.get(k, 0.0)}


class Timed:
    """Any object, its methods named in ``methods`` timed on a :class:`Clock` as ``label``.

    Every attribute is the object's own, looked up on demand (so ``hasattr`` and the
    optional-protocol checks, ``isinstance(store, Consolidating)``, answer as they would
    for the object itself); the methods named are wrapped on the way out.
    """

    def __init__(self, inner: Any, clock: Clock, label: str, methods: Sequence[str]) -> None:
        self.inner = inner
        self._clock = clock
        self._label = label
        self._methods = frozenset(methods)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.inner, attr)  # AttributeError: the object lacks it too
        if attr not in self._methods or not callable(value):
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._clock.timing(self._label, attr):
                return value(*args, **kwargs)

        return timed


class TimedStructure(Timed):
    """A structure behind the same protocol, with its calls timed on a :class:`Clock`.

    The core protocol's methods are written out, so the wrapper is a ``MemoryStore`` for
    the type checker too; ``end_session``, ``resolve`` and the rest pass through
    :class:`Timed`.
    """

    def __init__(self, inner: Any, clock: Clock) -> None:
        super().__init__(inner, clock, inner.name, TIMED)
        self.name: str = inner.name

    def write(self, turns: Sequence[Turn]) -> list[Change]:
        """Time the structure's ``write``."""
        with self._clock.timing(self.name, "write"):
            return cast(list[Change], self.inner.write(turns))

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Time the structure's ``retrieve``."""
        with self._clock.timing(self.name, "retrieve"):
            return cast(list[Recalled], self.inner.retrieve(query, k))

    def invalidate(self, item_ids: Sequence[str], reason: str, **kwargs: Any) -> None:
        """Time the structure's ``invalidate``."""
        with self._clock.timing(self.name, "invalidate"):
            self.inner.invalidate(item_ids, reason, **kwargs)

    def forget(self, user_id: str) -> int:
        """Pass ``forget`` through (not timed)."""
        return int(self.inner.forget(user_id))


class TimedModel:
    """The embedding model, with its time charged to the structure whose call embedded.

    Sits under the precomputed vectors, so it only sees the texts none were computed for.
    """

    def __init__(self, inner: Embedder, clock: Clock) -> None:
        self.inner = inner
        self.name = inner.name
        self._clock = clock
        self.texts = 0
        self.calls: dict[str, int] = defaultdict(int)

    @property
    def dimension(self) -> int:
        """Return the model's dimension."""
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed with the model, timed as ``<structure>, embed``."""
        self.texts += len(texts)
        self.calls[self._clock.current] += 1
        with self._clock.timing(self._clock.current, "embed"):
            return self.inner.embed(texts)


@dataclass
class Prepared:
    """The data set and its vectors, computed once for every configuration."""

    path: Path
    samples: list[Sample]
    model: Embedder
    vectors: dict[str, np.ndarray]
    texts: int
    seconds: float

    @property
    def turns(self) -> int:
        """Return the turns over every conversation."""
        return sum(s.conversation.turn_count for s in self.samples)

    @property
    def questions(self) -> int:
        """Return the questions over every conversation."""
        return sum(len(s.questions) for s in self.samples)


def prepare_or_skip(console: Any, given: str | None) -> Prepared | None:
    """Find the data (``--data`` or the usual places) and :func:`prepare` it, saying so on
    ``console`` (a rich console); ``None``, with a message, when there is no data."""
    path = find_data(given)
    if path is None or not path.exists():
        console.print(
            f"[yellow]skipped: no LoCoMo dev data at {given or 'the usual places'} "
            "(../shared/data/locomo/locomo_dev.json); pass --data PATH[/]"
        )
        return None
    console.print(f"load {load_average()} · loading {path} and embedding it up front ...")
    return prepare(path)


def prepare(path: Path) -> Prepared:
    """Load the data set and embed its turns and questions up front, as the replay does."""
    from agentmem.models.embeddings import MiniLMEmbedder

    samples = load_samples([path])
    model = MiniLMEmbedder()
    model.warm()  # loading the model is nobody's ingest time, as in the replay
    texts = shared_texts(samples, [s.questions for s in samples])
    vectors, seconds = embed_up_front(model, texts)
    return Prepared(path, samples, model, vectors, len(texts), seconds)


@dataclass
class SessionTiming:
    """One session's ingest: the replay's own figure and the per-structure split."""

    sample_id: str
    number: int
    turns: int
    seconds: float
    tenth: int
    split: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass
class Opened:
    """A configuration opened on a fresh folder, its structures behind timing wrappers."""

    name: str
    memory: ManagerMemory
    clock: Clock
    model: TimedModel
    folder: Path
    sessions: list[SessionTiming] = field(default_factory=list)

    def close(self) -> None:
        """Close the memory (the folder is the caller's)."""
        self.memory.close()


def open_timed(name: str, prepared: Prepared, folder: Path) -> Opened:
    """Open configuration ``name`` in ``folder`` as the replay does, timed per structure.

    Raises:
        SystemExit: ``name`` is a baseline (``recent``, ``similarity``): it has no
            structures to time.
    """
    clock = Clock()
    model = TimedModel(prepared.model, clock)
    memory = open_memory(name, folder, configuration_embedder(model, prepared.vectors))
    if not isinstance(memory, ManagerMemory):
        memory.close()
        raise SystemExit(f"{name!r} is a baseline; give structure names (all, turns, ...)")
    manager = memory.manager
    # Not structures, but where ingest time outside them goes: the guard's sweeps, and the
    # replay storing each session's turns (the manager's own use of the records is not
    # wrapped, so it stays in the rest).
    manager.guard = cast(StaleGuard, Timed(manager.guard, clock, GUARD, ("sweep",)))
    memory.records = cast(
        Records, Timed(memory.records, clock, RECORDS, ("start_session", "turns", "add_turns"))
    )
    manager.stores = [cast(MemoryStore, TimedStructure(s, clock)) for s in manager.stores]
    if manager.facts is not None:
        # The manager is typed on the concrete ledger; the wrapper passes every call on.
        manager.facts = cast(FactLedger, TimedStructure(manager.facts, clock))
    return Opened(name, memory, clock, model, folder)


def tenth_of(start: int, turns: int, total: int) -> int:
    """Return the tenth (0-9) of a conversation a session's middle turn falls in."""
    return min(9, int(10 * (start + turns / 2) / max(total, 1)))


def ingest(opened: Opened, prepared: Prepared, progress: Progress) -> float:
    """Ingest every conversation as the replay does; return the seconds it took in all.

    Each session's statistics (the replay's own ``IngestStats``) and its per-structure
    split (the clock's totals between two sessions) are kept on ``opened.sessions``.
    """
    started = time.perf_counter()
    for sample in prepared.samples:
        conversation = sample.conversation
        marks = [opened.clock.snapshot()]

        def advance(_: int, marks: list[dict[tuple[str, str], float]] = marks) -> None:
            marks.append(opened.clock.snapshot())  # called after each session

        stats = ingest_conversation(
            opened.memory, conversation, progress, opened.name, advance=advance
        )
        start = 0
        for n, (session, entry) in enumerate(zip(conversation.sessions, stats, strict=True)):
            opened.sessions.append(
                SessionTiming(
                    conversation.sample_id,
                    session.number,
                    entry.turns,
                    entry.seconds,
                    tenth_of(start, len(session.turns), conversation.turn_count),
                    Clock.since(marks[n + 1], marks[n]),
                )
            )
            start += len(session.turns)
    return time.perf_counter() - started


def ingest_all(
    names: Sequence[str],
    prepared: Prepared,
    work: Path,
    *,
    on_done: Callable[[Opened], None] | None = None,
) -> list[Opened]:
    """Open and ingest each configuration in turn under ``work``; return them open."""
    work.mkdir(parents=True, exist_ok=True)
    progress = Progress(work / "progress.sqlite")
    opened: list[Opened] = []
    try:
        for name in names:
            folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
            one = open_timed(name, prepared, folder)
            opened.append(one)
            ingest(one, prepared, progress)
            if on_done is not None:
                on_done(one)
    except BaseException:
        for one in opened:
            one.close()
        raise
    finally:
        progress.close()
    return opened


def by_structure(split: dict[tuple[str, str], float]) -> dict[str, float]:
    """Sum a split over methods: seconds per structure (model time included)."""
    totals: dict[str, float] = defaultdict(float)
    for (structure, _), seconds in split.items():
        totals[structure] += seconds
    return dict(totals)


def median_or_nan(values: Sequence[float]) -> float:
    """Return the median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")
