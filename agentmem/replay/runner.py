"""Replaying conversations into each configuration and asking every question.

For each configuration, each conversation is ingested session by session in order, with
the dialogue's own timestamps: every turn is stored with its speaker's name and the role
``"user"`` (the memory belongs to the conversation as a whole, and both speakers are
people the memory is about), its dataset id as ``external_id``, then the session's turns
are written into memory in one batch and the session is closed (consolidation). A model
build that failed meanwhile (after the model's own retries) was queued by its structure;
once the conversation is ingested, the queue is retried, and what still fails stays queued
for the next run. Failed calls, retries and failed builds are counted per session
(:class:`~agentmem.replay.progress.IngestStats`). Then every question is asked as of the
end of the dialogue: the configuration builds its context under the token budget and, when
a chat model is configured, the model answers from it.

Only the conversation and the question texts pass through here; gold answers, evidence and
stale values stay with the scorer (:mod:`agentmem.replay.report`).
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agentmem.errors import AgentMemError, ModelError
from agentmem.models.llm import MeteredChatModel, RetryingChatModel
from agentmem.models.tokens import TokenCounter
from agentmem.prompts.replay import answer_messages
from agentmem.protocols import ChatModel, Embedder
from agentmem.replay.cache import CachedChatModel
from agentmem.replay.dataset import (
    Conversation,
    Question,
    Sample,
    Session,
    Split,
    load_samples,
)
from agentmem.replay.embedding import configuration_embedder, embed_up_front, shared_texts
from agentmem.replay.outputs import QuestionOutput, ReplayRun, ReplaySettings
from agentmem.replay.progress import IngestStats
from agentmem.replay.progress import Progress as ProgressFile
from agentmem.replay.scoring import ContextItem
from agentmem.replay.systems import (
    ReplayMemory,
    check_configurations,
    open_memory,
    parse_configurations,
)
from agentmem.terminal import markup_safe
from agentmem.types import Usage

logger = logging.getLogger(__name__)


def _key(config: str, settings: ReplaySettings) -> str:
    """Return a configuration's data folder and progress key (model-built memory apart)."""
    name = f"{config}@{settings.model}" if settings.builds_with_model else config
    return re.sub(r"[^A-Za-z0-9_.+@\-]", "_", name)


def finished(
    progress: ProgressFile,
    key: str,
    sample: Sample,
    questions: Sequence[Question],
    answer_key: str,
) -> bool:
    """Whether a configuration ingested a conversation and answered all its questions."""
    done = progress.ingested(key, sample.conversation.sample_id)
    return len(done) >= len(sample.conversation.sessions) and all(
        progress.answer(key, q.id, answer_key) is not None for q in questions
    )


@dataclass(frozen=True)
class _Tally:
    """The running counters a session's statistics are differences of."""

    calls: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    build_failures: int = 0
    builds_queued: int = 0

    @classmethod
    def take(
        cls,
        memory: ReplayMemory,
        meter: MeteredChatModel | None,
        retries: Callable[[], int] | None,
    ) -> _Tally:
        builds = memory.build_counts()
        usage = meter.usage if meter is not None else Usage()
        return cls(
            calls=meter.calls if meter is not None else 0,
            failures=meter.failures if meter is not None else 0,
            retries=retries() if retries is not None else 0,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            build_failures=builds.failures,
            builds_queued=builds.queued,
        )

    def __sub__(self, other: _Tally) -> _Tally:
        return _Tally(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))


def retry_counter(model: ChatModel | None) -> Callable[[], int] | None:
    """Return a reader of the retries made by the retrying wrapper inside ``model``, if any."""
    part: object | None = model
    for _ in range(8):
        if isinstance(part, RetryingChatModel):
            retrying = part
            return lambda: retrying.retries
        part = getattr(part, "inner", None)
    return None


def session_id(user_id: str, session: Session) -> str:
    """Return the records' session id of a dialogue session (unique across samples)."""
    return f"{user_id}/session_{session.number}"


def replay_user(sample_id: str, key: str, *, on_servers: bool) -> str:
    """Return the user id a configuration keeps a conversation's memory under.

    In its own data folder, the conversation's id. On server backends every configuration
    writes to the same database and vector server, so the id names the configuration too
    (``conv-26@turns``): each keeps its own turns, items and collections, as separate
    users of one deployment do.
    """
    return f"{sample_id}@{key}" if on_servers else sample_id


