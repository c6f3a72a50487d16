"""The ONNX Runtime encoder gives the reference model's vectors (the semantic extra)."""

from __future__ import annotations

import numpy as np
import pytest

from athkit.registry import ranking
from athkit.registry.encoder import MODEL_NAME, OnnxEmbedder

TEXTS = [
    "buy running shoes",
    "is it going to rain tomorrow in Lisbon?",
    "Email: read messages and send replies. Categories: mail, productivity.",
    "¿Dónde está mi paquete? 配送状況を確認",  # accents and CJK characters through the tokenizer
    "",
    "plan the next iteration " * 80,  # past 256 tokens: truncated like the reference
]


@pytest.fixture(scope="module")
def reference() -> ranking.SentenceEmbedder:
    """sentence-transformers on torch, the model as its authors run it."""
    return ranking.SentenceEmbedder()


def test_vectors_match_the_reference_model(
    embedder: ranking.Embedder, reference: ranking.SentenceEmbedder
) -> None:
    assert isinstance(embedder, OnnxEmbedder)  # what load_embedder gives when installed
    assert embedder.model_name == reference.model_name == MODEL_NAME  # stored vectors stay valid
    fast, ref = embedder.encode(TEXTS), reference.encode(TEXTS)
    assert fast.shape == ref.shape == (len(TEXTS), 384) and fast.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(fast * ref, axis=1))) > 0.9999


def test_a_text_gets_the_same_vector_alone_and_in_a_padded_batch(
    embedder: ranking.Embedder,
) -> None:
    batch = embedder.encode(TEXTS)
    for i, t in enumerate(TEXTS):
        alone = embedder.encode([t])[0]
        assert float(alone @ batch[i]) > 0.99999
    assert embedder.encode([]).shape == (0, 384)


def test_nearest_listing_is_the_same_as_with_the_reference(
    embedder: ranking.Embedder, reference: ranking.SentenceEmbedder
) -> None:
    listings = [
        "Weather forecasts and rain radar",
        "Email: read messages and send replies",
        "Sports shoes and running gear shop",
        "Bank account payments and transfers",
    ]
    intents = ["will it rain tomorrow", "check my inbox", "buy trainers", "pay my rent"]
    for model in (embedder, reference):
        sims = model.encode(intents) @ model.encode(listings).T
        assert list(np.argmax(sims, axis=1)) == [0, 1, 2, 3]
