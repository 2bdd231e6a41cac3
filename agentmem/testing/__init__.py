"""Fakes of the outside world, shipped so that users can test their agents without models.

* :class:`ScriptedChatModel` implements the :class:`~agentmem.protocols.ChatModel`
  protocol in-process: it answers from a script and records every call.
* :class:`FakeOpenAIServer` is a real HTTP server on ``127.0.0.1`` that speaks enough of
  OpenAI's API (chat completions, streamed or not; embeddings; the model list) for the
  real ``openai`` client, with scripted replies and injectable faults::

      with FakeOpenAIServer() as server:
          server.script("Hello!", {"facts": []})
          server.fail(Fault.status(500))
          model = OpenAIChatModel("fake", base_url=server.base_url)

  With ``default_reply=schema_reply`` it answers any structured-output request with a
  valid instance of the requested schema, so whole pipelines can run against it.
"""

from agentmem.testing.chat import (
    ScriptedCall,
    ScriptedChatModel,
    ScriptedReply,
    estimate_tokens,
    split_into_chunks,
)
from agentmem.testing.faults import (
    DEFAULT_RANDOM_FAULTS,
    MALFORMED_CONTENT,
    Fault,
    RecordedRequest,
    ServerReply,
)
from agentmem.testing.schema import schema_reply
from agentmem.testing.server import FakeOpenAIServer

__all__ = [
    "DEFAULT_RANDOM_FAULTS",
    "MALFORMED_CONTENT",
    "FakeOpenAIServer",
    "Fault",
    "RecordedRequest",
    "ScriptedCall",
    "ScriptedChatModel",
    "ScriptedReply",
    "ServerReply",
    "estimate_tokens",
    "schema_reply",
    "split_into_chunks",
]
