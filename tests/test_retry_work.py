"""The one loop that retries queued model builds (agentmem.models.building.retry_work)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentmem.errors import ModelError, ModelUnavailableError, StorageError
from agentmem.models.building import retry_work
from agentmem.storage.records import Records
from agentmem.storage.tables import PendingWorkRow
from agentmem.testing import ScriptedChatModel
from agentmem.types import Message


def _rebuilder(
    model: ScriptedChatModel,
) -> tuple[list[int], Callable[[PendingWorkRow], bool]]:
    """Return the ids performed and a ``perform`` that asks ``model`` once per live item."""
    performed: list[int] = []

    def perform(work: PendingWorkRow) -> bool:
        assert work.id is not None
        performed.append(work.id)
        if work.payload.get("gone"):
            return False  # nothing left to rebuild
        model.complete([Message("user", f"rebuild {work.payload['n']}")])
        return True

    return performed, perform


def test_success_finishes_and_a_model_error_stays_queued_with_its_attempts(
    records: Records,
) -> None:
    flaky = records.queue_work("memo", "ann", "chunk", {"n": 1}, "first failure")
    fine = records.queue_work("memo", "ann", "chunk", {"n": 2}, "first failure")
    gone = records.queue_work("memo", "ann", "chunk", {"gone": True}, "first failure")
    other_kind = records.queue_work("memo", "ann", "topic", {"n": 3}, "first failure")
    other_user = records.queue_work("memo", "bob", "chunk", {"n": 4}, "first failure")
    model = ScriptedChatModel(
        [ModelUnavailableError("endpoint down"), "ok", ModelError("still down")]
    )
    performed, perform = _rebuilder(model)
    failures: list[tuple[int | None, str]] = []

    def retry() -> int:
        return retry_work(
            records,
            "memo",
            "ann",
            perform,
            kind="chunk",
            on_failure=lambda work, exc: failures.append((work.id, str(exc))),
        )

    assert retry() == 1  # the item with no turns left is finished but not counted
    assert performed == [flaky, fine, gone]
    queued = {w.id: w for w in records.pending_work("memo")}
    assert set(queued) == {flaky, other_kind, other_user}
    # The build that queued it was attempt 1.
    assert (queued[flaky].attempts, queued[flaky].last_error) == (2, "endpoint down")
    assert queued[other_kind].attempts == queued[other_user].attempts == 1
    assert failures == [(flaky, "endpoint down")]

    assert retry() == 0  # failed again: still queued for the next call, one more attempt
    (again,) = records.pending_work("memo", "ann")[:1]
    assert (again.id, again.attempts, again.last_error) == (flaky, 3, "still down")

    assert retry() == 1  # the script's default answer: it succeeds now
    assert [w.id for w in records.pending_work("memo")] == [other_kind, other_user]
    assert len(model.calls) == 4
    assert failures == [(flaky, "endpoint down"), (flaky, "still down")]


def test_an_error_other_than_the_models_propagates_and_leaves_the_item_as_it_was(
    records: Records,
) -> None:
    work_id = records.queue_work("summary", "ann", "summarize", {"n": 1}, "model down")

    def perform(work: PendingWorkRow) -> bool:
        raise StorageError("disk full")

    with pytest.raises(StorageError):
        retry_work(records, "summary", None, perform)
    (work,) = records.pending_work("summary")
    assert (work.id, work.attempts, work.last_error) == (work_id, 1, "model down")
