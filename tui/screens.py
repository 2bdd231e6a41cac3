"""The chat app's dialogs: confirm, ask for a value, choose structures, show an item's history."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static

from agentmem.tui.memory import Line
from agentmem.tui.widgets import ItemList


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; dismiss with the answer.

    Args:
        question: What to ask.
        confirm: The label of the button that says yes.
    """

    BINDINGS = [
        Binding("escape,n", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
    ]

    def __init__(self, question: str, *, confirm: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(self.confirm, variant="error", id="yes")
                yield Button("Cancel", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def on_button(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        """Dismiss with ``answer``."""
        self.dismiss(answer)


class AskScreen(ModalScreen[str | None]):
    """Ask for one line of text; dismiss with it, or ``None`` when cancelled.

    Args:
        question: What to ask.
        value: The text the input starts with.
    """

    AUTO_FOCUS = "#answer"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, *, value: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question", markup=False)
            yield Input(self.value, id="answer", select_on_focus=True)
            yield Static("Enter to confirm, Escape to cancel.", classes="hint")

    @on(Input.Submitted)
    def on_submit(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        """Dismiss without an answer."""
        self.dismiss(None)


class StructuresScreen(ModalScreen[frozenset[str] | None]):
    """Choose which structures recall uses; dismiss with the ones switched off.

    Args:
        names: Every structure.
        off: The ones currently off.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, names: Sequence[str], off: frozenset[str]) -> None:
        super().__init__()
        self.names = list(names)
        self.off = off

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Structures used for recall (space toggles)", classes="question")
            yield SelectionList[str](
                *[(name, name, name not in self.off) for name in self.names],
                id="structures",
            )
            yield Static(
                "Switched-off structures still learn every turn; only recall skips them.",
                classes="hint",
            )
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#structures", SelectionList).focus()

    @on(Button.Pressed, "#apply")
    def apply(self) -> None:
        """Dismiss with the structures left unticked."""
        chosen = set(self.query_one("#structures", SelectionList).selected)
        self.dismiss(frozenset(name for name in self.names if name not in chosen))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Dismiss without a change."""
        self.dismiss(None)


class HistoryScreen(ModalScreen[None]):
    """Show every recorded change to one memory item.

    Args:
        title: The item, in words.
        lines: Its history, oldest first.
    """

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, lines: Sequence[Line]) -> None:
        super().__init__()
        self.title_text = title
        self.entries = list(lines)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(self.title_text, classes="question", markup=False)
            yield ItemList(id="history")
            yield Button("Close", variant="primary", id="close")

    def on_mount(self) -> None:
        history = self.query_one("#history", ItemList)
        history.show(self.entries)
        history.focus()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        """Close the dialog."""
        self.dismiss(None)
