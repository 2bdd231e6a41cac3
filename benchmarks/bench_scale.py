"""Scale: recall at 100k items, ingest throughput, model-built memory, memory footprint.

Usage (each sub-command runs on its own)::

    HF_HUB_OFFLINE=1 python benchmarks/bench_scale.py recall [--items 100000] [--users 100]
    HF_HUB_OFFLINE=1 python benchmarks/bench_scale.py recall --configs all,turns --ef ""
    HF_HUB_OFFLINE=1 python benchmarks/bench_scale.py ingest [--turns 2000]
    HF_HUB_OFFLINE=1 python benchmarks/bench_scale.py model-builders [--turns 300]
    HF_HUB_OFFLINE=1 python benchmarks/bench_scale.py footprint [--turns 10000]
    HF_HUB_OFFLINE=1 python benchmarks/bench_scale.py ingest --profile   # + cProfile

Every sub-command uses the same synthetic dialogue (:func:`dialogue`): sessions of 20
turns between Sam and Alex, realistic small talk with facts that change now and then
(Sam moves, changes jobs, takes up and drops hobbies, adopts pets), most turns carrying a
numeric detail ("..., about 40 minutes from here") so that nearly every turn is distinct.

``recall``
    End-to-end ``MemoryManager.recall`` (query rewrite, query embedding with the real
    MiniLM, every structure, stale guard, fusion, token budget) for ONE user whose
    history holds ``--items`` memory items (100,000 by default), among ``--users`` users
    (the others get ``--other-turns`` turns each, 60 by default: ~370 items) in the same
    data directory: one records database, one embedded chromadb, per-user collections.
    Structures: ``--stores`` (default ``turns,all``: turns, memtree, summary, memo, graph)
    and the fact ledger.

    What is populated, and how: memory is built by the structures' own ``write`` and
    ``end_session`` (turns, memtree, summary, memo, graph) and the fact ledger's
    ``write`` (which resolves facts), with the offline builders, so records, metadata,
    vectors and invalidations are exactly what those structures store. The large user's
    turns are written until the user holds ``--items`` memory items (records rows, all
    structures together: about 6 per turn, so 100k items is about 16k turns). Two
    shortcuts keep that to minutes: (1) the embedder is :class:`ClusteredEmbedder`: a
    text's vector is the real MiniLM vector of its *skeleton* (digits replaced by ``#``;
    a few thousand distinct skeletons, embedded once) plus seeded noise (cosine ~0.86 to
    the skeleton), so vectors are unit-length, MiniLM-shaped and clustered by meaning, and
    distinct for distinct texts; (2) turns are written ``--populate-batch`` (400) at a
    time per structure, then each session is ended; the manager's stale sweep runs every
    ``--sweep-every`` turns and at the end (the manager sweeps after every write that
    supersedes a fact; each sweep re-reads all the user's items, see the figures). The
    directory (``--data``, default /tmp/agentmem-bench-scale) is kept with a
    ``bench-scale.json`` marker, so a rerun with the same parameters only measures.
    ``--stores turns --no-facts`` puts all ``--items`` into one collection (the HNSW
    stress case).

    Each configuration of ``--configs`` (default ``all,turns``; structures joined by
    ``+``, each with the fact ledger unless ``--no-facts``) is measured in turn on the
    same populated data, with its own tables, then side by side against issue 32's
    targets (p95: ``all`` <= 50 ms, ``turns`` <= 25 ms). ``turns`` there is the turns
    structure and the fact ledger over the large user's history (about 16,800 turns and
    2,000 facts of the ~100k items), not 100k turns.

    Measured, in a freshly opened memory (as after a restart): recall total and its
    vector part (wall time inside ``VectorIndex.query``), p50 and p95 over ``--queries``
    questions searched one structure after another (the default) and ``--queries`` other
    questions searched in parallel threads (``MemoryManager(parallel=True)``, where the
    per-structure times overlap), alternating; how many vector queries fell back to a
    filtered search; the first (cold) recall on its own; then each structure's
    ``retrieve`` alone; and recall@10 against exact numpy search over the same stored
    vectors (ties at the 10th score count as hits) of what ``VectorIndex.query`` returns
    (exact in-process search for partitions up to ``VectorIndex.EXACT_LIMIT``) and of
    chromadb's HNSW search of each current partition at the default ``ef_search`` and the
    ``--ef`` values side by side.

``ingest``
    Turns/s through ``MemoryManager.write`` + ``end_session`` with ``--stores`` (default
    ``all``: memtree, summary, memo, graph) and the fact ledger, offline builders, real
    MiniLM embeddings (the app's ``CachingEmbedder``); written per exchange (2 turns, as
    the chat app writes) and per session (20 turns, as the replay writes), side by side;
    then again with every text already in the cache ("embedding excluded"). Time shares
    per structure are measured by timing each structure's ``write``/``end_session``/
    ``invalidate`` and the ledger's ``resolve`` inside the manager's own fan-out.
    ``--profile`` adds a cProfile run (per exchange, embedding excluded) and lists the
    top cumulative functions from ``memory_stores/`` and ``agentmem/``, and the top
    functions by own time.

``model-builders``
    The same dialogue with memory built by a model: ``FakeOpenAIServer`` answering every
    JSON-schema request validly (``schema_reply``), reached through the real OpenAI
    client and ``MeteredChatModel``. Reports model calls and prompt/completion tokens
    per turn, in total and per structure (attributed by the schema each call asked for),
    per exchange and per session. Tokens are the fake's estimate (4 characters a token);
    the fake's answers are minimal, so completion tokens are a floor.

``footprint``
    Process RSS (``/proc/self/status``; psutil is not a dependency) and disk (records
    database vs chromadb) while ingesting ``--turns`` (10,000) turns with ``--stores``
    (``all``) and the fact ledger through the manager, a session per write, checkpoints
    every ``--every`` turns, as MB per 10k turns. Turn texts are embedded up front in
    large batches (the cache is enlarged by them and its size is reported apart);
    ``--max-minutes`` stops early and extrapolates.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder  # noqa: E402
from agentmem.protocols import Embedder  # noqa: E402

console = Console()
if not console.is_terminal:  # piped output: wide enough for the tables
    console = Console(width=140)

SESSION = 20
USER = "sam"

# -- the synthetic dialogue ----------------------------------------------------------------

PEOPLE = ["Ana", "Tom", "Maya", "Leo", "Rita", "Omar", "Ivy", "Ben", "Nora", "Yusuf"]
PLACES = ["Porto", "Denver", "Galway", "Reno", "Lisbon", "Austin", "Bruges", "Oslo", "Quito"]
JOBS = ["nurse", "teacher", "barista", "librarian", "electrician", "engineer", "chef", "tutor"]
HOBBIES = ["chess", "pottery", "rock climbing", "baking", "birdwatching", "running", "guitar"]
PETS = ["dog", "cat", "parrot", "rabbit", "turtle"]
FOODS = ["ramen", "lentil soup", "tacos", "a mushroom risotto", "pancakes", "curry"]
FILMS = ["a heist movie", "a documentary about whales", "an old western", "a silly comedy"]
RELATIVES = ["sister", "brother", "cousin", "uncle", "neighbour", "best friend"]

#: Sam's news: (weight, template); {new_*} changes Sam's state.
CHANGES = [
    (3, "We moved to {new_place} last month."),
    (2, "I finally got a job as a {new_job}."),
    (2, "I took up {new_hobby} this spring."),
    (1, "I gave up {old_hobby}, it wasn't for me."),
    (1, "I adopted a {new_pet} named {person}."),
]
#: Sam restating what currently holds.
RESTATE = [
    "I live in {place} now.",
    "Life in {place} is quiet these days.",
    "I work as a {job} these days.",
    "My shift as a {job} ran late again.",
    "I've been really into {hobby} lately.",
    "My {pet} {pet_name} was sick this week.",
]
#: Episodic small talk, by either speaker.
CHAT = [
    "I went for a long walk by the river with {person}.",
    "We watched {film} last night.",
    "I cooked {food} for dinner.",
    "My {relative} {person} lives in {other_place}.",
    "My {relative} {person} works as a {other_job}.",
    "The weather in {place} was terrible this week.",
    "What did you have for lunch today?",
    "Have you ever tried {hobby_any}?",
    "I read a great article about {hobby_any}.",
    "Oh really?",
    "Sounds fun.",
    "That makes sense.",
    "Ugh, sorry to hear that.",
    "How was the trip to {other_place}?",
    "{person} says hi, by the way.",
    "I finished the book {person} lent me.",
]
#: Appended to most turns: makes texts distinct without adding facts or entities.
DETAILS = [
    ", about {n} minutes from here",
    ", around {n} km away",
    ", it cost {n} dollars",
    ", at {n} in the evening",
    ", for the {n}th time",
    ", on page {n} of my notes",
    ", with {n} people there",
    ", after {n} hours of work",
]

QUESTIONS = [
    "Where do I live?",
    "What is my job?",
    "What hobby am I into?",
    "Where does my sister live?",
    "What pet did I adopt?",
    "What did we watch last night?",
    "Who did I go for a walk with?",
    "What did I cook for dinner?",
    "How was the weather this week?",
    "Did I give up any hobby?",
]


@dataclass(frozen=True)
class Line:
    """One synthetic turn."""

    speaker: str
    text: str
    session: int
    timestamp: datetime


def dialogue(turns: int, seed: int = 7, *, start: datetime | None = None) -> list[Line]:
    """Return ``turns`` turns of a Sam/Alex dialogue in sessions of 20, facts changing."""
    rng = random.Random(seed)
    start = start or datetime(2021, 1, 1)
    state: dict[str, Any] = {
        "place": rng.choice(PLACES),
        "job": rng.choice(JOBS),
        "hobbies": [rng.choice(HOBBIES)],
        "pet": rng.choice(PETS),
        "pet_name": rng.choice(PEOPLE),
    }
    weights = [w for w, _ in CHANGES]
    lines = []
    for i in range(turns):
        session = i // SESSION
        speaker = "Sam" if i % 2 == 0 else "Alex"
        fill = {
            "person": rng.choice(PEOPLE),
            "film": rng.choice(FILMS),
            "food": rng.choice(FOODS),
            "relative": rng.choice(RELATIVES),
            "other_place": rng.choice(PLACES),
            "other_job": rng.choice(JOBS),
            "hobby_any": rng.choice(HOBBIES),
            "place": state["place"],
            "job": state["job"],
            "hobby": rng.choice(state["hobbies"]) if state["hobbies"] else "nothing much",
            "pet": state["pet"],
            "pet_name": state["pet_name"],
        }
        roll = rng.random()
        if speaker == "Sam" and roll < 0.06:
            template = rng.choices([t for _, t in CHANGES], weights)[0]
            if "{old_hobby}" in template and not state["hobbies"]:
                template = CHANGES[2][1]
            if "{new_place}" in template:
                state["place"] = fill["new_place"] = rng.choice(
                    [p for p in PLACES if p != state["place"]]
                )
            elif "{new_job}" in template:
                state["job"] = fill["new_job"] = rng.choice([j for j in JOBS if j != state["job"]])
            elif "{new_hobby}" in template:
                fill["new_hobby"] = rng.choice(HOBBIES)
                state["hobbies"] = list(dict.fromkeys([*state["hobbies"], fill["new_hobby"]]))
            elif "{old_hobby}" in template:
                fill["old_hobby"] = rng.choice(state["hobbies"])
                state["hobbies"].remove(fill["old_hobby"])
            else:
                state["pet"] = fill["new_pet"] = rng.choice(PETS)
                state["pet_name"] = fill["person"]
            text = template.format(**fill)
        elif speaker == "Sam" and roll < 0.3:
            text = rng.choice(RESTATE).format(**fill)
        else:
            text = rng.choice(CHAT).format(**fill)
        if rng.random() < 0.85 and not text.endswith("?"):
            detail = rng.choice(DETAILS).format(n=rng.randint(2, 4999))
            text = text[:-1] + detail + text[-1]
        moment = start + timedelta(days=session, seconds=30 * (i % SESSION))
        lines.append(Line(speaker, text, session, moment))
    return lines


# -- embedders -----------------------------------------------------------------------------


class ClusteredEmbedder:
    """MiniLM vectors of a text's skeleton plus seeded noise: realistic, and fast at scale.

    The skeleton is the text with every number replaced by ``#``, so the dialogue's
    hundred thousand distinct turns share a few thousand skeletons, each embedded once by
    the real model. Each text gets its own seeded Gaussian noise, scaled so the cosine to
    its skeleton's vector is about ``1 / sqrt(1 + spread**2)`` (0.86 at 0.6).
    In ``exact`` mode texts are embedded as they are (used for recall queries).

    Args:
        inner: The real embedder (cached).
        spread: The noise's norm relative to the unit skeleton vector.
    """

    def __init__(self, inner: Embedder, *, spread: float = 0.6) -> None:
        self.inner = inner
        self.name = inner.name
        self.spread = spread
        self.exact = False

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.exact:
            return self.inner.embed(texts)
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        centres = self.inner.embed([re.sub(r"\d+", "#", t) for t in texts])
        noise = np.stack([self._noise(t) for t in texts])
        vectors = centres + self.spread * noise
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    def _noise(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
        draw = np.random.default_rng(seed).standard_normal(self.dimension)
        return (draw / np.linalg.norm(draw)).astype(np.float32)


# -- small helpers -------------------------------------------------------------------------


def library_state() -> str:
    """Return the checkout's commit and which library files differ from it (read only)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "agentmem", "memory_stores").splitlines()
    dirty = f", {len(changed)} library files modified" if changed else ", clean"
    return f"commit {git('rev-parse', '--short', 'HEAD') or '?'}{dirty}"


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0-100) of ``values``."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def load_average() -> str:
    """Return the 1/5/15-minute load averages, as ``uptime`` prints them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_mb() -> float:
    """Return this process's resident set size in MB (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mb(path: Path) -> float:
    """Return the size of the files under ``path`` in MB."""
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


