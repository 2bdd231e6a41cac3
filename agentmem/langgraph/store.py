"""``AgentMemStore``: LangGraph's ``BaseStore`` kept in agentmem's memory.

See the package's docstring (:mod:`agentmem.langgraph`) for what it adds to a key-value
store; ``docs/langgraph.md`` for the behaviours in full.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)

from agentmem.errors import AgentMemError, ConfigError, InputError, NotFoundError
from agentmem.inputs import check_user, turn_specs
from agentmem.langgraph.items import StoredItem, StoredSearchItem
from agentmem.langgraph.scopes import DEFAULT_SCOPE, ScopeRule, pattern_rule
from agentmem.langgraph.values import (
    document_text,
    index_fields,
    json_value,
    matches,
    namespace_matches,
    scored_texts,
)
from agentmem.memory import Memory
from agentmem.relevance import similarities
from agentmem.storage.dialogue import MAX_TURN_CHARS
from agentmem.storage.documents import namespace_of
from agentmem.storage.tables import DocumentRow
from agentmem.types import Scope, as_utc_naive, utcnow

logger = logging.getLogger(__name__)


class AgentMemStore(BaseStore):
    """A LangGraph ``BaseStore`` kept in agentmem's memory (see the module's docstring).

    Args:
        memory: The memory to keep documents in (the caller closes it).
        scope: A namespace pattern whose labels are ``"{user_id}"`` (required),
            ``"{agent_id}"``, ``"*"`` (any label) or a literal label, matched against the
            namespace's first labels; or a function from a namespace to a
            :class:`~agentmem.types.Scope` (``None``: no match).
        unscoped_user: The user of namespaces the scope does not match; ``None`` refuses
            them with ``InvalidNamespaceError``.
        index: Which fields of a value are its text (LangGraph's ``IndexConfig``; only
            ``fields`` is read: agentmem embeds with its own embedder). By default every
            field is: a sentence as it is, a short value as ``field: value``.
        ttl: LangGraph's ``TTLConfig``: ``default_ttl`` (minutes) for puts that give
            none, ``refresh_on_read`` (default True).
        include_superseded: Return superseded documents from ``search`` too.
        rank_by: How ``search(query=...)`` orders documents: ``"similarity"`` (their
            ``score``, as LangGraph's stores do) or ``"recall"`` (the order agentmem's
            recall over every structure finds them in, which also weighs exact words;
            ``score`` is still the similarity).
        clock: Returns the current time (UTC); tests move it to expire documents.

    Raises:
        ConfigError: The scope pattern is not valid.
    """

    supports_ttl = True

    def __init__(
        self,
        memory: Memory,
        *,
        scope: Sequence[str] | ScopeRule = DEFAULT_SCOPE,
        unscoped_user: str | None = "langgraph",
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        include_superseded: bool = False,
        rank_by: Literal["similarity", "recall"] = "similarity",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.memory = memory
        self._scope = scope if callable(scope) else pattern_rule(tuple(scope))
        self.unscoped_user = unscoped_user
        self.index_config = index
        self._fields = index_fields(index)
        self.ttl_config = ttl
        self.include_superseded = include_superseded
        if rank_by not in ("similarity", "recall"):
            raise ConfigError(f"rank_by must be 'similarity' or 'recall', not {rank_by!r}")
        self.rank_by = rank_by
        self._clock = clock
        self._lock = threading.RLock()
        self._sweeper_lock = threading.Lock()
        self._sweeper: concurrent.futures.Future[None] | None = None
        self._stop_sweeping = threading.Event()

    # -- BaseStore ----------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run operations in order; each sees what the ones before it wrote."""
        with self._lock:
            now = self._now()
            self._sweep(now)
            results: list[Result] = []
            for op in ops:
                validate_op_namespace(op)
                if isinstance(op, GetOp):
                    results.append(self._get(op, now))
                elif isinstance(op, SearchOp):
                    results.append(self._search(op, now))
                elif isinstance(op, PutOp):
                    self._put(op, now)
                    results.append(None)
                elif isinstance(op, ListNamespacesOp):
                    results.append(self._list_namespaces(op))
                else:
                    raise TypeError(f"unknown store operation: {type(op).__name__}")
            return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run :meth:`batch` in a worker thread."""
        return await asyncio.to_thread(self.batch, list(ops))

    # -- beyond BaseStore ---------------------------------------------------------------------

    def versions(self, namespace: tuple[str, ...], key: str) -> list[StoredItem]:
        """Return every version of a document, oldest first (the live one, if any, last)."""
        with self._lock:
            rows = self.memory.records.document_versions(namespace, key)
            standing = self._standing(rows)
            return [self._item(row, standing) for row in rows]

    def sweep_ttl(self) -> int:
        """End the documents whose time to live ran out; return how many."""
        with self._lock:
            return self._sweep(self._now())

    def start_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> concurrent.futures.Future[None]:
        """Sweep expired documents in a background thread, now and every interval.

        Without it an expired document is still never returned (every operation sweeps
        first); the sweeper also ends documents nobody asks for, so their memory items
        go when they expire. As LangGraph's stores do, a second call while one runs
        returns the running sweeper's future.

        Args:
            sweep_interval_minutes: Minutes between sweeps (default: the ``TTLConfig``'s
                ``sweep_interval_minutes``, else 5).

        Returns:
            A future that resolves when the sweeper stops (:meth:`stop_ttl_sweeper`).
        """
        with self._sweeper_lock:
            if self._sweeper is not None and not self._sweeper.done():
                return self._sweeper
            configured = (self.ttl_config or {}).get("sweep_interval_minutes")
            seconds = 60.0 * float(sweep_interval_minutes or configured or 5)
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._stop_sweeping.clear()
            worker = threading.Thread(
                target=self._sweep_until_stopped,
                args=(seconds, done),
                name="agentmem-ttl-sweeper",
                daemon=True,
            )
            worker.start()
            self._sweeper = done
            return done

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the background sweeper; return whether it stopped within ``timeout`` seconds."""
        with self._sweeper_lock:
            running = self._sweeper
            self._stop_sweeping.set()
        if running is None:
            return True
        try:
            running.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            return False
        return True

    def _sweep_until_stopped(self, seconds: float, done: concurrent.futures.Future[None]) -> None:
        try:
            while True:
                try:
                    swept = self.sweep_ttl()
                    if swept:
                        logger.info("TTL sweeper ended %d expired documents", swept)
                except AgentMemError as exc:  # a busy database: the next sweep retries
                    logger.warning("TTL sweep failed: %s", exc)
                if self._stop_sweeping.wait(seconds):
                    break
        except BaseException as exc:  # the future reports it; the thread ends quietly
            done.set_exception(exc)
            return
        done.set_result(None)

    def scope_of(self, namespace: tuple[str, ...]) -> Scope:
        """Return whose memory a namespace's documents go to.

        Raises:
            InvalidNamespaceError: The scope does not match and there is no unscoped user.
        """
        scope = self._scope(tuple(namespace))
        if scope is None:
            if self.unscoped_user is None:
                raise InvalidNamespaceError(
                    f"namespace {namespace} names no user for the store's scope; "
                    "give the store a scope that matches it, or an unscoped_user"
                )
            scope = Scope(self.unscoped_user)
        check_user(scope.user_id)
        return scope

    # -- operations ---------------------------------------------------------------------------

    def _get(self, op: GetOp, now: datetime) -> StoredItem | None:
        row = self.memory.records.document(op.namespace, op.key)
        if row is None:
            return None
        if op.refresh_ttl and row.ttl_minutes is not None:
            self.memory.records.touch_documents([_id(row)], now)
        return self._item(row, self._standing([row]))

    def _put(self, op: PutOp, now: datetime) -> None:
        records = self.memory.records
        if op.value is None:
            ended = records.end_document(op.namespace, op.key, reason="deleted", at=now)
            if ended is not None:
                self._retire(ended, "deleted from the LangGraph store", now)
            return
        if not op.namespace:
            raise InvalidNamespaceError("Namespace cannot be empty.")
        # A ("langgraph", ...) namespace is refused by BaseStore.put, not by the store:
        # LangGraph itself writes there with PutOps, as InMemoryStore allows.
        value = json_value(op.value)
        text = document_text(value, self._fields if op.index is None else op.index)
        # Refuse a text memory would refuse, before anything is written.
        if len(text) > MAX_TURN_CHARS:
            raise InputError(
                f"the value's text is {len(text):,} characters; memory takes at most "
                f"{MAX_TURN_CHARS:,} a document",
                hint="index fewer fields (index=[...]), or store it with index=False",
            )
        if text:
            turn_specs(text)
        scope = self.scope_of(op.namespace)
        old = records.document(op.namespace, op.key)
        unchanged = old is not None and old.value == value and old.text == text
        if old is not None and unchanged and self._standing([old])[_id(old)][0]:
            # The same document again, and memory still holds it: only its times change.
            records.refresh_document(_id(old), at=now, ttl_minutes=op.ttl)
            return
        row, replaced = records.put_document(
            user_id=scope.user_id,
            agent_id=scope.agent_id,
            namespace=op.namespace,
            key=op.key,
            value=value,
            text=text,
            ttl_minutes=op.ttl,
            at=now,
        )
        if text:
            added = self.memory.add(
                text,
                user_id=scope.user_id,
                agent_id=scope.agent_id,
                timestamp=now,
                metadata={"store_namespace": list(op.namespace), "store_key": op.key},
            )
            if added.turn_ids:
                records.link_document(_id(row), added.turn_ids[0])
        if replaced is not None:
            self._retire(replaced, "replaced in the LangGraph store under the same key", now)

    def _search(self, op: SearchOp, now: datetime) -> list[SearchItem]:
        rows = [
            row
            for row in self.memory.records.documents(op.namespace_prefix)
            if not op.filter or matches(row.value, op.filter)
        ]
        standing = self._standing(rows)
        if not self.include_superseded:
            rows = [row for row in rows if standing[_id(row)][0]]
        scores: dict[int, float] = {}
        if op.query and rows:
            rows, scores = self._ranked(op.query, rows, op.offset + op.limit)
        page = rows[op.offset : op.offset + op.limit] if op.limit >= 0 else rows[op.offset :]
        if op.refresh_ttl:
            self.memory.records.touch_documents(
                [_id(row) for row in page if row.ttl_minutes is not None], now
            )
        return [self._search_item(row, standing, scores.get(_id(row))) for row in page]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        namespaces = [
            ns
            for ns in self.memory.records.document_namespaces()
            if all(namespace_matches(c, ns) for c in op.match_conditions or ())
        ]
        if op.max_depth is not None:
            namespaces = sorted({ns[: op.max_depth] for ns in namespaces})
        return namespaces[op.offset : op.offset + op.limit]

    # -- memory -------------------------------------------------------------------------------

    def _ranked(
        self, query: str, rows: Sequence[DocumentRow], wanted: int
    ) -> tuple[list[DocumentRow], dict[int, float]]:
        """Return the documents in ranked order, and each indexed document's score.

        A document's score is the best cosine similarity of the query and one of its
        indexed fields, in [0, 1], as LangGraph's stores score (so a threshold means the
        same on every query, and two documents of the same text score alike). By
        default documents are ranked by it; with ``rank_by="recall"`` in the order
        memory's recall first cites their turns (the others after, by score).
        Documents that are not indexed have no score and come last.
        """
        indexed = [row for row in rows if row.text.strip()]
        scores = dict(
            zip(
                [_id(row) for row in indexed],
                similarities(
                    self.memory.components.embedder,
                    query,
                    [scored_texts(row.text) for row in indexed],
                ),
                strict=True,
            )
        )
        recalled = self._recall_order(query, indexed, wanted) if self.rank_by == "recall" else {}
        position = {document: place for place, document in enumerate(recalled)}
        indexed.sort(key=lambda row: (position.get(_id(row), len(position)), -scores[_id(row)]))
        return indexed + [row for row in rows if not row.text.strip()], scores

    def _recall_order(self, query: str, rows: Sequence[DocumentRow], wanted: int) -> list[int]:
        """Return the documents memory's recall cites for ``query``, in its fused order.

        A document ranks where recall first cites its turn; documents of several users
        are merged by rank.
        """
        by_turn = {row.turn_id: _id(row) for row in rows if row.turn_id is not None}
        ranked: list[tuple[int, str, int]] = []
        for user_id in sorted({row.user_id for row in rows}):
            found = self.memory.search(query, user_id=user_id, top_k=max(20, 4 * wanted))
            seen: set[int] = set()
            for record in found.items:
                for turn_id in record["source_turn_ids"]:
                    document = by_turn.get(turn_id)
                    if document is not None and document not in seen:
                        seen.add(document)
                        ranked.append((len(seen), user_id, document))
        return [document for _, _, document in sorted(ranked)]

    def _standing(self, rows: Sequence[DocumentRow]) -> dict[int, tuple[bool, str | None]]:
        """Return, per document version, whether memory still holds it and what replaced it.

        A version holds while one of the items built from its turn alone is current; one
        with no such items (not indexed, or folded only into items of many turns) holds.
        """
        standing: dict[int, tuple[bool, str | None]] = {_id(row): (True, None) for row in rows}
        by_user: dict[str, list[DocumentRow]] = {}
        for row in rows:
            if row.turn_id is not None:
                by_user.setdefault(row.user_id, []).append(row)
        for user_id, user_rows in by_user.items():
            turns = [r.turn_id for r in user_rows if r.turn_id is not None]
            items = self.memory.records.items_from_turns(user_id, turns)
            for row in user_rows:
                own = [i for i in items if list(i.source_turn_ids) == [row.turn_id]]
                if own and not any(i.current for i in own):
                    replaced_by = next((i.superseded_by for i in own if i.superseded_by), None)
                    standing[_id(row)] = (False, replaced_by)
        return standing

    def _retire(self, row: DocumentRow, reason: str, at: datetime) -> None:
        """Delete the memory items built from an ended version's turn alone."""
        if row.turn_id is None:
            return
        records = self.memory.records
        for item in records.items_from_turns(row.user_id, [row.turn_id]):
            if list(item.source_turn_ids) != [row.turn_id]:
                continue
            try:
                self.memory.delete(item.id, user_id=row.user_id, reason=reason, at=at)
            except (NotFoundError, InputError) as exc:
                # An item of a structure no longer configured: it stays as it is.
                logger.warning("could not retire memory item %s: %s", item.id, exc)

    def _sweep(self, now: datetime) -> int:
        expired = self.memory.records.expired_documents(now)
        for row in expired:
            ended = self.memory.records.end_document(
                namespace_of(row.namespace), row.key, reason="expired", at=now
            )
            if ended is not None:
                self._retire(
                    ended, "expired in the LangGraph store (its time to live ran out)", now
                )
        return len(expired)

    # -- results ------------------------------------------------------------------------------

    def _item(
        self, row: DocumentRow, standing: Mapping[int, tuple[bool, str | None]]
    ) -> StoredItem:
        current, replaced_by = standing.get(_id(row), (True, None))
        return StoredItem(
            value=dict(row.value),
            key=row.key,
            namespace=namespace_of(row.namespace),
            created_at=_aware(row.created_at),
            updated_at=_aware(row.updated_at),
            current=current and row.ended_at is None,
            superseded_by=replaced_by,
            turn_id=row.turn_id,
            ended_at=_aware(row.ended_at) if row.ended_at is not None else None,
            end_reason=row.end_reason,
        )

    def _search_item(
        self,
        row: DocumentRow,
        standing: Mapping[int, tuple[bool, str | None]],
        score: float | None,
    ) -> StoredSearchItem:
        current, replaced_by = standing.get(_id(row), (True, None))
        return StoredSearchItem(
            namespace_of(row.namespace),
            row.key,
            dict(row.value),
            _aware(row.created_at),
            _aware(row.updated_at),
            score,
            current=current,
            superseded_by=replaced_by,
            turn_id=row.turn_id,
        )

    def _now(self) -> datetime:
        return as_utc_naive(self._clock())


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def _id(row: DocumentRow) -> int:
    assert row.id is not None
    return row.id


__all__ = ["AgentMemStore"]
