"""The chat app's commands: new session, switch user, structures, history, export, copy, forget.

Each command is a plain function of the app. The app binds keys to them through its
``action_*`` methods (Textual looks actions up on the app), and :func:`system_commands`
lists them in the command palette. A command that touches memory hands a job to
:meth:`ChatApp.run_command <tui.chat.ChatApp.run_command>`, which runs it in a worker
thread, one at a time with turns, and refreshes the browsers after it; the job may return
a callback for the UI thread. The dialogs they open are in :mod:`tui.screens`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import SystemCommand

from agentmem.agent import Agent
from agentmem.appfiles import LAST_ANSWER_FILE, export_file
from agentmem.errors import AgentMemError
from agentmem.manager import MemoryManager
from agentmem.tui.conversation import Conversation
from agentmem.tui.memory import history_lines, receipt_text
from agentmem.tui.screens import AskScreen, ConfirmScreen, HistoryScreen, StructuresScreen
from agentmem.types import utcnow

if TYPE_CHECKING:  # the app imports this module to bind its keys
    from agentmem.tui.chat import ChatApp


def system_commands(app: ChatApp) -> Iterator[SystemCommand]:
    """Yield the app's own entries of the command palette (after Textual's)."""
    yield SystemCommand("New session", "End this session and start another", app.action_new_session)
    yield SystemCommand("Switch user", "Talk as another user id", app.action_switch_user)
    yield SystemCommand(
        "Choose structures", "Switch structures on or off for recall", app.action_structures
    )
    for name in app.switches.names:
        state = "off" if name in app.switches.disabled else "on"
        yield SystemCommand(
            f"Toggle recall from {name}",
            f"Recall from {name} is {state}; switch it",
            partial(app.toggle_structure, name),
        )
    yield SystemCommand(
        "Show history", "Every recorded change to the selected item", app.action_item_history
    )
    yield SystemCommand("Export user", "Write this user's memory to JSON", app.action_export)
    yield SystemCommand(
        "Copy last answer",
        "Send it to the terminal's clipboard and save it to last-answer.txt",
        app.action_copy_answer,
    )
    yield SystemCommand("Forget user", "Erase everything about this user", app.action_forget)


def new_session(app: ChatApp) -> None:
    """End this session (consolidating memory) and start another."""

    def job() -> Callable[[], None]:
        app.agent.new_session()
        return lambda: app.query_one(Conversation).add_divider(
            "New session: what came before is now long-term memory."
        )

    app.run_command("starting a new session", job)


def ask_for_user(app: ChatApp) -> None:
    """Ask for a user id and talk as that user."""

    def chosen(user_id: str | None) -> None:
        if user_id and user_id != app.agent.user_id:
            switch_user(app, user_id)

    app.push_screen(AskScreen("Talk as which user?", value=app.agent.user_id), chosen)


def switch_user(app: ChatApp, user_id: str) -> None:
    """Rebuild the agent for ``user_id`` with the same components, and show their memory."""
    old = app.agent

    def job() -> Callable[[], None]:
        agent = _agent_like(old, app.memory, user_id)  # validates the id first
        app.memory.end_session(old.user_id, old.session_id)
        app.memory.resume(user_id)
        app.agent = agent
        return partial(app.restart_conversation, f"Now talking with user {user_id}.")

    app.run_command(f"switching to {user_id}", job)


def choose_structures(app: ChatApp) -> None:
    """Choose the structures recall uses."""

    def chosen(disabled: frozenset[str] | None) -> None:
        if disabled is not None:
            app.switches.set_disabled(disabled)
            app.keep_choices()
            app.update_status()
            app.notify(f"Recall now uses: {', '.join(app.switches.enabled) or 'nothing'}.")

    app.push_screen(StructuresScreen(app.switches.names, app.switches.disabled), chosen)


def toggle_structure(app: ChatApp, name: str) -> None:
    """Switch recall from one structure on or off."""
    now_on = app.switches.toggle(name)
    app.keep_choices()
    app.update_status()
    app.notify(f"Recall from {name} is {'on' if now_on else 'off'}.")


def show_item_history(app: ChatApp) -> None:
    """Show every recorded change to the item selected in the memory panel."""
    item = app.selected
    if item is None:
        app.notify("Select an item in the memory panel first.", severity="warning")
        return
    try:
        events = app.memory.history(item.id, user_id=item.user_id)
    except AgentMemError as exc:
        app.notify_error("No history", exc)
        return
    title = f"History of a {item.kind} in {item.store}: {item.text}"
    app.push_screen(HistoryScreen(title, history_lines(events)))


def export_user(app: ChatApp) -> None:
    """Write everything memory holds about this user to a JSON file in the data dir."""
    user_id = app.agent.user_id
    stamp = utcnow().strftime("%Y%m%dT%H%M%S")
    path = export_file(Path(app.components.config.data_dir), user_id, stamp)

    def job() -> Callable[[], None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = app.memory.export(user_id, path)
        counts = f"{len(data['turns'])} turns, {len(data['items'])} items"
        return partial(app.notify, f"Exported {counts} to {path}", title="Exported")

    app.run_command("exporting", job)


def copy_answer(app: ChatApp) -> None:
    """Send the last answer to the terminal's clipboard, and write it to a file.

    Textual copies through an OSC 52 escape sequence: the terminal never says whether it
    took it (many ignore it, tmux and SSH often drop it), so the notice says "sent", not
    "copied", and the answer is also written to ``last-answer.txt`` in the data dir, a
    copy that is sure to exist.
    """
    if not app.last_answer:
        app.notify("No answer to copy yet.", severity="warning")
        return
    app.copy_to_clipboard(app.last_answer)
    sent = "Sent the last answer to the terminal's clipboard (if your terminal supports it)."
    path = Path(app.components.config.data_dir) / LAST_ANSWER_FILE
    try:
        path.write_text(app.last_answer + "\n", encoding="utf-8")
    except OSError as exc:
        app.notify(
            f"{sent}\nIt could not be saved to {path}: {exc}", severity="warning", markup=False
        )
        return
    app.notify(f"{sent}\nAlso saved to {path}.", title="Copy", markup=False)


def ask_to_forget(app: ChatApp) -> None:
    """Erase everything about this user, after confirmation."""
    user_id = app.agent.user_id

    def confirmed(yes: bool | None) -> None:
        if yes:
            forget_user(app, user_id)

    question = (
        f"Forget user {user_id}? Every turn, memory item, history entry and vector about "
        "them is erased from every structure. This cannot be undone."
    )
    app.push_screen(ConfirmScreen(question, confirm="Forget"), confirmed)


def forget_user(app: ChatApp, user_id: str) -> None:
    """Erase a user (no confirmation) and start them afresh."""
    old = app.agent

    def job() -> Callable[[], None]:
        receipt = app.components.forget(user_id)
        app.agent = _agent_like(old, app.memory, user_id)
        message = receipt_text(user_id, receipt)

        def done() -> None:
            app.restart_conversation(f"Everything about {user_id} was forgotten.")
            app.notify(message, title="Forgotten", timeout=15, markup=False)

        return done

    app.run_command(f"forgetting {user_id}", job)


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
