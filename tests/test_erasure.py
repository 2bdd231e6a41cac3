"""Forget means gone: no copy of a forgotten user (or an erased item) stays on disk.

Two users say distinctive things into every structure; one is forgotten through the API,
the command line, the MCP server and the chat app. Then every file under the data folder
is read byte by byte: none may hold the forgotten user's strings (in any encoding stored)
or a vector within cosine 0.99 of one of their texts' embeddings, while the other user's
memory is intact (and found by the same scan: the scan can see what it looks for).
Embeddings come from the fake OpenAI-compatible server, so texts map to fixed vectors.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from disk_scan import find_strings, find_vectors

from agentmem import Memory
from agentmem.cli import main
from agentmem.config import load_config
from agentmem.factory import build, build_embedder
from agentmem.testing import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[1]

ALICE = [
    "My locker code is zanzibarquokka and only my friend Quibbleton knows it.",
    "I moved to Qwertyvillebridge last spring with my cat Florpintosh.",
    "I work at Plumbusworks as a glassblower on weekdays.",
]
ALICE_LATER = ["Florpintosh learned to open the fridge door yesterday."]
ALICE_WORDS = ["zanzibarquokka", "quibbleton", "qwertyvillebridge", "florpintosh", "plumbusworks"]
BOB = [
    "My brother Tarquin teaches marimbaphone lessons downtown.",
    "I grow heirloom tomatoes called Oxheartlumps in my garden.",
]
BOB_WORDS = ["tarquin", "marimbaphone", "oxheartlumps"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(embedding_dimension=48) as fake:
        yield fake


def fake_env(server: FakeOpenAIServer) -> dict[str, str]:
    return {
        "AGENTMEM_EMBEDDER": "openai:fake-embedding",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "test",
    }


def populate(folder: Path, env: dict[str, str]) -> list[str]:
    """Write both users into every structure; return every text of alice's memory."""
    with Memory(folder, chat_model=None, env=env, stores=("all",), model="none") as memory:
        for text in ALICE:
            memory.add(text, user_id="alice", session_id="a-1")
        memory.add(BOB[0], user_id="bob", session_id="b-1")
        memory.end_session("alice", "a-1")
        for text in ALICE_LATER:
            memory.add(text, user_id="alice", session_id="a-2")
        memory.add(BOB[1], user_id="bob", session_id="b-1")
        memory.end_session("alice", "a-2")
        memory.end_session("bob", "b-1")
        alice, bob = memory.export("alice"), memory.export("bob")
    texts = texts_of(alice)
    # A text both hold (a memo's generic title, say) is bob's too: it stays on disk.
    theirs = embed(env, sorted(texts_of(bob)))
    mine = sorted(texts)
    close = (embed(env, mine) @ theirs.T).max(axis=1) > 0.99
    return [text for text, shared in zip(mine, close, strict=True) if not shared]


def texts_of(exported: dict[str, Any]) -> set[str]:
    texts = {item["text"] for item in exported["items"]}
    texts |= {turn["text"] for turn in exported["turns"]}
    texts |= {f"{turn['speaker']}: {turn['text']}" for turn in exported["turns"]}
    return texts


