"""Driving the chat app in tests: wait for its work to settle, send a message."""

from __future__ import annotations

import asyncio

from textual.pilot import Pilot

from agentmem.tui.app import ChatApp
from agentmem.tui.widgets import HistoryInput


async def settle(pilot: Pilot[None]) -> None:
    """Wait for the models to load, every worker, and the UI updates they posted."""
    app = pilot.app
    assert isinstance(app, ChatApp)
    await asyncio.to_thread(app.warmed.wait, 120)
    await app.workers.wait_for_complete()
    await pilot.pause()


async def say(pilot: Pilot[None], text: str) -> None:
    """Type ``text`` into the message input, send it, and wait for the turn to finish."""
    prompt = pilot.app.query_one("#prompt", HistoryInput)
    prompt.focus()
    prompt.value = text
    await pilot.press("enter")
    await settle(pilot)
