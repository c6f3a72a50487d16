"""ONNX graphs of the sentence encoders, written layer by layer from their safetensors weights.

Two architectures, each followed by mean pooling over the real tokens and L2 normalisation (what
sentence-transformers computes for these models: ``modules.json`` Transformer, mean Pooling,
Normalize):

- **BERT** (all-MiniLM-L6-v2): token + absolute position (0..T-1) + token-type-0 embeddings,
  LayerNorm, then post-LayerNorm encoder layers (self-attention, erf GELU feed-forward).
- **MPNet** (all-mpnet-base-v2): token + absolute position embeddings where positions count
  from ``pad_token_id + 1`` (the RoBERTa convention; no token types), LayerNorm, then the same
  post-LayerNorm layers with one more term in every layer's attention scores: a learned bias per
  head for the bucketed relative distance between the two tokens (32 buckets, half for each
  direction: distances below 8 exact, longer ones on a log scale up to 128), shared by all
  layers. The bucket of every (query, key) pair up to the longest input is fixed, so the bias is
  computed here once, as a (heads, L, L) table the graph slices to (T, T).

Both graphs take ``input_ids`` and ``attention_mask`` (B, T) and return ``embedding`` (B, hidden).
"""

from __future__ import annotations

import math
from typing import Any

_OPSET = 20  # Gelu (erf) is a standard op from opset 20


class _Builder:
    """Nodes and initialisers of one graph, with the few composite layers both models share."""

    def __init__(self, weights: dict[str, Any]) -> None:
        self.weights = weights
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def const(self, value: Any, name: str | None = None) -> str:
        import numpy as np
        from onnx import numpy_helper

        name = name or self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        out = self._name("t")
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def w(self, key: str) -> Any:
        import numpy as np

        return np.asarray(self.weights[key], dtype=np.float32)

    def i64(self, *values: int) -> str:
        import numpy as np

        return self.const(np.array(values, dtype=np.int64))

    def dense(self, x: str, prefix: str) -> str:
        import numpy as np

        # torch Linear keeps weight as (out, in): the MatMul takes its transpose
        kernel = self.const(np.ascontiguousarray(self.w(f"{prefix}.weight").T), f"{prefix}.kernel")
        bias = self.const(self.w(f"{prefix}.bias"), f"{prefix}.b")
        return self.op("Add", [self.op("MatMul", [x, kernel]), bias])

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        gamma = self.const(self.w(f"{prefix}.weight"), f"{prefix}.g")
        beta = self.const(self.w(f"{prefix}.bias"), f"{prefix}.beta")
        return self.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=eps)

    def padding_bias(self, maskf: str) -> str:
        """Additive attention bias (B, 1, 1, T): 0 for real tokens, a large negative for padding."""
        import numpy as np

        one = self.const(np.float32(1.0))
        low = self.const(np.float32(np.finfo(np.float32).min))
        bias = self.op("Mul", [self.op("Sub", [one, maskf]), low])
        return self.op("Unsqueeze", [bias, self.i64(1, 2)])

    def encoder_layer(
        self,
        x: str,
        bias: str,
        names: dict[str, str],
        hidden: int,
        heads: int,
        eps: float,
    ) -> str:
        """One post-LayerNorm transformer layer; ``names`` maps roles to weight prefixes."""
        import numpy as np

        head_dim = hidden // heads
        split = self.i64(0, 0, heads, head_dim)
        q = self.op("Reshape", [self.dense(x, names["q"]), split])
        k = self.op("Reshape", [self.dense(x, names["k"]), split])
        v = self.op("Reshape", [self.dense(x, names["v"]), split])
        q = self.op("Transpose", [q], perm=[0, 2, 1, 3])  # B, H, T, D
        k = self.op("Transpose", [k], perm=[0, 2, 3, 1])  # B, H, D, T
        v = self.op("Transpose", [v], perm=[0, 2, 1, 3])
        scale = self.const(np.float32(1.0 / math.sqrt(head_dim)))
        scores = self.op("Add", [self.op("Mul", [self.op("MatMul", [q, k]), scale]), bias])
        ctx = self.op("MatMul", [self.op("Softmax", [scores], axis=-1), v])
        ctx = self.op("Transpose", [ctx], perm=[0, 2, 1, 3])
        ctx = self.op("Reshape", [ctx, self.i64(0, 0, hidden)])
        attn = self.dense(ctx, names["attn_out"])
        x = self.layer_norm(self.op("Add", [attn, x]), names["attn_norm"], eps)
        inner = self.op("Gelu", [self.dense(x, names["ffn_in"])])
        out = self.dense(inner, names["ffn_out"])
        return self.layer_norm(self.op("Add", [out, x]), names["ffn_norm"], eps)

    def mean_pool_unit(self, x: str, maskf: str) -> None:
        """Mean over the real tokens, then unit length, as the graph output ``embedding``."""
        import numpy as np
        from onnx import helper

        m3 = self.op("Unsqueeze", [maskf, self.i64(2)])
        axis1 = self.i64(1)
        summed = self.op("ReduceSum", [self.op("Mul", [x, m3]), axis1], keepdims=0)
        count = self.op(
            "Max",
            [self.op("ReduceSum", [m3, axis1], keepdims=0), self.const(np.float32(1e-9))],
        )
        pooled = self.op("Div", [summed, count])
        norm = self.op(
            "Max",
            [
                self.op("ReduceL2", [pooled, axis1], keepdims=1),
                self.const(np.float32(1e-12)),
            ],
        )
        self.nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"]))

    def model(self, name: str, hidden: int) -> Any:
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes,
            name,
            [
                helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
                helper.make_tensor_value_info(
                    "attention_mask", TensorProto.INT64, ["batch", "tokens"]
                ),
            ],
            [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
            self.inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])


