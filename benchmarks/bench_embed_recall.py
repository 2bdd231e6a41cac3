"""Benchmark the embedder and the per-user vector layout agentmem uses.

(a) MiniLM throughput through agentmem's embedder: sentences per second at two batch
    sizes, and the latency of embedding one sentence.
(b) Recall for ONE user among many, k = 10, with the same data laid out two ways:
    (i)  agentmem's layout: :class:`agentmem.storage.vectors.VectorIndex`, one collection per user;
    (ii) one shared chromadb collection, queried with ``where={"user_id": ...}``.
    Both are measured in the same run on the same vectors, with the same HNSW settings,
    and compared against exact brute-force search over that user's vectors.

The stored items are random unit vectors (numpy, seeded, 384 dimensions) rather than
MiniLM embeddings, so that 100,000 inserts fit in minutes on two cores.

Run::

    HF_HUB_OFFLINE=1 python benchmarks/bench_embed_recall.py              # 10k and 100k
    HF_HUB_OFFLINE=1 python benchmarks/bench_embed_recall.py --quick      # a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

DIMENSION = 384
K = 10
STORE = "bench"
#: The same HNSW settings for both layouts (agentmem's defaults), so only the layout differs.
HNSW = {"space": "cosine", "ef_construction": 200, "ef_search": 100}

console = Console()
if not console.is_terminal:  # piped output: wide enough for the tables, not 80 columns
    console = Console(width=120)


# -- (a) embedding throughput --------------------------------------------------------------

SUBJECTS = ["My sister", "Our neighbour", "The new manager", "My old friend Tom", "I", "We"]
VERBS = ["adopted", "painted", "visited", "cooked", "forgot about", "talked about", "sold"]
OBJECTS = [
    "a small beagle",
    "the blue kitchen",
    "a museum downtown",
    "a spicy lentil soup",
    "the quarterly report",
    "her trip to Lisbon",
    "an old bicycle",
]
TAILS = [
    "",
    " last weekend",
    " after the meeting on Tuesday",
    " because it was raining all day",
    " and then we went home early to watch a film together",
]


def synthetic_sentences(count: int, seed: int) -> list[str]:
    """Return ``count`` short varied sentences, the same for the same seed."""
    pick = random.Random(seed).choice
    return [
        f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)}{pick(TAILS)} (note {n})."
        for n in range(count)
    ]


def percentiles(samples_ms: Sequence[float]) -> tuple[float, float]:
    """Return the p50 and p95 of latencies in milliseconds."""
    p50, p95 = np.percentile(np.asarray(samples_ms), [50, 95])
    return float(p50), float(p95)


def bench_embeddings(sentence_count: int, single_count: int, seed: int) -> Table:
    """Measure MiniLM throughput and single-sentence latency; return a table."""
    from agentmem.models.embeddings import MiniLMEmbedder

    started = time.perf_counter()
    import sentence_transformers  # noqa: F401  (timed apart from the model load)

    import_s = time.perf_counter() - started
    embedder = MiniLMEmbedder()
    started = time.perf_counter()
    embedder.warm()
    load_s = time.perf_counter() - started
    sentences = synthetic_sentences(sentence_count, seed)
    embedder.embed(sentences[:64])  # the first forward passes are slower

    table = Table(title=f"(a) MiniLM embedding, {sentence_count:,} synthetic sentences")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("import sentence_transformers", f"{import_s:.1f} s")
    table.add_row("model load", f"{load_s * 1000:.0f} ms")
    for batch_size in (32, 128):
        embedder.batch_size = batch_size
        started = time.perf_counter()
        vectors = embedder.embed(sentences)
        elapsed = time.perf_counter() - started
        assert vectors.shape == (sentence_count, DIMENSION)
        table.add_row(
            f"throughput, batch {batch_size}", f"{sentence_count / elapsed:,.0f} sentences/s"
        )

    latencies = []
    for sentence in sentences[:single_count]:
        started = time.perf_counter()
        embedder.embed([sentence])
        latencies.append((time.perf_counter() - started) * 1000)
    p50, p95 = percentiles(latencies)
    table.add_row(f"one sentence, p50 / p95 ({single_count} calls)", f"{p50:.1f} / {p95:.1f} ms")
    return table


# -- (b) recall for one user among many ----------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """``size`` unit vectors spread evenly over ``users`` users, in arrival order."""

    vectors: np.ndarray  # (size, DIMENSION) float32, unit rows
    owners: np.ndarray  # (size,) user index of each vector
    user_names: list[str]
    measured: int  # the user index whose recall is measured
    queries: np.ndarray  # (queries, DIMENSION) unit rows

    @property
    def size(self) -> int:
        return len(self.vectors)

    def ids(self) -> list[str]:
        return [f"{self.user_names[o]}-{n}" for n, o in enumerate(self.owners)]


def unit_rows(values: np.ndarray) -> np.ndarray:
    return (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32)


def make_dataset(size: int, users: int, query_count: int, seed: int) -> Dataset:
    """Build random unit vectors, each user owning the same share, interleaved in time.

    Queries are noisy copies of the measured user's own vectors (noise as large as the
    vector), so each has a clear nearest item and a random-looking rest of the top 10.
    """
    rng = np.random.default_rng(seed)
    vectors = unit_rows(rng.standard_normal((size, DIMENSION), dtype=np.float32))
    owners = rng.permutation(np.arange(size) % users)
    measured = users // 2
    mine = vectors[owners == measured]
    picks = rng.integers(0, len(mine), query_count)
    noise = unit_rows(rng.standard_normal((query_count, DIMENSION), dtype=np.float32))
    queries = unit_rows(mine[picks] + noise)
    names = [f"user-{n:03d}" for n in range(users)]
    return Dataset(vectors, owners, names, measured, queries)


def exact_top_k(dataset: Dataset) -> list[set[str]]:
    """Return the true top-k ids of each query among the measured user's vectors."""
    ids = np.asarray(dataset.ids())
    mask = dataset.owners == dataset.measured
    mine, my_ids = dataset.vectors[mask], ids[mask]
    scores = dataset.queries @ mine.T
    top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
    return [set(my_ids[row]) for row in top]


