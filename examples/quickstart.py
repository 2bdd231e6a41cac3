"""Quickstart: remember, recall, and watch a changed fact supersede the old one.

Runs offline (the embedding model ships in a package, no chat model is needed)::

    python examples/quickstart.py

Memory lives in a temporary folder here; pass a folder of your own to keep it.
"""

from __future__ import annotations

import tempfile

from rich.console import Console

from agentmem import Memory


def main() -> None:
    """Tell memory where Sam lives, then that Sam moved; show what it recalls."""
    console = Console(markup=False, highlight=False)
    with tempfile.TemporaryDirectory() as folder, Memory(folder, model="none") as memory:
        said = {"role": "user", "name": "Sam"}
        memory.add(
            [{**said, "content": "I live in Boston."}], user_id="sam", timestamp="2024-01-10"
        )
        moved = memory.add(
            [{**said, "content": "We moved to Denver last week."}],
            user_id="sam",
            timestamp="2024-06-10",
        )
        for event in moved.events:  # the diff: what the new turn added and superseded
            console.print(f"{event['event']:<9} [{event['store']}] {event['memory']}")
            console.print(f"{'':<9} ({event['reason']})")
        found = memory.search("Where does Sam live?", user_id="sam", include_history=True)
        for item in found.items:  # current items, and superseded ones kept as history
            state = "current" if item["current"] else f"until {item['invalid_at']:%Y-%m-%d}"
            console.print(f"{state:<16} {item['memory']}")
        console.print(f"({found.tokens} tokens, {found.seconds * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
