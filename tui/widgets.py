"""The chat app's widgets: messages, input with history, status line, memory lists and trees."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.css.styles import RulesMap
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, Visual
from textual.widgets import Input, Markdown, OptionList, Static, Tree
from textual.widgets.option_list import Option
from textual.widgets.tree import TreeNode

from agentmem.agent import TurnResult
from agentmem.prompts import format_date
from agentmem.tui.memory import Line, RecallSwitches, Tone, clip, provenance, validity
from agentmem.types import MemoryItem, Outline, Turn

_TONE_STYLES: dict[Tone, str] = {
    "normal": "bold $accent",
    "old": "bold $text-muted",
    "heading": "bold reverse $primary",
    "add": "bold $success",
    "supersede": "bold $warning",
    "delete": "bold $error",
    "noop": "$text-muted",
    "merge": "bold $secondary",
    "error": "bold reverse $error",
}


class Hanging(Visual):
    """A head (a badge) followed by a body whose wrapped lines stay indented under it.

    Content wraps continuation lines back to column 0, which buries a list's badges in
    text; this renders the body at the width left after the head and pads every line but
    the first by the head's width.

    Args:
        head: What starts the first line.
        body: The text beside and under it.
    """

    def __init__(self, head: Content, body: Content) -> None:
        self.head = head
        self.body = body

    @property
    def indent(self) -> int:
        """The head's width: the column every body line starts at."""
        return self.head.cell_length

    def get_optimal_width(self, rules: RulesMap, container_width: int) -> int:
        return self.indent + self.body.get_optimal_width(rules, container_width - self.indent)

    def get_height(self, rules: RulesMap, width: int) -> int:
        return self.body.get_height(rules, max(1, width - self.indent))

    def render_strips(
        self, width: int, height: int | None, style: Style, options: RenderOptions
    ) -> list[Strip]:
        body_width = max(1, width - self.indent)
        head = self.head.render_strips(self.indent, 1, style, options)[0]
        blank = Strip.blank(self.indent, style.rich_style)
        lines = self.body.render_strips(body_width, height, style, options)
        return [
            Strip.join([head if y == 0 else blank, line.extend_cell_length(body_width)])
            for y, line in enumerate(lines)
        ]


def line_content(line: Line) -> Hanging:
    """Render a :class:`Line`: badge, text, then its notes dimmed, all indented under the text."""
    text_style = "strike $text-muted" if line.tone == "old" else ""
    if line.tone == "heading":
        text_style = "bold"
    head = Content.assemble((f" {line.badge} ", _TONE_STYLES[line.tone]), " ")
    parts: list[str | tuple[str, str]] = [(line.text, text_style)]
    for note in line.notes:
        parts += ["\n", (note, "$text-muted")]
    return Hanging(head, Content.assemble(*parts))


class UserMessage(Markdown):
    """A message the user sent."""

    def __init__(self, text: str, *, turn_id: int | None = None) -> None:
        super().__init__(text)
        self.turn_id = turn_id

    def mark_earlier(self) -> None:
        """Label the message as one from an earlier session."""
        self.add_class("-earlier")


class Reply(Markdown):
    """An answer from the agent, streamed into place."""

    BORDER_TITLE = "agentmem"

    def __init__(self, text: str = "", *, turn_id: int | None = None) -> None:
        super().__init__(text)
        self.turn_id = turn_id

    def mark_recall_only(self) -> None:
        """Label the reply as recalled memory rather than a model's answer."""
        self.border_title = "agentmem · recall only (no model)"
        self.add_class("-recall-only")

    def mark_earlier(self) -> None:
        """Label the reply as one from an earlier session."""
        self.border_title = f"{self.border_title} · earlier"
        self.add_class("-earlier")

    def mark_failed(self, text: str) -> None:
        """Replace the reply with ``text``, saying why there is no answer."""
        self.update(text)
        self.border_title = "agentmem · no answer"
        self.add_class("-failed")


class Divider(Static):
    """A line across the conversation: a new session, another user."""


class StatusLine(Static):
    """The line under the chat: model and structures; the last turn's costs; what runs."""

    def show(
        self,
        model: str,
        switches: RecallSwitches,
        result: TurnResult | None,
        *,
        timings: bool,
        running: Sequence[str] = (),
    ) -> None:
        """Show the status.

        Args:
            model: The chat model, as the user should read it.
            switches: The structures recall uses.
            result: The last turn, for its context size and latencies (none before the first).
            timings: Show latencies (off for reproducible screenshots).
            running: What runs in the background, each ending in an ellipsis.
        """
        used = ", ".join(switches.enabled) or "none"
        off = ", ".join(sorted(switches.disabled))
        first = f"{model} · recall from: {used}"
        if off:
            first += f" · off: {off}"
        second = ""
        if result is not None:
            recall = result.recall
            prompt = f"{result.prompt_tokens} tok" if not result.recall_only else "— (recall only)"
            second = (
                f"context: memory {recall.tokens} tok ({len(recall.items)} items) · prompt {prompt}"
            )
            if timings:
                second += " · " + " · ".join(
                    f"{name} {result.timings[name] * 1000:.0f} ms"
                    for name in ("recall", "answer", "memory")
                    if name in result.timings
                )
        lines = [first, " · ".join(x for x in (second, *running) if x)]
        self.update("\n".join(x for x in lines if x))


