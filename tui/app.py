"""The chat app: a conversation pane, an input, and what memory recalled for each answer.

Shaped like Textual's ``examples/mother.py``: submitting the input mounts the reply
widget, and a thread worker runs the turn, streaming into it with ``call_from_thread``.
"""

from __future__ import annotations

from textual import on, work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Input, Markdown, Static

from agentmem.agent import Agent
from agentmem.errors import AgentMemError
from agentmem.factory import Components
from agentmem.manager import RecallResult
from agentmem.prompts import render_memory_line


class UserMessage(Markdown):
    """A message the user sent."""


class Reply(Markdown):
    """An answer from the agent."""

    BORDER_TITLE = "agentmem"


class ChatApp(App[None]):
    """Chat with an agent whose memory you can see."""

    AUTO_FOCUS = "Input"
    TITLE = "agentmem"
    CSS = """
    UserMessage {
        background: $primary 10%; color: $text; margin: 1; margin-right: 8; padding: 1 2 0 2;
    }
    Reply {
        border: wide $success; background: $success 10%; color: $text;
        margin: 1; margin-left: 8; padding: 1 2 0 2;
    }
    #chat { width: 2fr; }
    #memory { width: 1fr; border-left: solid $primary; padding: 0 1; }
    """
    BINDINGS = [("ctrl+n", "new_session", "New session")]

    def __init__(self, components: Components, agent: Agent) -> None:
        super().__init__()
        self.components = components
        self.agent = agent

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with VerticalScroll(id="chat"):
                yield Reply("Hello. I remember what you tell me; ask me about it later.")
            yield Static("Nothing recalled yet.", id="memory")
        yield Input(placeholder="Message")
        yield Footer()

    def on_mount(self) -> None:
        model = self.agent.model.name if self.agent.model else "no model (recall only)"
        self.sub_title = f"user {self.agent.user_id} · {model}"

    @on(Input.Submitted)
    async def on_input(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        chat = self.query_one("#chat", VerticalScroll)
        event.input.clear()
        await chat.mount(UserMessage(text))
        reply = Reply("")
        await chat.mount(reply)
        reply.anchor()
        self.send(text, reply)

    @work(thread=True)
    def send(self, text: str, reply: Reply) -> None:
        """Run one turn in a worker thread, streaming the answer into ``reply``."""
        chunks: list[str] = []

        def on_token(chunk: str) -> None:
            chunks.append(chunk)
            self.call_from_thread(reply.update, "".join(chunks))

        def on_recall(recall: RecallResult) -> None:
            self.call_from_thread(self.show_recall, recall)

        try:
            self.agent.send(text, on_token=on_token, on_recall=on_recall)
        except AgentMemError as exc:
            hint = f"\n{exc.hint}" if exc.hint else ""
            message = str(exc.args[0]) if exc.args else type(exc).__name__
            self.call_from_thread(
                self.notify, f"{message}{hint}\nYour message was saved.", severity="error"
            )
            self.call_from_thread(reply.update, "*(no answer)*")

    def show_recall(self, recall: RecallResult) -> None:
        """Show what memory recalled for the last answer."""
        lines = [render_memory_line(item) for item in recall.memory] or ["Nothing relevant."]
        self.query_one("#memory", Static).update(
            "Recalled\n" + "\n".join(lines) + f"\n\n{recall.tokens} tokens"
        )

    def action_new_session(self) -> None:
        """Start a new dialogue session."""
        self.agent.new_session()
        self.notify("New session started.")


def run_chat_app(components: Components, agent: Agent) -> None:
    """Run the chat app until the user quits."""
    ChatApp(components, agent).run()
