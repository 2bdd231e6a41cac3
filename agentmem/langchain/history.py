"""A LangChain chat message history kept as a session of agentmem turns."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agentmem.memory import Memory
from agentmem.types import Role

logger = logging.getLogger(__name__)


class AgentMemChatMessageHistory(BaseChatMessageHistory):
    """Keep a LangChain conversation's history as a session of agentmem turns.

    With ``RunnableWithMessageHistory``, every exchange goes through :meth:`Memory.add`
    (human messages as user turns, AI messages as assistant turns, in the given session),
    so memory learns from it as it would from any conversation, and a later session
    recalls it (through :class:`AgentMemRetriever`, say). :attr:`messages` reads the
    session's turns back, oldest first.

    :meth:`clear` removes the session's messages, as the contract says: :attr:`messages`
    is empty afterwards, for this object and any later one of the same session, and new
    messages start afresh. What memory learned from the cleared messages stays in
    long-term memory (the facts, summaries and the turns themselves, which are the
    provenance those items cite): clearing a conversation's window is not forgetting
    the user. Underneath, the session's agentmem session is ended (letting the memory
    structures consolidate it) and later messages go to a new one, ``<session_id>~1``,
    ``~2``, ... To erase what memory holds use :meth:`Memory.forget` (a user) or
    :meth:`Memory.delete` with ``erase=True`` (one item and its turn).

    ``BaseChatMessageHistory`` is deprecated in langchain-core 1.x (removal in 2.0);
    this class keeps working until then. For new code, LangGraph's path is a
    checkpointer for the conversation plus :class:`agentmem.langgraph.AgentMemStore`
    for long-term memory (``docs/langgraph.md``).

    System messages are instructions, not memory, and tool calls and tool results are the
    agent's work, not the dialogue: neither is stored.

    Example:
        ```python
        chain_with_history = RunnableWithMessageHistory(
            chain,
            lambda session_id: AgentMemChatMessageHistory(memory, "ana", session_id),
            input_messages_key="question",
            history_messages_key="history",
        )
        chain_with_history.invoke(
            {"question": "Hi"}, config={"configurable": {"session_id": "s1"}}
        )
        ```

    Args:
        memory: The memory that stores the turns.
        user_id: Whose conversation this is.
        session_id: The dialogue session (created on the first message if new).
        agent_id: The agent in the conversation, recorded on turns and items.
    """

    def __init__(
        self, memory: Memory, user_id: str, session_id: str, *, agent_id: str | None = None
    ) -> None:
        self.memory = memory
        self.user_id = user_id
        self.session_id = session_id
        self.agent_id = agent_id

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]  # read-only: the turns
        """Return the session's turns since it was last cleared, oldest first."""
        turns = self.memory.records.turns(self.user_id, session_id=self._current())
        converted: list[BaseMessage] = []
        for turn in turns:
            name = turn.speaker if turn.speaker != turn.role else None
            if turn.role == "assistant":
                converted.append(AIMessage(content=turn.text, name=name))
            else:
                converted.append(HumanMessage(content=turn.text, name=name))
        return converted

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store the human and AI messages as turns of the session, in one :meth:`Memory.add`.

        Raises:
            InputError: A message's text is not acceptable; nothing was stored.
        """
        turns = []
        for message in messages:
            role = _HISTORY_ROLES.get(message.type)
            text = str(message.text)
            if role is None or not text.strip():
                logger.debug("not storing a %s message in history", message.type)
                continue
            turn: dict[str, Any] = {"role": role, "content": text}
            if message.name:
                turn["name"] = message.name
            turns.append(turn)
        if turns:
            self.memory.add(
                turns, user_id=self.user_id, agent_id=self.agent_id, session_id=self._current()
            )

    def clear(self) -> None:
        """Remove the session's messages; what memory learned from them stays.

        The underlying agentmem session ends (its structures consolidate it) and the
        history goes on in a new, empty one.
        """
        current = self._current()
        if not self.memory.records.turns(self.user_id, session_id=current):
            return  # nothing to clear: no empty session follows an empty one
        self.memory.end_session(self.user_id, current)
        self.memory.records.start_session(
            self.user_id, session_id=_next(self.session_id, current), agent_id=self.agent_id
        )

    def _current(self) -> str:
        """Return the agentmem session holding the history since it was last cleared.

        Clearing starts ``<session_id>~<n>``; the latest of them holds the history.
        """
        known = {s.id for s in self.memory.records.sessions(self.user_id)}
        current = self.session_id
        while (following := _next(self.session_id, current)) in known:
            current = following
        return current


def _next(session_id: str, current: str) -> str:
    """Return the agentmem session that follows ``current`` when it is cleared."""
    generation = 0 if current == session_id else int(current.rsplit("~", 1)[1])
    return f"{session_id}~{generation + 1}"


_HISTORY_ROLES: dict[str, Role] = {"human": "user", "ai": "assistant"}
