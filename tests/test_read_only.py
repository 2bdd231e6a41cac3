"""A data folder this process may not write is read, and only a write is refused, typed.

``agentmem memory search`` on such a folder (another user's, a mounted backup) used to
fail as if nothing could be read. Now the commands that only read (sessions, search,
export) open it read-only by themselves, ``Memory(..., read_only=True)`` does so for a
library, and every write raises :class:`~agentmem.errors.ReadOnlyError`.

Root may write whatever the modes say, so under root the reading process runs in a user
namespace of its own (``unshare --user``), where it holds no capability over the folder's
files: the modes bind it as they bind any user. Elsewhere the modes alone do.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentmem.config import load_config
from agentmem.errors import ConfigError
from agentmem.factory import build
from agentmem.memory import Memory
from agentmem.models.embeddings import MiniLMEmbedder

ROOT = Path(__file__).resolve().parents[1]


def unprivileged() -> list[str]:
    """Return the prefix that runs a command without the power to ignore file modes."""
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("root ignores file modes, and there is no unshare to drop that power")
    probe = subprocess.run([unshare, "--user", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"root ignores file modes, and a user namespace is refused: {probe.stderr!r}")
    return [unshare, "--user"]


def run(args: list[str], *, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    for name in ("AGENTMEM_USER", "AGENTMEM_STORES", "AGENTMEM_CONFIG", "AGENTMEM_HOME"):
        env.pop(name, None)
    return subprocess.run(
        [*(unprivileged() if prefix is None else prefix), sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a digest of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


def remember(folder: Path, embedder: MiniLMEmbedder) -> None:
    config = load_config(data_dir=folder, model="none", stores=("all",), env={})
    with Memory.from_components(build(config, model=None, embedder=embedder)) as memory:
        memory.add("I live in Lisbon and I keep bees.", user_id="ana", session_id="first")
        memory.end_session("ana", "first")
        memory.add("I moved from Lisbon to Berlin.", user_id="ana", session_id="second")


@pytest.fixture
def locked_folder(tmp_path: Path, embedder: MiniLMEmbedder) -> Iterator[Path]:
    """Ana's memory in a folder no one may write."""
    folder = tmp_path / "data"
    remember(folder, embedder)
    set_writable(folder, False)
    yield folder
    set_writable(folder, True)  # so the temporary folder can be removed


def test_memory_sessions_search_and_export_read_a_folder_they_cannot_write(
    locked_folder: Path,
) -> None:
    before = fingerprint(locked_folder)
    cli = ["-m", "agentmem.cli", "memory"]
    where = ["--user", "ana", "--data-dir", str(locked_folder)]

    sessions = run([*cli, "sessions", *where])
    search = run([*cli, "search", "Where does ana live?", "--history", *where])
    export = run([*cli, "export", *where])

    for done in (sessions, search, export):
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    assert "first" in sessions.stdout and "second" in sessions.stdout
    assert "user lives in Berlin" in search.stdout and "user lives in Lisbon" in search.stdout
    assert [t["text"] for t in json.loads(export.stdout)["turns"]] == [
        "I live in Lisbon and I keep bees.",
        "I moved from Lisbon to Berlin.",
    ]
    assert fingerprint(locked_folder) == before  # not a byte written


def test_a_write_to_a_folder_it_cannot_write_is_a_read_only_error(locked_folder: Path) -> None:
    where = ["--user", "ana", "--data-dir", str(locked_folder)]
    forget = run(["-m", "agentmem.cli", "memory", "forget", "--yes", *where])
    chat = run(["-m", "agentmem.cli", "chat", "--plain", "--model", "none", *where])
    for done in (forget, chat):
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: ") and "read-only" in done.stderr
        assert "Traceback" not in done.stderr


