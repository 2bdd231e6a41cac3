"""The turns baseline against the shared store contract."""

from __future__ import annotations

from datetime import datetime

from agentmem.ledger.propagation import StaleGuard, StaleValue
from agentmem.protocols import MemoryStore, StoreContext
from agentmem.stores.turns import TurnStore, _fuse
from agentmem.testing.contract import MemoryStoreContract
from agentmem.types import MemoryItem, Query, Recalled, Scope


class TestTurnStore(MemoryStoreContract):
    def make_store(self, context: StoreContext) -> MemoryStore:
        return TurnStore(context)


def _say(
    context: StoreContext, store: TurnStore, lines: list[tuple[str, str]], **options: str
) -> None:
    user = options.get("user", "u1")
    turns = [
        context.records.add_turn(user, options.get("session", "s1"), speaker, role, text)
        for speaker, text in lines
        for role in ["assistant" if speaker == "assistant" else "user"]
    ]
    store.write(turns)


def _top(context: StoreContext, store: TurnStore, text: str, k: int = 3) -> list[str]:
    query = Query(text=text, scope=Scope("u1"), embedding=context.embedder.embed([text])[0])
    return [r.item.text for r in store.retrieve(query, k)]


def test_a_named_speaker_is_matched_not_embedded(store_context: StoreContext) -> None:
    """In a short turn the speaker's name outweighs what was said; recall matches the
    speaker instead of embedding the name, so the turn that answers comes first."""
    store = TurnStore(store_context)
    _say(
        store_context,
        store,
        [
            ("Tariq", "Ha, maybe."),
            ("Tariq", "I weld hulls at the shipyard in Gdynia these days."),
            ("Bea", "Nice one."),
            ("Tariq", "Sure."),
            ("Bea", "We watched the eclipse from the roof."),
            ("Tariq", "Right."),
        ],
    )
    top = _top(store_context, store, "What does Tariq do for a living?", k=1)
    assert top == ["Tariq: I weld hulls at the shipyard in Gdynia these days."]


def test_a_question_in_the_first_person_favours_the_users_side(store_context: StoreContext) -> None:
    store = TurnStore(store_context)
    _say(
        store_context,
        store,
        [
            ("user", "My bike got stolen so I take the tram now."),
            ("assistant", "The bus is another option for your commute."),
            ("user", "Thanks."),
        ],
    )
    assert _top(store_context, store, "how do I get to work?", k=1) == [
        "user: My bike got stolen so I take the tram now."
    ]


def test_speakers_are_known_after_a_restart(store_context: StoreContext) -> None:
    _say(
        store_context,
        TurnStore(store_context),
        [("Tariq", "Ha, maybe."), ("Tariq", "I weld hulls at the shipyard in Gdynia these days.")],
    )
    reopened = TurnStore(store_context)
    top = _top(store_context, reopened, "What does Tariq do for a living?", k=1)
    assert top == ["Tariq: I weld hulls at the shipyard in Gdynia these days."]


def test_an_answer_carries_the_question_it_answers(store_context: StoreContext) -> None:
    """A bare answer ("Mo, on Mill Street.") is found through the turn before it."""
    store = TurnStore(store_context)
    _say(
        store_context,
        store,
        [
            ("Bea", "And who is the new flatmate?"),
            ("Tariq", "Kasia, since March. Very tidy."),
            ("Bea", "So who cuts your hair these days?"),
            ("Tariq", "Mo, on Mill Street. Very quick."),
        ],
    )
    answers = [t for t in _top(store_context, store, "Who is Tariq's barber?", k=4) if "Tariq" in t]
    assert answers[0] == "Tariq: Mo, on Mill Street. Very quick."


