"""LangChain history and tools over real memory: RunnableWithMessageHistory and a tool loop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_core.utils.function_calling import convert_to_openai_tool

from agentmem.langchain import (
    AgentMemChatMessageHistory,
    AgentMemChatModel,
    AgentMemRetriever,
    memory_tools,
)
from agentmem.memory import Memory
from agentmem.testing import ScriptedChatModel


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[Memory]:
    with Memory(tmp_path / "data", model="none", stores=("turns",), env={}) as opened:
        yield opened


def chat_with_history(memory: Memory, answers: list[str]) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You are a helpful assistant."),
            MessagesPlaceholder("history"),
            ("human", "{question}"),
        ]
    )
    model = AgentMemChatModel(chat_model=ScriptedChatModel(answers))
    return RunnableWithMessageHistory(
        prompt | model | StrOutputParser(),
        lambda session_id: AgentMemChatMessageHistory(memory, "ana", session_id),
        input_messages_key="question",
        history_messages_key="history",
    )


# langchain-core 1.x deprecates RunnableWithMessageHistory for LangGraph's persistence; the
# issue asks for it, and it still works, so its warning is expected here.
@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_runnable_with_history_stores_both_sides_and_a_later_session_recalls_them(
    memory: Memory,
) -> None:
    chat = chat_with_history(memory, ["Porto is lovely!", "Noted, Rex the beagle."])
    first = {"configurable": {"session_id": "monday"}}
    assert chat.invoke({"question": "My sister Lena lives in Porto."}, config=first) == (
        "Porto is lovely!"
    )
    chat.invoke({"question": "I adopted a beagle named Rex."}, config=first)

    history = AgentMemChatMessageHistory(memory, "ana", "monday")
    assert [(type(m), m.text) for m in history.messages] == [
        (HumanMessage, "My sister Lena lives in Porto."),
        (AIMessage, "Porto is lovely!"),
        (HumanMessage, "I adopted a beagle named Rex."),
        (AIMessage, "Noted, Rex the beagle."),
    ]
    stored = [record["memory"] for record in memory.get_all(user_id="ana")]
    assert "user: My sister Lena lives in Porto." in stored
    assert "assistant: Porto is lovely!" in stored
    found = memory.search("sister Lena Porto", user_id="ana").items
    assert {record["session_id"] for record in found} == {"monday"}

    history.clear()  # the messages go, as BaseChatMessageHistory says; memory keeps them
    assert history.messages == []
    assert AgentMemChatMessageHistory(memory, "ana", "monday").messages == []
    history.clear()  # clearing again changes nothing
    history.add_messages([HumanMessage("Let's start over.")])
    again = AgentMemChatMessageHistory(memory, "ana", "monday")
    assert [m.text for m in again.messages] == ["Let's start over."]
    again.clear()
    again.add_messages([HumanMessage("Third time.")])
    assert [m.text for m in history.messages] == ["Third time."]

    # A later session starts with no history, and recalls the first through the retriever;
    # the assistant's own lines are not returned as memories about the user.
    assert AgentMemChatMessageHistory(memory, "ana", "tuesday").messages == []
    retriever = AgentMemRetriever(memory=memory, user_id="ana", k=3)
    docs = retriever.invoke("Where does my sister Lena live?")
    assert docs[0].page_content == "user: My sister Lena lives in Porto."
    assert docs[0].metadata["current"] is True
    said = AgentMemRetriever(memory=memory, user_id="ana", k=20).invoke("Porto is lovely!")
    assert said and not any(d.page_content.startswith("assistant:") for d in said)
    with_agent = AgentMemRetriever(memory=memory, user_id="ana", k=20, include_assistant=True)
    assert any(d.page_content == "assistant: Porto is lovely!" for d in with_agent.invoke("Porto"))
    assert len(AgentMemRetriever(memory=memory, user_id="ana", k=1).invoke("Porto")) == 1
    assert len(retriever.invoke("Porto", k=2)) == 2


def test_history_skips_system_and_tool_messages(memory: Memory) -> None:
    history = AgentMemChatMessageHistory(memory, "ana", "s1")
    history.add_messages(
        [
            SystemMessage("Be brief."),
            HumanMessage("I play the cello."),
            AIMessage("", tool_calls=[{"name": "search_memory", "args": {}, "id": "c1"}]),
            ToolMessage("[]", tool_call_id="c1"),
            AIMessage("Lovely instrument."),
        ]
    )
    assert [m.text for m in history.messages] == ["I play the cello.", "Lovely instrument."]


def scripted_agent(messages: list[BaseMessage]) -> AIMessage:
    """A scripted tool-calling model: save, search, forget what it found, then answer."""
    results = [m for m in messages if isinstance(m, ToolMessage)]
    if not results:
        call = {"name": "save_memory", "args": {"text": "My locker code is 4411."}, "id": "1"}
    elif len(results) == 1:
        call = {"name": "search_memory", "args": {"query": "locker code"}, "id": "2"}
    elif len(results) == 2:
        item_id = json.loads(str(results[-1].content))[0]["id"]
        call = {"name": "forget_memory", "args": {"item_id": item_id}, "id": "3"}
    else:
        return AIMessage("Done: I saved, found and forgot your locker code.")
    return AIMessage("", tool_calls=[call])


def run_tool_loop(memory: Memory, question: str) -> list[BaseMessage]:
    """Drive the tools the way a tool-calling agent does, until the model answers."""
    tools = {tool.name: tool for tool in memory_tools(memory, "ana")}
    model = RunnableLambda(scripted_agent)
    messages: list[BaseMessage] = [HumanMessage(question)]
    for _ in range(10):
        reply = model.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        messages.extend(tools[call["name"]].invoke(call) for call in reply.tool_calls)
    return messages


def test_memory_tools_save_search_and_forget_in_a_tool_loop(memory: Memory) -> None:
    messages = run_tool_loop(memory, "Remember my locker code, then forget it.")

    saved, found, forgotten = (json.loads(str(m.content)) for m in messages if m.type == "tool")
    assert [e["event"] for e in saved["events"]] == ["ADD"]
    item = found[0]
    assert item["memory"] == "user: My locker code is 4411."
    assert item["current"] is True and item["valid_from"] is not None
    assert item["source_turn_ids"] == saved["turn_ids"]
    # Forgetting erases: the item keeps a tombstone, its text is gone, history included.
    assert forgotten["events"][0] == {
        "event": "DELETE",
        "id": item["id"],
        "memory": "[erased]",
        "store": "turns",
        "reason": "erased by user",
        "current": False,
    }
    assert messages[-1].text.startswith("Done")
    assert memory.get_all(user_id="ana") == []
    assert memory.get(item["id"], user_id="ana")["current"] is False
    assert "4411" not in json.dumps(memory.export("ana"), default=str)


def test_memory_tools_describe_themselves_and_report_errors_to_the_model(
    memory: Memory,
) -> None:
    tools = {tool.name: tool for tool in memory_tools(memory, "ana")}
    schemas = {name: convert_to_openai_tool(tool)["function"] for name, tool in tools.items()}
    assert {name: list(s["parameters"]["properties"]) for name, s in schemas.items()} == {
        "search_memory": ["query"],
        "save_memory": ["text"],
        "forget_memory": ["item_id"],
    }
    answer = tools["forget_memory"].invoke({"item_id": "no-such-item"})
    assert "no-such-item" in answer or "not found" in answer.lower()
    assert tools["search_memory"].invoke({"query": "anything"}) == "[]"
