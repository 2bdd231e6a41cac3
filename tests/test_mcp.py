"""``agentmem mcp``: the real SDK client talks to the server over stdio in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _error(result: Any) -> bool:
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


def _data(result: Any) -> dict[str, Any]:
    assert not _error(result), result.content
    return json.loads(result.content[0].text)


def _text(result: Any) -> str:
    return "\n".join(getattr(part, "text", "") for part in result.content)


async def _session_run(data_dir: Path, errlog: Any) -> None:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("AGENTMEM_USER", None)
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentmem.cli", "mcp", "--data-dir", str(data_dir), "--user", "ana"],
        env=env,
        cwd=str(ROOT),
    )
    async with (
        stdio_client(server, errlog=errlog) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = {tool.name for tool in (await session.list_tools()).tools}
        assert {"remember", "search", "forget", "forget_memory", "history"} <= tools

        first = _data(await session.call_tool("remember", {"text": "I live in Lisbon."}))
        assert any(e["event"] == "ADD" for e in first["events"])
        second = _data(await session.call_tool("remember", {"text": "I moved to Berlin."}))
        assert any(e["event"] == "SUPERSEDE" for e in second["events"])

        found = _data(
            await session.call_tool(
                "search", {"query": "Where do I live?", "include_history": True}
            )
        )
        items = found["items"]
        berlin = [i for i in items if "Berlin" in i["text"]]
        lisbon = [i for i in items if "Lisbon" in i["text"]]
        assert berlin and all(i["current"] for i in berlin)
        assert all(not i["current"] and i["invalid_at"] for i in lisbon)
        assert all(i["superseded_by"] for i in lisbon)
        assert all(i["source_turn_ids"] for i in items)
        # Current items only, by default.
        current = _data(await session.call_tool("search", {"query": "Where do I live?"}))
        assert all(i["current"] for i in current["items"])
        assert any("Berlin" in i["text"] for i in current["items"])

        # A server started for ana serves ana only (tests/test_erasure.py has the rest).
        other = await session.call_tool("search", {"query": "Berlin", "user_id": "bo"})
        assert _error(other) and "serves one user only" in _text(other)

        changes = _data(await session.call_tool("history", {"memory_id": lisbon[0]["id"]}))
        assert [e["event"] for e in changes["history"]][:1] == ["ADD"]

        # Malformed arguments and typed errors are tool errors; the server keeps serving.
        missing = await session.call_tool("search", {})
        assert _error(missing)
        wrong_type = await session.call_tool("search", {"query": ["not", "text"]})
        assert _error(wrong_type)
        empty = await session.call_tool("search", {"query": "   "})
        assert _error(empty) and "InputError" in _text(empty)
        unknown = await session.call_tool("history", {"memory_id": "no-such-item"})
        assert _error(unknown) and "NotFoundError" in _text(unknown)
        still = _data(await session.call_tool("search", {"query": "Berlin"}))
        assert still["items"]

        # A conversation's turns, both sides, in one call; text and messages exclude each other.
        exchange = [
            {"role": "user", "content": "My sister Lena lives in Porto."},
            {"role": "assistant", "content": "Porto is a lovely city!"},
        ]
        stored = _data(await session.call_tool("remember", {"messages": exchange}))
        assert len(stored["turn_ids"]) == 2
        sister = _data(await session.call_tool("search", {"query": "Where does Lena live?"}))
        assert any("Porto" in i["text"] for i in sister["items"])
        neither = await session.call_tool("remember", {})
        assert _error(neither) and "text or messages" in _text(neither)
        both = await session.call_tool("remember", {"text": "x", "messages": exchange})
        assert _error(both)
        bad_role = await session.call_tool(
            "remember", {"messages": [{"role": "wizard", "content": "hi"}]}
        )
        assert _error(bad_role) and "InputError" in _text(bad_role)

        receipt = _data(await session.call_tool("forget", {}))
        assert receipt["removed"]["turns"] == 4
        gone = _data(
            await session.call_tool("search", {"query": "Berlin", "include_history": True})
        )
        assert gone["items"] == []


def test_mcp_server_over_stdio(tmp_path: Path) -> None:
    with open(tmp_path / "server.log", "w") as errlog:
        asyncio.run(asyncio.wait_for(_session_run(tmp_path / "data", errlog), timeout=90))
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log


def test_mcp_without_the_extra_names_it(tmp_path: Path) -> None:
    """Without the SDK, ``agentmem mcp`` says which extra to install and exits 2."""
    import subprocess

    blocker = tmp_path / "block"
    blocker.mkdir()
    # A sitecustomize that hides the mcp package, as an install without the extra would.
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'mcp' or name.startswith('mcp.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "agentmem.cli", "mcp", "--data-dir", str(tmp_path / "d")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert "agentmem[mcp]" in done.stderr
    assert done.stdout == ""