def embed(env: dict[str, str], texts: list[str]) -> np.ndarray:
    config = load_config(env=env, data_dir=Path("."), model="none")
    vectors = np.asarray(build_embedder(config).embed(texts), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def assert_alice_gone_and_bob_kept(folder: Path, env: dict[str, str], texts: list[str]) -> None:
    assert find_strings(folder, ALICE_WORDS) == []
    assert find_vectors(folder, embed(env, texts)) == []
    # The same scan sees bob: his words and his vectors are still on disk, and recalled.
    assert find_strings(folder, BOB_WORDS)
    with Memory(folder, chat_model=None, env=env, stores=("all",), model="none") as memory:
        assert find_vectors(folder, embed(env, sorted(texts_of(memory.export("bob")))))
        found = memory.search("marimbaphone lessons", user_id="bob").items
        assert any("Tarquin" in r["memory"] for r in found)
        assert memory.search("Plumbusworks glassblower", user_id="alice").items == []


def test_forget_through_the_api_leaves_no_copy(server: FakeOpenAIServer, tmp_path: Path) -> None:
    env = fake_env(server)
    texts = populate(tmp_path, env)
    assert find_strings(tmp_path, ALICE_WORDS)  # before: on disk, as expected
    with Memory(tmp_path, chat_model=None, env=env, stores=("all",), model="none") as memory:
        receipt = memory.forget("alice")
    assert receipt["turns"] == 4
    assert any("VACUUM" in step for step in receipt.rewritten)
    assert_alice_gone_and_bob_kept(tmp_path, env, texts)


def test_forget_through_the_command_line_leaves_no_copy(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fake_env(server)
    texts = populate(tmp_path, env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AGENTMEM_STORES", "all")
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["memory", "forget", "--user", "alice", "--yes", "--data-dir", str(tmp_path)],
        stdin=io.StringIO(""),
        stdout=out,
        stderr=err,
    )
    assert code == 0, err.getvalue()
    assert "Forgot user 'alice'" in out.getvalue()
    assert_alice_gone_and_bob_kept(tmp_path, env, texts)


def test_forget_through_the_chat_app_leaves_no_copy(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    pytest.importorskip("textual")
    from tui_pilot import say, settle

    from agentmem.agent import Agent
    from agentmem.testing import ScriptedChatModel
    from agentmem.tui.app import ChatApp

    env = fake_env(server)
    texts = populate(tmp_path, env)
    config = load_config(env=env, data_dir=tmp_path, model="none", stores="all", user_id="alice")
    components = build(config, model=None)
    answer = "Florpintosh sounds clever."
    agent = Agent(components.manager, ScriptedChatModel(default=answer), user_id="alice")

    async def run() -> None:
        app = ChatApp(components, agent, show_timings=False)
        async with app.run_test(size=(130, 40)) as pilot:
            await settle(pilot)
            await say(pilot, "Tell me about Florpintosh.")
            await pilot.press("ctrl+y")  # copy the answer: last-answer.txt
            await pilot.press("ctrl+s")  # export: export-alice-....json
            await settle(pilot)
            assert (tmp_path / "last-answer.txt").is_file()
            assert list(tmp_path.glob("export-alice-*.json"))
            await pilot.press("f8")
            await pilot.pause()
            await pilot.click("#yes")
            await settle(pilot)

    try:
        asyncio.run(run())
    finally:
        components.close()
    assert not (tmp_path / "last-answer.txt").exists()
    assert not list(tmp_path.glob("export-*.json"))
    texts += ["user: Tell me about Florpintosh.", f"assistant: {answer}"]
    assert_alice_gone_and_bob_kept(tmp_path, env, texts)


def test_forget_through_mcp_leaves_no_copy(server: FakeOpenAIServer, tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    env = fake_env(server)
    texts = populate(tmp_path, env)

    async def run() -> dict[str, Any]:
        async with mcp_session(tmp_path, env, "alice") as session:
            return tool_data(await session.call_tool("forget", {}))

    receipt = asyncio.run(asyncio.wait_for(run(), timeout=120))
    assert receipt["removed"]["turns"] == 4
    assert receipt["rewritten"]
    assert_alice_gone_and_bob_kept(tmp_path, env, texts)


def test_erasing_one_item_removes_its_text_everywhere_and_keeps_the_rest(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    env = fake_env(server)
    populate(tmp_path, env)
    with Memory(tmp_path, chat_model=None, env=env, stores=("all",), model="none") as memory:
        hits = memory.search("locker code", user_id="alice", top_k=30).items
        turn = next(h for h in hits if h["store"] == "turns" and "zanzibarquokka" in h["memory"])
        result = memory.delete(turn["id"], user_id="alice", erase=True)
        assert any(e["event"] == "DELETE" for e in result.events)
        assert all("zanzibarquokka" not in str(e) for e in result.events)
        # A tombstone stays: the item and its history say something was erased, not what.
        tombstone = memory.get(turn["id"], user_id="alice")
        assert tombstone["memory"] == "[erased]" and not tombstone["current"]
        history = memory.history(turn["id"], user_id="alice")
        assert history[-1]["event"] == "DELETE" and "erased" in history[-1]["reason"]
        assert all(not e["old_memory"] and not e["new_memory"] for e in history)
        assert "zanzibarquokka" not in json.dumps(memory.export("alice"), default=str)
        found = memory.search("locker code", user_id="alice", include_history=True).items
        assert all("zanzibarquokka" not in r["memory"] for r in found)
        assert all(r["memory"] != "[erased]" for r in found)  # tombstones are not recalled
        # The rest of what alice said is kept and recalled.
        job = memory.search("Where does alice work?", user_id="alice").items
        assert any("Plumbusworks" in r["memory"] for r in job)
    assert find_strings(tmp_path, ["zanzibarquokka", "quibbleton"]) == []
    erased = [ALICE[0], "user: " + ALICE[0]]
    assert find_vectors(tmp_path, embed(env, erased)) == []
    assert find_strings(tmp_path, ["plumbusworks", "florpintosh"])


# -- the MCP server: who a call may reach ---------------------------------------------------


def tool_error(result: Any) -> str:
    """Return the text of a tool error ('' if the call succeeded)."""
    failed = getattr(result, "is_error", None) or getattr(result, "isError", None)
    return "\n".join(getattr(p, "text", "") for p in result.content) if failed else ""


def tool_data(result: Any) -> dict[str, Any]:
    assert not tool_error(result), result.content
    return dict(json.loads(result.content[0].text))


def test_a_server_for_one_user_refuses_every_other(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    pytest.importorskip("mcp")
    env = fake_env(server)
    populate(tmp_path, env)

    async def run() -> None:
        async with mcp_session(tmp_path, env, "alice") as session:
            mine = tool_data(await session.call_tool("search", {"query": "locker code"}))
            assert any("zanzibarquokka" in i["text"] for i in mine["items"])
            for tool, arguments in (
                ("search", {"query": "marimbaphone", "user_id": "bob"}),
                ("history", {"memory_id": "x", "user_id": "bob"}),
                ("remember", {"text": "I am bob now.", "user_id": "bob"}),
                ("forget_memory", {"memory_id": "x", "user_id": "bob"}),
                ("forget", {"user_id": "bob"}),
                ("forget", {"user_id": ""}),
                ("forget", {"user_id": "  "}),
                ("search", {"query": "locker code", "user_id": ""}),
            ):
                refused = tool_error(await session.call_tool(tool, arguments))
                assert "InputError" in refused, (tool, arguments)
                assert "marimbaphone" not in refused and "Tarquin" not in refused
            # Naming the served user is fine; erasing one of its items works.
            named = tool_data(
                await session.call_tool("search", {"query": "locker code", "user_id": "alice"})
            )
            turn = next(i for i in named["items"] if "zanzibarquokka" in i["text"])
            erased = tool_data(await session.call_tool("forget_memory", {"memory_id": turn["id"]}))
            assert erased["events"] and "zanzibarquokka" not in json.dumps(erased)
            after = tool_data(
                await session.call_tool("search", {"query": "locker code", "include_history": True})
            )
            assert all("zanzibarquokka" not in i["text"] for i in after["items"])

    asyncio.run(asyncio.wait_for(run(), timeout=120))
    with Memory(tmp_path, chat_model=None, env=env, stores=("all",), model="none") as memory:
        assert memory.search("marimbaphone", user_id="bob").items  # bob untouched
    assert find_strings(tmp_path, ["zanzibarquokka"]) == []


def test_a_server_for_everyone_needs_each_call_to_name_its_user(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    pytest.importorskip("mcp")
    env = fake_env(server)
    populate(tmp_path, env)

    async def run() -> None:
        async with mcp_session(tmp_path, env, None) as session:
            for tool, arguments in (
                ("search", {"query": "locker code"}),
                ("forget", {}),
                ("forget", {"user_id": ""}),
            ):
                refused = tool_error(await session.call_tool(tool, arguments))
                assert "InputError" in refused, (tool, arguments)
            bob = tool_data(
                await session.call_tool("search", {"query": "marimbaphone", "user_id": "bob"})
            )
            assert any("Tarquin" in i["text"] for i in bob["items"])

    asyncio.run(asyncio.wait_for(run(), timeout=120))
    with Memory(tmp_path, chat_model=None, env=env, stores=("all",), model="none") as memory:
        assert memory.search("locker code", user_id="alice").items  # nobody was forgotten


def mcp_env(env: dict[str, str]) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k != "AGENTMEM_USER"},
        **env,
        "HF_HUB_OFFLINE": "1",
        "AGENTMEM_STORES": "all",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


@asynccontextmanager
async def mcp_session(folder: Path, env: dict[str, str], user: str | None) -> AsyncIterator[Any]:
    """An MCP SDK client session with ``agentmem mcp`` on ``folder`` (``--user`` if given)."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    args = ["-m", "agentmem.cli", "mcp", "--data-dir", str(folder)]
    args += ["--user", user] if user else []
    server = StdioServerParameters(
        command=sys.executable, args=args, env=mcp_env(env), cwd=str(ROOT)
    )
    # Beside the data folder, not in it: the folder is scanned afterwards.
    log_path = folder.parent / f"{folder.name}-server.log"
    with open(log_path, "w") as log:
        async with (
            stdio_client(server, errlog=log) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session
    text = log_path.read_text()
    assert "Traceback" not in text, text


def test_dropped_and_erased_vectors_leave_no_copy_in_the_index_files(tmp_path: Path) -> None:
    """chromadb keeps a dropped collection's index files, and a deleted element's vector in
    the index file; the vector index removes and rebuilds them (small sync thresholds make
    chromadb write its HNSW files, as it does past 1,000 vectors by default)."""
    from agentmem.models.embeddings import MiniLMEmbedder
    from agentmem.storage.vectors import VectorIndex

    rng = np.random.default_rng(7)
    alice, bob = (rng.normal(size=(150, 384)).astype(np.float32) for _ in range(2))
    settings = {"batch_size": 10, "sync_threshold": 20}
    index = VectorIndex(MiniLMEmbedder(), path=tmp_path / "chroma", hnsw=settings)  # no load
    try:
        for user, vectors in (("alice", alice), ("bob", bob)):
            ids = [f"{user}-{n}" for n in range(len(vectors))]
            index.upsert("turns", user, ids, vectors, [{"current": True}] * len(ids))
        index.flush()
        assert any("data_level0" in f.path.name for f in find_vectors(tmp_path, alice))
        index.drop("turns", "alice")
        assert index.erase("bob", [f"bob-{n}" for n in range(10)]) == 10
        rewritten = index.compact()
        assert any("removed" in step for step in rewritten)
        assert find_vectors(tmp_path, alice) == []
        assert find_vectors(tmp_path, bob[:10]) == []
        assert find_vectors(tmp_path, bob[10:])  # the rest of bob stays
        found = index.query("turns", "bob", bob[20], 1)
        assert [hit.id for hit in found] == ["bob-20"]
        assert index.count("turns", "bob") == 140
    finally:
        index.close()


def test_the_unused_room_of_live_index_files_is_zeroed(tmp_path: Path) -> None:
    """hnswlib writes its whole allocation (malloc'd, not cleared) when it creates a
    segment's files, so the room past its elements holds whatever the heap held: another
    user's words among them (this file's forget tests caught alice's words in a collection
    of bob's, 1 run in 6). Compacting zeroes that room and the index still answers."""
    from agentmem.models.embeddings import MiniLMEmbedder
    from agentmem.storage.chroma import scrub_segment
    from agentmem.storage.vectors import VectorIndex

    rng = np.random.default_rng(11)
    bob = rng.normal(size=(30, 384)).astype(np.float32)
    settings = {"batch_size": 10, "sync_threshold": 20}
    index = VectorIndex(MiniLMEmbedder(), path=tmp_path / "chroma", hnsw=settings)
    try:
        ids = [f"bob-{n}" for n in range(len(bob))]
        index.upsert("turns", "bob", ids, bob, [{"current": True}] * len(ids))
        index.flush()
    finally:
        index.close()
    segments = [p.parent for p in (tmp_path / "chroma").glob("*/header.bin")]
    assert segments
    planted = b"zanzibarquokka lives in Qwertyvillebridge"
    for folder in segments:  # what the heap may hand hnswlib: freed text
        for name in ("data_level0.bin", "length.bin"):
            with (folder / name).open("r+b") as handle:
                handle.seek(-len(planted), os.SEEK_END)
                handle.write(planted)
    assert find_strings(tmp_path, ["zanzibarquokka"])
    index = VectorIndex(MiniLMEmbedder(), path=tmp_path / "chroma", hnsw=settings)
    try:
        assert any("zeroed" in step for step in index.compact())
        assert find_strings(tmp_path, ["zanzibarquokka"]) == []
        assert not any(scrub_segment(folder) for folder in segments)  # nothing left to do
        assert [hit.id for hit in index.query("turns", "bob", bob[7], 1)] == ["bob-7"]
        assert index.count("turns", "bob") == 30
    finally:
        index.close()
    reopened = VectorIndex(MiniLMEmbedder(), path=tmp_path / "chroma", hnsw=settings)
    try:
        assert [hit.id for hit in reopened.query("turns", "bob", bob[3], 1)] == ["bob-3"]
    finally:
        reopened.close()
