"""agentmem: long-term, consistent memory for conversational agents.

The public API is re-exported here and listed in ``__all__``: the ``Memory`` facade, the
agent loop, configuration and the factory, the manager and its results, the protocols a
structure, model or embedder implements, the values passed between them, the errors and the
LangChain adapters and the LangGraph store (with the ``langchain`` and ``langgraph`` extras,
listed only where installed; without them, getting one of their names raises
:class:`~agentmem.errors.MissingExtraError`).
Storage internals (``Records``, ``VectorIndex``, ``ItemIndex``) are imported from their
modules by those who build on them.
Names are imported on first use, so ``import agentmem`` stays fast (chromadb and torch load
only when needed).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from agentmem.errors import (
    AgentMemError,
    ConfigError,
    ConstraintViolationError,
    DatabaseBusyError,
    DataDirLockedError,
    DiskFullError,
    EmbeddingError,
    InputError,
    MissingExtraError,
    ModelError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    NotFoundError,
    ReadOnlyError,
    StorageError,
    StructuredOutputError,
    UnusableAnswerError,
)
from agentmem.types import (
    Change,
    ChangeKind,
    Completion,
    ItemEvent,
    MemoryItem,
    Message,
    Outline,
    Query,
    Recalled,
    Scope,
    Turn,
    Usage,
)

if TYPE_CHECKING:
    from agentmem.agent import Agent, Budget, TurnResult
    from agentmem.async_memory import AsyncMemory
    from agentmem.config import Config, ModelSpec, load_config
    from agentmem.factory import Components, build, build_agent

    # The extras' names are re-exported where installed (``__all__`` below adds them then).
    from agentmem.langchain import AgentMemChatModel as AgentMemChatModel
    from agentmem.langchain import AgentMemRetriever as AgentMemRetriever
    from agentmem.langchain import LangChainChatModel as LangChainChatModel
    from agentmem.langgraph import AgentMemStore as AgentMemStore
    from agentmem.manager import ForgetReceipt, MemoryManager, RecallResult, WriteReport
    from agentmem.memory import AddResult, ChangeResult, Memory, SearchResult
    from agentmem.models.embeddings import MiniLMEmbedder
    from agentmem.protocols import (
        Browsable,
        ChatModel,
        Consolidating,
        Editable,
        Embedder,
        MemoryStore,
        StoreContext,
    )

__version__ = "0.1.0"

_LAZY = {
    "Agent": "agentmem.agent",
    "AsyncMemory": "agentmem.async_memory",
    "Budget": "agentmem.agent",
    "TurnResult": "agentmem.agent",
    "Config": "agentmem.config",
    "ModelSpec": "agentmem.config",
    "load_config": "agentmem.config",
    "MiniLMEmbedder": "agentmem.models.embeddings",
    "Components": "agentmem.factory",
    "build": "agentmem.factory",
    "build_agent": "agentmem.factory",
    "AgentMemChatModel": "agentmem.langchain",
    "AgentMemRetriever": "agentmem.langchain",
    "LangChainChatModel": "agentmem.langchain",
    "AgentMemStore": "agentmem.langgraph",
    "ForgetReceipt": "agentmem.manager",
    "MemoryManager": "agentmem.manager",
    "RecallResult": "agentmem.manager",
    "WriteReport": "agentmem.manager",
    "AddResult": "agentmem.memory",
    "ChangeResult": "agentmem.memory",
    "Memory": "agentmem.memory",
    "SearchResult": "agentmem.memory",
    "Browsable": "agentmem.protocols",
    "ChatModel": "agentmem.protocols",
    "Consolidating": "agentmem.protocols",
    "Editable": "agentmem.protocols",
    "Embedder": "agentmem.protocols",
    "MemoryStore": "agentmem.protocols",
    "StoreContext": "agentmem.protocols",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentmem' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AddResult",
    "Agent",
    "AsyncMemory",
    "AgentMemError",
    "Browsable",
    "Budget",
    "Change",
    "ChangeKind",
    "ChangeResult",
    "ChatModel",
    "Completion",
    "Components",
    "Config",
    "ConfigError",
    "Consolidating",
    "ConstraintViolationError",
    "DataDirLockedError",
    "DatabaseBusyError",
    "DiskFullError",
    "Editable",
    "Embedder",
    "EmbeddingError",
    "ForgetReceipt",
    "InputError",
    "ItemEvent",
    "Memory",
    "MemoryItem",
    "MemoryManager",
    "MemoryStore",
    "Message",
    "MiniLMEmbedder",
    "MissingExtraError",
    "ModelError",
    "ModelResponseError",
    "ModelSpec",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "NotFoundError",
    "Outline",
    "Query",
    "ReadOnlyError",
    "RecallResult",
    "Recalled",
    "Scope",
    "SearchResult",
    "StorageError",
    "StoreContext",
    "StructuredOutputError",
    "Turn",
    "TurnResult",
    "UnusableAnswerError",
    "Usage",
    "WriteReport",
    "build",
    "build_agent",
    "load_config",
]

# An extra's names are listed only where it is installed, so that ``from agentmem import *``
# works without it (getting one of them by name still says which extra to install).
# Each extra's names, after the packages they import.
_EXTRAS = {
    ("langchain_core",): ["AgentMemChatModel", "AgentMemRetriever", "LangChainChatModel"],
    ("langgraph", "langchain_core"): ["AgentMemStore"],
}


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ImportError:
        return False


for _packages, _names in _EXTRAS.items():
    if all(_installed(package) for package in _packages):
        __all__ += _names
del _packages, _names
