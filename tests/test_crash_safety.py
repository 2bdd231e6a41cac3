"""Crash safety: processes killed with SIGKILL at random points lose and duplicate nothing.

The replay and the chat run as real processes; the test kills them at random moments and
restarts them until the work is done, then compares what is on disk with an uninterrupted
run. Embeddings come from the fake OpenAI-compatible server over loopback HTTP, so a
restart costs the interpreter and its imports, not a model load; what is tested (the
records, the vector index and the resume logic) is the same as with MiniLM.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from crash_snapshot import assert_same, snapshot

from agentmem.storage.records import Records
from agentmem.testing import FakeOpenAIServer, schema_reply

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals"),
]

KILLS = 20
SESSIONS = 6  # per conversation
LINES = 14  # per session
CITIES = ["Leeds", "Bristol", "Porto", "Lyon", "Denver", "Austin", "Kyoto", "Oslo"]
JOBS = ["baker", "florist", "nurse", "teacher", "welder", "pilot", "chemist", "editor"]
PETS = ["a cat named Miso", "a dog named Rex", "a parrot named Kiwi", "two goldfish"]
HOBBIES = ["climbing", "chess", "pottery", "salsa", "running", "baking bread", "knitting"]


def conversation(sample_id: str, names: tuple[str, str], seed: int, sessions: int) -> dict:
    """Return a LoCoMo-format conversation whose facts change from session to session."""
    rng = random.Random(seed)
    a, b = names
    body: dict[str, object] = {"speaker_a": a, "speaker_b": b}
    start = datetime(2023, 1, 7, 10, 0)
    city, job = rng.choice(CITIES), rng.choice(JOBS)
    for number in range(1, sessions + 1):
        when = start + timedelta(days=9 * number)
        body[f"session_{number}_date_time"] = when.strftime("%-I:%M %p on %-d %B, %Y")
        lines: list[str] = []
        if number > 1 and number % 2 == 0:
            city = rng.choice([c for c in CITIES if c != city])
            lines.append(f"Big news: I moved to {city} last week.")
        if number > 1 and number % 3 == 0:
            job = rng.choice([j for j in JOBS if j != job])
            lines.append(f"I quit my old job, I work as a {job} now.")
        lines.append(f"I live in {city} and I work as a {job}.")
        while len(lines) < LINES:
            lines.append(
                rng.choice(
                    [
                        f"I have {rng.choice(PETS)} at home.",
                        f"Lately I spend my weekends on {rng.choice(HOBBIES)}.",
                        f"My sister visited me and we went {rng.choice(HOBBIES)}.",
                        f"Did you try {rng.choice(HOBBIES)} yet? It helps me relax.",
                        f"The weather in {rng.choice(CITIES)} was lovely on our trip.",
                    ]
                )
            )
        body[f"session_{number}"] = [
            {"speaker": (a, b)[i % 2], "dia_id": f"D{number}:{i + 1}", "text": text}
            for i, text in enumerate(lines)
        ]
    question = {"question": f"Where does {a} live?", "answer": city, "evidence": [], "category": 4}
    return {"sample_id": sample_id, "conversation": body, "qa": [question]}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(embedding_dimension=48) as fake:
        yield fake


def environment(server: FakeOpenAIServer, home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "AGENTMEM_HOME": str(home),
        "AGENTMEM_EMBEDDER": "openai:fake-embedding",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "test",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def replay_command(dataset: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agentmem.cli",
        "replay",
        str(dataset),
        "--stores",
        "all",
        # No questions: a recall invalidates stale items it happens to retrieve, and what
        # it retrieves depends on consolidated wording, which batching may change.
        "--limit-questions",
        "0",
        "--model",
        "none",
        "--out",
        str(out),
    ]


#: Dialogues whose coreference ("my daughter Lily" ... "She practises every evening") and
#: changes of home and job a resumed replay must fold in exactly as an uninterrupted one.
DEMO = Path(__file__).resolve().parents[1] / "examples" / "data" / "demo_dialogues.json"


def dataset_with_changes(folder: Path) -> Path:
    """Write the crash tests' dialogues (changing facts, and the demo's) to ``folder``."""
    samples = [
        conversation("conv-a", ("Nora", "Felix"), seed=1, sessions=SESSIONS),
        conversation("conv-b", ("Omar", "Iris"), seed=2, sessions=SESSIONS),
        *json.loads(DEMO.read_text(encoding="utf-8")),
    ]
    dataset = folder / "dialogues.json"
    dataset.write_text(json.dumps(samples), encoding="utf-8")
    return dataset


def test_replay_killed_twenty_times_loses_and_duplicates_nothing(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    """Killed at random and resumed, a replay builds what an uninterrupted one builds.

    Every record (items of every structure, consolidated ones included, MemTree's inner
    nodes aside), its sources and validity, and every vector with its partition and
    metadata, compared with an uninterrupted run's (tests/crash_snapshot.py).
    """
    dataset = dataset_with_changes(tmp_path)
    env = environment(server, tmp_path / "home")

    started = time.perf_counter()
    reference = subprocess.run(
        replay_command(dataset, tmp_path / "reference"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    full = time.perf_counter() - started
    assert reference.returncode == 0, reference.stderr
    data = Path("data/all")
    expected = snapshot(tmp_path / "reference" / data)
    demo = json.loads(DEMO.read_text(encoding="utf-8"))
    demo_turns = sum(
        len(said)
        for sample in demo
        for said in sample["conversation"].values()
        if isinstance(said, list)
    )
    turns = expected["turns"]
    assert isinstance(turns, dict) and len(turns) == 4
    assert sum(len(t) for t in turns.values()) == 2 * SESSIONS * LINES + demo_turns
    assert expected["pending"] == 0

    rng = random.Random(20261126)
    kills = series = 0
    out = tmp_path / f"crashed-{series}"
    while kills < KILLS:
        process = subprocess.Popen(
            replay_command(dataset, out),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            process.wait(timeout=rng.uniform(0.4, full))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            continue
        # It finished before the kill: check this series, then start a fresh one.
        assert process.returncode == 0
        assert_same(snapshot(out / data), expected)
        series += 1
        out = tmp_path / f"crashed-{series}"

    finish = subprocess.run(
        replay_command(dataset, out), env=env, capture_output=True, text=True, timeout=300
    )
    assert finish.returncode == 0, finish.stderr
    assert_same(snapshot(out / data), expected)
    assert kills >= KILLS
    assert_every_item_has_its_vector(out / data / "agentmem.sqlite")


#: The vector collection each structure's items of a kind live in.
COLLECTIONS = {
    ("graph", "passage"): "graph-passage",
    ("graph", "fact"): "graph-fact",
    ("graph", "entity"): "graph-fact",
}


def assert_every_item_has_its_vector(database: Path) -> None:
    """Every item a structure searches by vector has one (written behind, or journaled)."""
    from agentmem.models.embeddings import MiniLMEmbedder
    from agentmem.storage.vectors import VectorIndex

    records = Records(database)
    vectors = VectorIndex(MiniLMEmbedder(), path=database.parent / "chroma")  # no model load
    try:
        checked = 0
        for user in records.users():
            for store in ("turns", "facts", "memtree", "graph"):
                wanted: dict[str, list[str]] = {}
                for item in records.store_items(store, user, current_only=False):
                    name = COLLECTIONS.get((store, item.kind), store)
                    wanted.setdefault(name, []).append(item.id)
                for name, ids in wanted.items():
                    missing = set(ids) - set(vectors.get(name, user, ids))
                    assert not missing, f"{len(missing)} {name} items of {user} have no vector"
                    checked += len(ids)
        assert checked > 100
    finally:
        vectors.close()
        records.close()


def test_chat_killed_mid_conversation_keeps_every_acknowledged_turn(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = environment(server, home)
    command = [
        sys.executable,
        "-m",
        "agentmem.cli",
        "chat",
        "--plain",
        "--model",
        "none",
        "--stores",
        "all,turns",
        "--user",
        "sam",
    ]
    rng = random.Random(7)
    lines = [
        f"Note {n}: I moved to {rng.choice(CITIES)} and I work as a {rng.choice(JOBS)}."
        for n in range(60)
    ]
    acknowledged: list[str] = []
    sent = 0
    kills = 0
    while sent < len(lines) and kills < 8:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdin is not None and process.stdout is not None
        budget = rng.randint(1, 8)
        for _ in range(budget):
            if sent == len(lines):
                break
            process.stdin.write(lines[sent] + "\n")
            process.stdin.flush()
            sent += 1
            if rng.random() < 0.3:
                break  # kill while this line is in flight
            # Each answer opens with one header line (its recalled items follow): the
            # turn is stored before any answer is made, so the header acknowledges it.
            reply = process.stdout.readline()
            while reply and not reply.startswith("[recall only"):
                reply = process.stdout.readline()
            assert reply, "the chat exited early"
            acknowledged.append(lines[sent - 1])
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdin.close()
        process.stdout.close()
        kills += 1

    # A last run with no input resumes whatever was accepted but never memorized.
    final = subprocess.run(command, env=env, input="", capture_output=True, text=True)
    assert final.returncode == 0, final.stderr

    records = Records(home / "agentmem.sqlite")
    try:
        said = [t.text for t in records.turns("sam") if t.role == "user"]
        assert records.pending_turns() == []
        items = {
            store: records.store_items(store, "sam", current_only=False)
            for store in ("turns", "memtree", "graph")
        }
        # Recall-only answers are kept as turns but never folded into memory.
        turn_ids = {t.id for t in records.turns("sam") if t.role == "user"}
    finally:
        records.close()
    assert kills >= 5
    counts = Counter(said)
    assert all(counts[line] == 1 for line in acknowledged), "an acknowledged turn was lost"
    assert all(count == 1 for count in counts.values()), "a turn was stored twice"
    # One item per turn in the structures that keep one, and none twice.
    per_turn = Counter(i.source_turn_ids for i in items["turns"])
    assert set(per_turn) == {(t,) for t in turn_ids} and set(per_turn.values()) == {1}
    leaves = Counter(i.source_turn_ids for i in items["memtree"] if i.metadata.get("leaf"))
    assert set(leaves.values()) == {1} and len(leaves) == len(turn_ids)
    passages = Counter(i.source_turn_ids for i in items["graph"] if i.kind == "passage")
    assert set(passages.values()) == {1} and len(passages) == len(turn_ids)


def test_replay_building_with_a_faulty_model_survives_kills_and_resumes_its_queue(
    tmp_path: Path,
) -> None:
    """Kills while model builds fail and queue: the last run leaves nothing pending."""
    dataset = tmp_path / "dialogues.json"
    dataset.write_text(
        json.dumps([conversation("conv-m", ("Nora", "Felix"), seed=3, sessions=SESSIONS)]),
        encoding="utf-8",
    )
    config = tmp_path / "agentmem.toml"
    config.write_text("timeout = 2.0\nretries = 3\n", encoding="utf-8")

    def command(out: Path) -> list[str]:
        return [
            *replay_command(dataset, out)[:-4],
            *("--model", "openai:fake-chat", "--model-builders", "yes"),
            *("--config", str(config), "--out", str(out)),
        ]

    def check(out: Path, *, settled: bool) -> None:
        got = snapshot(out / "data" / "all@openai_fake-chat")
        turns, items = got["turns"], got["items"]
        assert isinstance(turns, dict) and isinstance(items, Counter)
        assert [len(t) for t in turns.values()] == [SESSIONS * LINES]
        # Items derived from one turn (MemTree's leaves, the graph's passages and facts):
        # consolidated ones may read alike, a model building them.
        derived = [
            count
            for key, count in items.items()
            if key[1] in ("turns", "facts", "memtree") or key[2] in ("passage", "fact")
        ]
        assert set(derived) == {1}, "an item derived from one turn was stored twice"
        # Every turn has exactly one item in the turn store and one passage in the graph.
        for store, kind in (("turns", "turn"), ("graph", "passage")):
            sources = [k[4] for k in items if k[1] == store and k[2] == kind]
            assert sorted(sources) == sorted((e,) for e, _, _ in turns["conv-m"]), store
        if settled:
            assert got["pending"] == 0 and got["work"] == 0  # deferred builds resumed

    rng = random.Random(5)
    kills = series = 0
    out = tmp_path / "out-0"
    with FakeOpenAIServer(
        default_reply=schema_reply, embedding_dimension=48, fault_rate=0.3, seed=5
    ) as server:
        env = environment(server, tmp_path / "home")
        while kills < 6:
            process = subprocess.Popen(
                command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                # A whole run takes about 5 s here, 2 of them starting up.
                process.wait(timeout=rng.uniform(1.0, 4.5))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                continue
            if process.returncode == 2:
                # Stopped with a clear error (a call failed every retry): run it again.
                continue
            assert process.returncode == 0
            check(out, settled=False)  # faults go on: some builds may still be queued
            series += 1
            out = tmp_path / f"out-{series}"
        server.fault_rate = 0.0
        finish = subprocess.run(command(out), env=env, capture_output=True, text=True)
    assert finish.returncode == 0, finish.stderr
    check(out, settled=True)
