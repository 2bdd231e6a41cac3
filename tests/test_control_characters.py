"""Control characters at every door: a typed error naming the position, nothing stored.

README promises a typed error for control characters; NUL used to be dropped silently
("my pin is 12\\x0034" was stored as "1234"). Every control character but tab, line feed
and carriage return is now refused by each way a turn comes in: ``Memory.add`` and
``Agent.send`` (tests/test_hostile_input.py), the plain chat, the MCP ``remember`` tool and
the LangGraph store's ``put`` (here). A model's answer is not refused (its question is
already stored): its stray control characters are dropped from the stored turn.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmem.agent import Agent
from agentmem.cli import main
from agentmem.config import load_config
from agentmem.errors import InputError, UnusableAnswerError
from agentmem.factory import build
from agentmem.memory import Memory
from agentmem.models.embeddings import MiniLMEmbedder
from agentmem.testing import ScriptedChatModel

PIN = "my pin is 12\x0034"
WHERE = "character 13 of 15 is the control character U+0000"


@pytest.fixture
def memory(tmp_path: Path, embedder: MiniLMEmbedder) -> Iterator[Memory]:
    config = load_config(data_dir=tmp_path, model="none", stores=("turns",), env={})
    with Memory.from_components(build(config, model=None, embedder=embedder)) as opened:
        yield opened


def test_plain_chat_refuses_the_line_says_where_and_goes_on(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["chat", "--plain", "--model", "none", "--data-dir", str(tmp_path), "--user", "ana"],
        stdin=io.StringIO(f"{PIN}\nI like tea\n"),
        stdout=out,
        stderr=err,
    )
    assert code == 1  # a message failed
    assert f"error: turn text is not plain text: {WHERE}" in err.getvalue()
    assert "Traceback" not in err.getvalue()
    with Memory(tmp_path, model="none", env={}) as reopened:
        said = [t.text for t in reopened.records.turns("ana") if t.role == "user"]
    assert said == ["I like tea"]


def test_the_mcp_remember_tool_refuses_it_as_a_tool_error(memory: Memory) -> None:
    pytest.importorskip("mcp")
    from agentmem.mcp_server import build_server

    server = build_server(memory, "ana")
    messages = [{"role": "user", "content": "I like tea"}, {"role": "user", "content": PIN}]
    for arguments in ({"text": PIN}, {"messages": messages}):
        with pytest.raises(
            Exception, match=re.escape(f"InputError: turn text is not plain text: {WHERE}")
        ):
            asyncio.run(server.call_tool("remember", arguments))
    assert memory.records.turns("ana") == [] and "ana" not in memory.records.users()


def test_the_langgraph_store_refuses_it_before_storing_the_document(memory: Memory) -> None:
    pytest.importorskip("langgraph")
    from agentmem.langgraph import AgentMemStore

    store = AgentMemStore(memory)
    with pytest.raises(InputError, match=re.escape(WHERE)):
        store.put(("memories", "ana"), "pin", {"content": PIN})
    assert store.get(("memories", "ana"), "pin") is None
    assert memory.records.turns("ana") == []


def test_an_edit_refuses_it_and_keeps_the_old_text(memory: Memory) -> None:
    added = memory.add("My pin is 1234", user_id="ana")
    [item] = [e["id"] for e in added.events if e["store"] == "turns"]
    with pytest.raises(InputError, match="the new text is not plain text"):
        memory.update(item, PIN, user_id="ana")
    assert memory.get(item, user_id="ana")["memory"] == "user: My pin is 1234"


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda m: m.add("hi", user_id="ana\x1b]0;x\x07"), "user_id"),
        (lambda m: m.add("hi", user_id="ana", session_id="s\x1b[2J"), "session_id"),
        (lambda m: m.add("hi", user_id="ana", agent_id="bot\x00"), "agent_id"),
        (
            lambda m: m.add([{"role": "user", "content": "hi", "name": "A\x1b"}], user_id="ana"),
            "name",
        ),
    ],
    ids=["user", "session", "agent", "speaker"],
)
def test_an_id_with_a_control_character_is_refused_storing_nothing(
    memory: Memory, call: object, what: str
) -> None:
    with pytest.raises(InputError, match=f"{what} is not plain text"):
        call(memory)  # type: ignore[operator]
    assert memory.records.users() == []


def test_a_models_control_characters_are_dropped_from_the_stored_answer(memory: Memory) -> None:
    model = ScriptedChatModel(default="Noted.\x1b[2J\x07 Bye.")
    result = Agent(memory.manager, model, user_id="ana").send("I like tea")
    assert result.answer == "Noted.\x1b[2J\x07 Bye."  # what the model said, as said
    assert result.assistant_turn.text == "Noted.[2J Bye."
    silent = Agent(memory.manager, ScriptedChatModel(default="\x00\x07 "), user_id="bo")
    with pytest.raises(UnusableAnswerError, match="empty answer"):
        silent.send("Hello")
    assert [t.text for t in memory.records.turns("bo")] == ["Hello"]  # the question only
