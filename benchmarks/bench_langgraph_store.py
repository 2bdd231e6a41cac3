"""AgentMemStore against LangGraph's InMemoryStore: what keeping documents in memory costs.

Both stores get the same documents and the same operations, side by side in one run.
InMemoryStore embeds the same ``content`` field with the same MiniLM model (agentmem's
embedder), so the difference is what agentmem adds: the records database, every
configured structure and the fact ledger on a put, recall over the structures on a query.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_langgraph_store.py --docs 300

Prints the median and p95 milliseconds per operation for each store and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from rich.console import Console
from rich.table import Table

from agentmem import Memory
from agentmem.langgraph import AgentMemStore

SUBJECTS = ["my sister", "my landlord", "our team", "the dentist", "my cousin", "the coach"]
VERBS = ["moved to", "works at", "loves", "visited", "called about", "booked"]
OBJECTS = ["Porto", "a bakery", "the museum", "Kyoto", "the new office", "a sailing trip"]


def document(n: int) -> dict[str, Any]:
    subject = SUBJECTS[n % len(SUBJECTS)]
    verb = VERBS[(n // len(SUBJECTS)) % len(VERBS)]
    thing = OBJECTS[(n // 7) % len(OBJECTS)]
    return {"content": f"Note {n}: {subject} {verb} {thing}.", "n": n, "kind": "note"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300, help="documents per store")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--stores", default="turns", help="agentmem structures (default turns)")
    args = parser.parse_args(argv)
    console = Console()
    with tempfile.TemporaryDirectory() as folder:
        memory = Memory(folder, model="none", stores=tuple(args.stores.split(",")), env={})
        embedder = memory.components.embedder
        ours: BaseStore = AgentMemStore(memory)
        theirs: BaseStore = InMemoryStore(
            index={
                "dims": 384,
                "embed": lambda texts: embedder.embed(texts).tolist(),
                "fields": ["content"],
            }
        )
        stores = {"AgentMemStore": ours, "InMemoryStore": theirs}
        times: dict[str, dict[str, list[float]]] = {name: {} for name in stores}

        def record(op: str, name: str, call: Callable[..., object], *args: Any, **kw: Any) -> None:
            started = time.perf_counter()
            call(*args, **kw)
            times[name].setdefault(op, []).append((time.perf_counter() - started) * 1000)

        for n in range(args.docs):
            namespace = ("memories", f"user{n % 3}")
            for name, store in stores.items():  # interleaved, so load hits both alike
                record("put", name, store.put, namespace, f"k{n}", document(n))
        for q in range(args.queries):
            namespace = ("memories", f"user{q % 3}")
            query = f"Where did {SUBJECTS[q % len(SUBJECTS)]} go?"
            for name, store in stores.items():
                record("get", name, store.get, namespace, f"k{q * 3 + q % 3}")
                record("search query", name, store.search, namespace, query=query)
                record("search filter", name, store.search, namespace, filter={"n": {"$lt": q}})
                record("list_namespaces", name, store.list_namespaces)
        memory.close()

    table = Table(title=f"{args.docs} documents, {args.queries} queries, stores={args.stores}")
    table.add_column("operation")
    for name in stores:
        table.add_column(f"{name} p50 / p95 ms", justify="right")
    table.add_column("ratio (p50)", justify="right")
    for op in times["AgentMemStore"]:
        row = [op]
        medians = []
        for name in stores:
            values = sorted(times[name][op])
            p50 = statistics.median(values)
            p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
            medians.append(p50)
            row.append(f"{p50:.2f} / {p95:.2f}")
        row.append(f"{medians[0] / medians[1]:.1f}x" if medians[1] else "-")
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
