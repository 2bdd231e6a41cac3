"""LangChain history in agentmem, and memory tools for a tool-calling agent.

``RunnableWithMessageHistory`` keeps each session's conversation in agentmem
(:class:`~agentmem.langchain.AgentMemChatMessageHistory`), so a later session recalls the
first through :class:`~agentmem.langchain.AgentMemRetriever`; then a scripted tool-calling
agent saves, searches and forgets with :func:`~agentmem.langchain.memory_tools`. It needs
the ``langchain`` extra (``.venv/bin/pip install -e '.[langchain]'``) and runs offline::

    .venv/bin/python examples/langchain_history.py

The chat model is agentmem's ``ScriptedChatModel`` seen through
:class:`~agentmem.langchain.AgentMemChatModel`; the tool-calling model is a scripted
function. Pass real models in their place (e.g. ``ChatOpenAI(...).bind_tools(tools)``).
"""

from __future__ import annotations

import json
import tempfile
import warnings

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory
from rich.console import Console

from agentmem import Memory
from agentmem.langchain import (
    AgentMemChatMessageHistory,
    AgentMemChatModel,
    AgentMemRetriever,
    memory_tools,
)
from agentmem.testing import ScriptedChatModel

USER = "ana"
PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "You are a friendly assistant."),
        MessagesPlaceholder("history"),
        ("human", "{question}"),
    ]
)


def scripted_agent(messages: list[BaseMessage]) -> AIMessage:
    """A scripted tool-calling model: save, search, forget what it found, then answer."""
    results = [m for m in messages if isinstance(m, ToolMessage)]
    if not results:
        call = {"name": "save_memory", "args": {"text": "My gym locker code is 4411."}, "id": "1"}
    elif len(results) == 1:
        call = {"name": "search_memory", "args": {"query": "gym locker code"}, "id": "2"}
    elif len(results) == 2:
        item_id = json.loads(str(results[-1].content))[0]["id"]
        call = {"name": "forget_memory", "args": {"item_id": item_id}, "id": "3"}
    else:
        return AIMessage("I saved your locker code, found it, and forgot it as you asked.")
    return AIMessage("", tool_calls=[call])


def main() -> None:
    """Chat in two sessions with history in memory, then run the memory tools."""
    console = Console(markup=False, highlight=False)
    model = AgentMemChatModel(chat_model=ScriptedChatModel(["Porto is lovely!", "Hello again!"]))
    with tempfile.TemporaryDirectory() as folder, Memory(folder, model="none") as memory:
        # langchain-core 1.x deprecates RunnableWithMessageHistory (for LangGraph's
        # persistence); it still works, and many chains use it.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "RunnableWithMessageHistory is deprecated")
            chat = RunnableWithMessageHistory(
                PROMPT | model | StrOutputParser(),
                lambda session_id: AgentMemChatMessageHistory(memory, USER, session_id),
                input_messages_key="question",
                history_messages_key="history",
            )
        for session, line in (("monday", "My sister Lena lives in Porto."), ("tuesday", "Hi!")):
            answer = chat.invoke({"question": line}, {"configurable": {"session_id": session}})
            console.print(f"[{session}] you: {line}\n[{session}] bot: {answer}")
        stored = AgentMemChatMessageHistory(memory, USER, "monday").messages
        console.print(f"monday's history in memory: {[m.type for m in stored]}")
        retriever = AgentMemRetriever(memory=memory, user_id=USER, top_k=1)
        recalled = retriever.invoke("Where does my sister live?")[0]
        console.print(f"recalled on tuesday: {recalled.page_content}")

        tools = {tool.name: tool for tool in memory_tools(memory, USER)}
        agent = RunnableLambda(scripted_agent)
        messages: list[BaseMessage] = [HumanMessage("Remember my locker code, then forget it.")]
        while True:
            reply = agent.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                break
            for call in reply.tool_calls:
                result = tools[call["name"]].invoke(call)
                messages.append(result)
                args = json.dumps(call["args"])
                console.print(f"tool {call['name']}({args}) -> {result.content[:200]}")
        console.print(f"agent: {reply.text}")
        left = [r["memory"] for r in memory.search("locker code", user_id=USER).items]
        console.print(f"locker code still current: {any('4411' in text for text in left)}")


if __name__ == "__main__":
    main()
