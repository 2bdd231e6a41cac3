"""Replay LoCoMo-format conversations into memory configurations and compare them.

Every configuration ingests each conversation session by session, in dialogue time, then
answers every question as of the end of the dialogue; the scores (evidence recall,
answer-in-context, stale-fact leaks, costs) land in ``--out`` as report.json, summary.md
and chart.png::

    python examples/replay_locomo.py ../shared/data/locomo/locomo_dev.json --stores all,turns

Without files it replays the small conversation shipped with the tests.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from agentmem.replay import replay, summary_table

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "replay_mini.json"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the replay and print the summary table; return the exit status.

    Args:
        argv: Command-line arguments; none (the shipped conversation) when ``None``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="LoCoMo-format JSON files")
    parser.add_argument("--stores", default="all,turns", help="comma list of configurations")
    parser.add_argument("--budget", type=int, default=1000, help="context tokens per question")
    parser.add_argument("--limit-questions", type=int, help="questions per conversation")
    parser.add_argument("--out", help="where the report goes (default: a temp dir)")
    args = parser.parse_args(list(argv or []))
    logging.basicConfig(level=logging.WARNING)
    progress = Console(stderr=True)
    console = Console()
    report = replay(
        args.files or [FIXTURE],
        configurations=args.stores,
        out_dir=args.out,
        budget=args.budget,
        limit_questions=args.limit_questions,
        console=progress,
    )
    console.print(summary_table(report))
    for summary in report.summaries:
        leaks = summary.overall.stale_leak_rate
        console.print(
            f"{summary.name}: stale leaks on "
            f"{'–' if leaks is None else f'{leaks:.0%}'} of update questions, "
            f"{summary.overall.context_tokens or 0:.0f} context tokens per question"
        )
    console.print(f"report: {report.extra['files_written']['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
