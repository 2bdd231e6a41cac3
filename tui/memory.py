"""What the chat app shows about memory, computed without Textual.

The memory panel's content (the recalled items, the per-turn diff, the browsers of each
structure) is built here as plain frozen dataclasses from the records database, so it can
be computed in a worker thread and tested without a terminal. A structure's browser is
whatever its :class:`~agentmem.protocols.Browsable` outline says, so the app needs to know
nothing of any structure's shape. :class:`RecallSwitches` lets the user switch structures
off for recall while every structure still learns each turn.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from agentmem.ledger.facts import FACT_STORE, is_ending
from agentmem.manager import MemoryManager, RecallResult, WriteReport
from agentmem.prompts import format_date
from agentmem.protocols import Browsable, ChatModel
from agentmem.storage.records import Records
from agentmem.types import ItemEvent, MemoryItem, Outline, Turn

logger = logging.getLogger(__name__)

#: Most items one browser list shows; a long history would make the panel crawl.
BROWSER_LIMIT = 300
#: Most items one structure's browser shows; rebuilt after every turn.
TREE_LIMIT = 500
#: Most facts no longer current shown (each costs a history query).
HISTORY_LIMIT = 100
#: Most source turns shown for one selected item.
SHOWN_TURNS = 8

Tone = Literal["normal", "old", "heading", "add", "supersede", "delete", "noop", "merge", "error"]

_ACTION_TONES: dict[str, Tone] = {
    "ADD": "add",
    "UPDATE": "merge",
    "SUPERSEDE": "supersede",
    "DELETE": "delete",
    "NOOP": "noop",
}


@dataclass(frozen=True)
class Line:
    """One entry of a memory list.

    Attributes:
        badge: A short tag shown first (the action, the structure, a version).
        text: The item's text.
        notes: Further lines: score, validity, provenance, reasons.
        item: The item behind the entry; ``None`` for headings and messages.
        tone: How to colour it.
    """

    badge: str
    text: str
    notes: tuple[str, ...] = ()
    item: MemoryItem | None = None
    tone: Tone = "normal"


@dataclass(frozen=True)
class Browser:
    """One structure's browser: its outline, and what its focus field asks for.

    Attributes:
        name: The structure.
        focus_hint: What the structure's focus field takes ("" for none).
        entries: The outline (see :class:`~agentmem.protocols.Browsable`).
    """

    name: str
    focus_hint: str
    entries: tuple[Outline, ...]


@dataclass(frozen=True)
class Browsers:
    """Every browser's content for one user; ``facts`` is ``None`` without the ledger."""

    user_id: str
    facts: tuple[Line, ...] | None = None
    structures: tuple[Browser, ...] = ()


# -- small renderings -----------------------------------------------------------------------


def validity(item: MemoryItem) -> str:
    """Say when an item holds, in dialogue time."""
    since = format_date(item.valid_from)
    if item.current:
        return f"current since {since}" if since else "current"
    ended = format_date(item.invalid_at)
    span = f"{since} → {ended}" if since else f"until {ended}"
    return f"no longer current ({span})"


def provenance(item: MemoryItem, *, shown: int = 6) -> str:
    """Name the turns an item came from."""
    ids = list(item.source_turn_ids)
    if not ids:
        return "no source turns"
    head = ", ".join(f"#{i}" for i in ids[:shown])
    more = f" (+{len(ids) - shown} more)" if len(ids) > shown else ""
    return f"from turn{'s' if len(ids) > 1 else ''} {head}{more}"


def clip(text: str, width: int = 90) -> str:
    """Shorten ``text`` to one line of at most ``width`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def model_label(model: ChatModel | None) -> str:
    """Describe the chat model and where it runs, looking through retry/metering wrappers."""
    if model is None:
        return "no model (recall-only answers)"
    part: object = model
    for _ in range(8):
        base_url = getattr(part, "base_url", None)
        if base_url:
            return f"{model.name} via {base_url}"
        if type(part).__name__.startswith("LlamaCpp"):
            # SmolLM2-135M, the default local file, is a demo: say so where it answers.
            demo = "smollm2" in model.name.lower()
            return f"{model.name} (local{', a small demo model' if demo else ''})"
        part = getattr(part, "inner", None)
        if part is None:
            break
    return model.name


def model_part(model: object, method: str) -> object | None:
    """Return the first object in a chain of wrappers (``.inner``) that has ``method``."""
    part = model
    for _ in range(8):
        if part is None:
            return None
        if callable(getattr(part, method, None)):
            return part
        part = getattr(part, "inner", None)
    return None


# -- the recalled items and the diff -------------------------------------------------------


#: Cells of the relevance bar beside a recalled item.
BAR_CELLS = 5


def relevance_bar(score: float, best: float, *, cells: int = BAR_CELLS) -> str:
    """Draw ``score`` as a bar of ``cells`` relative to the best score of the same recall.

    Raw fused scores (0.0164) mean nothing to a reader and differ in scale between
    structures and recall settings; the share of the best one reads at a glance.
    """
    share = score / best if best > 0 else 0.0
    filled = max(1, min(cells, round(share * cells)))
    return "▰" * filled + "▱" * (cells - filled)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """Return ``count`` with the noun agreeing ("1 fact", "2 facts")."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"


