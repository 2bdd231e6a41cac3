"""The ``agentmem`` command, in-process and as a real console script."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentmem.cli import main, package_version
from agentmem.extras import install_command


def run_cli(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("module", ["agentmem", "agentmem.cli"])
def test_version(module: str) -> None:
    """``python -m agentmem`` is the command too, for when its script is not on PATH."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"agentmem {package_version()}"


# A real CLI process or two (10-20 s): in the heavy run, so the default one stays short.
@pytest.mark.heavy
def test_plain_chat_remembers_across_runs(tmp_path: Path) -> None:
    """The README's promise: tell it something, quit, come back, be remembered."""
    env = {**os.environ, "AGENTMEM_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    command = [sys.executable, "-m", "agentmem.cli", "chat", "--plain", "--model", "none"]
    first = subprocess.run(
        command, input="My sister Ana lives in Porto\n", capture_output=True, text=True, env=env
    )
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        command, input="Where does my sister live?\n", capture_output=True, text=True, env=env
    )
    assert second.returncode == 0, second.stderr
    assert "[recall only" in second.stdout
    assert "My sister Ana lives in Porto" in second.stdout
    assert (tmp_path / "agentmem.sqlite").exists()


def test_bad_model_name_is_a_clear_error(tmp_path: Path) -> None:
    code, _out, err = run_cli(["chat", "--plain", "--model", "gpt9", "--data-dir", str(tmp_path)])
    assert code == 2
    assert "unknown model 'gpt9'" in err and "hint:" in err
    # The hint says what the line above does not: the accepted forms, and the likely one.
    assert "openai:<model>" in err and "openai:gpt9" in err and "OPENAI_BASE_URL" in err
    assert "pass a valid model" not in err


def test_show_recall_prints_the_recall_without_a_model_too(tmp_path: Path) -> None:
    chat = ["chat", "--plain", "--model", "none", "--data-dir", str(tmp_path), "--user", "ana"]
    assert run_cli(chat, stdin="My sister Ana lives in Porto\n")[0] == 0
    code, out, err = run_cli([*chat, "--show-recall"], stdin="Where does my sister live?\n")
    assert code == 0, err
    recalled = [line for line in out.splitlines() if line.startswith("recalled ")]
    assert any("My sister Ana lives in Porto" in line for line in recalled)


