"""The ONNX export cache under stress: two exporters at once, a killed export, a bad file.

Each test exports MiniLM again into a fresh cache folder (5-15 s on two cores), hence
``heavy``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agentmem.models.embeddings import MiniLMEmbedder, minilm_path
from agentmem.models.onnx_embedder import MODEL_FILE, model_key

pytestmark = pytest.mark.heavy

EXPORT = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from agentmem.models.embeddings import minilm_path
from agentmem.models.onnx_embedder import exported_model
print(exported_model(Path(minilm_path()), Path(sys.argv[1])))
"""


def _exporter(cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", EXPORT, str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        start_new_session=True,  # its own process group: the export child is killed with it
    )


def _key_folder(cache: Path) -> Path:
    return cache / "onnx" / model_key(Path(minilm_path()), cache)


def test_two_processes_exporting_at_once_export_once(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    cache = tmp_path / "cache"
    first, second = _exporter(cache), _exporter(cache)
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    paths = {stdout.strip() for stdout, _ in outputs}
    assert len(paths) == 1
    # One of them exported; the other waited for the lock and found the file.
    assert sum(stderr.count("exporting the embedding model") for _, stderr in outputs) == 1
    assert not list(Path(paths.pop()).parent.glob("*.tmp"))
    texts = ["My sister lives in Porto.", "Where does she live?"]
    again = MiniLMEmbedder(cache_dir=cache).embed(texts)
    assert np.abs(again - embedder.embed(texts)).max() < 1e-6


def test_a_killed_export_leaves_no_model_and_the_next_one_succeeds(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = _key_folder(cache)
    with _exporter(cache) as exporter:
        deadline = time.monotonic() + 600
        # Killed while the file is being written or checked: the moment a half file could
        # be left under the final name, if it were written there.
        while exporter.poll() is None and not (
            list(folder.glob(f"{MODEL_FILE}.*.tmp")) or (folder / MODEL_FILE).exists()
        ):
            assert time.monotonic() < deadline, "the export never started writing"
            time.sleep(0.01)
        os.killpg(exporter.pid, signal.SIGKILL)
        exporter.wait()
    assert exporter.returncode == -signal.SIGKILL, "the export ended before it was killed"
    assert not (folder / MODEL_FILE).exists()
    assert list(folder.glob("*.tmp"))  # what it left lies under another name

    embedder = MiniLMEmbedder(cache_dir=cache)
    assert embedder.embed(["My sister lives in Porto."]).shape == (1, 384)
    assert embedder.runtime == "onnx"
    assert (folder / MODEL_FILE).stat().st_size > 10_000_000
    assert not list(folder.glob("*.tmp"))  # the next export cleared it


def test_an_unreadable_export_in_the_cache_is_made_again(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    cache = tmp_path / "cache"
    folder = _key_folder(cache)
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(b"not a model: cut short by a power cut")
    rebuilt = MiniLMEmbedder(cache_dir=cache)
    texts = ["I adopted a small beagle."]
    assert np.abs(rebuilt.embed(texts) - embedder.embed(texts)).max() < 1e-6
    assert rebuilt.runtime == "onnx"
    assert (folder / MODEL_FILE).stat().st_size > 10_000_000
