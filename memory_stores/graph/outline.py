"""What the graph shows in the browser: the triples around an entity, and its hubs."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from agentmem.ledger.extraction import normalise
from agentmem.protocols import RecordStore
from agentmem.types import MemoryItem, Outline


def triple(item: MemoryItem) -> str:
    """Return a fact as ``subject —predicate→ object`` (its text when it is not a triple)."""
    meta = item.metadata
    if meta.get("subject") and meta.get("object"):
        return f"{meta['subject']} —{meta.get('predicate', '?')}→ {meta['object']}"
    return item.text


def outline(
    records: RecordStore, name: str, user_id: str, *, focus: str = "", limit: int = 200
) -> list[Outline]:
    """Return the triples around the entity ``focus`` (current ones first), then the
    best-connected entities as suggestions of what to look at."""
    facts = records.store_items(name, user_id, kind="fact", current_only=False)
    counts: Counter[str] = Counter()
    for item in facts:
        if item.current:
            counts.update(
                str(item.metadata.get(end) or "").strip() for end in ("subject", "object")
            )
    counts.pop("", None)
    key = normalise(focus)
    entries: list[Outline] = []
    if key:
        matched = [
            f
            for f in facts
            if key in (f.metadata.get("subject_key"), f.metadata.get("object_key"))
            or any(
                key in normalise(str(f.metadata.get(e) or "")).split()
                for e in ("subject", "object")
            )
        ]
        matched.sort(key=lambda f: (not f.current, -(f.valid_from or datetime.min).timestamp()))
        entries.append(
            Outline(
                f"Facts about {focus} ({len(matched)})",
                None,
                tuple(
                    Outline(triple(f) if f.current else f"✗ {triple(f)}", f)
                    for f in matched[:limit]
                ),
            )
        )
    entries.append(
        Outline(
            "Most connected",
            None,
            tuple(Outline(f"{name} ({count})") for name, count in counts.most_common(8)),
        )
    )
    return entries


__all__ = ["outline", "triple"]
