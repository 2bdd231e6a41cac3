"""Model faults: a replay against a fake OpenAI-compatible server that fails 30% of calls.

The real CLI (``agentmem replay --model openai:fake-chat``, the endpoint in
``OPENAI_BASE_URL``, a 1 s client timeout and two attempts per call from a TOML file)
replays a four-session, 43-turn LoCoMo-format dialogue (tests/fixtures/replay_faults.json)
into every structure built by the model. The server answers each structured-output request
with a valid instance of its schema (:func:`~agentmem.testing.schema_reply`) and, with a
fixed seed, injects a fault into 30% of requests: a timeout (a delay past the client's
timeout), a 5xx status, a body cut short, content that is not JSON, a body that is not JSON.
The replay has no streamed calls, so a truncation cuts a JSON body rather than a stream.
The first four requests also fail, so that the first fact extraction and the first
structure build fail whatever the random draws.

The replay must finish, store every turn, count the failures where the report shows them
(checked against what the server injected) and retry them: queued builds are retried after
the conversation, and a second run with the faults off leaves none queued.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentmem.cli import main
from agentmem.replay import load_samples
from agentmem.storage.records import Records
from agentmem.testing import FakeOpenAIServer, Fault, RecordedRequest, schema_reply

#: A heavy suite: run with ``pytest -m heavy`` (CI runs it after the default run).
pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "replay_faults.json"
FAULT_RATE = 0.3
SEED = 16
CLIENT_TIMEOUT = 1.0
RANDOM_FAULTS = (
    Fault.delay(CLIENT_TIMEOUT * 2),
    Fault.status(500),
    Fault.status(503),
    Fault.truncate(),
    Fault.truncate(clean=True),
    Fault.malformed(),
    Fault.malformed(raw=True),
)
#: Two attempts each: the first fact extraction fails, then the next (structure) build.
FIRST_FAULTS = (Fault.status(500), Fault.status(503), Fault.status(502), Fault.status(500))
STRUCTURES = ("memtree", "graph", "memo", "summary")
_NUMBERED = re.compile(r"^\[(\d+)\]", re.MULTILINE)


@dataclass
class Run:
    """One CLI replay: its exit code, report, and the requests the server got meanwhile."""

    code: int
    stderr: str
    report: dict[str, Any]
    requests: list[RecordedRequest]

    def summary(self, config: str) -> dict[str, Any]:
        [found] = [c for c in self.report["configurations"] if c["name"] == config]
        return found

    def chat(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]


@dataclass
class Replayed:
    out: Path
    first: Run
    second: Run
    queued_after_first: int  # pending_work rows of the model-built configuration


def _database(out: Path, config: str) -> Path:
    [folder] = [f for f in (out / "data").iterdir() if f.name.split("@")[0] == config]
    return folder / "agentmem.sqlite"


def _queued(out: Path) -> int:
    records = Records(_database(out, "all"))
    try:
        return sum(len(records.pending_work(store)) for store in STRUCTURES)
    finally:
        records.close()


def _replay(out: Path, config: Path, server: FakeOpenAIServer) -> Run:
    seen = len(server.requests)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(
        [
            "replay",
            str(FIXTURE),
            "--stores",
            "all",
            "--model",
            "openai:fake-chat",
            "--config",
            str(config),
            "--out",
            str(out),
        ],
        stdin=io.StringIO(),
        stdout=stdout,
        stderr=stderr,
    )
    report_file = out / "report.json"
    report = json.loads(report_file.read_text(encoding="utf-8")) if report_file.exists() else {}
    return Run(code, stderr.getvalue(), report, server.requests[seen:])


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    """Replay once with faults, then once more (resuming) with the faults off."""
    home = tmp_path_factory.mktemp("faults")
    config = home / "agentmem.toml"
    config.write_text(f"timeout = {CLIENT_TIMEOUT}\nretries = 2\n", encoding="utf-8")
    out = home / "out"
    with (
        FakeOpenAIServer(
            default_reply=schema_reply,
            fault_rate=FAULT_RATE,
            seed=SEED,
            random_faults=RANDOM_FAULTS,
        ) as server,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("OPENAI_BASE_URL", server.base_url)
        env.setenv("AGENTMEM_HOME", str(home / "home"))
        for name in ("OPENAI_API_KEY", "AGENTMEM_CONFIG", "AGENTMEM_MODEL_BUILDERS"):
            env.delenv(name, raising=False)
        server.fail(*FIRST_FAULTS)
        first = _replay(out, config, server)
        queued = _queued(out)
        server.fault_rate = 0.0
        second = _replay(out, config, server)
    yield Replayed(out, first, second, queued)


def _breaks_the_call(request: RecordedRequest) -> bool:
    """Whether the request's fault fails the call (non-JSON text is a fine plain answer)."""
    fault = request.fault
    if fault is None:
        return False
    plain_text_answer = fault.kind == "malformed" and not fault.raw
    return not (plain_text_answer and "response_format" not in request.body)


def _schema_keys(request: RecordedRequest) -> set[str]:
    response_format = request.body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    return set(schema.get("properties") or ())


def _turn_ids(request: RecordedRequest) -> set[int]:
    messages = request.body.get("messages") or []
    return {int(n) for m in messages for n in _NUMBERED.findall(str(m.get("content", "")))}


