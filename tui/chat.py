"""The chat app: a conversation beside a live view of what memory holds and does.

Shaped like Textual's ``examples/mother.py``: submitting the input mounts the reply
widget, and a thread worker runs the turn, streaming into it with ``call_from_thread``,
so the interface never waits on recall or the model. Beside the chat, the memory panel
shows what was recalled for the last answer, what the last turn changed, and browsers of
every configured structure; a status line shows the model, the structures in use, the
tokens in context and where the time went.

Turns and memory commands (new session, switch user, forget, ...) run one at a time in
worker threads under one lock; the panel's content is computed in the worker and handed to
the widgets (see :mod:`tui.memory`). The commands themselves are plain functions in
:mod:`tui.commands`, bound to keys by the app's actions; the conversation column is
:mod:`tui.conversation`. :func:`tui.app.run_chat_app` runs the app.
"""

from __future__ import annotations

import logging
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
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane
from textual.worker import get_current_worker

from agentmem.agent import Agent, TurnResult
from agentmem.appfiles import read_choices, save_choices
from agentmem.errors import AgentMemError, InputError, ModelError
from agentmem.factory import Components
from agentmem.manager import RecallResult
from agentmem.tui import commands
from agentmem.tui.conversation import Conversation, opening
from agentmem.tui.memory import (
    Browsers,
    Line,
    RecallSwitches,
    browsable,
    change_lines,
    collect_browsers,
    kept_turn_lines,
    model_label,
    model_part,
    plural,
    recalled_lines,
    source_turns,
)
from agentmem.tui.panel import MemoryPanel
from agentmem.tui.widgets import HistoryInput, ItemList, Reply, StatusLine, UserMessage
from agentmem.types import MemoryItem, Turn

