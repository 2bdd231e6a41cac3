"""The recursive summary store (Wang et al. 2023): contract, versions, caps, cursor, model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from agentmem.errors import ModelUnavailableError
from agentmem.models.embeddings import CachingEmbedder
from agentmem.prompts.summary import SUMMARY_SCHEMA
from agentmem.protocols import Embedder, MemoryStore, StoreContext
from agentmem.storage.records import Records
from agentmem.stores.summary import SummaryStore
from agentmem.testing import ScriptedChatModel
from agentmem.testing.contract import MemoryStoreContract
from agentmem.types import MemoryItem, Query, Role, Scope, Turn

DAY1 = datetime(2024, 1, 10, 18, 0)

SESSION_1 = (
    "I moved to Denver last spring for a new job.",
    "I work as a nurse at Saint Joseph hospital.",
    "My dog Biscuit is a three year old beagle.",
)
SESSION_2 = (
    "I started learning the cello in September.",
    "My sister Maria is getting married in Rome next June.",
)
SESSION_3 = (
    "I just signed up for the Chicago marathon in October.",
    "My favourite band is Radiohead since high school.",
)
FILLER = ("Oh really?", "Haha, nice.", "Sounds fun!", "Wow, that sounds amazing!", "Me too!")


class RecordingEmbedder:
    """Passes texts to the real embedder and remembers which texts were asked for."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.texts: list[str] = []

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += list(texts)
        return self.inner.embed(texts)


def say(
    records: Records,
    lines: Sequence[str | tuple[str, str]],
    start: datetime,
    *,
    user_id: str = "sam",
    session_id: str | None = None,
) -> tuple[str, list[Turn]]:
    """Store one session of turns (``text`` by Sam, or ``(speaker, text)``)."""
    session = records.start_session(user_id, session_id=session_id, started_at=start)
    turns = []
    for i, line in enumerate(lines):
        speaker, text = ("Sam", line) if isinstance(line, str) else line
        role: Role = "assistant" if speaker == "assistant" else "user"
        stamp = start + timedelta(minutes=i)
        turns.append(records.add_turn(user_id, session, speaker, role, text, timestamp=stamp))
    return session, turns


def session(
    store: SummaryStore, records: Records, lines: Sequence[str | tuple[str, str]], start: datetime
) -> list[Turn]:
    """Store, write and end one session."""
    session_id, turns = say(records, lines, start)
    store.write(turns)
    store.end_session("sam", session_id)
    return turns


def ask(context: StoreContext, text: str, **options: Any) -> Query:
    return Query(text, Scope("sam"), context.embedder.embed([text])[0], **options)


def sentences(store: SummaryStore, version: MemoryItem) -> list[MemoryItem]:
    ids = version.metadata["sentence_ids"]
    return store.context.records.items(ids)


@pytest.fixture
def context(store_context: StoreContext) -> StoreContext:
    """The services as the app builds them (a caching embedder)."""
    return StoreContext(
        store_context.records, store_context.vectors, CachingEmbedder(store_context.embedder)
    )


class TestSummaryStoreContract(MemoryStoreContract):
    def make_store(self, context: StoreContext) -> MemoryStore:
        return SummaryStore(context)


# -- recursive updates (offline builder) ----------------------------------------------------


def test_latest_version_reflects_the_newest_session(context: StoreContext) -> None:
    store = SummaryStore(context)
    session(store, context.records, SESSION_1, DAY1)
    session(store, context.records, SESSION_2, DAY1 + timedelta(days=7))
    third = session(store, context.records, SESSION_3, DAY1 + timedelta(days=14))

    current = store.current_summary("sam")
    assert current is not None and "Chicago marathon" in current.text
    assert "Denver" in current.text  # the recursion keeps what still fits
    v1, v2, v3 = store.versions("sam")
    assert [v.metadata["version"] for v in (v1, v2, v3)] == [1, 2, 3]
    assert current.id == v3.id and v3.metadata["previous_id"] == v2.id
    assert v3.metadata["turn_range"] == [third[0].id, third[-1].id]
    assert not v2.current and v2.superseded_by == v3.id and v2.invalid_at == v3.valid_from
    assert [e.action for e in context.records.history(v2.id)] == ["ADD", "SUPERSEDE"]

    found = store.retrieve(ask(context, "Which race did Sam sign up for?"), 5)
    assert found[0].item.text == f"Sam: {SESSION_3[0]}"
    assert found[0].item.source_turn_ids == (third[0].id,)
    assert all(r.item.kind == "sentence" for r in found)


