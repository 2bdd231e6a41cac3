"""``agentmem memory``: sessions, search, export and forget, on a real data folder."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentmem import Memory
from agentmem.cli import main
from agentmem.storage.records import Records


def run_cli(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def real_cli(args: list[str], data_dir: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTMEM_HOME": str(data_dir), "HF_HUB_OFFLINE": "1"}
    for name in ("AGENTMEM_USER", "AGENTMEM_STORES", "AGENTMEM_CONFIG", "OPENAI_BASE_URL"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "agentmem.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two users' memory, written by the chat's structures (all), with a move in it."""
    folder = tmp_path_factory.mktemp("memory")
    with Memory(folder, chat_model=None, env={}, stores=("all",), model="none") as memory:
        memory.add("I live in Tromso and I work as a nurse.", user_id="ana", session_id="first")
        memory.end_session("ana", "first")
        memory.add("I moved from Tromso to Bergen.", user_id="ana", session_id="second")
        memory.add("My bike is red.", user_id="ana", session_id="second")
        memory.add("I play the cello.", user_id="bo", session_id="bo-1")
    return folder


def test_sessions_lists_the_users_sessions_with_their_turns(data_dir: Path) -> None:
    code, out, err = run_cli(["memory", "sessions", "--user", "ana", "--data-dir", str(data_dir)])

    assert code == 0, err
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert set(rows) == {"first", "second"}
    assert rows["first"].rstrip(" │").endswith("1") and rows["second"].rstrip(" │").endswith("2")
    assert "bo-1" not in out


def test_search_shows_structure_validity_rank_and_source_turns(data_dir: Path) -> None:
    args = ["memory", "search", "where does ana live", "--user", "ana", "--data-dir"]

    code, out, err = run_cli([*args, str(data_dir)])
    code_history, out_history, _ = run_cli([*args, str(data_dir), "--history"])

    assert code == 0 and code_history == 0, err
    bergen = next(line for line in out.splitlines() if "user lives in Bergen" in line)
    cells = [c.strip() for c in bergen.split("│")[1:-1]]
    rank, _score, text, store, validity, turns = cells
    assert int(rank) >= 1 and text == "user lives in Bergen" and store == "facts"
    assert validity.startswith("current since ")
    records = Records(data_dir / "agentmem.sqlite")
    try:
        moved = [t.id for t in records.turns("ana") if "Bergen" in t.text]
    finally:
        records.close()
    assert turns == ", ".join(map(str, moved))
    assert "user lives in Tromso" not in out
    tromso = next(line for line in out_history.splitlines() if "user lives in Tromso" in line)
    assert "ended, since " in tromso and " until " in tromso and "(replaced)" in tromso


def test_export_writes_the_same_json_as_memory_export(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "ana.json"
    common = ["--user", "ana", "--data-dir", str(data_dir)]

    code, out, err = run_cli(["memory", "export", *common])
    code_file, _out, err_file = run_cli(["memory", "export", *common, "--out", str(target)])

    assert code == 0 and code_file == 0, err + err_file
    exported = json.loads(out)
    assert json.loads(target.read_text(encoding="utf-8")) == exported
    assert exported["user_id"] == "ana"
    assert {s["id"] for s in exported["sessions"]} == {"first", "second"}
    assert len(exported["turns"]) == 3 and exported["items"]
    assert f"exported 3 turns, {len(exported['items'])} memory items and 2 sessions" in err_file


def test_an_export_that_cannot_be_written_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    code, _out, err = run_cli(
        ["memory", "export", "--user", "ana", "--data-dir", str(data_dir), "--out"]
        + [str(tmp_path / "missing" / "ana.json")]
    )
    assert code == 2
    assert "cannot write the export" in err and "hint:" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "command", [["sessions"], ["export"], ["forget", "--yes"], ["search", "x"]]
)
def test_an_unknown_user_is_refused_with_exit_status_2(data_dir: Path, command: list[str]) -> None:
    code, out, err = run_cli(["memory", *command, "--user", "nobody", "--data-dir", str(data_dir)])

    assert code == 2
    assert err.splitlines()[0] == f"error: no user 'nobody' in {data_dir}"
    assert "hint: check the id" in err
    assert "ana" not in err and "'bo'" not in err and " bo" not in err  # no one else's id
    assert out == ""


def test_a_folder_without_memory_is_refused_and_left_alone(tmp_path: Path) -> None:
    code, _out, err = run_cli(["memory", "sessions", "--user", "ana", "--data-dir", str(tmp_path)])

    assert code == 2
    assert f"no memory is kept in {tmp_path}" in err
    assert list(tmp_path.iterdir()) == []


def test_forget_asks_first_and_then_prints_a_receipt_in_words(tmp_path: Path) -> None:
    with Memory(tmp_path, chat_model=None, env={}, stores=("turns",), model="none") as memory:
        memory.add("My sister Ana lives in Porto.", user_id="cy", session_id="one")
        memory.add("I am learning Dutch.", user_id="cy", session_id="two")
        memory.add("I keep bees.", user_id="di", session_id="three")
        items = len(memory.get_all(user_id="cy", include_history=True))

    declined = real_cli(["memory", "forget", "--user", "cy"], tmp_path, stdin="n\n")
    assert declined.returncode == 1, declined.stderr
    assert "Forget this user? [y/N]" in declined.stdout
    assert "Nothing was forgotten." in declined.stdout

    done = real_cli(["memory", "forget", "--user", "cy"], tmp_path, stdin="y\n")

    assert done.returncode == 0, done.stderr
    counts = f"2 turns, {items} memory items and 2 sessions"
    assert f"everything about user 'cy' in {tmp_path}: {counts}" in done.stdout
    assert f"Forgot user 'cy': removed {counts}" in done.stdout
    assert "rows:" not in done.stdout and "vectors:" not in done.stdout
    records = Records(tmp_path / "agentmem.sqlite")
    try:
        assert records.users() == ["di"]
    finally:
        records.close()
    again = real_cli(["memory", "forget", "--user", "cy", "--yes"], tmp_path)
    assert again.returncode == 2
    assert "error: no user 'cy'" in again.stderr


def test_forget_needs_a_user_named_on_the_command_line(tmp_path: Path) -> None:
    result = real_cli(["memory", "forget", "--yes"], tmp_path)
    assert result.returncode == 2
    assert "--user" in result.stderr
