"""The contract every memory structure must pass, built-in or third-party.

Subclass :class:`MemoryStoreContract` in a pytest module and implement ``make_store``::

    from agentmem.testing.contract import MemoryStoreContract

    class TestMyStore(MemoryStoreContract):
        def make_store(self, context):
            return MyStore(context)

The suite builds real backends (SQLite and a persistent chromadb in a temporary folder, the
shipped MiniLM embedder) and checks what the protocol promises: an empty store recalls
nothing; provenance survives a round trip; invalidated items are left out by default but
stay visible with their history; data persists across a restart (backends opened again,
and a fresh process, read it back from disk); users never see each
other's items; ``forget`` erases one user and leaves the others; ``as_of`` hides what did
not exist yet. Importing this module needs pytest (a test dependency).
"""

from __future__ import annotations

import abc
import inspect
import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agentmem.models.embeddings import MiniLMEmbedder
from agentmem.protocols import Consolidating, Embedder, MemoryStore, StoreContext
from agentmem.storage.records import Records
from agentmem.storage.vectors import VectorIndex
from agentmem.types import Query, Recalled, Scope, Turn

_embedder: MiniLMEmbedder | None = None
_embedder_lock = threading.Lock()

#: A short dialogue with distinct, recognisable facts.
DIALOGUE = (
    "My sister Ana lives in Porto and teaches piano there.",
    "I adopted a beagle puppy named Rex last weekend.",
    "I work as a nurse at the city hospital, mostly night shifts.",
    "My favourite food is spicy ramen from the place near the station.",
    "We are planning a hiking trip to the Alps next summer.",
    "My brother Tom just bought a red electric car.",
)
QUERY = "Where does my sister Ana live?"
START = datetime(2023, 5, 8, 13, 56)


def shared_embedder() -> MiniLMEmbedder:
    """Return one MiniLM embedder for the whole test session."""
    global _embedder
    with _embedder_lock:
        if _embedder is None:
            _embedder = MiniLMEmbedder()
            _embedder.warm()
        return _embedder


