"""A sentence-transformers model on ONNX Runtime: the same vectors, without torch.

Importing sentence-transformers costs ~8 s (torch alone 2.3 s), which every command paid
before its first vector. Here the transformer runs as an ONNX graph written once per
model from its weights, without torch (:mod:`agentmem.models.bert_graph`), into a cache
folder (:func:`exported_model`), the tokenizer is the model's own
``tokenizer.json`` (the ``tokenizers`` package), and pooling and normalisation are a few
lines of numpy: 0.35 s from import to the first vector, and vectors within 1e-6 of
sentence-transformers' (cosine 0.9999998 at worst on the test texts), so data folders
written with either runtime read the same.

Only what sentence-transformers would do for the models this supports is done: a
Transformer module, mean pooling over the attention mask, L2 normalisation. Anything
else (another pooling, a Dense layer) raises :class:`UnsupportedModelError`, and
:class:`~agentmem.models.embeddings.MiniLMEmbedder` falls back to sentence-transformers.

The export cache (``<cache>/onnx/<key>/model.onnx``) is keyed by a hash of the model
folder's files, so a changed model is exported again. The file is written under another
name and renamed into place, so a killed export never leaves half a model, and an
exclusive lock per key makes a second process wait for the first one's export instead of
doing it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from agentmem.errors import EmbeddingError
from agentmem.models.bert_graph import UnsupportedModelError, supported_config

logger = logging.getLogger(__name__)

#: Part of every cache key: change it when bert_graph writes a graph that computes
#: something else. (The graph written from the weights, without torch, replaced torch's
#: export under the same recipe: both give the same hidden states, bit for bit, on ONNX
#: Runtime, so exports made before stay valid.)
RECIPE = "agentmem-onnx-1"
MODEL_FILE = "model.onnx"
#: Seconds an export may take (measured: ~3 s on two cores).
EXPORT_TIMEOUT = 600.0
#: Texts per forward pass. Batches are cut from the texts sorted by length, so padding
#: stays small. On two cores, 788 LoCoMo turns, two batches at a time: 16 texts 305/s,
#: 32 269/s, 64 248/s (best of 5, load ~3.5).
BATCH_SIZE = 16
#: At most this many batches at once, whatever the number of CPUs.
MAX_WORKERS = 8

_SUPPORTED_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
}


# -- the export cache ------------------------------------------------------------------


def exported_model(model_dir: Path, cache_dir: Path, *, timeout: float = EXPORT_TIMEOUT) -> Path:
    """Return the ONNX export of ``model_dir`` in ``cache_dir``, exporting it if missing.

    Raises:
        EmbeddingError: The cache folder cannot be written, or the export failed (onnx
            missing, a model the graph does not reproduce, a timeout).
    """
    key = model_key(model_dir, cache_dir)
    folder = cache_dir / "onnx" / key
    target = folder / MODEL_FILE
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _exclusive(folder / "export.lock"):
            if target.is_file():  # another process exported it while this one waited
                return target
            for stale in folder.glob(f"{MODEL_FILE}.*.tmp"):  # left by a killed export
                stale.unlink(missing_ok=True)
            _export(model_dir, folder, timeout)
    except OSError as exc:
        raise EmbeddingError(f"cannot write the ONNX model cache in {folder}: {exc}") from exc
    return target


def cached_export(model_dir: Path, cache_dir: Path) -> Path | None:
    """Return the export of ``model_dir`` in ``cache_dir`` if it was made, else ``None``."""
    target = cache_dir / "onnx" / model_key(model_dir, cache_dir) / MODEL_FILE
    return target if target.is_file() else None


def discard(onnx_file: Path) -> None:
    """Remove a cached export that does not load, so the next call exports it again."""
    with contextlib.suppress(OSError):
        onnx_file.unlink()
        logger.warning("removed an unreadable ONNX export %s; it will be exported again", onnx_file)


def model_key(model_dir: Path, cache_dir: Path) -> str:
    """Return the cache key of ``model_dir``: a hash of its files' contents and the recipe.

    Hashing the weights takes ~0.15 s, so the key is remembered under a hash of the files'
    names, sizes and modification times: unchanged files are not read again.
    """
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    stamp = hashlib.sha256(f"{RECIPE}\0{model_dir.resolve()}\n".encode())
    for path in files:
        stat = path.stat()
        stamp.update(
            f"{path.relative_to(model_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
        )
    memo = cache_dir / "onnx" / "sources" / stamp.hexdigest()[:32]
    with contextlib.suppress(OSError, UnicodeDecodeError):
        known = memo.read_text(encoding="utf-8").strip()
        if len(known) == 24 and known.isalnum():
            return known
    content = hashlib.sha256(f"{RECIPE}\n".encode())
    for path in files:
        content.update(f"{path.relative_to(model_dir)}\n".encode())
        with path.open("rb") as handle:
            content.update(hashlib.file_digest(handle, "sha256").digest())
    key = content.hexdigest()[:24]
    with contextlib.suppress(OSError):  # a read-only cache only costs the hashing again
        memo.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(memo, key.encode("utf-8"))
    return key


def _export(model_dir: Path, folder: Path, timeout: float) -> None:
    """Export into a temporary file in ``folder`` (a child process) and rename it in."""
    temporary = folder / f"{MODEL_FILE}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    logger.info("exporting the embedding model to ONNX, once (a few seconds): %s", folder)
    started = time.perf_counter()
    # A child process: building the graph holds the weights twice (~300 MB) for a moment,
    # which the embedding process should not keep.
    command = [sys.executable, "-m", "agentmem.models.bert_graph", str(model_dir), str(temporary)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        temporary.unlink(missing_ok=True)
        raise EmbeddingError(f"the ONNX export took more than {timeout:.0f} s") from exc
    if done.returncode != 0 or not temporary.is_file():
        temporary.unlink(missing_ok=True)
        lines = (done.stderr or done.stdout or "no output").strip().splitlines()
        raise EmbeddingError(f"the ONNX export failed: {lines[-1] if lines else ''}")
    with temporary.open("rb") as handle:  # on disk before the name says it is complete
        os.fsync(handle.fileno())
    os.replace(temporary, folder / MODEL_FILE)
    _sync_folder(folder)
    logger.info("exported in %.1f s", time.perf_counter() - started)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``, waiting for it; the OS drops it if we die.

    Without locks (Windows) two exports may both run; each still renames a complete file
    into place, so the result is the same, only the work is done twice.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


# -- the runtime -----------------------------------------------------------------------

_encoders: dict[tuple[Path, Path, int | None], OnnxEncoder] = {}
_encoders_lock = threading.Lock()


def shared_encoder(model_dir: Path, onnx_file: Path, *, threads: int | None = None) -> OnnxEncoder:
    """Return the process's encoder of ``onnx_file``, creating it on first use.

    Every embedder of the same model shares one session (90 MB of weights, 0.15 s to
    load): an application or a test run may open many memories.

    Raises:
        UnsupportedModelError: See :class:`OnnxEncoder`.
        EmbeddingError: See :class:`OnnxEncoder` (nothing is kept: the next call tries again).
    """
    key = (model_dir.resolve(), onnx_file.resolve(), threads)
    with _encoders_lock:
        encoder = _encoders.get(key)
        if encoder is None:
            encoder = _encoders[key] = OnnxEncoder(model_dir, onnx_file, threads=threads)
        return encoder


class OnnxEncoder:
    """Embeds texts with a sentence-transformers model's ONNX export and its tokenizer.

    One forward pass runs on one thread, and a call of several batches runs them side by
    side, one per CPU: a query (one batch) never waits for a thread pool, and nothing spins
    while idle. On two cores (788 LoCoMo turns, load ~3.5) this embedded 263 texts/s where
    ONNX Runtime's own two threads per pass gave 160 (one thread, one batch at a time:
    162), and a query took the same ~4.5 ms either way.

    Args:
        model_dir: The sentence-transformers model folder (tokenizer and configuration).
        onnx_file: The transformer written by :mod:`agentmem.models.bert_graph`.
        threads: Batches run at once; ``None``: the CPUs this process may use (at most
            :data:`MAX_WORKERS`).

    Raises:
        UnsupportedModelError: The model has modules or pooling this does not reproduce.
        EmbeddingError: The tokenizer or the ONNX file cannot be loaded.
    """

    def __init__(self, model_dir: Path, onnx_file: Path, *, threads: int | None = None) -> None:
        settings = model_settings(model_dir)
        self.max_length: int = settings["max_length"]
        self.lower_case: bool = settings["lower_case"]
        self.dimension: int = settings["dimension"]
        self.workers = max(1, threads if threads is not None else min(_cpus(), MAX_WORKERS))
        import onnxruntime
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises its own Exception subclass
            raise EmbeddingError(f"cannot load the tokenizer of {model_dir}: {exc}") from exc
        # The file's own settings pad every text to 128 tokens; sentence-transformers
        # truncates at max_seq_length and pads a batch to its longest text.
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_length)
        self._tokenizer = tokenizer
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1  # the batches are parallel instead (see above)
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                str(onnx_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Exception subclasses
            raise EmbeddingError(f"cannot load the ONNX model {onnx_file}: {exc}") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Return the unit-length embeddings of ``texts`` as float32 rows, in order."""
        batch_size = batch_size or BATCH_SIZE
        if self.lower_case:
            texts = [t.lower() for t in texts]
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
        # Shortest first, so each batch is padded only to the longest of similar texts.
        order = np.argsort(lengths, kind="stable")
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

        def forward(rows: np.ndarray) -> np.ndarray:
            return self._forward([encodings[i] for i in rows])

        if len(batches) == 1 or self.workers == 1:
            results: Iterator[np.ndarray] = map(forward, batches)
        else:  # ONNX Runtime releases the GIL while it runs: the batches run in parallel
            results = self._executor().map(forward, batches)
        vectors = np.empty((len(encodings), self.dimension), dtype=np.float32)
        for rows, computed in zip(batches, results, strict=True):
            vectors[rows] = computed
        return vectors

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="agentmem-embed")
            return self._pool

    def _forward(self, encodings: Sequence[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            size = len(encoding.ids)
            ids[row, :size] = encoding.ids
            types[row, :size] = encoding.type_ids
            mask[row, :size] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (hidden,) = self._session.run(
            ["last_hidden_state"], {k: v for k, v in feed.items() if k in self._inputs}
        )
        # Mean pooling over real tokens, then L2 normalisation: sentence-transformers'
        # Pooling (clamped at 1e-9) and Normalize (eps 1e-12) modules.
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32, copy=False)


def model_settings(model_dir: Path) -> dict[str, Any]:
    """Read what the runtime must reproduce from the model folder's configuration files.

    Raises:
        UnsupportedModelError: A module other than Transformer, Pooling and Normalize, or
            a pooling other than the mean of the tokens.
        EmbeddingError: A configuration file is missing or unreadable.
    """
    modules = _json(model_dir / "modules.json")
    kinds = {m.get("type") for m in modules}
    if not kinds <= _SUPPORTED_MODULES:
        raise UnsupportedModelError(f"modules {sorted(kinds - _SUPPORTED_MODULES)} of {model_dir}")
    pooling_dir = next(
        (m["path"] for m in modules if m.get("type", "").endswith(".Pooling")), "1_Pooling"
    )
    pooling = _json(model_dir / pooling_dir / "config.json")
    modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True)
    if modes != ["pooling_mode_mean_tokens"]:
        raise UnsupportedModelError(f"pooling {modes} of {model_dir} (only mean pooling)")
    transformer = _json(model_dir / "config.json")
    supported_config(transformer, model_dir)  # never export what the graph cannot compute
    sentence = _json(model_dir / "sentence_bert_config.json")
    limit = int(transformer.get("max_position_embeddings", 512))
    return {
        "max_length": min(int(sentence.get("max_seq_length") or limit), limit),
        "lower_case": bool(sentence.get("do_lower_case", False)),
        "dimension": int(pooling.get("word_embedding_dimension") or transformer["hidden_size"]),
    }


def _cpus() -> int:
    """The CPUs this process may run on (its affinity where the platform says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"cannot read {path}: {exc}") from exc
