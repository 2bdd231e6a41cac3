"""Optional extras: the library imports without them, and their names say how to get them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import agentmem

# Runs in a fresh interpreter where langchain_core cannot be imported, as if the
# `langchain` extra were not installed.
WITHOUT_LANGCHAIN = textwrap.dedent(
    """
    import sys

    class BlockLangChain:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("langchain_core", "langchain"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, BlockLangChain())

    from agentmem import Memory
    from agentmem.errors import MissingExtraError

    assert Memory.__name__ == "Memory"
    assert not [m for m in sys.modules if m.startswith("langchain")], "langchain was loaded"
    for name in ("AgentMemRetriever", "AgentMemChatModel", "LangChainChatModel"):
        try:
            exec(f"from agentmem import {name}")
        except MissingExtraError as exc:
            print(name, exc.hint)
        else:
            raise SystemExit(f"{name} imported without langchain_core")
    """
)


def test_memory_imports_without_langchain_and_its_adapters_name_the_extra() -> None:
    root = Path(agentmem.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}

    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_LANGCHAIN],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    hint = "pip install 'agentmem[langchain]'"
    assert done.stdout.splitlines() == [
        f"AgentMemRetriever {hint}",
        f"AgentMemChatModel {hint}",
        f"LangChainChatModel {hint}",
    ]
