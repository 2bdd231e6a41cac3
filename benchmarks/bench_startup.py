"""Start-up benchmark: each command as a fresh process, several runs, min / median / max.

What a user waits for, from the moment the command starts:

- ``help``: ``agentmem --help``;
- ``search``: ``agentmem memory search sister`` on a folder of 1,000 turns;
- ``chat``: ``echo ... | agentmem chat --plain --model none``, one turn into a new folder;
- ``mcp init`` / ``mcp search``: ``agentmem mcp`` answering ``initialize``, then its first
  ``search`` (1,000-turn folder), both timed from the start of the process;
- ``mcp remember``: ``initialize`` then the first ``remember`` (a new folder);
- ``app``: the chat app's first screen: a fresh process builds what ``agentmem chat``
  builds and runs the app headless with Textual's ``App.run_test`` (120 x 40); timed
  until the pilot is handed over (app ready, first screen composed).

Variants, measured in the same run, interleaved (run 1 of every variant, then run 2...):

- ``onnx``: this checkout, MiniLM on ONNX Runtime (the export made once, before timing);
- ``torch``: this checkout with ``AGENTMEM_EMBEDDER=minilm:torch`` (sentence-transformers);
- ``before`` (with ``--before PYTHON``): another checkout's interpreter, e.g. the main
  branch's ``.venv/bin/python`` from before the switch.

The one-time export is timed too (``search`` with an empty cache folder, once).

Run::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_startup.py --runs 5 \\
        --before /work/main/.venv/bin/python
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

USER = "ana"
console = Console()
if not console.is_terminal:  # piped output: wide enough for the tables
    console = Console(width=160)

SUBJECTS = ["My sister", "Our neighbour", "The new manager", "My old friend Tom", "I", "We"]
VERBS = ["adopted", "painted", "visited", "cooked", "forgot about", "talked about", "sold"]
OBJECTS = ["a small beagle", "the blue kitchen", "a museum downtown", "a lentil soup", "a bike"]


def turn_texts(count: int) -> list[str]:
    """Return ``count`` varied sentences, one naming where the sister lives."""
    texts = [f"{SUBJECTS[n % 6]} {VERBS[n % 7]} {OBJECTS[n % 5]} (note {n})." for n in range(count)]
    texts[count // 2] = "My sister lives in Porto now."
    return texts


def make_folder(path: Path, turns: int) -> None:
    """Write ``turns`` user turns (default structures, no model) into a data folder."""
    from agentmem.memory import Memory

    with Memory(path, model="none") as memory:
        texts = turn_texts(turns)
        for start in range(0, turns, 100):
            messages = [{"role": "user", "content": t} for t in texts[start : start + 100]]
            memory.add(messages, user_id=USER)
            memory.end_session(USER)


# -- one measurement, in a fresh process ---------------------------------------------------


def run_command(python: str, args: Sequence[str], env: dict[str, str], stdin: str = "") -> float:
    """Run ``python -m agentmem ARGS --user ana`` to its end; return the wall seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [python, "-m", "agentmem", *args, *(["--user", USER] if args[0] != "--help" else [])],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),  # not a checkout: ``-m agentmem`` finds the installed one
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{args} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed


def _rpc(stream: IO[str], message: dict[str, Any]) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def _answer(stream: IO[str], wanted: int) -> dict[str, Any]:
    while True:
        line = stream.readline()
        if not line:
            raise RuntimeError("the MCP server closed its output")
        message = json.loads(line)
        if message.get("id") == wanted:
            return dict(message)


def run_mcp(python: str, data_dir: Path, env: dict[str, str], tool: str) -> tuple[float, float]:
    """Start ``agentmem mcp``; return the seconds to ``initialize`` and to the first call."""
    arguments = {"query": "sister"} if tool == "search" else {"text": "My sister moved to Braga."}
    started = time.perf_counter()
    server = subprocess.Popen(
        [python, "-m", "agentmem", "mcp", "--data-dir", str(data_dir), "--user", USER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        _rpc(
            server.stdin,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "0"},
                },
            },
        )
        _answer(server.stdout, 1)
        initialized = time.perf_counter() - started
        _rpc(server.stdin, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = {"name": tool, "arguments": arguments}
        _rpc(server.stdin, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call})
        answer = _answer(server.stdout, 2)
        called = time.perf_counter() - started
        if answer.get("result", {}).get("isError") or "error" in answer:
            raise RuntimeError(f"the MCP {tool} failed: {answer}")
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return initialized, called