def ingest_conversation(
    memory: ReplayMemory,
    conversation: Conversation,
    progress: ProgressFile,
    key: str,
    *,
    meter: MeteredChatModel | None = None,
    retries: Callable[[], int] | None = None,
    advance: Any = None,
    user_id: str | None = None,
) -> list[IngestStats]:
    """Ingest the sessions of a conversation not yet ingested; return their statistics.

    Turns already in the records database (same ``external_id``) are not stored twice,
    and turns stored by an interrupted run but never memorized are folded in first.

    Args:
        memory: The configuration.
        conversation: The dialogue.
        progress: Where ingested sessions are recorded.
        key: The configuration's progress key.
        meter: Counts the building model's calls, failures and tokens.
        retries: Reads how many failed model attempts were retried so far.
        advance: Called with the number of turns handled, for a progress bar.
        user_id: Whose memory the conversation goes to (default: the conversation's id).
    """
    user = user_id or conversation.sample_id
    done = progress.ingested(key, conversation.sample_id)
    if len(done) < len(conversation.sessions):
        memory.resume(user)
    stats = []
    for session in conversation.sessions:
        if session.number in done:
            if advance is not None:
                advance(len(session.turns))
            continue
        started = time.perf_counter()
        before = _Tally.take(memory, meter, retries)
        sid = session_id(user, session)
        records = memory.records
        records.start_session(user, session_id=sid, started_at=session.started_at)
        known = {t.external_id for t in records.turns(user, session_id=sid)}
        fresh = [t for t in session.turns if t.dia_id not in known]
        stored = records.add_turns(
            [
                dict(
                    user_id=user,
                    session_id=sid,
                    speaker=t.speaker,
                    role="user",
                    text=t.text,
                    timestamp=t.timestamp,
                    external_id=t.dia_id,
                )
                for t in fresh
            ]
        )
        failures = 0
        try:
            if stored:
                memory.write(stored)
            memory.end_session(user, sid)
        except AgentMemError as exc:  # the turns are stored; a later run resumes them
            logger.warning("%s: ingesting %s failed: %s", memory.name, sid, exc)
            failures = 1
        spent = _Tally.take(memory, meter, retries) - before
        entry = IngestStats(
            turns=len(stored),
            seconds=time.perf_counter() - started,
            model_calls=spent.calls,
            prompt_tokens=spent.prompt_tokens,
            completion_tokens=spent.completion_tokens,
            failures=failures,
            model_failures=spent.failures,
            model_retries=spent.retries,
            build_failures=spent.build_failures,
            builds_queued=spent.builds_queued,
        )
        if not failures:
            progress.record_session(key, conversation.sample_id, session.number, entry)
        stats.append(entry)
        if advance is not None:
            advance(len(session.turns))
    return stats


@dataclass(frozen=True)
class RetryPass:
    """What retrying a conversation's queued model builds did.

    Attributes:
        queued: Builds waiting before the retry.
        retried: Of those, the builds that now succeeded.
        pending: Builds still queued afterwards (retried by the next run).
        model_calls: Model calls the retry made.
    """

    queued: int = 0
    retried: int = 0
    pending: int = 0
    model_calls: int = 0


def retry_queued_builds(
    memory: ReplayMemory, user_id: str, *, meter: MeteredChatModel | None = None
) -> RetryPass:
    """Retry the user's queued model builds and fold in turns left pending.

    Failures are logged, not raised: what still fails stays queued for the next run.
    """
    queued = memory.pending_builds(user_id)
    if not queued and not memory.records.pending_turns(user_id):
        return RetryPass()
    calls = meter.calls if meter is not None else 0
    try:
        memory.resume(user_id)
    except AgentMemError as exc:
        logger.warning("%s: retrying the builds of %s failed: %s", memory.name, user_id, exc)
    pending = memory.pending_builds(user_id)
    if pending:
        logger.warning(
            "%s: %d model builds of %s are still queued; the next run retries them",
            memory.name,
            pending,
            user_id,
        )
    return RetryPass(
        queued=queued,
        retried=max(queued - pending, 0),
        pending=pending,
        model_calls=(meter.calls - calls) if meter is not None else 0,
    )


