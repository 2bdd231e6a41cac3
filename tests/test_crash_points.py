"""Crash safety, window by window: a replay killed at a chosen point resumes exactly.

tests/test_crash_safety.py kills replays at random moments; each window between two
writes that a kill can split is pinned here by killing at it on purpose
(tests/kill_point.py: SIGKILL when a given function returns), then resuming, then
comparing every record, item validity and vector with an uninterrupted run's
(tests/crash_snapshot.py). The demo dialogues change a job and a home, and say "She
practises every evening" a session after naming Lily.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_snapshot import assert_same, snapshot

from agentmem.testing import FakeOpenAIServer

pytestmark = [
    pytest.mark.heavy,  # about a minute: two replays a point, on two cores
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals"),
]

DEMO = Path(__file__).resolve().parents[1] / "examples" / "data" / "demo_dialogues.json"
KILL_POINT = Path(__file__).resolve().parent / "kill_point.py"
DATA = Path("data") / "all"

#: The stores' write paths, as the kill points name them.
SUMMARY = "agentmem.stores.summary.store:SummaryStore"
MEMO = "agentmem.stores.memo.store:MemoStore"
MANAGER = "agentmem.manager:MemoryManager"
ADD_ITEMS = "agentmem.storage.memory_items:ItemRecords.add_items"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(embedding_dimension=48) as fake:
        yield fake


@pytest.fixture(scope="module")
def environment(server: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {
        **os.environ,
        "AGENTMEM_HOME": str(tmp_path_factory.mktemp("home")),
        "AGENTMEM_EMBEDDER": "openai:fake-embedding",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "test",
        "HF_HUB_OFFLINE": "1",
    }


def replay_args(out: Path) -> list[str]:
    return [
        "replay",
        str(DEMO),
        *("--stores", "all", "--limit-questions", "0", "--model", "none"),
        *("--out", str(out)),
    ]


@pytest.fixture(scope="module")
def expected(environment: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What an uninterrupted replay of the demo dialogues builds."""
    out = tmp_path_factory.mktemp("reference")
    command = [sys.executable, "-m", "agentmem.cli", *replay_args(out)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return snapshot(out / DATA)


@pytest.mark.parametrize(
    ("point", "within", "nth"),
    [
        # The summary's vectors are written, its records not yet: the vectors are orphans
        # until the resumed commit writes the same ids again.
        pytest.param(
            "agentmem.storage.vectors:VectorIndex.upsert",
            f"{SUMMARY}._commit",
            2,
            id="summary-vectors-before-records",
        ),
        # A summary version stored, the one it replaces not yet retired.
        pytest.param(ADD_ITEMS, f"{SUMMARY}._commit", 2, id="summary-before-retiring"),
        # Sessions ended, superseded items' vector moves still buffered in memory.
        pytest.param(f"{MANAGER}.end_session", None, 3, id="metadata-moves-buffered"),
        # A session end split between two consolidating structures.
        pytest.param(f"{SUMMARY}.end_session", None, 2, id="between-summary-and-memo"),
        # The new process resumes after "my daughter Lily" and before "She practises".
        pytest.param(f"{MANAGER}.end_session", None, 5, id="coreference-across-restart"),
        # A speaker's session digest stored, the month digest it changes not yet rebuilt.
        pytest.param(
            "agentmem.stores.summary.digests:Digests._replace",
            "agentmem.stores.summary.digests:Digests.end_session",
            3,
            id="session-digest-before-month",
        ),
        # Memos added, the topics they grew not yet (their centroids).
        pytest.param(ADD_ITEMS, f"{MEMO}._commit", 3, id="memo-before-topics-grow"),
        # A graph write's new items added, the entities they mention again not yet.
        pytest.param(
            ADD_ITEMS, "agentmem.stores.graph.writing:GraphWriter.fold", 2, id="graph-entities"
        ),
        # New facts stored, the ones they supersede not yet invalidated.
        pytest.param(
            "agentmem.storage.items:ItemIndex.add",
            "agentmem.ledger.facts:FactLedger._persist",
            3,
            id="facts-before-supersession",
        ),
        # The stale-value sweep stopped after its first invalidation.
        pytest.param(
            "agentmem.ledger.propagation:StaleGuard._invalidate", None, 1, id="sweep-halfway"
        ),
    ],
)
def test_replay_killed_at_a_point_resumes_to_what_an_uninterrupted_run_built(
    environment: dict, expected: dict, tmp_path: Path, point: str, within: str | None, nth: int
) -> None:
    out = tmp_path / "out"
    chosen = [point, "--nth", str(nth), *(["--within", within] if within else [])]
    killed = subprocess.run(
        [sys.executable, str(KILL_POINT), *chosen, "--", *replay_args(out)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = subprocess.run(
        [sys.executable, "-m", "agentmem.cli", *replay_args(out)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert_same(snapshot(out / DATA), expected)
