"""The agent loop: store the turn, recall, assemble the prompt, answer, store, remember.

The order matters for the guarantees agentmem gives: the user's turn is committed to the
records database before anything that can fail (recall, the model), and the exchange is
folded into memory after the answer, so a failing model loses nothing the user said.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agentmem.errors import AgentMemError, UnusableAnswerError
from agentmem.inputs import CONTROL_CHARACTERS, stored_moment
from agentmem.manager import MemoryManager, RecallResult, WriteReport
from agentmem.prompts import DEFAULT_SYSTEM_PROMPT, chat_messages, recall_only_answer
from agentmem.protocols import ChatModel
from agentmem.types import Message, Scope, Turn, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """Token limits for one prompt.

    Attributes:
        context_tokens: The whole prompt, memory and recent turns included.
        memory_tokens: The recalled-memory block.
        reply_tokens: Room kept free for the answer.
        recent_turns: How many recent turns of the session to include verbatim.
        recall_k: How many items each structure returns before fusion.
    """

    context_tokens: int = 3000
    memory_tokens: int = 1000
    reply_tokens: int = 512
    recent_turns: int = 8
    recall_k: int = 10


@dataclass(frozen=True)
class TurnResult:
    """Everything one turn did.

    Attributes:
        user_turn: The stored user turn.
        answer: The answer text.
        assistant_turn: The stored answer.
        recall: What was recalled and fed to the model.
        messages: The prompt sent to the model (empty in recall-only mode).
        prompt_tokens: Tokens of that prompt.
        recall_only: True when no model was configured and the answer is the recall.
        memory: What writing the exchange into memory did.
        timings: Seconds per step: ``recall``, ``answer``, ``memory``, ``total``.
    """

    user_turn: Turn
    answer: str
    assistant_turn: Turn
    recall: RecallResult
    messages: tuple[Message, ...]
    prompt_tokens: int
    recall_only: bool
    memory: WriteReport
    timings: dict[str, float] = field(default_factory=dict)


class Agent:
    """A conversational agent with long-term memory, for one user at a time.

    Args:
        memory: The memory manager.
        model: The chat model, or ``None`` for recall-only answers.
        user_id: Whose conversation this is.
        session_id: The dialogue session; a new one is started when omitted.
        agent_id: Optional id of this agent, recorded on turns.
        budget: Token limits for prompts.
        system_prompt: The instructions at the top of every prompt.
        clock: Returns the dialogue time for new turns (wall-clock UTC by default).
    """

    def __init__(
        self,
        memory: MemoryManager,
        model: ChatModel | None,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        budget: Budget | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.memory = memory
        self.model = model
        self.user_id = user_id
        self.agent_id = agent_id
        self.budget = budget or Budget()
        self.system_prompt = system_prompt
        self.clock = clock
        self.records = memory.records
        self.session_id = self.records.start_session(
            user_id, session_id=session_id, agent_id=agent_id, started_at=clock()
        )

    @property
    def scope(self) -> Scope:
        """The scope of this agent's reads and writes."""
        return Scope(self.user_id, self.agent_id, self.session_id)

    def new_session(self, session_id: str | None = None) -> str:
        """End the current session (consolidating memory) and start another."""
        self.memory.end_session(self.user_id, self.session_id)
        self.session_id = self.records.start_session(
            self.user_id, session_id=session_id, agent_id=self.agent_id, started_at=self.clock()
        )
        return self.session_id

    def send(
        self,
        text: str,
        *,
        on_token: Callable[[str], None] | None = None,
        on_recall: Callable[[RecallResult], None] | None = None,
        timestamp: datetime | None = None,
    ) -> TurnResult:
        """Run one turn: answer ``text`` with memory, and remember the exchange.

        Args:
            text: What the user said.
            on_token: Called with each chunk of the answer as it streams.
            on_recall: Called with the recall before the model is asked.
            timestamp: The dialogue time of the turn (now by default); an aware time is
                converted to UTC.

        Raises:
            InputError: ``text`` or ``timestamp`` is not acceptable; nothing was stored.
            ModelError: The model failed; the user's turn is stored and remembered, and
                the error's ``turn_id`` names it.
            StorageError: The database failed.
        """
        started = time.perf_counter()
        moment = stored_moment(timestamp or self.clock(), "timestamp")
        user_turn = self.records.add_turn(
            self.user_id,
            self.session_id,
            "user",
            "user",
            text,
            timestamp=moment,
            agent_id=self.agent_id,
        )
        timings: dict[str, float] = {}
        try:
            recent = self._window(text, exclude=user_turn.id)
            tick = time.perf_counter()
            recall = self.memory.recall(
                text,
                self.scope,
                budget_tokens=self.budget.memory_tokens,
                k=self.budget.recall_k,
                # Without a model nothing quotes the recent turns, so recall may use them.
                exclude_turn_ids=[user_turn.id]
                if self.model is None
                else [t.id for t in recent] + [user_turn.id],
                context=recent,
            )
            timings["recall"] = time.perf_counter() - tick
            if on_recall is not None:
                on_recall(recall)
            tick = time.perf_counter()
            if self.model is None:
                messages: list[Message] = []
                answer = recall_only_answer(recall.memory, text)
                if on_token is not None:
                    on_token(answer)
            else:
                messages = self._fit_prompt(text, recall, recent, moment)
                answer = self._answer(messages, on_token)
                _check_usable(answer, messages)
            timings["answer"] = time.perf_counter() - tick
        except AgentMemError as exc:
            # The turn is on disk; make sure it is also in memory before reporting.
            self._remember([user_turn])
            exc.turn_id = user_turn.id
            raise
        assistant_turn = self.records.add_turn(
            self.user_id,
            self.session_id,
            "assistant",
            "assistant",
            _storable(answer),
            timestamp=moment,
            agent_id=self.agent_id,
            metadata={"recall_only": self.model is None, "quotes_memory": self.model is None},
            # A recall-only answer is an echo of memory; folding it back in would
            # duplicate it, so it is stored as already memorized (even across a crash).
            memorized=self.model is None,
        )
        tick = time.perf_counter()
        to_remember = [user_turn] if self.model is None else [user_turn, assistant_turn]
        report = self._remember(to_remember)
        timings["memory"] = time.perf_counter() - tick
        timings["total"] = time.perf_counter() - started
        counter = self.memory.counter
        return TurnResult(
            user_turn=user_turn,
            answer=answer,
            assistant_turn=assistant_turn,
            recall=recall,
            messages=tuple(messages),
            prompt_tokens=counter.count_messages(messages) if messages else 0,
            recall_only=self.model is None,
            memory=report,
            timings=timings,
        )

    def _window(self, text: str, *, exclude: int) -> list[Turn]:
        """Return the recent turns of the session that fit beside a full memory block.

        The window is decided before recall, so recall can skip exactly the turns the
        prompt will quote verbatim: nothing is left out of both.
        """
        turns = self.records.recent_turns(
            self.user_id, self.session_id, self.budget.recent_turns + 1
        )
        window = [t for t in turns if t.id != exclude][-self.budget.recent_turns :]
        if self.model is None:
            return window
        counter = self.memory.counter
        fixed = counter.count_messages(
            chat_messages(text, memory=[], recent=[], system_prompt=self.system_prompt)
        )
        room = (
            self.budget.context_tokens
            - self.budget.reply_tokens
            - self.budget.memory_tokens
            - fixed
        )
        kept: list[Turn] = []
        for turn in reversed(window):
            room -= counter.count(turn.text) + 4
            if room < 0:
                break
            kept.append(turn)
        return kept[::-1]

    def _fit_prompt(
        self, text: str, recall: RecallResult, recent: Sequence[Turn], moment: datetime
    ) -> list[Message]:
        """Assemble the prompt; drop the oldest recent turns if it still overflows."""
        limit = self.budget.context_tokens - self.budget.reply_tokens
        window = list(recent)
        while True:
            messages = chat_messages(
                text,
                memory=recall.memory,
                recent=window,
                system_prompt=self.system_prompt,
                now=moment,
            )
            if not window or self.memory.counter.count_messages(messages) <= limit:
                return messages
            window = window[1:]

    def _answer(self, messages: Sequence[Message], on_token: Callable[[str], None] | None) -> str:
        assert self.model is not None
        if on_token is None:
            return self.model.complete(messages).text
        chunks: list[str] = []
        for chunk in self.model.stream(messages):
            chunks.append(chunk)
            on_token(chunk)
        return "".join(chunks)

    def _remember(self, turns: Sequence[Turn]) -> WriteReport:
        try:
            return self.memory.write(turns)
        except AgentMemError as exc:  # the turns stay pending and are resumed later
            logger.warning("could not write turns into memory: %s", exc)
            return WriteReport(tuple(t.id for t in turns), failures={"memory": str(exc)})