def _first_rows(b: _Builder, table: str, length: str, start: int = 0) -> str:
    """Rows ``start .. start + T - 1`` of an embedding table (T = ``length``)."""
    stop = b.op("Add", [b.op("Unsqueeze", [length, b.i64(0)]), b.i64(start)])
    return b.op("Slice", [table, b.i64(start), stop, b.i64(0)])


def bert_graph(weights: dict[str, Any], config: dict[str, Any]) -> Any:
    """BERT + mean pooling + L2 normalisation (single sentences: token type 0)."""
    import numpy as np
    from onnx import TensorProto

    b = _Builder(weights)
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    eps = float(config["layer_norm_eps"])
    ids, mask = "input_ids", "attention_mask"
    words = b.op("Gather", [b.const(b.w("embeddings.word_embeddings.weight"), "word_emb"), ids])
    length = b.op("Gather", [b.op("Shape", [ids]), b.const(np.int64(1))])
    pos_table = b.const(b.w("embeddings.position_embeddings.weight"), "pos_emb")
    positions = _first_rows(b, pos_table, length)
    type0 = b.const(b.w("embeddings.token_type_embeddings.weight")[0], "type_emb0")
    x = b.op("Add", [b.op("Add", [words, positions]), type0])
    x = b.layer_norm(x, "embeddings.LayerNorm", eps)
    maskf = b.op("Cast", [mask], to=TensorProto.FLOAT)
    bias = b.padding_bias(maskf)
    for n in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{n}"
        names = {
            "q": f"{p}.attention.self.query",
            "k": f"{p}.attention.self.key",
            "v": f"{p}.attention.self.value",
            "attn_out": f"{p}.attention.output.dense",
            "attn_norm": f"{p}.attention.output.LayerNorm",
            "ffn_in": f"{p}.intermediate.dense",
            "ffn_out": f"{p}.output.dense",
            "ffn_norm": f"{p}.output.LayerNorm",
        }
        x = b.encoder_layer(x, bias, names, hidden, heads, eps)
    b.mean_pool_unit(x, maskf)
    return b.model("bert_mean_pooled", hidden)


def relative_buckets(length: int, num_buckets: int = 32, max_distance: int = 128) -> Any:
    """(length, length) bucket of key position j relative to query position i, MPNet's scheme:
    half the buckets for keys before the query and half for keys after; within each half,
    distances below a quarter of the buckets count exactly and longer ones share buckets on a log
    scale up to ``max_distance``."""
    import numpy as np

    pos = np.arange(length)
    n = pos[:, None] - pos[None, :]  # query minus key: positive for keys before the query
    half = num_buckets // 2
    out = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    exact = half // 2
    with np.errstate(divide="ignore"):
        far = exact + (
            np.log(np.maximum(n, 1) / exact) / math.log(max_distance / exact) * (half - exact)
        ).astype(np.int64)
    far = np.minimum(far, half - 1)
    out += np.where(n < exact, n, far)
    return out


def mpnet_graph(weights: dict[str, Any], config: dict[str, Any], max_tokens: int) -> Any:
    """MPNet + mean pooling + L2 normalisation, for inputs of at most ``max_tokens`` tokens."""
    import numpy as np
    from onnx import TensorProto

    b = _Builder(weights)
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    eps = float(config["layer_norm_eps"])
    pad = int(config["pad_token_id"])
    ids, mask = "input_ids", "attention_mask"
    words = b.op("Gather", [b.const(b.w("embeddings.word_embeddings.weight"), "word_emb"), ids])
    # real tokens sit at positions pad+1, pad+2, ... (inputs are right-padded); padding at pad
    maskf = b.op("Cast", [mask], to=TensorProto.FLOAT)
    pos_ids = b.op(
        "Add",
        [b.op("Mul", [b.op("CumSum", [mask, b.const(np.int64(1))]), mask]), b.const(np.int64(pad))],
    )
    pos_table = b.const(b.w("embeddings.position_embeddings.weight"), "pos_emb")
    x = b.op("Add", [words, b.op("Gather", [pos_table, pos_ids])])
    x = b.layer_norm(x, "embeddings.LayerNorm", eps)

    # relative position bias, (1, H, T, T), from a precomputed (H, L, L) table
    table = b.w("encoder.relative_attention_bias.weight")  # (buckets, H)
    buckets = relative_buckets(max_tokens, int(config.get("relative_attention_num_buckets", 32)))
    rel = np.ascontiguousarray(np.transpose(table[buckets], (2, 0, 1)))  # H, L, L
    length = b.op(
        "Unsqueeze", [b.op("Gather", [b.op("Shape", [ids]), b.const(np.int64(1))]), b.i64(0)]
    )
    zero2 = b.i64(0, 0)
    stop = b.op("Concat", [length, length], axis=0)
    rel_t = b.op("Slice", [b.const(rel, "rel_bias"), zero2, stop, b.i64(1, 2)])
    bias = b.op("Add", [b.op("Unsqueeze", [rel_t, b.i64(0)]), b.padding_bias(maskf)])

    for n in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{n}"
        names = {
            "q": f"{p}.attention.attn.q",
            "k": f"{p}.attention.attn.k",
            "v": f"{p}.attention.attn.v",
            "attn_out": f"{p}.attention.attn.o",
            "attn_norm": f"{p}.attention.LayerNorm",
            "ffn_in": f"{p}.intermediate.dense",
            "ffn_out": f"{p}.output.dense",
            "ffn_norm": f"{p}.output.LayerNorm",
        }
        x = b.encoder_layer(x, bias, names, hidden, heads, eps)
    b.mean_pool_unit(x, maskf)
    return b.model("mpnet_mean_pooled", hidden)
