"""Structured answers: one pydantic model per answer shape, its JSON schema and its parsing.

Each prompt module defines the model of the answer it expects beside the prompt function;
this module turns such a model into the JSON schema sent with the request
(:func:`answer_schema`) and parses an answer with it (:func:`parse_answer`), so the schema
and the validation are one definition that cannot drift apart.

The schema asks for more than validation demands: :func:`ask_for_fields` lists fields as
required in the schema (strict structured-output modes and grammar-constrained local
decoding want that) while the model keeps defaults for what a small model leaves out, and
can close the objects (``additionalProperties: false``) while validation still ignores
extra keys. Validation forgives what a small model tends to get slightly wrong and rejects
only what cannot be used; its message says what to fix, since
:func:`agentmem.models.building.structured_call` shows it to the model when it asks again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar, get_origin

from pydantic import BaseModel, ValidationError

AnswerT = TypeVar("AnswerT", bound=BaseModel)


def ask_for_fields(
    *, optional: Collection[str] = (), closed: bool = False
) -> Callable[[dict[str, Any]], None]:
    """Return a ``json_schema_extra`` hook that asks the model for every field.

    Args:
        optional: Fields the schema leaves optional.
        closed: Whether the schema forbids properties it does not name (validation still
            ignores them).
    """

    def hook(schema: dict[str, Any]) -> None:
        schema["required"] = [name for name in schema.get("properties", {}) if name not in optional]
        if closed:
            schema["additionalProperties"] = False

    return hook


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Return ``schema`` with its ``$defs`` references written out in place.

    Some OpenAI-compatible servers (and :func:`agentmem.testing.schema_reply`) do not
    follow ``$ref``; the answer models are not recursive, so inlining always ends.
    """
    definitions = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                inlined = walk(definitions[reference.removeprefix("#/$defs/")])
                extra = {k: walk(v) for k, v in node.items() if k != "$ref"}
                return {**inlined, **extra}
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


def answer_schema(shape: type[BaseModel]) -> dict[str, Any]:
    """Return the JSON schema of an answer model, references inlined."""
    return inline_refs(shape.model_json_schema())


def parse_answer(
    shape: type[AnswerT], data: Any, *, context: Mapping[str, Any] | None = None
) -> AnswerT:
    """Validate a model's parsed JSON answer against its answer model.

    Args:
        shape: The answer model.
        data: The parsed JSON answer.
        context: What the validators check the answer against (the turn ids shown, the
            node ids asked for, ...), passed to them as pydantic's validation context.

    Raises:
        ValueError: The answer is unusable; the message lists each problem and where it is,
            in words the model can act on.
    """
    try:
        return shape.model_validate(data, context=dict(context or {}))
    except ValidationError as exc:
        raise ValueError(_describe(exc, shape)) from exc


def _describe(error: ValidationError, shape: type[BaseModel]) -> str:
    problems: list[str] = []
    for entry in error.errors(include_url=False):
        location = entry["loc"]
        if _outer_shape_wrong(entry["type"], location, shape):
            # Say what the whole answer should look like, not pydantic's words for it.
            problems.append(f"the answer must be a JSON object with {_outline(shape)}")
            continue
        if entry["type"] == "value_error":
            # Our validators' own messages, without pydantic's "Value error, " prefix.
            problem = str(entry.get("ctx", {}).get("error") or entry["msg"])
        else:
            problem = f"{entry['msg']} (got {_excerpt(entry.get('input'))})"
        where = _path(location)
        problems.append(f"{where}: {problem}" if where else problem)
    return "; ".join(dict.fromkeys(problems))


def _outer_shape_wrong(kind: str, location: tuple[int | str, ...], shape: type[BaseModel]) -> bool:
    if not location:
        return kind == "model_type"
    field = shape.model_fields.get(str(location[0]))
    lists = field is not None and get_origin(field.annotation) is list
    return len(location) == 1 and lists and kind in ("missing", "list_type")


def _outline(shape: type[BaseModel]) -> str:
    parts = [
        f'a "{name}" list' if get_origin(field.annotation) is list else f'"{name}"'
        for name, field in shape.model_fields.items()
        if field.is_required()
    ]
    return " and ".join(parts)


def _excerpt(value: Any, limit: int = 80) -> str:
    # The whole answer is shown back to the model already; a pointer to the part will do.
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


__all__ = ["answer_schema", "ask_for_fields", "inline_refs", "parse_answer"]
