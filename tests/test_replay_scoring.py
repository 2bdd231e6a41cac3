"""The replay's scorer: LoCoMo's normalisation, F1 and EM, and our context metrics.

Expected values are computed by hand from LoCoMo's official scorer
(snap-research/locomo, task_eval/evaluation.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from agentmem.replay.dataset import Gold
from agentmem.replay.outputs import QuestionOutput
from agentmem.replay.report import Metrics, score_output
from agentmem.replay.scoring import (
    ContextItem,
    answer_in_context,
    change_notes,
    current_in_top,
    evidence_recall,
    exact_match,
    falsely_invalidated,
    gold_stale_leaks,
    has_value_answer,
    keep_recalled,
    multi_answer_f1,
    normalize_answer,
    says_not_mentioned,
    score_answer,
    stale_leaks,
    stale_ranked_above_current,
    token_f1,
)


def item(
    text: str, *dia_ids: str, current: bool = True, store: str = "turns", kind: str = "turn"
) -> ContextItem:
    return ContextItem(text, store, kind, 1.0, tuple(dia_ids), current)


def fact(text: str, *dia_ids: str, current: bool = True) -> ContextItem:
    return item(text, *dia_ids, current=current, store="facts", kind="fact")


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The Cat, and a Dog!", "cat dog"),
        ("Caroline's LGBTQ group", "carolines lgbtq group"),
        ("  An   apple\tpie ", "apple pie"),
        ("7 May, 2023", "7 may 2023"),
        ("Anderson and Theo", "anderson theo"),  # whole words only: 'an' in Anderson stays
    ],
)
def test_normalisation_matches_locomo(raw: str, normalised: str) -> None:
    assert normalize_answer(raw) == normalised


def test_token_f1_stems_and_ignores_order() -> None:
    assert token_f1("painting sunsets", "Sunset painting") == pytest.approx(1.0)
    # 6 predicted tokens (she went to beach in paris), 1 gold, 1 shared: 2*(1/6*1)/(1/6+1).
    assert token_f1("She went to the beach in Paris", "Paris") == pytest.approx(2 / 7)
    assert token_f1("In 2022", "2022") == pytest.approx(2 / 3)
    assert token_f1("something else", "Paris") == 0.0
    assert token_f1("", "Paris") == 0.0


def test_category_1_splits_on_commas_and_averages_over_gold_parts() -> None:
    gold = Gold("Psychology, counseling certification", ("D1:9",), 1)
    # Gold parts: "Psychology" (best 1.0) and "counseling certification" (best against
    # "counseling": P=1, R=1/2, F1=2/3); mean = 5/6.
    assert multi_answer_f1("psychology, counseling", gold.answer or "") == pytest.approx(5 / 6)
    assert score_answer("psychology, counseling", gold).f1 == pytest.approx(5 / 6)
    # The same answer scored as another category is plain token F1 on the whole text.
    as_single_hop = Gold(gold.answer, gold.evidence, 4)
    assert score_answer("psychology, counseling", as_single_hop).f1 == pytest.approx(0.8)


def test_category_3_scores_only_the_part_before_the_semicolon() -> None:
    gold = Gold("yes; she used to start work at four", (), 3)
    assert score_answer("Yes", gold).f1 == pytest.approx(1.0)
    assert score_answer("Yes", gold).exact


def test_category_5_is_correct_only_when_the_answer_says_not_mentioned() -> None:
    gold = Gold(None, ("D1:4",), 5, adversarial_answer="a cake")
    assert score_answer("Not mentioned in the conversation", gold).f1 == 1.0
    assert score_answer("No information available.", gold).exact
    assert score_answer("He baked a cake", gold).f1 == 0.0
    assert not score_answer("I don't know", gold).exact
    assert says_not_mentioned("That is NOT MENTIONED anywhere")


def test_exact_match_compares_word_sets_without_stemming() -> None:
    assert exact_match("Sunset painting", "painting, the sunset")
    assert not exact_match("paintings", "painting")


def test_evidence_recall_counts_only_items_from_at_most_three_turns() -> None:
    gold = Gold("x", ("D1:1", "D1:2", "D1:6"), 4)
    items = [
        item("one turn", "D1:1"),
        item("a session summary", "D1:2", "D1:3", "D1:4", "D1:5", store="summary"),
        item("a memo", "D1:3", "D1:4", "D1:6", store="memo"),
    ]
    assert evidence_recall(items, gold) == pytest.approx(2 / 3)
    assert evidence_recall(items[1:2], gold) == 0.0
    assert evidence_recall(items, Gold("x", (), 4)) is None


def test_a_bare_verdict_is_not_looked_for_in_a_context() -> None:
    context = "- Caroline: No way, I love it here."
    assert answer_in_context(context, Gold("Likely no; she loves it", (), 3)) is None
    assert answer_in_context(context, Gold("No", (), 4)) is None
    assert answer_in_context(context, Gold("No way", (), 4)) == 1.0  # more than a verdict


def test_an_aggregate_covers_an_evidence_turn_it_quotes_whole() -> None:
    said = "I went to the LGBTQ support group yesterday."
    gold = Gold("x", ("D1:2", "D1:5"), 4, evidence_texts=(said, "Yes."))
    sources = ("D1:1", "D1:2", "D1:3", "D1:4", "D1:5")
    quoting = item(f"Caroline and Mel. Caroline: {said.upper()} Mel: Yes.", *sources)
    assert evidence_recall([quoting], gold) == pytest.approx(0.5)  # "Yes." is too short
    paraphrase = item("Caroline went to a support group; Mel said yes.", *sources)
    assert evidence_recall([paraphrase], gold) == 0.0
    elsewhere = item(f"Caroline: {said}", "D1:1", "D1:3", "D1:4", "D1:6")  # not its source
    assert evidence_recall([elsewhere], gold) == 0.0


def test_answer_in_context_is_containment_of_the_normalised_answer() -> None:
    context = "- (14 June 2023) Nora: I moved to Bristol, last week!"
    assert answer_in_context(context, Gold("bristol", (), 4)) == 1.0
    assert answer_in_context(context, Gold("Bristol harbour", (), 4)) == 0.0
    assert answer_in_context(context, Gold("Leeds, Bristol", (), 1)) == 0.5
    assert answer_in_context(context, Gold("last week; or so", (), 3)) == 1.0
    assert answer_in_context(context, Gold(None, (), 5)) is None
    # Whole words: "Bristo" is not in the context although it is a substring.
    assert answer_in_context(context, Gold("Bristo", (), 4)) == 0.0


def test_stale_leak_is_a_current_item_with_the_old_value_and_not_the_new_one() -> None:
    gold = Gold("Bristol", ("D3:2",), 4, kind="update", stale=("Leeds",))
    leaking = item("Nora: I live in Leeds now.", "D1:3")
    shouting = item("LEEDS, again!", "D1:9")
    items = [
        leaking,
        item("Nora: I live in Leeds now.", "D1:3", current=False),
        item("Nora: I moved from Leeds to Bristol.", "D3:2"),
        item("Leedsville is lovely", "D2:1"),
        shouting,
    ]
    assert stale_leaks(items, gold) == [leaking, shouting]
    assert stale_leaks(items, Gold("Bristol", (), 4, kind="keep")) == []


def test_keep_recall_needs_the_answer_in_a_current_item() -> None:
    gold = Gold("a tabby cat named Miso", ("D1:7",), 4, kind="keep")
    assert keep_recalled([item("Nora: I have a tabby cat named Miso.", "D1:7")], gold)
    assert not keep_recalled([item("I have a tabby cat named Miso", "D1:7", current=False)], gold)
    assert not keep_recalled([item("Nora: I have a tabby cat.", "D1:7")], gold)


def _output(items: list[ContextItem], answer: str | None = None) -> QuestionOutput:
    return QuestionOutput(
        config="turns",
        question_id="s#q0",
        sample_id="s",
        question="Where does Nora live now?",
        items=tuple(items),
        context_tokens=12,
        recall_seconds=0.01,
        answer=answer,
    )


def test_score_output_applies_each_metric_only_where_it_belongs() -> None:
    gold = Gold("Bristol", ("D3:2",), 4, kind="update", stale=("Leeds",))
    output = _output(
        [item("Nora: I live in Leeds.", "D1:3"), item("Nora: I moved to Bristol.", "D3:2")],
        answer="Bristol",
    )
    scored = score_output(output, gold, judge=lambda q, g, a: a == g)
    assert scored.stale_leaks == 1
    assert scored.keep_recalled is None
    assert scored.evidence_recall == 1.0
    assert scored.answer_in_context == 1.0
    assert scored.f1 == pytest.approx(1.0) and scored.exact
    assert scored.judged_correct is True
    unanswered = score_output(_output([]), gold)
    assert unanswered.f1 is None and unanswered.stale_leaks == 0 and unanswered.evidence_recall == 0
    metrics = Metrics.of([scored, unanswered])
    assert metrics.stale_questions == 2 and metrics.stale_leak_questions == 1
    assert metrics.stale_leak_rate == pytest.approx(0.5)
    assert metrics.f1 == pytest.approx(1.0)  # only answered questions count


def test_stale_leaks_count_on_every_kind_that_has_stale_values() -> None:
    leaking = [item("Ravi: my sister still teaches in Oslo.", "D1:2")]
    for kind in ("update", "indirect", "third-party", "negation"):
        answer = "no" if kind == "negation" else "Bergen"
        gold = Gold(answer, ("D4:1",), 4, kind=kind, stale=("Oslo",))
        assert score_output(_output(leaking), gold).stale_leaks == 1, kind
    # No stale values, no stale-leak count, whatever the kind or the text.
    for kind in ("keep", "when", None):
        assert score_output(_output(leaking), Gold("Oslo", (), 4, kind=kind)).stale_leaks is None
    scored = [
        score_output(_output(leaking), Gold("Bergen", (), 4, kind="indirect", stale=("Oslo",))),
        score_output(_output([]), Gold("no", (), 4, kind="negation", stale=("Oslo",))),
        score_output(_output(leaking), Gold("Oslo", (), 4, kind="keep")),
    ]
    metrics = Metrics.of(scored)
    assert (metrics.stale_questions, metrics.stale_leak_questions) == (2, 1)
    assert metrics.stale_leak_rate == pytest.approx(0.5)


def test_a_yes_no_answer_does_not_excuse_a_stale_leak() -> None:
    gold = Gold("no", ("D3:5",), 4, kind="negation", stale=("the kayak",))
    says_no = item("Tomas: no, I take the kayak out every Sunday.", "D2:4")
    assert stale_leaks([says_no], gold) == [says_no]
    # Where the answer is a value, an item naming old and new value states the change.
    moved = item("Tomas: I swapped the kayak for a canoe.", "D3:5")
    assert stale_leaks([moved], Gold("a canoe", (), 4, kind="update", stale=("the kayak",))) == []


def test_the_evidence_of_an_ending_is_no_stale_leak() -> None:
    gold = Gold("no", ("D3:5",), 4, kind="negation", stale=("the kayak",))
    news = item("Tomas: I sold the kayak to a neighbour.", "D3:5")
    echo = item("Ines: sad about the kayak, you loved it.", "D3:6")
    summary = item("Tomas sold the kayak. Ines: sad about the kayak.", "D3:5", "D3:6")
    assert stale_leaks([news, echo, summary], gold) == [echo, summary]


def test_an_aggregate_quoting_the_evidence_leaks_only_outside_the_quote() -> None:
    ending = "I sold the kayak to a neighbour. Strange feeling."
    gold = Gold("no", ("D3:5",), 4, kind="negation", stale=("the kayak",), evidence_texts=(ending,))
    memo = item(f"Topic: boats. Tomas: {ending} Ines: What now?", "D3:5", "D3:6")
    node = item(f"Tomas: {ending} Tomas: the kayak rack is still up.", "D3:5", "D3:7")
    assert stale_leaks([memo, node], gold) == [node]


def test_only_value_answers_are_checked_for_false_invalidation() -> None:
    for kind in ("update", "indirect", "third-party", "keep"):
        assert has_value_answer(Gold("Bergen", (), 4, kind=kind)), kind
    assert not has_value_answer(Gold("no", (), 4, kind="negation", stale=("Oslo",)))
    assert not has_value_answer(Gold("3 May 2024", (), 2, kind="when"))
    assert not has_value_answer(Gold("Bergen", (), 4))  # LoCoMo: no kind
    assert not has_value_answer(Gold(None, (), 5, kind="keep"))


def test_false_invalidation_is_the_answer_present_only_as_history() -> None:
    gold = Gold("Bergen", ("D4:1",), 4, kind="update", stale=("Oslo",))
    history = item("Ravi's sister teaches in Bergen.", "D4:1", current=False)
    current = item("Ravi: she moved to Bergen in spring.", "D4:1")
    old = item("Ravi's sister teaches in Oslo.", "D1:2", current=False)
    assert falsely_invalidated([old, history], gold)
    assert not falsely_invalidated([history, current], gold)  # also current: not false
    assert not falsely_invalidated([old], gold)  # absent: a recall miss, not an invalidation
    assert not falsely_invalidated([], gold)
    # Whole words: "Bergenfield" in a history item is not the answer.
    assert not falsely_invalidated([item("Bergenfield", "D2:2", current=False)], gold)


def test_false_invalidations_are_counted_per_value_question_and_for_keep_apart() -> None:
    history = item("Ines keeps bees in the orchard.", "D1:4", current=False)
    current = item("Ines: the bees are in the orchard, as ever.", "D5:1")
    keep = Gold("bees", ("D1:4",), 4, kind="keep")
    update = Gold("bees", ("D5:1",), 4, kind="update", stale=("hens",))
    negation = Gold("no", ("D5:1",), 4, kind="negation", stale=("bees",))
    when = Gold("bees", ("D5:1",), 2, kind="when")
    scored = [
        score_output(_output([history]), keep),
        score_output(_output([history, current]), keep),
        score_output(_output([history]), update),
        score_output(_output([history]), negation),
        score_output(_output([history]), when),
    ]
    assert [s.falsely_invalidated for s in scored] == [True, False, True, None, None]
    metrics = Metrics.of(scored)
    assert (metrics.value_questions, metrics.false_invalidations) == (3, 2)
    assert (metrics.keep_questions, metrics.keep_false_invalidations) == (2, 1)
    assert metrics.false_invalidation_rate == pytest.approx(2 / 3)
    assert metrics.keep_false_invalidation_rate == pytest.approx(0.5)
    data = metrics.to_json()
    assert data["false_invalidations"] == 2 and data["keep_false_invalidation_rate"] == 0.5


def test_current_in_top_looks_only_at_the_first_current_items() -> None:
    gold = Gold("a cello", ("D3:3",), 4, kind="update", stale=("a violin",))
    filler = [item(f"Ines mentions the weather, day {n}.", f"D2:{n}") for n in range(1, 4)]
    answer = item("Ines: I play a cello now.", "D3:3")
    assert current_in_top([*filler[:2], answer, *filler[2:]], gold)
    assert not current_in_top([*filler, answer], gold)  # fourth: too far down
    assert current_in_top([*filler, answer], gold, n=4)
    as_history = item("Ines: I play a cello now.", "D3:3", current=False)
    assert not current_in_top([as_history, *filler], gold)


def test_current_in_top3_applies_to_stale_and_keep_questions_with_a_value_answer() -> None:
    first = [item("Ines: I play a cello now.", "D3:3")]
    later = [item(f"filler {n}", f"D2:{n}") for n in range(3)] + first
    cases = {
        "update": Gold("a cello", (), 4, kind="update", stale=("a violin",)),
        "third-party": Gold("a cello", (), 4, kind="third-party", stale=("a violin",)),
        "keep": Gold("a cello", (), 4, kind="keep"),
        "update without stale values": Gold("a cello", (), 4, kind="update"),
        "negation": Gold("no", (), 4, kind="negation", stale=("a cello",)),
        "when": Gold("a cello", (), 2, kind="when"),
        "locomo": Gold("a cello", (), 4),
    }
    found = {name: score_output(_output(first), g).current_in_top3 for name, g in cases.items()}
    assert found == {
        "update": True,
        "third-party": True,
        "keep": True,
        "update without stale values": None,
        "negation": None,
        "when": None,
        "locomo": None,
    }
    scored = [
        score_output(_output(first), cases["update"]),
        score_output(_output(later), cases["keep"]),
        score_output(_output(later), cases["when"]),
    ]
    assert Metrics.of(scored).current_in_top3 == pytest.approx(0.5)


def test_context_items_round_trip_through_json() -> None:
    when = datetime(2023, 6, 14, 14, 5)
    output = _output([ContextItem("x", "facts", "fact", 0.5, ("D1:1",), False, when, when)])
    assert QuestionOutput.from_json(output.to_json()) == output


# -- stale leaks by the gold rule ------------------------------------------------------
#
# Ana lives in Porto (D1:1, the only turn asserting it), says goodbye to Porto (D2:1) and
# moves to Madrid (D2:3); Ben flies to Porto for a conference (D2:4); Ana misses the Porto
# bakeries (D3:1). Ana spoke D1:1, D1:3, D2:1, D2:3, D2:5 and D3:1.

ANA = frozenset({"D1:1", "D1:3", "D2:1", "D2:3", "D2:5", "D3:1"})
SAID = {
    "D1:1": "I live in Porto now, right by the Douro.",
    "D2:1": "Big news: I packed the last box and said goodbye to Porto.",
    "D2:4": "I am flying to Porto for a conference in May.",
    "D3:1": "I still miss the Porto bakeries.",
}


def annotated(
    answer: str = "Madrid", kind: str = "update", stale: tuple[str, ...] = ("Porto",)
) -> Gold:
    asserted = ("D1:1",) if "Porto" in stale else ("D1:3",)
    return Gold(
        answer,
        ("D2:3",),
        4,
        kind=kind,
        stale=stale,
        stale_evidence=asserted,
        change_evidence=("D2:1", "D2:3"),
        subject_turns=ANA,
        turn_texts=SAID,
    )


def test_gold_rule_counts_a_current_item_drawing_on_a_stale_evidence_turn() -> None:
    gold = annotated()
    turn = item("Ana: I live in Porto now, right by the Douro.", "D1:1")
    memo = item("Ana lives by the Douro in Porto; Ben is a nurse.", "D1:1", "D1:2", "D1:4")
    assert gold_stale_leaks([turn, memo], gold) == [turn, memo]
    # Marked as no longer current, or silent about the old value: no leak.
    assert gold_stale_leaks([item(turn.text, "D1:1", current=False)], gold) == []
    assert gold_stale_leaks([item("Ana: I love the river.", "D1:1")], gold) == []


def test_gold_rule_counts_a_derived_item_about_the_subject_from_any_of_her_turns() -> None:
    gold = annotated()
    # Drawn from Ana's remark after the move (no stale_evidence turn), but derived: a fact
    # asserting that she lives in Porto is about her, whatever turn it came from.
    wrong = fact("Ana lives in Porto", "D3:1")
    triple = item("Ana -lives_in- Porto", "D3:1", store="graph", kind="triple")
    note = item("Ana is based in Porto.", "D3:1", store="langmem", kind="note")
    node = item("Ana misses Porto.", "D3:1", store="memtree", kind="node")  # not derived
    assert gold_stale_leaks([wrong, triple, note, node], gold) == [wrong, triple, note]


def test_gold_rule_leaves_someone_elses_fact_with_the_old_value() -> None:
    gold = annotated()
    bens = fact("Ben is flying to Porto for a conference", "D2:4")
    assert gold_stale_leaks([bens], gold) == []
    assert stale_leaks([bens], gold) == [bens]  # the any-mention rule counts it


def test_gold_rule_leaves_the_news_of_the_change_and_remarks_after_it() -> None:
    gold = annotated()
    news = item("Ana: Big news: I packed the last box and said goodbye to Porto.", "D2:1")
    remark = item("Ana: I still miss the Porto bakeries.", "D3:1")
    bens = item("Ben: I am flying to Porto for a conference in May.", "D2:4")
    assert gold_stale_leaks([news, remark, bens], gold) == []
    assert stale_leaks([news, remark, bens], gold) == [news, remark, bens]


def test_gold_rule_leaves_an_aggregate_that_quotes_only_the_news_and_later_remarks() -> None:
    gold = annotated()
    sources = ("D1:1", "D2:1", "D2:4", "D3:1")
    # A tree node built from the old turn too, but showing only what the others said.
    quotes = item(f"Ana: {SAID['D2:1']} Ben: {SAID['D2:4']} Ana: {SAID['D3:1']}", *sources)
    retold = item(f"Ana lives in Porto. Ana: {SAID['D2:1']}", *sources)  # says it anew
    assert gold_stale_leaks([quotes, retold], gold) == [retold]


def test_gold_rule_excuses_an_item_that_mentions_the_current_answer() -> None:
    gold = annotated()
    both = fact("Ana moved from Porto to Madrid", "D1:1", "D2:3")
    assert gold_stale_leaks([both], gold) == []
    # A yes/no answer is no current value: "no" in the text excuses nothing.
    negation = annotated("no", "negation", ("Rex",))
    says_no = item("Ana: no walk without Rex, ever.", "D1:3")
    assert gold_stale_leaks([says_no], negation) == [says_no]


@pytest.mark.parametrize(
    "note",
    [
        "[since 20 April 2023: pet Rex → none]",
        "[since 20 April 2023: pet Rex -> parents' farm]",
        "[since 20 April 2023: pet Rex -› parents' farm]",  # "->" as the prompt escapes it
        "[since 20 April 2023: no longer has the dog Rex]",
        "[Rex lives with her parents; not anymore at home]",
        "[ended 20 April 2023: has the dog Rex]",
    ],
)
def test_gold_rule_excuses_a_value_carried_inside_a_change_note(note: str) -> None:
    gold = annotated("no", "negation", ("Rex",))
    carried = item(f"Ana: My dog Rex and I walk along the river… {note}", "D1:3")
    assert change_notes(carried.text) == [note[1:-1]]
    assert gold_stale_leaks([carried], gold) == []


@pytest.mark.parametrize(
    "note",
    [
        "[since 1 March 2023: has the dog Rex]",  # a validity note, no change
        "[shares a photo: Rex no longer muddy after his bath]",  # an image caption
        "(since 20 April 2023: no longer has the dog Rex)",  # not bracketed
        "[since 20 April 2023: no longer walks by the river]",  # no value inside
    ],
)
def test_gold_rule_needs_the_value_inside_a_bracketed_change_note(note: str) -> None:
    gold = annotated("no", "negation", ("Rex",))
    leaking = item(f"Ana: My dog Rex and I walk along the river. {note}", "D1:3")
    assert gold_stale_leaks([leaking], gold) == [leaking]


def test_a_change_note_excuses_only_the_values_inside_it() -> None:
    gold = Gold(
        "a scooter",
        ("D4:1",),
        4,
        kind="update",
        stale=("drive", "bike"),
        stale_evidence=("D1:2", "D2:3"),
        subject_turns=frozenset({"D1:2", "D2:3"}),
    )
    one_note = item("Callum: I drive, then I bike. [since May: drive → bike]", "D1:2")
    half = item("Callum: I drive, then I bike. [since June: no longer uses the bike]", "D2:3")
    assert gold_stale_leaks([one_note, half], gold) == [half]
    # What a node quotes from a later turn needs no note: only the rest must carry one.
    later = replace(gold, turn_texts={"D4:1": "No more drive to work for me."})
    node = item(
        "No more drive to work for me. Callum: I bike. [June: no longer rides the bike]",
        "D2:3",
        "D4:1",
    )
    assert gold_stale_leaks([node], later) == []


def test_without_annotations_the_any_mention_rule_alone_is_scored() -> None:
    remark = item("Ana: I still miss the Porto bakeries.", "D3:1")
    plain = Gold("Madrid", ("D2:3",), 4, kind="update", stale=("Porto",))
    scored = score_output(_output([remark]), plain)
    assert (scored.stale_leaks, scored.gold_stale_leaks) == (1, None)
    assert scored.stale_above_current is True  # ranked by the any-mention rule
    with_annotations = score_output(_output([remark]), annotated())
    assert (with_annotations.stale_leaks, with_annotations.gold_stale_leaks) == (1, 0)
    assert with_annotations.stale_above_current is False  # ranked by the gold rule
    # Annotated with no turn asserting the old value (empty, not absent): nothing leaks.
    empty = replace(annotated(), stale_evidence=(), subject_turns=frozenset())
    assert score_output(_output([remark]), empty).gold_stale_leaks == 0
    metrics = Metrics.of([scored, with_annotations])
    assert (metrics.stale_questions, metrics.stale_leak_questions) == (2, 2)
    assert (metrics.gold_stale_questions, metrics.gold_stale_leak_questions) == (1, 0)
    assert metrics.gold_stale_leak_rate == 0.0
    assert Metrics.of([scored]).gold_stale_leak_rate is None
    data = with_annotations.to_json()
    assert data["scores"]["gold_stale_leaks"] == 0 and data["scores"]["stale_leaks"] == 1
    assert data["stale_evidence"] == ["D1:1"] and data["distractor_evidence"] is None
    assert scored.to_json()["stale_evidence"] is None


# -- stale ranked above current --------------------------------------------------------


def test_stale_ranked_above_current_compares_the_first_leak_with_the_first_answer() -> None:
    gold = annotated()
    leak = item("Ana: I live in Porto now.", "D1:1")
    answer = item("Ana: In Madrid, in a tiny flat.", "D2:3")
    filler = item("Ben: Where did you end up?", "D2:2")
    remark = item("Ana: I still miss the Porto bakeries.", "D3:1")  # no leak by the gold rule
    assert stale_ranked_above_current([filler, leak, answer], gold)
    assert not stale_ranked_above_current([answer, leak], gold)
    assert stale_ranked_above_current([leak], gold)  # a leak and no answer at all
    assert not stale_ranked_above_current([filler, answer], gold)  # no leak
    assert not stale_ranked_above_current([remark, answer, leak], gold)
    # An answer only as history is no current answer: the leak stands above it.
    history = item(answer.text, "D2:3", current=False)
    assert stale_ranked_above_current([history, leak], gold)


def test_stale_ranked_above_current_is_scored_on_stale_questions_with_a_value_answer() -> None:
    leak = [item("Ana: I live in Porto now.", "D1:1")]
    cases = {
        "update": annotated(),
        "third-party": annotated(kind="third-party"),
        "negation": annotated("no", "negation", ("Rex",)),
        "keep": Gold("translator", ("D3:3",), 4, kind="keep"),
        "update without stale values": Gold("Madrid", ("D2:3",), 4, kind="update"),
    }
    found = {name: score_output(_output(leak), g).stale_above_current for name, g in cases.items()}
    assert found == {
        "update": True,
        "third-party": True,
        "negation": None,
        "keep": None,
        "update without stale values": None,
    }
    scored = [
        score_output(_output(leak), cases["update"]),
        score_output(_output([]), cases["third-party"]),
        score_output(_output(leak), cases["negation"]),
    ]
    metrics = Metrics.of(scored)
    assert (metrics.ranked_questions, metrics.stale_above_current) == (2, 1)
    assert metrics.to_json()["stale_above_current_rate"] == pytest.approx(0.5)
