"""Activation vectors as compact blobs: float32, little-endian, and their content keys."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from audits.store.errors import StoreError

if TYPE_CHECKING:
    import torch

BLOB_DTYPE = np.dtype("<f4")


def vector_to_blob(vector: np.ndarray | torch.Tensor) -> bytes:
    """The float32 little-endian bytes of a 1-D vector (float64 or bfloat16 input is cast to float32)."""
    if hasattr(vector, "detach"):  # a torch tensor; numpy cannot read bfloat16 directly
        vector = vector.detach().float().cpu().numpy()
    array = np.asarray(vector)
    if array.ndim != 1:
        raise ValueError(f"expected a 1-D vector, got shape {array.shape}")
    return array.astype(BLOB_DTYPE, copy=False).tobytes()


def blob_to_vector(blob: bytes, d_model: int) -> np.ndarray:
    """A writable float32 vector of width ``d_model`` from its blob."""
    if len(blob) != d_model * BLOB_DTYPE.itemsize:
        raise StoreError(
            f"activation blob has {len(blob)} bytes; a float32 vector of d_model={d_model} has {d_model * 4}"
        )
    return np.frombuffer(blob, dtype=BLOB_DTYPE).astype(np.float32)


def vector_digest_of(blob: bytes) -> str:
    """The sha256 hex of a vector blob: the engine's ``vector_digest`` of the same vector."""
    return hashlib.sha256(blob).hexdigest()


def activation_key(blob: bytes, target: str | None = None) -> str:
    """The content key of an activation: the blob's sha256 (the engine's ``vector_digest``), or, for a
    fine-tuned target (``target`` = its identity with the adapter's hash), the sha256 of the identity and
    the blob, so the fine-tune's rows never share keys with its base's."""
    if target is None:
        return vector_digest_of(blob)
    return hashlib.sha256(target.encode() + b"\0" + blob).hexdigest()
