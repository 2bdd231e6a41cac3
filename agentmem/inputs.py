"""Checking what callers of the ``Memory`` facade pass: user ids, times and messages.

Everything is checked before anything is stored, so bad input raises
:class:`~agentmem.errors.InputError` and leaves memory as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict

from agentmem.errors import InputError
from agentmem.types import Message

logger = logging.getLogger(__name__)

#: The keys a message dict may have.
MESSAGE_KEYS = {"role", "content", "name", "timestamp", "metadata"}


def check_user(user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 256:
        raise InputError(
            "user_id must be a non-empty string of at most 256 characters",
            hint="every call is scoped by user: pass user_id=...",
        )
    check_unicode(user_id, "user_id")
    return user_id


def check_unicode(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what} is not valid Unicode text: {exc.reason}") from exc


def moment_of(value: datetime | str | None, what: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError as exc:
            raise InputError(f"{what} is not an ISO 8601 time: {value!r}") from exc
    raise InputError(f"{what} must be a datetime or an ISO 8601 string, not {value!r}")


class Spec(TypedDict):
    role: Literal["user", "assistant"]
    name: str
    content: str
    timestamp: datetime | None
    metadata: dict[str, Any]


def turn_specs(
    messages: str | Mapping[str, Any] | Message | Sequence[Mapping[str, Any] | Message],
) -> list[Spec]:
    """Validate messages into turn specs; system messages are skipped.

    Raises:
        InputError: A message is malformed, or no user/assistant message is left.
    """
    if isinstance(messages, str):
        listed: list[Any] = [{"role": "user", "content": messages}]
    elif isinstance(messages, Mapping | Message):
        listed = [messages]
    elif isinstance(messages, Sequence):
        listed = list(messages)
    else:
        raise InputError(f"messages must be a list of message dicts, not {type(messages).__name__}")
    specs: list[Spec] = []
    for position, message in enumerate(listed):
        if isinstance(message, Message):
            message = {"role": message.role, "content": message.content, "name": message.name}
        if not isinstance(message, Mapping):
            raise InputError(f"message {position} is a {type(message).__name__}, not a dict")
        unknown = set(message) - MESSAGE_KEYS
        if unknown:
            raise InputError(f"message {position} has unknown keys {sorted(unknown)}")
        role = message.get("role")
        if role == "system":
            logger.debug("skipping a system message: instructions are not memory")
            continue
        if role not in ("user", "assistant"):
            raise InputError(f"message {position} has role {role!r}; use 'user' or 'assistant'")
        name = message.get("name") or role
        if not isinstance(name, str):
            raise InputError(f"message {position}'s name must be a string")
        meta = message.get("metadata") or {}
        if not isinstance(meta, Mapping):
            raise InputError(f"message {position}'s metadata must be a mapping")
        specs.append(
            Spec(
                role=role,
                name=name,
                content=content_of(message.get("content"), position),
                timestamp=moment_of(message.get("timestamp"), f"message {position}'s timestamp"),
                metadata=dict(meta),
            )
        )
    if not specs:
        raise InputError("no user or assistant message to add")
    return specs


def content_of(content: Any, position: int) -> str:
    """Return a message's text; OpenAI-style lists of text parts are joined."""
    if isinstance(content, str):
        return content  # the records database checks emptiness and size
    if isinstance(content, list) and all(
        isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "\n".join(p["text"] for p in content)
    raise InputError(f"message {position}'s content must be text, not {type(content).__name__}")


__all__ = ["MESSAGE_KEYS", "Spec", "check_unicode", "check_user", "moment_of", "turn_specs"]