def test_a_turns_relative_dates_are_written_down(store_context: StoreContext) -> None:
    """ "yesterday" said on 8 May 2023 is 7 May 2023: the item's text says so, and the
    stale guard reads the words as said (a resolved month is no mention of a value)."""
    store = TurnStore(store_context)
    said = store_context.records.add_turn(
        "u1",
        "s1",
        "Tariq",
        "user",
        "I fell off my bike yesterday.",
        timestamp=datetime(2023, 5, 8, 14, 0),
    )
    (change,) = store.write([said])
    item = change.item
    assert item.text == "Tariq: I fell off my bike yesterday [7 May 2023]."
    top = _top(store_context, store, "When did Tariq fall off his bike?", k=1)
    assert top == [item.text]
    guard = StaleGuard(store_context.records)
    month = StaleValue("tariq", "wedding month", "May", "June", "f1", "f2", frozenset(), None)
    assert guard.stale_for(item, [month]) is None


def _item(name: str) -> MemoryItem:
    return MemoryItem(name, "turns", "turn", "u1", f"Tariq: {name}", (1,))


def test_words_add_turns_below_the_best_matches_in_meaning() -> None:
    """The dense ranking's first three keep their places; a turn matched by its words
    (and by meaning further down) comes next, one matched by words alone after it."""
    a, b, c, d, e = (_item(n) for n in "abcde")
    dense = [Recalled(a, 0.9), Recalled(b, 0.8), Recalled(c, 0.7), Recalled(d, 0.6)]
    fused = _fuse(dense, [e, d])
    assert [r.item.id for r in fused] == ["a", "b", "c", "d", "e"]
    assert [r.score for r in fused] == [0.9, 0.8, 0.7, 0.6, 0.6]  # similarities, kept
    assert [r.item.id for r in _fuse(dense, [d, e, c])][:3] == ["a", "b", "c"]


def test_a_rare_word_finds_its_turn_and_validity_still_holds(store_context: StoreContext) -> None:
    store = TurnStore(store_context)
    _say(store_context, store, [("Bea", "Happy birthday!"), ("Tariq", "Ngozi has the Vango.")])
    _say(store_context, store, [("Bea", "A Vango tent, like mine?")], user="u2")
    query = Query("Vango", Scope("u1"), store_context.embedder.embed(["Vango"])[0])
    (found,) = store.lexical(query, ["vango"], 5)  # the lexical half alone
    assert found.text == "Tariq: Ngozi has the Vango."
    store.invalidate([found.id], "retracted")
    assert store.lexical(query, ["vango"], 5) == []
    history = Query("Vango", Scope("u1"), query.embedding, include_history=True)
    assert [i.id for i in store.lexical(history, ["vango"], 5)] == [found.id]


def test_an_item_given_twice_in_one_write_is_stored_once(store_context: StoreContext) -> None:
    from agentmem.storage.items import ItemIndex

    index = ItemIndex(store_context, "notes")
    note = MemoryItem("n1", "notes", "note", "u1", "Tariq owes Bea a coffee.", ())
    assert [i.id for i in index.add([note, note])] == ["n1"]
    assert index.add([note]) == []


def test_a_recap_naming_a_day_gets_the_turns_of_that_day(store_context: StoreContext) -> None:
    store = TurnStore(store_context)
    records = store_context.records
    said = []
    for day, lines in (
        (datetime(2023, 5, 8, 10), ["I planted tomatoes in the allotment.", "The bus was late."]),
        (
            datetime(2023, 5, 9, 10),
            ["I planted basil on the balcony.", "We talked about tomatoes."],
        ),
    ):
        session = records.start_session("u1", started_at=day)
        said += [records.add_turn("u1", session, "Ana", "user", t, timestamp=day) for t in lines]
    store.write(said)
    text = "What did we talk about on 8 May 2023?"
    query = Query(
        text=text,
        scope=Scope("u1"),
        embedding=store_context.embedder.embed([text])[0],
        form="recap",
        window=(datetime(2023, 5, 8), datetime(2023, 5, 9)),
    )
    found = [r.item.text for r in store.retrieve(query, 10)]
    assert sorted(found) == ["Ana: I planted tomatoes in the allotment.", "Ana: The bus was late."]
    plain = Query(text=text, scope=Scope("u1"), embedding=query.embedding)
    assert len(store.retrieve(plain, 10)) == 4  # without a window: the whole dialogue
