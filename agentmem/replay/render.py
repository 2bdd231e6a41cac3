"""Presenting a scored replay: the rich tables, report.json, summary.md, chart.png.

matplotlib is imported only when the chart is drawn, with its non-interactive backend.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rich.table import Table

from agentmem.errors import MissingExtraError
from agentmem.extras import install_command
from agentmem.replay.breadth import RECAP_CATEGORIES
from agentmem.replay.report import CATEGORIES, ConfigSummary, Metrics, Report

logger = logging.getLogger(__name__)

STALE_LEAK_RULE = (
    "A stale leak (any mention) is a context item presented as current (not marked as no longer "
    "current) that mentions a value outdated by the end of the dialogue (normalised "
    "whole-word match) and does not also mention the current answer: an item that mentions "
    "both states the change rather than presenting the old value as current. Counted on "
    "every scenario question with stale values (kinds `update`, `indirect`, `third-party`, "
    "`negation`), as leaking questions over such questions. A `negation` question is yes/no "
    "and has no current value to mention, so the answer excuses nothing there. An item drawn "
    "only from the question's evidence turns is no leak: they state the current truth, and "
    'for an ending ("I sold the van") name the ended value while saying that it ended; '
    "likewise an aggregate (a memo, a tree node) that mentions the value only inside a "
    "sentence it quotes from an evidence turn."
)

GOLD_STALE_LEAK_RULE = (
    "A stale leak (gold rule), for files that annotate `stale_evidence` (the turns that "
    "assert the old value as then true about the asked subject), is a context item "
    "presented as current that mentions a stale value, does not carry the change beside "
    "it, and either draws on a `stale_evidence` turn or is a derived item (a fact, triple "
    "or note) drawn from a turn of the question's subject (a speaker of the "
    "`stale_evidence` turns). An item carries the change when it mentions the current "
    "answer (not for `negation`) or when the stale value sits inside a change note, a "
    "bracketed span with a change marker (`[since 3 May 2023: residence Lisbon → Berlin]`, "
    "`[... no longer has the cat Mochi]`). The old value in someone else's facts, in the "
    "news of the change and in remarks after it is no leak. Shown as `–` for files "
    "without the annotation."
)

STALE_ABOVE_RULE = (
    "Stale above current is the share of questions with stale values and a value answer "
    "(kinds `update`, `indirect`, `third-party`) whose first leaking item (by the gold "
    "rule where annotated, else by any mention) comes before the first current item "
    "mentioning the answer, or leaks while no current item mentions it."
)

KEEP_RULE = (
    "Keep recall is the share of `keep` questions whose answer appears (normalised "
    "whole-word match) in an item presented as current."
)

FALSE_INVALIDATION_RULE = (
    "A false invalidation is a question whose answer is a current value (kinds `update`, "
    "`indirect`, `third-party`, `keep`; not `when` or `negation`) and appears in the "
    "context only in items marked as no longer current: the current value is there, but as "
    "history. Shown as questions over such questions, with the `keep` questions apart."
)

TOP3_RULE = (
    "Current in top 3 is the share of questions with stale values or of kind `keep` (not "
    "`when` or `negation`) whose answer appears in an item presented as current among the "
    "first 3 items of the context, best first as recalled."
)

EVIDENCE_RULE = (
    "Evidence recall is the share of a question's evidence turns present in the context; an "
    "item counts for the turns it came from if it came from at most 3 turns, and an aggregate "
    "of more turns for an evidence turn it came from whose whole text it quotes."
)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _number(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _leaks(questions: int, leaking: int, items: int) -> str:
    return f"{leaking}/{questions} ({items} items)" if questions else "–"


def _false_invalidations(metrics: Metrics) -> str:
    if not metrics.value_questions:
        return "–"
    text = f"{metrics.false_invalidations}/{metrics.value_questions}"
    if metrics.keep_questions and metrics.keep_questions < metrics.value_questions:
        text += f" (keep {metrics.keep_false_invalidations}/{metrics.keep_questions})"
    return text


def _consistency(metrics: Metrics) -> list[str]:
    """Return the stale-fact columns, in the order of :data:`CONSISTENCY_HEADERS`."""
    m = metrics
    return [
        _leaks(m.gold_stale_questions, m.gold_stale_leak_questions, m.gold_stale_leak_items),
        _leaks(m.stale_questions, m.stale_leak_questions, m.stale_leak_items),
        _percent(m.stale_above_current_rate),
        _percent(m.keep_recall),
        _false_invalidations(m),
        _percent(m.current_in_top3),
    ]


CONSISTENCY_HEADERS = [
    "stale leaks (gold rule)",
    "stale leaks (any mention)",
    "stale above current",
    "keep recall",
    "false invalidations",
    "current in top 3",
]


def _has_answers(report: Report) -> bool:
    return any(s.overall.f1 is not None for s in report.summaries)


def _has_judge(report: Report) -> bool:
    return any(s.overall.judged is not None for s in report.summaries)


def _row(summary: ConfigSummary, answers: bool, judged: bool) -> list[str]:
    m = summary.overall
    row = [
        summary.name,
        _percent(m.evidence_recall),
        _percent(m.answer_in_context),
        *_consistency(m),
    ]
    if answers:
        row += [_number(m.f1, 3), _percent(m.exact)]
    if judged:
        row.append(_percent(m.judged))
    row += [
        _number(m.context_tokens),
        _number(summary.turns_per_second, 1),
        f"{_number(summary.recall_p50_ms, 1)} / {_number(summary.recall_p95_ms, 1)}",
    ]
    return row


def _headers(answers: bool, judged: bool) -> list[str]:
    headers = [
        "configuration",
        "evidence recall",
        "answer in context",
        *CONSISTENCY_HEADERS,
    ]
    if answers:
        headers += ["F1", "exact"]
    if judged:
        headers.append("judge")
    return headers + ["context tokens", "ingest turns/s", "recall p50 / p95 ms"]


def summary_table(report: Report) -> Table:
    """Return the summary as a rich table: one row per configuration."""
    answers, judged = _has_answers(report), _has_judge(report)
    table = Table(title="agentmem replay", title_justify="left")
    for index, header in enumerate(_headers(answers, judged)):
        table.add_column(header, justify="left" if index == 0 else "right")
    for summary in report.summaries:
        table.add_row(*_row(summary, answers, judged))
    return table


KIND_HEADERS = [
    "kind",
    "configuration",
    "questions",
    "evidence recall",
    "answer in context",
    *CONSISTENCY_HEADERS,
]


#: The order of the scenario kinds in the tables (others follow, alphabetically).
KIND_ORDER = ("update", "indirect", "third-party", "negation", "keep", "when")


def _kind_key(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


def _kind_rows(report: Report) -> list[list[str]]:
    """Return one row per scenario kind and configuration, the configurations side by side."""
    kinds = sorted({k for s in report.summaries for k in s.by_kind}, key=_kind_key)
    rows = []
    for kind in kinds:
        for summary in report.summaries:
            m = summary.by_kind.get(kind)
            if m is None:
                continue
            rows.append(
                [
                    kind,
                    summary.name,
                    str(m.questions),
                    _percent(m.evidence_recall),
                    _percent(m.answer_in_context),
                    *_consistency(m),
                ]
            )
    return rows


def kind_table(report: Report) -> Table | None:
    """Return the stale-fact metrics per scenario kind as a rich table (``None``: no kinds)."""
    rows = _kind_rows(report)
    if not rows:
        return None
    table = Table(title="by scenario kind", title_justify="left")
    for index, header in enumerate(KIND_HEADERS):
        table.add_column(header, justify="left" if index < 2 else "right")
    for index, row in enumerate(rows):
        last_of_kind = index + 1 == len(rows) or rows[index + 1][0] != row[0]
        table.add_row(*row, end_section=last_of_kind)
    return table


COVERAGE_RULE = (
    "Recaps (`--breadth`) are generated from LoCoMo's `observation` and `session_summary`: "
    "a session recap asks what both speakers talked about on a date (its evidence: every "
    "observation turn of that date's sessions), a period recap what happened in one "
    "speaker's life over whole months spanning at least 3 sessions (that speaker's "
    "observation turns). Coverage is the share of evidence turns in the context: a turn "
    "counts when an item of at most 3 turns came from it, or when an aggregate drawn from "
    "it quotes it whole or says at least half of the content words (stemmed, without stop "
    "words and the speakers' names) of a fact LoCoMo wrote from it. ROUGE-L is the "
    "recall of the session summary by the context (longest common subsequence of stemmed "
    "words over the summary's length)."
)

BREADTH_HEADERS = [
    "recap",
    "configuration",
    "questions",
    "coverage",
    "ROUGE-L",
    "context tokens",
]


def _breadth_rows(report: Report) -> list[list[str]]:
    """Return one row per recap category and configuration, side by side."""
    rows = []
    for label in RECAP_CATEGORIES:
        for summary in report.summaries:
            m = summary.by_category.get(label)
            if m is None:
                continue
            rows.append(
                [
                    label,
                    summary.name,
                    str(m.questions),
                    _percent(m.coverage),
                    _percent(m.rouge_l),
                    _number(m.context_tokens),
                ]
            )
    return rows


def breadth_table(report: Report) -> Table | None:
    """Return the recap questions' scores as a rich table (``None``: no recaps asked)."""
    rows = _breadth_rows(report)
    if not rows:
        return None
    table = Table(title="breadth questions (recaps)", title_justify="left")
    for index, header in enumerate(BREADTH_HEADERS):
        table.add_column(header, justify="left" if index < 2 else "right")
    for index, row in enumerate(rows):
        last = index + 1 == len(rows) or rows[index + 1][0] != row[0]
        table.add_row(*row, end_section=last)
    return table


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(report: Report) -> str:
    """Return the summary as Markdown: the main table, then per category and per kind."""
    answers, judged = _has_answers(report), _has_judge(report)
    settings = report.settings
    parts = [
        "# agentmem replay",
        "",
        f"Files: {', '.join(settings.get('files', []))}  ",
        f"Conversations: {len(settings.get('conversations', []))}{_split(report)}; budget "
        f"{settings.get('budget')} tokens; k {settings.get('k')}; model "
        f"{settings.get('model')}; memory built by "
        f"{'the model' if settings.get('builds_with_model') else 'the offline builders'}.",
        _shared_embedding(report),
        "",
        _markdown_table(
            _headers(answers, judged), [_row(s, answers, judged) for s in report.summaries]
        ),
        "",
        "## Evidence recall by LoCoMo category",
        "",
    ]
    labels = [c for c in CATEGORIES.values() if any(c in s.by_category for s in report.summaries)]
    parts.append(
        _markdown_table(
            ["configuration", *labels],
            [
                [s.name, *[_percent(_get(s.by_category, c, "evidence_recall")) for c in labels]]
                for s in report.summaries
            ],
        )
    )
    # Adversarial questions have no answer to find in a context.
    answerable = [c for c in labels if c != CATEGORIES.get(5)]
    parts += ["", "## Answer in context by LoCoMo category", ""]
    parts.append(
        _markdown_table(
            ["configuration", *answerable],
            [
                [
                    s.name,
                    *[_percent(_get(s.by_category, c, "answer_in_context")) for c in answerable],
                ]
                for s in report.summaries
            ],
        )
    )
    if answers:
        parts += ["", "## F1 by LoCoMo category", ""]
        parts.append(
            _markdown_table(
                ["configuration", *labels],
                [
                    [s.name, *[_number(_get(s.by_category, c, "f1"), 3) for c in labels]]
                    for s in report.summaries
                ],
            )
        )
    kind_rows = _kind_rows(report)
    if kind_rows:
        parts += ["", "## Stale-fact scenarios by kind", ""]
        parts.append(_markdown_table(KIND_HEADERS, kind_rows))
    breadth_rows = _breadth_rows(report)
    if breadth_rows:
        parts += ["", "## Breadth questions (recaps)", ""]
        parts.append(_markdown_table(BREADTH_HEADERS, breadth_rows))
    parts += ["", "## Costs", ""]
    parts.append(
        _markdown_table(
            [
                "configuration",
                "turns",
                "ingest ms/turn",
                "model calls/turn",
                "model tokens/turn",
                "failed sessions",
                "failed model calls",
                "retries",
                "failed builds",
                "builds retried / pending",
            ],
            [
                [
                    s.name,
                    str(s.ingested_turns),
                    _number(s.ingest_ms_per_turn, 1),
                    _number(s.model_calls_per_turn, 2),
                    _number(s.model_tokens_per_turn, 0),
                    str(s.ingest_failures),
                    str(s.model_failures),
                    str(s.model_retries),
                    str(s.build_failures),
                    f"{s.builds_retried} / {s.builds_pending}",
                ]
                for s in report.summaries
            ],
        )
    )
    parts += ["", "## Definitions", ""]
    parts += [
        f"- {rule}"
        for rule in (
            EVIDENCE_RULE,
            GOLD_STALE_LEAK_RULE,
            STALE_LEAK_RULE,
            STALE_ABOVE_RULE,
            KEEP_RULE,
            FALSE_INVALIDATION_RULE,
            TOP3_RULE,
            *([COVERAGE_RULE] if breadth_rows else []),
        )
    ]
    parts.append("")
    return "\n".join(parts)


