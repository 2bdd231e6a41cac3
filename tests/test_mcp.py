"""``agentmem mcp``: the real SDK client talks to the server over stdio in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import subprocess
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


#: Every tool, with whether it only reads, may destroy, and may be repeated harmlessly.
TOOLS = {
    "remember": (False, False, False),
    "search": (True, False, True),
    "list_memories": (True, False, True),
    "get_memory": (True, False, True),
    "history": (True, False, True),
    "update_memory": (False, True, False),
    "delete_memory": (False, True, True),
    "forget_memory": (False, True, True),
    "forget": (False, True, True),
}


def _check_tool_list(tools: list[Any]) -> None:
    """Every tool is listed with its annotations, and every parameter described and bounded."""
    assert {tool.name for tool in tools} == set(TOOLS)
    for tool in tools:
        hints = tool.annotations.model_dump(by_alias=True)
        read_only, destructive, idempotent = TOOLS[tool.name]
        assert (hints["readOnlyHint"], hints["idempotentHint"]) == (read_only, idempotent)
        assert hints["destructiveHint"] is destructive, tool.name
        for name, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), (tool.name, name)
            assert _bounded(schema), (tool.name, name, schema)
    search = next(tool for tool in tools if tool.name == "search").input_schema["properties"]
    assert {"query", "user_id", "top_k", "as_of", "include_history", "filters"} <= set(search)
    assert search["query"]["maxLength"] == 4000 and search["top_k"]["maximum"] == 100


def _bounded(schema: dict[str, Any]) -> bool:
    """Whether every string, list and object in a JSON schema has a stated limit."""
    options = schema.get("anyOf")
    if options:
        return all(_bounded(option) for option in options)
    kind = schema.get("type")
    if kind == "string":
        return "maxLength" in schema or "enum" in schema
    if kind == "array":
        return "maxItems" in schema and _bounded(schema["items"])
    if kind == "object":
        inner = schema.get("additionalProperties", {})
        names = schema.get("propertyNames", {})
        return "maxProperties" in schema and _bounded(inner) and _bounded(names)
    return True


async def _life_of_one_memory(session: Any) -> None:
    """List, get, update, delete and erase one memory; search by time and by filter."""
    said = _data(
        await session.call_tool(
            "remember", {"text": "My favourite tea is oolong.", "metadata": {"topic": "tea"}}
        )
    )
    listed = _data(await session.call_tool("list_memories", {}))
    assert listed["total"] == len(listed["items"]) > 0
    page = _data(await session.call_tool("list_memories", {"limit": 1, "offset": 1}))
    assert len(page["items"]) == 1 and page["items"][0]["id"] == listed["items"][1]["id"]
    assert all(i["current"] for i in listed["items"])
    tea = next(e["id"] for e in said["events"] if e["store"] == "turns")
    got = _data(await session.call_tool("get_memory", {"memory_id": tea}))
    assert "oolong" in got["text"] and got["metadata"]["topic"] == "tea"
    # Times carry their offset: a client cannot know agentmem stores UTC.
    assert got["valid_from"].endswith("+00:00") and got["created_at"].endswith("+00:00")

    filtered = _data(
        await session.call_tool("search", {"query": "tea", "filters": {"topic": "tea"}})
    )
    assert filtered["items"] and all(i["metadata"]["topic"] == "tea" for i in filtered["items"])
    one = _data(await session.call_tool("search", {"query": "tea", "top_k": 1}))
    assert len(one["items"]) == 1
    before = _data(await session.call_tool("search", {"query": "tea", "as_of": "2000-01-01"}))
    assert before["items"] == []
    bad_time = await session.call_tool("search", {"query": "tea", "as_of": "yesterday-ish"})
    assert _error(bad_time) and "InputError" in _text(bad_time)

    updated = _data(
        await session.call_tool(
            "update_memory", {"memory_id": tea, "text": "My favourite tea is sencha."}
        )
    )
    assert any(e["event"] == "UPDATE" for e in updated["events"])
    assert "sencha" in _data(await session.call_tool("get_memory", {"memory_id": tea}))["text"]
    deleted = _data(
        await session.call_tool("delete_memory", {"memory_id": tea, "reason": "no more tea"})
    )
    assert any(e["event"] == "DELETE" and e["id"] == tea for e in deleted["events"])
    ended = _data(await session.call_tool("get_memory", {"memory_id": tea}))
    assert ended["current"] is False and ended["invalid_at"].endswith("+00:00")
    events = _data(await session.call_tool("history", {"memory_id": tea}))["history"]
    assert [e["event"] for e in events][-2:] == ["UPDATE", "DELETE"]
    assert events[-1]["reason"] == "no more tea"
    # Deleting again changes nothing (idempotent); erasing takes the text for good.
    again = _data(await session.call_tool("delete_memory", {"memory_id": tea}))
    assert [e["event"] for e in again["events"]] == ["NOOP"]
    _data(await session.call_tool("forget_memory", {"memory_id": tea}))
    erased = _data(await session.call_tool("history", {"memory_id": tea}))["history"]
    assert not any("sencha" in str(e) or "oolong" in str(e) for e in erased)

    # Limits stated in the schema are enforced: a 1 MB query is refused, not searched.
    huge = await session.call_tool("search", {"query": "a" * 1_000_000})
    assert _error(huge) and "4000" in _text(huge)
    too_many = await session.call_tool("search", {"query": "tea", "top_k": 10_000})
    assert _error(too_many)


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
        _check_tool_list((await session.list_tools()).tools)

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

        await _life_of_one_memory(session)

        receipt = _data(await session.call_tool("forget", {}))
        assert receipt["removed"]["turns"] == 5
        gone = _data(
            await session.call_tool("search", {"query": "Berlin", "include_history": True})
        )
        assert gone["items"] == []


def test_mcp_server_over_stdio(tmp_path: Path) -> None:
    with open(tmp_path / "server.log", "w") as errlog:
        asyncio.run(asyncio.wait_for(_session_run(tmp_path / "data", errlog), timeout=90))
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log


def _raw_server(data_dir: Path, errlog: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("AGENTMEM_USER", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agentmem.cli", "mcp", "--data-dir", str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errlog,
        env=env,
        cwd=str(ROOT),
    )


def _exchange(server: subprocess.Popen[bytes], line: str) -> dict[str, Any]:
    """Send one line as a client would and return the server's answer to it."""
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(line.encode("utf-8") + b"\n")
    server.stdin.flush()
    # A selector, not select.select: in a long test run this process holds more than
    # 1024 descriptors, which select() cannot watch.
    with selectors.DefaultSelector() as selector:
        selector.register(server.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=60), f"no answer to {line[:80]!r}"
    answer: dict[str, Any] = json.loads(server.stdout.readline())
    return answer


