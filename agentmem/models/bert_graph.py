"""Write a BERT encoder as an ONNX graph from its weights, without torch.

``python -m agentmem.models.bert_graph MODEL_DIR OUT_FILE`` reads ``config.json`` and
``model.safetensors`` from a Hugging Face BERT folder (all-MiniLM-L6-v2 is one) and writes
``OUT_FILE``: inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, batch
and sequence dynamic), output ``last_hidden_state``: what ``transformers.BertModel``
computes in evaluation mode. Pooling and normalisation stay in numpy
(:mod:`agentmem.models.onnx_embedder`).

This replaced exporting the model through torch (``torch.onnx.export``): agentmem needs
neither torch (754 MB, and a multi-GB CUDA build wherever PyPI's CPU wheel is missing, as
on Python 3.13) nor transformers to embed. The graph is the textbook post-LayerNorm BERT:

- embeddings: word + position + token type, then LayerNorm;
- each layer: self-attention (scores divided by the square root of the head size, masked
  positions given the float32 minimum, softmax), its output projection, residual and
  LayerNorm; then the feed-forward block with the exact (erf) GELU, residual and LayerNorm.

The safetensors file is read with numpy alone (its format is a JSON header and raw
little-endian arrays). Only what BERT with absolute positions and the erf GELU needs is
supported; anything else raises :class:`UnsupportedModelError`. tests/test_onnx_embedder.py
checks the vectors against sentence-transformers where torch is installed.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

from agentmem.errors import EmbeddingError

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"
#: LayerNormalization is an ONNX operator from opset 17 (ONNX Runtime 1.14 and later).
OPSET = 17

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}


class UnsupportedModelError(EmbeddingError):
    """The model does something this runtime does not reproduce; use sentence-transformers."""


def supported_config(config: dict[str, Any], model_dir: Path) -> None:
    """Check that ``config`` (a ``config.json``) describes a BERT this graph computes.

    Raises:
        UnsupportedModelError: Another architecture, relative positions, another activation.
    """
    if config.get("model_type") != "bert":
        raise UnsupportedModelError(f"{model_dir} holds a {config.get('model_type')!r} model")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise UnsupportedModelError(f"{model_dir}: position embeddings are not absolute")
    if config.get("hidden_act", "gelu") != "gelu":
        raise UnsupportedModelError(f"{model_dir}: activation {config.get('hidden_act')!r}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise UnsupportedModelError(f"{model_dir}: heads do not divide the hidden size")


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Return every tensor of a ``.safetensors`` file as a numpy array.

    Raises:
        EmbeddingError: The file is missing, truncated or not safetensors.
        UnsupportedModelError: A tensor has a type this reader does not convert.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EmbeddingError(f"cannot read {path}: {exc}") from exc
    try:
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + size])
    except (struct.error, ValueError) as exc:
        raise EmbeddingError(f"{path} is not a safetensors file: {exc}") from exc
    start = 8 + size
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        offset = start + spec["data_offsets"][0]
        if spec["dtype"] == "BF16":  # bfloat16: the high half of a float32
            halves = np.frombuffer(data, np.dtype("<u2"), _count(spec, 2), offset)
            array = (halves.astype(np.uint32) << 16).view(np.float32)
        elif spec["dtype"] in _DTYPES:
            dtype = np.dtype(_DTYPES[spec["dtype"]]).newbyteorder("<")
            array = np.frombuffer(data, dtype, _count(spec, dtype.itemsize), offset)
        else:
            raise UnsupportedModelError(f"tensor {name} of {path} has type {spec['dtype']}")
        tensors[name] = array.reshape(spec["shape"])
    return tensors


def _count(spec: dict[str, Any], itemsize: int) -> int:
    begin, end = spec["data_offsets"]
    return (end - begin) // itemsize


def bert_weights(model_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return the configuration and float32 weights of the BERT encoder in ``model_dir``.

    Weight names lose a leading ``bert.`` (a checkpoint saved from a task model).

    Raises:
        UnsupportedModelError: Not a BERT encoder with absolute positions and GELU.
        EmbeddingError: A file is missing or unreadable.
    """
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"cannot read {model_dir / 'config.json'}: {exc}") from exc
    supported_config(config, model_dir)
    weights_file = model_dir / "model.safetensors"
    if not weights_file.is_file():
        raise UnsupportedModelError(f"{model_dir} has no model.safetensors")
    weights = {
        name.removeprefix("bert."): array.astype(np.float32, copy=False)
        for name, array in read_safetensors(weights_file).items()
    }
    return config, weights


