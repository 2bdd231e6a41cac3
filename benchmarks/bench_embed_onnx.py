"""Embedding benchmark: MiniLM on ONNX Runtime against sentence-transformers (torch).

(a) Start: a fresh process from nothing to the first vector, each runtime (several runs).
(b) One query: p50 / p95 over one-question calls (what recall embeds: LoCoMo's questions
    with ``--locomo``, else short synthetic ones), runtimes interleaved.
(c) Batch ingest: texts/s on up to 1,000 turns (LoCoMo dev's 788 turns with ``--locomo``,
    else 1,000 synthetic sentences), ONNX at several batch sizes, with its batches run side
    by side (the default) and one at a time, and torch at 64.
(d) Agreement: the lowest cosine between the two runtimes' vectors over those texts.
(e) With ``--int8``: the model quantised to int8 (onnxruntime's dynamic quantisation):
    speed and the lowest cosine to the float model, and with ``--locomo`` the evidence
    recall of ``replay --stores turns`` on LoCoMo dev for torch, ONNX and ONNX int8.

Run::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_embed_onnx.py \\
        --locomo ../shared/data/locomo/locomo_dev.json --int8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()
if not console.is_terminal:
    console = Console(width=140)

FIRST_VECTOR = """
import resource, sys, time
started = time.perf_counter()
from agentmem.models.embeddings import MiniLMEmbedder
embedder = MiniLMEmbedder(runtime=sys.argv[1])
embedder.embed(["Where does my sister live?"])
elapsed = time.perf_counter() - started
print(elapsed, "torch" in sys.modules, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def locomo_turns(path: Path) -> list[str]:
    """Return LoCoMo's turns as ``speaker: text``, in order."""
    texts = []
    for sample in json.loads(path.read_text()):
        for key, session in sample["conversation"].items():
            if key.startswith("session_") and isinstance(session, list):
                texts += [f"{t['speaker']}: {t['text']}" for t in session]
    return texts


def locomo_questions(path: Path) -> list[str]:
    """Return LoCoMo's questions: what recall embeds, one at a time."""
    return [q["question"] for sample in json.loads(path.read_text()) for q in sample["qa"]]


def synthetic_questions(count: int) -> list[str]:
    """Return ``count`` short questions."""
    subjects = ["my sister", "our neighbour", "the new manager", "my old friend Tom", "I"]
    return [f"What did {subjects[n % 5]} do on day {n}?" for n in range(count)]


def synthetic_turns(count: int) -> list[str]:
    """Return ``count`` short varied sentences."""
    subjects = ["My sister", "Our neighbour", "The new manager", "My old friend Tom", "I"]
    objects = ["a small beagle", "the blue kitchen", "a museum downtown", "a lentil soup"]
    tails = ["", " last weekend", " after the meeting on Tuesday", " because it rained all day"]
    return [
        f"{subjects[n % 5]} talked about {objects[n % 4]}{tails[n % 4]} (note {n})."
        for n in range(count)
    ]


def first_vector(runtime: str, runs: int, env: dict[str, str]) -> tuple[list[float], int]:
    """Seconds from a fresh interpreter to the first vector, ``runs`` times, and peak KiB."""
    times = []
    peak = 0
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", FIRST_VECTOR, runtime],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        seconds, torch_loaded, kib = done.stdout.split()
        if runtime == "onnx" and torch_loaded == "True":
            raise RuntimeError("the ONNX path imported torch")
        times.append(float(seconds))
        peak = max(peak, int(kib))
    return times, peak


def query_latency(embedders: dict[str, object], queries: Sequence[str], rounds: int) -> Table:
    """p50 / p95 of one-sentence calls, runtimes interleaved round by round."""
    samples: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(rounds):
        for name, embedder in embedders.items():
            for query in queries:
                started = time.perf_counter()
                embedder.embed([query])  # type: ignore[attr-defined]
                samples[name].append((time.perf_counter() - started) * 1000)
    table = Table(title=f"(b) one query, ms ({rounds * len(queries)} calls each)")
    for column in ("runtime", "p50", "p95", "min"):
        table.add_column(column, justify="right" if column != "runtime" else "left")
    for name, values in samples.items():
        p50, p95 = np.percentile(values, [50, 95])
        table.add_row(name, f"{p50:.2f}", f"{p95:.2f}", f"{min(values):.2f}")
    return table


def throughput(embedder: object, texts: Sequence[str], repeats: int) -> float:
    """Best texts/s of ``repeats`` passes over ``texts`` (the machine is shared)."""
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        embedder.embed(list(texts))  # type: ignore[attr-defined]
        best = max(best, len(texts) / (time.perf_counter() - started))
    return best


class _QuantisedMiniLM:
    """The int8 model behind the Embedder protocol (for the replay)."""

    name = "minilm"
    dimension = 384

    def __init__(self, model_dir: Path, onnx_file: Path) -> None:
        from agentmem.models.onnx_embedder import OnnxEncoder

        self.encoder = OnnxEncoder(model_dir, onnx_file)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(texts))