# -- building memories ---------------------------------------------------------------------


def open_memory(
    folder: Path,
    embedder: Embedder,
    stores: Sequence[str],
    *,
    facts: bool = True,
    model: Any = None,
) -> Any:
    """Build records, vectors and the manager in ``folder`` through the factory."""
    from agentmem.config import Config, ModelSpec
    from agentmem.factory import build

    if isinstance(embedder, CachingEmbedder) and len(embedder) == 0:
        # build() tests ``embedder or build_embedder(config)``, and an empty
        # CachingEmbedder is falsy (it has __len__): it would load a second MiniLM with
        # its own cache. One cached sentence makes the shared embedder count.
        embedder.embed(["warm the model up"])

    config = Config(
        data_dir=folder,
        model=ModelSpec("openai" if model is not None else "none"),
        stores=tuple(stores),
        facts=facts,
        model_builders="yes" if model is not None else "no",
    )
    return build(config, model=model, embedder=embedder)


def store_turns(records: Any, user: str, lines: Sequence[Line]) -> tuple[list[Any], list[str]]:
    """Commit ``lines`` as turns of ``user`` (sessions opened as needed)."""
    sessions = list(dict.fromkeys(f"{user}-s{line.session}" for line in lines))
    for session in sessions:
        records.start_session(user, session_id=session)
    turns = records.add_turns(
        [
            dict(
                user_id=user,
                session_id=f"{user}-s{line.session}",
                speaker=line.speaker,
                role="user",
                text=line.text,
                timestamp=line.timestamp,
            )
            for line in lines
        ]
    )
    return turns, sessions