def _split(report: Report) -> str:
    split = report.settings.get("split")
    return f" (split {split}: the {split}-indexed samples of each file)" if split else ""


def _shared_embedding(report: Report) -> str:
    shared = report.extra.get("shared_embedding") or {}
    if not shared.get("texts"):
        return ""
    return (
        f"Turns and questions were embedded once for all configurations ({shared['texts']} "
        f"texts in {shared['seconds']:.1f} s); ingest times exclude that shared work."
    )


def _get(groups: dict[str, Metrics], key: str, attribute: str) -> float | None:
    metrics = groups.get(key)
    value = getattr(metrics, attribute) if metrics is not None else None
    return None if value is None else float(value)


def draw_chart(report: Report, path: Path) -> None:
    """Draw evidence recall per LoCoMo category as grouped bars, one per configuration.

    Raises:
        MissingExtraError: matplotlib is not installed (the ``replay`` extra).
    """
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise MissingExtraError(
            "the replay's chart needs matplotlib, which is not installed",
            hint=install_command("replay"),
        ) from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [c for c in CATEGORIES.values() if any(c in s.by_category for s in report.summaries)]
    labels = labels or ["all"]
    width = 0.8 / max(len(report.summaries), 1)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(labels) + 2), 4.2))
    for index, summary in enumerate(report.summaries):
        values = [
            _get(summary.by_category, label, "evidence_recall")
            if label != "all"
            else summary.overall.evidence_recall
            for label in labels
        ]
        positions = [
            i + (index - (len(report.summaries) - 1) / 2) * width for i in range(len(labels))
        ]
        axes.bar(positions, [v or 0.0 for v in values], width, label=summary.name)
    axes.set_xticks(range(len(labels)), labels)
    axes.set_ylim(0, 1)
    axes.set_ylabel("evidence recall")
    axes.set_title(f"Evidence recall by category (budget {report.settings.get('budget')} tokens)")
    axes.legend(fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(report: Report, out_dir: Path) -> dict[str, Path]:
    """Write report.json, summary.md and chart.png into ``out_dir``; return their paths.

    Without matplotlib (the ``replay`` extra) the chart is left out, with a warning.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "markdown": out_dir / "summary.md",
        "chart": out_dir / "chart.png",
    }
    paths["json"].write_text(
        json.dumps(report.to_json(), indent=1, ensure_ascii=False), encoding="utf-8"
    )
    paths["markdown"].write_text(summary_markdown(report), encoding="utf-8")
    try:
        draw_chart(report, paths["chart"])
    except MissingExtraError as exc:  # the scores are written; only the picture is missing
        logger.warning("no chart: %s (%s)", exc, exc.hint)
        del paths["chart"]
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths
