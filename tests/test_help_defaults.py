"""Every default ``--help`` prints is the default the code uses.

``agentmem mcp --help`` said ``--model (default: auto)`` while the server built no model,
and every ``--data-dir`` said ``(default: $AGENTMEM_HOME)`` while, unset, memory went to
``~/.local/share/agentmem`` (issue 35). This walks every parser of the command, reads each
"default: X" in a help line, and compares X with what the code does when the flag is
left out: the parser's default where it has one, else the configuration's.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmem.cli import build_parser
from agentmem.config import default_data_dir, load_config
from agentmem.factory import resolve_model

DEFAULT = re.compile(r"default: (.+?)(?:\)|;|$)", re.DOTALL)

#: Flags whose default is a description, not a value, and where the code does it.
DESCRIBED = {
    ("memory export", "--out"): "standard output",  # cli_memory._export: out.file
    ("memory *", "--stores"): "the configured ones",  # cli_memory._open: config.stores
    ("replay", "--out"): "a temp dir",  # replay.runner: tempfile.mkdtemp
    ("replay", "--data-dir"): "OUT/data",  # replay.runner: out / "data"
    ("replay", "--split"): "all samples",  # replay.dataset: no split given
}


def parsers(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Yield every parser of the command with its path ("", "chat", "memory search")."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}".strip())


def documented() -> Iterator[tuple[str, argparse.ArgumentParser, argparse.Action, str]]:
    for path, parser in parsers(build_parser()):
        for action in parser._actions:
            found = DEFAULT.search(action.help or "")
            if found and action.option_strings:
                yield path, parser, action, " ".join(found.group(1).split())


CASES = list(documented())


def test_the_walk_finds_the_flags_that_document_a_default() -> None:
    seen = {(path, max(a.option_strings, key=len)) for path, _p, a, _d in CASES}
    for expected in [("chat", "--model"), ("mcp", "--model"), ("memory search", "--data-dir")]:
        assert expected in seen
    assert len(CASES) >= 20


@pytest.mark.parametrize(
    ("path", "parser", "action", "said"),
    CASES,
    ids=[f"{p or 'agentmem'} {max(a.option_strings, key=len)}" for p, _x, a, _s in CASES],
)
def test_help_says_the_default_the_code_uses(
    path: str,
    parser: argparse.ArgumentParser,
    action: argparse.Action,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flag = max(action.option_strings, key=len)
    used = parser.get_default(action.dest)
    described = DESCRIBED.get((path, flag)) or DESCRIBED.get((f"{path.split()[0]} *", flag))
    if described is not None:
        assert said == described
    elif used is not None:  # the parser's own default is what the code gets
        assert said.split(":")[0].split(",")[0].strip() == str(used).split(",")[0]
        if "," in str(used):
            assert said.startswith(str(used))
    else:  # left out, the configuration decides: compare with it, unset environment
        for name in ("AGENTMEM_MODEL", "AGENTMEM_STORES", "AGENTMEM_USER", "AGENTMEM_HOME"):
            monkeypatch.delenv(name, raising=False)
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTMEM_CONFIG"):
            monkeypatch.delenv(name, raising=False)
        config = load_config(env={})
        if action.dest == "data_dir":
            real = default_data_dir({})
            home = Path.home()
            assert said == f"$AGENTMEM_HOME or ~/{real.relative_to(home)}"
        elif action.dest == "model":
            assert said.startswith(f"{config.model}: ")
            assert resolve_model(config).provider == "none"  # "else none", as it says
            assert said.endswith("else none")
        elif action.dest == "stores":
            assert said.startswith(",".join(config.stores))
        elif action.dest == "user":
            assert said == "$AGENTMEM_USER or your login name"
        else:
            pytest.fail(f"{path} {flag}: no check for its documented default {said!r}")


def test_mcp_builds_no_model_when_none_is_given() -> None:
    args = build_parser().parse_args(["mcp"])
    assert args.model == "none"


def test_help_runs_for_every_command() -> None:
    for path, _parser in parsers(build_parser()):
        done = subprocess.run(
            [sys.executable, "-m", "agentmem", *path.split(), "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