class StructureClock:
    """Times each structure's work inside the manager's own fan-out, embedding apart.

    Wraps, on the instances, ``write``/``end_session``/``invalidate`` of every structure and
    the fact ledger's ``resolve``; times are exclusive (a sweep's ``invalidate`` inside
    another call is charged to the structure invalidated). :class:`TimedEmbedder` charges
    model time to the structure whose call embedded.
    """

    def __init__(self, manager: Any) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.embed_seconds: dict[str, float] = defaultdict(float)
        self._stack: list[str] = []
        for structure in manager.structures:
            for method in ("write", "end_session", "invalidate", "resolve"):
                if hasattr(structure, method):
                    self._wrap(structure, method, structure.name)

    def _wrap(self, owner: Any, method: str, label: str) -> None:
        original = getattr(owner, method)
        label = f"{label}.{method}"

        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append(label)
            tick = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - tick
                self._stack.pop()
                self.seconds[label] += spent
                if self._stack:  # exclusive times: not charged to the caller as well
                    self.seconds[self._stack[-1]] -= spent

        setattr(owner, method, timed)

    def by_structure(self) -> dict[str, float]:
        """Return the seconds per structure (all methods together)."""
        totals: dict[str, float] = defaultdict(float)
        for label, seconds in self.seconds.items():
            totals[label.split(".")[0]] += seconds
        return dict(totals)


def ingest(
    components: Any,
    lines: Sequence[Line],
    *,
    user: str = USER,
    batch: int = 2,
    checkpoint: Callable[[int], None] | None = None,
    every: int = 0,
    deadline: float | None = None,
) -> tuple[float, int]:
    """Write ``lines`` through ``MemoryManager.write`` (``batch`` turns a call) and end each
    session, as the chat app (batch 2) or the replay (batch 20) does.

    Returns the seconds spent and the turns written (fewer than ``lines`` when the
    ``deadline``, a ``time.perf_counter()`` value, passed at a checkpoint).
    """
    manager, records = components.manager, components.records
    started = time.perf_counter()
    done = 0
    for first in range(0, len(lines), SESSION):
        session_lines = lines[first : first + SESSION]
        session = f"{user}-s{session_lines[0].session}"
        for offset in range(0, len(session_lines), batch):
            turns, _ = store_turns(records, user, session_lines[offset : offset + batch])
            manager.write(turns)
        manager.end_session(user, session)
        done += len(session_lines)
        if checkpoint is not None and every and done % every == 0:
            paused = time.perf_counter()
            checkpoint(done)
            started += time.perf_counter() - paused  # the checkpoint is not ingest time
            if deadline is not None and paused > deadline:
                break
    return time.perf_counter() - started, done


# -- recall at scale -----------------------------------------------------------------------

MARKER = "bench-scale.json"
DATA_VERSION = 1

QUESTION_TEMPLATES = [
    "Where does my {relative} {person} live?",
    "What does {person} do for work?",
    "When did I go for a walk with {person}?",
    "Did I ever cook {food}?",
    "Have we watched {film}?",
    "Do I still do {hobby}?",
    "Did I ever live in {place}?",
    "What happened with my {pet}?",
    "How was the trip to {place}?",
    "What did {person} lend me?",
    "Am I still working as a {job}?",
]


def questions(count: int, seed: int = 11) -> list[str]:
    """Return ``count`` distinct recall questions about the synthetic dialogue.

    Every filling of :data:`QUESTION_TEMPLATES` (about 140), shuffled; beyond that, the
    same questions asked with a lead-in ("Remind me, ...").
    """
    import itertools

    fills = {
        "relative": RELATIVES,
        "person": PEOPLE,
        "food": FOODS,
        "film": FILMS,
        "hobby": HOBBIES,
        "place": PLACES,
        "pet": PETS,
        "job": JOBS,
    }
    base: dict[str, None] = dict.fromkeys(QUESTIONS)
    for template in QUESTION_TEMPLATES:
        names = [n for n in fills if "{" + n + "}" in template]
        for values in itertools.product(*(fills[n] for n in names)):
            base[template.format(**dict(zip(names, values, strict=True)))] = None
    texts = list(base)
    random.Random(seed).shuffle(texts)
    found = list(texts)
    for lead in ("Remind me, ", "Quick question: ", "Do you remember? ", "Tell me again: "):
        found += [lead + text[0].lower() + text[1:] for text in texts]
    return found[:count]


def count_items(records: Any, user: str) -> dict[tuple[str, str], tuple[int, int]]:
    """Return, per (structure, kind), the user's items in all and how many are current."""
    from sqlalchemy import func as sql_func
    from sqlmodel import col, select

    from agentmem.storage.records import MemoryItemRow

    query = (
        select(
            MemoryItemRow.store,
            MemoryItemRow.kind,
            sql_func.count(),
            sql_func.count(col(MemoryItemRow.invalid_at)),
        )
        .where(MemoryItemRow.user_id == user)
        .group_by(MemoryItemRow.store, MemoryItemRow.kind)
    )
    with records.session() as s:
        return {(store, kind): (n, n - invalid) for store, kind, n, invalid in s.exec(query)}


def populate_user(
    components: Any,
    user: str,
    lines: Sequence[Line],
    batch: int,
    sweeps: list[tuple[int, float]],
    sweep_every: int,
) -> Iterator[int]:
    """Write ``lines`` into every structure ``batch`` turns at a time; yield turns done.

    Each structure gets the batch through its own ``write`` (the fact ledger first, as in
    the manager), then every session of the batch is ended and the turns are marked
    memorized; every ``sweep_every`` turns and at the end the manager's stale sweep runs
    (the manager sweeps after each write that superseded a fact: each sweep re-reads
    every item of the user, so sweeping per batch made populating quadratic). Sweeps are
    recorded in ``sweeps`` as (turns so far, seconds).
    """
    from agentmem.protocols import Consolidating

    manager, records = components.manager, components.records
    by_name = {structure.name: structure for structure in manager.structures}
    for first in range(0, len(lines), batch):
        turns, sessions = store_turns(records, user, lines[first : first + batch])
        for structure in manager.structures:
            structure.write(turns)
        for store in manager.stores:
            if isinstance(store, Consolidating):
                for session in sessions:
                    store.end_session(user, session)
        records.mark_memorized(t.id for t in turns)
        done = first + len(turns)
        if done % sweep_every < batch or done == len(lines):
            tick = time.perf_counter()
            manager.guard.reset(user)
            manager.guard.sweep(user, by_name)
            sweeps.append((done, time.perf_counter() - tick))
        yield done


