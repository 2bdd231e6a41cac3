"""Scoring a replay's outputs against the gold data, and aggregating the scores.

This is the only place where a system's outputs meet the gold answers, evidence and stale
values: per question (see :mod:`agentmem.replay.scoring` for each metric's rule), then per
configuration, per LoCoMo category and per scenario kind, with the costs of ingestion and
recall beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from agentmem.errors import AgentMemError
from agentmem.models.building import structured_call
from agentmem.prompts.replay import JUDGE_SCHEMA, judge_messages, validate_judgement
from agentmem.protocols import ChatModel
from agentmem.replay.breadth import RECAP_CATEGORIES
from agentmem.replay.coverage import coverage, rouge_l_recall
from agentmem.replay.dataset import ANNOTATIONS, Gold
from agentmem.replay.outputs import QuestionOutput, ReplayRun
from agentmem.replay.progress import IngestStats
from agentmem.replay.scoring import (
    answer_in_context,
    current_in_top,
    evidence_recall,
    falsely_invalidated,
    gold_stale_leaks,
    gold_text,
    has_stale_annotations,
    has_value_answer,
    keep_recalled,
    score_answer,
    stale_leaks,
    stale_ranked_above_current,
)

logger = logging.getLogger(__name__)

#: LoCoMo's categories, as numbered in its own evaluation code.
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


@dataclass(frozen=True)
class ScoredQuestion:
    """One configuration's output for one question, with its scores.

    ``None`` marks a metric that does not apply: no evidence, no answer, no model, no
    ``stale`` values (stale leaks), no ``stale_evidence`` annotation (stale leaks by the
    gold rule), not a ``keep`` question (keep recall), an answer that is no current value
    (false invalidation; see :func:`~agentmem.replay.scoring.has_value_answer`), or
    neither (current in the top 3), or no ``stale`` values or no value answer (stale
    ranked above current), not a recap (coverage), not a session recap (ROUGE-L).
    """

    output: QuestionOutput
    gold: Gold
    evidence_recall: float | None
    answer_in_context: float | None
    stale_leaks: int | None
    keep_recalled: bool | None
    falsely_invalidated: bool | None = None
    current_in_top3: bool | None = None
    f1: float | None = None
    exact: bool | None = None
    judged_correct: bool | None = None
    gold_stale_leaks: int | None = None
    stale_above_current: bool | None = None
    coverage: float | None = None
    rouge_l: float | None = None

    @property
    def category(self) -> str:
        """The LoCoMo category's name, or the recap's (``"recap-session"``, ...)."""
        if self.gold.recap is not None:
            return self.gold.recap
        return CATEGORIES.get(self.gold.category, str(self.gold.category))

    @property
    def is_recap(self) -> bool:
        """Whether this is a breadth question (:mod:`agentmem.replay.breadth`)."""
        return self.gold.recap is not None

    def to_json(self) -> dict[str, Any]:
        """Return the question's detail: context with provenance, answer, gold, scores."""
        data = self.output.to_json()
        data.update(
            category=self.category,
            kind=self.gold.kind,
            gold_answer=self.gold.answer,
            evidence=list(self.gold.evidence),
            stale=list(self.gold.stale),
            # null where the file does not annotate them, [] where it annotates none
            **{name: _listed(getattr(self.gold, name)) for name in ANNOTATIONS},
            scores={
                "evidence_recall": self.evidence_recall,
                "answer_in_context": self.answer_in_context,
                "stale_leaks": self.stale_leaks,
                "gold_stale_leaks": self.gold_stale_leaks,
                "stale_above_current": self.stale_above_current,
                "keep_recalled": self.keep_recalled,
                "falsely_invalidated": self.falsely_invalidated,
                "current_in_top3": self.current_in_top3,
                "f1": self.f1,
                "exact": self.exact,
                "judged_correct": self.judged_correct,
                "coverage": self.coverage,
                "rouge_l": self.rouge_l,
            },
        )
        return data


