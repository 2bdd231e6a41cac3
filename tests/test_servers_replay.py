"""Scale-out parity: LoCoMo replayed on PostgreSQL + a Chroma server recalls as embedded.

The turns structure's lexical half is FTS5 on SQLite and a ``tsvector`` search on
PostgreSQL (:mod:`agentmem.storage.pg_search`); without it a server database recalled by
meaning only. One LoCoMo conversation (``conv-26``: 419 turns, 199 questions) is replayed
into the turns configuration twice, on the embedded defaults and on the servers, and the
evidence recall of both must agree within one percentage point.

Run with ``pytest -m servers`` (``bash .ci/servers.sh``); the servers come from the
fixtures of ``test_servers.py``. The dialogue is read from ``../shared/data/locomo``
beside the repository (``AGENTMEM_TEST_LOCOMO`` names another copy); the test skips
without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from test_servers import chroma_url, database_url, postgres_admin_url  # noqa: F401 (fixtures)

from agentmem.replay import replay
from agentmem.replay.report import Report
from agentmem.replay.runner import replay_user
from agentmem.storage.vectors import VectorIndex
from agentmem.testing.contract import shared_embedder

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[1]
LOCOMO = Path(
    os.environ.get("AGENTMEM_TEST_LOCOMO")
    or ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
)
#: The configuration compared, and the ones the replay adds (the baselines).
CONFIGURATIONS = ("turns", "recent", "similarity")


@pytest.fixture
def clean_chroma(chroma_url: str) -> Iterator[str]:  # noqa: F811 (the fixture imported above)
    """The Chroma server, without the replay's collections before and after the test."""

    def drop() -> None:
        vectors = VectorIndex(shared_embedder(), url=chroma_url)
        try:
            for key in CONFIGURATIONS:
                user = replay_user("conv-26", key, on_servers=True)
                for store in vectors.user_stores(user):
                    vectors.drop(store, user)
        finally:
            vectors.close()

    drop()
    yield chroma_url
    drop()


def recall_of(report: Report, name: str) -> float:
    found = report.summary(name).overall.evidence_recall
    assert found is not None
    return found


@pytest.mark.skipif(not LOCOMO.is_file(), reason=f"{LOCOMO} is absent")
def test_locomo_evidence_recall_on_servers_matches_embedded(
    database_url: str,  # noqa: F811 (the fixture imported above)
    clean_chroma: str,
    tmp_path: Path,
) -> None:
    with open(os.devnull, "w") as nowhere:
        quiet = Console(file=nowhere)

        def run(out: str, database: str | None = None, chroma: str | None = None) -> Report:
            # The settings of the documented LoCoMo figures (docs/replay.md); split
            # "even" is the file's first conversation, conv-26.
            return replay(
                [LOCOMO],
                configurations="turns",
                budget=1500,
                k=50,
                split="even",
                out_dir=tmp_path / out,
                console=quiet,
                database_url=database,
                chroma_url=chroma,
            )

        embedded = run("embedded")
        served = run("servers", database_url, clean_chroma)
    # Both backends really held the memory: nothing local for the servers' run.
    assert (tmp_path / "embedded" / "data" / "turns" / "agentmem.sqlite").exists()
    assert not (tmp_path / "servers" / "data" / "turns").exists()
    local, remote = recall_of(embedded, "turns"), recall_of(served, "turns")
    figures = f"evidence recall, turns on conv-26: embedded {local:.1%}, servers {remote:.1%}"
    logging.getLogger(__name__).info(figures)  # shown with --log-cli-level=INFO
    assert local > recall_of(embedded, "similarity")  # the lexical half is worth measuring
    assert abs(local - remote) <= 0.01, figures
