"""Every error mlfep raises on purpose, in one place.

Each package raises a subclass of :class:`MlfepError`; the message is one line naming the ligand, row, residue or
file and what to do. The CLI and the workers turn any of them into that line and a non-zero exit.
"""

from __future__ import annotations

__all__ = [
    "AnalysisError",
    "ChargeError",
    "DiskFullError",
    "ExecutorError",
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
]


class MlfepError(Exception):
    """Base of every error mlfep raises on purpose. The message is one line a user can act on."""


class InputError(MlfepError, ValueError):
    """A user-supplied file, row or option is wrong (names the file/row and what to do)."""


class LigandValidationError(InputError):
    """A ligand failed validation (names the ligand or row)."""


class ChargeError(MlfepError, RuntimeError):
    """Partial charges could not be assigned (names the ligand)."""


class ParametrizationError(MlfepError, ValueError):
    """A force field could not parametrize a molecule or residue (names it)."""


class MappingError(MlfepError, ValueError):
    """No acceptable atom mapping between two ligands (names both and the reason)."""


class PoseError(InputError):
    """No acceptable pose could be generated for a ligand (names the ligand and what to do)."""


class ModelWeightsError(MlfepError, FileNotFoundError):
    """The neural-network potential's weights are not installed where mlfep looks for them."""


class UnsupportedEdgeError(MlfepError, NotImplementedError):
    """The edge needs a protocol mlfep does not have yet (e.g. a change of net charge)."""


class HybridError(MlfepError, ValueError):
    """The end states and mapping cannot be combined into a hybrid system (names the edge and the reason)."""


class HybridNonbondedError(MlfepError, ValueError):
    """The end states' nonbonded settings cannot be combined into a hybrid (names what differs)."""


class SamplerError(MlfepError, RuntimeError):
    """The simulation failed (NaN or exploding energies after every retry, or an unusable platform)."""


class DiskFullError(MlfepError, OSError):
    """The disk or quota filled up while writing (names the file or folder; the last good checkpoint is kept)."""


class PlatformError(MlfepError, RuntimeError):
    """No requested OpenMM platform is available or usable on this machine."""


class ExecutorError(MlfepError, RuntimeError):
    """An executor cannot be started (missing package, unreachable scheduler, bad cluster file)."""


class StoreError(MlfepError, RuntimeError):
    """The results store cannot be opened or written."""


class AnalysisError(MlfepError, RuntimeError):
    """The estimator could not produce a number from the data (names the leg and what to do)."""
