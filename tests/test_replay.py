"""The replay end to end: the CLI on a small hand-made conversation, resuming, the model path.

The fixture (tests/fixtures/replay_mini.json) is a four-session dialogue in the LoCoMo
format in which Nora moves from Leeds to Bristol and changes job from baker to florist,
with distractors about other people, an image turn, and one question of each kind.
tests/fixtures/replay_annotated.json holds two short dialogues whose questions annotate
the turns asserting the old value (``stale_evidence``) and stating the change: Ana moves
from Porto to Madrid and leaves her dog Rex with her parents, while others still mention
Porto and Rex; Dev's sister moves from Oslo to Bergen and Carla swaps her Fiat for a Volvo.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import re
import sqlite3
import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentmem.cli import main
from agentmem.errors import ConfigError, InputError, ModelResponseError
from agentmem.extras import install_command
from agentmem.factory import expand_store_names
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder
from agentmem.replay import Report, load_samples, parse_configurations, replay
from agentmem.replay.cache import request_key
from agentmem.replay.dataset import Question, parse_dialogue_time
from agentmem.replay.systems import check_configurations
from agentmem.storage.records import Records
from agentmem.testing import ScriptedChatModel
from agentmem.types import Message

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "replay_mini.json"
ANNOTATED = ROOT / "tests" / "fixtures" / "replay_annotated.json"
SHARED_DATA = ROOT.parent / "shared" / "data"
CONFIGS = ("turns", "recent", "similarity")


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdin=io.StringIO(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def replay_cli(out: Path) -> tuple[int, str, str]:
    return run_cli(
        ["replay", str(FIXTURE), "--stores", "turns", "--budget", "200", "--out", str(out)]
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Replay the fixture once through the CLI; return the --out folder and stdout."""
    out = tmp_path_factory.mktemp("replay")
    code, stdout, stderr = replay_cli(out)
    assert code == 0, stderr
    return out, stdout


def report_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def question(report: dict[str, Any], config: str, text: str) -> dict[str, Any]:
    [found] = [q for q in report["questions"] if q["config"] == config and q["question"] == text]
    return found


def turn_count(out: Path, config: str) -> int:
    records = Records(out / "data" / config / "agentmem.sqlite")
    try:
        return records.count_turns("mini-01")
    finally:
        records.close()


def progress_rows(out: Path) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(out / "progress.sqlite")) as db, db:
        return {
            "sessions": sorted(
                db.execute("SELECT config, sample_id, session, stats FROM sessions")
            ),
            "answers": sorted(db.execute("SELECT config, question_id, output FROM answers")),
        }


# -- loading ----------------------------------------------------------------------------


def test_dialogue_times_are_parsed_from_locomo_strings() -> None:
    assert parse_dialogue_time("1:56 pm on 8 May, 2023") == datetime(2023, 5, 8, 13, 56)
    assert parse_dialogue_time("10:15 am on 2 March, 2023") == datetime(2023, 3, 2, 10, 15)
    with pytest.raises(InputError, match="session time"):
        parse_dialogue_time("sometime in spring")


def test_fixture_loads_with_dialogue_time_captions_and_gold_kept_apart() -> None:
    [sample] = load_samples([FIXTURE])
    conversation = sample.conversation
    # session_5 has a date but no turns: it is not a session.
    assert [s.number for s in conversation.sessions] == [1, 2, 3, 4]
    first = conversation.sessions[0].turns
    assert first[0].timestamp == datetime(2023, 3, 2, 10, 15)
    assert first[1].timestamp > first[0].timestamp  # turns keep their order in time
    assert first[6].text.endswith("[shares a photo: a photo of a tabby cat asleep on a green sofa]")
    assert conversation.ends_at == conversation.sessions[-1].turns[-1].timestamp
    # What the system may see holds no gold fields; the gold is aligned beside it.
    assert set(Question.__dataclass_fields__) == {"id", "sample_id", "text"}
    gold = dict(zip([q.text for q in sample.questions], sample.gold, strict=True))
    assert gold["Which cities has Nora lived in?"].evidence == ("D1:3", "D3:2")
    assert gold["Where does Nora live now?"].stale == ("Leeds",)
    assert gold["What did Felix's cousin bake for the wedding?"].answer is None


