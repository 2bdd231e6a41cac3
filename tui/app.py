"""Run the chat app: :func:`run_chat_app`, the entry point of ``agentmem chat``.

The app itself, :class:`~tui.chat.ChatApp`, is in :mod:`tui.chat` (its commands in
:mod:`tui.commands`); both names are importable from here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentmem.agent import Agent
from agentmem.factory import Components
from agentmem.tui.chat import ChatApp

__all__ = ["ChatApp", "run_chat_app"]


def run_chat_app(components: Components, agent: Agent) -> None:
    """Run the chat app until the user quits; log to ``<data dir>/agentmem.log`` meanwhile."""
    with _log_to_file(Path(components.config.data_dir) / "agentmem.log"):
        app = ChatApp(components, agent)
        app.run()
        # Like the plain chat at its end: let structures consolidate the session (after the
        # terminal is restored, and after a turn still running in its worker finishes).
        app.end_session()


@contextmanager
def _log_to_file(path: Path) -> Iterator[None]:
    """Send logging to a file while the app owns the terminal (stderr would scribble on it)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved
        handler.close()