def populate(folder: Path, args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    """Fill ``folder`` for the recall benchmark; return what was built."""
    embedder = ClusteredEmbedder(
        CachingEmbedder(MiniLMEmbedder(batch_size=128), capacity=1_000_000), spread=args.spread
    )
    stores = args.stores.split(",")
    components = open_memory(folder, embedder, stores, facts=not args.no_facts)
    started = time.perf_counter()
    try:
        others = [f"user-{n:03d}" for n in range(args.users - 1)]
        for n, other in enumerate(others):
            lines = dialogue(args.other_turns, seed=1000 + n)
            for _ in populate_user(components, other, lines, args.populate_batch, [], 10**9):
                pass
            if (n + 1) % 10 == 0 or n + 1 == len(others):
                console.print(
                    f"[dim]  {n + 1} other users written ({args.other_turns} turns each), "
                    f"{time.perf_counter() - started:.0f} s[/]"
                )
        # Enough dialogue for the target; writing stops once the user holds N items.
        lines = dialogue(max(args.items, 1000), seed=args.seed)
        tick = time.perf_counter()
        turns = 0
        sweeps: list[tuple[int, float]] = []
        writing = populate_user(
            components, USER, lines, args.populate_batch, sweeps, args.sweep_every
        )
        for turns in writing:
            held = sum(n for n, _ in count_items(components.records, USER).values())
            if turns % (args.populate_batch * 5) == 0:
                rate = turns / (time.perf_counter() - tick)
                swept = ", ".join(f"{s:.1f} s at {n:,}" for n, s in sweeps)
                console.print(
                    f"[dim]  {USER}: {turns:,} turns, {held:,} items, {rate:.0f} turns/s "
                    f"(stale sweeps included: {swept}), {time.perf_counter() - started:.0f} s[/]"
                )
            if held >= args.items:
                tock = time.perf_counter()
                components.manager.guard.reset(USER)
                components.manager.guard.sweep(
                    USER, {s.name: s for s in components.manager.structures}
                )
                sweeps.append((turns, time.perf_counter() - tock))
                break
        counts = count_items(components.records, USER)
    finally:
        components.close()
    built = {
        "params": params,
        "turns": turns,
        "items": {f"{s}/{k}": list(v) for (s, k), v in sorted(counts.items())},
        "populate_seconds": round(time.perf_counter() - started, 1),
        "sweeps": [[n, round(s, 2)] for n, s in sweeps],
        "load": load_average(),
    }
    (folder / MARKER).write_text(json.dumps(built, indent=2))
    return built


@dataclass(frozen=True)
class VectorCall:
    """One ``VectorIndex.query``: when, for which collection, filtered or not."""

    start: float
    end: float
    store: str
    filtered: bool


def timed_vectors(vectors: Any) -> list[VectorCall]:
    """Record every ``VectorIndex.query`` on this instance; return the live list."""
    calls: list[VectorCall] = []
    original = vectors.query

    def query(store: str, *args: Any, **kwargs: Any) -> Any:
        tick = time.perf_counter()
        try:
            return original(store, *args, **kwargs)
        finally:
            calls.append(VectorCall(tick, time.perf_counter(), store, bool(kwargs.get("where"))))

    vectors.query = query
    return calls


def vector_figures(calls: Sequence[VectorCall]) -> dict[str, float]:
    """Return the wall time covered by ``calls`` (overlaps once), their sum, and counts."""
    wall, reach = 0.0, float("-inf")
    for call in sorted(calls, key=lambda c: c.start):
        if call.end > reach:
            wall += call.end - max(call.start, reach)
            reach = call.end
    filtered = [c for c in calls if c.filtered]
    return {
        "vector": wall * 1000,
        "vector sum": sum(c.end - c.start for c in calls) * 1000,
        "vector calls": len(calls),
        "filtered calls": len(filtered),
        "filtered sum": sum(c.end - c.start for c in filtered) * 1000,
    }


def measure_recall(
    folder: Path, args: argparse.Namespace, stores: Sequence[str] | None = None
) -> dict[str, Any]:
    """Time ``MemoryManager.recall`` for the large user in a freshly opened memory, then
    each structure's ``retrieve`` on its own (sequentially) for the same questions.

    ``stores``: the structures to open (default ``--stores``, what was populated); a subset
    measures that configuration on the same data."""
    from agentmem.types import Query, Scope

    cache = CachingEmbedder(MiniLMEmbedder(), capacity=100_000)
    cache.warm()
    embedder = ClusteredEmbedder(cache)
    embedder.exact = True  # queries are embedded by the real model, as they are
    embedder.embed(["warm the model up"])
    stores = list(stores) if stores is not None else args.stores.split(",")
    components = open_memory(folder, embedder, stores, facts=not args.no_facts)
    calls = timed_vectors(components.vectors)
    manager = components.manager
    texts = questions(2 * args.queries + args.warmup + 1)
    scope = Scope(USER)
    rows = []
    alone: dict[str, list[dict[str, float]]] = defaultdict(list)
    try:
        for n, text in enumerate(texts):
            first = len(calls)
            # Questions alternate between searching the structures one after another (the
            # default) and in parallel threads, so the two are measured side by side.
            manager.parallel = n % 2 == 1
            result = manager.recall(text, scope, k=10, budget_tokens=1000)
            timings = {name: seconds * 1000 for name, seconds in result.timings.items()}
            timings |= vector_figures(calls[first:])
            timings["items"] = len(result.items)
            timings["stale"] = result.stale_dropped
            timings["parallel"] = float(manager.parallel)
            rows.append(timings)
            if n == 0:
                console.print(
                    f"[dim]  first (cold) recall: {timings['total']:.0f} ms "
                    f"({', '.join(f'{k} {v:.0f}' for k, v in timings.items() if k != 'total')})[/]"
                )
        measured = texts[1 + args.warmup :]
        query_vectors = embedder.embed(measured)  # cached: embedded by the recalls
        for text, vector in zip(measured, query_vectors, strict=True):
            query = Query(text, scope, embedding=vector)
            for structure in manager.structures:
                first = len(calls)
                tick = time.perf_counter()
                structure.retrieve(query, 10)
                figures = vector_figures(calls[first:])
                figures["retrieve"] = (time.perf_counter() - tick) * 1000
                alone[structure.name].append(figures)
    finally:
        components.close()
    np.save(folder / "queries.npy", query_vectors)
    return {"cold": rows[0], "measured": rows[1 + args.warmup :], "alone": dict(alone)}


def probe(args: argparse.Namespace) -> None:
    """(Run in its own process.) HNSW latency and recall@10 at one ``ef_search``.

    chromadb reads ``ef_search`` when it loads a collection's index, so each value is
    probed in a fresh process: set it before the first query, restore the default after.
    """
    from agentmem.models.embeddings import MiniLMEmbedder as Unused
    from agentmem.storage.vectors import VectorIndex, collection_name

    folder = Path(args.data)
    queries = np.load(folder / "queries.npy")
    index = VectorIndex(Unused(), path=folder / "chroma")
    report = {}
    try:
        for store in args.collections.split(","):
            try:
                collection = index.client.get_collection(collection_name(store, USER))
            except Exception:  # the structure is not configured
                continue
            # Nothing may touch the collection before this (count() would load its index
            # with the stored ef_search, and the change would not apply in this process).
            collection.modify(configuration={"hnsw": {"ef_search": args.ef}})
            collection = index.client.get_collection(collection.name)
            stored = collection.get(include=["embeddings"])
            matrix = np.asarray(stored["embeddings"], dtype=np.float32)
            if len(matrix) < 10:
                collection.modify(configuration={"hnsw": {"ef_search": DEFAULT_EF}})
                continue
            latencies, recalls = [], []
            for query in queries:
                tick = time.perf_counter()
                found = collection.query(
                    query_embeddings=query.reshape(1, -1), n_results=10, include=["distances"]
                )
                latencies.append((time.perf_counter() - tick) * 1000)
                tenth = np.partition(matrix @ query, -10)[-10]
                similarity = 1.0 - np.asarray(found["distances"][0])
                # A hit is any returned vector as near as the exact 10th (ties count).
                recalls.append(float(np.sum(similarity >= tenth - 1e-5)) / 10)
            report[store] = {
                "vectors": len(matrix),
                "p50": percentile(latencies, 50),
                "p95": percentile(latencies, 95),
                "recall": float(np.mean(recalls)),
                "perfect": float(np.mean(np.asarray(recalls) == 1.0)),
            }
            collection.modify(configuration={"hnsw": {"ef_search": DEFAULT_EF}})
            if args.ef == DEFAULT_EF:  # what agentmem's own query returns (exact or HNSW)
                ours = []
                for query in queries:
                    tenth = np.partition(matrix @ query, -10)[-10]
                    hits = index.query(store, USER, query, 10)
                    similarity = np.asarray([h.similarity for h in hits])
                    ours.append(float(np.sum(similarity >= tenth - 1e-5)) / 10)
                report[store]["agentmem"] = float(np.mean(ours))
    finally:
        index.close()
    sys.stdout.write("PROBE " + json.dumps(report) + "\n")


DEFAULT_EF = 100
PROBED = "turns,memtree,graph-passage,graph-fact,memo,facts,summary"


def run_probe(folder: Path, ef: int) -> dict[str, Any]:
    """Run :func:`probe` in a child process and return its report."""
    import subprocess

    command = [sys.executable, __file__, "_probe", "--data", str(folder), "--ef", str(ef)]
    command += ["--collections", PROBED]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("PROBE "):
            return dict(json.loads(line[len("PROBE ") :]))
    raise RuntimeError(f"probe at ef_search={ef} failed:\n{done.stderr[-2000:]}")


def cmd_recall(args: argparse.Namespace) -> None:
    """The ``recall`` sub-command."""
    folder = Path(args.data)
    params = {
        "version": DATA_VERSION,
        "items": args.items,
        "users": args.users,
        "other_turns": args.other_turns,
        "stores": args.stores,
        "facts": not args.no_facts,
        "seed": args.seed,
        "spread": args.spread,
        "populate_batch": args.populate_batch,
        "sweep_every": args.sweep_every,
    }
    marker = folder / MARKER
    built = json.loads(marker.read_text()) if marker.exists() else None
    if built is not None and (args.rebuild or built.get("params") != params):
        if not args.rebuild:
            raise SystemExit(
                f"{folder} holds other parameters ({built.get('params')}); "
                "pass --rebuild to replace it, or another --data"
            )
        built = None
    if built is None:
        if folder.exists() and (args.rebuild or not marker.exists()):
            shutil.rmtree(folder)
        console.print(f"populating {folder} (load {load_average()}) ...")
        built = populate(folder, args, params)
    else:
        console.print(f"reusing {folder} (populated in {built['populate_seconds']:.0f} s)")
    items = built["items"]
    held = sum(n for n, _ in items.values())
    console.print(
        f"user {USER!r}: {built['turns']:,} turns, {held:,} memory items "
        f"({', '.join(f'{k} {n:,}/{c:,} current' for k, (n, c) in items.items())}); "
        f"{args.users - 1} other users with {args.other_turns} turns each; "
        f"populated in {built['populate_seconds']:.0f} s (load then {built['load']}); "
        f"stale sweeps (turns, s): {built['sweeps']}"
    )
    summary = []
    for config in args.configs.split(","):
        console.print(f"measuring recall of {config!r} (load {load_average()}) ...")
        result = measure_recall(folder, args, config.split("+"))
        summary.append((config, print_recall(config, result)))
    table = Table(title=f"Recall at {held:,} items, one after another (the default), p50 / p95 ms")
    for column in ("configuration", "p50 / p95 ms", "target p95 (issue 32)"):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for config, totals in summary:
        target = RECALL_TARGETS.get(config)
        p95 = percentile(totals, 95)
        verdict = f"<= {target:.0f}: {'met' if p95 <= target else 'NOT met'}" if target else "-"
        table.add_row(config, f"{percentile(totals, 50):.1f} / {p95:.1f}", verdict)
    console.print(table)
    probe_all(folder, args)


#: Issue 32's recall targets at 100k items, p95 ms, by configuration.
RECALL_TARGETS = {"all": 50.0, "turns": 25.0}


def print_recall(config: str, result: dict[str, Any]) -> list[float]:
    """Print one configuration's recall tables; return its totals, one after another (ms)."""
    measured = result["measured"]
    modes = {
        "one after another (default)": [r for r in measured if not r["parallel"]],
        "parallel threads": [r for r in measured if r["parallel"]],
    }
    rows = modes["one after another (default)"]
    table = Table(
        title=f"{config}: MemoryManager.recall, k=10, budget 1000 tokens, {len(rows)} questions "
        "each way, alternating"
    )
    table.add_column("part")
    for mode in modes:
        table.add_column(f"{mode}: p50 / p95 / max ms", justify="right")
    labels = {
        "total": "recall total (end to end)",
        "embed": "query embedding (MiniLM)",
        "vector": "vector part: wall time in VectorIndex.query",
        "vector sum": "  summed over the parallel structures",
        "vector calls": "  VectorIndex.query calls (count)",
        "filtered calls": "  of which filtered fallbacks (count)",
        "filtered sum": "  time in filtered fallbacks (summed)",
        "rewrite": "rewrite (rules)",
    }
    skip = ("items", "stale", "parallel")
    parts = list(labels) + [p for p in rows[0] if p not in labels and p not in skip]
    for part in parts:
        cells = [labels.get(part, f"structure: {part}")]
        for mode_rows in modes.values():
            values = [r.get(part, 0.0) for r in mode_rows]
            cells.append(
                f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f} / {max(values):.1f}"
            )
        table.add_row(*cells)
    console.print(table)
    cold = result["cold"]
    console.print(
        f"cold first recall {cold['total']:.0f} ms (loads the exact-search copies); items "
        f"returned {statistics.median(r['items'] for r in measured):.0f} (median); stale "
        f"items dropped {sum(r['stale'] for r in measured)} in all."
    )
    table = Table(
        title=f"{config}: each structure's retrieve on its own (sequential, query embedding given)"
    )
    for column in ("structure", "retrieve p50 / p95 ms", "vector p50 / p95 ms", "vector calls"):
        table.add_column(column, justify="left" if column == "structure" else "right")
    table.add_column("queries with a filtered fallback", justify="right")
    table.add_column("filtered call p50 ms", justify="right")
    for name, figures in result["alone"].items():
        retrieve = [f["retrieve"] for f in figures]
        vector = [f["vector"] for f in figures]
        fell_back = [f for f in figures if f["filtered calls"]]
        per_call = [f["filtered sum"] / f["filtered calls"] for f in fell_back]
        table.add_row(
            name,
            f"{percentile(retrieve, 50):.1f} / {percentile(retrieve, 95):.1f}",
            f"{percentile(vector, 50):.1f} / {percentile(vector, 95):.1f}",
            f"{statistics.median(f['vector calls'] for f in figures):.0f}",
            f"{len(fell_back) / len(figures):.0%}",
            f"{statistics.median(per_call):.1f}" if per_call else "-",
        )
    console.print(table)
    return [r["total"] for r in rows]


