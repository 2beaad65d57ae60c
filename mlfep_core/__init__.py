"""mlfep's foundation, importable by every package: errors, frozen models and unit fields, atomic writes,
physical constants, and the logging and warnings set-up. It imports nothing of mlfep and nothing heavy.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from mlfep_core.errors import (
    AnalysisError,
    ChargeError,
    DiskFullError,
    ExecutorError,
    HybridError,
    HybridNonbondedError,
    InputError,
    LigandValidationError,
    MappingError,
    MlfepError,
    ModelWeightsError,
    ParametrizationError,
    PlatformError,
    PoseError,
    SamplerError,
    StoreError,
    UnsupportedEdgeError,
)
from mlfep_core.io import atomic_write_bytes, atomic_write_text
from mlfep_core.models import FrozenModel, quantity

try:
    #: The installed version; pyproject.toml is the one place it is written.
    __version__ = _metadata.version("mlfep")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AnalysisError",
    "ChargeError",
    "DiskFullError",
    "ExecutorError",
    "FrozenModel",
    "HybridError",
    "HybridNonbondedError",
    "InputError",
    "LigandValidationError",
    "MappingError",
    "MlfepError",
    "ModelWeightsError",
    "ParametrizationError",
    "PlatformError",
    "PoseError",
    "SamplerError",
    "StoreError",
    "UnsupportedEdgeError",
    "__version__",
    "atomic_write_bytes",
    "atomic_write_text",
    "quantity",
]