def test_filler_is_left_out(context: StoreContext) -> None:
    store = SummaryStore(context)
    lines: list[str | tuple[str, str]] = []
    for fact, filler in zip(SESSION_1, FILLER, strict=False):
        lines += [fact, ("assistant", filler)]
    lines += [FILLER[3], FILLER[4]]
    session(store, context.records, lines, DAY1)

    current = store.current_summary("sam")
    assert current is not None
    texts = [s.text for s in sentences(store, current)]
    assert texts == [f"Sam: {fact}" for fact in SESSION_1]
    assert not any(f in current.text for f in FILLER)


def test_the_cap_holds_over_many_sessions(context: StoreContext) -> None:
    store = SummaryStore(context, max_sentences=4, max_words=36)
    topics = ("painting", "chess", "surfing", "baking", "pottery", "climbing")
    for n, topic in enumerate(topics):
        lines = (
            f"I took up {topic} with my friend Lena in week {n}.",
            f"My {topic} teacher Mr Brown lives in Boston.",
            f"Last week I spent 3 hours on {topic} at the club.",
        )
        session(store, context.records, lines, DAY1 + timedelta(days=7 * n))
        current = store.current_summary("sam")
        assert current is not None
        assert len(current.metadata["sentence_ids"]) <= 4
        assert len(current.text.split()) <= 36

    versions = store.versions("sam")
    assert len(versions) == len(topics)
    dropped = [
        i
        for i in context.records.store_items("summary", "sam", kind="sentence", current_only=False)
        if not i.current
    ]
    assert dropped
    for item in dropped:
        reason = context.records.history(item.id)[-1].reason
        number = int(reason.removeprefix("dropped from summary version "))
        assert item.superseded_by == versions[number - 1].id


def test_the_latest_session_survives_the_cap(context: StoreContext) -> None:
    store = SummaryStore(context, max_sentences=3)
    band = (
        "My band Blue Lanterns played the Fillmore in San Francisco in 2019.",
        "Our drummer Kenji Watanabe joined the Blue Lanterns in 2017 from Osaka.",
        "The Blue Lanterns recorded 2 albums with producer Rick Stone in Nashville.",
        "My bandmate Olivia Grant wrote 12 songs for the Blue Lanterns in Austin.",
    )
    session(store, context.records, band, DAY1)
    latest = session(store, context.records, ["I got a dog."], DAY1 + timedelta(days=7))
    current = store.current_summary("sam")
    assert current is not None and "Sam: I got a dog." in current.text.splitlines()
    assert latest[0].id in current.source_turn_ids


def test_a_carried_sentence_keeps_its_item(store_context: StoreContext) -> None:
    embedder = RecordingEmbedder(store_context.embedder)
    context = StoreContext(store_context.records, store_context.vectors, embedder)
    store = SummaryStore(context)
    session(store, context.records, SESSION_1, DAY1)
    v1 = store.current_summary("sam")
    assert v1 is not None
    first = sentences(store, v1)
    embedder.texts.clear()
    session(store, context.records, SESSION_2, DAY1 + timedelta(days=7))
    v2 = store.current_summary("sam")
    assert v2 is not None

    assert v2.metadata["sentence_ids"][:3] == [s.id for s in first]
    assert not {s.text for s in first} & set(embedder.texts), "carried sentences re-embedded"
    current = context.records.store_items("summary", "sam", kind="sentence")
    assert len(current) == 5 and len({s.text for s in current}) == 5
    digests = [
        i
        for i in context.records.store_items("summary", "sam", current_only=False)
        if i.kind in ("session", "period")
    ]
    # Sentences, versions and the digests of sessions and months, no copies.
    assert context.vectors.count("summary", "sam") == 5 + 2 + len(digests)
    carried = context.records.get_item(first[0].id)
    assert carried.metadata["first_version"] == 1 and carried.metadata["last_version"] == 2
    assert [e.action for e in context.records.history(carried.id)] == ["ADD"]


def test_every_turns_summarises_without_a_session_end(context: StoreContext) -> None:
    store = SummaryStore(context, every_turns=4)
    lines = [f"I visited the city of {city} in May." for city in ("Oslo", "Lima", "Kyoto")] * 3
    session_id, turns = say(context.records, lines, DAY1)
    for turn in turns:
        store.write([turn])

    versions = store.versions("sam")
    assert [v.metadata["turn_range"] for v in versions] == [
        [turns[0].id, turns[3].id],
        [turns[4].id, turns[7].id],
    ]
    store.end_session("sam", session_id)
    assert store.versions("sam")[-1].metadata["turn_range"] == [turns[8].id, turns[8].id]


