"""Breadth questions in the replay: recaps generated from LoCoMo's notes, scored by coverage.

The fixture (tests/fixtures/replay_breadth.json) is a six-session dialogue between Ines and
Tomas over four months, written for these tests in LoCoMo's format with ``observation``
(facts per session and speaker, each with the turn it came from) and ``session_summary``:
Ines gets an allotment plot, learns Portuguese, becomes a night nurse and prepares her
brother's wedding; Tomas trains for a marathon, hurts his knee and adopts a second dog.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from agentmem.cli import main
from agentmem.errors import InputError
from agentmem.replay import load_samples
from agentmem.replay.breadth import MIN_PERIOD_SESSIONS, RECAP_PERIOD, RECAP_SESSION
from agentmem.replay.coverage import coverage, lcs_length, rouge_l_recall
from agentmem.replay.dataset import Gold, Question
from agentmem.replay.scoring import ContextItem

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "replay_breadth.json"
SHARED_LOCOMO = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"


def raw_fixture() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


def recaps() -> list[tuple[Question, Gold]]:
    [sample] = load_samples([FIXTURE])
    return list(zip(sample.recaps, sample.recap_gold, strict=True))


def recap(text_start: str) -> tuple[str, Gold]:
    [found] = [(q.text, g) for q, g in recaps() if q.text.startswith(text_start)]
    return found


def item(text: str, *dia_ids: str, kind: str = "turn") -> ContextItem:
    return ContextItem(text=text, store="x", kind=kind, score=1.0, dia_ids=dia_ids)


# -- generating the questions ---------------------------------------------------------------


def test_a_session_recap_is_asked_per_date_with_every_observation_turn_of_it() -> None:
    sessions = [(q, g) for q, g in recaps() if g.recap == RECAP_SESSION]
    assert [q.text for q, _ in sessions][:2] == [
        "What did Ines and Tomas talk about on 3 February 2024?",
        "What did Ines and Tomas talk about on 17 February 2024?",
    ]
    assert len(sessions) == 6
    question, gold = sessions[0]
    assert question.id == "breadth-01#recap-session-1"
    # Both speakers' facts, in dialogue order, each with the facts written from it.
    assert gold.evidence == ("D1:1", "D1:3", "D1:4", "D1:6")
    assert gold.observations[2] == (
        "Tomas signed up for the Lisbon marathon in October and started training.",
    )
    assert gold.reference is not None and gold.reference.startswith("On 3 February 2024")
    assert gold.answer is None and gold.category == 0
    assert {"ines", "tomas"} <= gold.names


def test_a_period_recap_spans_whole_months_of_three_sessions_and_one_speakers_facts() -> None:
    periods = [(q, g) for q, g in recaps() if g.recap == RECAP_PERIOD]
    assert [q.text for q, _ in periods] == [
        "What happened in Ines's life between February and March 2024?",
        "What happened in Tomas's life between February and March 2024?",
        "What happened in Ines's life between April and May 2024?",
        "What happened in Tomas's life between April and May 2024?",
    ]
    _, ines = periods[0]
    assert ines.evidence == ("D1:1", "D1:3", "D2:4", "D2:6", "D3:1", "D3:5")
    sessions = {d.split(":")[0] for d in ines.evidence}
    assert len(sessions) >= MIN_PERIOD_SESSIONS
    assert ines.reference is None  # ROUGE-L is for session recaps


def test_recaps_need_the_notes_and_the_questions_carry_nothing_of_the_gold() -> None:
    data = raw_fixture()
    for sample in data:
        del sample["observation"]
    path = FIXTURE.parent / "_no_notes.json"
    try:
        path.write_text(json.dumps(data), encoding="utf-8")
        [bare] = load_samples([path])
    finally:
        path.unlink()
    assert bare.recaps == () and bare.recap_gold == ()
    [sample] = load_samples([FIXTURE])
    facts = " ".join(f for g in sample.recap_gold for fs in g.observations for f in fs)
    for question in sample.recaps:
        assert "D1:" not in question.text and "allotment" not in question.text
    assert "allotment" in facts


@pytest.mark.parametrize(
    ("observation", "message"),
    [
        (["not", "an object"], "observation must be a JSON object"),
        ({"session_1_observation": ["Ines"]}, "object of speakers"),
        ({"session_1_observation": {"Ines": "a fact"}}, "must be a list"),
        ({"session_1_observation": {"Ines": [["a fact"]]}}, "[text, dia_id]"),
        ({"session_1_observation": {"Ines": [["a fact", 3]]}}, "dia_ids must be text"),
    ],
)
def test_malformed_notes_are_refused(tmp_path: Path, observation: Any, message: str) -> None:
    data = raw_fixture()
    data[0]["observation"] = observation
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match="breadth-01") as raised:
        load_samples([path])
    assert message in str(raised.value)


def test_a_summary_that_is_no_text_is_refused(tmp_path: Path) -> None:
    data = raw_fixture()
    data[0]["session_summary"]["session_2_summary"] = {"text": "no"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match="session_summary session_2_summary must be text"):
        load_samples([path])


def test_a_fact_naming_no_turn_of_the_dialogue_is_left_out(tmp_path: Path) -> None:
    data = copy.deepcopy(raw_fixture())
    data[0]["observation"]["session_1_observation"]["Ines"].append(["Ines owns a boat.", "D9:9"])
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    [sample] = load_samples([path])
    assert all("D9:9" not in g.evidence for g in sample.recap_gold)


@pytest.mark.skipif(not SHARED_LOCOMO.exists(), reason="the shared LoCoMo dev file is absent")
def test_locomo_dev_has_session_and_period_recaps() -> None:
    for sample in load_samples([SHARED_LOCOMO]):
        labels = [g.recap for g in sample.recap_gold]
        assert labels.count(RECAP_SESSION) >= 10 and labels.count(RECAP_PERIOD) >= 4
        assert all(g.evidence and len(g.observations) == len(g.evidence) for g in sample.recap_gold)


# -- scoring --------------------------------------------------------------------------------


def test_a_turn_in_the_context_covers_itself() -> None:
    _, gold = recap("What did Ines and Tomas talk about on 3 February")
    items = [item("Ines: Morning Tomas! I finally got a plot ...", "D1:1")]
    assert coverage(items, gold) == 0.25


def test_an_aggregate_listing_turns_covers_only_what_it_says_of_them() -> None:
    _, gold = recap("What did Ines and Tomas talk about on 3 February")
    sources = ("D1:1", "D1:2", "D1:3", "D1:4", "D1:5", "D1:6")
    vague = item("Ines and Tomas caught up on their plans for the year.", *sources, kind="memo")
    assert coverage([vague], gold) == 0.0  # listed among its sources is not enough
    # Half of "Ines got a plot at the community allotment on Fairfield Road." (names aside:
    # got, plot, community, allotment, fairfield, road) and a whole quote of D1:6.
    said = item(
        "Ines has a new allotment plot on Fairfield Road. Tomas: Twenty kilometres in total,"
        " split over four short runs.",
        *sources,
        kind="summary",
    )
    assert coverage([said], gold) == 0.5
    # Saying it without drawing on the turn covers nothing either.
    elsewhere = item(said.text, "D2:1", "D2:2", "D2:3", "D2:4", kind="summary")
    assert coverage([elsewhere], gold) == 0.0


def test_the_speakers_names_do_not_count_as_content() -> None:
    _, gold = recap("What did Ines and Tomas talk about on 18 May")
    sources = ("D6:1", "D6:2", "D6:3", "D6:4")
    # "Tomas is running again after resting his knee." says run, rest, knee: with the name
    # counted, "Tomas" and "knee" would be half of it.
    knee = item("Tomas hurt his knee.", *sources, kind="memo")
    assert coverage([knee], gold) == 0.0
    runs = item("Tomas runs with a rested knee.", *sources, kind="memo")
    assert coverage([runs], gold) == 0.25  # stemmed: runs, rested say run, rest


def test_point_questions_have_no_coverage_and_recaps_no_evidence_recall() -> None:
    _, gold = recap("What did Ines and Tomas talk about on 3 February")
    point = Gold(answer="Porto", evidence=("D4:1",), category=4)
    assert coverage([item("Ines: Porto", "D4:1")], point) is None
    assert coverage([], gold) == 0.0


def test_rouge_l_is_the_recall_of_the_summary_in_order() -> None:
    assert rouge_l_recall("a b c", None) is None
    assert rouge_l_recall("Tomas ran a marathon in Lisbon", "Tomas ran a marathon") == 1.0
    # Stemmed: "runs" matches "run"; order matters: "marathon ran" keeps one of the two.
    assert rouge_l_recall("marathon runs", "ran marathon") == 0.5
    assert rouge_l_recall("he runs marathons", "he run marathon") == 1.0
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4


# -- end to end -----------------------------------------------------------------------------


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdin=io.StringIO(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def breadth_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    out = tmp_path_factory.mktemp("breadth")
    code, stdout, stderr = run_cli(
        ["replay", str(FIXTURE), "--stores", "turns", "--budget", "300", "--k", "10"]
        + ["--breadth", "--out", str(out)]
    )
    assert code == 0, stderr
    return json.loads((out / "report.json").read_text(encoding="utf-8")), stdout, out


def test_cli_breadth_scores_recaps_beside_the_baselines(
    breadth_report: tuple[dict[str, Any], str, Path],
) -> None:
    report, stdout, out = breadth_report
    assert "breadth questions" in stdout and "coverage" in stdout
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "## Breadth questions (recaps)" in summary
    for config in ("turns", "similarity", "recent"):
        assert f"| recap-session | {config} |" in summary
        assert f"| recap-period | {config} |" in summary
    recaps = [q for q in report["questions"] if q["category"].startswith("recap")]
    assert {q["category"] for q in recaps} == {RECAP_SESSION, RECAP_PERIOD}
    assert len(recaps) == 10 * 3
    for question in recaps:
        scores = question["scores"]
        assert 0.0 <= scores["coverage"] <= 1.0
        assert scores["evidence_recall"] is None and scores["answer_in_context"] is None
        assert (scores["rouge_l"] is not None) == (question["category"] == RECAP_SESSION)
    by_name = {c["name"]: c for c in report["configurations"]}
    turns = by_name["turns"]
    # The point questions alone make the overall row; the recaps are scored apart.
    assert turns["overall"]["questions"] == 3
    assert turns["by_category"][RECAP_SESSION]["questions"] == 6
    assert 0 < turns["by_category"][RECAP_PERIOD]["coverage"] <= 1
    assert turns["by_category"][RECAP_SESSION]["rouge_l"] > 0


def test_without_breadth_no_recap_is_asked(tmp_path: Path) -> None:
    code, stdout, stderr = run_cli(
        ["replay", str(FIXTURE), "--stores", "turns", "--budget", "300", "--out", str(tmp_path)]
    )
    assert code == 0, stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert all(not q["category"].startswith("recap") for q in report["questions"])
    assert "breadth questions" not in stdout