def replay_recall(locomo: Path, embedder: object, out: Path) -> tuple[float, int]:
    """Evidence recall of ``replay --stores turns`` on ``locomo`` with ``embedder``."""
    from agentmem.replay import replay

    report = replay(
        [locomo],
        configurations="turns",
        out_dir=out,
        embedder=embedder,  # type: ignore[arg-type]
        console=Console(quiet=True),
    )
    overall = report.summary("turns").overall
    return float(overall.evidence_recall or 0.0), overall.questions


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locomo", type=Path, help="LoCoMo JSON: its turns, and the recall")
    parser.add_argument("--int8", action="store_true", help="also measure an int8 model")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per runtime")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="agentmem-embed-bench-"))
    try:
        _run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # two models and three replays
    return 0


def _run(args: argparse.Namespace, scratch: Path) -> None:
    from agentmem.models.embeddings import MiniLMEmbedder, minilm_path
    from agentmem.models.onnx_embedder import exported_model

    cache = scratch / "cache"
    os.environ["AGENTMEM_CACHE_DIR"] = str(cache)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    console.print(f"load average at start: {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    onnx_file = exported_model(Path(minilm_path()), cache)
    console.print(f"one-time export: {time.perf_counter() - started:.1f} s, {onnx_file}")

    starts = Table(title="(a) fresh process to the first vector: min / median / max")
    starts.add_column("runtime")
    starts.add_column("seconds", justify="right")
    starts.add_column("peak RSS", justify="right")
    for runtime in ("onnx", "torch"):
        values, peak = first_vector(runtime, args.runs, env)
        summary = f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"
        starts.add_row(runtime, summary, f"{peak / 1024:.0f} MB")
    console.print(starts)

    texts = locomo_turns(args.locomo)[:1000] if args.locomo else synthetic_turns(1000)
    onnx = MiniLMEmbedder(runtime="onnx")
    one_thread = MiniLMEmbedder(runtime="onnx", threads=1)  # one batch at a time
    torch = MiniLMEmbedder(runtime="torch")
    for model in (onnx, one_thread, torch):
        model.embed(texts[:64])  # load, and the first slow passes
    queries = locomo_questions(args.locomo)[:50] if args.locomo else synthetic_questions(50)
    console.print(query_latency({"onnx": onnx, "torch": torch}, queries, 4))

    rates = Table(title=f"(c) batch ingest, {len(texts):,} turns, texts/s (best of 3)")
    rates.add_column("runtime")
    rates.add_column("texts/s", justify="right")
    for batch in (8, 16, 32, 64):
        onnx.batch_size = batch
        rates.add_row(f"onnx, batch {batch}", f"{throughput(onnx, texts, 3):,.0f}")
    rates.add_row("onnx, batch 16, one batch at a time", f"{throughput(one_thread, texts, 3):,.0f}")
    torch.batch_size = 64
    rates.add_row("torch, batch 64", f"{throughput(torch, texts, 3):,.0f}")
    console.print(rates)
    onnx.batch_size = None
    reference = torch.embed(texts)
    vectors = onnx.embed(texts)
    console.print(
        f"(d) lowest cosine ONNX / torch over {len(texts):,} texts: "
        f"{float((vectors * reference).sum(axis=1).min()):.8f}"
    )
    if args.int8:
        embedders = {"torch": torch, "onnx": onnx}
        _int8(args, onnx_file, texts, vectors, embedders, scratch / "int8")
    console.print(f"load average at end: {os.getloadavg()[0]:.2f}")


def _int8(
    args: argparse.Namespace,
    onnx_file: Path,
    texts: Sequence[str],
    vectors: np.ndarray,
    embedders: dict[str, object],
    folder: Path,
) -> None:
    """(e) The int8 model: speed, agreement, and (with --locomo) recall."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from agentmem.models.embeddings import minilm_path

    folder.mkdir(parents=True)
    quantised = folder / "model-int8.onnx"
    quantize_dynamic(str(onnx_file), str(quantised), weight_type=QuantType.QInt8)
    int8 = _QuantisedMiniLM(Path(minilm_path()), quantised)
    int8.embed(texts[:64])
    queries = locomo_questions(args.locomo)[:50] if args.locomo else synthetic_questions(50)
    console.print(query_latency({"onnx": embedders["onnx"], "onnx int8": int8}, queries, 4))
    console.print(
        f"(e) int8: {throughput(int8, texts, 3):,.0f} texts/s against "
        f"{throughput(embedders['onnx'], texts, 3):,.0f} (float); lowest cosine to float "
        f"{float((int8.embed(texts) * vectors).sum(axis=1).min()):.4f}; "
        f"{quantised.stat().st_size / 1e6:.0f} MB against {onnx_file.stat().st_size / 1e6:.0f}"
    )
    if args.locomo:
        recall = Table(title=f"(e) evidence recall, replay --stores turns, {args.locomo.name}")
        for column in ("runtime", "evidence recall", "questions", "seconds"):
            recall.add_column(column)
        for name, model in {**embedders, "onnx int8": int8}.items():
            started = time.perf_counter()
            value, questions = replay_recall(args.locomo, model, folder / f"replay-{name}")
            elapsed = time.perf_counter() - started
            recall.add_row(name, f"{value:.4f}", str(questions), f"{elapsed:.0f}")
        console.print(recall)


if __name__ == "__main__":
    sys.exit(main())