def ask(
    memory: ReplayMemory,
    question: Question,
    *,
    config: str,
    as_of: datetime,
    budget: int,
    k: int,
    dia_ids: dict[int, str],
    counter: TokenCounter,
    answer_model: ChatModel | None = None,
    meter: MeteredChatModel | None = None,
    user_id: str | None = None,
) -> QuestionOutput:
    """Build a configuration's context for a question and, with a model, answer it.

    ``user_id`` is whose memory is asked (default: the question's conversation id).
    """
    calls = meter.calls if meter else 0
    started = time.perf_counter()
    user = user_id or question.sample_id
    recalled = memory.recall(question.text, user, budget=budget, k=k, as_of=as_of)
    seconds = time.perf_counter() - started
    items = tuple(
        ContextItem(
            text=r.item.shown_text(as_of),
            store=r.item.store,
            kind=r.item.kind,
            score=round(float(r.score), 6),
            dia_ids=tuple(dia_ids[t] for t in r.item.source_turn_ids if t in dia_ids),
            current=r.item.current,
            valid_from=r.item.valid_from,
            invalid_at=r.item.invalid_at,
        )
        for r in recalled
    )
    output = QuestionOutput(
        config=config,
        question_id=question.id,
        sample_id=question.sample_id,
        question=question.text,
        items=items,
        context_tokens=0,
        recall_seconds=seconds,
        recall_model_calls=(meter.calls - calls) if meter else 0,
    )
    lines = output.context_text.splitlines()
    output = replace(output, context_tokens=counter.count("\n".join(lines)))
    if answer_model is not None:
        messages = answer_messages(question.text, lines, now=as_of)
        try:
            answer = answer_model.complete(messages).text.strip()
        except ModelError as exc:  # scored as a wrong answer; not recorded, so retried
            logger.warning("answering %s failed: %s", question.id, exc)
            return replace(output, answer="", error=str(exc))
        output = replace(output, answer=answer)
    return output


def _limited(questions: Sequence[Question], limit: int | None) -> list[Question]:
    return list(questions[:limit] if limit is not None else questions)


