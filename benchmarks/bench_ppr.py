"""Benchmark the graph store's Personalized PageRank engine, and the store end to end.

(a) PageRank on a synthetic scale-free graph of 100,000 nodes and ~500,000 edges, built
    directly in :class:`agentmem.stores.graph.PersonalizedPageRank` (embedding that many
    items through the store would take hours): the one-off build, p50/p95 per query over
    100 queries with 1-5 seed nodes, and the cost of the first query after a small write
    (the change matrix is compiled, the main matrix is not rebuilt).
(b) The same queries through ``networkx.pagerank(personalization=...)`` on a 10,000-node
    graph of the same shape, beside the engine on that graph, with the largest difference
    between their answers.
    On a shared machine the wall-clock times include waiting for a core; the CPU time of
    the query (``time.process_time``) is printed beside them.
(c) :class:`agentmem.stores.graph.GraphStore` end to end with the real MiniLM, SQLite and a
    persistent chromadb in a temporary folder: write throughput (turns/s) over synthetic
    dialogue turns, then retrieval p50/p95.

Run::

    HF_HUB_OFFLINE=1 python benchmarks/bench_ppr.py            # 100k nodes, 1,000 turns
    HF_HUB_OFFLINE=1 python benchmarks/bench_ppr.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import networkx as nx
import numpy as np
from rich.console import Console
from rich.table import Table

from agentmem.protocols import Embedder
from agentmem.stores.graph import PersonalizedPageRank

console = Console()
if not console.is_terminal:  # piped output: wide enough for the tables, not 80 columns
    console = Console(width=120)


def percentiles(samples_ms: Sequence[float]) -> tuple[float, float]:
    """Return the p50 and p95 of ``samples_ms``."""
    return float(np.percentile(samples_ms, 50)), float(np.percentile(samples_ms, 95))


def scale_free_edges(nodes: int, edges: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``edges`` undirected edges whose endpoints follow a power law (Chung-Lu style).

    One endpoint is drawn in proportion to a Pareto weight (hubs), the other uniformly,
    like entities (hubs) linked to passages; self-loops are dropped, repeats kept (they
    add weight, as repeated facts do).
    """
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.5, nodes) + 1.0
    weights /= weights.sum()
    heads = rng.choice(nodes, edges, p=weights)
    tails = rng.integers(0, nodes, edges)
    keep = heads != tails
    return heads[keep], tails[keep]


def seed_sets(nodes: int, count: int, seed: int) -> list[dict[int, float]]:
    """Return ``count`` restart sets of 1-5 random nodes with random weights."""
    rng = np.random.default_rng(seed)
    return [
        {int(n): float(rng.random()) + 0.1 for n in rng.choice(nodes, rng.integers(1, 6))}
        for _ in range(count)
    ]


def timed(run: Callable[[], object], repeats: int = 1) -> float:
    """Return the milliseconds of one call of ``run`` (the best of ``repeats``)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, (time.perf_counter() - started) * 1000)
    return best


# -- (a) and (b): the engine ------------------------------------------------------------------


def bench_engine(nodes: int, edges: int, queries: int, seed: int) -> dict[str, float]:
    """Build the engine on a synthetic graph and time its queries."""
    heads, tails = scale_free_edges(nodes, edges, seed)
    engine = PersonalizedPageRank()
    started = time.perf_counter()
    engine.add_nodes(range(nodes))
    engine.add_weights(heads, tails, np.ones(len(heads)))
    engine.compile()
    build_ms = (time.perf_counter() - started) * 1000
    seeds = seed_sets(nodes, queries, seed + 1)
    engine.run(seeds[0])  # warm caches
    samples, cpu, iterations = [], [], []
    for restart in seeds:
        started = time.process_time()
        samples.append(timed(lambda restart=restart: engine.run(restart)))
        cpu.append((time.process_time() - started) * 1000)
        iterations.append(engine.stats.iterations)
    # A write between queries: 50 new edges and 50 withdrawn ones, as deltas.
    rng = np.random.default_rng(seed + 2)
    for _ in range(50):
        engine.add_weight(int(rng.integers(nodes)), int(rng.integers(nodes)), 1.0)
    for head, tail in zip(heads[:50], tails[:50], strict=True):
        engine.add_weight(int(head), int(tail), -1.0)
    folds = engine.stats.folds
    after_write = timed(lambda: engine.run(seeds[0]))
    p50, p95 = percentiles(samples)
    return {
        "nodes": nodes,
        "edges": len(heads),
        "build_ms": build_ms,
        "p50": p50,
        "p95": p95,
        "cpu_p50": percentiles(cpu)[0],
        "iterations": float(np.mean(iterations)),
        "after_write": after_write,
        "rebuilt": float(engine.stats.folds - folds),
    }


def bench_networkx(nodes: int, edges: int, queries: int, seed: int) -> dict[str, float]:
    """Time networkx's personalized PageRank beside the engine on the same graph."""
    heads, tails = scale_free_edges(nodes, edges, seed)
    graph = nx.Graph()
    graph.add_nodes_from(range(nodes))
    for head, tail in zip(heads.tolist(), tails.tolist(), strict=True):
        if graph.has_edge(head, tail):
            graph.edges[head, tail]["weight"] += 1.0
        else:
            graph.add_edge(head, tail, weight=1.0)
    # networkx stops when the L1 change is below nodes * tol; 1e-6 / nodes asks it for the
    # L1 precision the engine gives with its default tol of 1e-6.
    nx_tol = 1e-6 / nodes
    engine = PersonalizedPageRank()
    engine.add_nodes(range(nodes))
    engine.add_weights(heads, tails, np.ones(len(heads)))
    ours, theirs, difference = [], [], 0.0
    for restart in seed_sets(nodes, queries, seed + 1):
        ours.append(timed(lambda restart=restart: engine.run(restart)))
        started = time.perf_counter()
        reference = nx.pagerank(graph, alpha=0.5, personalization=restart, tol=nx_tol)
        theirs.append((time.perf_counter() - started) * 1000)
        expected = np.array([reference[n] for n in range(nodes)])
        difference = max(difference, float(np.abs(engine.run(restart) - expected).sum()))
    ours_p50, ours_p95 = percentiles(ours)
    nx_p50, nx_p95 = percentiles(theirs)
    return {
        "nodes": nodes,
        "edges": graph.number_of_edges(),
        "ours_p50": ours_p50,
        "ours_p95": ours_p95,
        "nx_p50": nx_p50,
        "nx_p95": nx_p95,
        "difference": difference,
    }


