"""Structured answers: each schema sent is generated from the model that validates the answer."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from agentmem.prompts.answers import answer_schema, parse_answer
from agentmem.prompts.extraction import FACTS_SCHEMA, FactsAnswer
from agentmem.prompts.memo import MEMO_SCHEMA, MemoAnswer
from agentmem.prompts.memtree import AGGREGATE_SCHEMA, AggregateAnswer, validate_aggregation
from agentmem.prompts.replay import JUDGE_SCHEMA, Judgement, validate_judgement
from agentmem.prompts.resolution import RESOLUTION_SCHEMA, ResolutionAnswer
from agentmem.prompts.summary import SUMMARY_SCHEMA, SummaryAnswer

SHAPES: list[tuple[dict[str, Any], type[BaseModel]]] = [
    (FACTS_SCHEMA, FactsAnswer),
    (MEMO_SCHEMA, MemoAnswer),
    (SUMMARY_SCHEMA, SummaryAnswer),
    (AGGREGATE_SCHEMA, AggregateAnswer),
    (JUDGE_SCHEMA, Judgement),
    (RESOLUTION_SCHEMA, ResolutionAnswer),
]


@pytest.mark.parametrize(("schema", "shape"), SHAPES, ids=[s.__name__ for _, s in SHAPES])
def test_the_schema_sent_is_the_answer_models_own(
    schema: dict[str, Any], shape: type[BaseModel]
) -> None:
    assert schema == answer_schema(shape)
    assert schema["type"] == "object" and schema["title"] == shape.__name__
    assert "$ref" not in repr(schema) and "$defs" not in schema


def test_the_schemas_keep_the_constraints_they_were_written_with() -> None:
    fact = FACTS_SCHEMA["properties"]["facts"]["items"]
    # single_valued may be left out: the ledger knows which of its slots are single-valued.
    assert fact["required"] == ["turn_id", "subject", "attribute", "value", "stated", "polarity"]
    assert fact["properties"]["single_valued"] == {"title": "Single Valued", "type": "boolean"}
    node = AGGREGATE_SCHEMA["properties"]["nodes"]["items"]
    assert AGGREGATE_SCHEMA["additionalProperties"] is False
    assert node["additionalProperties"] is False and node["required"] == ["node_id", "text"]
    assert JUDGE_SCHEMA["additionalProperties"] is False
    assert JUDGE_SCHEMA["required"] == ["correct", "reason"]
    memo = MEMO_SCHEMA["properties"]["memos"]["items"]
    assert memo["properties"]["turn_ids"]["items"] == {"type": "integer"}


def test_a_closed_schema_still_forgives_extra_keys_in_the_answer() -> None:
    answer = {"nodes": [{"node_id": "a", "text": " A. ", "confidence": 1}], "note": "done"}
    assert validate_aggregation(answer, ["a"]) == {"a": "A."}
    assert validate_judgement({"correct": True, "reason": None, "score": 5}) is True


@pytest.mark.parametrize(
    ("shape", "data", "message"),
    [
        (AggregateAnswer, ["a"], 'the answer must be a JSON object with a "nodes" list'),
        (AggregateAnswer, {"nodes": {"a": "A."}}, 'with a "nodes" list'),
        (Judgement, {"correct": "yes"}, "correct: Input should be a valid boolean (got 'yes')"),
        (
            ResolutionAnswer,
            {"operations": [{"op": "ADD", "reason": "new"}]},
            "operations[0]: an ADD operation needs its new fact",
        ),
    ],
)
def test_a_rejected_answer_says_where_and_what_in_plain_words(
    shape: type[BaseModel], data: Any, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        parse_answer(shape, data)
    assert message in str(caught.value)
    # No pydantic boilerplate for the model to read when it is asked again.
    assert "errors.pydantic.dev" not in str(caught.value)
    assert "validation error" not in str(caught.value)