def probe_all(folder: Path, args: argparse.Namespace) -> None:
    """Print HNSW's recall@10 against exact search at each ``--ef`` (needs queries.npy)."""
    efs = [DEFAULT_EF] + [int(e) for e in args.ef.split(",") if e.strip()]
    console.print(f"probing HNSW recall@10 at ef_search {efs}, one process each ...")
    probes = {ef: run_probe(folder, ef) for ef in efs}
    table = Table(
        title=f"HNSW search of {USER!r}'s collections vs exact numpy search, "
        f"{args.queries} MiniLM question vectors, k=10 (recall@10, ties count)"
    )
    table.add_column("collection")
    table.add_column("vectors", justify="right")
    from agentmem.storage.vectors import VectorIndex

    limit = VectorIndex.EXACT_LIMIT
    table.add_column(f"VectorIndex.query (exact up to {limit:,})", justify="right")
    for ef in efs:
        table.add_column(f"ef {ef}: recall@10", justify="right")
        table.add_column("all 10 found", justify="right")
        table.add_column("p50 / p95 ms", justify="right")
    for store, first in probes[DEFAULT_EF].items():
        cells = [store, f"{first['vectors']:,}", f"{first.get('agentmem', float('nan')):.3f}"]
        for ef in efs:
            found = probes[ef].get(store)
            if found is None:
                cells += ["-", "-", "-"]
                continue
            cells += [
                f"{found['recall']:.3f}",
                f"{found['perfect']:.0%}",
                f"{found['p50']:.1f} / {found['p95']:.1f}",
            ]
        table.add_row(*cells)
    console.print(table)