def test_annotations_load_absent_apart_from_empty_with_the_subjects_turns(tmp_path: Path) -> None:
    ana, dev = load_samples([ANNOTATED])
    moved, dog, work, when = ana.gold
    assert moved.stale_evidence == ("D1:1",) and moved.change_evidence == ("D2:1", "D2:3")
    assert moved.distractor_evidence is None and work.distractor_evidence == ("D1:2",)
    assert dog.stale_evidence == ("D1:3",) and work.stale_evidence is None
    assert when.stale_evidence is None and when.subject_turns == frozenset()
    # The subject is whoever spoke the stale_evidence turns: Ana here, Dev for his sister.
    said = {t.dia_id: t.speaker for s in ana.conversation.sessions for t in s.turns}
    assert moved.subject_turns == {d for d, speaker in said.items() if speaker == "Ana"}
    assert dev.gold[0].subject_turns == {"D1:1", "D1:3", "D2:1", "D2:3"}
    # An empty list is an annotation (nothing asserts the old value), not its absence.
    [raw, _] = json.loads(ANNOTATED.read_text(encoding="utf-8"))
    raw["qa"][0]["stale_evidence"] = []
    raw["qa"][0]["change_evidence"] = None
    path = tmp_path / "empty.json"
    path.write_text(json.dumps([raw]), encoding="utf-8")
    [sample] = load_samples([path])
    assert sample.gold[0].stale_evidence == () and sample.gold[0].subject_turns == frozenset()
    assert sample.gold[0].change_evidence is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"D1:1": True}, "stale_evidence must be a list, not a JSON object"),
        (["D1:1", ["D1:3"]], "stale_evidence must be text, not a JSON array"),
        (["D1:1", "D9:9"], "stale_evidence names D9:9, which the dialogue does not have"),
    ],
)
def test_malformed_annotations_are_refused(tmp_path: Path, value: Any, message: str) -> None:
    [raw, _] = json.loads(ANNOTATED.read_text(encoding="utf-8"))
    raw["qa"][0]["stale_evidence"] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([raw]), encoding="utf-8")
    with pytest.raises(InputError, match=f"anno-00: question 0: {re.escape(message)}"):
        load_samples([path])


def test_all_is_every_structure_turns_first_and_all_minus_one_leaves_one_out() -> None:
    assert expand_store_names(["all"]) == ["turns", "memtree", "summary", "graph", "memo"]
    assert expand_store_names(["all-memtree"]) == ["turns", "summary", "graph", "memo"]
    assert expand_store_names(["all-turns", "turns"]) == [
        "memtree",
        "summary",
        "graph",
        "memo",
        "turns",
    ]
    assert expand_store_names(["all-nosuch"]) == ["all-nosuch"]  # left for the check to refuse
    with pytest.raises(ConfigError, match="all-nosuch"):
        check_configurations(["all-nosuch"])


def test_configurations_add_the_baselines_once() -> None:
    assert parse_configurations("all,turns") == ["all", "turns", "recent", "similarity"]
    assert parse_configurations("memtree+graph, turns,turns,recent") == [
        "memtree+graph",
        "turns",
        "recent",
        "similarity",
    ]
    with pytest.raises(ConfigError):
        parse_configurations("turns;drop")


def write_copies(path: Path, ids: list[str]) -> Path:
    """Write a file holding the fixture's sample once per id, in that order."""
    [sample] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    copies = []
    for sample_id in ids:
        copied = copy.deepcopy(sample)
        copied["sample_id"] = sample_id
        copies.append(copied)
    path.write_text(json.dumps(copies), encoding="utf-8")
    return path


def test_split_keeps_the_even_or_odd_samples_of_each_file(tmp_path: Path) -> None:
    first = write_copies(tmp_path / "first.json", ["a0", "a1", "a2", "a3", "a4"])
    second = write_copies(tmp_path / "second.json", ["b0", "b1"])

    def ids(split: Any) -> list[str]:
        return [s.conversation.sample_id for s in load_samples([first, second], split=split)]

    # The index counts within each file, from 0: "b0" is even although 5 samples precede it.
    assert ids("even") == ["a0", "a2", "a4", "b0"]
    assert ids("odd") == ["a1", "a3", "b1"]
    assert ids(None) == ["a0", "a1", "a2", "a3", "a4", "b0", "b1"]
    assert ids("odd") == ids("odd")  # the same every time
    with pytest.raises(InputError, match="unknown split 'half'"):
        load_samples([first], split="half")  # type: ignore[arg-type]


