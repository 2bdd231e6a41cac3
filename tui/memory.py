"""What the chat app shows about memory, computed without Textual.

The memory panel's content (the recalled items, the per-turn diff, the browsers of each
structure) is built here as plain frozen dataclasses from the records database, so it can
be computed in a worker thread and tested without a terminal. :class:`RecallFilter` lets
the user switch structures off for recall while every structure still learns each turn.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from agentmem.ledger.extraction import normalise
from agentmem.ledger.facts import FACT_STORE
from agentmem.manager import MemoryManager, RecallResult, WriteReport
from agentmem.prompts import format_date
from agentmem.protocols import ChatModel
from agentmem.storage.records import Records
from agentmem.types import ItemEvent, MemoryItem, Turn

logger = logging.getLogger(__name__)

#: The structure names the browsers know (the names the built-in registry gives them).
MEMTREE, GRAPH, MEMO, SUMMARY = "memtree", "graph", "memo", "summary"

#: Most items one browser list shows; a long history would make the panel crawl.
BROWSER_LIMIT = 300
#: Most tree nodes put into a Tree widget (the top levels first); rebuilt after every turn.
TREE_LIMIT = 500
#: Most facts no longer current shown (each costs a history query).
HISTORY_LIMIT = 100
#: Most source turns shown for one selected item.
SHOWN_TURNS = 8

Tone = Literal["normal", "old", "heading", "add", "supersede", "delete", "noop", "merge", "error"]

_ACTION_TONES: dict[str, Tone] = {
    "ADD": "add",
    "UPDATE": "merge",
    "MERGE": "merge",
    "SUPERSEDE": "supersede",
    "DELETE": "delete",
    "INVALIDATE": "delete",
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
class Node:
    """One node of a browsable tree (MemTree nodes, memo topics)."""

    label: str
    item: MemoryItem | None = None
    children: tuple[Node, ...] = ()
    current: bool = True


@dataclass(frozen=True)
class GraphView:
    """Triples around an entity, and the best-connected entities as suggestions."""

    entity: str
    facts: tuple[Line, ...]
    top_entities: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Browsers:
    """Every browser's content for one user; ``None`` where a structure is not configured."""

    user_id: str
    facts: tuple[Line, ...] | None = None
    memtree: tuple[Node, ...] | None = None
    graph: GraphView | None = None
    memos: tuple[Node, ...] | None = None
    summaries: tuple[Line, ...] | None = None
    truncated: dict[str, int] = field(default_factory=dict)


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
            return f"{model.name} (local)"
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


