"""Hamiltonian replica exchange (HREX) on one OpenMM context, with atomic checkpoints, resume, extend and
NaN recovery.

The K thermodynamic states differ only by global context parameters (e.g. the λ parameters of a hybrid
system). Per iteration, every replica is loaded into the single context, propagated in its current state
(LangevinMiddleIntegrator, MonteCarloBarostat when a pressure is set) and evaluated in all K states
(static force groups once per replica, the λ-dependent groups per state); then states are mixed by many
Metropolis pair swaps (all-pairs Gibbs mixing, K³ attempts by default, ~1 µs each). Results are buffered and
written with each checkpoint (see :mod:`fep.sampling.storage` for the folder layout); :func:`load_samples`
reads them back.

Cost per iteration and replica, on top of the MD steps: one positions/velocities/box upload and download
(the platform then rebuilds its neighbour list once), one evaluation of the static force groups and K
evaluations of the λ-dependent groups, i.e. about (K + 2) force evaluations per ``steps_per_iteration``
steps; swaps and I/O are negligible. With the hybrid's NonbondedForce in a λ-dependent group each state
evaluation costs about one MD step (measured in benchmarks/sampler_speed.py).

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

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from fep.sampling.mixing import gibbs_swaps
from fep.sampling.platforms import platform_properties, select_platform
from fep.sampling.storage import IterationBuffer, SamplerData, SamplerStore, load_samples
from mlfep_core import FrozenModel, InputError, SamplerError
from mlfep_core.constants import GAS_CONSTANT_KJ_MOL_K
from mlfep_core.models import Bar, Femtoseconds, Kelvin, PerPicosecond

__all__ = [
    "HREXSampler",
    "SamplerData",
    "SamplerError",
    "SamplerProgress",
    "SamplerSettings",
    "SamplerSummary",
    "gibbs_swaps",
    "load_samples",
    "select_platform",
]

logger = logging.getLogger(__name__)

PV_KJ_MOL_PER_BAR_NM3 = 0.0602214076  # 1 bar × 1 nm³ × N_A in kJ/mol
EXPLOSION_KT = 1.0e6  # a replica's reduced energy changing by more than this in one iteration counts as a blow-up


# ----------------------------------------------------------------------------------------- settings
class SamplerSettings(FrozenModel):
    """How to run Hamiltonian replica exchange."""

    temperature: Kelvin = Field("298.15 K", description="Temperature of every state.")
    pressure: Bar | None = Field("1 bar", description="Pressure (NPT); None for NVT (e.g. vacuum).")
    timestep: Femtoseconds = Field("4 fs", description="Integration time step (HMR systems: 4 fs).")
    collision_rate: PerPicosecond = Field("1 / ps", description="Langevin collision rate.")
    steps_per_iteration: int = Field(625, ge=1, description="MD steps between swap attempts (625 × 4 fs = 2.5 ps).")
    n_iterations: int = Field(2000, ge=0, description="Production iterations (a resumed run goes on to this).")
    minimization_max_iterations: int = Field(
        1000, ge=0, description="L-BFGS iterations to minimise each window before equilibration; 0 skips it."
    )
    equilibration_nvt_steps: int = Field(25000, ge=0, description="NVT equilibration steps per window.")
    equilibration_npt_steps: int = Field(
        25000, ge=0, description="NPT equilibration steps per window (after NVT; skipped when pressure is None)."
    )
    barostat_frequency: int = Field(25, ge=1, description="Steps between Monte Carlo volume moves.")
    snapshot_interval: int = Field(40, ge=1, description="Iterations between stored end-state configurations.")
    checkpoint_interval_s: float = Field(
        300.0, ge=0, description="Wall-clock seconds between checkpoints (one is always written at the end)."
    )
    platform: Literal["auto", "CUDA", "OpenCL", "CPU", "Reference"] = Field(
        "auto", description="OpenMM platform: auto = CUDA > OpenCL > CPU."
    )
    precision: Literal["single", "mixed", "double"] = Field("mixed", description="Precision on GPU platforms.")
    seed: int = Field(2024, ge=1, lt=2**31, description="Seed of every random stream (integrator, swaps).")
    max_nan_retries: int = Field(3, ge=0, description="Roll-back-and-retry attempts after a NaN/blow-up.")
    nan_timestep_factor: float = Field(0.5, gt=0, lt=1, description="Time step factor applied at each retry.")
    swap_attempts: int | None = Field(
        None, ge=0, description="Pair-swap attempts per iteration; None: K³ (all-pairs Gibbs mixing)."
    )


_MUST_MATCH = (
    "temperature",
    "pressure",
    "timestep",
    "collision_rate",
    "steps_per_iteration",
    "barostat_frequency",
    "seed",
    "equilibration_nvt_steps",
    "equilibration_npt_steps",
    "minimization_max_iterations",
)


class SamplerProgress(FrozenModel):
    """A progress report (sent after every equilibrated window and every production iteration)."""

    phase: Literal["equilibration_nvt", "equilibration_npt", "production"] = Field(
        description="equilibration_nvt (minimisation included), equilibration_npt, production."
    )
    iteration: int = Field(description="Windows (equilibration) or production iterations done.")
    n_iterations: int = Field(description="Windows (equilibration) or production iterations in all.")
    ns_done: float = Field(description="Simulated ns per replica in this phase so far.")
    ns_total: float = Field(description="Simulated ns per replica this phase will reach.")
    eta_s: float | None = Field(description="Estimated wall seconds left in this phase.")
    elapsed_s: float = Field(description="Wall seconds since run()/extend() was called.")


class SamplerSummary(FrozenModel):
    """What a run()/extend() call did."""

    folder: str
    n_states: int
    n_iterations: int = Field(description="Production iterations stored in total.")
    iterations_this_call: int
    resumed_from_iteration: int | None = Field(description="Checkpoint iteration resumed from; None for a new run.")
    ns_per_replica: float = Field(description="Production ns per replica stored in total.")
    platform: str
    precision: str
    timestep_fs: float = Field(description="Time step in use at the end (smaller after NaN recovery).")
    nan_recoveries: int = Field(description="Roll-backs after NaN/blow-ups during this call.")
    wall_s: float
    timings_s: dict[str, float] = Field(
        description="Wall seconds: equilibration; production, split into propagation (of which md_steps inside "
        "integrator.step), energies, swaps, io; production_cpu: CPU seconds of this process in production."
    )
    mean_neighbor_acceptance: float | None = Field(description="Mean swap acceptance of adjacent states.")
    storage_bytes: int


# ----------------------------------------------------------------------------------------- helpers
class _BlowUp(Exception):
    def __init__(self, reason: str, replica: int, state: int, positions: np.ndarray, box: np.ndarray | None):
        super().__init__(reason)
        self.reason, self.replica, self.state, self.positions, self.box = reason, replica, state, positions, box


def _nm_array(values, what: str, shape: tuple[int, ...]) -> np.ndarray:
    import openmm.unit as u

    if values is None:
        raise InputError(f"{what} is missing")
    if isinstance(values, u.Quantity):
        values = values.value_in_unit(u.nanometer)
    elif hasattr(values, "units") and hasattr(values, "m_as"):  # openff / pint quantity
        values = values.m_as("nanometer")
    try:
        array = np.array([[float(c) for c in row] for row in values], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{what}: cannot read as an array of 3-vectors in nm ({err})") from err
    if array.shape != shape:
        raise InputError(f"{what}: shape {array.shape}, expected {shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{what}: contains NaN or infinite values")
    return array


def _same_setting(stored: Any, value: Any) -> bool:
    """Whether a setting read back from sampler.json (JSON form) equals ``value`` (numbers compared with units)."""
    if value is None or stored is None:
        return value is None and stored is None
    if hasattr(value, "units"):
        from openff.units import Quantity

        try:
            return math.isclose(Quantity(stored).m_as(value.units), value.m, rel_tol=1e-9)
        except Exception:
            return False
    return stored == value


def _seed(*parts: int) -> int:
    value = 0x9E3779B1
    for part in parts:
        value = (value * 1_000_003 + int(part)) % (2**31 - 2)
    return value + 1


def _uses_parameter(force, names: set[str]) -> bool:
    import openmm

    if hasattr(force, "getNumGlobalParameters"):
        if any(force.getGlobalParameterName(i) in names for i in range(force.getNumGlobalParameters())):
            return True
    if isinstance(force, openmm.NonbondedForce):
        for i in range(force.getNumParticleParameterOffsets()):
            if force.getParticleParameterOffset(i)[0] in names:
                return True
        for i in range(force.getNumExceptionParameterOffsets()):
            if force.getExceptionParameterOffset(i)[0] in names:
                return True
    return False


# ----------------------------------------------------------------------------------------- sampler
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
        if not states:
            raise InputError("no thermodynamic states given: pass at least one mapping of parameter -> value")
        names = set(states[0])
        self.states: tuple[dict[str, float], ...] = tuple({k: float(v) for k, v in s.items()} for s in states)
        for k, state in enumerate(self.states):
            if set(state) != names:
                raise InputError(f"state {k} sets parameters {sorted(state)}, state 0 sets {sorted(names)}")
        self.system = system
        self.topology = topology
        self.settings = settings
        self.folder = Path(folder)
        self.store = SamplerStore(self.folder)
        self.n_states = len(self.states)
        self.n_atoms = system.getNumParticles()
        self.positions = _nm_array(positions, "positions", (self.n_atoms, 3))
        self.periodic = bool(system.usesPeriodicBoundaryConditions())
        if box_vectors is None and self.periodic:
            box_vectors = [v.value_in_unit(openmm.unit.nanometer) for v in system.getDefaultPeriodicBoxVectors()]
        self.box = _nm_array(box_vectors, "box_vectors", (3, 3)) if self.periodic else None
        if settings.pressure is not None and not self.periodic:
            raise InputError("a pressure is set for a non-periodic system: use SamplerSettings(pressure=None) (NVT)")
        self.npt = settings.pressure is not None
        self.kt = GAS_CONSTANT_KJ_MOL_K * settings.temperature.m_as("kelvin")
        self.beta = 1.0 / self.kt
        self.pv_factor = settings.pressure.m_as("bar") * PV_KJ_MOL_PER_BAR_NM3 if self.npt else 0.0
        groups_used = {f.getForceGroup() for f in system.getForces()}
        static = {int(g) for g in static_force_groups}
        if any(g < 0 or g > 31 for g in static):
            raise InputError(f"static_force_groups {sorted(static)}: force groups are 0..31")
        for force in system.getForces():
            if force.getForceGroup() in static and _uses_parameter(force, names):
                raise InputError(
                    f"force {force.getName()} in static force group {force.getForceGroup()} depends on a state "
                    "parameter: leave that group out of static_force_groups"
                )
        self.static_groups = static & groups_used
        self.dynamic_groups = groups_used - static
        self.n_swap_attempts = settings.swap_attempts if settings.swap_attempts is not None else self.n_states**3
        self._context = None
        self._integrator = None
        self._platform_name = ""
        self._current_params: dict[str, float] = {}
        self.timings: dict[str, float] = dict.fromkeys(
            ("equilibration", "production", "production_cpu", "propagation", "md_steps", "energies", "swaps", "io"), 0.0
        )

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
            raise SamplerError(
                f"{self.folder}: another process is running this sampler folder; wait for it or use another folder"
            ) from err
        try:
            return self._run_locked(extra, progress)
        finally:
            lock.close()

    def _run_locked(self, extra: int, progress) -> SamplerSummary:
        self._t0 = time.monotonic()
        self.timings = dict.fromkeys(self.timings, 0.0)
        self._progress = progress
        self._recoveries = 0
        self._prepare_folder()
        checkpoint = self.store.read_checkpoint()
        removed = self.store.discard_uncommitted(checkpoint)
        if removed:
            logger.info("%s: discarded %d files written after the last checkpoint", self.folder, len(removed))
        platform = select_platform(self.settings.platform, self.settings.precision)
        self._platform = platform
        self._platform_name = platform.getName()
        resumed_from = None
        if checkpoint is None:
            target = self.settings.n_iterations + extra
            checkpoint = self._equilibrate(target)
        else:
            resumed_from = int(checkpoint["iteration"])
            target = max(self.settings.n_iterations, int(checkpoint["n_iterations_target"])) + extra
            self._restore(checkpoint, reseed=True)
            logger.info("%s: resuming at iteration %d of %d", self.folder, resumed_from, target)
        start_iteration = int(checkpoint["iteration"])
        checkpoint = self._production(checkpoint, target)
        data_iter = int(checkpoint["iteration"])
        totals_acc = np.asarray(checkpoint["accepted_total"])
        totals_prop = np.asarray(checkpoint["proposed_total"])
        pairs = [(k, k + 1) for k in range(self.n_states - 1) if totals_prop[k, k + 1] > 0]
        mean_acc = float(np.mean([totals_acc[p] / totals_prop[p] for p in pairs])) if pairs else None
        return SamplerSummary(
            folder=str(self.folder),
            n_states=self.n_states,
            n_iterations=data_iter,
            iterations_this_call=data_iter - start_iteration,
            resumed_from_iteration=resumed_from,
            ns_per_replica=float(checkpoint["ns_per_replica"]),
            platform=self._platform_name,
            precision=self.settings.precision,
            timestep_fs=float(checkpoint["timestep_fs"]),
            nan_recoveries=self._recoveries,
            wall_s=time.monotonic() - self._t0,
            timings_s={k: round(v, 4) for k, v in self.timings.items()},
            mean_neighbor_acceptance=mean_acc,
            storage_bytes=self.store.size_bytes(),
        )

    def _prepare_folder(self) -> None:
        import hashlib

        import openmm

        fingerprint = hashlib.sha256(openmm.XmlSerializer.serialize(self.system).encode()).hexdigest()
        metadata = self.store.read_metadata()
        settings = self.settings.model_dump(mode="json")
        if metadata is None:
            self.store.write_metadata(
                {
                    "n_states": self.n_states,
                    "n_atoms": self.n_atoms,
                    "states": [dict(s) for s in self.states],
                    "temperature_k": self.settings.temperature.m_as("kelvin"),
                    "pressure_bar": self.settings.pressure.m_as("bar") if self.npt else None,
                    "periodic": self.periodic,
                    "static_force_groups": sorted(self.static_groups),
                    "dynamic_force_groups": sorted(self.dynamic_groups),
                    "system_sha256": fingerprint,
                    "settings": settings,
                    "versions": {"openmm": openmm.__version__},
                }
            )
            return
        if metadata["n_atoms"] != self.n_atoms or metadata["states"] != [dict(s) for s in self.states]:
            raise InputError(
                f"{self.folder}: holds a run of another system or other states "
                f"({metadata['n_atoms']} atoms, {metadata['n_states']} states); use a new folder"
            )
        changed = [k for k in _MUST_MATCH if not _same_setting(metadata["settings"].get(k), getattr(self.settings, k))]
        if changed:
            raise InputError(
                f"{self.folder}: was started with different {', '.join(changed)}; resume with the same settings "
                "or use a new folder"
            )
        if metadata.get("system_sha256") != fingerprint:
            logger.warning("%s: the system differs from the one this run started with (serialized XML)", self.folder)

    # ------------------------------------------------------------------------------- contexts
    def _make_context(self, barostat: bool, timestep_fs: float, salt: int) -> None:
        import openmm
        import openmm.unit as u

        system = copy.deepcopy(self.system)
        for index in reversed(range(system.getNumForces())):
            name = type(system.getForce(index)).__name__
            if name.startswith("MonteCarlo") and "Barostat" in name:
                system.removeForce(index)
        if barostat:
            temperature = self.settings.temperature.m_as("kelvin") * u.kelvin
            force = openmm.MonteCarloBarostat(
                self.settings.pressure.m_as("bar") * u.bar, temperature, self.settings.barostat_frequency
            )
            force.setRandomNumberSeed(_seed(self.settings.seed, salt, 7))
            system.addForce(force)
        integrator = openmm.LangevinMiddleIntegrator(
            self.settings.temperature.m_as("kelvin") * u.kelvin,
            self.settings.collision_rate.m_as("1/picosecond") / u.picosecond,
            timestep_fs * u.femtosecond,
        )
        integrator.setRandomNumberSeed(_seed(self.settings.seed, salt))
        self._context = None  # free the old context first
        properties = platform_properties(self._platform_name, self.settings.precision)
        try:
            context = openmm.Context(system, integrator, self._platform, properties)
        except Exception as err:
            raise SamplerError(
                f"{self.folder}: cannot create an OpenMM context on {self._platform_name}: {err}"
            ) from err
        missing = set(self.states[0]) - set(context.getParameters().keys())
        if missing:
            raise InputError(f"state parameters {sorted(missing)} are not global parameters of the system")
        self._context, self._integrator = context, integrator
        self._current_params = {}
        self._timestep_fs = timestep_fs

    def _apply_state(self, k: int) -> None:
        context, current = self._context, self._current_params
        for name, value in self.states[k].items():
            if current.get(name) != value:
                context.setParameter(name, value)
                current[name] = value

    def _load(self, positions: np.ndarray, velocities: np.ndarray | None, box: np.ndarray | None) -> None:
        from openmm import Vec3

        context = self._context
        if box is not None:
            context.setPeriodicBoxVectors(*(Vec3(*row) for row in box.tolist()))
        context.setPositions(positions)
        if velocities is not None:
            context.setVelocities(velocities)

    def _read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        import openmm.unit as u

        state = self._context.getState(getPositions=True, getVelocities=True)
        pos = state.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        vel = state.getVelocities(asNumpy=True).value_in_unit(u.nanometer / u.picosecond)
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer) if self.periodic else None
        return np.asarray(pos), np.asarray(vel), None if box is None else np.asarray(box)

    def _group_energy(self, groups: set[int]) -> float:
        import openmm.unit as u

        if not groups:
            return 0.0
        state = self._context.getState(getEnergy=True, groups=groups)
        return state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)

    def _reduced_row(self, box: np.ndarray | None) -> np.ndarray:
        """Reduced potential (kT) of the configuration in the context in every state, shape (K,)."""
        static = self._group_energy(self.static_groups)
        row = np.empty(self.n_states)
        for k in range(self.n_states):
            self._apply_state(k)
            row[k] = self._group_energy(self.dynamic_groups)
        pv = self.pv_factor * float(box[0, 0] * box[1, 1] * box[2, 2]) if self.npt and box is not None else 0.0
        return self.beta * (row + static + pv)

    # ------------------------------------------------------------------------------- equilibration
    def _equilibrate(self, target: int) -> dict[str, Any]:
        dt = self.settings.timestep.m_as("femtosecond")
        attempt = 0
        while True:
            try:
                return self._equilibrate_once(target, dt, attempt)
            except _BlowUp as blow:
                attempt += 1
                self._recoveries += 1
                if attempt > self.settings.max_nan_retries:
                    self._fail(blow, "equilibration", dt)
                dt *= self.settings.nan_timestep_factor
                logger.warning(
                    "%s: %s during equilibration; restarting it with a %.3g fs step", self.folder, blow.reason, dt
                )

    def _equilibrate_once(self, target: int, dt: float, attempt: int) -> dict[str, Any]:
        import openmm
        import openmm.unit as u

        t_start = time.monotonic()
        settings, n = self.settings, self.n_states
        n_atoms = self.n_atoms
        pos = np.empty((n, n_atoms, 3))
        vel = np.empty((n, n_atoms, 3))
        boxes = np.zeros((n, 3, 3))
        temperature = settings.temperature.m_as("kelvin") * u.kelvin
        # with no NVT work to do, start in the production (NPT) context right away: one context creation less
        npt_now = self.npt and settings.minimization_max_iterations == 0 and settings.equilibration_nvt_steps == 0
        self._make_context(barostat=npt_now, timestep_fs=dt, salt=1_000_000 + attempt)
        nvt_ns = settings.equilibration_nvt_steps * dt * 1e-6
        for k in range(n):
            self._apply_state(k)
            self._load(self.positions, None, self.box)
            if settings.minimization_max_iterations > 0:
                try:
                    openmm.LocalEnergyMinimizer.minimize(self._context, 10.0, settings.minimization_max_iterations)
                except openmm.OpenMMException as err:
                    raise _BlowUp(f"minimization failed ({err})", k, k, self.positions, self.box) from err
            self._context.setVelocitiesToTemperature(temperature, _seed(settings.seed, k, attempt, 11))
            start_pos, _, start_box = self._read()
            self._step(settings.equilibration_nvt_steps, k, k, start_pos, start_box)
            pos[k], vel[k], box = self._read()
            self._check_finite(pos[k], k, k, start_pos, start_box)
            boxes[k] = box if box is not None else 0.0
            self._report("equilibration_nvt", k + 1, n, nvt_ns * (k + 1) / n, nvt_ns, t_start)
        if self.npt:
            if not npt_now:
                self._make_context(barostat=True, timestep_fs=dt, salt=2_000_000 + attempt)
            npt_ns = settings.equilibration_npt_steps * dt * 1e-6
            t_phase = time.monotonic()
            for k in range(n):
                self._apply_state(k)
                self._load(pos[k], vel[k], boxes[k])
                start_pos, start_box = pos[k].copy(), boxes[k].copy()
                self._step(settings.equilibration_npt_steps, k, k, start_pos, start_box)
                pos[k], vel[k], box = self._read()
                self._check_finite(pos[k], k, k, start_pos, start_box)
                boxes[k] = box
                self._report("equilibration_npt", k + 1, n, npt_ns * (k + 1) / n, npt_ns, t_phase)
        self.timings["equilibration"] += time.monotonic() - t_start
        self._pos, self._vel, self._boxes = pos, vel, boxes
        self._replica_states = np.arange(n)
        self._rng = np.random.default_rng(settings.seed)
        self._accepted_total = np.zeros((n, n), dtype=np.int64)
        self._proposed_total = np.zeros((n, n), dtype=np.int64)
        self._ns_per_replica = 0.0
        self._last_u = None
        self._checkpoint_index = 0
        t_io = time.monotonic()
        checkpoint = self._write_checkpoint(None, IterationBuffer(), iteration=0, target=target)
        self.timings["io"] += time.monotonic() - t_io
        return checkpoint

    def _step(self, n_steps: int, replica: int, state: int, start_pos: np.ndarray, start_box) -> None:
        import openmm

        if n_steps <= 0:
            return
        try:
            self._integrator.step(n_steps)
        except openmm.OpenMMException as err:
            raise _BlowUp(f"OpenMM failed while integrating ({err})", replica, state, start_pos, start_box) from err

    @staticmethod
    def _check_finite(pos: np.ndarray, replica: int, state: int, start_pos, start_box) -> None:
        if not np.isfinite(pos).all():
            raise _BlowUp("NaN coordinates", replica, state, start_pos, start_box)

    # ------------------------------------------------------------------------------- checkpoints
    def _write_checkpoint(self, previous, buffer: IterationBuffer, iteration: int, target: int) -> dict[str, Any]:
        self._checkpoint_index += 1
        arrays = {
            "positions": self._pos,
            "velocities": self._vel,
            "boxes": self._boxes,
            "replica_states": self._replica_states,
        }
        fields = {
            "iteration": iteration,
            "n_iterations_target": target,
            "checkpoint_index": self._checkpoint_index,
            "timestep_fs": self._timestep_fs,
            "platform": self._platform_name,
            "ns_per_replica": self._ns_per_replica,
            "accepted_total": self._accepted_total.tolist(),
            "proposed_total": self._proposed_total.tolist(),
            "rng_state": self._rng.bit_generator.state,
            "last_u": None if self._last_u is None else self._last_u.tolist(),
            "written_at": time.time(),
        }
        return self.store.write_checkpoint(previous, buffer, arrays, fields)

    def _restore(self, checkpoint: Mapping[str, Any], reseed: bool) -> None:
        arrays = self.store.load_state(checkpoint)
        self._pos = arrays["positions"].astype(np.float64)
        self._vel = arrays["velocities"].astype(np.float64)
        self._boxes = arrays["boxes"].astype(np.float64)
        self._replica_states = arrays["replica_states"].astype(np.int64)
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = checkpoint["rng_state"]
        self._accepted_total = np.asarray(checkpoint["accepted_total"], dtype=np.int64)
        self._proposed_total = np.asarray(checkpoint["proposed_total"], dtype=np.int64)
        self._ns_per_replica = float(checkpoint["ns_per_replica"])
        self._checkpoint_index = int(checkpoint["checkpoint_index"])
        self._last_u = None if checkpoint.get("last_u") is None else np.asarray(checkpoint["last_u"])
        if reseed:  # a fresh context whose random streams depend only on the checkpoint
            salt = 3_000_000 + int(checkpoint["iteration"]) * 16 + self._recoveries
            self._make_context(barostat=self.npt, timestep_fs=float(checkpoint["timestep_fs"]), salt=salt)

    # ------------------------------------------------------------------------------- production
    def _production(self, checkpoint: dict[str, Any], target: int) -> dict[str, Any]:
        settings, n = self.settings, self.n_states
        iteration = int(checkpoint["iteration"])
        buffer = IterationBuffer()
        last_write = time.monotonic()
        t_phase, cpu_phase, done_this_session = time.monotonic(), time.process_time(), 0
        retries = 0
        end_states = sorted({0, n - 1})
        while iteration < target:
            try:
                u_kl, pos_snap = self._iteration()
            except _BlowUp as blow:
                retries += 1
                self._recoveries += 1
                if retries > settings.max_nan_retries:
                    self._fail(blow, f"production iteration {iteration}", self._timestep_fs)
                new_dt = self._timestep_fs * settings.nan_timestep_factor
                logger.warning(
                    "%s: %s at iteration %d (replica %d, state %d); rolling back to iteration %d with a %.3g fs step",
                    self.folder, blow.reason, iteration, blow.replica, blow.state, checkpoint["iteration"], new_dt,
                )  # fmt: skip
                self._restore(checkpoint, reseed=False)
                self._integrator.setStepSize(new_dt * 1e-3)  # ps
                self._timestep_fs = new_dt
                iteration, buffer = int(checkpoint["iteration"]), IterationBuffer()
                continue
            buffer.iterations.append(iteration)
            buffer.energies.append(u_kl)
            buffer.replica_states.append(self._replica_states.copy())
            if (iteration + 1) % settings.snapshot_interval == 0:
                for state in end_states:
                    replica = int(np.flatnonzero(self._replica_states == state)[0])
                    box = self._boxes[replica] if self.periodic else None
                    buffer.add_snapshot(state, iteration, pos_snap[replica], box)
            t_swap = time.monotonic()
            new_states, accepted, proposed = gibbs_swaps(u_kl, self._replica_states, self._rng, self.n_swap_attempts)
            self._replica_states = new_states
            self._accepted_total += accepted
            self._proposed_total += proposed
            buffer.accepted.append(accepted.astype(np.int32))
            buffer.proposed.append(proposed.astype(np.int32))
            self._last_u = u_kl
            self._ns_per_replica += settings.steps_per_iteration * self._timestep_fs * 1e-6
            self.timings["swaps"] += time.monotonic() - t_swap
            iteration += 1
            done_this_session += 1
            if iteration >= target or time.monotonic() - last_write >= settings.checkpoint_interval_s:
                t_io = time.monotonic()
                checkpoint = self._write_checkpoint(checkpoint, buffer, iteration, target)
                buffer, retries, last_write = IterationBuffer(), 0, time.monotonic()
                self.timings["io"] += last_write - t_io
            if self._progress is not None:
                per_iter = (time.monotonic() - t_phase) / done_this_session
                ns_iter = settings.steps_per_iteration * self._timestep_fs * 1e-6
                self._progress(
                    SamplerProgress(
                        phase="production",
                        iteration=iteration,
                        n_iterations=target,
                        ns_done=self._ns_per_replica,
                        ns_total=self._ns_per_replica + (target - iteration) * ns_iter,
                        eta_s=per_iter * (target - iteration),
                        elapsed_s=time.monotonic() - self._t0,
                    )
                )
        if int(checkpoint["iteration"]) != iteration or int(checkpoint["n_iterations_target"]) != target:
            checkpoint = self._write_checkpoint(checkpoint, buffer, iteration, target)
        self.timings["production"] += time.monotonic() - t_phase
        self.timings["production_cpu"] += time.process_time() - cpu_phase
        return checkpoint

    def _iteration(self) -> tuple[np.ndarray, np.ndarray]:
        """Propagate every replica in its state and evaluate it in every state; returns u_kl (K, K)."""
        n, steps = self.n_states, self.settings.steps_per_iteration
        u_kl = np.empty((n, n))
        new_pos, new_vel, new_boxes = np.empty_like(self._pos), np.empty_like(self._vel), self._boxes.copy()
        for replica in range(n):
            state = int(self._replica_states[replica])
            box = self._boxes[replica] if self.periodic else None
            t0 = time.monotonic()
            self._apply_state(state)
            self._load(self._pos[replica], self._vel[replica], box)
            t_md = time.monotonic()
            self._step(steps, replica, state, self._pos[replica], box)
            self.timings["md_steps"] += time.monotonic() - t_md
            pos, vel, box_new = self._read()
            self._check_finite(pos, replica, state, self._pos[replica], box)
            t1 = time.monotonic()
            self.timings["propagation"] += t1 - t0
            row = self._reduced_row(box_new)
            self.timings["energies"] += time.monotonic() - t1
            if not np.isfinite(row[state]):
                raise _BlowUp("non-finite energy", replica, state, self._pos[replica], box)
            if self._last_u is not None and abs(row[state] - self._last_u[replica, state]) > EXPLOSION_KT:
                raise _BlowUp(
                    f"energy jump of {row[state] - self._last_u[replica, state]:.3g} kT in one iteration",
                    replica, state, self._pos[replica], box,
                )  # fmt: skip
            u_kl[replica] = row
            new_pos[replica], new_vel[replica] = pos, vel
            if box_new is not None:
                new_boxes[replica] = box_new
        self._pos, self._vel, self._boxes = new_pos, new_vel, new_boxes
        return u_kl, new_pos

    # ------------------------------------------------------------------------------- failures, progress
    def _fail(self, blow: _BlowUp, where: str, dt: float) -> None:
        saved = self._save_frame(blow)
        saved = f"; its starting frame is saved as {saved}" if saved else ""
        raise SamplerError(
            f"{self.folder}: {blow.reason} in {where} (replica {blow.replica}, state {blow.state} "
            f"{self.states[blow.state]}) after {self.settings.max_nan_retries} retries down to a {dt:.3g} fs step"
            f"{saved}; check the system (clashes, constraints, HMR) or use a smaller timestep"
        )

    def _save_frame(self, blow: _BlowUp) -> Path | None:
        """Write the frame a failed propagation started from (PDB; mmCIF when coordinates overflow PDB)."""
        from io import StringIO

        import openmm.app as app
        import openmm.unit as u

        from mlfep_core import atomic_write_text

        try:
            topology = copy.deepcopy(self.topology)
            if blow.box is not None:
                topology.setPeriodicBoxVectors(blow.box * u.nanometer)
        except Exception as err:  # a broken topology must not hide the real error
            logger.warning("cannot save the failed frame: %s", err)
            return None
        stem = self.folder / f"failed_replica{blow.replica}_state{blow.state}"
        for writer, suffix in ((app.PDBFile, ".pdb"), (app.PDBxFile, ".cif")):
            try:
                buffer = StringIO()
                writer.writeFile(topology, blow.positions * u.nanometer, buffer)
                return atomic_write_text(stem.with_suffix(suffix), buffer.getvalue())
            except Exception as err:
                logger.warning("cannot write the failed frame as %s: %s", suffix, err)
        return None

    def _report(self, phase, done, total, ns_done, ns_total, t_phase) -> None:
        if self._progress is None:
            return
        per = (time.monotonic() - t_phase) / max(done, 1)
        self._progress(
            SamplerProgress(
                phase=phase,
                iteration=done,
                n_iterations=total,
                ns_done=ns_done,
                ns_total=ns_total,
                eta_s=per * (total - done) if math.isfinite(per) else None,
                elapsed_s=time.monotonic() - self._t0,
            )
        )