def test_cli_split_replays_only_the_chosen_samples(tmp_path: Path) -> None:
    data = write_copies(tmp_path / "two.json", ["dev-0", "dev-1"])
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        ["replay", str(data), "--stores", "turns", "--budget", "200", "--split", "odd"]
        + ["--out", str(out)]
    )
    assert code == 0, stderr
    report = report_of(out)
    assert report["settings"]["split"] == "odd"
    assert report["settings"]["conversations"] == ["dev-1"]
    assert {q["sample_id"] for q in report["questions"]} == {"dev-1"}
    assert "split odd" in (out / "summary.md").read_text(encoding="utf-8")
    with pytest.raises(SystemExit):
        run_cli(["replay", str(data), "--split", "third", "--out", str(out)])


@pytest.mark.skipif(not (SHARED_DATA / "locomo").is_dir(), reason="../shared/data is absent")
def test_shared_dev_data_loads() -> None:
    samples = load_samples(
        [SHARED_DATA / "locomo" / "locomo_dev.json", SHARED_DATA / "scenarios" / "stale_dev.json"]
    )
    assert [s.conversation.sample_id for s in samples][:2] == ["conv-26", "conv-30"]
    assert all(len(s.questions) == len(s.gold) for s in samples)
    kinds = {g.kind for s in samples for g in s.gold}
    assert {"update", "keep", "when"} <= kinds
    assert all(":" in e for s in samples for g in s.gold for e in g.evidence)
    assert all(g.stale_evidence is None for s in samples for g in s.gold)


@pytest.mark.skipif(not (SHARED_DATA / "scenarios").is_dir(), reason="../shared/data is absent")
def test_shared_natural_scenarios_load_with_their_annotations() -> None:
    samples = load_samples([SHARED_DATA / "scenarios" / "natural_dev.json"])
    stale = [g for s in samples for g in s.gold if g.stale]
    assert stale and all(g.stale_evidence and g.subject_turns for g in stale)
    assert any(g.distractor_evidence for s in samples for g in s.gold if g.kind == "keep")


# -- the CLI end to end -------------------------------------------------------------------


def test_cli_replay_writes_the_report_files(replayed: tuple[Path, str]) -> None:
    out, stdout = replayed
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| turns |" in summary and "| similarity |" in summary and "| recent |" in summary
    assert "stale leak" in summary.lower()
    assert "## Stale-fact scenarios by kind" in summary
    assert "| keep | turns |" in summary and "| update | similarity |" in summary
    assert "false invalidation" in summary.lower() and "current in top 3" in summary.lower()
    for config in CONFIGS:
        assert config in stdout
    assert "by scenario kind" in stdout and "false invalidations" in stdout
    report = report_of(out)
    assert [c["name"] for c in report["configurations"]] == list(CONFIGS)
    assert len(report["questions"]) == 8 * len(CONFIGS)
    for config in report["configurations"]:
        overall = config["overall"]
        for metric in ("evidence_recall", "answer_in_context", "keep_recall"):
            assert 0.0 <= overall[metric] <= 1.0, (config["name"], metric)
        assert 0 < overall["context_tokens"] <= 200
        assert config["ingested_turns"] == 26
        assert config["turns_per_second"] > 0
        assert config["recall_p50_ms"] <= config["recall_p95_ms"]
        assert overall["f1"] is None  # no model, no answers
        assert set(config["by_category"]) == {
            "multi-hop",
            "temporal",
            "open-domain",
            "single-hop",
            "adversarial",
        }


def test_context_items_carry_provenance_and_dialogue_time(replayed: tuple[Path, str]) -> None:
    report = report_of(replayed[0])
    found = question(report, "turns", "Where does Nora live now?")
    assert found["scores"]["evidence_recall"] == 1.0
    [moved] = [i for i in found["items"] if i["text"].startswith("Nora: I moved to Bristol")]
    assert moved["dia_ids"] == ["D3:2"] and moved["store"] == "turns" and moved["current"]
    assert moved["valid_from"] == "2023-06-14T14:05:05"  # the session's time + one turn
    assert {i["store"] for i in found["items"]} == {"turns", "facts"}


