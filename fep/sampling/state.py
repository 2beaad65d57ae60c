"""The state of a replica-exchange run between iterations, and its checkpoint.

:class:`ReplicaState` is everything production needs to continue (replica coordinates, which state each replica
is in, the swap counts, the swap RNG, the last energies); :class:`Checkpoint` is a typed, read-only view of a
``checkpoint.json`` record (:mod:`fep.sampling.storage` writes and reads the files). :func:`check_folder` makes a
folder's ``sampler.json`` and refuses to resume a run of another system or with other settings.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fep.sampling.settings import MUST_MATCH, SamplerSettings, same_setting
from fep.sampling.storage import IterationBuffer, SamplerStore
from mlfep_core import InputError

__all__ = ["Checkpoint", "ReplicaState", "check_folder"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as written (``record`` is the JSON object; its file lists belong to the store)."""

    record: Mapping[str, Any]

    @property
    def iteration(self) -> int:
        """Production iterations stored."""
        return int(self.record["iteration"])

    @property
    def target(self) -> int:
        """Production iterations the run was going to when this was written."""
        return int(self.record["n_iterations_target"])

    @property
    def timestep_fs(self) -> float:
        """The time step in use (smaller than the setting after NaN recovery)."""
        return float(self.record["timestep_fs"])

    @property
    def ns_per_replica(self) -> float:
        return float(self.record["ns_per_replica"])

    @property
    def index(self) -> int:
        """How many checkpoints the run has written."""
        return int(self.record["checkpoint_index"])

    @property
    def accepted_total(self) -> np.ndarray:
        return np.asarray(self.record["accepted_total"], dtype=np.int64)

    @property
    def proposed_total(self) -> np.ndarray:
        return np.asarray(self.record["proposed_total"], dtype=np.int64)

    def mean_neighbor_acceptance(self) -> float | None:
        """Mean swap acceptance between adjacent states (None before any swap was proposed)."""
        accepted, proposed = self.accepted_total, self.proposed_total
        pairs = [(k, k + 1) for k in range(len(proposed) - 1) if proposed[k, k + 1] > 0]
        return float(np.mean([accepted[p] / proposed[p] for p in pairs])) if pairs else None


@dataclass
class ReplicaState:
    """Replicas between iterations: coordinates (K, N, 3) nm, velocities nm/ps, boxes (K, 3, 3) nm, the state of
    each replica, cumulative swap counts, the swap RNG, production ns per replica, the last u_kl."""

    positions: np.ndarray
    velocities: np.ndarray
    boxes: np.ndarray
    replica_states: np.ndarray
    rng: np.random.Generator
    accepted_total: np.ndarray
    proposed_total: np.ndarray
    ns_per_replica: float = 0.0
    last_u: np.ndarray | None = None
    checkpoint_index: int = 0

    @classmethod
    def start(cls, positions: np.ndarray, velocities: np.ndarray, boxes: np.ndarray, seed: int) -> ReplicaState:
        """Replica k in state k, no swaps yet, the swap RNG seeded with ``seed``."""
        n = len(positions)
        return cls(
            positions=positions,
            velocities=velocities,
            boxes=boxes,
            replica_states=np.arange(n),
            rng=np.random.default_rng(seed),
            accepted_total=np.zeros((n, n), dtype=np.int64),
            proposed_total=np.zeros((n, n), dtype=np.int64),
        )

    @classmethod
    def restore(cls, store: SamplerStore, checkpoint: Checkpoint) -> ReplicaState:
        """The state saved with ``checkpoint``."""
        arrays = store.load_state(checkpoint.record)
        rng = np.random.default_rng()
        rng.bit_generator.state = checkpoint.record["rng_state"]
        last_u = checkpoint.record.get("last_u")
        return cls(
            positions=arrays["positions"].astype(np.float64),
            velocities=arrays["velocities"].astype(np.float64),
            boxes=arrays["boxes"].astype(np.float64),
            replica_states=arrays["replica_states"].astype(np.int64),
            rng=rng,
            accepted_total=checkpoint.accepted_total,
            proposed_total=checkpoint.proposed_total,
            ns_per_replica=checkpoint.ns_per_replica,
            last_u=None if last_u is None else np.asarray(last_u),
            checkpoint_index=checkpoint.index,
        )

    def write(
        self,
        store: SamplerStore,
        previous: Checkpoint | None,
        buffer: IterationBuffer,
        *,
        iteration: int,
        target: int,
        timestep_fs: float,
        platform: str,
        written_at: float,
    ) -> Checkpoint:
        """Write the buffered iterations and this state as the next checkpoint."""
        self.checkpoint_index += 1
        arrays = {
            "positions": self.positions,
            "velocities": self.velocities,
            "boxes": self.boxes,
            "replica_states": self.replica_states,
        }
        fields = {
            "iteration": iteration,
            "n_iterations_target": target,
            "checkpoint_index": self.checkpoint_index,
            "timestep_fs": timestep_fs,
            "platform": platform,
            "ns_per_replica": self.ns_per_replica,
            "accepted_total": self.accepted_total.tolist(),
            "proposed_total": self.proposed_total.tolist(),
            "rng_state": self.rng.bit_generator.state,
            "last_u": None if self.last_u is None else self.last_u.tolist(),
            "written_at": written_at,
        }
        return Checkpoint(store.write_checkpoint(None if previous is None else previous.record, buffer, arrays, fields))


def check_folder(
    store: SamplerStore,
    system: Any,
    states: Sequence[Mapping[str, float]],
    settings: SamplerSettings,
    force_groups: tuple[set[int], set[int]],
) -> None:
    """Write ``sampler.json`` for a new folder; for an existing one, check it holds this system's run.

    Raises
    ------
    InputError
        The folder holds a run of another system, other states, or other :data:`MUST_MATCH` settings.
    """
    import openmm

    fingerprint = hashlib.sha256(openmm.XmlSerializer.serialize(system).encode()).hexdigest()
    metadata = store.read_metadata()
    n_atoms = system.getNumParticles()
    as_dicts = [dict(s) for s in states]
    if metadata is None:
        static, dynamic = force_groups
        store.write_metadata(
            {
                "n_states": len(states),
                "n_atoms": n_atoms,
                "states": as_dicts,
                "temperature_k": settings.temperature.m_as("kelvin"),
                "pressure_bar": settings.pressure.m_as("bar") if settings.pressure is not None else None,
                "periodic": bool(system.usesPeriodicBoundaryConditions()),
                "static_force_groups": sorted(static),
                "dynamic_force_groups": sorted(dynamic),
                "system_sha256": fingerprint,
                "settings": settings.model_dump(mode="json"),
                "versions": {"openmm": openmm.__version__},
            }
        )
        return
    if metadata["n_atoms"] != n_atoms or metadata["states"] != as_dicts:
        raise InputError(
            f"{store.folder}: holds a run of another system or other states "
            f"({metadata['n_atoms']} atoms, {metadata['n_states']} states); use a new folder"
        )
    changed = [k for k in MUST_MATCH if not same_setting(metadata["settings"].get(k), getattr(settings, k))]
    if changed:
        raise InputError(
            f"{store.folder}: was started with different {', '.join(changed)}; resume with the same settings "
            "or use a new folder"
        )
    if metadata.get("system_sha256") != fingerprint:
        logger.warning("%s: the system differs from the one this run started with (serialized XML)", store.folder)