# -- ingest --------------------------------------------------------------------------------


class TimedEmbedder:
    """Passes embeddings through to ``inner``, charging the time to a :class:`StructureClock`."""

    def __init__(self, inner: Any, clock: StructureClock) -> None:
        self.inner = inner
        self.name = inner.name
        self.clock = clock

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        tick = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            stack = self.clock._stack
            owner = stack[-1].split(".")[0] if stack else "manager"
            self.clock.embed_seconds[owner] += time.perf_counter() - tick


def ingest_run(
    lines: Sequence[Line],
    cache: CachingEmbedder,
    model_inner: Any,
    stores: Sequence[str],
    batch: int,
    *,
    profile: cProfile.Profile | None = None,
) -> dict[str, Any]:
    """Ingest into a fresh data directory; return throughput and per-structure seconds."""
    with tempfile.TemporaryDirectory(prefix="agentmem-ingest-") as tmp:
        components = open_memory(Path(tmp), cache, stores)
        clock = StructureClock(components.manager)
        cache.inner = TimedEmbedder(model_inner, clock)
        hits, misses = cache.hits, cache.misses
        try:
            if profile is not None:
                profile.enable()
            seconds, _ = ingest(components, lines, batch=batch)
            if profile is not None:
                profile.disable()
            counts = count_items(components.records, USER)
        finally:
            cache.inner = model_inner
            components.close()
    return {
        "seconds": seconds,
        "turns_per_s": len(lines) / seconds,
        "structures": clock.by_structure(),
        "methods": dict(clock.seconds),
        "embed": dict(clock.embed_seconds),
        "cache_misses": cache.misses - misses,
        "cache_hits": cache.hits - hits,
        "items": sum(n for n, _ in counts.values()),
    }


def cmd_ingest(args: argparse.Namespace) -> None:
    """The ``ingest`` sub-command."""
    lines = dialogue(args.turns, seed=args.seed)
    stores = args.stores.split(",")
    model = MiniLMEmbedder()
    model.warm()
    model.embed(["warm the model up"])
    batches = [int(b) for b in args.batches.split(",")]
    console.print(
        f"ingesting {len(lines):,} turns (sessions of {SESSION}) into {stores} + the fact "
        f"ledger, offline builders; load {load_average()}"
    )
    runs: dict[str, dict[str, Any]] = {}
    caches: dict[int, CachingEmbedder] = {}
    for batch in batches:
        for embedded in ("MiniLM", "pre-embedded"):
            if embedded == "MiniLM":  # a cold cache: every text is embedded in the run
                caches[batch] = CachingEmbedder(model, capacity=1_000_000)
            label = f"{batch} turns/write, {embedded}"
            console.print(f"[dim]  {label} ...[/]")
            # The pre-embedded run reuses the cache the MiniLM run filled: same texts.
            runs[label] = ingest_run(lines, caches[batch], model, stores, batch)
    table = Table(title=f"Ingest: {len(lines):,} turns through MemoryManager.write + end_session")
    table.add_column("")
    for label in runs:
        table.add_column(label.replace(", ", "\n"), justify="right")
    table.add_row("turns/s", *[f"{r['turns_per_s']:.1f}" for r in runs.values()])
    table.add_row("seconds", *[f"{r['seconds']:.1f}" for r in runs.values()])
    table.add_row(
        "texts embedded (cache misses)", *[f"{r['cache_misses']:,}" for r in runs.values()]
    )
    table.add_row("memory items", *[f"{r['items']:,}" for r in runs.values()])
    table.add_section()
    names = list(dict.fromkeys(n for r in runs.values() for n in r["structures"]))
    for name in names:
        cells = []
        for r in runs.values():
            spent = r["structures"].get(name, 0.0)
            embed = r["embed"].get(name, 0.0)
            cells.append(f"{spent / r['seconds']:.0%} ({spent:.1f} s, emb {embed:.1f})")
        table.add_row(f"share: {name}", *cells)
    cells = []
    for r in runs.values():
        rest = r["seconds"] - sum(r["structures"].values())
        cells.append(f"{rest / r['seconds']:.0%} ({rest:.1f} s)")
    table.add_row("share: manager + records (rest)", *cells)
    console.print(table)
    console.print(
        "share = a structure's own time (write, end_session, invalidate; the ledger's "
        "resolve) / ingest time; 'emb' = seconds of it spent in MiniLM. Target >= 100 turns/s."
    )
    detail = Table(title="Seconds per method (exclusive), first and last run")
    detail.add_column("method")
    first, last = list(runs)[0], list(runs)[-1]
    detail.add_column(first, justify="right")
    detail.add_column(last, justify="right")
    for method in sorted(runs[first]["methods"], key=lambda m: -runs[first]["methods"][m]):
        detail.add_row(
            method,
            f"{runs[first]['methods'][method]:.2f}",
            f"{runs[last]['methods'].get(method, 0.0):.2f}",
        )
    console.print(detail)
    if args.profile:
        batch = batches[0]
        console.print(f"[dim]  profiling {batch} turns/write, pre-embedded, under cProfile ...[/]")
        profile = cProfile.Profile()
        run = ingest_run(lines, caches[batch], model, stores, batch, profile=profile)
        console.print(
            f"profiled run: {run['turns_per_s']:.1f} turns/s under cProfile "
            f"({run['seconds']:.1f} s)"
        )
        print_profile(profile, args.top)


