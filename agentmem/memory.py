"""The ``Memory`` facade: add, search, get, update, delete, history, forget and export.

A small, mem0-shaped API over the memory manager for applications that bring their own
agent loop::

    from agentmem import Memory

    with Memory("./memory", model="none") as memory:
        memory.add([{"role": "user", "content": "I live in Boston."}], user_id="ana")
        memory.add([{"role": "user", "content": "We moved to Denver."}], user_id="ana")
        for item in memory.search("Where does Ana live?", user_id="ana").items:
            print(item["memory"], item["current"])

Every call is scoped by ``user_id``: a user never sees, changes or deletes another user's
items (an id of another user's item raises :class:`~agentmem.errors.NotFoundError`, as an
unknown id does). Turns are committed to the records database before anything that can
fail, items are invalidated rather than deleted (``delete`` too), and every change is in
the item's history. Results report the tokens and the seconds they cost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from agentmem.config import load_config
from agentmem.errors import AgentMemError, InputError, ReadOnlyError
from agentmem.factory import Components, build
from agentmem.fusion import ITEM_OVERHEAD
from agentmem.inputs import check_plain, check_unicode, check_user, moment_of, turn_specs
from agentmem.manager import ForgetReceipt, MemoryManager
from agentmem.protocols import ChatModel, StoreContext
from agentmem.relevance import similarities
from agentmem.results import (
    AddResult,
    ChangeResult,
    HistoryEntry,
    MemoryEvent,
    MemoryRecord,
    SearchResult,
    add_result,
    event_of,
    history_entry,
    matches,
    record_of,
)
from agentmem.storage.records import Records
from agentmem.types import (
    Message,
    Recalled,
    Scope,
    Turn,
)

logger = logging.getLogger(__name__)


#: Budget passed to recall by :meth:`Memory.search`: the caller asked for ``top_k``
#: items, not for a prompt-sized block, so nothing is dropped for tokens.
_NO_BUDGET = 10**9


class Memory:
    """Long-term, consistent memory behind a mem0-style API.

    Args:
        data_dir: Where memory is kept (default: ``$AGENTMEM_HOME`` or the platform's data
            folder); unused by what ``database_url`` or ``chroma_url`` puts on a server.
        chat_model: A chat model to build memory with (and rewrite queries), ``None`` for
            none, or ``"auto"`` for the configured one. An injected model builds memory
            only with ``model_builders="yes"``.
        config_file: A TOML configuration file.
        env: The environment to read (``os.environ`` by default; ``{}`` ignores it).
        **config: :class:`~agentmem.config.Config` fields, e.g. ``stores=("turns",)``,
            ``model="none"``, ``database_url=...``, ``chroma_url=...``, or
            ``read_only=True``: search, get, history and export a data folder, even one
            this process may not write (it is held shared with other readers, and its
            vector index read from a private copy); every method that writes raises
            :class:`~agentmem.errors.ReadOnlyError`.

    Raises:
        ConfigError: A configuration value is invalid.
        StorageError: The records database or the vector index cannot be opened
            (:class:`~agentmem.errors.ReadOnlyError`: a folder this process may not
            write, opened without ``read_only=True``).
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        chat_model: ChatModel | None | Literal["auto"] = "auto",
        config_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **config: Any,
    ) -> None:
        settings = load_config(env=env, config_file=config_file, data_dir=data_dir, **config)
        model: ChatModel | None | str = chat_model
        if chat_model is not None and chat_model != "auto":
            model = _metered(chat_model)  # type: ignore[arg-type]
        self._attach(build(settings, model=model))

    @classmethod
    def from_config(
        cls,
        source: Mapping[str, Any] | str | Path,
        *,
        chat_model: ChatModel | None | Literal["auto"] = "auto",
        env: Mapping[str, str] | None = None,
    ) -> Memory:
        """Build memory from a dict of config fields or a TOML file's path.

        A dict may hold the fields at top level or under ``"agentmem"``, like the file.

        Raises:
            ConfigError: A value, key or file is invalid.
        """
        if isinstance(source, str | Path):
            return cls(config_file=source, chat_model=chat_model, env=env)
        values = dict(source.get("agentmem", source))
        data_dir = values.pop("data_dir", None)
        return cls(data_dir, chat_model=chat_model, env=env, **values)

    @classmethod
    def from_components(cls, components: Components) -> Memory:
        """Wrap already built components (e.g. the app's); ``close`` closes them."""
        memory = cls.__new__(cls)
        memory._attach(components)
        return memory

    def _attach(self, components: Components) -> None:
        self.components = components
        self._context = StoreContext(components.records, components.vectors, components.embedder)
        self._lock = threading.RLock()
        self._sessions: dict[tuple[str, str | None], str] = {}
        self._closed = False

    # -- access for advanced use -------------------------------------------------------

    @property
    def manager(self) -> MemoryManager:
        """The memory manager underneath."""
        return self.components.manager

    @property
    def records(self) -> Records:
        """The records database (turns, items, history)."""
        return self.components.records

    # -- writing -------------------------------------------------------------------------

    def add(
        self,
        messages: str | Mapping[str, Any] | Message | Sequence[Mapping[str, Any] | Message],
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        timestamp: datetime | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        infer: bool = True,
    ) -> AddResult:
        """Store messages as turns and fold them into memory; return the diff.

        Args:
            messages: OpenAI-style messages (``{"role": "user" | "assistant", "content":
                ..., "name": speaker}``), one message, or a string said by the user.
                System messages are instructions, not memory, and are skipped. A message
                may carry its own ``timestamp`` and ``metadata``.
            user_id: Whose memory this is.
            agent_id: The agent in the conversation, recorded on turns and items.
            session_id: The dialogue session (created if new). Without one, the user's
                open session in this ``Memory`` is used (one is started the first time);
                :meth:`end_session` closes it.
            timestamp: The dialogue time of the messages (now by default); validity
                (``valid_from``, ``invalid_at``) is measured in dialogue time. A time with
                an offset is converted to UTC; a naive one is taken as UTC.
            metadata: JSON metadata for the turns; search filters can match it.
            run_id: mem0's name for the session: the same as ``session_id``.
            infer: ``False`` (mem0's ``infer=False``) stores the messages and keeps them
                searchable as said, in the structures that keep turns verbatim only: no
                fact, tree node or triple is drawn from them (no model call), and they
                change no earlier memory. A session's summaries and memos, written when
                the session ends, still read all of its turns.

        Raises:
            InputError: A message, id or time is not acceptable (or ``run_id`` and
                ``session_id`` disagree); nothing was stored.
            StorageError: The records database failed; nothing was stored.
        """
        started = time.perf_counter()
        self._writable("add messages")
        user_id = check_user(user_id)
        session_id = _session_alias(session_id, run_id)
        moment = moment_of(timestamp, "timestamp")
        specs = turn_specs(messages)
        with self._lock:
            before = self._model_tokens()
            session = self._session(user_id, agent_id, session_id, moment)
            turns = self.records.add_turns(
                [
                    {
                        "user_id": user_id,
                        "session_id": session,
                        "agent_id": agent_id,
                        "speaker": spec["name"],
                        "role": spec["role"],
                        "text": spec["content"],
                        "timestamp": spec["timestamp"] or moment,
                        "metadata": {**(metadata or {}), **spec["metadata"]},
                    }
                    for spec in specs
                ]
            )
            report = self.manager.write(turns, infer=infer)
            tokens = self._model_tokens() - before
        return add_result(report, session, tokens, time.perf_counter() - started)

    def resume(self, user_id: str | None = None) -> AddResult | None:
        """Fold in turns that were stored but never memorized; ``None`` if there were none."""
        started = time.perf_counter()
        self._writable("resume memory writes")
        with self._lock:
            before = self._model_tokens()
            report = self.manager.resume(user_id)
            tokens = self._model_tokens() - before
        if report is None:
            return None
        return add_result(report, "", tokens, time.perf_counter() - started)

    def end_session(self, user_id: str, session_id: str | None = None) -> ChangeResult:
        """End a session (default: the user's open one), letting structures consolidate it."""
        started = time.perf_counter()
        self._writable("end a session")
        user_id = check_user(user_id)
        with self._lock:
            if session_id is None:
                opened = [key for key in self._sessions if key[0] == user_id]
                sessions = [self._sessions.pop(key) for key in opened]
            else:
                sessions = [session_id]
            before = self._model_tokens()
            changes = [c for s in sessions for c in self.manager.end_session(user_id, s)]
            tokens = self._model_tokens() - before
        events = [event_of(change) for change in changes]
        return ChangeResult(events, tokens, time.perf_counter() - started)

    # -- reading ----------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        user_id: str,
        top_k: int = 10,
        filters: Mapping[str, Any] | None = None,
        as_of: datetime | str | None = None,
        include_history: bool = False,
        agent_id: str | None = None,
        limit: int | None = None,
        run_id: str | None = None,
    ) -> SearchResult:
        """Return the items most relevant to ``query``, best first.

        Each item's ``score`` is its similarity to the query in [0, 1] (the cosine of
        their embeddings: thresholds work, and items of the same text score alike) and
        its ``rank`` its place in the fused order (1 is first).

        Args:
            query: What to look for.
            user_id: Whose memory to search.
            top_k: The most items to return.
            filters: Equality filters: ``store``, ``kind``, ``current``, ``agent_id`` and
                ``session_id`` match the item's fields, any other key its metadata; a
                list value matches any of its elements.
            as_of: Return what was valid at this dialogue time (naive: UTC).
            include_history: Also return invalidated items (``current`` is False).
            agent_id: Only items of this agent (and items with no agent).
            limit: mem0's name for ``top_k`` (given, it wins).
            run_id: mem0's name for a session: only items of that session.

        Raises:
            InputError: The query, ``top_k``, a filter or ``as_of`` is not acceptable.
        """
        started = time.perf_counter()
        user_id = check_user(user_id)
        top_k = top_k if limit is None else limit
        if run_id is not None:
            filters = {**(filters or {}), "session_id": run_id}
        if not isinstance(query, str) or not query.strip():
            raise InputError("the search query is empty")
        check_unicode(query, "the search query")
        if agent_id is not None:
            check_unicode(agent_id, "agent_id")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be a positive integer, not {top_k!r}")
        if filters is not None and not isinstance(filters, Mapping):
            raise InputError("filters must be a mapping of field or metadata key to value")
        # Filters apply after fusion, so ask each structure for more when filtering; a
        # filter on the structure recalls from it alone (so it leads the fusion, and an
        # item repeating a turn of another structure is not left out).
        per_store = top_k * 4 if filters else top_k
        store = (filters or {}).get("store")
        moment = moment_of(as_of, "as_of", stored=False)
        with self._lock:
            before = self._model_tokens()
            recall = self.manager.recall(
                query,
                Scope(user_id, agent_id),
                budget_tokens=_NO_BUDGET,
                k=per_store,
                as_of=moment,
                include_history=include_history,
                structures=[store] if isinstance(store, str) else None,
            )
            model_tokens = self._model_tokens() - before
            records = self._records(recall.items, user_id, as_of=moment)
        found = [r for r in records if matches(r, filters or {})][:top_k]
        # The order is the fusion's; the score says how close each item is to the query.
        scores = similarities(self.components.embedder, query, [[r["text"]] for r in found])
        for rank, (record, score) in enumerate(zip(found, scores, strict=True), start=1):
            record["score"], record["rank"] = score, rank
        counter = self.manager.counter
        tokens = sum(counter.count(r["memory"]) + ITEM_OVERHEAD for r in found)
        return SearchResult(
            found,
            recall.query,
            tokens,
            model_tokens,
            time.perf_counter() - started,
            dict(recall.timings),
        )

    def get(self, memory_id: str, *, user_id: str) -> MemoryRecord:
        """Return one item.

        Raises:
            NotFoundError: No such item for this user.
        """
        user_id = check_user(user_id)
        item = self.records.get_item(memory_id, user_id=user_id)
        return self._records([Recalled(item, 0.0)], user_id, scored=False)[0]

    def get_all(
        self, *, user_id: str, store: str | None = None, include_history: bool = False
    ) -> list[MemoryRecord]:
        """Return every item of a user (optionally of one structure), oldest first."""
        user_id = check_user(user_id)
        names = [store] if store is not None else [s.name for s in self.manager.structures]
        items = [
            Recalled(item, 0.0)
            for name in names
            for item in self.records.store_items(name, user_id, current_only=not include_history)
        ]
        return self._records(items, user_id, scored=False)

    def history(self, memory_id: str, *, user_id: str) -> list[HistoryEntry]:
        """Return every recorded change to an item, oldest first.

        Raises:
            NotFoundError: No such item for this user.
        """
        user_id = check_user(user_id)
        return [history_entry(e) for e in self.manager.history(memory_id, user_id=user_id)]

    # -- editing ----------------------------------------------------------------------------

    def update(
        self,
        memory_id: str,
        text: str,
        *,
        user_id: str,
        reason: str = "updated by user",
        at: datetime | str | None = None,
    ) -> ChangeResult:
        """Change an item's text, keeping its provenance; the old text stays in its history.

        The item's structure re-embeds it and re-derives what it built from it (a MemTree
        ancestor's text, a graph passage's facts). Items of other structures that repeat
        the old text (derived only from the same turns, or quoting it) are superseded by
        the edited item, so recall no longer finds the old text anywhere. A fact's slot and
        value (used to detect changes) are not re-derived from the new text.

        Raises:
            NotFoundError: No such item for this user.
            InputError: The text is empty or holds a control character, the item is no
                longer current (history is kept as it was), or its structure cannot edit
                items.
        """
        started = time.perf_counter()
        self._writable("update an item")
        user_id = check_user(user_id)
        if not isinstance(text, str) or not text.strip():
            raise InputError("the new text is empty")
        check_unicode(text, "the new text")
        check_plain(text, "the new text")
        moment = moment_of(at, "at")
        with self._lock:
            changes = self.manager.update(
                memory_id, text, user_id=user_id, reason=reason, at=moment
            )
        return ChangeResult([event_of(c) for c in changes], 0, time.perf_counter() - started)

    def delete(
        self,
        memory_id: str,
        *,
        user_id: str,
        at: datetime | str | None = None,
        reason: str | None = None,
        erase: bool = False,
    ) -> ChangeResult:
        """Delete an item (giving ``reason`` in its history); it stays in history and exports.

        Its structure keeps itself consistent (a MemTree's ancestors are re-aggregated
        without it, a graph's edges stop conducting), items of other structures derived
        only from its turns or quoting it are deleted too, and deleting a fact also ends
        what still asserts its value (the turns that stated it, say).

        With ``erase=True`` the text goes for good: the item, the turn it came from and
        everything derived from that turn or quoting it keep only a tombstone (id,
        structure, validity, provenance, and a DELETE event saying it was erased), their
        histories lose their texts, their vectors are removed and the files rewritten,
        so no copy stays on disk (see :meth:`MemoryManager.erase`).

        Raises:
            NotFoundError: No such item for this user.
        """
        started = time.perf_counter()
        self._writable("delete an item")
        user_id = check_user(user_id)
        moment = moment_of(at, "at")
        with self._lock:
            if erase:
                changes = self.manager.erase(
                    memory_id, user_id=user_id, reason=reason or "erased by user", at=moment
                )
                return ChangeResult(
                    [event_of(c) for c in changes], 0, time.perf_counter() - started
                )
            reason = reason or "deleted by user"
            changes = self.manager.delete(memory_id, user_id=user_id, reason=reason, at=moment)
        return ChangeResult([event_of(c) for c in changes], 0, time.perf_counter() - started)

    # -- erasure, export, lifetime ------------------------------------------------------------

    def forget(self, user_id: str) -> ForgetReceipt:
        """Erase everything about a user from every backend; return what went.

        The receipt counts only this user's data, e.g. ``{"turns": 3, "sessions": 1,
        "memory items": 6, "history events": 9, "queued retries": 0, "documents": 0,
        "vectors": 6}``.
        Caches shared by all users (embeddings, extracted facts) are emptied as well,
        since they may hold the user's texts; their sizes are in the receipt's
        ``caches_cleared``, not among the user's counts.
        """
        self._writable("forget a user")
        user_id = check_user(user_id)
        with self._lock:
            for key in [k for k in self._sessions if k[0] == user_id]:
                del self._sessions[key]
            return self.components.forget(user_id)

    def delete_all(self, *, user_id: str) -> ForgetReceipt:
        """Erase everything about a user: mem0's name for :meth:`forget`."""
        return self.forget(user_id)

    def reset(self) -> list[ForgetReceipt]:
        """Erase every user's memory (mem0's ``reset``); return a receipt per user."""
        self._writable("reset memory")
        with self._lock:
            return [self.forget(user_id) for user_id in self.records.users()]

    def export(self, user_id: str, path: str | Path | None = None) -> dict[str, Any]:
        """Return (and optionally write as JSON) everything memory holds about a user."""
        user_id = check_user(user_id)
        with self._lock:
            return self.manager.export(user_id, path)

    def close(self) -> None:
        """End the open sessions (consolidating them) and release every backend."""
        if self._closed:
            return
        with self._lock:
            for (user_id, _agent), session in list(self._sessions.items()):
                try:
                    self.manager.end_session(user_id, session)
                except AgentMemError as exc:  # closing must release the backends anyway
                    logger.warning("could not consolidate session %s: %s", session, exc)
            self._sessions.clear()
            self.components.close()
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------

    def _writable(self, action: str) -> None:
        """Refuse a write before anything is done when memory was opened read-only.

        Raises:
            ReadOnlyError: It was.
        """
        if self.components.config.read_only:
            raise ReadOnlyError(
                f"cannot {action}: this memory was opened read-only",
                hint="open it without read_only=True, on a data folder this process may write",
            )

    def _session(
        self, user_id: str, agent_id: str | None, session_id: str | None, moment: datetime | None
    ) -> str:
        if session_id is not None:
            return self.records.start_session(
                user_id, session_id=session_id, agent_id=agent_id, started_at=moment
            )
        key = (user_id, agent_id)
        if key not in self._sessions:
            self._sessions[key] = self.records.start_session(
                user_id, agent_id=agent_id, started_at=moment
            )
        return self._sessions[key]

    def _model_tokens(self) -> int:
        usage = getattr(self.components.model, "usage", None)
        return int(getattr(usage, "total_tokens", 0) or 0)

    def _records(
        self,
        found: Sequence[Recalled],
        user_id: str,
        *,
        scored: bool = True,
        as_of: datetime | None = None,
    ) -> list[MemoryRecord]:
        wanted = {t for r in found for t in r.item.source_turn_ids}
        turns: dict[int, Turn] = (
            {t.id: t for t in self.records.turns(user_id, ids=wanted)} if wanted else {}
        )
        return [record_of(r.item, r.score if scored else None, turns, as_of) for r in found]


def _session_alias(session_id: str | None, run_id: str | None) -> str | None:
    """Return the session a call names by ``session_id`` or mem0's ``run_id``.

    Raises:
        InputError: Both are given, and differ.
    """
    if run_id is not None and session_id is not None and run_id != session_id:
        raise InputError("run_id and session_id name the same thing; give one of them")
    return session_id if session_id is not None else run_id


def _metered(model: ChatModel) -> ChatModel:
    """Wrap a model so its tokens are counted, unless it already counts them."""
    if hasattr(model, "usage"):
        return model
    from agentmem.models.llm import MeteredChatModel

    return MeteredChatModel(model)


__all__ = [
    "AddResult",
    "ChangeResult",
    "ForgetReceipt",
    "HistoryEntry",
    "Memory",
    "MemoryEvent",
    "MemoryRecord",
    "SearchResult",
]
