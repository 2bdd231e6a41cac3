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

    History is memory here: :meth:`clear` ends the session (letting the memory structures
    consolidate it) and erases nothing; the session's turns stay its history. To erase a
    user's memory use :meth:`Memory.forget`, to remove one item :meth:`Memory.delete`.

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
        """Return the session's turns as LangChain messages, oldest first."""
        turns = self.memory.records.turns(self.user_id, session_id=self.session_id)
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
                turns, user_id=self.user_id, agent_id=self.agent_id, session_id=self.session_id
            )

    def clear(self) -> None:
        """End the session; its turns, and what memory learned from them, are kept."""
        self.memory.end_session(self.user_id, self.session_id)


_HISTORY_ROLES: dict[str, Role] = {"human": "user", "ai": "assistant"}
