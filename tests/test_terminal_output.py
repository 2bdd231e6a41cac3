"""Stored text reaches the terminal with its control characters shown, never obeyed.

A turn holding ``ESC [2J`` (clear the screen) and ``ESC ]0;TITLE BEL`` (retitle the
window) cleared the screen when ``agentmem memory search`` or ``chat --plain`` printed it.
New turns with control characters are refused (tests/test_control_characters.py), but a
data folder written before that rule still holds them, and a model may send them; so the
command line shows them as symbols (agentmem/terminal.py). The folder here is such an
older one: its texts are set in SQL, as the older version stored them.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from agentmem.cli import _setup_logging, main
from agentmem.memory import Memory
from agentmem.terminal import visible
from agentmem.testing import FakeOpenAIServer

ESCAPES = "\x1b[2J\x1b]0;TITLE\x07"
SHOWN = "␛[2J␛]0;TITLE␇"
#: Bytes no output may hold: ESC, BEL, and the C1 CSI.
RAW = ("\x1b", "\x07", "\x9b")


@pytest.fixture(scope="module")
def older_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ana's memory with escape sequences in a turn, its items and a session id."""
    folder = tmp_path_factory.mktemp("older")
    with Memory(folder, model="none", stores=("turns",), env={}) as memory:
        memory.add("I keep bees on the roof PLACEHOLDER", user_id="ana", session_id="s1")
    with closing(sqlite3.connect(folder / "agentmem.sqlite")) as db, db:
        for table in ("turns", "memory_items"):
            db.execute(
                f"UPDATE {table} SET text = replace(text, 'PLACEHOLDER', ?)",  # noqa: S608
                (ESCAPES,),
            )
        db.execute(
            "INSERT INTO sessions (id, user_id, started_at) VALUES (?, 'ana', '2024-01-01')",
            (f"s2{ESCAPES}",),
        )
        db.execute("INSERT INTO users (id, created_at) VALUES (?, '2024-01-01')", (f"m{ESCAPES}",))
    return folder


def run(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def assert_shown_not_obeyed(*texts: str) -> None:
    for text in texts:
        assert not any(raw in text for raw in RAW), repr(text)


def test_visible_shows_every_control_character_but_layout() -> None:
    assert visible(f"a{ESCAPES}b") == f"a{SHOWN}b"
    assert visible("\x00\x08\x7f\x9b\x85") == "␀␈␡\\x9b\\x85"
    assert visible("tab\tline\nwindows\r\nlone\rend") == "tab\tline\nwindows\r\nlone␍end"
    assert visible("[bold]é 🙂 \u202e") == "[bold]é 🙂 \u202e"  # not a control: kept


def test_memory_search_shows_the_escapes(older_folder: Path) -> None:
    args = ["memory", "search", "bees on the roof", "--user", "ana", "--data-dir"]
    code, out, err = run([*args, str(older_folder)])
    assert code == 0, err
    assert_shown_not_obeyed(out, err)
    assert SHOWN in out  # shown, in the item's text


def test_memory_sessions_shows_the_escapes_in_a_session_id(older_folder: Path) -> None:
    code, out, err = run(["memory", "sessions", "--user", "ana", "--data-dir", str(older_folder)])
    assert code == 0, err
    assert_shown_not_obeyed(out, err)
    assert f"s2{SHOWN}" in out.replace("\n", "")


def test_an_unknown_user_error_names_no_other_user(older_folder: Path) -> None:
    code, out, err = run(
        ["memory", "sessions", "--user", "nobody", "--data-dir", str(older_folder)]
    )
    assert code == 2 and out == ""
    assert_shown_not_obeyed(err)
    assert "m\x1b" not in err and f"m{SHOWN}" not in err  # the user with escapes: not named


def test_memory_export_to_standard_output_is_json_with_the_escapes_escaped(
    older_folder: Path,
) -> None:
    code, out, err = run(["memory", "export", "--user", "ana", "--data-dir", str(older_folder)])
    assert code == 0, err
    assert_shown_not_obeyed(out, err)
    exported = json.loads(out)  # the exact text survives, as JSON escapes
    assert any(ESCAPES in turn["text"] for turn in exported["turns"])


def test_a_recall_only_plain_chat_shows_the_escapes_it_quotes(
    tmp_path: Path, older_folder: Path
) -> None:
    args = ["chat", "--plain", "--model", "none", "--user", "ana"]
    code, out, err = run([*args, "--data-dir", str(older_folder)], stdin="bees on the roof?\n")
    assert code == 0, err
    assert_shown_not_obeyed(out, err)
    assert SHOWN in out


def test_a_plain_chat_shows_the_escapes_of_recalled_memory_and_of_the_model(
    older_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(default_reply=f"Bees.{ESCAPES}") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("AGENTMEM_MODEL_BUILDERS", "no")
        args = ["chat", "--plain", "--show-recall", "--model", "openai:fake", "--user", "ana"]
        code, out, err = run(
            [*args, "--data-dir", str(older_folder)], stdin="What is on the roof?\n"
        )
    assert code == 0, err
    assert_shown_not_obeyed(out, err)
    recalled = [line for line in out.splitlines() if line.startswith("recalled ")]
    assert any(SHOWN in line for line in recalled)
    assert f"Bees.{SHOWN}" in out


def test_log_lines_show_the_escapes() -> None:
    from rich.console import Console

    stream = io.StringIO()
    _setup_logging(0, Console(file=stream, width=200))
    logging.getLogger("agentmem.test").warning("skipping turn %s", f"t{ESCAPES}")
    assert_shown_not_obeyed(stream.getvalue())
    assert f"t{SHOWN}" in stream.getvalue()


def test_the_replay_progress_shows_a_sample_id_as_written(tmp_path: Path) -> None:
    """A sample id is the file's: "[/x]" in it crashed the progress bar as bad markup."""
    sample = {
        "sample_id": "s[/x]1",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Ben",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": "Ana", "dia_id": "D1:1", "text": "I live in Porto."}],
        },
        "qa": [{"question": "Where does Ana live?", "answer": "Porto", "evidence": ["D1:1"]}],
    }
    (tmp_path / "s.json").write_text(json.dumps([sample]))
    args = ["replay", str(tmp_path / "s.json"), "--stores", "turns", "--out", str(tmp_path / "out")]
    code, out, err = run(args)
    assert code == 0, err
    assert "similarity · s[/x]1 · ask" in err  # the last configuration replayed
