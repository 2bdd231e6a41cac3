"""Offline token counting and fitting memory into a budget."""

from __future__ import annotations

from agentmem.models.tokens import TokenCounter, fit_to_budget
from agentmem.types import Message


def test_counts_match_cl100k_ids() -> None:
    counter = TokenCounter()
    # "hello world" is two cl100k_base tokens: [15339, 1917].
    assert counter.count("hello world") == 2
    assert counter.count("") == 0
    assert counter.count("<|endoftext|>") > 1  # special tokens are counted as text


def test_message_overhead() -> None:
    counter = TokenCounter()
    one = counter.count_messages([Message("user", "hello world")])
    two = counter.count_messages([Message("user", "hello world")] * 2)
    assert two - one == counter.count("hello world") + 4


def test_fit_keeps_best_first_and_skips_what_does_not_fit() -> None:
    counter = TokenCounter()
    items = ["short one", "word " * 200, "another short", "x"]
    fitted = fit_to_budget(items, str, counter, 30)
    assert fitted.kept == ["short one", "another short", "x"]
    assert fitted.dropped == 1
    assert fitted.tokens <= 30


def test_truncate() -> None:
    counter = TokenCounter()
    text = "word " * 100
    cut = counter.truncate(text, 10)
    assert counter.count(cut) <= 11 and cut.endswith("…")
    assert counter.truncate("tiny", 10) == "tiny"