class HistoryInput(Input):
    """An input whose up and down keys recall the previous inputs."""

    BINDINGS = [
        Binding("up", "history(-1)", "Previous input", show=False),
        Binding("down", "history(1)", "Next input", show=False),
    ]

    def __init__(self, *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id)
        self.entries: list[str] = []
        self._position: int | None = None
        self._draft = ""

    def remember(self, text: str) -> None:
        """Add a sent input to the history."""
        if not self.entries or self.entries[-1] != text:
            self.entries.append(text)
        self._position = None
        self._draft = ""

    def action_history(self, step: int) -> None:
        """Show the previous (``-1``) or next (``1``) input; past the newest, the draft."""
        if not self.entries or (self._position is None and step > 0):
            return
        if self._position is None:
            self._draft = self.value
            position = len(self.entries) - 1
        else:
            position = max(0, self._position + step)
        if position >= len(self.entries):
            self._position = None
            self.value = self._draft
        else:
            self._position = position
            self.value = self.entries[position]
        self.action_end()


class ItemList(OptionList):
    """A list of :class:`Line` entries; the ones without an item cannot be selected."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: list[Line] = []

    def show(self, lines: Sequence[Line]) -> None:
        """Replace the entries, keeping the highlighted item when it is still listed."""
        kept = self.item_at(self.highlighted)
        self.entries = list(lines)
        self.set_options(
            Option(line_content(line), disabled=line.item is None) for line in self.entries
        )
        for index, line in enumerate(self.entries):
            if kept is not None and line.item is not None and line.item.id == kept.id:
                self.highlighted = index
                break

    def item_at(self, index: int | None) -> MemoryItem | None:
        """Return the item of the entry at ``index``, if any."""
        if index is None or not 0 <= index < len(self.entries):
            return None
        return self.entries[index].item


class ItemTree(Tree[MemoryItem | None]):
    """A structure's outline (MemTree nodes, memos by topic, summary versions, triples)."""

    def show(self, nodes: Sequence[Outline], *, empty: str, note: str = "") -> None:
        """Replace the tree; expand the first two levels."""
        self.clear()
        if not nodes:
            self.root.add_leaf(empty, data=None)
        for node in nodes:
            self._add(self.root, node, expand=True)
        if note:
            self.root.add_leaf(note, data=None)
        self.root.expand()

    def _add(self, parent: TreeNode[MemoryItem | None], node: Outline, *, expand: bool) -> None:
        # Tree labels are Rich text (Textual's Tree predates Content).
        ended = node.item is not None and not node.item.current
        label = Text(clip(node.label, 100), style="dim strike" if ended else "")
        if not node.children:
            parent.add_leaf(label, data=node.item)
            return
        branch = parent.add(label, data=node.item, expand=expand)
        for child in node.children:
            self._add(branch, child, expand=False)


class ItemDetails(VerticalScroll):
    """The selected item in full: structure, validity, text, and its source turns."""

    def compose(self) -> ComposeResult:
        yield Static("Select an item to see where it came from.", id="details-text")

    def show(self, item: MemoryItem | None, turns: Sequence[Turn] = ()) -> None:
        """Show ``item`` and the turns it was derived from."""
        text = self.query_one("#details-text", Static)
        if item is None:
            text.update("Select an item to see where it came from.")
            return
        parts: list[str | tuple[str, str]] = [
            (f" {item.store} · {item.kind} ", "bold reverse $accent"),
            " ",
            (validity(item), "$text-muted"),
            "\n",
            item.shown_text(),
            "\n",
            (provenance(item), "bold"),
        ]
        for turn in turns:
            when = format_date(turn.timestamp)
            parts += [
                "\n",
                (f"#{turn.id} {when} {turn.speaker}: ", "$accent"),
                clip(turn.text, 400),
            ]
        if len(item.source_turn_ids) > len(turns):
            parts += ["\n", (f"… {len(item.source_turn_ids) - len(turns)} more", "$text-muted")]
        text.update(Content.assemble(*parts))
        self.scroll_home(animate=False)
