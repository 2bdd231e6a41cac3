"""The stale guard's test of an item against many stale values (an index by rarest word)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agentmem.ledger import propagation
from agentmem.ledger.propagation import StaleGuard, StaleValue
from agentmem.storage.records import Records
from agentmem.types import MemoryItem

WORDS = ["lisbon", "porto", "new", "york", "st", "ives", "the", "red", "van", "mochi", "s"]


def _values(rng: random.Random, count: int) -> list[StaleValue]:
    values = []
    for n in range(count):
        value = " ".join(rng.choice(WORDS).title() for _ in range(rng.randint(1, 3)))
        value = rng.choice([value, f"{value}'s", f"the {value}", "!!", value.upper()])
        replaced = rng.choice([None, rng.choice(WORDS)])
        turns = frozenset(rng.sample(range(20), 2))
        values.append(StaleValue("x", "a", value, replaced, f"f{n}", None, turns, None))
    return values


def _item(rng: random.Random, n: int) -> MemoryItem:
    text = " ".join(rng.choice(WORDS + ["I", "moved", "to", "Mochi's"]) for _ in range(8))
    sources = tuple(rng.sample(range(20), rng.randint(1, 3)))
    return MemoryItem(f"i{n}", "memo", "memo", "u", f"Sam: {text}.", sources)


def test_the_index_finds_what_testing_every_value_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = Records(tmp_path / "r.db")
    try:
        guard = StaleGuard(records)
        rng = random.Random(5)
        values = _values(rng, 300)
        items = [_item(rng, n) for n in range(300)]
        indexed = [guard.stale_for(item, values) for item in items]
        monkeypatch.setattr(propagation, "INDEXED_FROM", 10**9)  # every value, in order
        plain = [guard.stale_for(item, values) for item in items]
        assert indexed == plain
        assert sum(v is not None for v in plain) > 50  # the comparison is not vacuous
        assert len({v.fact_id for v in plain if v is not None}) > 5
    finally:
        records.close()
