"""The memory panel beside the chat: what was recalled, what changed, and the browsers.

The panel only displays; the app computes its content in worker threads (see
:mod:`tui.memory`) and hands it over. Selecting an item posts :class:`MemoryPanel.Selected`
so the app can show its source turns; typing into a browser's focus field (the graph's
entity) posts :class:`MemoryPanel.FocusChosen`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList, Static, TabbedContent, TabPane, Tree

from agentmem.tui.memory import Browsers, Line
from agentmem.tui.widgets import ItemDetails, ItemList, ItemTree
from agentmem.types import MemoryItem, Turn

NOTHING_RECALLED = Line("—", "Nothing recalled yet: send a message.", tone="noop")
NO_CHANGES = Line("—", "No turn yet: changes to memory appear here.", tone="noop")


class MemoryPanel(Vertical):
    """Tabs for the recalled items, the last turn's changes and the browsers; then details.

    Args:
        browsable: The browsable structures, each with its focus hint (a structure with a
            hint gets a field for it above its browser).
        facts: Whether the fact ledger is on.
    """

    @dataclass
    class Selected(Message):
        """An item was highlighted (``jump=False``) or chosen (``jump=True``)."""

        item: MemoryItem
        jump: bool

    @dataclass
    class FocusChosen(Message):
        """Something to focus on was typed into a structure's browser."""

        structure: str
        focus: str

    def __init__(
        self, browsable: Sequence[tuple[str, str]], *, facts: bool, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.browsable = list(browsable)
        self.facts = facts

    def compose(self) -> ComposeResult:
        with TabbedContent(id="memory-tabs"):
            with TabPane("Recalled", id="tab-recalled"):
                yield ItemList(id="recalled")
            with TabPane("Changes", id="tab-changes"):
                yield ItemList(id="changes")
            with TabPane("Browse", id="tab-browse"), TabbedContent(id="browse-tabs"):
                with TabPane("Facts", id="tab-facts"):
                    if self.facts:
                        yield ItemList(id="facts")
                    else:
                        yield Static(
                            "Facts are not tracked in this configuration.\n"
                            "Set facts = true in config.toml to track them.",
                            classes="not-enabled",
                        )
                if not self.browsable:
                    with TabPane("Structures", id="tab-structures"):
                        yield Static(
                            "None of the configured structures has an outline to browse.\n"
                            "Start with --stores all to add a tree, a graph, topic memos "
                            "and a summary.",
                            classes="not-enabled",
                        )
                for name, hint in self.browsable:
                    with TabPane(name, id=f"tab-{name}"):
                        if hint:
                            yield Input(placeholder=hint, id=f"focus-{name}", classes="focus")
                        yield ItemTree(name, id=f"browse-{name}", classes="browser")
        yield ItemDetails(id="details")

    def on_mount(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Clear the recalled items, the changes and the details (another user, or forgotten)."""
        self.show_recalled([NOTHING_RECALLED])
        self.show_changes([NO_CHANGES])
        self.show_details(None)

    def show_recalled(self, lines: Sequence[Line]) -> None:
        """Show what was recalled for the last answer."""
        self.query_one("#recalled", ItemList).show(lines)

    def show_changes(self, lines: Sequence[Line]) -> None:
        """Show what the last turn changed in memory."""
        self.query_one("#changes", ItemList).show(lines)

    def show_details(self, item: MemoryItem | None, turns: Sequence[Turn] = ()) -> None:
        """Show the selected item in full, with its source turns."""
        self.query_one("#details", ItemDetails).show(item, turns)

    def show_browsers(self, browsers: Browsers) -> None:
        """Put freshly computed browser content into the browsers that exist."""
        if browsers.facts is not None:
            self.query_one("#facts", ItemList).show(browsers.facts)
        for browser in browsers.structures:
            found = self.query(f"#browse-{browser.name}")
            if found:
                empty = "Nothing yet." if not browser.focus_hint else "Type above to look closer."
                found.first(ItemTree).show(browser.entries, empty=empty)

    @on(Input.Submitted, ".focus")
    def _focus(self, event: Input.Submitted) -> None:
        event.stop()
        name = (event.input.id or "").removeprefix("focus-")
        self.post_message(self.FocusChosen(name, event.value.strip()))

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._select(event.option_list, event.option_index, jump=False)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self._select(event.option_list, event.option_index, jump=True)

    @on(Tree.NodeHighlighted)
    def _node_highlighted(self, event: Tree.NodeHighlighted[MemoryItem | None]) -> None:
        if event.node.data is not None:
            self.post_message(self.Selected(event.node.data, False))

    @on(Tree.NodeSelected)
    def _node_chosen(self, event: Tree.NodeSelected[MemoryItem | None]) -> None:
        if event.node.data is not None:
            self.post_message(self.Selected(event.node.data, True))

    def _select(self, option_list: OptionList, index: int, *, jump: bool) -> None:
        if isinstance(option_list, ItemList):
            item = option_list.item_at(index)
            if item is not None:
                self.post_message(self.Selected(item, jump))
