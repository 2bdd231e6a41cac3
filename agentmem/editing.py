"""Editing memory through one door: an item's own structure, then the copies elsewhere.

An edit or a deletion is carried out by the structure that holds the item (an
:class:`~agentmem.protocols.Editable` structure keeps itself consistent: re-embeds,
re-aggregates, re-derives). The same words usually live in other structures too (the
turn, its MemTree leaf, its graph passage, the fact read from it, a memo quoting it), and
recall would keep finding the old text there. So the items of other structures derived
only from the item's source turns, or quoting one of its sentences, are ended as well:
deleted along with a deletion, superseded by the edited item after an edit. Nothing is
erased by an edit or a deletion; every change is in the items' histories.

An erasure (:func:`erase_plan`, carried out by :meth:`MemoryManager.erase`) is the one
exception: a user's "forget this" must leave no copy of the text anywhere, its history
included, so what an erasure reaches keeps only a tombstone without content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from agentmem.errors import InputError
from agentmem.fusion import dedupe_key
from agentmem.protocols import Editable, MemoryStore
from agentmem.text import split_sentences
from agentmem.types import Change, ChangeKind, MemoryItem, utcnow

if TYPE_CHECKING:
    from agentmem.manager import MemoryManager

#: Words a sentence needs before another item containing it counts as quoting it.
QUOTE_WORDS = 4


def _sentence_keys(text: str) -> list[str]:
    """Return the normalised sentences of ``text`` long enough to identify a quotation."""
    keys = (dedupe_key(s) for s in split_sentences(text))
    return [k for k in keys if len(k.split()) >= QUOTE_WORDS]


def update_item(
    manager: MemoryManager,
    item_id: str,
    text: str,
    *,
    user_id: str,
    reason: str = "updated by user",
    at: datetime | None = None,
) -> list[Change]:
    """Change an item's text through its structure; end what still says the old one.

    The structure re-embeds the item and re-derives what it built from it (a MemTree
    ancestor's text, a graph passage's facts). In the other structures, the items
    derived only from the item's source turns, and those quoting a sentence of its old
    text, are superseded by it: otherwise recall would still find the old text there.

    Raises:
        NotFoundError: No such item for this user.
        InputError: The text is empty, the item is no longer current, or its structure
            cannot edit its items.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("the new text is empty")
    item = manager.records.get_item(item_id, user_id=user_id)
    if not item.current:
        raise InputError(f"memory item {item_id!r} is no longer current; its history is kept as is")
    if text == item.text:
        return [Change("NOOP", item, "the same text")]
    store = _owner(manager, item)
    if not isinstance(store, Editable):
        raise InputError(
            f"memory structure {store.name!r} cannot edit its items",
            hint="delete the item instead, or say the correction in a turn",
        )
    changes = store.update(item.id, text, reason=reason, at=at)
    why = f"edited by the user in {item.store}"
    return changes + _cascade(manager, item, reason=why, at=at, deleted=False)


def delete_item(
    manager: MemoryManager,
    item_id: str,
    *,
    user_id: str,
    reason: str = "deleted by user",
    at: datetime | None = None,
) -> list[Change]:
    """Delete an item through its structure, and what was derived from it elsewhere.

    Nothing is erased: the item is invalidated with a DELETE in its history. Its
    structure keeps itself consistent (re-aggregates, drops edges); in the other
    structures the items derived only from its source turns, or quoting a sentence of
    it, are deleted too.

    Raises:
        NotFoundError: No such item for this user.
    """
    item = manager.records.get_item(item_id, user_id=user_id)
    if not item.current:
        return [Change("NOOP", item, "already invalidated")]
    moment = at or utcnow()
    store = _owner(manager, item)
    if isinstance(store, Editable):
        changes = store.delete([item.id], reason=reason, at=moment)
    else:
        store.invalidate([item.id], reason, at=moment)
        changes = [Change("DELETE", manager.records.get_item(item.id), reason)]
    why = f"deleted by the user in {item.store}"
    return changes + _cascade(manager, item, reason=why, at=moment, deleted=True)


def _owner(manager: MemoryManager, item: MemoryItem) -> MemoryStore:
    store = {s.name: s for s in manager.structures}.get(item.store)
    if store is None:
        raise InputError(
            f"memory item {item.id!r} belongs to {item.store!r}, which is not configured",
            hint="open memory with that structure to change its items",
        )
    return store


