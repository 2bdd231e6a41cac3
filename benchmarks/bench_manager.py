"""The memory manager's recall overhead over the raw structure calls, side by side.

Usage:
    HF_HUB_OFFLINE=1 python benchmarks/bench_manager.py [--turns 2000] [--queries 200]

One memory with every structure and the fact ledger ingests a synthetic history (see
bench_stores.py). Then, for the same queries, it times (a) the raw calls — embed the query
once and call each structure's ``retrieve`` — and (b) ``MemoryManager.recall``, which adds
the query rewrite, the stale-value guard, reciprocal rank fusion, de-duplication and the
token budget. Both are measured interleaved in one run, so the ratio is fair.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_stores import QUESTIONS, percentile, synthetic_history  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agentmem.factory import build_stores  # noqa: E402
from agentmem.ledger.extraction import CachingExtractor, RuleExtractor  # noqa: E402
from agentmem.ledger.facts import FactLedger  # noqa: E402
from agentmem.manager import MemoryManager  # noqa: E402
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder  # noqa: E402
from agentmem.protocols import StoreContext  # noqa: E402
from agentmem.storage.records import Records  # noqa: E402
from agentmem.storage.vectors import VectorIndex  # noqa: E402
from agentmem.types import Query, Scope  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Ingest, then time raw structure calls against the manager's recall."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--stores", default="turns,memtree,summary,memo,graph")
    args = parser.parse_args(argv)
    console = Console()
    history = synthetic_history(args.turns)
    embedder = CachingEmbedder(MiniLMEmbedder())
    with tempfile.TemporaryDirectory() as folder:
        records = Records(Path(folder) / "records.db")
        vectors = VectorIndex(embedder, path=Path(folder) / "chroma")
        context = StoreContext(
            records, vectors, embedder, extractor=CachingExtractor(RuleExtractor())
        )
        stores = build_stores(args.stores.split(","), context)
        manager = MemoryManager(records, embedder, stores, facts=FactLedger(context))
        tick = time.perf_counter()
        for offset in range(0, len(history), 20):
            session = records.start_session("sam", session_id=f"s{offset}")
            turns = records.add_turns(
                [
                    dict(
                        user_id="sam",
                        session_id=session,
                        speaker=speaker,
                        role="user",
                        text=text,
                        timestamp=datetime(2023, 1, 1) + timedelta(hours=offset + i),
                    )
                    for i, (speaker, text) in enumerate(history[offset : offset + 20])
                ]
            )
            manager.write(turns)
            manager.end_session("sam", session)
        ingest = time.perf_counter() - tick
        raw, managed = [], []
        scope = Scope("sam")
        for i in range(args.queries):
            # Vary the text so neither path is served from the embedding cache.
            text = f"{QUESTIONS[i % len(QUESTIONS)]} ({i})"
            tick = time.perf_counter()
            query = Query(text, scope, embedding=embedder.embed([text])[0])
            for structure in manager.structures:
                structure.retrieve(query, 10)
            raw.append((time.perf_counter() - tick) * 1000)
            text = f"{QUESTIONS[i % len(QUESTIONS)]} [{i}]"
            tick = time.perf_counter()
            manager.recall(text, scope, k=10, budget_tokens=1000)
            managed.append((time.perf_counter() - tick) * 1000)
        records.close()
    table = Table(title=f"Recall over {args.turns:,} turns, {len(manager.structures)} structures")
    for column in ("path", "p50 ms", "p95 ms"):
        table.add_column(column)
    for label, values in (("raw: embed + every retrieve", raw), ("MemoryManager.recall", managed)):
        table.add_row(label, f"{statistics.median(values):.1f}", f"{percentile(values, 95):.1f}")
    console.print(f"ingest: {args.turns / ingest:,.0f} turns/s, all structures and the fact ledger")
    console.print(table)
    overhead = statistics.median(managed) / statistics.median(raw)
    console.print(f"manager / raw, medians: {overhead:.2f}x")


if __name__ == "__main__":
    main()
