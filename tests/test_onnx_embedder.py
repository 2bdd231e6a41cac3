"""MiniLM on ONNX Runtime: the same vectors as sentence-transformers, and no torch to get them.

The session's export (tests/conftest.py keeps it in a temporary cache folder) is made once
by the ``embedder`` fixture; the subprocess tests reuse it through AGENTMEM_CACHE_DIR.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentmem.config import default_cache_dir, load_config
from agentmem.errors import ConfigError
from agentmem.factory import build_embedder
from agentmem.memory import Memory
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder, minilm_path
from agentmem.models.onnx_embedder import UnsupportedModelError, model_key

ROOT = Path(__file__).resolve().parents[1]

#: Texts at the edges: empty, one letter, accents and emoji, past the 256-token limit,
#: and ordinary turns of different lengths (batched together, so padded).
TEXTS = [
    "",
    "a",
    "Ünïcödé, 日本語 and an emoji 🎉",
    "word " * 400,
    "My sister lives in Porto.",
    "I moved from Lisbon to Berlin last spring, and the flat is near the river.",
    "Where does my sister live?",
]

#: Modules the commands must not load once the export exists (with no chat model).
HEAVY = (
    "torch",
    "sentence_transformers",
    "transformers",
    "sklearn",
    "textual",
    "langchain_core",
    "langgraph",
    "matplotlib",
    "nltk",
    "openai",
    "llama_cpp",
)


@pytest.fixture(scope="module")
def torch_embedder() -> MiniLMEmbedder:
    """MiniLM on sentence-transformers: what every folder was written with before."""
    model = MiniLMEmbedder(runtime="torch")
    model.warm()
    return model


def test_onnx_vectors_are_sentence_transformers_vectors(
    embedder: MiniLMEmbedder, torch_embedder: MiniLMEmbedder
) -> None:
    assert embedder.runtime == "onnx" and torch_embedder.runtime == "torch"
    onnx = embedder.embed(TEXTS)
    reference = torch_embedder.embed(TEXTS)
    assert onnx.shape == reference.shape == (len(TEXTS), 384) and onnx.dtype == np.float32
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    assert float((onnx * reference).sum(axis=1).min()) > 0.99999
    # A call gives each text the vector it gets alone: padding, sorting by length and
    # running several batches at once change nothing.
    many = [f"{text} ({n})" for n, text in enumerate(TEXTS * 7)]
    alone = np.stack([embedder.embed([text])[0] for text in many])
    assert np.abs(embedder.embed(many) - alone).max() < 1e-5


def test_a_folder_written_with_torch_recalls_the_same_items_on_onnx(tmp_path: Path) -> None:
    said = [
        "My sister lives in Porto.",
        "I adopted a small beagle called Rex.",
        "We painted the kitchen blue last weekend.",
        "My manager Tom is leaving the company in March.",
        "I started learning the cello in January.",
        "Our neighbour grows tomatoes on the balcony.",
    ]
    questions = ["Where does my sister live?", "What pet do I have?", "Who is leaving?", "music"]

    def recall(memory: Memory) -> list[list[tuple[str, float]]]:
        return [
            [(r["id"], r["score"]) for r in memory.search(q, user_id="ana", top_k=4).items]
            for q in questions
        ]

    with Memory(tmp_path, model="none", embedder="minilm:torch") as memory:
        for text in said:
            memory.add(text, user_id="ana")
        memory.end_session("ana")
        before = recall(memory)
        assert _runtime(memory) == "torch"
    with Memory(tmp_path, model="none") as memory:
        after = recall(memory)
        assert _runtime(memory) == "onnx"
        top = memory.search(questions[0], user_id="ana", top_k=1).items
    assert [[i for i, _ in found] for found in after] == [[i for i, _ in f] for f in before]
    for old, new in zip(before, after, strict=True):
        assert np.allclose([s for _, s in new], [s for _, s in old], atol=1e-4)
    assert "Porto" in top[0]["memory"]


def _runtime(memory: Memory) -> str | None:
    cached = memory.components.embedder
    assert isinstance(cached, CachingEmbedder) and isinstance(cached.inner, MiniLMEmbedder)
    return cached.inner.runtime


def _wrapped(report: Path, args: list[str]) -> list[str]:
    """The command line of ``agentmem ARGS`` in a fresh interpreter that, once the command
    ends, writes its exit status and which of the watched modules it imported to ``report``."""
    wrapper = (
        "import json, sys\n"
        "from agentmem.cli import main\n"
        "try:\n"
        "    code = main(sys.argv[2:])\n"
        "except SystemExit as exc:  # --help\n"
        "    code = exc.code\n"
        f"names = {HEAVY + ('onnxruntime', 'chromadb')!r}\n"
        "loaded = [n for n in names if n in sys.modules]\n"
        "open(sys.argv[1], 'w').write(json.dumps({'code': code, 'loaded': loaded}))\n"
    )
    return [sys.executable, "-c", wrapper, str(report), *args]


def _environment() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("AGENTMEM_EMBEDDER", None)
    return env


def _modules_after(args: list[str], tmp_path: Path, stdin: str = "") -> dict[str, Any]:
    """Run the ``agentmem`` command in a fresh interpreter; return what it imported."""
    report = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    done = subprocess.run(
        _wrapped(report, args),
        input=stdin,
        capture_output=True,
        text=True,
        env=_environment(),
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(report.read_text()))


@pytest.fixture
def one_turn(tmp_path: Path, embedder: MiniLMEmbedder) -> Path:
    """A data folder where ana said one thing (the export exists: ``embedder`` made it)."""
    with Memory(tmp_path / "data", model="none") as memory:
        memory.add("My sister lives in Porto.", user_id="ana")
    return tmp_path / "data"


def test_memory_search_does_not_import_torch(one_turn: Path, tmp_path: Path) -> None:
    found = _modules_after(
        ["memory", "search", "sister", "--data-dir", str(one_turn), "--user", "ana"], tmp_path
    )
    assert found["code"] == 0
    loaded = set(found["loaded"])
    assert not loaded & set(HEAVY), loaded
    assert "onnxruntime" in loaded  # the query was embedded, on ONNX Runtime


def test_plain_chat_and_help_do_not_import_torch(one_turn: Path, tmp_path: Path) -> None:
    chat = _modules_after(
        ["chat", "--plain", "--model", "none", "--data-dir", str(one_turn), "--user", "ana"],
        tmp_path,
        stdin="Where does my sister live?\n",
    )
    assert chat["code"] == 0 and not set(chat["loaded"]) & set(HEAVY)
    assert "onnxruntime" in chat["loaded"]
    # Nothing heavy at all before a command needs it.
    assert _modules_after(["--help"], tmp_path)["loaded"] == []


def test_the_mcp_server_does_not_import_torch(one_turn: Path, tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    report = tmp_path / "modules.json"
    initialize = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    }
    with subprocess.Popen(
        _wrapped(report, ["mcp", "--data-dir", str(one_turn), "--user", "ana"]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
        cwd=ROOT,
    ) as server:
        assert "result" in _call(server, 1, "initialize", initialize)
        _send(server, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        search = {"name": "search", "arguments": {"query": "Where does my sister live?"}}
        found = _call(server, 2, "tools/call", search)["result"]
        assert not found.get("isError") and "Porto" in json.dumps(found)
        remember = {"name": "remember", "arguments": {"text": "I bought a red bicycle."}}
        assert not _call(server, 3, "tools/call", remember)["result"].get("isError")
        _, errors = server.communicate(timeout=120)  # closes its input: the server ends
    assert server.returncode == 0, errors
    found_modules = json.loads(report.read_text())
    loaded = set(found_modules["loaded"])
    assert not loaded & set(HEAVY), loaded
    assert "onnxruntime" in loaded


def _send(server: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert server.stdin is not None
    server.stdin.write(json.dumps(message) + "\n")
    server.stdin.flush()


def _call(
    server: subprocess.Popen[str], ident: int, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Send one JSON-RPC request and return its answer (notifications are skipped)."""
    _send(server, {"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
    assert server.stdout is not None
    while True:
        line = server.stdout.readline()
        assert line, "the server closed its output"
        message = json.loads(line)
        if message.get("id") == ident:
            return dict(message)


def test_the_embedder_is_chosen_by_configuration(tmp_path: Path) -> None:
    env = {"AGENTMEM_HOME": str(tmp_path), "AGENTMEM_CACHE_DIR": str(tmp_path / "cache")}
    config = load_config(env={**env, "AGENTMEM_EMBEDDER": "minilm:torch"})
    assert config.cache_dir == tmp_path / "cache"
    chosen = build_embedder(config).inner  # type: ignore[attr-defined]
    assert isinstance(chosen, MiniLMEmbedder)
    assert chosen.requested_runtime == "torch" and chosen.cache_dir == tmp_path / "cache"
    assert build_embedder(load_config(env=env)).inner.requested_runtime == "auto"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="minilm:onnx"):
        build_embedder(load_config(env={**env, "AGENTMEM_EMBEDDER": "minilm:tpu"}))
    with pytest.raises(ConfigError, match="runtime"):
        MiniLMEmbedder(runtime="tpu")  # type: ignore[arg-type]


def test_the_cache_folder_follows_the_environment(tmp_path: Path) -> None:
    assert default_cache_dir({"AGENTMEM_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "agentmem"
    assert default_cache_dir({}) == Path.home() / ".cache" / "agentmem"


def _fake_model(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_the_cache_key_follows_the_model_files_contents(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _fake_model(tmp_path / "a", b"weights one")
    key = model_key(first, cache)
    assert model_key(first, cache) == key
    # The key is remembered by the files' names, sizes and times: read without hashing.
    assert len(list((cache / "onnx" / "sources").iterdir())) == 1
    # The same files elsewhere share the export; changed weights get another.
    assert model_key(_fake_model(tmp_path / "b", b"weights one"), cache) == key
    changed = _fake_model(tmp_path / "c", b"weights two")
    assert model_key(changed, cache) != key
    (first / "model.safetensors").write_bytes(b"weights 1!!")  # same size
    os.utime(first / "model.safetensors", ns=(1, 1))
    assert model_key(first, cache) != key


def _model_copy(folder: Path, pooling: dict[str, object]) -> Path:
    """The shipped MiniLM's folder with another pooling (the weights linked, not copied)."""
    source = Path(minilm_path())
    for path in source.rglob("*"):
        target = folder / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".json":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    config = folder / "1_Pooling" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **pooling}))
    return folder


CLS_POOLING = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}


def test_a_model_onnx_cannot_reproduce_is_refused_before_any_export(tmp_path: Path) -> None:
    cls = _model_copy(tmp_path / "cls", CLS_POOLING)
    cache = tmp_path / "cache"
    with pytest.raises(UnsupportedModelError, match="pooling"):
        MiniLMEmbedder(str(cls), runtime="onnx", cache_dir=cache).warm()
    other = _model_copy(tmp_path / "other", {})
    config = other / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "roberta"}))
    with pytest.raises(UnsupportedModelError, match="roberta"):
        MiniLMEmbedder(str(other), runtime="onnx", cache_dir=cache).warm()
    assert not list(cache.rglob("*.onnx"))


