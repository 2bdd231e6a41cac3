"""README's replay example works on a fresh clone, and its commands work without a shell set-up.

README replays ``examples/data/demo_dialogues.json``, a small LoCoMo-format file written
for agentmem (the LoCoMo data set itself is CC BY-NC 4.0 and is not in the repository):
two conversations, four and three sessions, in which Priya changes job and Elena moves.
These tests run that command as README gives it, and check that no command in README or
docs/ relies on an activated virtual environment.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path

import pytest

from agentmem.cli import main
from agentmem.replay import load_samples

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "data" / "demo_dialogues.json"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_lines(path: Path) -> list[str]:
    """Return the commands of a Markdown file's shell code blocks, continuations joined.

    A ``console`` block's commands are its lines after a ``$`` prompt.
    """
    text = path.read_text(encoding="utf-8")
    lines = []
    for kind, block in re.findall(r"```(bash|console)\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if kind == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if line:
                lines.append(line)
    return lines


def readme_replay_args() -> list[str]:
    """Return the arguments of README's first ``agentmem replay`` command."""
    for line in shell_lines(ROOT / "README.md"):
        words = shlex.split(line, comments=True)
        if words[:2] == [".venv/bin/agentmem", "replay"]:
            return words[1:]
    raise AssertionError("README has no `.venv/bin/agentmem replay` command")


def test_the_demo_file_is_small_locomo_with_a_changed_fact() -> None:
    samples = load_samples([DEMO])
    assert [s.conversation.sample_id for s in samples] == ["demo-1", "demo-2"]
    turns = sum(s.conversation.turn_count for s in samples)
    questions = sum(len(s.questions) for s in samples)
    assert 25 <= turns <= 40 and 8 <= questions <= 12
    assert all(3 <= len(s.conversation.sessions) <= 4 for s in samples)
    assert any(g.kind == "update" and g.stale for s in samples for g in s.gold)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_commands_do_not_assume_an_activated_venv(path: Path) -> None:
    """`agentmem ...` and `python examples/...` fail unless .venv is activated."""
    command = re.compile(r"(^|[|&;] *)(\S+=\S+ )*(agentmem|python|pytest|pip) ")
    bare = [line for line in shell_lines(path) if command.search(line)]
    assert not bare, f"{path.name}: use .venv/bin/... in {bare}"


def test_readme_replay_command_runs_on_the_demo_file(tmp_path: Path) -> None:
    args = readme_replay_args()
    assert (ROOT / args[1]).resolve() == DEMO
    args[1] = str(DEMO)  # the test may run from another directory than the clone's root
    out, err = io.StringIO(), io.StringIO()
    code = main([*args, "--out", str(tmp_path)], stdin=io.StringIO(), stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert {"report.json", "summary.md"} <= {p.name for p in tmp_path.iterdir()}

    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    overall = {c["name"]: c["overall"] for c in report["configurations"]}
    assert list(overall) == ["all", "turns", "recent", "similarity"]
    for name, figures in overall.items():
        assert figures["questions"] == 12, name
        assert 0 < figures["evidence_recall"] <= 1, name
        assert 0 <= figures["answer_in_context"] <= 1, name
        assert figures["stale_questions"] == 2, name  # Priya's job and Elena's home
        assert 0 <= figures["stale_leak_questions"] <= 2, name
        assert figures["context_tokens"] > 0, name
    assert overall["turns"]["evidence_recall"] > 0.5
    assert overall["turns"]["answer_in_context"] > 0.5
    assert "turns" in out.getvalue() and "similarity" in out.getvalue()
