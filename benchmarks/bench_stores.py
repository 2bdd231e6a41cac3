"""Per-structure write throughput and recall latency on a synthetic multi-session history.

Usage:
    HF_HUB_OFFLINE=1 python benchmarks/bench_stores.py            # 10,000 turns
    HF_HUB_OFFLINE=1 python benchmarks/bench_stores.py --turns 2000 --stores turns,memtree

Every structure gets fresh backends (SQLite + embedded chromadb in a temporary folder) and
the same turns, written a session (20 turns) at a time, with the session ended after each
(so summaries and memos consolidate as they would in use). Turn texts are embedded once up
front into a shared cache, as they are in the app where every structure shares one
``CachingEmbedder``; the embedding cost is reported on its own line, so "write turns/s" is
the structure's own cost. Recall latency is the structure's ``retrieve`` for 200 queries
with the query embedding given (the manager embeds a query once for all structures).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agentmem.ledger.extraction import CachingExtractor, RuleExtractor  # noqa: E402
from agentmem.ledger.facts import FactLedger  # noqa: E402
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder  # noqa: E402
from agentmem.protocols import Consolidating, MemoryStore, StoreContext  # noqa: E402
from agentmem.storage.records import Records  # noqa: E402
from agentmem.storage.vectors import VectorIndex  # noqa: E402
from agentmem.types import Query, Scope  # noqa: E402

PEOPLE = ["Ana", "Tom", "Maya", "Leo", "Rita", "Omar", "Ivy", "Ben"]
PLACES = ["Porto", "Denver", "Galway", "Reno", "Lisbon", "Austin", "Bruges", "Oslo"]
JOBS = ["nurse", "teacher", "barista", "librarian", "electrician", "engineer", "chef", "tutor"]
HOBBIES = ["chess", "pottery", "rock climbing", "baking", "birdwatching", "running", "guitar"]
PETS = ["dog", "cat", "parrot", "rabbit"]
TEMPLATES = [
    "I live in {place} now.",
    "We moved to {place} last month.",
    "I work as a {job} these days.",
    "My shift as a {job} ran late again.",
    "I've been really into {hobby} lately.",
    "My sister {person} lives in {place}.",
    "My friend {person} works as a {job}.",
    "I adopted a {pet} named {person}.",
    "We watched a movie about {hobby} last night.",
    "The weather in {place} was terrible this week.",
    "Oh really?",
    "Sounds fun.",
    "What did you have for lunch today?",
    "I went for a long walk by the river with {person}.",
]
QUESTIONS = [
    "Where do I live?",
    "What is my job?",
    "What hobby am I into?",
    "Where does my sister live?",
    "What pet did I adopt?",
    "What did we watch last night?",
]


def synthetic_history(turns: int, seed: int = 7) -> list[tuple[str, str]]:
    """Return (speaker, text) pairs of a long dialogue between Sam and Alex."""
    rng = random.Random(seed)
    lines = []
    for i in range(turns):
        template = rng.choice(TEMPLATES)
        text = template.format(
            place=rng.choice(PLACES),
            job=rng.choice(JOBS),
            hobby=rng.choice(HOBBIES),
            person=rng.choice(PEOPLE),
            pet=rng.choice(PETS),
        )
        lines.append(("Sam" if i % 2 == 0 else "Alex", text))
    return lines


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def bench_store(
    name: str,
    history: list[tuple[str, str]],
    embedder: CachingEmbedder,
    session_size: int,
    queries: int,
) -> dict[str, float]:
    """Write ``history`` into a fresh instance of structure ``name``; time writes and recalls."""
    from agentmem.factory import store_factories

    with tempfile.TemporaryDirectory() as folder:
        records = Records(Path(folder) / "records.db")
        vectors = VectorIndex(embedder, path=Path(folder) / "chroma")
        context = StoreContext(
            records, vectors, embedder, extractor=CachingExtractor(RuleExtractor())
        )
        store: MemoryStore = (
            FactLedger(context) if name == "facts" else store_factories()[name](context)
        )
        start = datetime(2023, 1, 1)
        write_seconds = 0.0
        for offset in range(0, len(history), session_size):
            session = records.start_session("sam", session_id=f"s{offset}")
            specs = [
                dict(
                    user_id="sam",
                    session_id=session,
                    speaker=speaker,
                    role="user",
                    text=text,
                    timestamp=start + timedelta(days=offset // session_size, seconds=i),
                )
                for i, (speaker, text) in enumerate(history[offset : offset + session_size])
            ]
            turns = records.add_turns(specs)
            tick = time.perf_counter()
            store.write(turns)
            if isinstance(store, Consolidating):
                store.end_session("sam", session)
            write_seconds += time.perf_counter() - tick
        rng = random.Random(3)
        question_vectors = embedder.embed(QUESTIONS)
        latencies = []
        for _ in range(queries):
            index = rng.randrange(len(QUESTIONS))
            query = Query(QUESTIONS[index], Scope("sam"), embedding=question_vectors[index])
            tick = time.perf_counter()
            store.retrieve(query, 10)
            latencies.append((time.perf_counter() - tick) * 1000)
        items = len(records.store_items(getattr(store, "name", name), "sam", current_only=False))
        records.close()
    return {
        "turns_per_s": len(history) / write_seconds,
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 95),
        "items": items,
    }


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--stores", default="turns,facts,memtree,summary,memo,graph")
    parser.add_argument("--session-size", type=int, default=20)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    console = Console()
    history = synthetic_history(args.turns)
    embedder = CachingEmbedder(MiniLMEmbedder(), capacity=10 * args.turns)
    embedder.warm()
    tick = time.perf_counter()
    texts = list(
        dict.fromkeys(t for _, t in history) | dict.fromkeys(f"{s}: {t}" for s, t in history)
    )
    embedder.embed(texts)
    embed_seconds = time.perf_counter() - tick
    console.print(
        f"{args.turns:,} synthetic turns, {len(texts):,} distinct texts to embed "
        f"(plain and 'speaker: text'); embedding them took {embed_seconds:.1f} s "
        f"({len(texts) / embed_seconds:,.0f} texts/s) — shared by every structure."
    )
    table = Table(title=f"Memory structures on a {args.turns:,}-turn history (one user)")
    for column in ("structure", "write turns/s", "items", "retrieve p50 ms", "retrieve p95 ms"):
        table.add_column(column, justify="right" if column != "structure" else "left")
    for name in [s.strip() for s in args.stores.split(",") if s.strip()]:
        console.print(f"[dim]running {name} ...[/]")
        result = bench_store(name, history, embedder, args.session_size, args.queries)
        table.add_row(
            name,
            f"{result['turns_per_s']:,.0f}",
            f"{result['items']:,.0f}",
            f"{result['p50']:.1f}",
            f"{result['p95']:.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