#: Words in a row an answer may share with the model's instructions before it counts as
#: repeating them. SmolLM2-135M answered "You're a helpful assistant with a long-term
#: memory of earlier conversations..." (9 words of the system prompt in a row); a real
#: answer may say "a long-term memory of earlier conversations" (6).
_ECHO_WORDS = 8
_WORD = re.compile(r"[a-z0-9]+")


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + _ECHO_WORDS]) for i in range(len(words) - _ECHO_WORDS + 1)}


def _check_usable(answer: str, messages: Sequence[Message]) -> None:
    """Refuse an answer that is empty or repeats the model's instructions.

    Such an answer is no answer: stored, it would come back in later recalls as if it
    were something said (issue 35: a tiny model's echoed system prompt was recalled as
    "assistant: You're a helpful assistant..."). The user's turn is kept either way.

    Raises:
        UnusableAnswerError: The answer is empty or echoes a system message.
    """
    if not CONTROL_CHARACTERS.sub("", answer).strip():
        raise UnusableAnswerError(
            "the model gave an empty answer; it was not kept",
            hint="send the message again, or choose a larger model with --model",
        )
    said = _shingles(answer)
    instructions = " ".join(m.content for m in messages if m.role == "system")
    if said & _shingles(instructions):
        raise UnusableAnswerError(
            "the model repeated its instructions instead of answering; the answer was not kept",
            hint="a small model does this; choose a larger one with --model "
            "(e.g. openai:<model> with OPENAI_BASE_URL set), or --model none for recall only",
        )


def _storable(answer: str) -> str:
    """Return a model's answer as a turn can hold it.

    The model is not the user: its stray control characters (a terminal escape it
    echoed, a NUL) are dropped rather than refusing a turn whose question is already
    stored (an answer with nothing left was refused by :func:`_check_usable`).
    """
    return CONTROL_CHARACTERS.sub("", answer)


__all__ = ["Agent", "Budget", "TurnResult"]
