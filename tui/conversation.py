"""The conversation column: the greeting, the messages and replies, and dividers.

The app decides what goes in (see :mod:`tui.chat`); :class:`Conversation` keeps it in
order, newest at the bottom, and marks the messages an item in memory came from.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from textual.containers import VerticalScroll
from textual.widget import Widget

from agentmem.agent import Agent
from agentmem.extras import install_command
from agentmem.prompts import format_date
from agentmem.tui.memory import last_session_turns
from agentmem.tui.widgets import Divider, Reply, UserMessage
from agentmem.types import Turn

GREETING = "Hello. I remember what you tell me, across sessions: ask me about it later."


def recall_only_note() -> str:
    """Say that no model answers, and how to choose one (the install said as README does)."""
    return (
        "**No chat model is configured**, so my answers are what memory recalls (recall "
        "only). To chat, quit (Ctrl+Q) and choose a model with `--model`: "
        "`openai:<model>` with `OPENAI_BASE_URL` (or `OPENAI_API_KEY`) set for an "
        "OpenAI-compatible endpoint such as Ollama, or `local` for a small demo model "
        f"(install it with `{install_command('local')}`)."
    )


#: Turns of a continued session shown when the app starts.
SHOWN_EARLIER_TURNS = 20
#: Turns from the end of the user's last session shown when the app starts a new one.
SHOWN_LAST_SESSION_TURNS = 6


def opening(agent: Agent) -> Iterator[Widget]:
    """Yield the greeting, then what was said before.

    A continued session (``agentmem chat --session``) shows its own turns. A new one shows
    the end of the user's last session, marked as earlier, so a restarted app does not
    open on an empty chat as if memory were empty.
    """
    yield Reply(GREETING if agent.model else f"{GREETING}\n\n{recall_only_note()}")
    continued = agent.records.recent_turns(agent.user_id, agent.session_id, SHOWN_EARLIER_TURNS)
    if continued:
        yield from _messages(continued)
        return
    last = last_session_turns(
        agent.records, agent.user_id, agent.session_id, SHOWN_LAST_SESSION_TURNS
    )
    if last:
        when = format_date(last[-1].timestamp)
        yield Divider(f"── Earlier: the end of your last session{f' ({when})' if when else ''} ──")
        yield from _messages(last, earlier=True)
        yield Divider("── New session: what came before is long-term memory. ──")


def _messages(turns: Iterable[Turn], *, earlier: bool = False) -> Iterator[Widget]:
    """Yield the widgets of stored turns (labelled as earlier ones when ``earlier``)."""
    for turn in turns:
        message: UserMessage | Reply
        if turn.role == "user":
            message = UserMessage(turn.text, turn_id=turn.id)
        else:
            message = Reply(turn.text, turn_id=turn.id)
            if turn.metadata.get("recall_only"):
                message.mark_recall_only()
        if earlier:
            message.mark_earlier()
        yield message


class Conversation(VerticalScroll):
    """The messages of the conversation, scrolled to the newest until the user scrolls up."""

    def on_mount(self) -> None:
        self.anchor()

    async def add_exchange(self, text: str) -> tuple[UserMessage, Reply]:
        """Show the user's message and an empty reply for the answer to stream into.

        Scrolls to the end and anchors there again: jumping to an item's source turn (or
        scrolling up by hand) releases the anchor, and the new exchange and its streamed
        reply would otherwise be added out of view.
        """
        question, reply = UserMessage(text), Reply("")
        await self.mount(question)
        await self.mount(reply)
        self.anchor()
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
