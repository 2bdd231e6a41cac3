"""A LangGraph store over agentmem: ``BaseStore`` whose search leaves superseded facts out.

LangGraph agents (and LangMem's memory tools) keep long-term memory in a ``BaseStore``:
JSON documents under a namespace and a key. :class:`AgentMemStore` is one, backed by
:class:`~agentmem.memory.Memory`::

    from agentmem import Memory
    from agentmem.langgraph import AgentMemStore

    memory = Memory("./memory", model="none")
    store = AgentMemStore(memory)  # namespaces ("memories", "<user id>", ...)
    graph = builder.compile(store=store)

What it adds to a plain key-value store:

* **Memory.** Each document's text reaches the user's memory as a turn, so it is folded
  into the configured structures and the fact ledger, and the chat app, the MCP server and
  :meth:`Memory.search` see it too. ``search(query=...)`` ranks documents by agentmem's
  recall over every structure.
* **Consistency.** A document that a later one supersedes ("I moved to Berlin" after "I
  live in Lisbon", under another key) is left out of ``search``; ``get`` still returns it,
  with ``current`` False. Writing a key again ends the old version's memory items.
* **Provenance.** Nothing is erased but by :meth:`Memory.forget`: a replaced or deleted
  version stays in :meth:`AgentMemStore.versions`, and its memory items in their history.
* **Time to live.** ``put(..., ttl=minutes)`` is supported (refreshed on reads unless told
  not to). An expired document is ended, and its memory items deleted, the next time the
  store is used (or by :meth:`AgentMemStore.sweep_ttl`), so it is never returned.

Namespaces map to agentmem users (and agents) through a pattern: by default
``("*", "{user_id}")``, LangMem's ``("memories", "{langgraph_user_id}")`` convention, so
``("memories", "ana", "profile")`` is user ``ana``'s. A namespace the pattern does not
match (``("docs",)``) belongs to the ``unscoped_user`` (``"langgraph"``); set it to
``None`` to refuse such namespaces instead. Documents of one user share one memory, so a
fact in one of the user's namespaces can supersede one in another.

This package is the only one that imports ``langgraph``; it ships as the ``langgraph``
extra (``pip install 'agentmem[langgraph]'``): without it, importing it raises
:class:`~agentmem.errors.MissingExtraError`. ``store`` holds the store, ``items`` what it
returns, ``scopes`` how a namespace names a user, ``values`` how a value is told to memory
and matched against a filter.
"""

from __future__ import annotations

from agentmem.errors import MissingExtraError
from agentmem.extras import install_command

try:
    from agentmem.langgraph.items import StoredItem, StoredSearchItem
    from agentmem.langgraph.scopes import DEFAULT_SCOPE, ScopeRule
    from agentmem.langgraph.store import AgentMemStore
except ImportError as exc:
    # Only a missing (or too old) langgraph, or langchain-core that it needs, is the
    # extra's fault; an import error of agentmem's own goes up as it is.
    if exc.name is None or not exc.name.startswith(("langgraph", "langchain_core")):
        raise
    raise MissingExtraError(
        "the LangGraph store needs langgraph", hint=install_command("langgraph")
    ) from exc

__all__ = [
    "DEFAULT_SCOPE",
    "AgentMemStore",
    "ScopeRule",
    "StoredItem",
    "StoredSearchItem",
]
