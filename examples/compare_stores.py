"""Run one dialogue through each memory structure and print what each recalls.

    python examples/compare_stores.py ../shared/data/locomo/locomo_dev.json
    python examples/compare_stores.py FILE --stores memtree,graph --questions 3

Each structure gets its own fresh memory (SQLite and chromadb in a temporary folder) and
ingests the first conversation of FILE session by session, in dialogue time; then the first
few questions are asked of each, and the top items are printed with their source turns.
Without a file it uses the small conversation shipped with the tests.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentmem.factory import build_stores
from agentmem.ledger.extraction import CachingExtractor, RuleExtractor
from agentmem.manager import MemoryManager
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder
from agentmem.protocols import StoreContext
from agentmem.replay.dataset import Sample, load_samples
from agentmem.storage.records import Records
from agentmem.storage.vectors import VectorIndex
from agentmem.types import Scope

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "replay_mini.json"
STRUCTURES = "turns,memtree,summary,memo,graph"


def ingest(sample: Sample, store: str, folder: Path, embedder: CachingEmbedder) -> MemoryManager:
    """Build a memory with one structure and replay the conversation into it."""
    records = Records(folder / "records.db")
    vectors = VectorIndex(embedder, path=folder / "chroma")
    context = StoreContext(records, vectors, embedder, extractor=CachingExtractor(RuleExtractor()))
    manager = MemoryManager(records, embedder, build_stores([store], context))
    user = sample.conversation.sample_id
    for session in sample.conversation.sessions:
        session_id = records.start_session(
            user, session_id=f"{user}-{session.number}", started_at=session.started_at
        )
        turns = records.add_turns(
            [
                dict(
                    user_id=user,
                    session_id=session_id,
                    speaker=turn.speaker,
                    role="user",
                    text=turn.text,
                    timestamp=turn.timestamp,
                    external_id=turn.dia_id,
                )
                for turn in session.turns
            ]
        )
        manager.write(turns)
        manager.end_session(user, session_id)
    return manager


def main(argv: Sequence[str] | None = None) -> int:
    """Compare the structures on one conversation; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=str(FIXTURE), help="a LoCoMo-format JSON file")
    parser.add_argument("--stores", default=STRUCTURES, help="comma list of structures")
    parser.add_argument("--questions", type=int, default=4, help="how many questions to ask")
    parser.add_argument("--top", type=int, default=3, help="items shown per structure")
    args = parser.parse_args(list(argv or []))
    console = Console()
    sample = load_samples([args.file])[0]
    questions = sample.questions[: args.questions]
    embedder = CachingEmbedder(MiniLMEmbedder())
    names = [s.strip() for s in args.stores.split(",") if s.strip()]
    console.print(
        f"[bold]{sample.conversation.sample_id}[/]: {sample.conversation.turn_count} turns in "
        f"{len(sample.conversation.sessions)} sessions, {len(questions)} questions"
    )
    with tempfile.TemporaryDirectory() as folder:
        managers = {}
        for name in names:
            with console.status(f"ingesting into {name} ..."):
                managers[name] = ingest(sample, name, Path(folder) / name, embedder)
        for question in questions:
            table = Table(title=question.text, show_lines=True, expand=True)
            table.add_column("structure", no_wrap=True)
            table.add_column("recalled (best first)")
            table.add_column("source turns", no_wrap=True)
            for name, manager in managers.items():
                recall = manager.recall(
                    question.text, Scope(sample.conversation.sample_id), k=args.top
                )
                records = manager.records
                for rank, item in enumerate(recall.memory[: args.top]):
                    turns = records.turns(item.user_id, ids=item.source_turn_ids)
                    dia = ", ".join(t.external_id or str(t.id) for t in turns[:4])
                    more = f" +{len(turns) - 4}" if len(turns) > 4 else ""
                    text = item.text if len(item.text) < 240 else item.text[:240] + " …"
                    table.add_row(name if rank == 0 else "", text, dia + more)
            console.print(table)
        for manager in managers.values():
            manager.records.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