# -- (c): the store end to end ----------------------------------------------------------------

NAMES = "Ana Tom Rita Sam Leo Mia Omar Nina Ivan Zoe Kai Lena Hugo Ines Raj Eva".split()
CITIES = "Porto Lisbon Denver Austin Kyoto Oslo Lyon Quito Perth Cork Graz Bergen".split()
JOBS = "nurse teacher baker pilot chef plumber lawyer dentist".split()
HOBBIES = "chess pottery climbing salsa fishing knitting surfing baking".split()
EVENTS = "jazz festival|book fair|food market|film week|marathon|wine fair".split("|")
MONTHS = "January March May June August October December".split()
TEMPLATES = (
    "My friend {name} lives in {city}.",
    "{name} works as a {job} these days.",
    "{city} hosts a {event} every {month}.",
    "I went to {city} with {name} last weekend.",
    "I have been really into {hobby} lately.",
    "My cousin {name} just moved to {city}.",
    "{name} is into {hobby} now.",
    "Honestly the weather was awful all week.",
    "We talked about {name}'s new job for hours.",
    "Do you think {name} would like the {event}?",
)


def synthetic_turns(count: int, seed: int) -> list[str]:
    """Return ``count`` dialogue lines full of people, places, jobs and hobbies."""
    pick = random.Random(seed).choice
    return [
        pick(TEMPLATES).format(
            name=pick(NAMES),
            city=pick(CITIES),
            job=pick(JOBS),
            hobby=pick(HOBBIES),
            event=pick(EVENTS),
            month=pick(MONTHS),
        )
        + f" (day {n})"
        for n in range(count)
    ]


