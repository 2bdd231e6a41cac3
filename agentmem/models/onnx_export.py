"""Export a sentence-transformers BERT model to ONNX, once, in a child process.

``python -m agentmem.models.onnx_export MODEL_DIR OUT_FILE`` writes ``OUT_FILE``: the
transformer of the model in ``MODEL_DIR`` (inputs ``input_ids``, ``attention_mask``,
``token_type_ids``; output ``last_hidden_state``; batch and sequence dynamic). Pooling and
normalisation stay in numpy (:mod:`agentmem.models.onnx_embedder`).

This is the only module that imports torch for the ONNX path, and it runs in its own
process: the process that embeds never loads torch (2.3 s to import, 8.1 s with
sentence-transformers) nor keeps its memory. The exported graph is checked against torch on
a padded batch before the command succeeds, so a bad export is never installed.

The recipe, and why:
- the TorchScript exporter (``dynamo=False``), opset 14: the dynamo exporter needs more
  packages (onnxscript) and was not needed;
- eager attention, not SDPA: the graph then has the plain MatMul/Softmax pattern that
  ONNX Runtime's optimiser knows;
- a wrapper module passes the inputs by keyword: positionally, ``BertModel.forward``
  gets ``use_cache`` twice;
- a padded example batch, so that no code path that drops an all-ones mask is traced.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"
OPSET = 14
#: The largest difference from torch's hidden states the check accepts (float32 noise
#: is ~1e-6; a graph that lost the attention mask is off by ~1e-1).
TOLERANCE = 1e-3


def export(model_dir: Path, out_file: Path) -> None:
    """Export the transformer in ``model_dir`` to ``out_file`` and check it against torch.

    Raises:
        ImportError: torch, transformers or onnx is not installed.
        RuntimeError: The exported graph does not reproduce torch's output.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()

    class Transformer(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # eval() on the wrapper: the exporter puts the module back in the mode it found it in,
    # and a wrapper left in training mode would switch the model's dropout on after it.
    wrapper = Transformer(model).eval()
    example = _example(torch)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, OUTPUT)}
    with torch.no_grad():
        check = _check_example(torch)
        expected = model(**dict(zip(INPUTS, check, strict=True))).last_hidden_state.numpy()
        torch.onnx.export(
            wrapper,
            example,
            str(out_file),
            dynamo=False,
            opset_version=OPSET,
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes=dynamic,
        )
    _check(out_file, [t.numpy() for t in check], expected)


def _example(torch: Any) -> tuple[Any, Any, Any]:
    """A batch of two with padding in the second row (see the module's docstring)."""
    ids = torch.tensor([[101, 2023, 2003, 1037, 102], [101, 2178, 102, 0, 0]])
    mask = (ids != 0).long()
    return ids, mask, torch.zeros_like(ids)


def _check_example(torch: Any) -> tuple[Any, Any, Any]:
    """Another shape than the traced one: three rows, more padding, a longer sequence."""
    rows = [[101, *range(2000, 2000 + n), 102] for n in (9, 1, 4)]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = (ids != 0).long()
    return ids, mask, torch.zeros_like(ids)


def _check(out_file: Path, inputs: list[Any], expected: Any) -> None:
    """Run the exported graph in ONNX Runtime and compare it with torch's hidden states.

    Raises:
        RuntimeError: A hidden state of a real (unpadded) token differs by more than
            :data:`TOLERANCE`.
    """
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out_file), providers=["CPUExecutionProvider"])
    (hidden,) = session.run([OUTPUT], dict(zip(INPUTS, inputs, strict=True)))
    mask = inputs[1].astype(bool)  # padded positions are never pooled
    error = float(np.abs(hidden[mask] - expected[mask]).max())
    if error > TOLERANCE:
        raise RuntimeError(f"the exported graph differs from torch by {error:.2e}")
    logger.debug("exported graph matches torch within %.2e", error)


def main(argv: list[str] | None = None) -> int:
    """Export ``MODEL_DIR`` to ``OUT_FILE`` (the arguments); return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m agentmem.models.onnx_export MODEL_DIR OUT_FILE\n")
        return 2
    logging.basicConfig(level=logging.WARNING)
    import warnings

    # The tracer's warnings about Python values frozen into the graph are expected for a
    # fixed architecture; the check above is what proves the graph right.
    warnings.simplefilter("ignore")
    try:
        export(Path(args[0]), Path(args[1]))
    except ImportError as exc:
        sys.stderr.write(f"cannot export to ONNX: {exc} (pip install onnx torch)\n")
        return 3
    except Exception as exc:  # anything the exporter raises: reported to the parent
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process
    sys.exit(main())