def _cascade(
    manager: MemoryManager, origin: MemoryItem, *, reason: str, at: datetime | None, deleted: bool
) -> list[Change]:
    """End, in the other structures, what repeats ``origin`` (see :func:`update_item`)."""
    sources = set(origin.source_turn_ids)
    if not sources:
        return []
    quotes = _sentence_keys(origin.text)
    changes: list[Change] = []
    for store in manager.structures:
        if store.name == origin.store:
            continue
        # Derived only from the same turns first: ending them re-aggregates what
        # quotes them in their own structure (a MemTree leaf's ancestors).
        for pass_ in ("derived", "quoting"):
            found = [
                i
                for i in manager.records.items_from_turns(origin.user_id, sources)
                if i.store == store.name and i.current
            ]
            if pass_ == "derived":
                found = [i for i in found if set(i.source_turn_ids) <= sources]
            else:
                found = [i for i in found if any(q in dedupe_key(i.text) for q in quotes)]
            if not found:
                continue
            ids = [i.id for i in found]
            if deleted and isinstance(store, Editable):
                changes += store.delete(ids, reason=reason, at=at)
                continue
            store.invalidate(ids, reason, at=at, superseded_by=None if deleted else origin.id)
            kind: ChangeKind = "DELETE" if deleted else "SUPERSEDE"
            changes += [
                Change(kind, i, reason) for i in manager.records.items(ids) if not i.current
            ]
    return changes


@dataclass(frozen=True)
class ErasePlan:
    """What erasing an item reaches (see :func:`erase_plan`).

    Attributes:
        item_ids: Items to blank, in every structure, current or not.
        turn_ids: Turns to blank.
        event_item_ids: Items whose history quotes the erased text (their events' texts
            are blanked; the items themselves may stay).
        changes: What ending the current ones through their structures changed.
    """

    item_ids: frozenset[str]
    turn_ids: frozenset[int]
    event_item_ids: frozenset[str]
    changes: list[Change]


def erase_plan(
    manager: MemoryManager,
    item_id: str,
    *,
    user_id: str,
    reason: str = "erased by user",
    at: datetime | None = None,
) -> ErasePlan:
    """End an item and what repeats it through their structures; return what to blank.

    What is erased: the item; the turns it came from when it came from one turn (a turn,
    or a fact or passage read from it: that is where its words are), and those of its
    source turns that it quotes; every item, in any structure and any version, derived
    only from those turns or quoting a sentence of the erased texts (echoes, older
    summary versions, memos); and the texts of history events quoting them. The current
    items among them are deleted through their structures first, so each stays
    consistent (a MemTree re-aggregates the ancestors without them). An aggregate's
    other sources stay: erasing a summary erases what it says, not the session.

    Raises:
        NotFoundError: No such item for this user.
    """
    item = manager.records.get_item(item_id, user_id=user_id)
    sources = list(item.source_turn_ids)
    quotes = set(_sentence_keys(item.text))
    turns: set[int] = set()
    for turn in manager.records.turns(user_id, ids=set(sources)) if sources else []:
        said = dedupe_key(turn.text)
        if len(sources) == 1 or any(q in said for q in quotes):
            turns.add(turn.id)
            quotes.update(_sentence_keys(turn.text))
    changes: list[Change] = []
    if item.current:
        changes += delete_item(manager, item.id, user_id=user_id, reason=reason, at=at)
    everything = [
        i
        for store in {s.name for s in manager.structures} | {item.store}
        for i in manager.records.store_items(store, user_id, current_only=False)
    ]
    reached = {item.id} | {
        i.id
        for i in everything
        if (i.source_turn_ids and set(i.source_turn_ids) <= turns)
        or any(q in dedupe_key(i.text) for q in quotes)
    }
    for store in manager.structures:
        live = [i.id for i in everything if i.id in reached and i.store == store.name and i.current]
        live = [i.id for i in manager.records.items(live) if i.current]
        if not live:
            continue
        if isinstance(store, Editable):
            changes += store.delete(live, reason=reason, at=at or utcnow())
        else:
            store.invalidate(live, reason, at=at or utcnow())
            changes += [Change("DELETE", i, reason) for i in manager.records.items(live)]
    quoting = {
        item_id
        for item_id, said in manager.records.event_texts(user_id)
        if any(q in dedupe_key(said) for q in quotes)
    }
    return ErasePlan(frozenset(reached), frozenset(turns), frozenset(quoting), changes)


__all__ = ["QUOTE_WORDS", "ErasePlan", "delete_item", "erase_plan", "update_item"]
