"""Time the local GGUF model through its worker process: start, first answer, tokens/s.

    python benchmarks/bench_local_model.py [--runs 5]

Needs the ``local`` extra (``pip install -e '.[local]'``). Prints the worker's start-up
(a Python process, the llama.cpp import and the model load), the first answer's latency
from a cold start, and the generation speed of later answers, as medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console

from agentmem.models.local_model import LlamaCppChatModel
from agentmem.types import Message

PROMPT = [
    Message("system", "You are a helpful assistant. Answer briefly."),
    Message("user", "Name three colours of the rainbow and say one thing about each."),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()

    starts, firsts, speeds = [], [], []
    for _ in range(args.runs):
        model = LlamaCppChatModel(max_tokens=args.max_tokens, temperature=0.0)
        tick = time.perf_counter()
        model.warm()
        starts.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        first_chunk = None
        for _chunk in model.stream(PROMPT):
            if first_chunk is None:
                first_chunk = time.perf_counter() - tick
        firsts.append(first_chunk or 0.0)
        tick = time.perf_counter()
        completion = model.complete(PROMPT)
        elapsed = time.perf_counter() - tick
        speeds.append(completion.usage.completion_tokens / elapsed)
        model.close()
    out = Console(highlight=False)
    out.print(f"model: {model.name}")
    out.print(
        f"worker start + model load: {statistics.median(starts):.2f} s (median of {args.runs})"
    )
    out.print(f"first token after the load: {statistics.median(firsts):.3f} s")
    out.print(
        f"cold first answer (start + load + first token): "
        f"{statistics.median(s + f for s, f in zip(starts, firsts, strict=True)):.2f} s"
    )
    out.print(f"whole answers, prompt included: {statistics.median(speeds):.1f} tokens/s")


if __name__ == "__main__":
    main()
