"""The command that installs an optional extra, said the way this copy was installed.

A hint that says ``pip install 'agentmem[local]'`` to someone who followed README in a
checkout sends them to PyPI's release instead of their checkout (issue 35), and README's
``.venv/bin/pip install -e '.[local]'`` means nothing to someone who installed the
package. So a hint names the checkout's command when agentmem runs from an editable
install, and pip's otherwise; both are README's wording.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def checkout() -> Path | None:
    """Return the checkout agentmem runs from (an editable install, a source tree), or ``None``.

    An installed package sits in site-packages with no ``pyproject.toml`` beside it; a
    checkout's ``agentmem/`` has the project's own.
    """
    root = Path(__file__).resolve().parents[1]
    try:
        project = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "agentmem"' in project else None


def install_command(extra: str) -> str:
    """Return the command that installs ``extra`` (e.g. ``"local"``) for this copy."""
    root = checkout()
    if root is not None:
        return f".venv/bin/pip install -e '.[{extra}]' (in {root})"
    return f"pip install 'agentmem[{extra}]'"


__all__ = ["checkout", "install_command"]
