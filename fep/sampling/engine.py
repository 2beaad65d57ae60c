"""The energy engine of replica exchange: one OpenMM context that every replica is loaded into in turn.

:class:`EnergyEngine` owns the context, its integrator (LangevinMiddleIntegrator) and, in NPT, its
MonteCarloBarostat. It sets a thermodynamic state (global parameters, only those that change), loads and reads a
replica (positions, velocities, box), propagates it and evaluates its reduced potential in every state: the
static force groups once, the λ-dependent groups once per state, plus p·V in NPT. A propagation that fails or
ends in NaN raises :class:`BlowUp` with the frame it started from, for the coordinator's roll-back.

Cost per iteration and replica, on top of the MD steps: one positions/velocities/box upload and download
(the platform then rebuilds its neighbour list once), one evaluation of the static force groups and K
evaluations of the λ-dependent groups, i.e. about (K + 2) force evaluations per ``steps_per_iteration``
steps; swaps and I/O are negligible. With the hybrid's NonbondedForce in a λ-dependent group each state
evaluation costs about one MD step (measured in benchmarks/sampler_speed.py).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from fep.sampling.platforms import platform_properties
from fep.sampling.settings import SamplerSettings
from mlfep_core import InputError, SamplerError
from mlfep_core.constants import GAS_CONSTANT_KJ_MOL_K

__all__ = [
    "PV_KJ_MOL_PER_BAR_NM3",
    "BlowUp",
    "EnergyEngine",
    "checked_states",
    "nm_array",
    "split_force_groups",
    "stream_seed",
    "uses_parameter",
]

PV_KJ_MOL_PER_BAR_NM3 = 0.0602214076  # 1 bar × 1 nm³ × N_A in kJ/mol


class BlowUp(Exception):
    """A propagation failed (NaN, OpenMM error, energy jump): which replica, in which state, from which frame."""

    def __init__(self, reason: str, replica: int, state: int, positions: np.ndarray, box: np.ndarray | None):
        super().__init__(reason)
        self.reason, self.replica, self.state, self.positions, self.box = reason, replica, state, positions, box


def stream_seed(*parts: int) -> int:
    """A seed in [1, 2³¹ − 2] that depends only on ``parts`` (every random stream of a run is derived this way)."""
    value = 0x9E3779B1
    for part in parts:
        value = (value * 1_000_003 + int(part)) % (2**31 - 2)
    return value + 1


def nm_array(values: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """``values`` (nm numbers, or an openmm/openff length quantity) as a finite float array of ``shape``."""
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


def uses_parameter(force: Any, names: set[str]) -> bool:
    """Whether ``force`` depends on any of the global parameters ``names`` (incl. NonbondedForce offsets)."""
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


def checked_states(states: Sequence[Mapping[str, float]]) -> tuple[dict[str, float], ...]:
    """The K states as dicts of floats; every state must set the same parameters."""
    if not states:
        raise InputError("no thermodynamic states given: pass at least one mapping of parameter -> value")
    names = set(states[0])
    out = tuple({k: float(v) for k, v in s.items()} for s in states)
    for k, state in enumerate(out):
        if set(state) != names:
            raise InputError(f"state {k} sets parameters {sorted(state)}, state 0 sets {sorted(names)}")
    return out


def split_force_groups(system: Any, static_force_groups: Collection[int], names: set[str]) -> tuple[set[int], set[int]]:
    """(static, dynamic) force groups of ``system``: a group declared static must not depend on ``names``."""
    groups_used = {f.getForceGroup() for f in system.getForces()}
    static = {int(g) for g in static_force_groups}
    if any(g < 0 or g > 31 for g in static):
        raise InputError(f"static_force_groups {sorted(static)}: force groups are 0..31")
    for force in system.getForces():
        if force.getForceGroup() in static and uses_parameter(force, names):
            raise InputError(
                f"force {force.getName()} in static force group {force.getForceGroup()} depends on a state "
                "parameter: leave that group out of static_force_groups"
            )
    return static & groups_used, groups_used - static


class EnergyEngine:
    """One context for K states of ``system`` that differ in global parameters only.

    Parameters
    ----------
    system : openmm.System
        Not modified: each context is made from a copy (any barostat removed, one added in NPT).
    states : sequence of mapping
        Parameter name -> value for each state.
    settings : SamplerSettings
        Temperature, pressure, collision rate, barostat frequency, seed, precision.
    platform : openmm.Platform
        Where the context lives.
    static_groups, dynamic_groups : set of int
        Force groups independent of the state parameters (evaluated once) and the others (once per state).
    where : str
        What to call the run in error messages (its folder).
    """

    def __init__(
        self,
        system: Any,
        states: Sequence[Mapping[str, float]],
        settings: SamplerSettings,
        platform: Any,
        static_groups: set[int],
        dynamic_groups: set[int],
        where: str,
    ) -> None:
        self.system, self.states, self.settings, self.platform = system, states, settings, platform
        self.platform_name: str = platform.getName()
        self.static_groups, self.dynamic_groups, self.where = static_groups, dynamic_groups, where
        self.periodic = bool(system.usesPeriodicBoundaryConditions())
        self.npt = settings.pressure is not None
        self.beta = 1.0 / (GAS_CONSTANT_KJ_MOL_K * settings.temperature.m_as("kelvin"))
        self.pv_factor = settings.pressure.m_as("bar") * PV_KJ_MOL_PER_BAR_NM3 if settings.pressure is not None else 0.0
        self.timestep_fs = settings.timestep.m_as("femtosecond")
        self._context: Any = None
        self._integrator: Any = None
        self._current: dict[str, float] = {}

    # ------------------------------------------------------------------------------------- contexts
    def make_context(self, barostat: bool, timestep_fs: float, salt: int) -> None:
        """A fresh context (and integrator) whose random streams depend only on ``settings.seed`` and ``salt``."""
        import openmm
        import openmm.unit as u

        settings = self.settings
        system = copy.deepcopy(self.system)
        for index in reversed(range(system.getNumForces())):
            name = type(system.getForce(index)).__name__
            if name.startswith("MonteCarlo") and "Barostat" in name:
                system.removeForce(index)
        temperature = settings.temperature.m_as("kelvin") * u.kelvin
        if barostat and settings.pressure is not None:
            force = openmm.MonteCarloBarostat(
                settings.pressure.m_as("bar") * u.bar, temperature, settings.barostat_frequency
            )
            force.setRandomNumberSeed(stream_seed(settings.seed, salt, 7))
            system.addForce(force)
        integrator = openmm.LangevinMiddleIntegrator(
            temperature, settings.collision_rate.m_as("1/picosecond") / u.picosecond, timestep_fs * u.femtosecond
        )
        integrator.setRandomNumberSeed(stream_seed(settings.seed, salt))
        self._context = None  # free the old context first
        properties = platform_properties(self.platform_name, settings.precision)
        try:
            context = openmm.Context(system, integrator, self.platform, properties)
        except Exception as err:
            raise SamplerError(f"{self.where}: cannot create an OpenMM context on {self.platform_name}: {err}") from err
        missing = set(self.states[0]) - set(context.getParameters().keys())
        if missing:
            raise InputError(f"state parameters {sorted(missing)} are not global parameters of the system")
        self._context, self._integrator = context, integrator
        self._current = {}
        self.timestep_fs = timestep_fs

    def set_timestep(self, timestep_fs: float) -> None:
        """Change the integrator's step (NaN recovery) without a new context."""
        self._integrator.setStepSize(timestep_fs * 1e-3)  # ps
        self.timestep_fs = timestep_fs

    # ------------------------------------------------------------------------------------- replicas
    def apply_state(self, k: int) -> None:
        """Set the global parameters of state ``k`` (only those that differ from the context's)."""
        for name, value in self.states[k].items():
            if self._current.get(name) != value:
                self._context.setParameter(name, value)
                self._current[name] = value

    def load(self, positions: np.ndarray, velocities: np.ndarray | None, box: np.ndarray | None) -> None:
        """Put a replica into the context (nm, nm/ps)."""
        from openmm import Vec3

        if box is not None:
            self._context.setPeriodicBoxVectors(*(Vec3(*row) for row in box.tolist()))
        self._context.setPositions(positions)
        if velocities is not None:
            self._context.setVelocities(velocities)

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Positions (nm), velocities (nm/ps) and box (nm; None if not periodic) of the context."""
        import openmm.unit as u

        state = self._context.getState(getPositions=True, getVelocities=True)
        pos = state.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        vel = state.getVelocities(asNumpy=True).value_in_unit(u.nanometer / u.picosecond)
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer) if self.periodic else None
        return np.asarray(pos), np.asarray(vel), None if box is None else np.asarray(box)

    def thermalize(self, seed: int) -> None:
        """Draw Maxwell–Boltzmann velocities at the temperature."""
        import openmm.unit as u

        self._context.setVelocitiesToTemperature(self.settings.temperature.m_as("kelvin") * u.kelvin, seed)

    def minimize(self, max_iterations: int, replica: int, start_pos: np.ndarray, start_box: np.ndarray | None) -> None:
        """L-BFGS minimisation of the loaded configuration (10 kJ/mol/nm tolerance)."""
        import openmm

        try:
            openmm.LocalEnergyMinimizer.minimize(self._context, 10.0, max_iterations)
        except openmm.OpenMMException as err:
            raise BlowUp(f"minimization failed ({err})", replica, replica, start_pos, start_box) from err

    def step(self, n_steps: int, replica: int, state: int, start_pos: np.ndarray, start_box) -> None:
        """``n_steps`` of dynamics; an OpenMM failure becomes a :class:`BlowUp` from ``start_pos``."""
        import openmm

        if n_steps <= 0:
            return
        try:
            self._integrator.step(n_steps)
        except openmm.OpenMMException as err:
            if "box size has decreased" in str(err):  # no smaller time step cures this: the box is too small
                raise SamplerError(
                    f"{self.where}: the periodic box shrank below twice the nonbonded cutoff under the barostat "
                    f"(replica {replica}, state {state}); the box is too small for this cutoff: build the leg with "
                    "a larger solvent_padding (or a shorter cutoff) in a new folder"
                ) from err
            raise BlowUp(f"OpenMM failed while integrating ({err})", replica, state, start_pos, start_box) from err

    @staticmethod
    def check_finite(pos: np.ndarray, replica: int, state: int, start_pos, start_box) -> None:
        """Raise a :class:`BlowUp` if ``pos`` holds NaN or infinite coordinates."""
        if not np.isfinite(pos).all():
            raise BlowUp("NaN coordinates", replica, state, start_pos, start_box)

    # ------------------------------------------------------------------------------------- energies
    def _group_energy(self, groups: set[int]) -> float:
        import openmm.unit as u

        if not groups:
            return 0.0
        state = self._context.getState(getEnergy=True, groups=groups)
        return state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)

    def reduced_row(self, box: np.ndarray | None) -> np.ndarray:
        """Reduced potential (kT) of the configuration in the context in every state, shape (K,)."""
        static = self._group_energy(self.static_groups)
        row = np.empty(len(self.states))
        for k in range(len(self.states)):
            self.apply_state(k)
            row[k] = self._group_energy(self.dynamic_groups)
        pv = self.pv_factor * float(box[0, 0] * box[1, 1] * box[2, 2]) if self.npt and box is not None else 0.0
        return self.beta * (row + static + pv)