def test_a_restart_continues_from_the_cursor(context: StoreContext) -> None:
    store = SummaryStore(context, every_turns=4)
    lines = [
        "I bought a red bicycle from Trek.",
        "My cousin Paul works at Google in Zurich.",
        "I am allergic to peanuts and shellfish.",
        "We adopted a cat named Miso in March.",
        "My daughter Emma starts school in Lyon.",
        "I drive a blue Volvo station wagon.",
        "My grandmother turned 90 in Porto.",
        "I play tennis every Sunday with Raj.",
    ]
    session_id, turns = say(context.records, lines, DAY1)
    store.write(turns[:6])  # v1 covers turns 0-3; turns 4 and 5 wait
    assert len(store.versions("sam")) == 1

    again = SummaryStore(context, every_turns=4)  # a new process over the same data
    again.write(turns[6:])
    v1, v2 = again.versions("sam")
    assert v2.metadata["turn_range"] == [turns[4].id, turns[7].id]
    again.end_session("sam", session_id)  # nothing new: no third version
    assert len(again.versions("sam")) == 2
    every = context.records.store_items("summary", "sam", kind="sentence", current_only=False)
    sources = sorted(i for s in every for i in s.source_turn_ids)
    assert sources == [t.id for t in turns], "each turn summarised exactly once"


def test_as_of_returns_the_sentences_of_the_version_valid_then(context: StoreContext) -> None:
    store = SummaryStore(context, max_sentences=3)
    session(store, context.records, SESSION_1, DAY1)
    session(store, context.records, SESSION_2 + SESSION_3[:1], DAY1 + timedelta(days=10))
    v1, v2 = store.versions("sam")
    dropped = set(v1.metadata["sentence_ids"]) - set(v2.metadata["sentence_ids"])
    assert dropped

    for item in context.records.items(dropped):
        question = ask(context, item.text.removeprefix("Sam: "))
        then = store.retrieve(ask(context, question.text, as_of=DAY1 + timedelta(days=5)), 5)
        assert then[0].item.id == item.id
        assert {r.item.id for r in then} <= set(v1.metadata["sentence_ids"])
        assert item.id not in {r.item.id for r in store.retrieve(question, 5)}
        history = store.retrieve(ask(context, question.text, include_history=True), 5)
        assert any(r.item.id == item.id and not r.item.current for r in history)
    assert store.retrieve(ask(context, "Denver", as_of=DAY1 - timedelta(days=1)), 5) == []


def test_an_invalidated_sentence_is_not_carried_over(context: StoreContext) -> None:
    store = SummaryStore(context)
    session(store, context.records, SESSION_1, DAY1)
    v1 = store.current_summary("sam")
    assert v1 is not None
    wrong = sentences(store, v1)[1]
    store.invalidate([wrong.id], "the user corrected it", at=DAY1 + timedelta(days=1))
    session(store, context.records, SESSION_2, DAY1 + timedelta(days=7))
    v2 = store.current_summary("sam")
    assert v2 is not None
    assert wrong.id not in v2.metadata["sentence_ids"] and wrong.text not in v2.text
    assert context.records.get_item(wrong.id).superseded_by is None  # the user's reason stays


# -- model builder ----------------------------------------------------------------------------


def model_context(context: StoreContext, model: ScriptedChatModel) -> StoreContext:
    return StoreContext(context.records, context.vectors, context.embedder, model=model)


def test_model_builds_one_version_per_update_with_its_provenance(context: StoreContext) -> None:
    records = context.records
    first_id, first = say(records, SESSION_1, DAY1)
    second_id, second = say(records, SESSION_2, DAY1 + timedelta(days=7))
    model = ScriptedChatModel(
        [
            {
                "sentences": [
                    {"text": "Sam lives in Denver.", "turn_ids": [first[0].id]},
                    {"text": "Sam is a nurse.", "turn_ids": [first[0].id, first[1].id]},
                ]
            },
            {
                "sentences": [
                    {"text": "Sam lives in Denver.", "turn_ids": [first[0].id]},
                    {"text": "Sam plays the cello.", "turn_ids": [second[0].id]},
                ]
            },
        ],
        default=None,
    )
    store = SummaryStore(model_context(context, model))
    store.write(first)
    store.end_session("sam", first_id)
    assert len(model.calls) == 1 and model.calls[0].schema == SUMMARY_SCHEMA
    assert f"[{first[2].id}] Sam: {SESSION_1[2]}" in model.calls[0].messages[-1].content
    v1 = store.current_summary("sam")
    assert v1 is not None and v1.metadata["builder"] == "model"
    denver, nurse = sentences(store, v1)
    assert nurse.text == "Sam is a nurse." and nurse.source_turn_ids == (first[0].id, first[1].id)

    store.write(second)
    store.end_session("sam", second_id)
    assert len(model.calls) == 2 and store.stats.calls == 2
    assert f"[turns {first[0].id}] Sam lives in Denver." in model.calls[1].messages[-1].content
    v2 = store.current_summary("sam")
    assert v2 is not None
    assert v2.metadata["sentence_ids"][0] == denver.id  # carried over, same item
    assert not records.get_item(nurse.id).current
    assert records.history(nurse.id)[-1].reason == "dropped from summary version 2"