def run_app(python: str, data_dir: Path, env: dict[str, str]) -> float:
    """Start the chat app headless in a fresh process; return the seconds to its first screen."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [python, str(Path(__file__).resolve()), "--app-child", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    elapsed = time.perf_counter() - started
    child.wait(timeout=120)
    if line.strip() != "READY":
        raise RuntimeError(f"the chat app did not start: {line!r} {child.stderr.read()[-2000:]}")
    return elapsed


def app_child(data_dir: str) -> None:
    """In the child: build what ``agentmem chat`` builds, show the app, say READY, leave."""
    from agentmem.config import load_config
    from agentmem.factory import build, build_agent
    from agentmem.tui.app import ChatApp

    components = build(load_config(data_dir=data_dir, model="none", user_id=USER))
    app = ChatApp(components, build_agent(components))

    async def show() -> None:
        async with app.run_test(headless=True, size=(120, 40)):
            sys.stdout.write("READY\n")
            sys.stdout.flush()
            os._exit(0)  # the time after the first screen is not measured

    asyncio.run(show())


# -- the runs ------------------------------------------------------------------------------


def measure(
    variants: dict[str, tuple[str, dict[str, str]]], folders: dict[str, Path], runs: int
) -> dict[str, dict[str, list[float]]]:
    """Run every command ``runs`` times per variant, interleaved; return seconds by name."""
    times: dict[str, dict[str, list[float]]] = {}

    def note(command: str, variant: str, seconds: float) -> None:
        times.setdefault(command, {}).setdefault(variant, []).append(seconds)

    scratch = Path(tempfile.mkdtemp(prefix="agentmem-startup-"))
    big = folders["big"]
    try:
        for run in range(runs):
            for name, (python, env) in variants.items():
                fresh = scratch / f"{name}-{run}"
                steps: list[tuple[str, Callable[[], Any]]] = [
                    ("help", lambda p=python, e=env: run_command(p, ["--help"], e)),
                    (
                        "search (1,000 turns)",
                        lambda p=python, e=env: run_command(
                            p, ["memory", "search", "sister", "--data-dir", str(big)], e
                        ),
                    ),
                    (
                        "chat --plain, one turn",
                        lambda p=python, e=env, f=fresh: run_command(
                            p,
                            ["chat", "--plain", "--model", "none", "--data-dir", str(f / "chat")],
                            e,
                            stdin="My sister lives in Porto.\n",
                        ),
                    ),
                    ("app first screen", lambda p=python, e=env: run_app(p, big, e)),
                ]
                for command, step in steps:
                    note(command, name, step())
                initialized, searched = run_mcp(python, big, env, "search")
                note("mcp initialize", name, initialized)
                note("mcp initialize + first search", name, searched)
                _, remembered = run_mcp(python, fresh / "mcp", env, "remember")
                note("mcp initialize + first remember", name, remembered)
            console.print(f"[dim]run {run + 1}/{runs} done[/]")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return times


def table(times: dict[str, dict[str, list[float]]], variants: Sequence[str]) -> Table:
    """Return min / median / max per command and variant, and median ratios to onnx."""
    result = Table(title="start-up, seconds of wall time, min / median / max")
    result.add_column("command")
    for name in variants:
        result.add_column(name, justify="right")
    others = [v for v in variants if v != "onnx"]
    for name in others:
        result.add_column(f"{name} / onnx", justify="right")
    for command, by_variant in times.items():
        cells = []
        for name in variants:
            values = by_variant.get(name, [])
            cells.append(
                f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"
                if values
                else "-"
            )
        base = statistics.median(by_variant["onnx"])
        for name in others:
            values = by_variant.get(name)
            cells.append(f"{statistics.median(values) / base:.1f}x" if values else "-")
        result.add_row(command, *cells)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command and variant")
    parser.add_argument("--turns", type=int, default=1000, help="turns in the search folder")
    parser.add_argument("--before", help="another checkout's python, run as the 'before' column")
    parser.add_argument("--no-torch", action="store_true", help="leave out the torch variant")
    parser.add_argument("--app-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.app_child:
        app_child(args.app_child)
        return 0

    root = Path(tempfile.mkdtemp(prefix="agentmem-bench-"))
    base = {**os.environ, "HF_HUB_OFFLINE": "1", "AGENTMEM_CACHE_DIR": str(root / "cache")}
    base.pop("AGENTMEM_EMBEDDER", None)
    variants: dict[str, tuple[str, dict[str, str]]] = {"onnx": (sys.executable, base)}
    if not args.no_torch:
        variants["torch"] = (sys.executable, {**base, "AGENTMEM_EMBEDDER": "minilm:torch"})
    if args.before:
        variants["before"] = (args.before, base)
    try:
        load = os.getloadavg()[0]
        console.print(f"load average at start: {load:.2f}; python {sys.version.split()[0]}")
        big = root / "big"
        started = time.perf_counter()
        # The one-time export: the first search after install, with an empty cache.
        first = _first_search(root, base)
        console.print(f"first command after install (ONNX export included): {first:.1f} s")
        os.environ["AGENTMEM_CACHE_DIR"] = base["AGENTMEM_CACHE_DIR"]
        written = time.perf_counter()
        make_folder(big, args.turns)
        console.print(f"{args.turns:,} turns written in {time.perf_counter() - written:.0f} s")
        times = measure(variants, {"big": big}, args.runs)
        console.print(table(times, list(variants)))
        console.print(
            f"load average at end: {os.getloadavg()[0]:.2f}; "
            f"total {time.perf_counter() - started:.0f} s"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _first_search(root: Path, env: dict[str, str]) -> float:
    """Time a search on a one-turn folder with an empty cache: the export is part of it."""
    folder = root / "first"
    run_command(
        sys.executable,
        ["chat", "--plain", "--model", "none", "--data-dir", str(folder)],
        {**env, "AGENTMEM_EMBEDDER": "minilm:torch"},  # writes the folder, leaves the cache
        stdin="My sister lives in Porto.\n",
    )
    return run_command(
        sys.executable, ["memory", "search", "sister", "--data-dir", str(folder)], env
    )


if __name__ == "__main__":
    sys.exit(main())