def run_replay(
    paths: Sequence[str | Path],
    *,
    configurations: str | Sequence[str] = "all,turns",
    out_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    budget: int = 1000,
    k: int = 20,
    limit_questions: int | None = None,
    split: Split | None = None,
    breadth: bool = False,
    model: ChatModel | None = None,
    builds_with_model: bool = False,
    judge: bool = False,
    embedder: Embedder | None = None,
    console: Console | None = None,
    database_url: str | None = None,
    chroma_url: str | None = None,
) -> ReplayRun:
    """Replay conversations into every configuration and collect what each produced.

    Args:
        paths: LoCoMo-format JSON files.
        configurations: Comma list of configurations (baselines are added).
        out_dir: Where progress, the model cache and the report go (a temp dir if ``None``).
        data_dir: Where each configuration's memory goes (default ``<out_dir>/data``).
        budget: Most tokens of context per question.
        k: Items per structure before fusion.
        limit_questions: Ask at most this many questions per conversation (and, with
            ``breadth``, at most this many recaps besides).
        split: Replay only the samples at an even or odd 0-based index of each file
            (see :func:`~agentmem.replay.dataset.load_samples`); ``None``: all of them.
        breadth: Also ask the recap questions generated from the files' notes
            (:mod:`agentmem.replay.breadth`), after each conversation's own questions.
        model: The chat model that answers (and builds memory if ``builds_with_model``).
        builds_with_model: Build memory with ``model`` instead of the offline builders.
        judge: Grade answers with the model as well (done by the report).
        embedder: The embedding model shared by every configuration (MiniLM by default);
            see :mod:`agentmem.replay.embedding`.
        console: Where the progress bar goes.
        database_url: Keep every configuration's records in this database (a SQLAlchemy
            URL, e.g. PostgreSQL) instead of an SQLite file in its data folder; each
            configuration's conversations are users of their own there
            (:func:`replay_user`).
        chroma_url: Keep every configuration's vectors on this Chroma server
            (``http://host:port``) instead of its data folder, likewise.

    Returns:
        The run. With a model, its ``extra`` holds ``model_calls`` (``calls`` past the
        cache, ``failures`` of those after their retries, and ``retries`` made by a
        :class:`~agentmem.models.llm.RetryingChatModel` inside ``model``) and ``model_cache``;
        ``model_builds`` holds, per configuration, what retrying its queued builds did
        (:class:`RetryPass` summed over the conversations); ``split`` is the split replayed.

    Raises:
        InputError: A file is not LoCoMo JSON, or ``split`` is unknown.
        ConfigError: A configuration names an unknown structure.
    """
    samples = load_samples(list(paths), split=split)
    names = parse_configurations(configurations)
    check_configurations(names)
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="agentmem-replay-"))
    out.mkdir(parents=True, exist_ok=True)
    data = Path(data_dir) if data_dir else out / "data"
    model_name = model.name if model is not None else "none"
    settings = ReplaySettings(
        tuple(names),
        budget,
        k,
        limit_questions,
        model_name,
        builds_with_model and bool(model),
        judge,
        breadth,
    )
    if embedder is None:
        from agentmem.models.embeddings import MiniLMEmbedder

        embedder = MiniLMEmbedder()
    # Counts what reaches the model past the cache: calls, and calls failed after retries.
    network = MeteredChatModel(model) if model is not None else None
    cached = CachedChatModel(network, out / "model_cache.sqlite") if network is not None else None
    answer_model = MeteredChatModel(cached) if cached is not None else None
    counter = TokenCounter()
    counter.count("warm up")
    progress = ProgressFile(out / "progress.sqlite")
    outputs: list[QuestionOutput] = []
    ingest: dict[str, list[IngestStats]] = {}
    retry_passes: dict[str, list[RetryPass]] = {}
    retries = retry_counter(model)
    asked = [
        _limited(s.questions, limit_questions)
        + (_limited(s.recaps, limit_questions) if breadth else [])
        for s in samples
    ]
    total = len(names) * sum(
        s.conversation.turn_count + len(q) for s, q in zip(samples, asked, strict=True)
    )
    console = console or Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    answer_key = settings.answer_key()
    on_servers = database_url is not None or chroma_url is not None
    try:
        with bar:
            # A finished conversation needs no vectors: a re-run of a done replay is free.
            unfinished = [
                (sample, questions)
                for sample, questions in zip(samples, asked, strict=True)
                if not all(
                    finished(progress, _key(name, settings), sample, questions, answer_key)
                    for name in names
                )
            ]
            texts = shared_texts([s for s, _ in unfinished], [q for _, q in unfinished])
            warm = getattr(embedder, "warm", None)
            if texts and callable(warm):
                # Load the model before anything is timed: no configuration pays for it.
                warm()
            shared = bar.add_task("embedding turns and questions", total=len(texts))
            vectors, seconds = embed_up_front(
                embedder, texts, advance=lambda n: bar.advance(shared, n)
            )
            task = bar.add_task("replay", total=total)
            for name in names:
                key = _key(name, settings)
                meter = MeteredChatModel(cached) if settings.builds_with_model and cached else None
                memory = open_memory(
                    name,
                    data / key,
                    configuration_embedder(embedder, vectors),
                    builder=meter,
                    counter=counter,
                    database_url=database_url,
                    chroma_url=chroma_url,
                )
                try:
                    for sample, questions in zip(samples, asked, strict=True):
                        conversation = sample.conversation
                        user = replay_user(conversation.sample_id, key, on_servers=on_servers)
                        sample_id = markup_safe(conversation.sample_id)  # from the file
                        bar.update(task, description=f"{name} · {sample_id} · ingest")
                        ingest_conversation(
                            memory,
                            conversation,
                            progress,
                            key,
                            meter=meter,
                            retries=retries,
                            advance=lambda n: bar.advance(task, n),
                            user_id=user,
                        )
                        retry_passes.setdefault(name, []).append(
                            retry_queued_builds(memory, user, meter=meter)
                        )
                        bar.update(task, description=f"{name} · {sample_id} · ask")
                        dia_ids = {t.id: t.external_id or "" for t in memory.records.turns(user)}
                        for question in questions:
                            recorded = progress.answer(key, question.id, answer_key)
                            if recorded is not None:
                                output = QuestionOutput.from_json(recorded)
                            else:
                                output = ask(
                                    memory,
                                    question,
                                    config=name,
                                    as_of=conversation.ends_at,
                                    budget=budget,
                                    k=k,
                                    dia_ids=dia_ids,
                                    counter=counter,
                                    answer_model=answer_model,
                                    meter=meter,
                                    user_id=user,
                                )
                                if output.error is None:
                                    progress.record_answer(
                                        key, question.id, answer_key, output.to_json()
                                    )
                            outputs.append(output)
                            bar.advance(task)
                    ingest[name] = [
                        stats
                        for sample in samples
                        for stats in progress.ingested(key, sample.conversation.sample_id).values()
                    ]
                finally:
                    memory.close()
    finally:
        progress.close()
    run = ReplayRun(settings, samples, outputs, ingest, out, data, answer_model)
    run.extra["split"] = split
    run.extra["shared_embedding"] = {"texts": len(texts), "seconds": round(seconds, 3)}
    run.extra["model_builds"] = {
        name: {
            field.name: sum(getattr(p, field.name) for p in passes) for field in fields(RetryPass)
        }
        for name, passes in retry_passes.items()
    }
    if cached is not None and network is not None:
        run.extra["model_cache"] = {"hits": cached.hits, "misses": cached.misses}
        run.extra["model_calls"] = {
            "calls": network.calls,
            "failures": network.failures,
            "retries": retries() if retries is not None else 0,
        }
    return run