def test_model_is_called_once_per_chunk(context: StoreContext) -> None:
    lines = [f"I spent {n} days hiking in Patagonia." for n in range(6)]
    session_id, turns = say(context.records, lines, DAY1)

    def reply(messages: list[Any]) -> dict[str, Any]:
        ids = [t.id for t in turns if f"[{t.id}] Sam:" in messages[-1].content]
        return {"sentences": [{"text": f"Sam hiked ({ids[-1]}).", "turn_ids": ids}]}

    model = ScriptedChatModel([reply, reply], default=None)
    store = SummaryStore(model_context(context, model), every_turns=3)
    store.write(turns)
    assert len(model.calls) == 2
    assert [v.metadata["turn_range"] for v in store.versions("sam")] == [
        [turns[0].id, turns[2].id],
        [turns[3].id, turns[5].id],
    ]
    store.end_session("sam", session_id)
    assert len(model.calls) == 2  # nothing new to summarise


def test_model_answer_citing_unknown_turns_is_repaired(context: StoreContext) -> None:
    session_id, turns = say(context.records, SESSION_1, DAY1)
    model = ScriptedChatModel(
        [
            {"sentences": [{"text": "Sam lives in Denver.", "turn_ids": [99999]}]},
            {"sentences": [{"text": "Sam lives in Denver.", "turn_ids": [turns[0].id]}]},
        ],
        default=None,
    )
    store = SummaryStore(model_context(context, model))
    store.write(turns)
    store.end_session("sam", session_id)
    assert len(model.calls) == 2
    assert "99999" in model.calls[1].messages[-1].content
    current = store.current_summary("sam")
    assert current is not None and current.metadata["builder"] == "model"
    (only,) = sentences(store, current)
    assert only.source_turn_ids == (turns[0].id,)


def test_model_failure_queues_falls_back_and_retries(context: StoreContext) -> None:
    session_id, turns = say(context.records, SESSION_1, DAY1)
    answer = {"sentences": [{"text": "Sam is a nurse in Denver.", "turn_ids": [turns[1].id]}]}
    model = ScriptedChatModel(
        [ModelUnavailableError("down"), ModelUnavailableError("still down"), answer],
        default=None,
    )
    store = SummaryStore(model_context(context, model))
    store.write(turns)
    store.end_session("sam", session_id)

    fallback = store.current_summary("sam")
    assert fallback is not None and fallback.metadata["builder"] == "offline"
    assert len(sentences(store, fallback)) == 3
    (work,) = context.records.pending_work("summary")
    assert work.payload["turn_ids"] == [t.id for t in turns]
    assert store.stats.failures == 1 and store.stats.queued == 1

    assert store.retry_pending("sam") == 0
    assert context.records.pending_work("summary")[0].attempts == 2
    assert store.retry_pending() == 1
    assert context.records.pending_work("summary") == []
    current = store.current_summary("sam")
    assert current is not None and current.metadata["builder"] == "model"
    assert current.metadata["retry_of_work"] == work.id
    assert current.metadata["previous_id"] == fallback.id
    assert current.text == "Sam is a nurse in Denver."


# -- digests of sessions and months: what a recap gets ---------------------------------------

MAY = datetime(2023, 5, 8, 13, 0)
ANA_AND_BEN = (
    ("Ana", "I adopted a grey cat called Smoke from the shelter on Elm Street."),
    ("Ben", "Lovely! I finally finished restoring the old Vespa in my garage."),
    ("Ana", "Haha, nice."),
    ("Ben", "My sister Lotte is moving to Utrecht for a job at the university."),
)


def recap(store: SummaryStore, text: str, window: tuple[datetime, datetime] | None) -> list[str]:
    query = Query(
        text=text,
        scope=Scope("sam"),
        embedding=store.context.embedder.embed([text])[0],
        form="recap",
        window=window,
    )
    return [r.item.text for r in store.retrieve(query, 10)]