logger = logging.getLogger(__name__)


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
    # The footer holds about 80 columns' worth: the keys used most are shown there; the
    # rest are in the command palette (Ctrl+P), which lists every key.
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f2", "panel('tab-recalled')", "Recalled"),
        Binding("f3", "panel('tab-changes')", "Changes"),
        Binding("f4", "panel('tab-browse')", "Browse", tooltip="Again: the next browser"),
        Binding("ctrl+n", "new_session", "New session"),
        Binding("ctrl+r", "item_history", "History"),
        Binding("ctrl+o", "switch_user", "User", show=False),
        Binding("ctrl+t", "structures", "Structures", show=False),
        Binding("ctrl+s", "export", "Export", show=False),
        Binding("ctrl+y", "copy_answer", "Copy", show=False),
        Binding("f8", "forget", "Forget user", show=False),
        Binding("escape", "focus('prompt')", "Back to the message", show=False),
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
        self.browse_focus: dict[str, str] = {}
        #: Every notification shown, oldest first.
        self.notices: list[Notice] = []
        self.warmed = threading.Event()
        self._lock = threading.Lock()

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="conversation"):
                with Conversation(id="chat"):
                    yield from opening(self.agent)
                yield HistoryInput(placeholder="Message (↑ ↓ for earlier inputs)", id="prompt")
            yield MemoryPanel(
                browsable(self.memory), facts=self.memory.facts is not None, id="memory"
            )
        yield StatusLine(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"user {self.agent.user_id}"
        # The structures chosen here last time on this folder (issue 35: --stores all was
        # forgotten on relaunch); what is built now is kept for the next launch.
        self.switches.set_disabled(
            read_choices(self.components.config.data_dir).get("recall_off", [])
        )
        self.keep_choices()
        self.update_status()
        self.screen_change_signal.subscribe(self, self._screen_changed)

    def _screen_changed(self, screen: Screen[Any]) -> None:
        # Back on the chat after a dialog, the palette or any other screen: the screen
        # would restore the focus it had (often the memory panel, where the dialog was
        # opened from), and typed text would go nowhere. Talking is what comes next.
        if screen is self.screen_stack[0]:
            self.query_one("#prompt", HistoryInput).focus()

    def on_ready(self) -> None:
        # After the first frame: importing a model runtime in a thread still holds the GIL
        # a lot (ONNX Runtime 0.1 s; torch, on the fallback, seconds), and would delay the
        # first paint.
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
        question, reply = await self.query_one(Conversation).add_exchange(text)
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
            reply.mark_recall_only()
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
        reply.mark_failed(f"*No answer: {what.lower()}.* {saved}")
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
        browsers = collect_browsers(self.memory, self.agent.user_id, self.browse_focus)
        if not get_current_worker().is_cancelled:
            self._ui(self.show_browsers, browsers)

    def show_browsers(self, browsers: Browsers) -> None:
        """Put freshly computed browser content into the panel."""
        if browsers.user_id == self.agent.user_id:  # not for a user switched away from
            self.query_one(MemoryPanel).show_browsers(browsers)

    @on(MemoryPanel.FocusChosen)
    def on_focus(self, event: MemoryPanel.FocusChosen) -> None:
        """Show what a structure holds around what was typed (a graph's entity)."""
        self.browse_focus[event.structure] = event.focus
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
        self.query_one(Conversation).mark_sources(set(item.source_turn_ids), jump=jump)

    def action_panel(self, tab: str) -> None:
        """Show a tab of the memory panel; on Browse again, show the next browser."""
        tabs = self.query_one("#memory-tabs", TabbedContent)
        if tab == "tab-browse" and tabs.active == tab:
            browsers = self.query_one("#browse-tabs", TabbedContent)
            panes = [pane.id for pane in browsers.query(TabPane) if pane.id]
            if panes:
                at = panes.index(browsers.active) if browsers.active in panes else -1
                browsers.active = panes[(at + 1) % len(panes)]
            return
        tabs.active = tab
        if tab in ("tab-recalled", "tab-changes"):
            # Shown to be looked at: the arrow keys move through it at once (Esc: back to
            # the message), where reaching it took several Tab presses (issue 35).
            self.query_one(f"#{tab.removeprefix('tab-')}", ItemList).focus()
        else:  # a list hidden with its tab would take the focus away with it
            self.query_one("#prompt", HistoryInput).focus()

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
        running = ["loading models in the background…"] if self.warming else []
        if self.busy:
            running.append(f"{self.busy}…")
        self.query_one(StatusLine).show(
            model_label(self.agent.model),
            self.switches,
            self.last_result,
            timings=self.show_timings,
            running=running,
        )

    def keep_choices(self) -> None:
        """Keep the structures built and those switched off for recall, for the next launch."""
        config = self.components.config
        if config.database_url is None:  # a folder of its own to keep them in
            save_choices(config.data_dir, stores=config.stores, recall_off=self.switches.disabled)

    def _set_busy(self, what: str | None) -> None:
        self.busy = what
        self.update_status()

    # -- start-up ---------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the embedder (and a local model) in the background; resume pending memory.

        Loading runs in a daemon thread rather than a worker: the first run exports the
        embedding model (seconds), sentence-transformers on the fallback takes seconds to
        import, and quitting must not wait for that to finish.
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
                pending = plural(len(report.turn_ids), "pending turn")
                self.notify(f"Folded {pending} into memory.")
            self._refresh_browsers()

    # -- commands (their bodies are in tui.commands) ----------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from commands.system_commands(self)

    def action_new_session(self) -> None:
        """End this session (consolidating memory) and start another."""
        commands.new_session(self)

    def action_switch_user(self) -> None:
        """Ask for a user id and talk as that user."""
        commands.ask_for_user(self)

    def action_structures(self) -> None:
        """Choose the structures recall uses."""
        commands.choose_structures(self)

    def toggle_structure(self, name: str) -> None:
        """Switch recall from one structure on or off."""
        commands.toggle_structure(self, name)

    def action_item_history(self) -> None:
        """Show every recorded change to the selected item."""
        commands.show_item_history(self)

    def action_export(self) -> None:
        """Write everything memory holds about this user to a JSON file in the data dir."""
        commands.export_user(self)

    def action_copy_answer(self) -> None:
        """Copy the last answer to the clipboard."""
        commands.copy_answer(self)

    def action_forget(self) -> None:
        """Erase everything about this user, after confirmation."""
        commands.ask_to_forget(self)

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

    def restart_conversation(self, text: str) -> None:
        """Clear the conversation and the panel after the user changed or was forgotten."""
        self.sub_title = f"user {self.agent.user_id}"
        self.last_answer, self.last_result, self.selected = "", None, None
        self.query_one(Conversation).restart(opening(self.agent), text)
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

    def notify_error(self, what: str, exc: AgentMemError) -> None:
        """Notify that ``what`` failed with ``exc``, with its hint."""
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
            self.notify_error(what, exc)
        except Exception as exc:  # a bug must not kill the chat; the log keeps the traceback
            logger.exception("%s", what)
            self.notify(
                f"Unexpected {type(exc).__name__}: {exc}",
                title=what,
                severity="error",
                timeout=20,
                markup=False,
            )


def _message(exc: AgentMemError) -> str:
    """Return an error's message without the hint (``str(exc)`` appends it)."""
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _stored_turn(agent: Agent, turn_id: int | None) -> Turn | None:
    """Return the user turn a failed send stored (the error carries its id), if it did."""
    found = agent.records.turns(agent.user_id, ids=[turn_id]) if turn_id is not None else []
    return found[0] if found else None
