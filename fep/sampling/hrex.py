"""Hamiltonian replica exchange (HREX) on one OpenMM context, with atomic checkpoints, resume, extend and
NaN recovery: the coordinator. The pieces: :mod:`~fep.sampling.settings` (settings, reports),
:mod:`~fep.sampling.engine` (the context and energies), :mod:`~fep.sampling.equilibration`,
:mod:`~fep.sampling.state` (replica state, checkpoint), :mod:`~fep.sampling.reporters`, :mod:`~fep.sampling.storage`.

The K states differ only in global context parameters (e.g. a hybrid's λ). Per iteration every replica is
propagated in its state and evaluated in all K (one context, :mod:`~fep.sampling.engine`), then states are mixed by
K³ Metropolis pair swaps (Gibbs mixing); results go out with each checkpoint, :func:`load_samples` reads them.

Examples
--------
>>> settings = SamplerSettings(n_iterations=2000, pressure="1 bar")            # doctest: +SKIP
>>> sampler = HREXSampler(leg.system, leg.topology, leg.positions, leg.box_vectors,
...                       protocol.windows, settings, "run/edge/solvent")      # doctest: +SKIP
>>> summary = sampler.run(progress=print)                                      # doctest: +SKIP
>>> data = load_samples("run/edge/solvent"); data.u_kln().shape                # doctest: +SKIP
(12, 12, 2000)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import numpy as np

from fep.sampling.engine import BlowUp, EnergyEngine, checked_states, nm_array, split_force_groups
from fep.sampling.equilibration import equilibrate_windows
from fep.sampling.mixing import gibbs_swaps
from fep.sampling.platforms import select_platform
from fep.sampling.reporters import CheckpointWriter, ProgressReporter, failure, summarize
from fep.sampling.settings import SamplerProgress, SamplerSettings, SamplerSummary
from fep.sampling.state import Checkpoint, ReplicaState, check_folder
from fep.sampling.storage import IterationBuffer, SamplerStore, load_samples
from mlfep_core import InputError, SamplerError

__all__ = ["HREXSampler", "SamplerProgress", "SamplerSettings", "SamplerSummary", "load_samples"]

logger = logging.getLogger(__name__)

EXPLOSION_KT = 1.0e6  # a replica's reduced energy changing by more than this in one iteration counts as a blow-up
_TIMINGS = ("equilibration", "production", "production_cpu", "propagation", "md_steps", "energies", "swaps", "io")


class HREXSampler:
    """Hamiltonian replica exchange between K states of one system that differ only in global parameters.

    Parameters
    ----------
    system : openmm.System
        The (hybrid) system; not modified (a copy gets the barostat).
    topology : openmm.app.Topology
        Its topology (for the PDB written when a simulation fails).
    positions : array-like, shape (N, 3)
        Starting coordinates in nm (or an openmm/openff quantity); every replica starts here.
    box_vectors : array-like, shape (3, 3), or None
        Periodic box vectors in nm; None for a non-periodic system (or to use the system's default box).
    states : sequence of mapping
        The K thermodynamic states: global parameter name -> value, the same names in every state.
    settings : SamplerSettings
        Temperature, pressure, lengths, platform, checkpointing.
    folder : path
        Run folder; a folder with a checkpoint is resumed by :meth:`run`.
    static_force_groups : collection of int
        Force groups whose energy does not depend on the state parameters: evaluated once per replica and
        iteration instead of once per state (checked against the forces' global parameters).
    """

    def __init__(
        self,
        system,
        topology,
        positions,
        box_vectors,
        states: Sequence[Mapping[str, float]],
        settings: SamplerSettings,
        folder: str | os.PathLike[str],
        *,
        static_force_groups: Collection[int] = (),
    ) -> None:
        import openmm

        if not isinstance(system, openmm.System):
            raise InputError(f"system must be an openmm.System, got {type(system).__name__}")
        self.states = checked_states(states)
        self.system, self.topology, self.settings = system, topology, settings
        self.folder = Path(folder)
        self.store = SamplerStore(self.folder)
        self.n_states = len(self.states)
        self.positions = nm_array(positions, "positions", (system.getNumParticles(), 3))
        self.periodic = bool(system.usesPeriodicBoundaryConditions())
        if box_vectors is None and self.periodic:
            box_vectors = [v.value_in_unit(openmm.unit.nanometer) for v in system.getDefaultPeriodicBoxVectors()]
        self.box = nm_array(box_vectors, "box_vectors", (3, 3)) if self.periodic else None
        if settings.pressure is not None and not self.periodic:
            raise InputError("a pressure is set for a non-periodic system: use SamplerSettings(pressure=None) (NVT)")
        self.static_groups, self.dynamic_groups = split_force_groups(system, static_force_groups, set(self.states[0]))
        self.n_swap_attempts = settings.swap_attempts if settings.swap_attempts is not None else self.n_states**3
        self.timings: dict[str, float] = dict.fromkeys(_TIMINGS, 0.0)
        # made afresh by each run()/extend() call (declared here so that the coordinator's state is in one place)
        self.engine: EnergyEngine
        self.replicas: ReplicaState
        self._writer: CheckpointWriter
        self._reporter: ProgressReporter
        self._recoveries = 0

    # ------------------------------------------------------------------------------- public API
    def run(self, progress: Callable[[SamplerProgress], None] | None = None) -> SamplerSummary:
        """Equilibrate (new folder) and run production up to ``settings.n_iterations``; resumes automatically.

        A folder with a checkpoint continues from it: data written after that checkpoint is discarded, no
        iteration is lost before it or stored twice.
        """
        return self._run(extra=0, progress=progress)

    def extend(self, n_iterations: int, progress: Callable[[SamplerProgress], None] | None = None) -> SamplerSummary:
        """Add ``n_iterations`` production iterations to the run in this folder (finishing it first if needed)."""
        if n_iterations < 0:
            raise InputError(f"extend({n_iterations}): the number of iterations to add must be >= 0")
        if self.store.read_checkpoint() is None:
            raise InputError(f"{self.folder}: nothing to extend (no checkpoint); call run() first")
        return self._run(extra=int(n_iterations), progress=progress)

    # ------------------------------------------------------------------------------- the run
    def _run(self, extra: int, progress) -> SamplerSummary:
        try:
            lock = self.store.lock()
        except BlockingIOError as err:
            raise SamplerError(f"{self.folder}: another process runs this sampler folder; wait for it") from err
        try:
            return self._run_locked(extra, progress)
        finally:
            lock.close()

    def _run_locked(self, extra: int, progress) -> SamplerSummary:
        t0 = time.monotonic()
        self.timings = dict.fromkeys(_TIMINGS, 0.0)
        self._reporter = ProgressReporter(progress, t0)
        self._recoveries = 0
        check_folder(self.store, self.system, self.states, self.settings, (self.static_groups, self.dynamic_groups))
        record = self.store.resume_point()  # a damaged file is named now, not after the remaining iterations
        removed = self.store.discard_uncommitted(record)
        if removed:
            logger.info("%s: discarded %d files written after the last checkpoint", self.folder, len(removed))
        platform = select_platform(self.settings.platform, self.settings.precision)
        self.engine = EnergyEngine(
            self.system, self.states, self.settings, platform, self.static_groups, self.dynamic_groups, str(self.folder)
        )
        self._writer = CheckpointWriter(
            self.store, self.settings.checkpoint_interval_s, self.engine.platform_name, self.timings
        )
        resumed_from = None
        if record is None:
            target = self.settings.n_iterations + extra
            checkpoint = self._equilibrate(target)
        else:
            checkpoint = Checkpoint(record)
            resumed_from = checkpoint.iteration
            target = max(self.settings.n_iterations, checkpoint.target) + extra
            self._restore(checkpoint, reseed=True)
            logger.info("%s: resuming at iteration %d of %d", self.folder, resumed_from, target)
        start_iteration = checkpoint.iteration
        checkpoint = self._production(checkpoint, target)
        return summarize(
            self.store, checkpoint, self.engine, start_iteration, resumed_from, self._recoveries, self.timings, t0
        )

    def _restore(self, checkpoint: Checkpoint, reseed: bool) -> None:
        self.replicas = ReplicaState.restore(self.store, checkpoint)
        if reseed:  # a fresh context whose random streams depend only on the checkpoint
            salt = 3_000_000 + checkpoint.iteration * 16 + self._recoveries
            self.engine.make_context(barostat=self.engine.npt, timestep_fs=checkpoint.timestep_fs, salt=salt)

    # ------------------------------------------------------------------------------- equilibration
    def _equilibrate(self, target: int) -> Checkpoint:
        dt = self.settings.timestep.m_as("femtosecond")
        attempt = 0
        t_start = time.monotonic()
        while True:
            try:
                pos, vel, boxes = equilibrate_windows(
                    self.engine, self.settings, self.positions, self.box, dt, attempt, self._reporter
                )
                break
            except BlowUp as blow:
                attempt += 1
                self._recoveries += 1
                if attempt > self.settings.max_nan_retries:
                    self._fail(blow, "equilibration", dt)
                dt *= self.settings.nan_timestep_factor
                logger.warning(
                    "%s: %s during equilibration; restarting it with a %.3g fs step", self.folder, blow.reason, dt
                )
                t_start = time.monotonic()
        self.timings["equilibration"] += time.monotonic() - t_start
        self.replicas = ReplicaState.start(pos, vel, boxes, self.settings.seed)
        return self._writer.write(self.replicas, None, IterationBuffer(), 0, target, self.engine.timestep_fs)

    # ------------------------------------------------------------------------------- production
    def _production(self, checkpoint: Checkpoint, target: int) -> Checkpoint:
        settings, replicas = self.settings, self.replicas
        iteration, buffer = checkpoint.iteration, IterationBuffer()
        self._writer.last_write = time.monotonic()
        t_phase, cpu_phase, done_this_session, retries = time.monotonic(), time.process_time(), 0, 0
        end_states = sorted({0, self.n_states - 1})
        while iteration < target:
            try:
                u_kl, pos_snap = self._iteration()
            except BlowUp as blow:
                retries += 1
                self._recoveries += 1
                if retries > settings.max_nan_retries:
                    self._fail(blow, f"production iteration {iteration}", self.engine.timestep_fs)
                new_dt = self.engine.timestep_fs * settings.nan_timestep_factor
                logger.warning(
                    "%s: %s at iteration %d (replica %d, state %d); rolling back to iteration %d with a %.3g fs step",
                    self.folder, blow.reason, iteration, blow.replica, blow.state, checkpoint.iteration, new_dt,
                )  # fmt: skip
                self._restore(checkpoint, reseed=False)
                replicas = self.replicas
                self.engine.set_timestep(new_dt)
                iteration, buffer = checkpoint.iteration, IterationBuffer()
                continue
            buffer.iterations.append(iteration)
            buffer.energies.append(u_kl)
            buffer.replica_states.append(replicas.replica_states.copy())
            if (iteration + 1) % settings.snapshot_interval == 0:
                for state in end_states:
                    replica = int(np.flatnonzero(replicas.replica_states == state)[0])
                    box = replicas.boxes[replica] if self.periodic else None
                    buffer.add_snapshot(state, iteration, pos_snap[replica], box)
            t_swap = time.monotonic()
            new_states, accepted, proposed = gibbs_swaps(
                u_kl, replicas.replica_states, replicas.rng, self.n_swap_attempts
            )
            replicas.replica_states = new_states
            replicas.accepted_total += accepted
            replicas.proposed_total += proposed
            buffer.accepted.append(accepted.astype(np.int32))
            buffer.proposed.append(proposed.astype(np.int32))
            replicas.last_u = u_kl
            ns_iter = settings.steps_per_iteration * self.engine.timestep_fs * 1e-6
            replicas.ns_per_replica += ns_iter
            self.timings["swaps"] += time.monotonic() - t_swap
            iteration += 1
            done_this_session += 1
            if iteration >= target or self._writer.due():
                checkpoint = self._writer.write(
                    replicas, checkpoint, buffer, iteration, target, self.engine.timestep_fs
                )
                buffer, retries = IterationBuffer(), 0
            per_iter = (time.monotonic() - t_phase) / done_this_session
            self._reporter.production(iteration, target, replicas.ns_per_replica, ns_iter, per_iter)
        if checkpoint.iteration != iteration or checkpoint.target != target:
            checkpoint = self._writer.write(replicas, checkpoint, buffer, iteration, target, self.engine.timestep_fs)
        self.timings["production"] += time.monotonic() - t_phase
        self.timings["production_cpu"] += time.process_time() - cpu_phase
        return checkpoint

    def _iteration(self) -> tuple[np.ndarray, np.ndarray]:
        """Propagate every replica in its state and evaluate it in every state; returns u_kl (K, K)."""
        engine, replicas, steps = self.engine, self.replicas, self.settings.steps_per_iteration
        u_kl = np.empty((self.n_states, self.n_states))
        new_pos, new_vel = np.empty_like(replicas.positions), np.empty_like(replicas.velocities)
        new_boxes = replicas.boxes.copy()
        for replica in range(self.n_states):
            state = int(replicas.replica_states[replica])
            start, box = replicas.positions[replica], replicas.boxes[replica] if self.periodic else None
            t0 = time.monotonic()
            engine.apply_state(state)
            engine.load(start, replicas.velocities[replica], box)
            t_md = time.monotonic()
            engine.step(steps, replica, state, start, box)
            self.timings["md_steps"] += time.monotonic() - t_md
            pos, vel, box_new = engine.read()
            engine.check_finite(pos, replica, state, start, box)
            t1 = time.monotonic()
            self.timings["propagation"] += t1 - t0
            row = engine.reduced_row(box_new)
            self.timings["energies"] += time.monotonic() - t1
            if not np.isfinite(row[state]):
                raise BlowUp("non-finite energy", replica, state, start, box)
            if replicas.last_u is not None and abs(row[state] - replicas.last_u[replica, state]) > EXPLOSION_KT:
                jump = row[state] - replicas.last_u[replica, state]
                raise BlowUp(f"energy jump of {jump:.3g} kT in one iteration", replica, state, start, box)
            u_kl[replica] = row
            new_pos[replica], new_vel[replica] = pos, vel
            if box_new is not None:
                new_boxes[replica] = box_new
        replicas.positions, replicas.velocities, replicas.boxes = new_pos, new_vel, new_boxes
        return u_kl, new_pos

    def _fail(self, blow: BlowUp, where: str, dt: float) -> None:
        raise failure(self.folder, self.topology, self.states, blow, where, self.settings.max_nan_retries, dt)
