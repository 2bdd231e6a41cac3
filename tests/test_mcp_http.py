"""``agentmem mcp --http``: the SDK's Streamable HTTP client, two at once, on one memory."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("mcp")

from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from agentmem.errors import ConfigError  # noqa: E402
from agentmem.mcp_transport import is_loopback, parse_address  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    """Start ``agentmem mcp --http`` serving every user; yield its URL; stop it."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("AGENTMEM_USER", None)
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115  # closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "agentmem.cli", "mcp", "--data-dir", str(tmp_path / "data")]
        + ["--http", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=env,
        cwd=str(ROOT),
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never listened"
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert "Traceback" not in text, text
    # Stopped by a signal, it still closed memory: the next open finds it consistent.
    assert "Application shutdown complete" in text


def _data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    answer: dict[str, Any] = json.loads(result.content[0].text)
    return answer


async def _client(url: str, name: str, ready: asyncio.Barrier) -> dict[str, Any]:
    """One client: remember a fact of its own user and one of the shared user, then search."""
    async with (
        streamable_http_client(url) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await ready.wait()  # both sessions are open before either writes
        own = "ana" if name == "a" else "bo"
        city = "Lisbon" if name == "a" else "Oslo"
        await session.call_tool("remember", {"text": f"I live in {city}.", "user_id": own})
        team = f"Our team {name} meets on {'Monday' if name == 'a' else 'Friday'}s."
        await session.call_tool("remember", {"text": team, "user_id": "team"})
        await ready.wait()  # both have written before either searches
        mine = _data(await session.call_tool("search", {"query": "Where?", "user_id": own}))
        shared = _data(
            await session.call_tool(
                "search", {"query": "When does the team meet?"} | {"user_id": "team"}
            )
        )
        nobody = await session.call_tool("search", {"query": "Where?"})
        return {"mine": mine, "shared": shared, "nobody": nobody}


async def _two_clients(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    ready = asyncio.Barrier(2)
    first, second = await asyncio.gather(_client(url, "a", ready), _client(url, "b", ready))
    return first, second


def test_two_clients_share_one_memory_over_http(http_server: str) -> None:
    a, b = asyncio.run(asyncio.wait_for(_two_clients(http_server), timeout=120))
    # Each sees its own user's memory, never the other's...
    assert any("Lisbon" in i["text"] for i in a["mine"]["items"])
    assert not any("Oslo" in i["text"] for i in a["mine"]["items"])
    assert any("Oslo" in i["text"] for i in b["mine"]["items"])
    # ...and both see what either told the user they share.
    for seen in (a, b):
        texts = " ".join(i["text"] for i in seen["shared"]["items"])
        assert "Monday" in texts and "Friday" in texts
        # A server serving every user refuses a call that names none.
        assert seen["nobody"].is_error


def _rpc(request_id: int, method: str, params: dict[str, Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def test_http_answers_malformed_json_and_lone_surrogates(http_server: str) -> None:
    hello = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    }
    with httpx.Client(timeout=60) as client:
        opened = client.post(http_server, headers=HEADERS, content=_rpc(1, "initialize", hello))
        assert opened.status_code == 200
        session = {**HEADERS, "mcp-session-id": opened.headers["mcp-session-id"]}
        session["mcp-protocol-version"] = "2025-06-18"
        started = '{"jsonrpc": "2.0", "method": "notifications/initialized"}'
        assert client.post(http_server, headers=session, content=started).status_code == 202

        broken = client.post(http_server, headers=session, content='{"jsonrpc": "2.0", "id": 2,')
        assert broken.status_code == 400 and broken.json()["error"]["code"] == -32700
        search = {"name": "search", "arguments": {"query": "tea", "user_id": "ana"}}
        lone = _rpc(3, "tools/call", search).replace("tea", "\\udcff")
        refused = client.post(http_server, headers=session, content=lone)
        assert refused.status_code == 400 and "surrogate" in refused.json()["error"]["message"]
        huge = {"name": "search", "arguments": {"query": "a" * 1_000_000, "user_id": "ana"}}
        too_long = client.post(http_server, headers=session, content=_rpc(4, "tools/call", huge))
        assert too_long.status_code in (200, 413)
        if too_long.status_code == 200:  # refused by the schema, as a tool error
            assert '"isError":true' in too_long.text and "4000" in too_long.text

        fine = client.post(http_server, headers=session, content=_rpc(5, "tools/call", search))
        assert fine.status_code == 200 and '"isError":false' in fine.text


def test_http_address_defaults_to_loopback() -> None:
    assert parse_address("") == ("127.0.0.1", 8765)
    assert parse_address("9000") == ("127.0.0.1", 9000)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:8765") == ("::1", 8765)
    with pytest.raises(ConfigError):
        parse_address("127.0.0.1:http")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
