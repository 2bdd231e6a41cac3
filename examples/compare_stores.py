"""Run one dialogue through each memory structure and print what each recalls.

    python examples/compare_stores.py ../shared/data/locomo/locomo_dev.json
    python examples/compare_stores.py FILE --stores memtree,graph --questions 3
    python examples/compare_stores.py --ledger --history

Each structure gets its own fresh memory (SQLite and chromadb in a temporary folder) and
ingests the first conversation of FILE session by session, in dialogue time; then the first
few questions are asked of each, and the top items are printed with their validity (current
since when, or no longer current and until when) and their source turns. Without a file it
uses the small conversation shipped with the tests.

What it configures: offline builders (rules, no chat model), the MiniLM embedder, and by
default each structure alone, *without the fact ledger*. Nothing then invalidates an item
when a fact changes: after "I moved to Bristol", a structure may still recall "Nora lives
in Leeds" as current. ``--ledger`` adds the fact ledger, which ends what a change makes
stale (recall still shows only the structure's own items); ``--history`` also shows items
that are no longer current.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentmem.factory import build_stores
from agentmem.ledger.extraction import CachingExtractor, RuleExtractor
from agentmem.ledger.facts import FactLedger
from agentmem.manager import MemoryManager
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder
from agentmem.protocols import StoreContext
from agentmem.replay.dataset import Sample, load_samples
from agentmem.storage.records import Records
from agentmem.storage.vectors import VectorIndex
from agentmem.types import MemoryItem, Scope

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "replay_mini.json"
STRUCTURES = "turns,memtree,summary,memo,graph"


def ingest(
    sample: Sample, store: str, folder: Path, embedder: CachingEmbedder, *, ledger: bool = False
) -> MemoryManager:
    """Build a memory with one structure (and the fact ledger if asked); replay into it."""
    records = Records(folder / "records.db")
    vectors = VectorIndex(embedder, path=folder / "chroma")
    context = StoreContext(records, vectors, embedder, extractor=CachingExtractor(RuleExtractor()))
    facts = FactLedger(context) if ledger else None
    manager = MemoryManager(records, embedder, build_stores([store], context), facts=facts)
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


def validity(item: MemoryItem) -> str:
    """Say whether an item still holds, and since or until when (dialogue time)."""
    since = f"{item.valid_from:%Y-%m-%d}" if item.valid_from else ""
    if item.current:
        return f"current since {since}" if since else "current"
    until = f"{item.invalid_at:%Y-%m-%d}" if item.invalid_at else "?"
    return f"no longer current\n{since or '?'} until {until}"


def main(argv: Sequence[str] | None = None) -> int:
    """Compare the structures on one conversation; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=str(FIXTURE), help="a LoCoMo-format JSON file")
    parser.add_argument("--stores", default=STRUCTURES, help="comma list of structures")
    parser.add_argument("--questions", type=int, default=4, help="how many questions to ask")
    parser.add_argument("--top", type=int, default=3, help="items shown per structure")
    parser.add_argument(
        "--ledger", action="store_true", help="add the fact ledger (invalidates stale items)"
    )
    parser.add_argument(
        "--history", action="store_true", help="also recall items no longer current"
    )
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
    console.print(
        "Configured: offline rules (no chat model), MiniLM embeddings, "
        + (
            "fact ledger on (a changed fact ends what asserts the old value)."
            if args.ledger
            else "fact ledger off (nothing is invalidated when a fact changes; try --ledger)."
        )
        + (" Items no longer current are shown too." if args.history else "")
    )
    with tempfile.TemporaryDirectory() as folder:
        managers = {}
        for name in names:
            with console.status(f"ingesting into {name} ..."):
                managers[name] = ingest(
                    sample, name, Path(folder) / name, embedder, ledger=args.ledger
                )
        for question in questions:
            table = Table(title=question.text, show_lines=True, expand=True)
            table.add_column("structure", no_wrap=True)
            table.add_column("recalled (best first)")
            table.add_column("validity", no_wrap=True)
            table.add_column("source turns", no_wrap=True)
            for name, manager in managers.items():
                recall = manager.recall(
                    question.text,
                    Scope(sample.conversation.sample_id),
                    k=args.top,
                    include_history=args.history,
                    structures=[name],
                )
                records = manager.records
                for rank, item in enumerate(recall.memory[: args.top]):
                    turns = records.turns(item.user_id, ids=item.source_turn_ids)
                    dia = ", ".join(t.external_id or str(t.id) for t in turns[:4])
                    more = f" +{len(turns) - 4}" if len(turns) > 4 else ""
                    shown = escape(item.shown_text())  # an old value is marked with its change
                    text = shown if len(shown) < 320 else shown[:320] + " …"
                    table.add_row(name if rank == 0 else "", text, validity(item), dia + more)
            console.print(table)
        for manager in managers.values():
            manager.records.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