def batches(count: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def insert_per_user(index: Any, dataset: Dataset, label: str) -> float:
    """Fill agentmem's VectorIndex, one collection per user; return inserts per second."""
    ids = np.asarray(dataset.ids())
    max_batch = index.client.get_max_batch_size()
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task(f"{label}: per-user collections", total=dataset.size)
        for user, name in enumerate(dataset.user_names):
            mask = dataset.owners == user
            user_ids, user_vectors = ids[mask], dataset.vectors[mask]
            for part in batches(len(user_ids), max_batch):
                count = len(user_ids[part])
                index.upsert(
                    STORE,
                    name,
                    list(user_ids[part]),
                    user_vectors[part],
                    [{"current": True}] * count,
                )
                bar.advance(task, count)
    return dataset.size / (time.perf_counter() - started)


def insert_shared(collection: Any, client: Any, dataset: Dataset, label: str) -> float:
    """Fill one shared collection tagged with user_id; return inserts per second."""
    ids = dataset.ids()
    names = dataset.user_names
    max_batch = client.get_max_batch_size()
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task(f"{label}: shared collection", total=dataset.size)
        for part in batches(dataset.size, max_batch):
            collection.add(
                ids=ids[part],
                embeddings=dataset.vectors[part],
                metadatas=[
                    {"user_id": names[o], "current": True} for o in dataset.owners[part].tolist()
                ],
            )
            bar.advance(task, part.stop - part.start)
    return dataset.size / (time.perf_counter() - started)


def measure(
    search: Callable[[np.ndarray], list[str]], dataset: Dataset
) -> tuple[float, float, float]:
    """Time ``search`` on every query; return p50 ms, p95 ms and mean recall@k."""
    truth = exact_top_k(dataset)
    for query in dataset.queries[:5]:  # warm caches and the index in memory
        search(query)
    latencies, recalls = [], []
    for query, expected in zip(dataset.queries, truth, strict=True):
        started = time.perf_counter()
        found = search(query)
        latencies.append((time.perf_counter() - started) * 1000)
        recalls.append(len(expected.intersection(found)) / K)
    p50, p95 = percentiles(latencies)
    return p50, p95, float(np.mean(recalls))


def bench_recall(size: int, users: int, query_count: int, seed: int, root: Path) -> list[list[str]]:
    """Run both layouts on one dataset; return table rows."""
    import chromadb
    from chromadb.config import Settings

    from agentmem.models.embeddings import MiniLMEmbedder
    from agentmem.storage.vectors import AgentMemEmbeddingFunction, VectorIndex

    dataset = make_dataset(size, users, query_count, seed)
    user = dataset.user_names[dataset.measured]
    user_items = int((dataset.owners == dataset.measured).sum())
    label = f"{size:,}"

    # (i) agentmem's layout. The embedder is never called: vectors are given.
    index = VectorIndex(MiniLMEmbedder(), path=root / f"per-user-{size}", hnsw=HNSW)
    per_user_rate = insert_per_user(index, dataset, label)
    per_user = measure(lambda q: [h.id for h in index.query(STORE, user, q, K)], dataset)
    collections = len(index.collection_names())

    # (ii) one shared collection with the same HNSW settings as agentmem's.
    client = chromadb.PersistentClient(
        path=str(root / f"shared-{size}"), settings=Settings(anonymized_telemetry=False)
    )
    shared = client.create_collection(
        "shared",
        embedding_function=AgentMemEmbeddingFunction(),  # never called; not chromadb's default
        configuration={"hnsw": dict(HNSW)},
    )
    shared_rate = insert_shared(shared, client, dataset, label)

    def shared_search(query: np.ndarray) -> list[str]:
        result = shared.query(
            query_embeddings=query.reshape(1, -1),
            n_results=K,
            where={"user_id": user},
            include=["metadatas", "distances"],
        )
        return list(result["ids"][0])

    filtered = measure(shared_search, dataset)
    assert shared.count() == size == sum(index.count(STORE, name) for name in dataset.user_names)

    rows = []
    for layout, count, rate, (p50, p95, recall) in (
        ("(i) per-user (agentmem)", collections, per_user_rate, per_user),
        ("(ii) shared + where user_id", 1, shared_rate, filtered),
    ):
        rows.append(
            [
                label,
                layout,
                str(count),
                f"{user_items:,}",
                f"{rate:,.0f}/s",
                f"{p50:.1f} / {p95:.1f}",
                f"{recall:.3f}",
            ]
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print rich tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="stored items, comma-separated")
    parser.add_argument("--users", type=int, default=100, help="users the items are spread over")
    parser.add_argument("--queries", type=int, default=200, help="recall queries per layout")
    parser.add_argument("--sentences", type=int, default=1000, help="sentences to embed in (a)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.queries, args.sentences = "2000,5000", 50, 200
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if args.users < 1 or any(size < args.users * K for size in sizes):
        parser.error(f"each size needs at least {K} items per user")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import chromadb

    started = time.perf_counter()
    console.print(
        f"chromadb {chromadb.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    console.print(bench_embeddings(args.sentences, min(200, args.sentences), args.seed))

    table = Table(title=f"(b) recall for one user among {args.users}, k = {K}")
    for column in ("stored items", "layout", "collections", "user's items"):
        table.add_column(column, justify="right" if column != "layout" else "left")
    table.add_column("insert")
    table.add_column("query p50 / p95 ms", justify="right")
    table.add_column(f"recall@{K}", justify="right")
    with tempfile.TemporaryDirectory(prefix="agentmem-bench-", ignore_cleanup_errors=True) as tmp:
        for size in sizes:
            for row in bench_recall(size, args.users, args.queries, args.seed, Path(tmp)):
                table.add_row(*row)
            table.add_section()
    console.print(table)
    console.print(
        f"Data: random unit vectors (numpy, seed {args.seed}, {DIMENSION} dimensions), not MiniLM "
        "embeddings, so that 100k inserts are feasible. Both layouts hold the same vectors: "
        f"every size is spread evenly over {args.users} users (the measured user owns "
        f"1/{args.users} of it in both), in random arrival order. Queries "
        f"({args.queries} per layout) are the measured user's own vectors plus equal-sized "
        "noise. HNSW for both: "
        "space cosine, ef_construction 200, ef_search 100. Recall is against exact numpy "
        "search over the measured user's vectors. Latency includes agentmem's count() call "
        "in layout (i). Stored under a temporary folder, removed at the end."
    )
    console.print(f"total time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