def print_profile(profile: cProfile.Profile, top: int) -> None:
    """Print the top cumulative functions of memory_stores/, agentmem/ and the rest."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    entries = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        entries.append((cumulative, own, calls, filename, line, function))
    total = max(e[0] for e in entries)
    root = str(Path(__file__).resolve().parent.parent) + os.sep
    for title, keep, key in (
        ("memory_stores/ by cumulative time", "memory_stores" + os.sep, 0),
        ("agentmem/ by cumulative time", "agentmem" + os.sep, 0),
        ("everything by own time", "", 1),
    ):
        table = Table(title=f"cProfile, top {top}: {title} (profiled total {total:.1f} s)")
        for column in ("cumulative s", "own s", "calls", "function"):
            table.add_column(column, justify="left" if column == "function" else "right")
        chosen = [e for e in entries if keep == "" or e[3].startswith(root + keep)]
        for cumulative, own, calls, filename, line, function in sorted(
            chosen, key=lambda e: -e[key]
        )[:top]:
            where = filename.removeprefix(root)
            if "site-packages" in where:
                where = where.split("site-packages" + os.sep)[1]
            table.add_row(
                f"{cumulative:.2f}", f"{own:.2f}", f"{calls:,}", f"{where}:{line} {function}"
            )
        console.print(table)


# -- model-built memory --------------------------------------------------------------------


class SchemaTally:
    """A chat model wrapper that counts calls and tokens per answer schema (per builder)."""

    def __init__(self, inner: Any) -> None:
        from agentmem.prompts.extraction import FACTS_SCHEMA
        from agentmem.prompts.memo import MEMO_SCHEMA
        from agentmem.prompts.memtree import AGGREGATE_SCHEMA
        from agentmem.prompts.summary import SUMMARY_SCHEMA

        self.inner = inner
        self.name = inner.name
        self.labels = {
            id(FACTS_SCHEMA): "fact extraction (ledger + graph, shared)",
            id(AGGREGATE_SCHEMA): "memtree aggregation",
            id(SUMMARY_SCHEMA): "summary",
            id(MEMO_SCHEMA): "memo",
        }
        self.calls: dict[str, int] = defaultdict(int)
        self.prompt: dict[str, int] = defaultdict(int)
        self.completion: dict[str, int] = defaultdict(int)

    def complete(self, messages: Sequence[Any], *, schema: dict[str, Any] | None = None) -> Any:
        label = "no schema" if schema is None else self.labels.get(id(schema), "other schema")
        self.calls[label] += 1
        completion = self.inner.complete(messages, schema=schema)
        self.prompt[label] += completion.usage.prompt_tokens
        self.completion[label] += completion.usage.completion_tokens
        return completion

    def stream(self, messages: Sequence[Any]) -> Iterator[str]:
        self.calls["stream"] += 1
        return self.inner.stream(messages)


def cmd_model_builders(args: argparse.Namespace) -> None:
    """The ``model-builders`` sub-command."""
    from agentmem.models.llm import MeteredChatModel, RetryingChatModel
    from agentmem.models.openai_client import OpenAIChatModel
    from agentmem.testing import FakeOpenAIServer, schema_reply

    lines = dialogue(args.turns, seed=args.seed)
    stores = args.stores.split(",")
    cache = CachingEmbedder(MiniLMEmbedder(), capacity=1_000_000)
    cache.embed([line.text for line in lines] + [f"{x.speaker}: {x.text}" for x in lines])
    results = {}
    with FakeOpenAIServer(default_reply=schema_reply) as server:
        for batch in [int(b) for b in args.batches.split(",")]:
            metered = MeteredChatModel(
                RetryingChatModel(OpenAIChatModel("fake-chat", base_url=server.base_url))
            )
            tally = SchemaTally(metered)
            with tempfile.TemporaryDirectory(prefix="agentmem-model-") as tmp:
                components = open_memory(Path(tmp), cache, stores, model=tally)
                try:
                    seconds, _ = ingest(components, lines, batch=batch)
                    built = {
                        s.name: s.stats.as_dict()
                        for s in components.manager.stores
                        if hasattr(s, "stats")
                    }
                finally:
                    components.close()
            results[f"{batch} turns/write"] = (tally, metered, seconds, built)
    turns = len(lines)
    table = Table(
        title=f"Model-built memory: {turns} turns, {stores} + the fact ledger, "
        "FakeOpenAIServer(schema_reply) via the OpenAI client"
    )
    table.add_column("builder (by answer schema)")
    for label in results:
        table.add_column(f"{label}\ncalls/turn", justify="right")
        table.add_column("prompt tok/turn", justify="right")
        table.add_column("completion tok/turn", justify="right")
    labels = list(dict.fromkeys(k for tally, *_ in results.values() for k in tally.calls))
    for label in labels:
        cells = [label]
        for tally, *_ in results.values():
            cells += [
                f"{tally.calls.get(label, 0) / turns:.3f}",
                f"{tally.prompt.get(label, 0) / turns:.0f}",
                f"{tally.completion.get(label, 0) / turns:.1f}",
            ]
        table.add_row(*cells)
    table.add_section()
    cells = ["all (MeteredChatModel)"]
    for _, metered, *_ in results.values():
        cells += [
            f"{metered.calls / turns:.3f}",
            f"{metered.usage.prompt_tokens / turns:.0f}",
            f"{metered.usage.completion_tokens / turns:.1f}",
        ]
    table.add_row(*cells)
    console.print(table)
    for label, (_, metered, seconds, built) in results.items():
        console.print(
            f"{label}: {metered.calls} calls, {metered.failures} failed, "
            f"{turns / seconds:.1f} turns/s against the local fake; builders' own counts: "
            + "; ".join(f"{k} {v}" for k, v in built.items())
        )
    console.print("Target: <= 1 model call per turn, amortised.")


# -- footprint -----------------------------------------------------------------------------


def disk_split(folder: Path) -> tuple[float, float]:
    """Return the records database's and chromadb's size on disk in MB."""
    records = sum(folder_mb(p) for p in folder.glob("agentmem.sqlite*"))
    return records, folder_mb(folder / "chroma")


def cache_mb(cache: CachingEmbedder) -> float:
    """Return what the embedding cache holds, in MB (vectors, keys, array headers)."""
    entries = list(cache._cache.items())  # a benchmark may peek
    return sum(v.nbytes + sys.getsizeof(k) + 112 for k, v in entries) / 1e6


def cmd_footprint(args: argparse.Namespace) -> None:
    """The ``footprint`` sub-command."""
    lines = dialogue(args.turns, seed=args.seed)
    stores = args.stores.split(",")
    texts = list(dict.fromkeys([x.text for x in lines] + [f"{x.speaker}: {x.text}" for x in lines]))
    # The app's embedder with its default cache (20k texts), enlarged by the turn texts
    # embedded up front in large batches (as bench_stores does), so 10k turns take minutes.
    cache = CachingEmbedder(MiniLMEmbedder(batch_size=128), capacity=20_000 + len(texts))
    cache.warm()
    tick = time.perf_counter()
    cache.embed(texts)
    console.print(
        f"footprint of {len(lines):,} turns into {stores} + the fact ledger, "
        f"{args.batch} turns/write; {len(texts):,} turn texts embedded up front in "
        f"{time.perf_counter() - tick:.0f} s (other texts as they come); load {load_average()}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="agentmem-footprint-") as tmp:
        folder = Path(tmp)
        loaded = rss_mb()
        components = open_memory(folder, cache, stores)
        opened, opened_cache = rss_mb(), cache_mb(cache)
        last = [time.perf_counter(), 0]

        def checkpoint(done: int) -> None:
            now = time.perf_counter()
            records_mb, chroma_mb = disk_split(folder)
            rate = (done - last[1]) / (now - last[0])
            rows.append(
                (done, rss_mb(), peak_rss_mb(), cache_mb(cache), records_mb, chroma_mb, rate)
            )
            console.print(
                f"[dim]  {done:,} turns: RSS {rows[-1][1]:.0f} MB, records {records_mb:.1f} MB, "
                f"chroma {chroma_mb:.1f} MB, {rate:.1f} turns/s since the last line[/]"
            )
            last[:] = [time.perf_counter(), done]

        deadline = time.perf_counter() + args.max_minutes * 60 if args.max_minutes else None
        seconds, written = ingest(
            components,
            lines,
            batch=args.batch,
            checkpoint=checkpoint,
            every=args.every,
            deadline=deadline,
        )
        if written < len(lines):
            console.print(
                f"[yellow]stopped after {written:,} of {len(lines):,} turns: --max-minutes "
                f"{args.max_minutes} passed; per-10k figures are extrapolated[/]"
            )
            lines = lines[:written]
        counts = count_items(components.records, USER)
        components.close()
        records_mb, chroma_mb = disk_split(folder)
    table = Table(title=f"Footprint while ingesting {len(lines):,} turns ({seconds:.0f} s)")
    columns = ("turns", "RSS MB", "peak RSS MB", "embedding cache MB", "records db MB (+WAL)")
    for column in (*columns, "chroma MB", "turns/s since last row"):
        table.add_column(column, justify="right")
    for done, rss, peak, cached, rec, chroma, rate in rows:
        table.add_row(
            f"{done:,}",
            f"{rss:.0f}",
            f"{peak:.0f}",
            f"{cached:.0f}",
            f"{rec:.1f}",
            f"{chroma:.1f}",
            f"{rate:.1f}",
        )
    console.print(table)
    per = 10_000 / len(lines)
    done, final_rss, _, final_cache = rows[-1][:4] if rows else (0, rss_mb(), 0, cache_mb(cache))
    grown = (final_rss - opened) - (final_cache - opened_cache)
    console.print(
        f"RSS: {loaded:.0f} MB with MiniLM loaded and {opened_cache:.0f} MB of embeddings "
        f"cached, {opened:.0f} MB with the memory open, {final_rss:.0f} MB after "
        f"{len(lines):,} turns: +{grown * per:.0f} MB per 10k turns besides the embedding "
        f"cache (which grew {final_cache - opened_cache:.0f} MB; peak RSS {peak_rss_mb():.0f} MB)."
    )
    if len(rows) >= 2:
        first, end = rows[0], rows[-1]
        slope = ((end[1] - first[1]) - (end[3] - first[3])) / (end[0] - first[0]) * 10_000
        console.print(
            f"RSS slope between {first[0]:,} and {end[0]:,} turns: {slope:.0f} MB per 10k turns "
            "(cache growth excluded)."
        )
    console.print(
        f"Disk after close: records db {records_mb:.1f} MB + chroma {chroma_mb:.1f} MB -> "
        f"{(records_mb + chroma_mb) * per:.0f} MB per 10k turns "
        f"({records_mb * per:.0f} records / {chroma_mb * per:.0f} chroma); "
        f"{sum(n for n, _ in counts.values()):,} memory items "
        f"({sum(n for n, _ in counts.values()) * per:,.0f} per 10k turns)."
    )


# -- command line --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run one sub-command."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    recall = commands.add_parser("recall", help="recall latency and recall@10 at scale")
    recall.add_argument("--items", type=int, default=100_000, help="the large user's items")
    recall.add_argument("--users", type=int, default=100)
    recall.add_argument("--other-turns", type=int, default=60, help="turns of each other user")
    recall.add_argument("--stores", default="turns,all")
    recall.add_argument("--no-facts", action="store_true", help="leave out the fact ledger")
    recall.add_argument(
        "--configs",
        default="all,turns",
        help="configurations measured on the populated data (structures joined by '+')",
    )
    recall.add_argument("--queries", type=int, default=200)
    recall.add_argument("--warmup", type=int, default=10)
    recall.add_argument("--ef", default="200,400,800", help="ef_search values to probe")
    recall.add_argument("--spread", type=float, default=0.6, help="ClusteredEmbedder noise")
    recall.add_argument("--populate-batch", type=int, default=400)
    recall.add_argument("--sweep-every", type=int, default=4000, help="turns between sweeps")
    recall.add_argument("--data", default="/tmp/agentmem-bench-scale")
    recall.add_argument("--rebuild", action="store_true")
    recall.set_defaults(run=cmd_recall)

    ingest_parser = commands.add_parser("ingest", help="ingest throughput, time shares")
    ingest_parser.add_argument("--turns", type=int, default=2000)
    ingest_parser.add_argument("--stores", default="all")
    ingest_parser.add_argument("--batches", default="2,20", help="turns per manager.write")
    ingest_parser.add_argument("--profile", action="store_true")
    ingest_parser.add_argument("--top", type=int, default=10)
    ingest_parser.set_defaults(run=cmd_ingest)

    model = commands.add_parser("model-builders", help="model calls and tokens per turn")
    model.add_argument("--turns", type=int, default=300)
    model.add_argument("--stores", default="all")
    model.add_argument("--batches", default="2,20")
    model.set_defaults(run=cmd_model_builders)

    footprint = commands.add_parser("footprint", help="RSS and disk per 10k turns")
    footprint.add_argument("--turns", type=int, default=10_000)
    footprint.add_argument("--stores", default="all")
    footprint.add_argument("--batch", type=int, default=20)
    footprint.add_argument("--every", type=int, default=1000)
    footprint.add_argument("--max-minutes", type=float, default=20.0, help="0: no limit")
    footprint.set_defaults(run=cmd_footprint)

    hidden = commands.add_parser("_probe")  # run_probe's child process
    hidden.add_argument("--data", required=True)
    hidden.add_argument("--ef", type=int, required=True)
    hidden.add_argument("--collections", default=PROBED)
    hidden.set_defaults(run=probe)

    for sub in (recall, ingest_parser, model, footprint):
        sub.add_argument("--seed", type=int, default=7)
    for sub in (recall, ingest_parser):
        # Each piece in front of chromadb can be turned off, to measure what it buys.
        sub.add_argument(
            "--exact-limit", type=int, default=None, help="VectorIndex.EXACT_LIMIT (0: HNSW only)"
        )
        sub.add_argument(
            "--write-through",
            action="store_true",
            help="write every upsert to chromadb at once (VectorIndex.UPSERT_BATCH = 1)",
        )
    args = parser.parse_args(argv)
    if getattr(args, "exact_limit", None) is not None or getattr(args, "write_through", False):
        from agentmem.storage.vectors import VectorIndex

        if args.exact_limit is not None:
            VectorIndex.EXACT_LIMIT = args.exact_limit
        if args.write_through:
            VectorIndex.UPSERT_BATCH = 1
    started = time.perf_counter()
    if args.command != "_probe":
        console.print(f"[dim]{library_state()}; {os.cpu_count()} CPUs; load {load_average()}[/]")
    args.run(args)
    if args.command != "_probe":
        console.print(
            f"[dim]done in {time.perf_counter() - started:.0f} s; load {load_average()}[/]"
        )


if __name__ == "__main__":
    main()