def test_fact_tracking_keeps_stale_values_out_and_similarity_does_not(
    replayed: tuple[Path, str],
) -> None:
    report = report_of(replayed[0])
    summaries = {c["name"]: c["overall"] for c in report["configurations"]}
    assert summaries["turns"]["stale_questions"] == 2
    assert summaries["turns"]["value_questions"] == 4  # two update, two keep questions
    assert summaries["turns"]["keep_questions"] == 2
    assert summaries["turns"]["stale_leak_items"] == 0
    assert summaries["similarity"]["stale_leak_questions"] == 2
    # No stale_evidence in this file: the gold rule does not apply, and says so.
    assert summaries["similarity"]["gold_stale_questions"] == 0
    assert summaries["similarity"]["gold_stale_leak_rate"] is None
    assert "| update | similarity | 2 | 100.0% | 100.0% | – | 2/2 (2 items) |" in (
        replayed[0] / "summary.md"
    ).read_text(encoding="utf-8")
    leaked = question(report, "similarity", "Where does Nora live now?")
    assert any("I live in Leeds" in i["text"] and i["current"] for i in leaked["items"])
    assert question(report, "turns", "What pet does Nora have?")["scores"]["keep_recalled"]


def test_rerun_continues_without_ingesting_or_asking_again(replayed: tuple[Path, str]) -> None:
    out, _ = replayed
    before = progress_rows(out)
    assert len(before["sessions"]) == 4 * len(CONFIGS)
    assert len(before["answers"]) == 8 * len(CONFIGS)
    code, _, stderr = replay_cli(out)
    assert code == 0, stderr
    assert progress_rows(out) == before  # nothing ingested, nothing asked again
    assert all(turn_count(out, config) == 26 for config in CONFIGS)


def test_an_interrupted_session_is_finished_without_storing_turns_twice(
    replayed: tuple[Path, str],
) -> None:
    out, _ = replayed
    # As if the run had stopped after storing session 4 but before recording it.
    with closing(sqlite3.connect(out / "progress.sqlite")) as db, db:
        db.execute("DELETE FROM sessions WHERE config = 'turns' AND session = 4")
        db.execute("DELETE FROM answers WHERE config = 'turns'")
    code, _, stderr = replay_cli(out)
    assert code == 0, stderr
    rows = progress_rows(out)
    assert ("turns", "mini-01", 4) in [row[:3] for row in rows["sessions"]]
    assert len(rows["answers"]) == 8 * len(CONFIGS)
    assert turn_count(out, "turns") == 26
    assert report_of(out)["configurations"][0]["overall"]["stale_leak_items"] == 0


def test_cli_scores_both_stale_rules_on_each_half_of_an_annotated_file(tmp_path: Path) -> None:
    halves = {}
    for split in ("even", "odd"):
        out = tmp_path / split
        code, stdout, stderr = run_cli(
            ["replay", str(ANNOTATED), "--stores", "turns", "--split", split, "--out", str(out)]
        )
        assert code == 0, stderr
        for header in ("by scenario kind", "stale leaks (gold rule)", "stale leaks (any mention)"):
            assert header in stdout, (split, header)
        assert "stale above current" in stdout
        halves[split] = report_of(out)
    for split, report in halves.items():
        for config in report["configurations"]:
            assert config["overall"]["gold_stale_questions"] == 2, (split, config["name"])
            assert config["overall"]["ranked_questions"] == 1 + (split == "odd")
    assert set(halves["odd"]["configurations"][0]["by_kind"]) == {"third-party", "update"}
    # Similarity puts every turn of Ana's short dialogue in the context: the old value in
    # her goodbye to Porto, in Ben's trip to Porto and in her missing Porto's bakeries
    # counts by any mention, but only the turn that asserted it counts by the gold rule.
    even = halves["even"]
    moved = question(even, "similarity", "Where does Ana live now?")
    assert (moved["scores"]["stale_leaks"], moved["scores"]["gold_stale_leaks"]) == (4, 1)
    assert moved["stale_evidence"] == ["D1:1"]
    dog = question(even, "similarity", "Does Ana still have her dog at home?")
    assert (dog["scores"]["stale_leaks"], dog["scores"]["gold_stale_leaks"]) == (2, 1)
    assert dog["scores"]["stale_above_current"] is None  # yes/no: no current value to rank
    # Recent turns come in dialogue order: "I live in Porto" is above "In Madrid".
    assert question(even, "recent", "Where does Ana live now?")["scores"]["stale_above_current"]
    summary = (tmp_path / "even" / "summary.md").read_text(encoding="utf-8")
    assert "| negation | similarity | 1 | 100.0% | – | 1/1 (1 items) | 1/1 (2 items) |" in summary


