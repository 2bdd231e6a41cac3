"""After a killed process, the next open sets the vectors from the records (real processes)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from agentmem.models.embeddings import MiniLMEmbedder
from agentmem.protocols import StoreContext
from agentmem.storage.items import ItemIndex, vector_metadata
from agentmem.storage.records import Records
from agentmem.storage.repair import reconcile, repair_vectors
from agentmem.storage.vectors import NEVER, VectorIndex, timestamp
from agentmem.types import MemoryItem

T0 = datetime(2024, 1, 1, 12, 0)
T1 = datetime(2024, 2, 1, 12, 0)

#: Stores three items, writes their vectors, supersedes one, journals a vector whose record
#: is never committed, then dies: the move of the superseded one is still buffered.
KILLED_WRITER = """
import os, sys
from datetime import datetime
import numpy as np
from agentmem.models.embeddings import MiniLMEmbedder
from agentmem.protocols import StoreContext
from agentmem.storage.items import ItemIndex
from agentmem.storage.records import Records
from agentmem.storage.vectors import VectorIndex
from agentmem.types import MemoryItem

folder = sys.argv[1]
records = Records(folder + "/records.db")
vectors = VectorIndex(MiniLMEmbedder(), path=folder + "/chroma")  # vectors given: no model
index = ItemIndex(StoreContext(records, vectors, vectors.embedder), "facts")
at = datetime(2024, 1, 1, 12, 0)
items = [
    MemoryItem(id=f"i{n}", store="facts", kind="fact", user_id="alice", text=f"fact {n}",
               source_turn_ids=(), valid_from=at)
    for n in range(3)
]
rows = np.eye(8, dtype=np.float32)
index.add(items, rows[:3])
vectors.flush()
index.invalidate(["i1"], "replaced", at=datetime(2024, 2, 1, 12, 0), superseded_by="i2")
vectors.upsert("facts", "alice", ["never-stored"], rows[3:4],
               [{"kind": "fact", "current": True, "valid_from": 0.0, "invalid_at": 1e12}])
print("written", flush=True)
os.kill(os.getpid(), 9)
"""


def killed_writer(folder: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == -9 and "written" in done.stdout, done.stderr


def partitions(vectors: VectorIndex) -> dict[str, tuple[bool, dict]]:
    """Return each vector's partition (history or not) and metadata, by id."""
    found: dict[str, tuple[bool, dict]] = {}
    for stored in vectors.stored():
        for item_id, metadata in zip(stored.ids, stored.metadatas, strict=True):
            assert item_id not in found, f"{item_id} is in both partitions"
            found[item_id] = (stored.history, metadata)
    return found


def test_a_killed_process_owes_a_repair_that_only_the_repair_pays(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    VectorIndex(embedder, path=tmp_path / "chroma").close()
    clean = VectorIndex(embedder, path=tmp_path / "chroma")
    assert not clean.needs_repair  # closed cleanly: nothing was lost
    clean.close()

    killed_writer(tmp_path)
    for _ in range(2):  # opened and closed without repairing: still owed
        reopened = VectorIndex(embedder, path=tmp_path / "chroma")
        assert reopened.needs_repair
        reopened.close()

    records = Records(tmp_path / "records.db")
    vectors = VectorIndex(embedder, path=tmp_path / "chroma")
    try:
        assert repair_vectors(records, vectors) is not None
        assert not vectors.needs_repair
        assert repair_vectors(records, vectors) is None  # paid once
    finally:
        vectors.close()
        records.close()
    assert not VectorIndex(embedder, path=tmp_path / "chroma").needs_repair


def test_the_repair_files_vectors_as_their_records_say_and_drops_orphans(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    killed_writer(tmp_path)
    records = Records(tmp_path / "records.db")
    vectors = VectorIndex(embedder, path=tmp_path / "chroma")
    try:
        before = partitions(vectors)
        # What the killed process left: the superseded item filed as current, an orphan.
        assert before["i1"] == (False, vector_metadata(records.get_item("i0")))
        assert "never-stored" in before

        done = repair_vectors(records, vectors)

        assert done is not None and (done.updated, done.orphans) == (1, 1)
        after = partitions(vectors)
        assert set(after) == {"i0", "i1", "i2"}
        superseded = records.get_item("i1")
        assert after["i1"] == (True, vector_metadata(superseded))
        assert after["i1"][1]["invalid_at"] == timestamp(T1) and not after["i1"][1]["current"]
        assert after["i0"] == (False, vector_metadata(records.get_item("i0")))
        assert after["i0"][1]["invalid_at"] == NEVER
        assert np.allclose(vectors.get("facts", "alice", ["i1"])["i1"], np.eye(8)[1])
    finally:
        vectors.close()
        records.close()


def test_reconcile_leaves_vectors_that_are_not_items_alone(
    store_context: StoreContext, embedder: MiniLMEmbedder
) -> None:
    vectors = store_context.vectors
    assert isinstance(vectors, VectorIndex)
    index = ItemIndex(store_context, "turns")
    item = MemoryItem(
        id="t1",
        store="turns",
        kind="turn",
        user_id="bob",
        text="I like tea.",
        source_turn_ids=(),
        valid_from=T0,
    )
    index.add([item])
    # A plugin's own vector: its metadata is not an item's, so no record is expected.
    vectors.upsert("turns", "bob", ["plugin-1"], embedder.embed(["tea"]), [{"source": "x"}])

    records = store_context.records

    def truth(ids: list[str]) -> dict:
        return {i.id: (i.user_id, vector_metadata(i)) for i in records.items(ids)}

    done = reconcile(vectors, truth)

    assert (done.updated, done.orphans) == (0, 0)
    assert set(partitions(vectors)) == {"t1", "plugin-1"}
