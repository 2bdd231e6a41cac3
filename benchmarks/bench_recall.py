"""Recall latency in the LoCoMo dev replay, with the time split per structure.

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_recall.py
    HF_HUB_OFFLINE=1 python benchmarks/bench_recall.py --stores all,turns --budget 1500 --k 50

Ingests ``locomo_dev.json`` (found beside the checkout, or given with ``--data``; skipped
with a message when absent) into each configuration of ``--stores`` (default
``all,turns``) exactly as ``bench_ingest.py`` and ``agentmem replay`` do (turns and
questions embedded once up front), then asks every question of the data set as of the
end of its conversation through ``MemoryManager.recall`` (the call the replay's ``recall``
makes), the configurations taking turns question by question so that they are measured
side by side; ``--warmup`` questions first are not counted. ``--now`` asks without
``as_of``, as the app does: with ``as_of`` the structures also search their history
partitions and the graph filters by validity in chromadb. The question vectors were
computed up front as in the replay; a query a structure embeds on its own (the turns
structure strips the speakers a question names and embeds what is left) goes to the
model, and that time is shown apart, charged to the structure.

Prints p50 / p95 / max ms per configuration: recall end to end, the query rewrite, the
manager's query embedding, the model's time in all, each structure as the manager timed
it (its ``retrieve`` and the stale guard's checks of what it returned), of that its
``retrieve`` with the model's time excluded (timed at the protocol boundary, see
``locomo_timing.py``) and the model's time for a query it embedded itself, and the rest
(fusion, the token budget), beside the targets of issue 32 (p95: ``all`` <= 50 ms,
``turns`` <= 20 ms).

The 100k-item case is ``bench_scale.py recall`` (``--configs all,turns``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locomo_timing import (  # noqa: E402
    Clock,
    Opened,
    ingest_all,
    load_average,
    percentile,
    prepare_or_skip,
)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agentmem.replay.dataset import Sample  # noqa: E402
from agentmem.types import Scope  # noqa: E402

#: Issue 32's targets for recall p95 in the LoCoMo replay, ms.
TARGETS = {"all": 50.0, "turns": 20.0}

console = Console()
if not console.is_terminal:  # piped output: wide enough for the tables
    console = Console(width=150)


def ask_all(
    opened: Sequence[Opened],
    samples: Sequence[Sample],
    *,
    budget: int,
    k: int,
    as_of_end: bool = True,
) -> dict[str, list[dict[str, float]]]:
    """Ask every question of every configuration, taking turns; return timings per config.

    Each row holds ms: ``total``, ``embed``, each structure as the manager timed it,
    ``retrieve:<structure>`` (its retrieve, the model's time excluded), ``embed:<structure>``
    (the model's time for a query the structure embedded itself), ``model`` (all the
    model's time, for queries not embedded up front) and ``rest``.
    """
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    asked = 0
    for sample in samples:
        as_of = sample.conversation.ends_at if as_of_end else None
        scope = Scope(sample.conversation.sample_id)
        for question in sample.questions:
            # Rotate who goes first, so no configuration always follows the other's cache.
            shift = asked % len(opened)
            for one in [*opened[shift:], *opened[:shift]]:
                before = one.clock.snapshot()
                tick = time.perf_counter()
                result = one.memory.manager.recall(
                    question.text, scope, budget_tokens=budget, k=k, as_of=as_of
                )
                wall = time.perf_counter() - tick
                spent = Clock.since(one.clock.snapshot(), before)
                row = {name: seconds * 1000 for name, seconds in result.timings.items()}
                row["total"] = wall * 1000
                for (structure, method), seconds in spent.items():
                    if method in ("retrieve", "embed"):
                        row[f"{method}:{structure}"] = seconds * 1000
                row["model"] = 1000 * sum(v for (_, m), v in spent.items() if m == "embed")
                parts = [v for name, v in row.items() if name in result.timings and name != "total"]
                row["rest"] = row["total"] - sum(parts)
                rows[one.name].append(row)
            asked += 1
    return dict(rows)


def print_recall(rows: dict[str, list[dict[str, float]]], warmup: int) -> None:
    """Print p50 / p95 / max of each part, one column per configuration."""
    measured = {name: found[warmup:] for name, found in rows.items()}
    count = min(len(found) for found in measured.values())
    table = Table(
        title=f"Recall, LoCoMo dev, {count} questions per configuration (after {warmup} "
        "warm-up), configurations taking turns"
    )
    table.add_column("part")
    for name in measured:
        table.add_column(f"{name}: p50 / p95 / max ms", justify="right")
    parts = ["total", "rewrite", "embed", "model"]
    structures: list[str] = []
    for found in measured.values():
        for key in found[0]:
            if key.startswith("retrieve:"):
                structure = key.split(":", 1)[1]
                if structure not in structures:
                    structures.append(structure)
    for structure in structures:
        parts += [structure, f"retrieve:{structure}", f"embed:{structure}"]
    parts += ["rest"]
    labels = {
        "total": "recall, end to end",
        "embed": "query embedding (vectors up front; misses go to the model)",
        "model": "the model, every query embedded past the up-front vectors",
        "rewrite": "query rewrite",
        "rest": "rest: fusion, budget",
    }
    for part in parts:
        if part.startswith("retrieve:"):
            label = "  of which its retrieve, the model's time excluded"
        elif part.startswith("embed:"):
            if not any(part in r for found in measured.values() for r in found):
                continue
            label = "  of which the model, for a query it embeds itself"
        else:
            label = labels.get(part, f"structure: {part} (retrieve + stale checks)")
        cells = [label]
        for found in measured.values():
            values = [r[part] for r in found if part in r]
            if values and part.startswith("embed:"):  # only the queries it embedded
                cells.append(
                    f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f} / "
                    f"{max(values):.1f} ({len(values)} queries)"
                )
                continue
            cells.append(
                f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f} / {max(values):.1f}"
                if values
                else "-"
            )
        table.add_row(*cells)
    target_cells = ["target p95 (issue 32)"]
    for name, found in measured.items():
        target = TARGETS.get(name)
        p95 = percentile([r["total"] for r in found], 95)
        if target is None:
            target_cells.append("-")
        else:
            target_cells.append(f"<= {target:.0f}: {'met' if p95 <= target else 'NOT met'}")
    table.add_row(*target_cells)
    console.print(table)
    names = list(measured)
    if len(names) >= 2:
        first, second = names[0], names[1]
        ratio = percentile([r["total"] for r in measured[first]], 50) / percentile(
            [r["total"] for r in measured[second]], 50
        )
        console.print(f"p50 {first} / {second}: {ratio:.1f}x (same run, side by side)")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="LoCoMo JSON (default: ../shared/data/locomo/...)")
    parser.add_argument("--stores", default="all,turns", help="configurations, comma list")
    parser.add_argument("--budget", type=int, default=1000, help="context tokens (replay: 1000)")
    parser.add_argument("--k", type=int, default=20, help="items per structure (replay: 20)")
    parser.add_argument("--warmup", type=int, default=5, help="questions not counted")
    parser.add_argument(
        "--now",
        action="store_true",
        help="ask without as_of (as the app asks), not as of the end of the dialogue",
    )
    args = parser.parse_args(argv)
    prepared = prepare_or_skip(console, args.data)
    if prepared is None:
        return
    names = [n.strip() for n in args.stores.split(",") if n.strip()]
    console.print(
        f"{len(prepared.samples)} conversations, {prepared.turns:,} turns, "
        f"{prepared.questions:,} questions; turns and questions embedded up front in "
        f"{prepared.seconds:.1f} s, as the replay does. budget {args.budget}, k {args.k}, "
        f"{'no as_of (now)' if args.now else 'as of the end of each dialogue (the replay)'}."
    )
    work = Path(tempfile.mkdtemp(prefix="bench-recall-"))
    opened: list[Opened] = []
    try:
        opened = ingest_all(names, prepared, work)
        console.print(f"ingested; asking (load {load_average()}) ...")
        rows = ask_all(
            opened, prepared.samples, budget=args.budget, k=args.k, as_of_end=not args.now
        )
    finally:
        for one in opened:
            one.close()
        shutil.rmtree(work, ignore_errors=True)
    print_recall(rows, args.warmup)
    console.print(f"load at the end {load_average()}")


if __name__ == "__main__":
    main()
