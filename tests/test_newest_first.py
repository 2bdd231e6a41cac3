"""A question about how things stand now meets the latest of its best answers first."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from agentmem import Memory
from agentmem.fusion import newest_first
from agentmem.types import MemoryItem, Recalled


def recalled(name: str, day: int | None, score: float) -> Recalled:
    when = datetime(2024, 1, day) if day is not None else None
    item = MemoryItem(name, "turns", "turn", "u", name, (1,), valid_from=when)
    return Recalled(item, score)


def test_only_the_best_few_are_ordered_newest_first() -> None:
    ranked = [
        recalled("old best", 1, 0.9),
        recalled("untimed", None, 0.8),
        recalled("newest", 9, 0.7),
        recalled("newer still but fourth", 20, 0.6),
    ]
    ordered = [r.item.id for r in newest_first(ranked, window=3)]
    assert ordered == ["newest", "old best", "untimed", "newer still but fourth"]


def test_a_search_about_now_puts_the_latest_statement_first(tmp_path: Path) -> None:
    said = [
        ("I work at the Riverside bakery on early shifts and I love the smell of bread.", 1),
        ("My sister is visiting in April.", 2),
        ("Three weeks at the hospital pharmacy and I already know every corridor.", 3),
    ]
    with Memory(tmp_path, chat_model=None, env={}, model="none") as memory:
        for text, month in said:
            memory.add(text, user_id="u", timestamp=f"2024-0{month}-01T10:00:00")
        then = [r["text"] for r in memory.search("Where do I work?", user_id="u").items]
        now = [r["text"] for r in memory.search("Where do I work now?", user_id="u").items]
        assert "bakery" in then[0]  # the best match, said first
        assert "pharmacy" in now[0]  # the latest of the same best few
        assert set(now[:3]) == set(then[:3])
