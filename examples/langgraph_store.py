"""A LangGraph graph that keeps its long-term memory in agentmem, through ``AgentMemStore``.

The graph stores what the user says in the store (a LangGraph ``BaseStore``) and recalls
from it by meaning. Because the store is agentmem's memory, a fact that a later one
supersedes ("I moved to Berlin" after "I live in Lisbon") is left out of what the graph
recalls, though it stays readable under its key and in its versions. It needs the
``langgraph`` extra (``.venv/bin/pip install -e '.[langgraph]'``) and runs offline::

    .venv/bin/python examples/langgraph_store.py

The nodes call no model; in a real agent, a tool-calling model would decide what to store
(LangMem's ``create_manage_memory_tool(namespace=("memories", "{langgraph_user_id}"))``
works with this store as it is).
"""

from __future__ import annotations

import tempfile
from typing import Any, TypedDict

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from rich.console import Console

from agentmem import Memory
from agentmem.langgraph import AgentMemStore

#: The store's default scope reads the user from the second label (LangMem's convention).
NAMESPACE = ("memories", "ana")


class State(TypedDict):
    n: int
    said: str
    recalled: list[str]


def remember(state: State) -> dict[str, Any]:
    """Store what the user said, under a key of its own."""
    get_store().put(NAMESPACE, f"note-{state['n']}", {"content": state["said"]})
    return {}


def recall(state: State) -> dict[str, Any]:
    """Recall the three stored memories closest to what was said."""
    found = get_store().search(NAMESPACE, query=state["said"], limit=3)
    return {"recalled": [item.value["content"] for item in found]}


def main() -> None:
    """Tell the graph three things, then show what it recalls and what memory keeps."""
    console = Console(markup=False, highlight=False, soft_wrap=True)
    with tempfile.TemporaryDirectory() as folder, Memory(folder, model="none") as memory:
        store = AgentMemStore(memory)
        builder = StateGraph(State)
        builder.add_node("remember", remember)
        builder.add_node("recall", recall)
        builder.add_edge(START, "remember")
        builder.add_edge("remember", "recall")
        builder.add_edge("recall", END)
        graph = builder.compile(store=store)

        said_lines = ("I live in Lisbon.", "My dog is called Rex.", "I moved to Berlin.")
        for n, said in enumerate(said_lines, start=1):
            recalled = graph.invoke({"n": n, "said": said, "recalled": []})["recalled"]
            console.print(f"you: {said}\n  recalled: {recalled}")

        console.print("\nsearch 'Where do I live?':")
        for item in store.search(NAMESPACE, query="Where do I live?"):
            console.print(f"  {item.key}: {item.value['content']}  (current: {item.current})")
        old = store.get(NAMESPACE, "note-1")
        assert old is not None
        console.print(f"get note-1: {old.value['content']}  (current: {old.current})")
        console.print(f"  superseded by memory item {old.superseded_by}")

        store.put(NAMESPACE, "note-2", {"content": "My dog is called Rex and he is three."})
        versions = store.versions(NAMESPACE, "note-2")
        console.print("versions of note-2:")
        for version in versions:
            ended = f"ended: {version.end_reason}" if version.ended_at else "live"
            console.print(f"  {version.value['content']}  ({ended})")

        # The same memory answers every other way in: the chat app, MCP, Memory.search.
        current = memory.search("Where do I live?", user_id="ana", top_k=3).items
        console.print(f"Memory.search, current: {[r['memory'] for r in current]}")


if __name__ == "__main__":
    main()
