"""Device and dtype choice shared by the kernels (torch is imported inside the functions)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["as_tensor", "resolve_device", "resolve_dtype", "torch_threads"]


def resolve_device(device: Any = None):
    """``device`` as a ``torch.device``; None means CUDA when torch sees one, else the CPU."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: Any = None):
    """``dtype`` as a torch dtype; None means float64 (free energies need it: ANI totals are ~1e6 kJ/mol)."""
    import torch

    if dtype is None:
        return torch.float64
    if isinstance(dtype, str):
        try:
            return {
                "float64": torch.float64,
                "double": torch.float64,
                "float32": torch.float32,
                "float": torch.float32,
            }[dtype]
        except KeyError as err:
            from mlfep_core import InputError

            raise InputError(f"dtype must be 'float64' or 'float32', got {dtype!r}") from err
    return dtype


def as_tensor(array: Any, device, dtype):
    """``array`` (numpy, list or tensor) as a tensor on ``device`` with ``dtype`` (no copy when already there)."""
    import torch

    if isinstance(array, torch.Tensor):
        return array.to(device=device, dtype=dtype)
    import numpy as np

    return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (None: unchanged), restoring the previous number."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)
