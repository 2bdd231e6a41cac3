"""Memory can be looked at from another process while the chat app has the folder open.

The app holds its data folder for as long as it runs (one writer at a time, see
``agentmem/storage/locking.py``), and ``agentmem memory sessions`` used to stop with
"…/chroma is in use by process N" exactly when a user wants to look (issue 35). The
commands that only read now read a snapshot beside it; ``forget`` still refuses.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tui_pilot import say, settle

from agentmem.agent import Agent
from agentmem.config import load_config
from agentmem.factory import build
from agentmem.tui.app import ChatApp

ROOT = Path(__file__).resolve().parents[1]


def memory_command(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    for name in ("AGENTMEM_USER", "AGENTMEM_STORES", "AGENTMEM_CONFIG", "AGENTMEM_HOME"):
        env.pop(name, None)
    command = [sys.executable, "-m", "agentmem", "memory", *args]
    command += ["--data-dir", str(folder), "--user", "ana"]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )


@pytest.mark.asyncio
async def test_sessions_search_and_export_work_while_the_chat_app_is_open(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    config = load_config(env={}, data_dir=folder, model="none", stores="turns", user_id="ana")
    components = build(config)
    try:
        app = ChatApp(components, Agent(components.manager, None, user_id="ana"))
        async with app.run_test(size=(130, 40)) as pilot:
            await settle(pilot)
            await say(pilot, "My dog Rex loves the beach at Carcavelos.")

            def run(*args: str) -> subprocess.CompletedProcess[str]:
                return memory_command(folder, *args)

            sessions = await asyncio.to_thread(run, "sessions")
            found = await asyncio.to_thread(run, "search", "dog")
            exported = await asyncio.to_thread(run, "export")
            forgotten = await asyncio.to_thread(run, "forget", "--yes")
            assert app.is_running  # all of it while the app held the folder

        for done in (sessions, found, exported):
            assert done.returncode == 0, done.stderr
            assert "in use by process" in done.stderr and "reading a snapshot" in done.stderr
        assert app.agent.session_id in sessions.stdout
        assert "Rex loves the beach" in found.stdout
        data = json.loads(exported.stdout)
        assert any("Rex" in turn["text"] for turn in data["turns"])
        # A command that writes still refuses, and erases nothing.
        assert forgotten.returncode == 2 and f"process {os.getpid()}" in forgotten.stderr
        assert components.records.count_turns("ana") == 2
    finally:
        components.close()