def build(model_dir: Path) -> Any:
    """Return the ONNX model (an ``onnx.ModelProto``) of the BERT encoder in ``model_dir``.

    Raises:
        UnsupportedModelError: See :func:`bert_weights`; or a weight is missing.
        EmbeddingError: A file is missing or unreadable.
    """
    config, weights = bert_weights(model_dir)
    graph = _Graph(weights, float(config.get("layer_norm_eps", 1e-12)))
    try:
        hidden = graph.embeddings()
        bias = graph.mask_bias()
        heads = int(config["num_attention_heads"])
        for layer in range(int(config["num_hidden_layers"])):
            hidden = graph.layer(f"encoder.layer.{layer}", hidden, bias, heads)
    except KeyError as exc:
        raise UnsupportedModelError(f"{model_dir} has no weight {exc.args[0]}") from exc
    return graph.model(hidden, int(config["hidden_size"]))


def write(model_dir: Path, out_file: Path) -> None:
    """Build the graph of ``model_dir`` and write it to ``out_file`` (checked by onnx).

    Raises:
        UnsupportedModelError, EmbeddingError: See :func:`build`; or the file cannot be
            written.
    """
    import onnx

    model = build(model_dir)
    onnx.checker.check_model(model)
    try:
        onnx.save_model(model, str(out_file))
    except OSError as exc:
        raise EmbeddingError(f"cannot write {out_file}: {exc}") from exc