GRAPH_WITHOUT_TORCH = """
import sys
from pathlib import Path
for name in ("torch", "transformers", "sentence_transformers"):
    sys.modules[name] = None  # importing any of them now fails
from agentmem.models import bert_graph
from agentmem.models.embeddings import minilm_path
from agentmem.models.onnx_embedder import OnnxEncoder
bert_graph.write(Path(minilm_path()), Path(sys.argv[1]))
vectors = OnnxEncoder(Path(minilm_path()), Path(sys.argv[1]), threads=1).encode(sys.argv[2:])
sys.stdout.write(vectors.tobytes().hex())
"""


def test_the_graph_is_written_and_run_without_torch(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    """torch, transformers and sentence-transformers cannot even be imported: the graph is
    written from the weights and gives the session embedder's vectors (which the torch
    tests compare with sentence-transformers')."""
    texts = TEXTS[1:]
    done = subprocess.run(
        [sys.executable, "-c", GRAPH_WITHOUT_TORCH, str(tmp_path / "model.onnx"), *texts],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    vectors = np.frombuffer(bytes.fromhex(done.stdout), dtype=np.float32).reshape(len(texts), -1)
    assert np.abs(vectors - embedder.embed(texts)).max() < 1e-5
    assert float((vectors * embedder.embed(list(reversed(texts)))[::-1]).sum(axis=1).min()) > 0.9999


def test_a_model_onnx_cannot_reproduce_runs_on_sentence_transformers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, torch_embedder: MiniLMEmbedder
) -> None:
    cls = _model_copy(tmp_path / "cls", CLS_POOLING)
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="agentmem.models.embeddings"):
        fallback = MiniLMEmbedder(str(cls), cache_dir=cache)
        vector = fallback.embed(["My sister lives in Porto."])
    assert fallback.runtime == "torch"
    assert "sentence-transformers" in caplog.text and "pooling" in caplog.text
    # Not exported (nothing it could run), and the CLS vector is not the mean one.
    assert not (cache / "onnx").exists() or not list((cache / "onnx").rglob("*.onnx"))
    mean = torch_embedder.embed(["My sister lives in Porto."])
    assert float(vector[0] @ mean[0]) < 0.999


def test_a_memory_loads_the_embedder_ahead_once_the_export_exists(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    with Memory(tmp_path / "data", model="none") as memory:
        cached = memory.components.embedder
        assert isinstance(cached, CachingEmbedder) and isinstance(cached.inner, MiniLMEmbedder)
        cached.inner.close()  # waits for the load started in the background
        assert cached.inner.runtime == "onnx"  # loaded, though nothing was embedded yet
    # Without an export, nothing is done ahead: exporting is the first call's work.
    fresh = MiniLMEmbedder(cache_dir=tmp_path / "empty")
    fresh.preload()
    fresh.close()
    assert fresh.runtime is None
    assert not list((tmp_path / "empty").rglob("*.onnx"))
