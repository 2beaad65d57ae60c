"""What the replica-exchange coordinator tells the outside world while it runs: progress reports, checkpoints
on a wall-clock schedule, and the frame a failed simulation started from.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fep.sampling.engine import BlowUp, EnergyEngine
from fep.sampling.settings import SamplerProgress, SamplerSummary
from fep.sampling.state import Checkpoint, ReplicaState
from fep.sampling.storage import IterationBuffer, SamplerStore
from mlfep_core import SamplerError, atomic_write_text

__all__ = ["CheckpointWriter", "ProgressReporter", "failure", "save_failed_frame", "summarize"]

logger = logging.getLogger(__name__)


class ProgressReporter:
    """Sends :class:`SamplerProgress` to ``callback`` (nothing when it is None); ``t0`` is when the call began."""

    def __init__(self, callback: Callable[[SamplerProgress], None] | None, t0: float) -> None:
        self.callback, self.t0 = callback, t0

    def windows(self, phase: Any, done: int, total: int, ns_done: float, ns_total: float, t_phase: float) -> None:
        """After each equilibrated window of ``phase`` (started at ``t_phase``)."""
        if self.callback is None:
            return
        per = (time.monotonic() - t_phase) / max(done, 1)
        self._send(phase, done, total, ns_done, ns_total, per * (total - done) if math.isfinite(per) else None)

    def production(self, iteration: int, target: int, ns_done: float, ns_per_iteration: float, per_iter: float) -> None:
        """After each production iteration (``per_iter``: wall seconds per iteration so far in this call)."""
        if self.callback is None:
            return
        left = target - iteration
        self._send("production", iteration, target, ns_done, ns_done + left * ns_per_iteration, per_iter * left)

    def _send(self, phase, done, total, ns_done, ns_total, eta_s) -> None:
        assert self.callback is not None
        self.callback(
            SamplerProgress(
                phase=phase,
                iteration=done,
                n_iterations=total,
                ns_done=ns_done,
                ns_total=ns_total,
                eta_s=eta_s,
                elapsed_s=time.monotonic() - self.t0,
            )
        )


class CheckpointWriter:
    """Writes a checkpoint when ``interval_s`` of wall time has passed since the last one (and when asked);
    adds the time spent to ``timings["io"]``."""

    def __init__(self, store: SamplerStore, interval_s: float, platform: str, timings: dict[str, float]) -> None:
        self.store, self.interval_s, self.platform, self.timings = store, interval_s, platform, timings
        self.last_write = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last_write >= self.interval_s

    def write(
        self,
        replicas: ReplicaState,
        previous: Checkpoint | None,
        buffer: IterationBuffer,
        iteration: int,
        target: int,
        timestep_fs: float,
    ) -> Checkpoint:
        t_io = time.monotonic()
        checkpoint = replicas.write(
            self.store,
            previous,
            buffer,
            iteration=iteration,
            target=target,
            timestep_fs=timestep_fs,
            platform=self.platform,
            written_at=time.time(),
        )
        self.last_write = time.monotonic()
        self.timings["io"] += self.last_write - t_io
        return checkpoint


def summarize(
    store: SamplerStore,
    checkpoint: Checkpoint,
    engine: EnergyEngine,
    start_iteration: int,
    resumed_from: int | None,
    recoveries: int,
    timings: dict[str, float],
    t0: float,
) -> SamplerSummary:
    """What a run()/extend() call that started at ``t0`` did."""
    return SamplerSummary(
        folder=str(store.folder),
        n_states=len(engine.states),
        n_iterations=checkpoint.iteration,
        iterations_this_call=checkpoint.iteration - start_iteration,
        resumed_from_iteration=resumed_from,
        ns_per_replica=checkpoint.ns_per_replica,
        platform=engine.platform_name,
        precision=engine.settings.precision,
        timestep_fs=checkpoint.timestep_fs,
        nan_recoveries=recoveries,
        wall_s=time.monotonic() - t0,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        mean_neighbor_acceptance=checkpoint.mean_neighbor_acceptance(),
        storage_bytes=store.size_bytes(),
    )


def failure(
    folder: Path,
    topology: Any,
    states: Sequence[Mapping[str, float]],
    blow: BlowUp,
    where: str,
    retries: int,
    dt: float,
) -> SamplerError:
    """The error of a simulation that failed after every retry, with its starting frame saved in ``folder``."""
    saved = save_failed_frame(topology, folder, blow)
    note = f"; its starting frame is saved as {saved}" if saved else ""
    return SamplerError(
        f"{folder}: {blow.reason} in {where} (replica {blow.replica}, state {blow.state} {states[blow.state]}) "
        f"after {retries} retries down to a {dt:.3g} fs step{note}; check the system (clashes, constraints, HMR) "
        "or use a smaller timestep"
    )


def save_failed_frame(topology: Any, folder: Path, blow: BlowUp) -> Path | None:
    """Write the frame a failed propagation started from (PDB; mmCIF when coordinates overflow PDB)."""
    from io import StringIO

    import openmm.app as app
    import openmm.unit as u

    try:
        topology = copy.deepcopy(topology)
        if blow.box is not None:
            topology.setPeriodicBoxVectors(blow.box * u.nanometer)
    except Exception as err:  # a broken topology must not hide the real error
        logger.warning("cannot save the failed frame: %s", err)
        return None
    stem = folder / f"failed_replica{blow.replica}_state{blow.state}"
    for writer, suffix in ((app.PDBFile, ".pdb"), (app.PDBxFile, ".cif")):
        try:
            buffer = StringIO()
            writer.writeFile(topology, blow.positions * u.nanometer, buffer)
            return atomic_write_text(stem.with_suffix(suffix), buffer.getvalue())
        except Exception as err:
            logger.warning("cannot write the failed frame as %s: %s", suffix, err)
    return None
