"""What the replica-exchange sampler is told (:class:`SamplerSettings`) and what it reports
(:class:`SamplerProgress` after each window and iteration, :class:`SamplerSummary` at the end of a call).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from mlfep_core import FrozenModel
from mlfep_core.models import Bar, Femtoseconds, Kelvin, PerPicosecond

__all__ = ["MAX_TIMESTEP_FS", "MUST_MATCH", "SamplerProgress", "SamplerSettings", "SamplerSummary", "same_setting"]

#: No integrator setting here is stable above this step (4 fs needs HBonds constraints and heavy hydrogens).
MAX_TIMESTEP_FS = 4.0


class SamplerSettings(FrozenModel):
    """How to run Hamiltonian replica exchange."""

    temperature: Kelvin = Field("298.15 K", description="Temperature of every state.")
    pressure: Bar | None = Field("1 bar", description="Pressure (NPT); None for NVT (e.g. vacuum).")
    timestep: Femtoseconds = Field("4 fs", description="Integration time step (HMR systems: 4 fs).")
    collision_rate: PerPicosecond = Field("1 / ps", description="Langevin collision rate.")
    steps_per_iteration: int = Field(625, ge=1, description="MD steps between swap attempts (625 × 4 fs = 2.5 ps).")
    n_iterations: int = Field(2000, ge=1, description="Production iterations (a resumed run goes on to this).")
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

    @field_validator("temperature", "timestep", "collision_rate", "pressure")
    @classmethod
    def _positive(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and not value.m > 0:
            raise ValueError(f"{info.field_name} must be > 0, got {value.m:g} {value.units}")
        return value

    @field_validator("timestep")
    @classmethod
    def _timestep_range(cls, value: Any) -> Any:
        if value.m_as("femtosecond") > MAX_TIMESTEP_FS:
            raise ValueError(
                f"timestep {value.m_as('femtosecond'):g} fs is above {MAX_TIMESTEP_FS:g} fs, which no constraint "
                "or hydrogen-mass setting makes stable"
            )
        return value


#: Settings a resumed run must share with the run it continues.
MUST_MATCH = (
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


def same_setting(stored: Any, value: Any) -> bool:
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
