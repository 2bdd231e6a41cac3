"""Exact search over in-process copies of small partitions, checked against chromadb itself.

The copies must stay what chromadb holds through every kind of write. The reference is a
second index on the same folder with exact search turned off (``exact_limit=0``), which
asks chromadb directly; at these sizes chromadb's HNSW search finds every vector.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from agentmem.storage.vectors import VectorIndex, collection_name

DIM = 16


class _Vectors:
    """Stands in for an embedder: these tests give every vector themselves."""

    name = "given"
    dimension = DIM

    def embed(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - never called
        raise AssertionError("vectors are given")


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def pair(tmp_path: Path) -> tuple[VectorIndex, VectorIndex]:
    fast = VectorIndex(_Vectors(), path=tmp_path / "chroma")  # type: ignore[arg-type]
    plain = VectorIndex(_Vectors(), path=tmp_path / "chroma", exact_limit=0)  # type: ignore[arg-type]
    return fast, plain


def ranked(
    index: VectorIndex, query: np.ndarray, *, history: bool = False
) -> list[tuple[str, float]]:
    hits = index.query("s", "u", query, 1000, history=history)
    return [(h.id, round(h.similarity, 4), dict(h.metadata)) for h in hits]


def test_exact_search_returns_what_chromadb_returns(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    fast, plain = pair(tmp_path)
    vectors = unit(rng, 300)
    fast.upsert("s", "u", [f"v{n}" for n in range(300)], vectors, [{"n": n} for n in range(300)])
    query = unit(rng, 1)[0]

    found = fast.query("s", "u", query, 10)

    assert fast.copied() == {collection_name("s", "u"): 300}  # the copy answered
    best = np.argsort(-(vectors @ query))[:10]
    assert [h.id for h in found] == [f"v{n}" for n in best]
    assert [h.similarity for h in found] == pytest.approx(list((vectors @ query)[best]), abs=1e-5)
    assert [dict(h.metadata) for h in found] == [{"n": int(n)} for n in best]
    assert [(h.id, round(h.similarity, 4)) for h in plain.query("s", "u", query, 10)] == [
        (h.id, round(h.similarity, 4)) for h in found
    ]


def test_copies_follow_every_write(tmp_path: Path) -> None:
    """Random upserts, replacements, moves, deletes and drops; the copy never drifts."""
    rng = np.random.default_rng(7)
    choose = random.Random(7)
    fast, plain = pair(tmp_path)
    other = VectorIndex(_Vectors(), path=tmp_path / "chroma")  # type: ignore[arg-type]
    known: list[str] = []
    for step in range(120):
        action = choose.choice(["add", "add", "replace", "invalidate", "restore", "delete", "drop"])
        writer = other if step % 5 == 0 else fast  # a second index on the folder writes too
        if action == "add" or not known:
            ids = [f"i{step}-{n}" for n in range(choose.randint(1, 6))]
            writer.upsert("s", "u", ids, unit(rng, len(ids)), [{"current": True}] * len(ids))
            known += ids
        elif action == "replace":
            ids = choose.sample(known, min(3, len(known)))
            current = [{"current": choose.random() < 0.7} for _ in ids]
            writer.upsert("s", "u", ids, unit(rng, len(ids)), current)
        elif action in ("invalidate", "restore"):
            ids = choose.sample(known, min(4, len(known)))
            metadata = {"current": action == "restore", "step": step}
            writer.update_metadata("s", "u", ids, [metadata] * len(ids))
            writer.flush()
        elif action == "delete":
            ids = choose.sample(known, min(2, len(known)))
            writer.delete("s", "u", ids)
            known = [i for i in known if i not in ids]
        elif step % 40 == 0:
            # The other indexes on the folder must not search the dropped collection
            # through a handle they opened before.
            writer.drop("s", "u")
            known = []
        query = unit(rng, 1)[0]
        assert ranked(fast, query) == ranked(plain, query), f"step {step}: {action}"
        assert ranked(fast, query, history=True) == ranked(plain, query, history=True)
    assert known and len(fast.copied()) == 2


def test_partitions_past_the_limit_or_budget_are_searched_by_chromadb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    monkeypatch.setattr(VectorIndex, "EXACT_BUDGET", 70)
    fast, plain = pair(tmp_path)
    fast.exact_limit = 50
    fast.upsert("s", "u", [f"a{n}" for n in range(40)], unit(rng, 40), [{}] * 40)
    fast.upsert("s", "w", [f"b{n}" for n in range(60)], unit(rng, 60), [{}] * 60)
    query = unit(rng, 1)[0]

    assert [h.id for h in fast.query("s", "w", query, 5)] == [
        h.id for h in plain.query("s", "w", query, 5)
    ]
    assert [h.id for h in fast.query("s", "u", query, 5)] == [
        h.id for h in plain.query("s", "u", query, 5)
    ]
    assert fast.copied() == {collection_name("s", "u"): 40}
    # A copy that grows past the limit is let go; chromadb answers from then on.
    fast.upsert("s", "u", [f"c{n}" for n in range(20)], unit(rng, 20), [{}] * 20)
    assert fast.copied() == {}
    assert [h.id for h in fast.query("s", "u", query, 5)] == [
        h.id for h in plain.query("s", "u", query, 5)
    ]

    # The budget keeps the most recently used copies.
    fast.exact_limit = 1000
    for user in ("x", "y"):
        fast.upsert("s", user, [f"{user}{n}" for n in range(30)], unit(rng, 30), [{}] * 30)
        fast.query("s", user, query, 3)
    fast.query("s", "x", query, 3)
    fast.upsert("s", "z", [f"z{n}" for n in range(30)], unit(rng, 30), [{}] * 30)
    assert [h.id for h in fast.query("s", "z", query, 5)] == [
        h.id for h in plain.query("s", "z", query, 5)
    ]
    # x was used after y, so y's copy went out for z's.
    assert fast.copied() == {collection_name("s", "x"): 30, collection_name("s", "z"): 30}


def test_a_closed_index_lets_go_of_its_copies(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    fast, plain = pair(tmp_path)
    fast.upsert("s", "u", ["a", "b"], unit(rng, 2), [{}] * 2)
    fast.query("s", "u", unit(rng, 1)[0], 2)
    assert fast.copied() == {collection_name("s", "u"): 2}
    fast.close()
    plain.close()
    assert fast.copied() == {}
    reopened = VectorIndex(_Vectors(), path=tmp_path / "chroma")  # type: ignore[arg-type]
    assert reopened.copied() == {}  # the last close let go of the copies
    assert [h.id for h in reopened.query("s", "u", unit(rng, 1)[0], 2)]
    reopened.close()