def _listed(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else list(values)


def _mean(values: Sequence[float | bool | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


@dataclass(frozen=True)
class Metrics:
    """Scores of a group of questions (means over the questions where each applies).

    Attributes:
        questions: Questions in the group.
        evidence_recall: Mean evidence recall.
        answer_in_context: Mean answer-in-context.
        stale_questions: Questions with ``stale`` values, whatever their kind.
        stale_leak_questions: Of those, the questions whose context leaked a stale value
            by the any-mention rule.
        stale_leak_items: Leaking items over all those questions.
        gold_stale_questions: Questions with ``stale`` values and ``stale_evidence``
            annotated: where the gold rule applies (0 for files without annotations).
        gold_stale_leak_questions: Of those, the questions whose context leaked a stale
            value by the gold rule.
        gold_stale_leak_items: Items leaking by the gold rule over all those questions.
        ranked_questions: Questions with ``stale`` values and a value answer: where
            "stale ranked above current" is judged.
        stale_above_current: Of those, the questions whose first leaking item comes
            before the first current item with the answer (or with no such item).
        keep_recall: Share of ``keep`` questions whose answer is in a current item.
        value_questions: Questions whose answer is a current value (kinds ``update``,
            ``indirect``, ``third-party``, ``keep``): where false invalidations count.
        false_invalidations: Of those, the questions whose answer is in the context only
            in items marked as no longer current.
        keep_questions: Questions of kind ``keep`` with an answer.
        keep_false_invalidations: Of those, the falsely invalidated ones.
        current_in_top3: Share of questions with ``stale`` values or of kind ``keep`` (and a
            value answer) whose answer is in a current item among the first 3 items.
        f1: Mean LoCoMo F1 of the generated answers.
        exact: Share of exact matches.
        judged: Share the judge found correct.
        context_tokens: Mean tokens of context per question.
        coverage: Mean coverage of recap questions (:mod:`agentmem.replay.coverage`).
        rouge_l: Mean ROUGE-L recall of the session summaries (session recaps).
    """

    questions: int
    evidence_recall: float | None
    answer_in_context: float | None
    stale_questions: int
    stale_leak_questions: int
    stale_leak_items: int
    gold_stale_questions: int
    gold_stale_leak_questions: int
    gold_stale_leak_items: int
    ranked_questions: int
    stale_above_current: int
    keep_recall: float | None
    value_questions: int
    false_invalidations: int
    keep_questions: int
    keep_false_invalidations: int
    current_in_top3: float | None
    f1: float | None
    exact: float | None
    judged: float | None
    context_tokens: float | None
    coverage: float | None = None
    rouge_l: float | None = None

    @property
    def stale_leak_rate(self) -> float | None:
        """Share of questions with ``stale`` values with at least one stale leak."""
        return _rate(self.stale_leak_questions, self.stale_questions)

    @property
    def gold_stale_leak_rate(self) -> float | None:
        """Share of annotated questions with stale values leaking by the gold rule."""
        return _rate(self.gold_stale_leak_questions, self.gold_stale_questions)

    @property
    def stale_above_current_rate(self) -> float | None:
        """Share of ranked questions whose stale leak comes before the current answer."""
        return _rate(self.stale_above_current, self.ranked_questions)

    @property
    def false_invalidation_rate(self) -> float | None:
        """Share of value questions whose answer is in the context only as history."""
        return _rate(self.false_invalidations, self.value_questions)

    @property
    def keep_false_invalidation_rate(self) -> float | None:
        """The same, over ``keep`` questions only."""
        return _rate(self.keep_false_invalidations, self.keep_questions)

    @classmethod
    def of(cls, scored: Sequence[ScoredQuestion]) -> Metrics:
        """Aggregate scored questions."""
        leaks = [s.stale_leaks for s in scored if s.stale_leaks is not None]
        gold_leaks = [s.gold_stale_leaks for s in scored if s.gold_stale_leaks is not None]
        ranked = [s.stale_above_current for s in scored if s.stale_above_current is not None]
        invalidated = [s for s in scored if s.falsely_invalidated is not None]
        keep = [s for s in invalidated if s.gold.kind == "keep"]
        return cls(
            questions=len(scored),
            evidence_recall=_mean([s.evidence_recall for s in scored]),
            answer_in_context=_mean([s.answer_in_context for s in scored]),
            stale_questions=len(leaks),
            stale_leak_questions=sum(1 for n in leaks if n > 0),
            stale_leak_items=sum(leaks),
            gold_stale_questions=len(gold_leaks),
            gold_stale_leak_questions=sum(1 for n in gold_leaks if n > 0),
            gold_stale_leak_items=sum(gold_leaks),
            ranked_questions=len(ranked),
            stale_above_current=sum(ranked),
            keep_recall=_mean([s.keep_recalled for s in scored]),
            value_questions=len(invalidated),
            false_invalidations=sum(1 for s in invalidated if s.falsely_invalidated),
            keep_questions=len(keep),
            keep_false_invalidations=sum(1 for s in keep if s.falsely_invalidated),
            current_in_top3=_mean([s.current_in_top3 for s in scored]),
            f1=_mean([s.f1 for s in scored]),
            exact=_mean([s.exact for s in scored]),
            judged=_mean([s.judged_correct for s in scored]),
            context_tokens=_mean([s.output.context_tokens for s in scored]),
            coverage=_mean([s.coverage for s in scored]),
            rouge_l=_mean([s.rouge_l for s in scored]),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the metrics as JSON-ready data, each count's rate beside it."""
        return {
            **asdict(self),
            "stale_leak_rate": self.stale_leak_rate,
            "gold_stale_leak_rate": self.gold_stale_leak_rate,
            "stale_above_current_rate": self.stale_above_current_rate,
            "false_invalidation_rate": self.false_invalidation_rate,
            "keep_false_invalidation_rate": self.keep_false_invalidation_rate,
        }


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration's scores and costs.

    Attributes:
        name: The configuration.
        overall: Scores over every point question (recaps are scored apart).
        by_category: Scores per LoCoMo category, then per recap category.
        by_kind: Scores per scenario kind.
        ingested_turns: Turns ingested (over every run that contributed).
        turns_per_second: Ingest throughput.
        ingest_ms_per_turn: Ingest latency per turn, in milliseconds.
        model_calls_per_turn: Model calls per ingested turn (0 offline).
        model_tokens_per_turn: Model tokens per ingested turn (0 offline).
        recall_p50_ms: Median seconds to build a context, in milliseconds.
        recall_p95_ms: 95th percentile of the same.
        ingest_failures: Sessions whose write into memory failed.
        model_failures: Model calls made while ingesting that failed after their retries.
        model_retries: Failed model attempts retried while ingesting.
        build_failures: Model builds that failed while ingesting (the offline builder
            stood in).
        builds_queued: Of those, the builds queued for a retry.
        builds_retried: Queued builds retried successfully in this run.
        builds_pending: Queued builds still waiting after this run.
    """

    name: str
    overall: Metrics
    by_category: dict[str, Metrics]
    by_kind: dict[str, Metrics]
    ingested_turns: int
    turns_per_second: float | None
    ingest_ms_per_turn: float | None
    model_calls_per_turn: float
    model_tokens_per_turn: float
    recall_p50_ms: float | None
    recall_p95_ms: float | None
    ingest_failures: int = 0
    model_failures: int = 0
    model_retries: int = 0
    build_failures: int = 0
    builds_queued: int = 0
    builds_retried: int = 0
    builds_pending: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data."""
        data = asdict(self)
        data["overall"] = self.overall.to_json()
        data["by_category"] = {k: v.to_json() for k, v in self.by_category.items()}
        data["by_kind"] = {k: v.to_json() for k, v in self.by_kind.items()}
        return data


@dataclass
class Report:
    """A scored replay."""

    settings: dict[str, Any]
    summaries: list[ConfigSummary]
    questions: list[ScoredQuestion]
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, name: str) -> ConfigSummary:
        """Return one configuration's summary.

        Raises:
            KeyError: No such configuration.
        """
        for summary in self.summaries:
            if summary.name == name:
                return summary
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """Return the whole report as JSON-ready data."""
        return {
            "settings": self.settings,
            "configurations": [s.to_json() for s in self.summaries],
            "questions": [q.to_json() for q in self.questions],
            **self.extra,
        }


def score_output(
    output: QuestionOutput, gold: Gold, judge: Callable[[str, str, str], bool | None] | None = None
) -> ScoredQuestion:
    """Score one output against its gold data (each metric only where it applies)."""
    items = output.items
    leaks = len(stale_leaks(items, gold)) if gold.stale else None
    gold_leaks = len(gold_stale_leaks(items, gold)) if has_stale_annotations(gold) else None
    kept = keep_recalled(items, gold) if gold.kind == "keep" else None
    value = has_value_answer(gold)
    invalidated = falsely_invalidated(items, gold) if value else None
    in_top = current_in_top(items, gold) if value and (gold.stale or gold.kind == "keep") else None
    above = stale_ranked_above_current(items, gold) if value and gold.stale else None
    f1 = exact = verdict = None
    if output.answer is not None:
        score = score_answer(output.answer, gold)
        f1, exact = score.f1, score.exact
        truth = gold_text(gold)
        if judge is not None and gold.category != 5 and truth is not None:
            verdict = judge(output.question, truth, output.answer)
    return ScoredQuestion(
        output=output,
        gold=gold,
        # A recap's evidence is scored by coverage, by what the context says of it.
        evidence_recall=None if gold.recap else evidence_recall(output.items, gold),
        answer_in_context=answer_in_context(output.context_text, gold),
        stale_leaks=leaks,
        keep_recalled=kept,
        falsely_invalidated=invalidated,
        current_in_top3=in_top,
        f1=f1,
        exact=exact,
        judged_correct=verdict,
        gold_stale_leaks=gold_leaks,
        stale_above_current=above,
        coverage=coverage(items, gold),
        rouge_l=rouge_l_recall(output.context_text, gold.reference) if gold.recap else None,
    )


def model_judge(model: ChatModel) -> Callable[[str, str, str], bool | None]:
    """Return a judge that asks ``model`` whether an answer matches the gold answer."""

    def judge(question: str, gold: str, answer: str) -> bool | None:
        try:
            verdict = structured_call(
                model,
                judge_messages(question, gold, answer),
                JUDGE_SCHEMA,
                validate=validate_judgement,
            )
        except AgentMemError as exc:
            logger.warning("the judge failed on %r: %s", question, exc)
            return None
        return bool(verdict)

    return judge


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) * 1000 if values else None


def summarise(
    name: str,
    scored: Sequence[ScoredQuestion],
    ingest: Sequence[IngestStats],
    builds: Mapping[str, int] | None = None,
) -> ConfigSummary:
    """Aggregate one configuration's scored questions and ingest statistics.

    ``builds`` is what retrying the queued model builds did in this run (``retried``,
    ``pending``).
    """
    by_category: dict[str, list[ScoredQuestion]] = {}
    for label in (*CATEGORIES.values(), *RECAP_CATEGORIES):
        group = [s for s in scored if s.category == label]
        if group:
            by_category[label] = group
    points = [s for s in scored if not s.is_recap]
    by_kind: dict[str, list[ScoredQuestion]] = {}
    for s in scored:
        if s.gold.kind:
            by_kind.setdefault(s.gold.kind, []).append(s)
    turns = sum(i.turns for i in ingest)
    seconds = sum(i.seconds for i in ingest)
    calls = sum(i.model_calls for i in ingest)
    tokens = sum(i.prompt_tokens + i.completion_tokens for i in ingest)
    recall = [s.output.recall_seconds for s in scored]
    return ConfigSummary(
        name=name,
        overall=Metrics.of(points),
        by_category={k: Metrics.of(v) for k, v in by_category.items()},
        by_kind={k: Metrics.of(v) for k, v in sorted(by_kind.items())},
        ingested_turns=turns,
        turns_per_second=turns / seconds if seconds > 0 else None,
        ingest_ms_per_turn=seconds / turns * 1000 if turns else None,
        model_calls_per_turn=calls / turns if turns else 0.0,
        model_tokens_per_turn=tokens / turns if turns else 0.0,
        recall_p50_ms=_percentile(recall, 50),
        recall_p95_ms=_percentile(recall, 95),
        ingest_failures=sum(i.failures for i in ingest),
        model_failures=sum(i.model_failures for i in ingest),
        model_retries=sum(i.model_retries for i in ingest),
        build_failures=sum(i.build_failures for i in ingest),
        builds_queued=sum(i.builds_queued for i in ingest),
        builds_retried=int((builds or {}).get("retried", 0)),
        builds_pending=int((builds or {}).get("pending", 0)),
    )


def build_report(run: ReplayRun) -> Report:
    """Score every output of a replay and aggregate per configuration."""
    gold = {
        q.id: g
        for s in run.samples
        for q, g in zip((*s.questions, *s.recaps), (*s.gold, *s.recap_gold), strict=True)
    }
    judge = model_judge(run.answer_model) if run.settings.judge and run.answer_model else None
    scored = [score_output(o, gold[o.question_id], judge) for o in run.outputs]
    builds = run.extra.get("model_builds") or {}
    summaries = [
        summarise(
            name,
            [s for s in scored if s.output.config == name],
            run.ingest.get(name, []),
            builds.get(name),
        )
        for name in run.settings.configurations
    ]
    settings = asdict(run.settings)
    settings["files"] = sorted({s.source for s in run.samples})
    settings["conversations"] = [s.conversation.sample_id for s in run.samples]
    settings["data_dir"] = str(run.data_dir)
    extra = dict(run.extra)
    settings["split"] = extra.pop("split", None)
    return Report(settings, summaries, scored, extra)
