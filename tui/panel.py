"""The memory panel beside the chat: what was recalled, what changed, and the browsers.

The panel only displays; the app computes its content in worker threads (see
:mod:`tui.memory`) and hands it over. Selecting an item posts :class:`MemoryPanel.Selected`
so the app can show its source turns; typing an entity posts
:class:`MemoryPanel.EntityChosen`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, OptionList, Static, TabbedContent, TabPane, Tree

from agentmem.tui.memory import GRAPH, MEMO, MEMTREE, SUMMARY, Browsers, Line
from agentmem.tui.widgets import ItemDetails, ItemList, ItemTree
from agentmem.types import MemoryItem, Turn

NOTHING_RECALLED = Line("—", "Nothing recalled yet: send a message.", tone="noop")
NO_CHANGES = Line("—", "No turn yet: changes to memory appear here.", tone="noop")


class MemoryPanel(Vertical):
    """Tabs for the recalled items, the last turn's changes and the browsers; then details.

    Args:
        structures: The names of the configured structures (their browsers are shown;
            the others say they are not enabled).
        facts: Whether the fact ledger is on.
    """

    @dataclass
    class Selected(Message):
        """An item was highlighted (``jump=False``) or chosen (``jump=True``)."""

        item: MemoryItem
        jump: bool

    @dataclass
    class EntityChosen(Message):
        """An entity was typed into the graph browser."""

        entity: str

    def __init__(self, structures: Sequence[str], *, facts: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self.structures = set(structures)
        self.facts = facts

    def compose(self) -> ComposeResult:
        names = self.structures
        with TabbedContent(id="memory-tabs"):
            with TabPane("Recalled", id="tab-recalled"):
                yield ItemList(id="recalled")
            with TabPane("Changes", id="tab-changes"):
                yield ItemList(id="changes")
            with TabPane("Browse", id="tab-browse"), TabbedContent(id="browse-tabs"):
                with TabPane("Facts", id="tab-facts"):
                    yield _browser(
                        self.facts, ItemList(id="facts"), "Fact tracking", "facts = true"
                    )
                with TabPane("MemTree", id="tab-memtree"):
                    tree = ItemTree("MemTree", id="memtree")
                    yield _browser(MEMTREE in names, tree, "MemTree", f"--stores {MEMTREE}")
                with TabPane("Graph", id="tab-graph"):
                    if GRAPH in names:
                        yield Input(placeholder="an entity, e.g. Denver", id="entity")
                        yield Static(id="graph-hint")
                        yield ItemList(id="graph")
                    else:
                        yield _not_enabled("The triple graph", f"--stores {GRAPH}")
                with TabPane("Memos", id="tab-memos"):
                    memos = ItemTree("Memos by topic", id="memos")
                    yield _browser(MEMO in names, memos, "Topic memos", f"--stores {MEMO}")
                with TabPane("Summary", id="tab-summary"):
                    summary = ItemList(id="summaries")
                    yield _browser(
                        SUMMARY in names, summary, "The running summary", f"--stores {SUMMARY}"
                    )
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
        if browsers.memtree is not None:
            left_out = browsers.truncated.get(MEMTREE, 0)
            self.query_one("#memtree", ItemTree).show(
                browsers.memtree,
                empty="No nodes yet.",
                note=f"… {left_out} more nodes not shown" if left_out else "",
            )
        if browsers.graph is not None:
            graph = browsers.graph
            top = ", ".join(f"{name} ({count})" for name, count in graph.top_entities)
            if not graph.entity:
                hint = f"Most connected: {top}" if top else "No triples yet."
            else:
                hint = f"{len(graph.facts)} triple(s) about {graph.entity!r}"
            self.query_one("#graph-hint", Static).update(hint)
            self.query_one("#graph", ItemList).show(graph.facts)
        if browsers.memos is not None:
            self.query_one("#memos", ItemTree).show(browsers.memos, empty="No memos yet.")
        if browsers.summaries is not None:
            self.query_one("#summaries", ItemList).show(
                browsers.summaries or [Line("—", "No summary yet.", tone="noop")]
            )

    @on(Input.Submitted, "#entity")
    def _entity(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.EntityChosen(event.value.strip()))

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


def _browser(enabled: bool, widget: Widget, what: str, how: str) -> Widget:
    """Return the browser widget, or a note that its structure is not configured."""
    return widget if enabled else _not_enabled(what, how)


def _not_enabled(what: str, how: str) -> Static:
    return Static(f"{what} is not enabled.\nTurn it on with {how}.", classes="not-enabled")
