"""Checking what callers pass: user ids, times, messages and the text of turns.

Everything is checked before anything is stored, so bad input raises
:class:`~agentmem.errors.InputError` and leaves memory as it was. The ``Memory`` facade
checks here first, and the records database checks a turn's text and time again with the
same functions (:func:`check_turn_text`, :func:`stored_moment`), so a way in that skips
the facade (the agent loop, the replay) meets the same rules.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict

from agentmem.errors import InputError
from agentmem.types import Message, as_utc_naive

logger = logging.getLogger(__name__)

#: The keys a message dict may have.
MESSAGE_KEYS = {"role", "content", "name", "timestamp", "metadata"}

#: Longest turn text accepted (characters); longer input is refused with InputError.
MAX_TURN_CHARS = 200_000

#: Control characters (Unicode category Cc) other than tab, line feed and carriage return.
#: A turn holding one is refused: NUL ends strings in SQLite's C API and most tools, and
#: an escape sequence (ESC, BEL, the C1 CSI) would drive the terminal of whoever prints
#: the memory later.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

#: The earliest and the latest dialogue time memory stores: a day inside the calendar at
#: each end. Dates are derived from a turn's time (its "yesterday" and "tomorrow", its
#: session's day), and the calendar's very edges (``datetime.min``, ``datetime.max``,
#: 9999-12-31) are what programs write for "unknown" and "never", not when anything was
#: said; stored, such a time sorts before or after every real one.
EARLIEST_MOMENT = datetime(1, 1, 2)
LATEST_MOMENT = datetime(9999, 12, 30, 23, 59, 59, 999999)


def check_user(user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 256:
        raise InputError(
            "user_id must be a non-empty string of at most 256 characters",
            hint="every call is scoped by user: pass user_id=...",
        )
    check_unicode(user_id, "user_id")
    check_plain(user_id, "user_id")
    return user_id


def check_unicode(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what} is not valid Unicode text: {exc.reason}") from exc


def moment_of(value: datetime | str | None, what: str, *, stored: bool = True) -> datetime | None:
    """Return a time a caller passed as naive UTC, agentmem's convention.

    A naive time is taken as UTC already; an aware one (or an ISO 8601 string with an
    offset) is converted, so it compares with the stored times.

    Args:
        value: A datetime, an ISO 8601 string, or ``None`` (returned as is).
        what: What the time is, for the error message ("timestamp", "as_of").
        stored: Whether the time will be stored (a turn's, an invalidation's): it must
            then lie between :data:`EARLIEST_MOMENT` and :data:`LATEST_MOMENT`. A time
            that is only compared (``as_of``) may be anything the calendar holds.

    Raises:
        InputError: The value is not a time, or not one memory can store.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InputError(f"{what} is not an ISO 8601 time: {value!r}") from exc
    if not isinstance(value, datetime):
        raise InputError(f"{what} must be a datetime or an ISO 8601 string, not {value!r}")
    return stored_moment(value, what) if stored else _utc(value, what)


def stored_moment(value: datetime, what: str) -> datetime:
    """Return a time to store as naive UTC, refusing one outside the accepted range.

    Raises:
        InputError: The time lies outside :data:`EARLIEST_MOMENT` .. :data:`LATEST_MOMENT`
            (or, aware, past either end of the calendar in UTC).
    """
    moment = _utc(value, what)
    if not EARLIEST_MOMENT <= moment <= LATEST_MOMENT:
        raise InputError(
            f"{what} {value.isoformat()} is outside the times memory stores "
            f"({EARLIEST_MOMENT.date().isoformat()} to {LATEST_MOMENT.date().isoformat()})",
            hint="a time at the calendar's edge stands for 'unknown' or 'never'; give the "
            "time the words were said",
        )
    return moment


def _utc(value: datetime, what: str) -> datetime:
    try:
        return as_utc_naive(value)
    except OverflowError as exc:  # e.g. datetime.min at +01:00 is before the year 1 in UTC
        raise InputError(f"{what} {value.isoformat()} has no time in UTC: {exc}") from exc


def check_turn_text(value: Any, what: str = "turn text") -> str:
    """Return a turn's text unchanged if memory can store it as it is.

    Raises:
        InputError: The text is not a string, too long, not valid Unicode, empty (or
            only whitespace), or holds a control character other than tab, line feed
            and carriage return (the message gives its position). Nothing is stored.
    """
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > MAX_TURN_CHARS:
        raise InputError(f"{what} is {len(value):,} characters; the limit is {MAX_TURN_CHARS:,}")
    check_unicode(value, what)
    if not value.strip():
        raise InputError(f"{what} is empty")
    check_plain(value, what)
    return value


def check_plain(value: str, what: str) -> None:
    """Refuse text holding a control character other than tab, line feed and return.

    Raises:
        InputError: Naming the first such character and its position (from 1).
    """
    found = CONTROL_CHARACTERS.search(value)
    if found is not None:
        raise InputError(
            f"{what} is not plain text: character {found.start() + 1} of {len(value)} is "
            f"the control character U+{ord(found.group()):04X}",
            hint="remove control characters (tab, line feed and carriage return are "
            "kept); nothing was stored",
        )


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
        check_plain(name, f"message {position}'s name")
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
    """Return a message's text, checked; OpenAI-style lists of text parts are joined.

    Raises:
        InputError: The content is not text, or text memory does not store.
    """
    if isinstance(content, list) and all(
        isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        content = "\n".join(p["text"] for p in content)
    elif not isinstance(content, str):
        raise InputError(f"message {position}'s content must be text, not {type(content).__name__}")
    return check_turn_text(content)


__all__ = [
    "CONTROL_CHARACTERS",
    "EARLIEST_MOMENT",
    "LATEST_MOMENT",
    "MAX_TURN_CHARS",
    "MESSAGE_KEYS",
    "Spec",
    "check_plain",
    "check_turn_text",
    "check_unicode",
    "check_user",
    "moment_of",
    "stored_moment",
    "turn_specs",
]
