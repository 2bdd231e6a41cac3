"""Optional extras: the library imports without them, and their names say how to get them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import agentmem
from agentmem.extras import install_command

# Runs in a fresh interpreter where the extra's packages cannot be imported, as if the
# extra were not installed; prints each name's hint.
WITHOUT_EXTRA = textwrap.dedent(
    """
    import sys

    BLOCKED = {blocked!r}

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Block())

    from agentmem import Memory
    from agentmem.errors import MissingExtraError

    assert Memory.__name__ == "Memory"
    assert not [m for m in sys.modules if m.partition(".")[0] in BLOCKED], "the extra was loaded"
    star = {{}}
    exec("from agentmem import *", star)
    assert "Memory" in star and not set({names!r}) & set(star), sorted(star)
    for name in {names!r}:
        try:
            exec(f"from agentmem import {{name}}")
        except MissingExtraError as exc:
            print(name, exc.hint)
        else:
            raise SystemExit(f"{{name}} imported without {{BLOCKED}}")
    """
)


@pytest.mark.parametrize(
    ("extra", "blocked", "names"),
    [
        (
            "langchain",
            ("langchain_core", "langchain"),
            ("AgentMemRetriever", "AgentMemChatModel", "LangChainChatModel"),
        ),
        ("langgraph", ("langgraph",), ("AgentMemStore",)),
    ],
)
def test_memory_imports_without_an_extra_and_its_names_say_which(
    extra: str, blocked: tuple[str, ...], names: tuple[str, ...]
) -> None:
    root = Path(agentmem.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}

    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA.format(blocked=blocked, names=names)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    hint = install_command(extra)  # the command for this copy (a checkout here)
    assert done.stdout.splitlines() == [f"{name} {hint}" for name in names]
