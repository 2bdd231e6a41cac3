"""Convert messages between agentmem and LangChain."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage

from agentmem.errors import InputError
from agentmem.types import Message, Role

_ROLES: dict[str, Role] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
}


def to_langchain_messages(messages: Sequence[Message]) -> list[BaseMessage]:
    """Convert agentmem messages to LangChain messages."""
    converted: list[BaseMessage] = []
    for message in messages:
        if message.role == "system":
            converted.append(SystemMessage(content=message.content))
        elif message.role == "assistant":
            converted.append(AIMessage(content=message.content, name=message.name))
        else:
            converted.append(HumanMessage(content=message.content, name=message.name))
    return converted


def from_langchain_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """Convert LangChain messages to agentmem messages.

    Raises:
        InputError: A message has a role agentmem's chat models do not take (e.g. a tool
            result).
    """
    converted = []
    for message in messages:
        kind = message.role if isinstance(message, ChatMessage) else message.type
        role = _ROLES.get(kind)
        if role is None:
            raise InputError(
                f"agentmem chat models take system, user and assistant messages, not {kind!r}"
            )
        converted.append(Message(role, str(message.text), message.name))
    return converted