def test_a_session_ends_with_a_digest_per_speaker_saying_who_and_when(
    context: StoreContext,
) -> None:
    store = SummaryStore(context)
    turns = session(store, context.records, ANA_AND_BEN, MAY)
    digests = context.records.store_items("summary", "sam", kind="session")
    by_speaker = {d.metadata["speaker"]: d for d in digests}
    assert set(by_speaker) == {"Ana", "Ben"}
    ana = by_speaker["Ana"]
    assert ana.text == (
        "Ana, 8 May 2023: I adopted a grey cat called Smoke from the shelter on Elm Street."
    )  # "Haha, nice." says nothing worth quoting
    assert ana.source_turn_ids == (turns[0].id,)
    assert by_speaker["Ben"].source_turn_ids == (turns[1].id, turns[3].id)
    months = context.records.store_items("summary", "sam", kind="period")
    assert {m.metadata["month"] for m in months} == {"2023-05"}


def test_a_month_digest_is_rebuilt_from_its_sessions_and_its_old_version_kept(
    context: StoreContext,
) -> None:
    store = SummaryStore(context)
    session(store, context.records, ANA_AND_BEN, MAY)
    later = (("Ana", "Smoke learned to open the kitchen door with his paws."),)
    session(store, context.records, later, MAY + timedelta(days=10))
    ana_months = [
        m
        for m in context.records.store_items("summary", "sam", kind="period", current_only=False)
        if m.metadata["speaker"] == "Ana"
    ]
    old, new = sorted(ana_months, key=lambda m: m.valid_from or MAY)
    assert not old.current and old.superseded_by == new.id and new.current
    assert new.text.startswith("Ana in May 2023: (8 May) I adopted a grey cat")
    assert "(18 May) Smoke learned to open the kitchen door" in new.text


def test_a_recap_gets_the_digests_of_the_time_it_names_for_the_people_it_names(
    context: StoreContext,
) -> None:
    store = SummaryStore(context)
    session(store, context.records, ANA_AND_BEN, MAY)
    june = (("Ana", "I started volunteering at the shelter on Saturdays."),)
    session(store, context.records, june, MAY + timedelta(days=40))
    day = (datetime(2023, 5, 8), datetime(2023, 5, 9))
    found = recap(store, "What did Ana and Ben talk about on 8 May 2023?", day)
    assert [t.split(",")[0] for t in found] == ["Ana", "Ben"]  # that day's, no sentences
    months = (datetime(2023, 5, 1), datetime(2023, 7, 1))
    found = recap(store, "What happened in Ana's life between May and June 2023?", months)
    assert found == [
        "Ana, 8 May 2023: I adopted a grey cat called Smoke from the shelter on Elm Street.",
        "Ana, 17 June 2023: I started volunteering at the shelter on Saturdays.",
    ]
    latest = recap(store, "What did we talk about?", None)
    assert latest[0].startswith("Ana, 17 June 2023")
    point = Query(
        text="What is Ana's cat called?",
        scope=Scope("sam"),
        embedding=context.embedder.embed(["What is Ana's cat called?"])[0],
    )
    assert {r.item.kind for r in store.retrieve(point, 10)} == {"sentence"}


def test_with_a_model_a_digest_is_what_the_model_wrote_of_the_session(
    context: StoreContext,
) -> None:
    records = context.records
    session_id, turns = say(records, ANA_AND_BEN, MAY)
    model = ScriptedChatModel(
        [
            {
                "sentences": [
                    {"text": "Ana adopted a grey cat, Smoke.", "turn_ids": [turns[0].id]},
                    {"text": "Ben restored his Vespa.", "turn_ids": [turns[1].id]},
                    {"text": "Ben's sister Lotte moves to Utrecht.", "turn_ids": [turns[3].id]},
                ]
            }
        ],
        default=None,
    )
    store = SummaryStore(model_context(context, model))
    store.write(turns)
    store.end_session("sam", session_id)
    assert len(model.calls) == 1  # the running summary's call; the digests make none
    digests = {
        d.metadata["speaker"]: d for d in records.store_items("summary", "sam", kind="session")
    }
    assert digests["Ana"].text == "Ana, 8 May 2023: Ana adopted a grey cat, Smoke."
    assert digests["Ben"].text == (
        "Ben, 8 May 2023: Ben restored his Vespa. | Ben's sister Lotte moves to Utrecht."
    )
    assert digests["Ben"].source_turn_ids == (turns[1].id, turns[3].id)
    assert digests["Ana"].metadata["builder"] == "model"
