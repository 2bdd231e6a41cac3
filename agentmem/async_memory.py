"""``AsyncMemory``: the :class:`~agentmem.memory.Memory` API, awaitable (mem0's ``AsyncMemory``).

agentmem has one synchronous core (house style: no async twin of every method). An
asyncio application still must not block its event loop on a search or a write, so each
call here runs the synchronous one in a worker thread; ``Memory``'s own lock keeps calls
from several tasks in order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from agentmem.manager import ForgetReceipt
from agentmem.memory import Memory
from agentmem.results import AddResult, ChangeResult, HistoryEntry, MemoryRecord, SearchResult


class AsyncMemory:
    """Awaitable memory: the same methods as :class:`Memory`, each one ``async``.

    Args:
        data_dir: As :class:`Memory` takes it.
        memory: An open :class:`Memory` to wrap instead of opening one.
        **options: :class:`Memory`'s keyword arguments (``model="none"``, ...).
    """

    def __init__(
        self, data_dir: str | Path | None = None, *, memory: Memory | None = None, **options: Any
    ) -> None:
        self.memory = memory if memory is not None else Memory(data_dir, **options)

    async def add(self, messages: Any, **options: Any) -> AddResult:
        """Await :meth:`Memory.add`."""
        return await asyncio.to_thread(self.memory.add, messages, **options)

    async def search(self, query: str, **options: Any) -> SearchResult:
        """Await :meth:`Memory.search`."""
        return await asyncio.to_thread(self.memory.search, query, **options)

    async def get(self, memory_id: str, *, user_id: str) -> MemoryRecord:
        """Await :meth:`Memory.get`."""
        return await asyncio.to_thread(self.memory.get, memory_id, user_id=user_id)

    async def get_all(self, **options: Any) -> list[MemoryRecord]:
        """Await :meth:`Memory.get_all`."""
        return await asyncio.to_thread(self.memory.get_all, **options)

    async def history(self, memory_id: str, *, user_id: str) -> list[HistoryEntry]:
        """Await :meth:`Memory.history`."""
        return await asyncio.to_thread(self.memory.history, memory_id, user_id=user_id)

    async def update(self, memory_id: str, text: str, **options: Any) -> ChangeResult:
        """Await :meth:`Memory.update`."""
        return await asyncio.to_thread(self.memory.update, memory_id, text, **options)

    async def delete(self, memory_id: str, **options: Any) -> ChangeResult:
        """Await :meth:`Memory.delete`."""
        return await asyncio.to_thread(self.memory.delete, memory_id, **options)

    async def delete_all(self, *, user_id: str) -> ForgetReceipt:
        """Await :meth:`Memory.delete_all`."""
        return await asyncio.to_thread(self.memory.delete_all, user_id=user_id)

    async def forget(self, user_id: str) -> ForgetReceipt:
        """Await :meth:`Memory.forget`."""
        return await asyncio.to_thread(self.memory.forget, user_id)

    async def reset(self) -> list[ForgetReceipt]:
        """Await :meth:`Memory.reset`."""
        return await asyncio.to_thread(self.memory.reset)

    async def close(self) -> None:
        """Await :meth:`Memory.close`."""
        await asyncio.to_thread(self.memory.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


__all__ = ["AsyncMemory"]