class MeteredEmbedder:
    """Counts the texts an embedder computes and the seconds it spends (the model's share)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.texts = 0
        self.seconds = 0.0

    @property
    def dimension(self) -> int:
        """Return the inner embedder's dimension."""
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed with the inner embedder, counting."""
        started = time.perf_counter()
        vectors = self.inner.embed(texts)
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        return vectors


def bench_store(turns: int, batch: int, queries: int, seed: int) -> dict[str, float]:
    """Write synthetic turns through the store with the real MiniLM; time writes and reads."""
    from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder
    from agentmem.protocols import StoreContext
    from agentmem.storage.records import Records
    from agentmem.storage.vectors import VectorIndex
    from agentmem.stores.graph import GraphStore
    from agentmem.types import Query, Scope

    embedder = MiniLMEmbedder()
    embedder.warm()
    lines = synthetic_turns(turns, seed)
    questions = [f"What is there to do where {name} lives?" for name in NAMES] + [
        f"What does {name} do for a living?" for name in NAMES
    ]
    with tempfile.TemporaryDirectory() as folder:
        records = Records(Path(folder) / "records.db")
        metered = MeteredEmbedder(embedder)
        context = StoreContext(
            records,
            VectorIndex(embedder, path=Path(folder) / "chroma"),
            CachingEmbedder(metered),
        )
        store = GraphStore(context)
        start = datetime(2024, 1, 1)
        session = records.start_session("bench", started_at=start)
        stored = records.add_turns(
            [
                dict(
                    user_id="bench",
                    session_id=session,
                    speaker="user",
                    role="user",
                    text=line,
                    timestamp=start + timedelta(minutes=n),
                )
                for n, line in enumerate(lines)
            ]
        )
        started = time.perf_counter()
        for offset in range(0, len(stored), batch):
            store.write(stored[offset : offset + batch])
        write_s = time.perf_counter() - started
        model_s, texts = metered.seconds, metered.texts
        vectors = context.embedder.embed(questions)
        samples = []
        for n in range(queries):
            query = Query(
                questions[n % len(questions)],
                Scope("bench"),
                embedding=vectors[n % len(questions)],
            )
            samples.append(timed(lambda query=query: store.retrieve(query, 10)))
        state = store.user_graph("bench")
        nodes, edges = state.graph.number_of_nodes(), state.graph.number_of_edges()
        records.close()
    p50, p95 = percentiles(samples)
    return {
        "turns": turns,
        "batch": batch,
        "turns_per_s": turns / write_s,
        "texts_per_turn": texts / turns,
        "model_share": model_s / write_s,
        "store_ms_per_turn": (write_s - model_s) * 1000 / turns,
        "p50": p50,
        "p95": p95,
        "nodes": nodes,
        "edges": edges,
    }


# -- report -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=500_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--nx-nodes", type=int, default=10_000)
    parser.add_argument("--nx-queries", type=int, default=10)
    parser.add_argument("--turns", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=2, help="turns per store.write call")
    parser.add_argument("--store-queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.edges, args.queries = 5_000, 25_000, 20
        args.nx_nodes, args.nx_queries, args.turns, args.store_queries = 1_000, 3, 60, 10
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console.print(
        f"[bold]PPR benchmark[/] on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )

    engine = bench_engine(args.nodes, args.edges, args.queries, args.seed)
    table = Table(title=f"PersonalizedPageRank, damping 0.5, tol 1e-6 ({args.queries} queries)")
    for column in ("nodes", "edges", "build ms", "p50 ms", "p95 ms", "CPU p50 ms", "iterations"):
        table.add_column(column, justify="right")
    table.add_column("first query after a write", justify="right")
    table.add_row(
        f"{engine['nodes']:,}",
        f"{engine['edges']:,}",
        f"{engine['build_ms']:.0f}",
        f"{engine['p50']:.1f}",
        f"{engine['p95']:.1f}",
        f"{engine['cpu_p50']:.1f}",
        f"{engine['iterations']:.1f}",
        f"{engine['after_write']:.1f} ms, {engine['rebuilt']:.0f} full rebuilds",
    )
    console.print(table)

    versus = bench_networkx(args.nx_nodes, args.nx_nodes * 5, args.nx_queries, args.seed)
    table = Table(title=f"Against networkx.pagerank on {versus['nodes']:,} nodes (L1 tol 1e-6)")
    for column in ("implementation", "edges", "p50 ms", "p95 ms"):
        table.add_column(column, justify="right")
    table.add_row(
        "PersonalizedPageRank",
        f"{versus['edges']:,}",
        f"{versus['ours_p50']:.2f}",
        f"{versus['ours_p95']:.2f}",
    )
    table.add_row(
        "networkx.pagerank",
        f"{versus['edges']:,}",
        f"{versus['nx_p50']:.1f}",
        f"{versus['nx_p95']:.1f}",
    )
    console.print(table)
    console.print(f"largest L1 difference between the two: {versus['difference']:.2e}")

    store = bench_store(args.turns, args.batch, args.store_queries, args.seed)
    title = f"GraphStore end to end: {store['turns']:,} turns, {store['batch']} per write"
    table = Table(title=f"{title} (MiniLM, SQLite, chromadb)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in (
        ("graph nodes / edges", f"{store['nodes']:,} / {store['edges']:,}"),
        ("write throughput", f"{store['turns_per_s']:.1f} turns/s"),
        ("texts embedded per turn", f"{store['texts_per_turn']:.2f}"),
        ("MiniLM's share of write time", f"{store['model_share']:.0%}"),
        ("store time per turn without MiniLM", f"{store['store_ms_per_turn']:.1f} ms"),
        ("retrieve p50 / p95 (k=10)", f"{store['p50']:.1f} / {store['p95']:.1f} ms"),
    ):
        table.add_row(label, value)
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
