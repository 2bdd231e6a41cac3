"""From mem0: a mem0-style quick start where only the import line differs.

The calls are mem0's (``Memory()``, ``add`` with ``user_id``, ``metadata`` and a
conversation, ``search`` with ``limit`` read through ``["results"]``, ``delete_all``,
``reset``); ``docs/memory-api.md`` has the table of mem0's calls and agentmem's. Memory
goes where ``AGENTMEM_HOME`` says (the platform's data folder by default), with the model
``AGENTMEM_MODEL`` names; offline, ``AGENTMEM_MODEL=none`` needs none::

    AGENTMEM_HOME=/tmp/mem AGENTMEM_MODEL=none .venv/bin/python examples/from_mem0.py
"""

from __future__ import annotations

from agentmem import Memory  # was: from mem0 import Memory


def main() -> None:
    """Add a conversation, search it, and clean up, as mem0's quick start does."""
    m = Memory()

    messages = [
        {"role": "user", "content": "I'm planning to watch a movie tonight. Any ideas?"},
        {"role": "assistant", "content": "How about a thriller? They can be quite engaging."},
        {"role": "user", "content": "I'm not a big fan of thrillers, but I love sci-fi."},
    ]
    result = m.add(messages, user_id="alice", metadata={"category": "movies"})
    for event in result["results"]:
        print(event["event"], event["memory"])  # noqa: T201  # as mem0's quick start prints

    related = m.search("What kind of movies does Alice like?", user_id="alice", limit=3)
    for hit in related["results"]:
        print(f"{hit['score']:.2f}", hit["memory"])  # noqa: T201

    m.delete_all(user_id="alice")
    m.reset()
    m.close()


if __name__ == "__main__":
    main()