def _asked_again(requests: list[RecordedRequest], key: str) -> tuple[set[int], set[int]]:
    """Return the turns of failed ``key`` builds, and those of answered ones."""
    builds = [r for r in requests if key in _schema_keys(r)]
    failed = set().union(*(_turn_ids(r) for r in builds if _breaks_the_call(r)))
    answered = set().union(*(_turn_ids(r) for r in builds if r.fault is None))
    return failed, answered


# -- the run with faults ------------------------------------------------------------------


def test_replay_with_faults_finishes_and_writes_the_report(replayed: Replayed) -> None:
    first = replayed.first
    assert first.code == 0, first.stderr
    assert first.report["settings"]["builds_with_model"] is True
    assert first.report["settings"]["model"] == "openai:fake-chat"
    assert [c["name"] for c in first.report["configurations"]] == ["all", "recent", "similarity"]
    assert (replayed.out / "summary.md").read_text(encoding="utf-8").count("failed model calls")


def test_every_kind_of_fault_hit_about_30_percent_of_calls(replayed: Replayed) -> None:
    chat = replayed.first.chat()
    random_part = chat[len(FIRST_FAULTS) :]
    faulted = [r for r in random_part if r.fault is not None]
    kinds = {(r.fault.kind, r.fault.raw) for r in faulted if r.fault is not None}
    assert kinds >= {
        ("delay", False),
        ("status", False),
        ("truncate", False),
        ("malformed", False),
        ("malformed", True),
    }
    assert len(random_part) >= 40
    assert 0.15 <= len(faulted) / len(random_part) <= 0.45
    assert any("response_format" in r.body for r in faulted)


def test_every_turn_is_stored_in_every_configuration(replayed: Replayed) -> None:
    [sample] = load_samples([FIXTURE])
    dia_ids = {t.dia_id for s in sample.conversation.sessions for t in s.turns}
    assert len(dia_ids) == 43
    for config in ("all", "recent", "similarity"):
        records = Records(_database(replayed.out, config))
        try:
            turns = records.turns(sample.conversation.sample_id)
        finally:
            records.close()
        assert sorted(t.external_id or "" for t in turns) == sorted(dia_ids), config
        assert replayed.first.summary(config)["ingested_turns"] == 43


def test_failed_calls_and_retries_match_what_the_server_injected(replayed: Replayed) -> None:
    chat = replayed.first.chat()
    counted = replayed.first.report["model_calls"]
    breaking = [r for r in chat if _breaks_the_call(r)]
    # Every request is a call past the cache or a retry of one ...
    assert len(chat) == counted["calls"] + counted["retries"]
    # ... and every injected fault failed an attempt: retried, or failing the call at last.
    assert len(breaking) == counted["retries"] + counted["failures"]
    assert counted["retries"] >= 5
    assert counted["failures"] >= 2  # at least the two forced ones
    assert replayed.first.report["model_cache"]["misses"] == counted["calls"]


def test_failed_builds_are_counted_and_queued_then_retried(replayed: Replayed) -> None:
    built = replayed.first.summary("all")
    assert built["model_failures"] >= 2
    assert built["model_retries"] >= 1
    assert built["build_failures"] >= 2  # the forced extraction and structure build
    assert built["builds_queued"] >= 1
    # After the conversation, the queue was retried: what failed again is still queued.
    assert built["builds_retried"] + built["builds_pending"] == built["builds_queued"]
    assert built["builds_retried"] >= 1
    assert built["builds_pending"] == replayed.queued_after_first
    for baseline in ("recent", "similarity"):
        assert replayed.first.summary(baseline)["build_failures"] == 0


def test_failed_memos_and_summaries_were_asked_again_and_answered(replayed: Replayed) -> None:
    requests = replayed.first.chat() + replayed.second.chat()
    for key in ("memos", "sentences"):
        failed, answered = _asked_again(requests, key)
        assert failed <= answered, key


def test_failed_fact_extractions_were_asked_again_and_answered(replayed: Replayed) -> None:
    requests = replayed.first.chat() + replayed.second.chat()
    failed, answered = _asked_again(requests, "facts")
    assert failed  # the forced failure of the first extraction
    assert failed <= answered


# -- the second run, faults off -----------------------------------------------------------


def test_second_run_retries_what_stayed_queued_and_leaves_nothing(replayed: Replayed) -> None:
    first, second = replayed.first, replayed.second
    assert second.code == 0, second.stderr
    assert all(r.fault is None for r in second.requests)
    built = second.summary("all")
    assert built["builds_pending"] == 0
    assert built["builds_retried"] == first.summary("all")["builds_pending"]
    assert _queued(replayed.out) == 0


def test_memory_built_by_the_model_is_present(replayed: Replayed) -> None:
    # Whatever the model wrote (per the server's answers) shows up in each structure.
    answered = [r for r in replayed.first.chat() + replayed.second.chat() if r.fault is None]
    written: set[str] = set()
    for request in answered:
        reply = schema_reply(request.body)
        if isinstance(reply, dict):
            written |= _strings(reply)
    records = Records(_database(replayed.out, "all"))
    try:
        user = load_samples([FIXTURE])[0].conversation.sample_id
        for store in ("memtree", "graph", "memo", "summary"):
            texts = [i.text for i in records.store_items(store, user)]
            assert any(w in text for text in texts for w in written), store
    finally:
        records.close()


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if len(value.split()) >= 3 else set()
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value))
    return set()