def test_cli_rejects_unknown_structures_and_bad_numbers(tmp_path: Path) -> None:
    code, _, err = run_cli(["replay", str(FIXTURE), "--stores", "nosuch", "--out", str(tmp_path)])
    assert code == 2 and "unknown memory structure 'nosuch'" in err
    code, _, err = run_cli(["replay", str(FIXTURE), "--budget", "0", "--out", str(tmp_path)])
    assert code == 2 and "--budget must be positive" in err
    code, _, err = run_cli(["replay", str(tmp_path / "missing.json"), "--out", str(tmp_path)])
    assert code == 2 and "cannot read" in err


# -- answering with a model ----------------------------------------------------------------


def scripted_answers(messages: list[Message]) -> str | dict[str, Any]:
    """A stand-in model: judges say correct, the answerer answers from its prompt."""
    system, user = messages[0].content, messages[-1].content
    if "grade answers" in system:
        return {"correct": "Bristol" in user.split("Candidate answer:")[1], "reason": "compared"}
    if "Where does Nora live" in user:
        return "Bristol" if "Bristol" in system else "Leeds"
    return "Not mentioned in the conversation"


def test_model_answers_are_scored_like_locomo_retried_and_cached(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    shared = CachingEmbedder(embedder)

    def run(model: ScriptedChatModel) -> Report:
        return replay(
            [FIXTURE],
            configurations="turns",
            out_dir=tmp_path,
            budget=200,
            model=model,
            judge=True,
            embedder=shared,
        )

    # The very first answer fails: it scores as wrong, and is not recorded as done.
    first = ScriptedChatModel([ModelResponseError("boom", retryable=False)], default=None)
    first.add(*[scripted_answers] * 60)
    report = run(first)
    asked = [request_key(first.name, c.messages, c.schema) for c in first.calls]
    judged = [c for c in first.calls if c.schema is not None]
    assert len(asked) - len(judged) >= 8 and judged  # answers, then judgements
    assert len(set(asked)) == len(asked)  # the cache never lets a request through twice
    scored = {(q.output.config, q.output.question): q for q in report.questions}
    failed = scored[("turns", "Where does Nora live now?")]
    assert failed.output.error and failed.f1 == 0.0
    adversarial = scored[("turns", "What did Felix's cousin bake for the wedding?")]
    assert adversarial.f1 == 1.0  # LoCoMo: "not mentioned" is right for category 5
    assert scored[("turns", "What pet does Nora have?")].f1 == 0.0
    assert "| F1 |" in (tmp_path / "summary.md").read_text(encoding="utf-8")

    # A re-run asks only the failed question again (its judgement may come from the cache).
    second = ScriptedChatModel([scripted_answers] * 2, default=None)
    report = run(second)
    assert sum(c.schema is None for c in second.calls) == 1
    where = report.questions[0]
    assert where.output.question == "Where does Nora live now?" and where.output.error is None
    assert where.output.answer == "Bristol" and where.f1 == 1.0 and where.exact
    assert where.judged_correct is True
    assert report.summary("turns").overall.f1 is not None

    # A fresh run over the same --out (progress forgotten) asks the cache, not the model.
    (tmp_path / "progress.sqlite").unlink()
    silent = ScriptedChatModel([], default=None)
    again = run(silent)
    assert silent.calls == []
    assert [q.f1 for q in again.questions] == [q.f1 for q in report.questions]


def test_without_matplotlib_a_replay_writes_its_scores_and_says_why_there_is_no_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    code, stdout, stderr = replay_cli(tmp_path)
    assert code == 0, stderr
    assert (tmp_path / "report.json").is_file() and (tmp_path / "summary.md").is_file()
    assert not (tmp_path / "chart.png").exists()
    assert install_command("replay") in " ".join(stderr.split())  # however rich wraps it


# -- the example ---------------------------------------------------------------------------


def test_example_replays_the_fixture(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "replay_locomo", ROOT / "examples" / "replay_locomo.py"
    )
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main([str(FIXTURE), "--stores", "turns", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.json").is_file() and (tmp_path / "chart.png").is_file()