def test_stdio_answers_malformed_json_and_lone_surrogates(tmp_path: Path) -> None:
    """A line the SDK cannot read gets a JSON-RPC error at once; serving goes on."""
    with open(tmp_path / "server.log", "w") as errlog:
        server = _raw_server(tmp_path / "data", errlog)
        try:
            hello = {"protocolVersion": "2025-06-18", "capabilities": {}}
            hello["clientInfo"] = {"name": "raw", "version": "1"}
            started = _exchange(server, json.dumps(_request(1, "initialize", hello)))
            assert started["id"] == 1 and "result" in started
            assert server.stdin is not None
            server.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')

            broken = _exchange(server, '{"jsonrpc": "2.0", "id": 2, "method": "tools/call",')
            assert broken["id"] is None and broken["error"]["code"] == -32700
            # Python's JSON reads this escape; the SDK's parser refuses it.
            search = {"name": "search", "arguments": {"query": "tea", "user_id": "ana"}}
            lone = json.dumps(_request(3, "tools/call", search)).replace("tea", "\\udcff")
            refused = _exchange(server, lone)
            assert refused["id"] == 3 and refused["error"]["code"] == -32602
            assert "surrogate" in refused["error"]["message"]
            shapeless = _exchange(server, '{"jsonrpc": "2.0", "id": 4, "params": 7}')
            assert shapeless["id"] == 4 and shapeless["error"]["code"] == -32600

            found = _exchange(server, json.dumps(_request(5, "tools/call", search)))
            assert found["id"] == 5 and found["result"]["isError"] is False
        finally:
            assert server.stdin is not None and server.stdout is not None
            server.stdin.close()
            server.wait(timeout=60)
            server.stdout.close()
    assert server.returncode == 0
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def _request(request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def test_mcp_without_the_extra_names_it(tmp_path: Path) -> None:
    """Without the SDK, ``agentmem mcp`` says which extra to install and exits 2."""
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
    assert "[mcp]'" in done.stderr  # the command that installs the extra
    assert done.stdout == ""
