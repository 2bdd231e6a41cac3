"""Replaying long multi-session dialogues (LoCoMo format) and scoring memory consistency.

::

    from agentmem.replay import replay

    report = replay(["locomo_dev.json", "stale_dev.json"], configurations="all,turns",
                    out_dir="replay-out")
    print(report.summary("turns").overall.evidence_recall)

Modules: :mod:`~agentmem.replay.dataset` (loading), :mod:`~agentmem.replay.systems` (the
configurations and baselines), :mod:`~agentmem.replay.runner` (ingesting and asking,
resumable), :mod:`~agentmem.replay.scoring` (LoCoMo's metrics and ours),
:mod:`~agentmem.replay.report` (aggregation) and :mod:`~agentmem.replay.render` (table,
Markdown, JSON, chart).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from agentmem.protocols import ChatModel, Embedder
from agentmem.replay.dataset import Conversation, Gold, Question, Sample, Split, load_samples
from agentmem.replay.outputs import QuestionOutput, ReplayRun, ReplaySettings
from agentmem.replay.render import breadth_table, kind_table, summary_table, write_report
from agentmem.replay.report import ConfigSummary, Metrics, Report, build_report
from agentmem.replay.runner import run_replay
from agentmem.replay.systems import BASELINES, parse_configurations


def replay(
    paths: Sequence[str | Path],
    *,
    configurations: str | Sequence[str] = "all,turns",
    out_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    budget: int = 1000,
    k: int = 20,
    limit_questions: int | None = None,
    split: Split | None = None,
    breadth: bool = False,
    model: ChatModel | None = None,
    builds_with_model: bool = False,
    judge: bool = False,
    embedder: Embedder | None = None,
    console: Console | None = None,
    database_url: str | None = None,
    chroma_url: str | None = None,
) -> Report:
    """Replay conversations, score every configuration, and write the report files.

    Re-running with the same ``out_dir`` continues where an earlier run stopped. See
    :func:`~agentmem.replay.runner.run_replay` for the arguments.

    Returns:
        The scored report (also written to ``out_dir`` as report.json, summary.md and
        chart.png).

    Raises:
        InputError: A file is not LoCoMo JSON, or ``split`` is unknown.
        ConfigError: A configuration names an unknown structure.
    """
    run = run_replay(
        paths,
        configurations=configurations,
        out_dir=out_dir,
        data_dir=data_dir,
        budget=budget,
        k=k,
        limit_questions=limit_questions,
        split=split,
        breadth=breadth,
        model=model,
        builds_with_model=builds_with_model,
        judge=judge,
        embedder=embedder,
        console=console,
        database_url=database_url,
        chroma_url=chroma_url,
    )
    try:
        report = build_report(run)
    finally:
        cache = getattr(run.answer_model, "inner", None)
        close = getattr(cache, "close", None)
        if callable(close):
            close()
    report.extra["files_written"] = {
        kind: str(path) for kind, path in write_report(report, run.out_dir).items()
    }
    return report


__all__ = [
    "BASELINES",
    "ConfigSummary",
    "Conversation",
    "Gold",
    "Metrics",
    "Question",
    "QuestionOutput",
    "ReplayRun",
    "ReplaySettings",
    "Report",
    "Sample",
    "Split",
    "breadth_table",
    "kind_table",
    "load_samples",
    "parse_configurations",
    "replay",
    "run_replay",
    "summary_table",
    "write_report",
]
