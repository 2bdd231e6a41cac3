"""How the LangGraph store tells memory a value, and matches values and namespaces.

A value's text is what reaches memory as a turn: the fields an ``IndexConfig`` names
(LangGraph's path syntax), or by default every field, a sentence as it is and a short
value as ``field: value``. Filters and namespace conditions follow LangGraph's documented
semantics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langgraph.store.base import IndexConfig, MatchCondition, get_text_at_path

from agentmem.errors import InputError

#: A value's text with at least this many words reads as a sentence and is given alone;
#: shorter values are given as ``field: value``.
_SENTENCE_WORDS = 3
#: What a field's path looks like in ``field: value`` (``_leaves`` joins keys with dots).
_FIELD_PATH = re.compile(r"[^\s:]+")


def index_fields(index: IndexConfig | None) -> list[str] | None:
    """Return the fields an ``IndexConfig`` names (``None``: every field, the default)."""
    fields = (index or {}).get("fields")
    return None if not fields or list(fields) == ["$"] else list(fields)


def json_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``value`` as a JSON object, or raise ``InputError``."""
    if not isinstance(value, Mapping):
        raise InputError(f"a store value must be a mapping, not {type(value).__name__}")
    try:
        dumped = json.dumps(dict(value), ensure_ascii=False)
        dumped.encode("utf-8")
        loaded = json.loads(dumped)
    except UnicodeEncodeError as exc:
        raise InputError(f"a store value is not valid Unicode text: {exc.reason}") from exc
    except (TypeError, ValueError) as exc:
        raise InputError(f"a store value must be JSON-serializable: {exc}") from exc
    assert isinstance(loaded, dict)
    return loaded


def document_text(value: Mapping[str, Any], fields: Sequence[str] | bool | None) -> str:
    """Return the text memory is told for a value (empty: the value is not indexed)."""
    if fields is False:
        return ""
    if fields and fields is not True and list(fields) != ["$"]:
        texts = [text for path in fields for text in get_text_at_path(value, path)]
        return "\n".join(text for text in texts if text.strip())
    lines = []
    for path, leaf in _leaves(value, ""):
        shown = leaf if isinstance(leaf, str) else json.dumps(leaf)
        if not shown.strip():
            continue
        sentence = isinstance(leaf, str) and len(leaf.split()) >= _SENTENCE_WORDS
        lines.append(shown if sentence or not path else f"{path}: {shown}")
    return "\n".join(lines)


def _leaves(value: Any, path: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _leaves(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for inner in value:
            yield from _leaves(inner, path)
    elif value is not None:
        yield path, value


def matches(value: Any, condition: Any) -> bool:
    """Whether a stored value meets a filter (LangGraph's documented filter semantics)."""
    if isinstance(condition, Mapping):
        if any(str(key).startswith("$") for key in condition):
            return all(_compare(value, op, wanted) for op, wanted in condition.items())
        if not isinstance(value, Mapping):
            return False
        return all(matches(_at(value, str(key)), wanted) for key, wanted in condition.items())
    if isinstance(condition, list | tuple):
        return (
            isinstance(value, list | tuple)
            and len(value) == len(condition)
            and all(matches(v, c) for v, c in zip(value, condition, strict=True))
        )
    return bool(value == condition)


def _at(value: Mapping[str, Any], key: str) -> Any:
    """Return the field a filter key names: ``"user.access-level"`` reaches into objects.

    A key the value holds as it is wins over the dotted path (a field may have a dot in
    its name); a path that leads nowhere is ``None``, as a missing field is.
    """
    if key in value or "." not in key:
        return value.get(key)
    found: Any = value
    for part in key.split("."):
        if not isinstance(found, Mapping) or part not in found:
            return None
        found = found[part]
    return found


def scored_texts(text: str) -> list[str]:
    """Return the texts a document is scored by: each indexed line, and a short value alone.

    A short value reaches memory as ``field: value`` (so memory knows what it is); a query
    for the value itself should still find it as LangGraph's stores do, which embed the
    field's text alone.
    """
    texts = []
    for line in text.split("\n"):
        texts.append(line)
        field, separator, shown = line.partition(": ")
        if separator and shown and _FIELD_PATH.fullmatch(field):
            texts.append(shown)
    return texts


def _compare(value: Any, operator: str, wanted: Any) -> bool:
    if operator == "$eq":
        return bool(value == wanted)
    if operator == "$ne":
        return bool(value != wanted)
    if operator in ("$gt", "$gte", "$lt", "$lte"):
        if value is None:
            return False
        try:
            left, right = float(value), float(wanted)
        except (TypeError, ValueError):
            return False
        return {
            "$gt": left > right,
            "$gte": left >= right,
            "$lt": left < right,
            "$lte": left <= right,
        }[operator]
    raise InputError(
        f"unsupported filter operator {operator!r}",
        hint="use $eq, $ne, $gt, $gte, $lt or $lte",
    )


def namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """Whether a namespace meets a prefix or suffix condition (``"*"``: any label)."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    labels = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    if not path:
        return True
    return all(wanted in ("*", label) for label, wanted in zip(labels, path, strict=True))


__all__ = [
    "document_text",
    "index_fields",
    "json_value",
    "matches",
    "namespace_matches",
    "scored_texts",
]
