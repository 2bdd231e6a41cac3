"""Shared fixtures: the real MiniLM, SQLite records and a persistent chromadb in tmp dirs."""

from __future__ import annotations

import os
import shutil
import tempfile

# The model ships inside a package; never reach for the Hugging Face hub in tests.
os.environ["HF_HUB_OFFLINE"] = "1"
# One ONNX export of the embedding model for the whole session, shared by every process
# it starts (the CLI and MCP tests start many), in a temporary folder: never the user's
# ~/.cache. Set at import, before any test or child process reads the environment.
_CACHE_DIR = tempfile.mkdtemp(prefix="agentmem-test-cache-")
os.environ["AGENTMEM_CACHE_DIR"] = _CACHE_DIR

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from agentmem.ledger.extraction import CachingExtractor, RuleExtractor  # noqa: E402
from agentmem.ledger.facts import FactLedger  # noqa: E402
from agentmem.manager import MemoryManager  # noqa: E402
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder  # noqa: E402
from agentmem.models.openai_client import OpenAIChatModel  # noqa: E402
from agentmem.protocols import StoreContext  # noqa: E402
from agentmem.storage.records import Records  # noqa: E402
from agentmem.storage.vectors import VectorIndex  # noqa: E402
from agentmem.stores.turns import TurnStore  # noqa: E402
from agentmem.testing import FakeOpenAIServer  # noqa: E402


@pytest.hookimpl(tryfirst=True)  # before -m selects: the marker must be on by then
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The structure contract's fresh-process restart (about 18 s a structure) is heavy.

    The contract ships without markers, for plugins' own suites; the default run keeps
    its in-process restart (agentmem/testing/contract.py).
    """
    for item in items:
        if item.name == "test_persists_across_a_fresh_process":
            item.add_marker(pytest.mark.heavy)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the session's export cache (90 MB)."""
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    """Return the real MiniLM, loaded once for the whole test session."""
    model = MiniLMEmbedder()
    model.warm()
    return model


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    """Return a records database on a fresh SQLite file."""
    database = Records(tmp_path / "records.db")
    yield database
    database.close()


@pytest.fixture
def vectors(embedder: MiniLMEmbedder, tmp_path: Path) -> VectorIndex:
    """Return a vector index on a fresh persistent chromadb folder."""
    return VectorIndex(embedder, path=tmp_path / "chroma")


@pytest.fixture
def store_context(records: Records, vectors: VectorIndex, embedder: MiniLMEmbedder) -> StoreContext:
    """Return the core services a memory structure is built on."""
    return StoreContext(records, vectors, embedder)


@pytest.fixture
def manager(tmp_path: Path, embedder: MiniLMEmbedder) -> Iterator[MemoryManager]:
    """Return a memory manager of the turns structure and the rule-based fact ledger."""
    records = Records(tmp_path / "records.db")
    cached = CachingEmbedder(embedder)
    vectors = VectorIndex(cached, path=tmp_path / "chroma")
    context = StoreContext(records, vectors, cached, extractor=CachingExtractor(RuleExtractor()))
    manager = MemoryManager(records, cached, [TurnStore(context)], facts=FactLedger(context))
    yield manager
    manager.close()
    vectors.close()
    records.close()


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible server on 127.0.0.1 (a module may override it)."""
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def openai_model(server: FakeOpenAIServer) -> Iterator[OpenAIChatModel]:
    """The real OpenAI client, pointed at :func:`server`."""
    with OpenAIChatModel("fake-chat", base_url=server.base_url, timeout=5) as model:
        yield model
