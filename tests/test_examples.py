"""Every script in examples/ has a main() that runs offline against the fakes.

Examples are discovered, so a new one is tested without touching this file. The keyword
store of examples/custom_store.py also passes the shared store contract, and registers
through the ``agentmem.stores`` entry-point group like an installed plugin would.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from agentmem.extras import install_command
from agentmem.factory import ENTRY_POINT_GROUP, store_factories
from agentmem.memory import Memory
from agentmem.protocols import MemoryStore, StoreContext
from agentmem.testing.contract import MemoryStoreContract

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def load(path: Path) -> ModuleType:
    """Import an example script as a module (examples/ is not a package)."""
    name = f"agentmem_example_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_examples_are_found() -> None:
    assert {"quickstart", "langchain_bot", "custom_store"} <= {p.stem for p in SCRIPTS}


def check_quickstart(out: str) -> None:
    """The move to Denver supersedes Boston, which stays in history."""
    lines = out.splitlines()
    # Each event is about its own item: Denver is added (replacing Boston), Boston superseded.
    added = lines.index("ADD       [facts] Sam lives in Denver")
    assert lines[added + 1].strip().startswith("(residence: Boston → Denver (turn ")
    superseded = lines.index("SUPERSEDE [facts] Sam lives in Boston")
    assert lines[superseded + 1].strip().startswith("(residence: Boston → Denver (turn ")
    assert any(
        line.startswith("current") and line.endswith("Sam lives in Denver") for line in lines
    )
    assert any(
        line.startswith("until 2024-06-10") and line.endswith("Sam lives in Boston")
        for line in lines
    )


def check_langchain_bot(out: str) -> None:
    """The bot answers a later question from what memory recalled."""
    answer = out.split("you: Where does my sister live?\nbot: ", 1)[1].splitlines()[0]
    assert answer.startswith("From what you told me:") and "Porto" in answer


def check_langchain_history(out: str) -> None:
    """Both sides of monday are in memory, tuesday recalls them, the tools forget the code."""
    assert "monday's history in memory: ['human', 'ai']" in out
    recalled = out.split("recalled on tuesday: ", 1)[1].splitlines()[0]
    assert "Porto" in recalled
    assert [line.split("(", 1)[0] for line in out.splitlines() if line.startswith("tool ")] == [
        "tool save_memory",
        "tool search_memory",
        "tool forget_memory",
    ]
    assert "locker code still current: False" in out


def check_custom_store(out: str) -> None:
    """The keyword store's items are recalled, and its stale turn is superseded."""
    assert "current    [keywords] user: My sister Ana lives in Porto." in out
    assert "superseded [keywords] user: I live in Boston." in out


def check_compare_stores(out: str) -> None:
    """It says it runs without the fact ledger, and shows each recalled item's validity."""
    flat = " ".join(out.split())
    assert "fact ledger off" in flat
    assert "validity" in flat and "current since 2023-" in flat


def check_mcp_client(out: str) -> None:
    """Over MCP, Berlin is current and Lisbon superseded; forgetting removes both turns."""
    lines = out.splitlines()
    searches = [i for i, line in enumerate(lines) if line.startswith("search ")]
    assert searches, out
    found = []  # (state, item) for each item the search printed, up to the next section
    for line in lines[searches[0] + 1 :]:
        if not line.startswith("  "):
            break
        state, _, item = line.strip().partition(" ")
        found.append((state, item))
    berlin = {state for state, item in found if "Berlin" in item}
    lisbon = {state for state, item in found if "Lisbon" in item}
    assert berlin == {"current"}, found
    assert lisbon == {"superseded"}, found
    assert any(line.startswith("forget ") and "removed 2 turns" in line for line in lines)


def check_langgraph_store(out: str) -> None:
    """The graph's store leaves Lisbon out of search; under its key it is not current."""
    section = out.split("search 'Where do I live?':", 1)[1].split("get note-1:", 1)[0]
    assert "I moved to Berlin.  (current: True)" in section
    assert "Lisbon" not in section
    assert "get note-1: I live in Lisbon.  (current: False)" in out
    assert "My dog is called Rex.  (ended: replaced)" in out


#: What some examples must print, beyond printing something.
CHECKS = {
    "quickstart": check_quickstart,
    "compare_stores": check_compare_stores,
    "langchain_bot": check_langchain_bot,
    "langchain_history": check_langchain_history,
    "custom_store": check_custom_store,
    "mcp_client": check_mcp_client,
    "langgraph_store": check_langgraph_store,
}


def check_from_mem0(out: str) -> None:
    """mem0's calls ran: the turns were added and search read back through "results"."""
    assert "ADD user: I'm not a big fan of thrillers, but I love sci-fi." in out
    scored = [line for line in out.splitlines() if line[:4].replace(".", "").isdigit()]
    assert scored and len(scored) <= 3  # limit=3, as mem0's search takes it
    assert any("sci-fi" in line for line in scored)


CHECKS["from_mem0"] = check_from_mem0


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_main_runs_offline(
    path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # An example that opens Memory() as mem0 users do finds its folder and model here.
    monkeypatch.setenv("AGENTMEM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGENTMEM_MODEL", "none")
    module = load(path)
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"
    assert module.main() in (None, 0)
    out = capsys.readouterr().out
    assert out.strip(), f"{path.name} printed nothing"
    if path.stem in CHECKS:
        CHECKS[path.stem](out)


def test_compare_stores_with_the_ledger_shows_what_no_longer_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = load(EXAMPLES / "compare_stores.py")
    assert module.main(["--stores", "turns", "--questions", "1", "--ledger", "--history"]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert "fact ledger on" in flat
    # Nora lived in Leeds, then moved to Bristol: the Leeds turn also tells of the canal,
    # so it stays, with its Leeds clause marked as no longer so since the move.
    for words in (
        "Nora: [no longer so",
        "(residence Leeds →",
        "Bristol): I live in",
        "Leeds now],",
    ):
        assert words in flat  # the table wraps the cell: its lines come in pieces


def test_mcp_client_without_the_sdk_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load(EXAMPLES / "mcp_client.py")
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if the mcp extra were not installed
    assert module.main() == 0
    assert capsys.readouterr().out == (
        f"This example needs the MCP SDK: {install_command('mcp')}\n"
    )


class TestKeywordStoreContract(MemoryStoreContract):
    """The example's keyword store passes the contract every structure must pass."""

    def make_store(self, context: StoreContext) -> MemoryStore:
        store: MemoryStore = load(EXAMPLES / "custom_store.py").KeywordStore(context)
        return store


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Install the keyword store as a plugin: a dist-info with the entry point, on sys.path."""
    dist = tmp_path / "site" / "keyword_store_example-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: keyword-store-example\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nkeywords = custom_store:KeywordStore\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield "keywords"
    sys.modules.pop("custom_store", None)


def test_a_plugin_store_registers_through_the_entry_point_group(
    installed_plugin: str, tmp_path: Path
) -> None:
    factory = store_factories()[installed_plugin]
    assert factory.__name__ == "KeywordStore"
    with Memory(tmp_path / "data", model="none", stores=("turns", "keywords"), env={}) as memory:
        assert [s.name for s in memory.manager.stores] == ["turns", "keywords"]
        memory.add("My sister Ana lives in Porto.", user_id="ana")
        found = memory.search("sister Ana", user_id="ana", filters={"store": "keywords"})
        assert [r["memory"] for r in found.items] == ["user: My sister Ana lives in Porto."]