def recalled_lines(recall: RecallResult) -> list[Line]:
    """Return the recalled items, best first: rank, relevance bar, structure, sources."""
    best = max((hit.score for hit in recall.items), default=0.0)
    lines = [
        Line(
            f"{rank}",
            hit.item.shown_text(),
            (
                f"{relevance_bar(hit.score, best)} {hit.item.store} · {validity(hit.item)}",
                provenance(hit.item),
            ),
            hit.item,
            "normal" if hit.item.current else "old",
        )
        for rank, hit in enumerate(recall.items, 1)
    ]
    if not lines:
        lines.append(Line("—", "Nothing relevant was recalled.", tone="noop"))
    extra = []
    if recall.dropped:
        extra.append(f"{plural(recall.dropped, 'more item')} left out to fit the memory budget")
    if recall.stale_dropped:
        extra.append(f"{plural(recall.stale_dropped, 'stale item')} dropped and invalidated")
    if extra:
        lines.append(Line("note", "; ".join(extra), tone="noop"))
    return lines


def change_lines(report: WriteReport, records: Records) -> list[Line]:
    """Return what writing a turn into memory did: one line per change, then failures."""
    related_ids = {i for change in report.changes for i in change.related_ids}
    related = {item.id: item for item in records.items(related_ids)}
    lines: list[Line] = []
    for change in report.changes:
        notes = [f"{change.item.store} · {change.reason}" if change.reason else change.item.store]
        for item_id in change.related_ids:
            if item_id == change.item.id:
                continue
            old = related.get(item_id)
            verb = "ends" if change.kind == "DELETE" else "replaces"
            notes.append(f"{verb}: {clip(old.text, 70) if old else item_id}")
        lines.append(
            Line(
                change.kind,
                change.item.text,
                tuple(notes),
                change.item,
                _ACTION_TONES[change.kind],
            )
        )
    for store, error in sorted(report.failures.items()):
        lines.append(
            Line(
                "FAILED", f"{store} could not fold the turn in", (clip(error, 200),), None, "error"
            )
        )
    if not lines:
        lines.append(Line("—", "This turn changed nothing in memory.", tone="noop"))
    return lines


def kept_turn_lines(records: Records, user_id: str, turn_id: int) -> list[Line]:
    """Return what memory holds from a turn whose answer failed (it is remembered anyway)."""
    items = records.items_from_turns(user_id, [turn_id])
    lines = [
        Line(
            "ADD", item.text, (f"{item.store} · remembered although the model failed",), item, "add"
        )
        for item in items
    ]
    return lines or [Line("—", "The turn is stored; memory will fold it in later.", tone="noop")]


# -- the browsers ----------------------------------------------------------------------------


def _ending(events: Sequence[ItemEvent]) -> ItemEvent | None:
    """Return the event that ended an item (the last one that is not ADD or UPDATE)."""
    endings = [e for e in events if e.action not in ("ADD", "UPDATE")]
    return endings[-1] if endings else None


def fact_lines(records: Records, user_id: str, *, limit: int = BROWSER_LIMIT) -> list[Line]:
    """Return the user's current facts, then the ones that no longer hold and why."""
    items = records.store_items(FACT_STORE, user_id, kind="fact", current_only=False)
    # The record of an ending is no fact: what it ended says so in its own history.
    items = [i for i in items if not is_ending(i)]
    current = [i for i in items if i.current]
    old = sorted((i for i in items if not i.current), key=_ended_at, reverse=True)
    lines = [Line("Current", _count(len(current), limit, "fact"), tone="heading")]
    lines += [
        Line("✓", item.text, (f"{validity(item)} · {provenance(item)}",), item)
        for item in reversed(current[-limit:])
    ]
    shown = min(limit, HISTORY_LIMIT)
    lines.append(
        Line("History", _count(len(old), shown, "fact", " no longer current"), tone="heading")
    )
    old = old[:shown]
    replacements = {
        i.id: i for i in records.items({i.superseded_by for i in old if i.superseded_by})
    }
    for item in old:
        ending = _ending(records.history(item.id))
        why = ending.reason if ending and ending.reason else "invalidated"
        notes = [validity(item), why]
        replacement = replacements.get(item.superseded_by or "")
        if replacement is not None and replacement.text not in why:
            notes.append(f"now: {clip(replacement.text, 70)}")
        lines.append(Line("✗", item.text, tuple(notes), item, "old"))
    return lines