def recalled_lines(recall: RecallResult) -> list[Line]:
    """Return the recalled items, best first, with structure, score, validity and sources."""
    lines = [
        Line(
            f"{rank}. {hit.item.store}",
            hit.item.text,
            (f"score {hit.score:.4f} · {validity(hit.item)}", provenance(hit.item)),
            hit.item,
            "normal" if hit.item.current else "old",
        )
        for rank, hit in enumerate(recall.items, 1)
    ]
    if not lines:
        lines.append(Line("—", "Nothing relevant was recalled.", tone="noop"))
    extra = []
    if recall.dropped:
        extra.append(f"{recall.dropped} more left out to fit the memory budget")
    if recall.stale_dropped:
        extra.append(f"{recall.stale_dropped} stale item(s) dropped and invalidated")
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
            verb = "ends" if change.action == "DELETE" else "replaces"
            notes.append(f"{verb}: {clip(old.text, 70) if old else item_id}")
        lines.append(
            Line(
                change.action,
                change.item.text,
                tuple(notes),
                change.item,
                _ACTION_TONES.get(change.action, "normal"),
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
    current = [i for i in items if i.current]
    old = sorted((i for i in items if not i.current), key=_ended_at, reverse=True)
    lines = [Line("Current", _count(len(current), limit, "fact(s)"), tone="heading")]
    lines += [
        Line("✓", item.text, (f"{validity(item)} · {provenance(item)}",), item)
        for item in reversed(current[-limit:])
    ]
    shown = min(limit, HISTORY_LIMIT)
    lines.append(
        Line("History", _count(len(old), shown, "fact(s) no longer current"), tone="heading")
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


def _count(total: int, shown: int, what: str) -> str:
    return f"{total} {what}" + (f" (the latest {shown} shown)" if total > shown else "")


def _ended_at(item: MemoryItem) -> datetime:
    return item.invalid_at or item.valid_from or datetime.min


def tree_nodes(
    records: Records, user_id: str, store: str = MEMTREE, *, limit: int = TREE_LIMIT
) -> tuple[list[Node], int]:
    """Return a structure's node items as a forest, and how many were left out.

    Works for any structure whose items carry ``metadata["parent"]``; nodes whose parent is
    missing become roots, so a partial tree still shows.
    """
    items = records.store_items(store, user_id, kind="node", current_only=False)
    left_out = max(0, len(items) - limit)
    items = sorted(items, key=lambda i: (int(i.metadata.get("depth", 0)), _created(i)))[:limit]
    known = {item.id for item in items}
    children: dict[str | None, list[MemoryItem]] = {}
    for item in items:
        parent = item.metadata.get("parent")
        children.setdefault(parent if parent in known else None, []).append(item)

    def build(item: MemoryItem, seen: frozenset[str]) -> Node:
        below = [c for c in children.get(item.id, []) if c.id not in seen]
        leaves = item.metadata.get("leaves")
        label = clip(item.text, 70)
        if not item.metadata.get("leaf") and leaves is not None:
            label = f"{label}  ({leaves} leaves)"
        if not item.current:
            label = f"✗ {label}"
        return Node(
            label,
            item,
            tuple(build(child, seen | {item.id}) for child in below),
            item.current,
        )

    return [build(root, frozenset()) for root in children.get(None, [])], left_out


def _created(item: MemoryItem) -> datetime:
    return item.created_at or item.valid_from or datetime.min


def graph_view(records: Records, user_id: str, entity: str, store: str = GRAPH) -> GraphView:
    """Return the triples whose subject or object matches ``entity``, current ones first."""
    facts = records.store_items(store, user_id, kind="fact", current_only=False)
    counts: Counter[str] = Counter()
    for item in facts:
        if item.current:
            for end in ("subject", "object"):
                name = str(item.metadata.get(end) or "").strip()
                if name:
                    counts[name] += 1
    key = normalise(entity)
    matched = []
    if key:
        for item in facts:
            meta = item.metadata
            ends = [
                str(meta.get(name) or "")
                for name in ("subject_key", "object_key", "subject", "object")
            ]
            if any(key == normalise(end) or key in normalise(end).split() for end in ends if end):
                matched.append(item)
    matched.sort(key=lambda i: (not i.current, -_created(i).timestamp()))
    lines = tuple(
        Line(
            "✓" if item.current else "✗",
            _triple(item),
            (f"{validity(item)} · {provenance(item)}",),
            item,
            "normal" if item.current else "old",
        )
        for item in matched[:BROWSER_LIMIT]
    )
    return GraphView(entity, lines, tuple(counts.most_common(8)))


def _triple(item: MemoryItem) -> str:
    meta = item.metadata
    if meta.get("subject") and meta.get("object"):
        return f"{meta['subject']} —{meta.get('predicate', '?')}→ {meta['object']}"
    return item.text


def memo_topics(records: Records, user_id: str, store: str = MEMO) -> list[Node]:
    """Return the current memos grouped by topic, the most recently updated topic first."""
    memos = records.store_items(store, user_id, kind="memo")
    topics: dict[str, list[MemoryItem]] = {}
    for memo in memos:
        topics.setdefault(str(memo.metadata.get("topic") or "(no topic)"), []).append(memo)
    ordered = sorted(
        topics.items(), key=lambda pair: max(_created(m) for m in pair[1]), reverse=True
    )
    return [
        Node(
            f"{topic}  ({len(group)})",
            None,
            tuple(
                Node(clip(str(m.metadata.get("summary") or m.text), 80), m) for m in reversed(group)
            ),
        )
        for topic, group in ordered[:BROWSER_LIMIT]
    ]


def summary_lines(records: Records, user_id: str, store: str = SUMMARY) -> list[Line]:
    """Return every version of the user's running summary, newest first, the current marked."""
    versions = records.store_items(store, user_id, kind="summary", current_only=False)
    versions.sort(key=lambda i: (int(i.metadata.get("version", 0)), _created(i)), reverse=True)
    lines = []
    for item in versions[:BROWSER_LIMIT]:
        version = item.metadata.get("version")
        badge = f"v{version}" if version is not None else "summary"
        span = item.metadata.get("turn_range")
        covers = f"turns #{span[0]}–#{span[1]}" if isinstance(span, list) and len(span) == 2 else ""
        state = "current" if item.current else "older version"
        notes = " · ".join(x for x in (state, format_date(item.valid_from), covers) if x)
        lines.append(
            Line(badge, clip(item.text, 160), (notes,), item, "normal" if item.current else "old")
        )
    return lines


def collect_browsers(manager: MemoryManager, user_id: str, entity: str = "") -> Browsers:
    """Compute every browser for ``user_id``; structures not configured stay ``None``."""
    records = manager.records
    names = {store.name for store in manager.structures}
    truncated: dict[str, int] = {}
    memtree = None
    if MEMTREE in names:
        forest, left_out = tree_nodes(records, user_id, MEMTREE)
        memtree = tuple(forest)
        if left_out:
            truncated[MEMTREE] = left_out
    return Browsers(
        user_id=user_id,
        facts=tuple(fact_lines(records, user_id)) if manager.facts is not None else None,
        memtree=memtree,
        graph=graph_view(records, user_id, entity) if GRAPH in names else None,
        memos=tuple(memo_topics(records, user_id)) if MEMO in names else None,
        summaries=tuple(summary_lines(records, user_id)) if SUMMARY in names else None,
        truncated=truncated,
    )


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


class RecallFilter(MemoryManager):
    """A memory manager whose recall can leave structures out, while writes reach them all.

    Switching a structure off for recall is a reading choice: every structure still folds
    each turn in, so switching it back on loses nothing. It narrows the manager's own
    ``recall_from``.

    Args:
        base: The manager built from the configuration.
    """

    def __init__(self, base: MemoryManager) -> None:
        super().__init__(
            base.records,
            base.embedder,
            base.stores,
            facts=base.facts,
            counter=base.counter,
            rewriter=base.rewriter,
            iterative=base.iterative,
        )
        # One guard: writes reset its cache of superseded values, and recall through
        # either manager must see that reset.
        self.guard = base.guard
        self._disabled: frozenset[str] = frozenset()

    @property
    def names(self) -> list[str]:
        """Every structure's name, the fact ledger first."""
        return [store.name for store in self.structures]

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
        self.recall_from = frozenset(self.enabled) if self._disabled else None

    def toggle(self, name: str) -> bool:
        """Switch one structure's recall on or off; return whether it is now on."""
        self.set_disabled(self._disabled ^ {name})
        return name not in self._disabled
