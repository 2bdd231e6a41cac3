"""Valid answers to structured-output requests, built from the request's own prompt."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NUMBERED_LINE = re.compile(r"^\[(\d+)\]\s*(.*)$", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z0-9][\w'-]*")
_STRING_WORDS = 8


@dataclass(frozen=True)
class _Prompt:
    """What :func:`schema_reply` borrows from a request's messages to fill a schema."""

    text: str
    lines: tuple[tuple[int, str], ...]  # ("[12] Nora: I moved" -> (12, "Nora: I moved"))
    fallback_words: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> _Prompt:
        contents: list[str] = []
        for message in body.get("messages") or ():
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                contents.append(content)
        text = "\n".join(contents)
        lines = tuple((int(n), rest) for n, rest in _NUMBERED_LINE.findall(text))
        last = contents[-1] if contents else ""
        return cls(text, lines, _words(last) or "OK")

    def line(self, index: int) -> tuple[int | None, str]:
        if not self.lines:
            return None, self.fallback_words
        number, rest = self.lines[index % len(self.lines)]
        return number, _words(rest) or self.fallback_words

    def quoted(self, key: str) -> list[Any]:
        """Return the values the prompt quotes as JSON ``"key": value``, in order, once each.

        Placeholders without a letter or digit (``"..."`` in a format example) are no data.
        """
        pattern = re.compile(rf'"{re.escape(key)}"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')
        values: list[Any] = []
        for raw in pattern.findall(self.text):
            value = json.loads(raw)
            if re.search(r"\w", str(value)) and value not in values:
                values.append(value)
        return values


def _words(text: str) -> str:
    return " ".join(_WORD.findall(text)[:_STRING_WORDS])


def schema_reply(body: Mapping[str, Any], *, text: str = "OK") -> str | dict[str, Any]:
    """Answer a chat request validly: an instance of its JSON schema, else ``text``.

    Meant as ``FakeOpenAIServer(default_reply=schema_reply)``. For a request whose
    ``response_format`` is a ``json_schema``, the schema is walked: an object gets its
    required properties; ``const``, ``enum`` and ``anyOf``/``oneOf``/``allOf`` take their
    first choice; a boolean is ``true``, ``null`` is ``null``. Values are borrowed from the
    prompt the way prompts show what an answer may cite:

    * lines numbered ``[N] ...`` are the items an answer can refer to: integers are such
      an ``N``, strings are the first words of its line (of the last message when the
      prompt numbers no lines), and the elements of an array go through the lines in
      order;
    * an array of objects whose property the prompt quotes as JSON (``"node_id": "a1"``)
      gets one element per quoted value, so an answer covers every item it was shown.

    Other arrays get one element (or ``minItems``). A ``json_object`` request gets ``{}``.

    Args:
        body: The chat completion request body.
        text: The answer to a request without a JSON format.
    """
    response_format = body.get("response_format") or {}
    if not isinstance(response_format, dict):
        return text
    if response_format.get("type") == "json_object":
        return {}
    if response_format.get("type") != "json_schema":
        return text
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    value = _instance(schema, _Prompt.of(body), 0)
    return value if isinstance(value, dict) else json.dumps(value)


def _instance(schema: Mapping[str, Any], prompt: _Prompt, index: int) -> Any:
    """Return a value valid under ``schema``, filled from the ``index``-th numbered line."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        choices = schema.get(combinator)
        if choices:
            return _instance(choices[0], prompt, index)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            name: _instance(properties.get(name) or {}, prompt, index)
            for name in schema.get("required") or ()
        }
    if kind == "array":
        return _array(schema, prompt, index)
    number, words = prompt.line(index)
    if kind == "integer":
        return number if number is not None else int(schema.get("minimum", 0))
    if kind == "number":
        return float(number if number is not None else schema.get("minimum", 0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    limit = schema.get("maxLength")
    return words[:limit].rstrip() if isinstance(limit, int) else words


def _array(schema: Mapping[str, Any], prompt: _Prompt, index: int) -> list[Any]:
    if schema.get("maxItems") == 0:
        return []
    items = schema.get("items")
    items = items if isinstance(items, dict) else {}
    if items.get("type") == "object" or "properties" in items:
        for name in items.get("required") or ():
            quoted = prompt.quoted(name)
            if quoted:
                rows = []
                for position, value in enumerate(quoted):
                    row = _instance(items, prompt, index + position)
                    row[name] = value
                    rows.append(row)
                return rows
    count = max(1, int(schema.get("minItems", 1)))
    return [_instance(items, prompt, index + position) for position in range(count)]
