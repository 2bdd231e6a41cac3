"""LangChain interop: a retriever over :class:`~agentmem.memory.Memory`, and chat model adapters.

This is the only package that imports ``langchain_core``; ``import agentmem`` never loads it.
It ships as the ``langchain`` extra (``pip install 'agentmem[langchain]'``): without it,
importing this package (or one of its modules), or one of its names from ``agentmem``,
raises :class:`~agentmem.errors.MissingExtraError`.

* :class:`AgentMemRetriever` is a ``BaseRetriever`` over :meth:`Memory.search`: drop it into
  any LangChain chain that takes a retriever. It passes langchain-tests' standard
  retriever suite (``k`` is its number-of-results argument, ``top_k`` too, in the constructor and in
  ``invoke``).
* :class:`LangChainChatModel` makes any LangChain chat model an agentmem
  :class:`~agentmem.protocols.ChatModel` (to build memory or answer in the agent loop).
* :class:`AgentMemChatModel` is the reverse: an agentmem chat model (an OpenAI-compatible
  endpoint, the local GGUF model, the scripted fake) as a LangChain ``BaseChatModel``.
* :class:`AgentMemChatMessageHistory` is a ``BaseChatMessageHistory`` over a session's
  turns, so ``RunnableWithMessageHistory`` stores every exchange in memory.
* :func:`memory_tools` gives a tool-calling agent ``search_memory``, ``save_memory`` and
  ``forget_memory``.

One module per concern: ``retriever`` (the retriever, :func:`record_document`),
``messages`` (message conversion both ways), ``chat_models`` (the two chat model adapters,
:func:`json_instruction`), ``history`` (the message history) and ``tools`` (the memory
tools). Import the names from this package; the modules' layout is not public API.
"""

from __future__ import annotations

from agentmem.errors import MissingExtraError
from agentmem.extras import install_command

try:
    from agentmem.langchain.chat_models import (
        AgentMemChatModel,
        LangChainChatModel,
        json_instruction,
    )
    from agentmem.langchain.history import AgentMemChatMessageHistory
    from agentmem.langchain.messages import from_langchain_messages, to_langchain_messages
    from agentmem.langchain.retriever import AgentMemRetriever, record_document
    from agentmem.langchain.tools import memory_tools
except ImportError as exc:
    # Only a missing (or too old) langchain-core is the extra's fault; an import error of
    # agentmem's own goes up as it is.
    if exc.name is None or not exc.name.startswith("langchain_core"):
        raise
    raise MissingExtraError(
        "the LangChain adapters need langchain-core", hint=install_command("langchain")
    ) from exc

__all__ = [
    "AgentMemChatMessageHistory",
    "AgentMemChatModel",
    "AgentMemRetriever",
    "LangChainChatModel",
    "from_langchain_messages",
    "json_instruction",
    "memory_tools",
    "record_document",
    "to_langchain_messages",
]
