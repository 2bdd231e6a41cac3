"""How the LangGraph store reads whose memory a namespace is: a pattern, or a function."""

from __future__ import annotations

from collections.abc import Callable

from agentmem.errors import ConfigError
from agentmem.types import Scope

#: Maps a namespace to whose memory it is; ``None``: the pattern does not apply.
ScopeRule = Callable[[tuple[str, ...]], Scope | None]

#: The default namespace pattern: the second label names the user (LangMem's convention).
DEFAULT_SCOPE = ("*", "{user_id}")


def pattern_rule(pattern: tuple[str, ...]) -> ScopeRule:
    """Return the scope rule of a namespace pattern such as ``("*", "{user_id}")``."""
    placeholders = [label for label in pattern if label.startswith("{")]
    if pattern.count("{user_id}") != 1 or not set(placeholders) <= {"{user_id}", "{agent_id}"}:
        raise ConfigError(
            f"the store's scope pattern {pattern!r} must hold '{{user_id}}' once, and no "
            "placeholder but '{agent_id}'",
            hint='e.g. scope=("memories", "{user_id}") or scope=("{user_id}",)',
        )
    if placeholders.count("{agent_id}") > 1:
        raise ConfigError(f"the store's scope pattern {pattern!r} names the agent twice")

    def rule(namespace: tuple[str, ...]) -> Scope | None:
        if len(namespace) < len(pattern):
            return None
        found: dict[str, str] = {}
        for label, wanted in zip(namespace, pattern, strict=False):
            if wanted in ("{user_id}", "{agent_id}"):
                found[wanted] = label
            elif wanted not in ("*", label):
                return None
        return Scope(found["{user_id}"], found.get("{agent_id}"))

    return rule


__all__ = ["DEFAULT_SCOPE", "ScopeRule", "pattern_rule"]