def _count(total: int, shown: int, what: str, after: str = "") -> str:
    return plural(total, what) + after + (f" (the latest {shown} shown)" if total > shown else "")


def _ended_at(item: MemoryItem) -> datetime:
    return item.invalid_at or item.valid_from or datetime.min


def browsable(manager: MemoryManager) -> list[tuple[str, str]]:
    """Return the configured structures that can be browsed, with their focus hints."""
    return [
        (store.name, store.focus_hint) for store in manager.stores if isinstance(store, Browsable)
    ]


def collect_browsers(
    manager: MemoryManager, user_id: str, focus: Mapping[str, str] | None = None
) -> Browsers:
    """Compute every browser for ``user_id``: the facts, then each browsable structure."""
    focus = focus or {}
    structures = tuple(
        Browser(
            store.name,
            store.focus_hint,
            tuple(store.outline(user_id, focus=focus.get(store.name, ""), limit=TREE_LIMIT)),
        )
        for store in manager.stores
        if isinstance(store, Browsable)
    )
    facts = tuple(fact_lines(manager.records, user_id)) if manager.facts is not None else None
    return Browsers(user_id, facts, structures)


# -- the conversation before this one ------------------------------------------------------


#: Sessions looked through, newest first, for the last one with turns (bounds start-up).
SESSIONS_LOOKED_AT = 20


def last_session_turns(records: Records, user_id: str, session_id: str, limit: int) -> list[Turn]:
    """Return the last ``limit`` turns of the user's latest session other than ``session_id``.

    Sessions are taken newest first by start time; empty ones (an app opened and closed
    without a word) are skipped.
    """
    sessions = [s.id for s in records.sessions(user_id) if s.id != session_id]
    for other in reversed(sessions[-SESSIONS_LOOKED_AT:]):
        turns = records.recent_turns(user_id, other, limit)
        if turns:
            return turns
    return []


# -- details of one item -------------------------------------------------------------------


def source_turns(records: Records, item: MemoryItem, *, shown: int = SHOWN_TURNS) -> list[Turn]:
    """Return the first turns an item was derived from (scoped to its user)."""
    ids = list(item.source_turn_ids)[:shown]
    return records.turns(item.user_id, ids=ids) if ids else []


def history_lines(events: Sequence[ItemEvent]) -> list[Line]:
    """Return an item's recorded changes, oldest first."""
    lines = []
    for event in events:
        notes = [x for x in (format_date(event.at), event.reason) if x]
        if event.action == "UPDATE" and event.old_text:
            notes.append(f"was: {clip(event.old_text, 120)}")
        text = event.new_text or event.old_text or ""
        lines.append(
            Line(event.action, text, tuple(notes), None, _ACTION_TONES.get(event.action, "normal"))
        )
    return lines or [Line("—", "No recorded changes.", tone="noop")]


def receipt_text(user_id: str, receipt: dict[str, int]) -> str:
    """Summarise what forgetting a user removed."""
    removed = ", ".join(f"{name} {count}" for name, count in sorted(receipt.items()) if count)
    return f"Forgot user {user_id}: {removed or 'nothing was stored'}."


# -- recall from a chosen subset of structures -------------------------------------------------


class RecallSwitches:
    """Which structures recall reads from, switched by the user; writes reach them all.

    Switching a structure off for recall is a reading choice: every structure still folds
    each turn in, so switching it back on loses nothing. It sets the manager's
    ``recall_from``.

    Args:
        manager: The memory manager built from the configuration.
    """

    def __init__(self, manager: MemoryManager) -> None:
        self.manager = manager
        self._disabled: frozenset[str] = frozenset()

    @property
    def names(self) -> list[str]:
        """Every structure's name, the fact ledger first."""
        return [store.name for store in self.manager.structures]

    @property
    def disabled(self) -> frozenset[str]:
        """The structures left out of recall."""
        return self._disabled

    @property
    def enabled(self) -> list[str]:
        """The structures recall fans out to."""
        return [name for name in self.names if name not in self._disabled]

    def set_disabled(self, names: Sequence[str] | frozenset[str]) -> None:
        """Leave these structures out of recall (unknown names are ignored)."""
        self._disabled = frozenset(names) & frozenset(self.names)
        self.manager.recall_from = frozenset(self.enabled) if self._disabled else None

    def toggle(self, name: str) -> bool:
        """Switch one structure's recall on or off; return whether it is now on."""
        self.set_disabled(self._disabled ^ {name})
        return name not in self._disabled