LIBRARY = r"""
import json, sys
from agentmem import Memory
from agentmem.errors import AgentMemError

folder = sys.argv[1]
seen = {}
try:
    Memory(folder, model="none", env={})
except AgentMemError as exc:
    seen["writable open"] = type(exc).__name__
with Memory(folder, model="none", stores=("all",), env={}, read_only=True) as memory:
    found = memory.search("Where does ana live?", user_id="ana", include_history=True)
    seen["found"] = {r["memory"]: r["current"] for r in found.items}
    seen["items"] = len(memory.get_all(user_id="ana", include_history=True))
    fact = next(r for r in found.items if r["memory"] == "user lives in Lisbon")
    seen["history"] = [e["event"] for e in memory.history(fact["id"], user_id="ana")]
    seen["export"] = len(memory.export("ana")["turns"])
    bees = memory.search("bees swarmed into the chimney", user_id="ana", top_k=3)
    seen["bees"] = [r["memory"] for r in bees.items]
    writes = {
        "add": lambda: memory.add("I moved to Rome.", user_id="ana"),
        "update": lambda: memory.update(fact["id"], "user lives in Rome", user_id="ana"),
        "delete": lambda: memory.delete(fact["id"], user_id="ana"),
        "forget": lambda: memory.forget("ana"),
        "end_session": lambda: memory.end_session("ana", "second"),
        "resume": lambda: memory.resume("ana"),
    }
    for name, write in writes.items():
        try:
            write()
        except AgentMemError as exc:
            seen[name] = [type(exc).__name__, str(exc)]
print(json.dumps(seen))
"""


def library(folder: Path, tmp_path: Path, *, prefix: list[str] | None = None) -> dict[str, Any]:
    script = tmp_path / "library.py"
    script.write_text(LIBRARY)
    done = run([str(script), str(folder)], prefix=prefix)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_memory_opened_read_only_reads_everything_and_refuses_every_write(
    locked_folder: Path, tmp_path: Path
) -> None:
    before = fingerprint(locked_folder)
    seen = library(locked_folder, tmp_path)
    assert seen["writable open"] == "ReadOnlyError"  # a typed error, not a crash
    assert seen["found"]["user lives in Berlin"] is True
    assert seen["found"]["user lives in Lisbon"] is False
    assert seen["items"] >= 4 and seen["export"] == 2
    assert seen["history"][0] == "ADD" and "SUPERSEDE" in seen["history"]
    for name in ("add", "update", "delete", "forget", "end_session", "resume"):
        kind, message = seen[name]
        assert kind == "ReadOnlyError" and "opened read-only" in message, (name, message)
    assert fingerprint(locked_folder) == before


KILLED_WRITER = r"""
import os, sys
from agentmem import Memory

memory = Memory(sys.argv[1], model="none", stores=("turns",), env={})
memory.add("My bees swarmed into the chimney.", user_id="ana")
os._exit(0)  # killed: the records' -wal file and the journaled vectors are left behind
"""


def test_what_a_killed_writer_left_is_read_too(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    folder = tmp_path / "data"
    remember(folder, embedder)
    writer = tmp_path / "writer.py"
    writer.write_text(KILLED_WRITER)
    done = run([str(writer), str(folder)], prefix=[])
    assert done.returncode == 0, done.stderr
    assert (folder / "agentmem.sqlite-wal").exists()  # its commits are only there
    set_writable(folder, False)
    try:
        seen = library(folder, tmp_path)
    finally:
        set_writable(folder, True)
    assert seen["export"] == 3
    assert "user: My bees swarmed into the chimney." in seen["bees"]  # its vector was journaled


OPEN_TO_WRITE = r"""
import sys
from agentmem import Memory
from agentmem.errors import AgentMemError

try:
    Memory(sys.argv[1], model="none", env={}).close()
except AgentMemError as exc:
    print(type(exc).__name__)
"""


def test_readers_share_the_folder_and_keep_a_writer_out(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    folder = tmp_path / "data"
    remember(folder, embedder)
    before = fingerprint(folder)
    config = load_config(data_dir=folder, model="none", stores=("all",), read_only=True, env={})
    with Memory.from_components(build(config, model=None, embedder=embedder)) as reading:
        assert reading.search("bees", user_id="ana").items
        # Another reader, in another process, reads beside it ...
        other = library(folder, tmp_path, prefix=[])
        assert other["found"]["user lives in Berlin"] is True
        # ... and a writer, in another process, is kept out as by another writer.
        writer = run(["-c", OPEN_TO_WRITE, str(folder)], prefix=[])
        assert writer.returncode == 0, writer.stderr
        assert writer.stdout.strip() == "DataDirLockedError"
    assert fingerprint(folder) == before  # read-only writes nothing, even where it could
    with Memory(folder, model="none", env={}) as writing:  # let go: a writer may come in
        assert writing.add("Bees again.", user_id="ana").ok


def test_read_only_needs_the_data_folder_not_a_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="read-only memory needs"):
        Memory(tmp_path, database_url="postgresql://nowhere/db", read_only=True, env={})
    with pytest.raises(ConfigError, match="read-only memory needs"):
        Memory(tmp_path, chroma_url="http://127.0.0.1:9", read_only=True, env={})
