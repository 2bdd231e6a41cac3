"""A third-party memory structure: a tiny keyword store, plugged into agentmem.

A structure implements the small :class:`~agentmem.protocols.MemoryStore` protocol
(``write``, ``retrieve``, ``invalidate``, ``forget``). :class:`~agentmem.storage.items.ItemIndex`
does the shared plumbing: items in the records database with their provenance, validity
and history, and vectors in the index (unused by this store's retrieval, but kept so the
items behave like every other structure's). A package makes it available by name through
the ``agentmem.stores`` entry-point group, with a factory taking a ``StoreContext``::

    # pyproject.toml of your package
    [project.entry-points."agentmem.stores"]
    keywords = "my_package.keywords:KeywordStore"

after which ``Memory(stores=("turns", "keywords"))`` or ``agentmem chat --stores
turns,keywords`` uses it. Pass the shared contract suite in your tests::

    from agentmem.testing.contract import MemoryStoreContract

    class TestKeywordStore(MemoryStoreContract):
        def make_store(self, context):
            return KeywordStore(context)

Run it offline: ``python examples/custom_store.py``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.console import Console

from agentmem import Memory
from agentmem.config import load_config
from agentmem.factory import Components
from agentmem.ledger.facts import FactLedger
from agentmem.manager import MemoryManager
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder
from agentmem.protocols import StoreContext
from agentmem.storage.items import ItemIndex, visible
from agentmem.storage.records import Records, new_item_id
from agentmem.storage.vectors import VectorIndex
from agentmem.text import content_words
from agentmem.types import Change, MemoryItem, Query, Recalled, Turn


def stems(text: str) -> set[str]:
    """Return the content words of ``text``, with a plural or third-person "s" cut off."""
    return {w[:-1] if w.endswith("s") and not w.endswith("ss") else w for w in content_words(text)}


class KeywordStore:
    """Each turn as an item, recalled by the keywords it shares with the query.

    Retrieval reads the user's items from the records database and scores keyword
    overlap: fine for thousands of turns, and no embedding at query time.

    Args:
        context: The core services.
        name: The structure's name in records and results.
    """

    def __init__(self, context: StoreContext, *, name: str = "keywords") -> None:
        self.name = name
        self._records = context.records
        self._index = ItemIndex(context, name)

    def write(self, turns: Sequence[Turn]) -> list[Change]:
        """Store each turn with its keywords."""
        items = [
            MemoryItem(
                id=new_item_id(),
                store=self.name,
                kind="turn",
                user_id=turn.user_id,
                agent_id=turn.agent_id,
                session_id=turn.session_id,
                text=turn.render(),
                source_turn_ids=(turn.id,),
                valid_from=turn.timestamp,
                metadata={"keywords": sorted(stems(turn.text))},
            )
            for turn in turns
        ]
        stored = self._index.add(items, reason="keywords indexed")
        return [Change("ADD", item, "keywords indexed") for item in stored]

    def retrieve(self, query: Query, k: int) -> list[Recalled]:
        """Return the ``k`` visible items sharing the most keywords with the query."""
        wanted = stems(query.text)
        if not wanted or k <= 0:
            return []
        everything = query.include_history or query.as_of is not None
        found = []
        for item in self._records.store_items(
            self.name, query.scope.user_id, current_only=not everything
        ):
            shared = wanted & set(item.metadata.get("keywords", ()))
            if shared and visible(item, query):
                found.append(Recalled(item, len(shared) / len(wanted)))
        found.sort(key=lambda recalled: -recalled.score)
        return found[:k]

    def invalidate(
        self,
        item_ids: Sequence[str],
        reason: str,
        *,
        at: datetime | None = None,
        superseded_by: str | None = None,
    ) -> None:
        """Mark items invalid (they stay in history)."""
        self._index.invalidate(item_ids, reason, at=at, superseded_by=superseded_by)

    def forget(self, user_id: str) -> int:
        """Drop the user's vectors (the records database forgets the rows)."""
        return self._index.forget(user_id)


def main() -> None:
    """Put the keyword store behind the Memory API (with the fact ledger) and use it."""
    console = Console(markup=False, highlight=False)
    with tempfile.TemporaryDirectory() as folder:
        # Wired by hand here; an installed package would just name it in `stores`.
        records = Records(Path(folder) / "records.db")
        embedder = CachingEmbedder(MiniLMEmbedder())
        vectors = VectorIndex(embedder, path=Path(folder) / "chroma")
        context = StoreContext(records, vectors, embedder)
        manager = MemoryManager(
            records, embedder, [KeywordStore(context)], facts=FactLedger(context)
        )
        config = load_config(data_dir=folder, model="none", env={})
        components = Components(config, records, vectors, embedder, None, manager)
        with Memory.from_components(components) as memory:
            memory.add("My sister Ana lives in Porto.", user_id="sam", timestamp="2024-01-10")
            memory.add("I live in Boston.", user_id="sam", timestamp="2024-01-11")
            memory.add("We moved to Denver last week.", user_id="sam", timestamp="2024-06-10")
            found = memory.search("Where do I live?", user_id="sam", include_history=True)
            for item in found.items:
                state = "current" if item["current"] else "superseded"
                console.print(f"{state:<10} [{item['store']}] {item['memory']}")


if __name__ == "__main__":
    main()