class MemoryStoreContract(abc.ABC):
    """The shared behaviour tests; subclass and implement :meth:`make_store`."""

    #: The largest ``k`` the tests ask for.
    k = 20

    @abc.abstractmethod
    def make_store(self, context: StoreContext) -> MemoryStore:
        """Return a new store instance over ``context`` (called again after a restart)."""

    def embedder(self) -> Embedder:
        """Return the embedder the backends use (override to test another)."""
        return shared_embedder()

    # -- helpers ----------------------------------------------------------------------------

    @pytest.fixture
    def backend_dir(self, tmp_path: Path) -> Path:
        return tmp_path

    def open_context(self, backend_dir: Path) -> StoreContext:
        """Open the backends (override to run the contract against servers)."""
        records = Records(backend_dir / "records.db")
        vectors = VectorIndex(self.embedder(), path=backend_dir / "chroma")
        return StoreContext(records, vectors, self.embedder())

    @pytest.fixture
    def context(self, backend_dir: Path) -> Iterator[StoreContext]:
        opened = self.open_context(backend_dir)
        yield opened
        _records(opened).close()

    @pytest.fixture
    def store(self, context: StoreContext) -> MemoryStore:
        return self.make_store(context)

    def write_dialogue(
        self,
        store: MemoryStore,
        context: StoreContext,
        user_id: str = "alice",
        lines: Sequence[str] = DIALOGUE,
        start: datetime = START,
    ) -> list[Turn]:
        """Store ``lines`` as one session of user turns, fold them in, end the session."""
        records = _records(context)
        session = records.start_session(user_id, started_at=start)
        turns = [
            records.add_turn(
                user_id, session, "user", "user", line, timestamp=start + timedelta(minutes=i)
            )
            for i, line in enumerate(lines)
        ]
        store.write(turns)
        if isinstance(store, Consolidating):
            store.end_session(user_id, session)
        return turns

    def query(
        self,
        context: StoreContext,
        user_id: str = "alice",
        text: str = QUERY,
        **options: object,
    ) -> Query:
        """Build a query as the manager would."""
        embedding = context.embedder.embed([text])[0]
        return Query(text=text, scope=Scope(user_id), embedding=embedding, **options)  # type: ignore[arg-type]

    def retrieve(self, store: MemoryStore, query: Query) -> list[Recalled]:
        """Retrieve and check the result's shape."""
        found = store.retrieve(query, self.k)
        assert len(found) <= self.k
        scores = [r.score for r in found]
        assert scores == sorted(scores, reverse=True), "results must be best first"
        return found

    # -- the contract -----------------------------------------------------------------------

    def test_satisfies_the_protocol(self, store: MemoryStore) -> None:
        assert isinstance(store, MemoryStore)
        assert isinstance(store.name, str) and store.name

    def test_empty_store_recalls_nothing(self, store: MemoryStore, context: StoreContext) -> None:
        assert self.retrieve(store, self.query(context)) == []

    def test_provenance_round_trip(self, store: MemoryStore, context: StoreContext) -> None:
        turns = self.write_dialogue(store, context)
        found = self.retrieve(store, self.query(context))
        assert found, "a written dialogue must be recalled"
        turn_ids = {t.id for t in turns}
        for recalled in found:
            item = recalled.item
            assert item.store == store.name
            assert item.user_id == "alice"
            assert item.text.strip()
            assert item.source_turn_ids, f"item {item.id} has no provenance"
            assert set(item.source_turn_ids) <= turn_ids
            assert item.current
            stored = context.records.get_item(item.id)
            assert stored.source_turn_ids == item.source_turn_ids
        assert any("Porto" in r.item.text for r in found[:5]), "the matching fact ranks high"

    def test_invalidated_items_leave_recall_but_keep_history(
        self, store: MemoryStore, context: StoreContext
    ) -> None:
        self.write_dialogue(store, context)
        target = self.retrieve(store, self.query(context))[0].item
        store.invalidate([target.id], "contract test", at=START + timedelta(days=1))
        after = self.retrieve(store, self.query(context))
        assert all(r.item.id != target.id for r in after)
        history = self.retrieve(store, self.query(context, include_history=True))
        old = [r.item for r in history if r.item.id == target.id]
        assert old and not old[0].current
        events = context.records.history(target.id)
        assert events[-1].reason == "contract test"
        assert context.records.get_item(target.id).invalid_at == START + timedelta(days=1)

    def test_persists_across_restart(
        self, store: MemoryStore, context: StoreContext, backend_dir: Path
    ) -> None:
        """Backends opened again on the folder recall, from disk, what these recalled."""
        self.write_dialogue(store, context)
        before = [r.item.id for r in self.retrieve(store, self.query(context))]
        _vectors(context).close()
        _records(context).close()
        reopened = self.open_context(backend_dir)
        try:
            again = self.make_store(reopened)
            found = self.retrieve(again, self.query(reopened))
            assert [r.item.id for r in found] == before
        finally:
            _vectors(reopened).close()
            _records(reopened).close()

    def test_persists_across_a_fresh_process(
        self, store: MemoryStore, context: StoreContext, backend_dir: Path
    ) -> None:
        """A fresh process recalls, from what is on disk, what this one recalled.

        About 18 s (the new process imports and loads everything): agentmem's own suite
        runs it with the heavy tests (tests/conftest.py); a plugin's suite runs it as is.
        """
        self.write_dialogue(store, context)
        before = [r.item.id for r in self.retrieve(store, self.query(context))]
        # Let go of the backends as an exiting process does (the folder lock included).
        _vectors(context).close()
        _records(context).close()
        assert self.recall_in_a_fresh_process(backend_dir) == before

    def recall_in_a_fresh_process(self, backend_dir: Path) -> list[str]:
        """Open the backends in a new Python process, build the store, and recall there.

        The test class is imported there by its module and name, so its ``make_store`` and
        ``open_context`` are the ones under test.
        """
        cls = type(self)
        script = (
            "import importlib, json, sys\n"
            "from pathlib import Path\n"
            "sys.path.insert(0, sys.argv[1])\n"
            "case = getattr(importlib.import_module(sys.argv[2]), sys.argv[3])()\n"
            "context = case.open_context(Path(sys.argv[4]))\n"
            "store = case.make_store(context)\n"
            "found = case.retrieve(store, case.query(context))\n"
            "print(json.dumps([r.item.id for r in found]))\n"
        )
        command = [
            sys.executable,
            "-c",
            script,
            str(Path(inspect.getfile(cls)).parent),
            cls.__module__,
            cls.__qualname__,
            str(backend_dir),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
        return found

    def test_users_never_see_each_other(self, store: MemoryStore, context: StoreContext) -> None:
        self.write_dialogue(store, context, user_id="alice")
        self.write_dialogue(
            store,
            context,
            user_id="bob",
            lines=["My sister Eva lives in Lisbon.", "I have a cat named Tiger."],
        )
        for user_id in ("alice", "bob"):
            for recalled in self.retrieve(store, self.query(context, user_id)):
                assert recalled.item.user_id == user_id
        assert self.retrieve(store, self.query(context, "carol")) == []

    def test_forget_erases_one_user_only(self, store: MemoryStore, context: StoreContext) -> None:
        self.write_dialogue(store, context, user_id="alice")
        self.write_dialogue(store, context, user_id="bob")
        store.forget("alice")
        _records(context).forget("alice")
        assert self.retrieve(store, self.query(context, "alice", include_history=True)) == []
        assert self.retrieve(store, self.query(context, "bob"))

    def test_as_of_hides_what_did_not_exist_yet(
        self, store: MemoryStore, context: StoreContext
    ) -> None:
        self.write_dialogue(store, context)
        assert self.retrieve(store, self.query(context, as_of=START - timedelta(days=1))) == []
        assert self.retrieve(store, self.query(context, as_of=START + timedelta(days=1)))


def _records(context: StoreContext) -> Records:
    """The contract's own records database (structures see it only as a RecordStore)."""
    assert isinstance(context.records, Records), "open_context opens agentmem's Records"
    return context.records


def _vectors(context: StoreContext) -> VectorIndex:
    """The contract's own vector index (structures see it only as a VectorStore)."""
    assert isinstance(context.vectors, VectorIndex), "open_context opens a VectorIndex"
    return context.vectors
