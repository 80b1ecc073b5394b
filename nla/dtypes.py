"""Weight dtypes by the names specs, the CLI and the dashboard use; torch loads only when one is
resolved."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nla.errors import InputError

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("float32", "bfloat16", "float16")


def torch_dtype(name: str, what: str = "dtype") -> torch.dtype:
    """The torch dtype called ``name``; an unknown name raises ``InputError`` naming ``what`` (the
    field or option) and listing the valid names."""
    if name not in DTYPE_NAMES:
        raise InputError(f"{what} {name!r}: choose one of {', '.join(DTYPE_NAMES)}")
    import torch

    return getattr(torch, name)