def test_auto_without_an_endpoint_answers_recall_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even with the local extra installed, auto does not pick the 135M demo model.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTMEM_MODEL", "AGENTMEM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    out, err = io.StringIO(), io.StringIO()
    args = ["chat", "--plain", "--data-dir", str(tmp_path)]
    code = main(args, stdin=io.StringIO("My favourite colour is green.\n"), stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert out.getvalue().startswith("[recall only: no chat model configured]")


def test_openai_without_endpoint_says_how_to_configure(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    code, _out, err = run_cli(
        ["chat", "--plain", "--model", "openai:gpt-4o-mini", "--data-dir", str(tmp_path)]
    )
    assert code == 2
    assert "OPENAI_API_KEY" in err and "OPENAI_BASE_URL" in err


def test_bad_config_file_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("model = [broken\n")
    code, _out, err = run_cli(["chat", "--plain", "--config", str(config)])
    assert code == 2
    assert "not valid TOML" in err


def test_unreachable_endpoint_keeps_the_turn(tmp_path: Path, monkeypatch) -> None:
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    code, _out, err = run_cli(
        ["chat", "--plain", "--model", "openai:any", "--data-dir", str(tmp_path)],
        stdin="Remember that my bike is red\n",
    )
    assert code == 1
    assert "error:" in err and "saved" in err
    from agentmem.storage.records import Records

    records = Records(tmp_path / "agentmem.sqlite")
    try:
        users = records.users()
        assert len(users) == 1
        assert [t.text for t in records.turns(users[0])] == ["Remember that my bike is red"]
    finally:
        records.close()


def test_a_move_from_one_city_to_another_leaves_the_old_one_as_history(tmp_path: Path) -> None:
    """Issue 14's first report: with every structure and no model, after "I moved from A
    to B", recall presents B as current and A only as history."""
    args = ["chat", "--plain", "--model", "none", "--stores", "all", "--data-dir", str(tmp_path)]
    for line in ("I live in Tromso and I work as a nurse.", "I moved from Tromso to Bergen."):
        code, _out, err = run_cli(args, stdin=line + "\n")
        assert code == 0, err

    code, out, err = run_cli(args, stdin="Where do I live?\n")

    assert code == 0, err
    assert "lives in Bergen" in out
    # Tromso is said only beside its change (a line that says more keeps it, noted).
    lines = [line for line in out.splitlines() if "Tromso" in line]
    assert all("Tromso → Bergen" in line or "from Tromso to Bergen" in line for line in lines)
    from agentmem.storage.records import Records

    records = Records(tmp_path / "agentmem.sqlite")
    try:
        (user,) = records.users()
        facts = records.store_items("facts", user, current_only=False)
        old = next(f for f in facts if f.text.endswith("lives in Tromso"))
        new = next(f for f in facts if f.text.endswith("lives in Bergen"))
        assert not old.current and old.superseded_by == new.id and new.current
        stale = [
            i
            for store in ("turns", "memtree", "memo", "summary", "graph")
            for i in records.store_items(store, user)
            if "Tromso" in i.shown_text() and "Bergen" not in i.shown_text()
        ]
        assert stale == []
    finally:
        records.close()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_chat_app_without_textual_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in sys.modules if n.startswith("agentmem.tui")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "textual", None)  # as if the extra were not installed
    out, err = io.StringIO(), io.StringIO()
    args = ["chat", "--model", "none", "--data-dir", str(tmp_path)]
    code = main(args, stdin=_Terminal(), stdout=out, stderr=err)
    assert code == 2
    assert install_command("chat") in err.getvalue() and "--plain" in err.getvalue()


def test_a_data_dir_that_is_a_file_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    in_the_way = tmp_path / "notes.txt"
    in_the_way.write_text("mine", encoding="utf-8")
    for data_dir in (in_the_way, in_the_way / "below"):
        code, out, err = run_cli(
            ["chat", "--plain", "--model", "none", "--data-dir", str(data_dir)]
        )
        assert code == 2
        assert "cannot use" in err and "Traceback" not in err
    assert in_the_way.read_text(encoding="utf-8") == "mine"


def plain_chat(
    args: list[str], data_dir: Path, stdin: bytes, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``agentmem chat --plain`` as a real process; wide logs so lines do not wrap."""
    environment = {**os.environ, "AGENTMEM_HOME": str(data_dir), "HF_HUB_OFFLINE": "1"}
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTMEM_USER", "AGENTMEM_CONFIG"):
        environment.pop(name, None)
    environment.update(COLUMNS="1000", **env)
    result = subprocess.run(
        [sys.executable, "-m", "agentmem.cli", "chat", "--plain", *args],
        input=stdin,
        capture_output=True,
        env=environment,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


# A real CLI process or two (10-20 s): in the heavy run, so the default one stays short.
@pytest.mark.heavy
def test_a_plain_chat_whose_model_is_unreachable_exits_1_and_hints_once_per_call(
    tmp_path: Path,
) -> None:
    """Issue 17: exit 0 after a failed turn hid it from scripts, and the retry warnings
    repeated the endpoint's hint on every line."""
    config = tmp_path / "agentmem.toml"
    config.write_text("timeout = 2\nmax_retries = 2\n", encoding="utf-8")
    hint = "start the server, or set OPENAI_BASE_URL"

    result = plain_chat(
        ["--model", "openai:x", "--config", str(config), "--user", "ana"],
        tmp_path / "data",
        b"Remember that my bike is red\n",
        # Port 9 on loopback: nothing listens, the connection is refused at once.
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
    )

    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert "error: cannot reach http://127.0.0.1:9/v1" in result.stderr
    assert [line for line in lines if line.startswith("hint:")] == [
        f"hint: {hint} (or pass "
        "base_url=...) to where it runs, e.g. http://127.0.0.1:11434/v1 for Ollama"
    ]
    assert "your message was saved" in result.stderr
    assert lines[-1] == "1 of 1 messages failed (exit status 1)"
    first = [line for line in lines if "retry 1 of 2" in line]
    second = [line for line in lines if "retry 2 of 2" in line]
    assert first and len(second) == len(first)
    assert all(hint in line for line in first) and not any(hint in line for line in second)
    assert "retry 3" not in result.stderr and "Traceback" not in result.stderr


def test_a_plain_chat_with_rejected_lines_goes_on_and_exits_1(tmp_path: Path) -> None:
    from agentmem.storage.records import MAX_TURN_CHARS

    oversized = b"x" * (MAX_TURN_CHARS + 1) + b"\n"
    # A strict decoder (a UTF-8 locale) used to raise UnicodeDecodeError out of readline.
    result = plain_chat(
        ["--model", "none"],
        tmp_path,
        oversized + b"my bike is \xff red\n" + b"I live in Oslo\n",
        PYTHONIOENCODING="utf-8:strict",
    )

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"the limit is {MAX_TURN_CHARS:,}" in result.stderr
    assert "turn text is not valid Unicode text" in result.stderr
    assert result.stderr.splitlines()[-1] == "2 of 3 messages failed (exit status 1)"
    assert "[recall only" in result.stdout  # the line after the rejected ones was answered


# A real CLI process or two (10-20 s): in the heavy run, so the default one stays short.
@pytest.mark.heavy
def test_chat_refuses_a_session_the_user_does_not_have(tmp_path: Path) -> None:
    from agentmem.storage.records import Records

    first = plain_chat(["--model", "none", "--user", "ana"], tmp_path, b"I keep bees\n")
    assert first.returncode == 0, first.stderr
    records = Records(tmp_path / "agentmem.sqlite")
    try:
        (session,) = records.sessions("ana")
    finally:
        records.close()

    unknown = plain_chat(
        ["--model", "none", "--user", "ana", "--session", "doesnotexist"], tmp_path, b"hello\n"
    )
    again = plain_chat(
        ["--model", "none", "--user", "ana", "--session", session.id], tmp_path, b"Bees sting\n"
    )
    # Another user may not continue ana's session (nor learn that it exists).
    other = plain_chat(
        ["--model", "none", "--user", "bo", "--session", session.id], tmp_path, b"hi\n"
    )

    assert unknown.returncode == 2
    assert unknown.stderr.splitlines() == [
        "error: user 'ana' has no session 'doesnotexist'",
        "hint: list them with: agentmem memory sessions --user ana (same --data-dir); "
        "leave out --session to start a new one",
    ]
    assert again.returncode == 0, again.stderr
    assert other.returncode == 2 and "user 'bo' has no session" in other.stderr
    records = Records(tmp_path / "agentmem.sqlite")
    try:
        assert [s.id for s in records.sessions("ana")] == [session.id]
        said = [t.text for t in records.turns("ana") if t.role == "user"]
        assert said == ["I keep bees", "Bees sting"]
        assert records.users() == ["ana"]
    finally:
        records.close()
