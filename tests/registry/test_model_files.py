"""Model files from a zip split across wheels: read as one stream, every file's SHA-256 checked."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from athkit.registry.model_files import ModelFilesError, read_split_zip


def _split_zip(tmp_path: Path, files: dict[str, bytes], pieces: int) -> list[Path]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(f"model/{name}", data)
    blob = buf.getvalue()
    step = -(-len(blob) // pieces)
    out = []
    for i in range(pieces):
        p = tmp_path / f"model.zip.{i + 1:03d}"
        p.write_bytes(blob[i * step : (i + 1) * step])
        out.append(p)
    return out


FILES = {
    "config.json": b'{"hidden_size": 8}',
    "model.safetensors": os.urandom(300_000),  # incompressible: spans every piece
    "tokenizer.json": b'{"model": {}}' * 500,
}
DIGESTS = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}


def test_files_are_read_across_the_pieces_and_verified(tmp_path: Path) -> None:
    parts = _split_zip(tmp_path, FILES, pieces=5)
    assert all(p.stat().st_size < 100_000 for p in parts)
    assert read_split_zip(parts, "model", DIGESTS) == FILES


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    other = {**FILES, "tokenizer.json": b'{"model": {"x": 1}}'}
    parts = _split_zip(tmp_path, other, pieces=3)
    with pytest.raises(ModelFilesError, match="tokenizer.json has SHA-256"):
        read_split_zip(parts, "model", DIGESTS)


def test_a_damaged_or_missing_piece_is_refused(tmp_path: Path) -> None:
    parts = _split_zip(tmp_path, FILES, pieces=5)
    raw = bytearray(parts[2].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    parts[2].write_bytes(bytes(raw))
    with pytest.raises(ModelFilesError):
        read_split_zip(parts, "model", DIGESTS)
    with pytest.raises(ModelFilesError):
        read_split_zip([parts[0], parts[1], parts[3], parts[4]], "model", DIGESTS)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    parts = _split_zip(tmp_path, {"config.json": b"{}"}, pieces=2)
    with pytest.raises(ModelFilesError, match="model/model.safetensors is not in the zip"):
        read_split_zip(parts, "model", {"model.safetensors": "0" * 64})
