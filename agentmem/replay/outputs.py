"""What a replay produces before scoring: its settings and each question's output.

These values hold only what the systems produced (contexts, answers, timings); the gold
data is joined to them by :mod:`agentmem.replay.report`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agentmem.prompts.replay import context_line
from agentmem.protocols import ChatModel
from agentmem.replay.dataset import Sample
from agentmem.replay.progress import IngestStats
from agentmem.replay.scoring import ContextItem


@dataclass(frozen=True)
class ReplaySettings:
    """How a replay runs.

    Attributes:
        configurations: The configurations, baselines included, in order.
        budget: Most tokens a question's context may cost.
        k: Items each structure returns before fusion (and the similarity baseline's k).
        limit_questions: Ask at most this many questions per conversation.
        model: The answering model's name, or ``"none"`` (no answers, no F1).
        builds_with_model: Whether memory is built by the model (else offline builders).
        judge: Also grade answers with the model as a judge.
        breadth: Also ask the recap questions (:mod:`agentmem.replay.breadth`).
    """

    configurations: tuple[str, ...]
    budget: int = 1000
    k: int = 20
    limit_questions: int | None = None
    model: str = "none"
    builds_with_model: bool = False
    judge: bool = False
    breadth: bool = False

    def answer_key(self) -> str:
        """Return the hash of what decides a question's output (not the ingest)."""
        wanted = {"budget": self.budget, "k": self.k, "model": self.model}
        return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class QuestionOutput:
    """What one configuration produced for one question (no gold data in here).

    Attributes:
        config: The configuration.
        question_id: The question's id.
        sample_id: The conversation.
        question: The question text.
        items: The context, best first, with provenance and validity.
        context_tokens: Tokens of the rendered context.
        recall_seconds: Seconds the configuration took to build the context.
        answer: The model's answer, or ``None`` without a model.
        recall_model_calls: Model calls made while recalling (query rewriting).
        error: Why the model could not answer (the answer is then empty).
    """

    config: str
    question_id: str
    sample_id: str
    question: str
    items: tuple[ContextItem, ...]
    context_tokens: int
    recall_seconds: float
    answer: str | None = None
    recall_model_calls: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the output as JSON-ready data."""
        data = asdict(self)
        data["items"] = [_item_json(i) for i in self.items]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuestionOutput:
        """Rebuild an output recorded by :meth:`to_json`."""
        items = tuple(
            ContextItem(
                **{
                    **item,
                    "dia_ids": tuple(item["dia_ids"]),
                    "valid_from": _when(item["valid_from"]),
                    "invalid_at": _when(item["invalid_at"]),
                }
            )
            for item in data["items"]
        )
        return cls(**{**data, "items": items})

    @property
    def context_text(self) -> str:
        """The context as the answering prompt renders it."""
        return "\n".join(context_line(i.text, i.valid_from, i.current) for i in self.items)


@dataclass
class ReplayRun:
    """Everything a replay produced, before scoring.

    Attributes:
        settings: How it ran.
        samples: The conversations and questions replayed.
        outputs: Each configuration's output for each question asked.
        ingest: Each configuration's ingest statistics, one entry per session.
        out_dir: Where the report and progress files are.
        data_dir: Where each configuration's memory is kept.
    """

    settings: ReplaySettings
    samples: list[Sample]
    outputs: list[QuestionOutput]
    ingest: dict[str, list[IngestStats]]
    out_dir: Path
    data_dir: Path
    answer_model: ChatModel | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _item_json(item: ContextItem) -> dict[str, Any]:
    data = asdict(item)
    data["valid_from"] = item.valid_from.isoformat() if item.valid_from else None
    data["invalid_at"] = item.invalid_at.isoformat() if item.invalid_at else None
    return data


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