class _Graph:
    """Nodes and initializers of the graph being built, with a few named building blocks."""

    def __init__(self, weights: dict[str, np.ndarray], epsilon: float) -> None:
        from onnx import helper

        self._helper = helper
        self._weights = weights
        self._epsilon = epsilon
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()

    # -- plumbing ------------------------------------------------------------------------

    def _constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        if name not in self._names:
            self._names.add(name)
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(self, name: str, *, transpose: bool = False) -> str:
        array = self._weights[name]
        return self._constant(name, array.T if transpose else array)

    def op(self, kind: str, inputs: list[str], name: str, **attributes: Any) -> str:
        self.nodes.append(self._helper.make_node(kind, inputs, [name], name=name, **attributes))
        return name

    def linear(self, prefix: str, x: str) -> str:
        """``x @ W.T + b`` for the dense layer ``prefix`` (W stored transposed)."""
        product = self.op("MatMul", [x, self.weight(f"{prefix}.weight", transpose=True)], prefix)
        return self.op("Add", [product, self.weight(f"{prefix}.bias")], f"{prefix}.out")

    def layer_norm(self, prefix: str, x: str) -> str:
        inputs = [x, self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")]
        return self.op("LayerNormalization", inputs, prefix, axis=-1, epsilon=self._epsilon)

    # -- BERT ----------------------------------------------------------------------------

    def embeddings(self) -> str:
        words = self.op(
            "Gather", [self.weight("embeddings.word_embeddings.weight"), "input_ids"], "words"
        )
        types = self.op(
            "Gather",
            [self.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"],
            "types",
        )
        # The first ``sequence`` rows of the position table (a Slice, not a Gather of a
        # Range: ONNX Runtime's embedding fusion rewrote that pattern into a broken Slice).
        shape = self.op("Shape", ["input_ids"], "input_shape")
        zero = self._constant("zero_i64", np.array([0], dtype=np.int64))
        one = self._constant("one_i64", np.array([1], dtype=np.int64))
        two = self._constant("two_i64", np.array([2], dtype=np.int64))
        length = self.op("Slice", [shape, one, two], "length")
        table = self.weight("embeddings.position_embeddings.weight")
        placed = self.op("Slice", [table, zero, length, zero], "placed")
        summed = self.op("Add", [self.op("Add", [words, types], "words_types"), placed], "summed")
        return self.layer_norm("embeddings.LayerNorm", summed)

    def mask_bias(self) -> str:
        """``(1 - mask) * float32 min`` as [batch, 1, 1, sequence]: what BertModel adds."""
        mask = self.op("Cast", ["attention_mask"], "mask_float", to=1)  # 1: FLOAT
        ones = self._constant("one_f32", np.array(1.0, dtype=np.float32))
        lowest = self._constant("lowest_f32", np.array(np.finfo(np.float32).min, np.float32))
        hidden = self.op("Sub", [ones, mask], "masked")
        bias = self.op("Mul", [hidden, lowest], "mask_bias_2d")
        axes = self._constant("axes_1_2", np.array([1, 2], dtype=np.int64))
        return self.op("Unsqueeze", [bias, axes], "mask_bias")

    def layer(self, prefix: str, x: str, bias: str, heads: int) -> str:
        width = self._weights[f"{prefix}.attention.self.query.weight"].shape[0]
        size = width // heads
        split = self._constant(f"heads_{heads}_{size}", np.array([0, 0, heads, size], np.int64))
        merged = self._constant(f"merged_{width}", np.array([0, 0, width], np.int64))

        def project(kind: str, order: list[int]) -> str:
            flat = self.linear(f"{prefix}.attention.self.{kind}", x)
            shaped = self.op("Reshape", [flat, split], f"{prefix}.{kind}.heads")
            return self.op("Transpose", [shaped], f"{prefix}.{kind}.t", perm=order)

        query = project("query", [0, 2, 1, 3])
        key = project("key", [0, 2, 3, 1])
        value = project("value", [0, 2, 1, 3])
        scores = self.op("MatMul", [query, key], f"{prefix}.scores")
        root = self._constant(f"root_{size}", np.array(math.sqrt(size), dtype=np.float32))
        scaled = self.op("Div", [scores, root], f"{prefix}.scaled")
        masked = self.op("Add", [scaled, bias], f"{prefix}.masked")
        weights = self.op("Softmax", [masked], f"{prefix}.probs", axis=-1)
        context = self.op("MatMul", [weights, value], f"{prefix}.context")
        context = self.op("Transpose", [context], f"{prefix}.context.t", perm=[0, 2, 1, 3])
        context = self.op("Reshape", [context, merged], f"{prefix}.context.merged")
        attended = self.linear(f"{prefix}.attention.output.dense", context)
        residual = self.op("Add", [attended, x], f"{prefix}.attention.residual")
        x = self.layer_norm(f"{prefix}.attention.output.LayerNorm", residual)
        inner = self.gelu(f"{prefix}.intermediate", self.linear(f"{prefix}.intermediate.dense", x))
        out = self.linear(f"{prefix}.output.dense", inner)
        residual = self.op("Add", [out, x], f"{prefix}.output.residual")
        return self.layer_norm(f"{prefix}.output.LayerNorm", residual)

    def gelu(self, prefix: str, x: str) -> str:
        """The exact GELU, ``x * 0.5 * (1 + erf(x / sqrt 2))`` (the form ONNX Runtime fuses)."""
        root2 = self._constant("sqrt2_f32", np.array(math.sqrt(2.0), dtype=np.float32))
        one = self._constant("one_f32", np.array(1.0, dtype=np.float32))
        half = self._constant("half_f32", np.array(0.5, dtype=np.float32))
        erf = self.op("Erf", [self.op("Div", [x, root2], f"{prefix}.div")], f"{prefix}.erf")
        shifted = self.op("Add", [erf, one], f"{prefix}.shifted")
        return self.op(
            "Mul", [self.op("Mul", [x, shifted], f"{prefix}.mul"), half], f"{prefix}.gelu"
        )

    def model(self, hidden: str, width: int) -> Any:
        from onnx import TensorProto

        helper = self._helper
        output = self.op("Identity", [hidden], OUTPUT)
        inputs = [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
            for name in INPUTS
        ]
        outputs = [
            helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", "sequence", width])
        ]
        graph = helper.make_graph(self.nodes, "bert", inputs, outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="agentmem.models.bert_graph",
        )
        model.ir_version = min(model.ir_version, 8)  # readable by ONNX Runtime 1.14 and later
        return model


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m agentmem.models.bert_graph MODEL_DIR OUT_FILE\n")
        return 2
    try:
        write(Path(argv[0]), Path(argv[1]))
    except EmbeddingError as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
