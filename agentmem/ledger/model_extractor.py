"""The model-based fact extractor: one schema-constrained chat call per batch of turns."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from agentmem.errors import ModelError, StructuredOutputError
from agentmem.ledger.rules import RuleExtractor
from agentmem.ledger.slots import ATTRIBUTE_LABELS, SINGLE_VALUED, Fact, FactExtractor
from agentmem.models.building import BuildStats, structured_call
from agentmem.prompts.extraction import (
    FACTS_SCHEMA,
    ExtractedFact,
    extraction_messages,
    validate_facts,
)
from agentmem.protocols import ChatModel
from agentmem.types import Turn

logger = logging.getLogger(__name__)


class ModelExtractor:
    """Extracts facts with a chat model: one schema-constrained call per batch of turns.

    A failed call falls back to the rule extractor for that batch (logged and counted in
    ``stats``), so memory is never left without facts.

    Args:
        model: A capable chat model.
        fallback: The extractor used when the model fails.
        batch_size: Turns per call.
    """

    name = "model"

    def __init__(
        self,
        model: ChatModel,
        *,
        fallback: FactExtractor | None = None,
        batch_size: int = 20,
    ) -> None:
        self.model = model
        self.fallback = fallback or RuleExtractor()
        self.batch_size = batch_size
        self.stats = BuildStats()

    def extract(self, turns: Sequence[Turn]) -> dict[int, list[Fact]]:
        """Return the facts of each turn, one model call per ``batch_size`` turns."""
        return self.extract_marked(turns)[0]

    def extract_marked(self, turns: Sequence[Turn]) -> tuple[dict[int, list[Fact]], set[int]]:
        """Return the facts of each turn, and the turns whose facts came from the fallback.

        Those turns deserve another try once the model answers again (see
        :meth:`agentmem.ledger.facts.FactLedger.retry_pending`).
        """
        result: dict[int, list[Fact]] = {}
        fell_back: set[int] = set()
        for start in range(0, len(turns), self.batch_size):
            batch = list(turns[start : start + self.batch_size])
            ids = {t.id for t in batch}
            speakers = {t.id: t.speaker for t in batch}
            try:
                answer: list[ExtractedFact] = structured_call(
                    self.model,
                    extraction_messages(batch),
                    FACTS_SCHEMA,
                    validate=functools.partial(validate_facts, turn_ids=ids),
                    stats=self.stats,
                )
            except (ModelError, StructuredOutputError) as exc:
                logger.warning(
                    "fact extraction failed, using rules for %d turns: %s", len(batch), exc
                )
                self.stats.add_failure(queued=False)
                result.update(self.fallback.extract(batch))
                fell_back.update(ids)
                continue
            for turn in batch:
                result.setdefault(turn.id, [])
            for fact in answer:
                result[fact.turn_id].append(_fact(fact, speakers[fact.turn_id]))
        return result, fell_back


def _fact(answer: ExtractedFact, speaker: str) -> Fact:
    """Return the ledger's fact of one the model stated; an unknown attribute is a triple."""
    attribute = answer.attribute
    known = attribute in ATTRIBUTE_LABELS or attribute.startswith("favourite ")
    single = answer.single_valued
    return Fact(
        subject=answer.subject,
        attribute=attribute,
        value=answer.value,
        turn_id=answer.turn_id,
        speaker=speaker,
        stated=answer.stated,
        polarity=answer.polarity,
        single_valued=attribute in SINGLE_VALUED if single is None else single,
        generic=not known,
    )
