"""Concurrency: two processes on one data directory, and threads sharing one memory.

The records database is SQLite in WAL mode with a busy timeout, so several processes may
write it at once; the embedded vector index is not safe across processes, so a second
process that opens the same data directory gets a clear, typed error naming the holder.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from contextlib import closing
from pathlib import Path

import pytest
from sqlmodel import Session

from agentmem.config import load_config
from agentmem.errors import DataDirLockedError
from agentmem.factory import build
from agentmem.memory import Memory
from agentmem.storage.records import Records, UserRow
from agentmem.storage.vectors import VectorIndex


def chat_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "AGENTMEM_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    return env


CHAT = [sys.executable, "-m", "agentmem.cli", "chat", "--plain", "--model", "none"]


# A real CLI process or two (10-20 s): in the heavy run, so the default one stays short.
@pytest.mark.heavy
def test_a_second_chat_on_the_same_data_dir_is_refused_clearly(tmp_path: Path) -> None:
    env = chat_env(tmp_path)
    first = subprocess.Popen(
        CHAT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert first.stdin is not None and first.stdout is not None
    try:
        first.stdin.write("My bike is red\n")
        first.stdin.flush()
        assert first.stdout.readline().startswith("[recall only")  # it holds the folder
        second = subprocess.run(
            CHAT, env=env, input="My car is blue\n", capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 2
        assert f"is in use by process {first.pid}" in second.stderr
        assert "hint:" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.stdin.close()
        first.wait(timeout=120)
        first.stdout.close()
    assert first.returncode == 0
    # Once the first process is gone, the folder is free again and nothing was lost.
    third = subprocess.run(
        CHAT, env=env, input="What colour is my bike?\n", capture_output=True, text=True
    )
    assert third.returncode == 0, third.stderr
    assert "My bike is red" in third.stdout
    records = Records(tmp_path / "agentmem.sqlite")
    try:
        said = [t.text for u in records.users() for t in records.turns(u) if t.role == "user"]
    finally:
        records.close()
    assert said == ["My bike is red", "What colour is my bike?"]  # the refused turn: never accepted


def test_the_lock_is_per_process_and_released_on_close(tmp_path: Path, embedder) -> None:
    first = VectorIndex(embedder, path=tmp_path / "chroma")
    again = VectorIndex(embedder, path=tmp_path / "chroma")  # same process: shared
    probe = textwrap.dedent(
        """
        import sys
        from agentmem.errors import DataDirLockedError
        from agentmem.storage.locking import FolderLock
        try:
            FolderLock(sys.argv[1]).release()
        except DataDirLockedError as exc:
            print("locked:", exc)
        else:
            print("free")
        """
    )

    def other_process_sees() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path / "chroma")],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    held = f"locked: {(tmp_path / 'chroma').resolve()} is in use by process {os.getpid()}"
    assert other_process_sees().startswith(held)
    first.close()
    assert other_process_sees().startswith("locked:")  # ``again`` still holds it
    again.close()
    assert other_process_sees() == "free"


WRITER = textwrap.dedent(
    """
    import sys
    from agentmem.storage.records import Records

    path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    records = Records(path)
    records.start_session("shared", session_id=name)
    for n in range(count):
        records.add_turn("shared", name, name, "user", f"{name} line {n}")
    records.close()
    """
)


def test_a_user_row_added_by_another_process_meanwhile_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes starting sessions for a new user race between look and insert."""
    records = Records(tmp_path / "agentmem.sqlite")
    other = Records(tmp_path / "agentmem.sqlite")  # the other process
    other.ensure_user("shared")
    other.close()
    real_get = Session.get
    missed = []

    def look_before_the_other_insert(self: Session, entity: object, ident: object) -> object:
        if entity is UserRow and not missed:
            missed.append(ident)
            return None  # as it was a moment before the other process committed
        return real_get(self, entity, ident)

    monkeypatch.setattr(Session, "get", look_before_the_other_insert)
    records.start_session("shared", session_id="s1")

    assert missed == ["shared"] and records.users() == ["shared"]
    records.close()


def test_two_processes_writing_one_records_database_lose_nothing(tmp_path: Path) -> None:
    database = tmp_path / "agentmem.sqlite"
    Records(database).close()  # create the schema once
    count = 300
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(database), name, str(count)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    errors = [writer.communicate(timeout=300)[1] for writer in writers]  # wait for both
    for writer, err in zip(writers, errors, strict=True):
        assert writer.returncode == 0, err
    records = Records(database)
    try:
        texts = [t.text for t in records.turns("shared")]
    finally:
        records.close()
    for name in ("alpha", "beta"):
        assert [t for t in texts if t.startswith(name)] == [
            f"{name} line {n}" for n in range(count)
        ]
    with closing(sqlite3.connect(database)) as connection, connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_threads_sharing_one_memory_lose_nothing(tmp_path: Path, embedder) -> None:
    config = load_config(data_dir=tmp_path, model="none", stores="turns")
    memory = Memory.from_components(build(config, model=None, embedder=embedder))
    errors: list[BaseException] = []

    def talk(user: str) -> None:
        try:
            for n in range(15):
                memory.add(f"{user} note number {n}", user_id=user)
                memory.search(f"{user} note", user_id=user, top_k=3)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(f"user{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    try:
        assert not errors, errors
        for i in range(4):
            stored = memory.get_all(user_id=f"user{i}", store="turns")
            texts = sorted(r["memory"].split(": ", 1)[1] for r in stored)
            assert texts == sorted(f"user{i} note number {n}" for n in range(15))
    finally:
        memory.close()


def test_opening_a_held_data_dir_raises_the_typed_error(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom agentmem.storage.locking import FolderLock\n"
            "FolderLock(sys.argv[1]); print('held', flush=True); time.sleep(60)",
            str(tmp_path / "chroma"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirLockedError, match=f"process {holder.pid}") as caught:
            VectorIndex(object(), path=tmp_path / "chroma")  # type: ignore[arg-type]
        assert caught.value.retryable
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
