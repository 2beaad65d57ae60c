"""Protocols: every setting of a run (systems, λ windows, sampling, NNP correction) in one validated model.

Four tiers ship with mlfep (``fep protocol show NAME``):

``smoke``
    Seconds to a few minutes on 2 CPU cores. Proves the pipeline end to end; the numbers are meaningless.
``fast``
    CPU-feasible relative hydration free energies of small molecules (11 windows, small boxes).
``default``
    GPU RBFE, OpenFE-like: 12 windows × 5 ns, 3 repeats (charge-changing edges 22 windows × 20 ns).
``production``
    More windows and time (22 windows × 10 ns, 3 repeats), e.g. for difficult edges.

A user file (JSON or YAML) names a ``base`` tier and overrides any field, e.g.::

    base: default
    repeats: 1
    sampler: {n_iterations: 800}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from fep.nnp.correction import NNPSettings
from fep.sampling.settings import SamplerSettings
from fep.systems.forcefield import SystemSettings
from mlfep_core import FrozenModel, InputError
from mlfep_core.models import Kelvin, first_validation_error

__all__ = [
    "LIGAND_FF_CHOICES",
    "TIERS",
    "LambdaPlacementSettings",
    "Protocol",
    "Rest2Settings",
    "ligand_ff_label",
    "load_protocol",
    "tier",
]

#: The ``--ligand-ff`` choices: plain force field, torsions refitted to ANI-2x, MM -> ML/MM endpoint correction.
LIGAND_FF_CHOICES = ("sage", "ani2x-torsions", "ani2x-endpoint")


class ChargeChangeSettings(FrozenModel):
    """More sampling for charge-changing edges (an alchemical co-ion changes with the ligand's charge; such edges
    converge more slowly: OpenFE advises 22 windows and 20 ns per window, FEP+ about twice its usual windows)."""

    extra_windows: int = Field(10, ge=0, le=48, description="λ windows added to n_windows for such edges.")
    production_factor: float = Field(
        4.0, ge=1.0, le=10.0, description="Production iterations of such edges: n_iterations times this."
    )


class Rest2Settings(FrozenModel):
    """REST2 solute tempering of the ligand along the λ ladder (:mod:`fep.alchemy.rest`): the end windows are the
    plain systems; the middle window runs the ligand at ``max_temperature`` (its own interactions scaled by
    T/max_temperature, those with the environment by the square root)."""

    enabled: bool = Field(False, description="Temper the ligand (every core and unique atom) along the ladder.")
    max_temperature: Kelvin = Field("600 K", description="Effective temperature of the ligand in the middle window.")


class LambdaPlacementSettings(FrozenModel):
    """λ windows placed from overlap (:func:`fep.alchemy.lambdas.refine_windows`): a short first pass on the
    protocol's windows, then windows added between neighbours whose MBAR overlap is below ``target_overlap``;
    production runs on the refined ladder. The first pass and what was added are recorded in the leg result."""

    enabled: bool = Field(False, description="Run a first pass and add windows where the overlap is low.")
    target_overlap: float = Field(0.03, gt=0.0, lt=1.0, description="Least neighbouring MBAR overlap wanted.")
    first_pass_iterations: int = Field(100, ge=10, description="Production iterations of the first pass.")
    max_added_windows: int = Field(8, ge=1, le=32, description="At most this many windows are added per leg.")


class Protocol(FrozenModel):
    """Everything that decides how an edge is simulated and corrected."""

    name: str = Field(description="Tier or file name, recorded with every result.")
    description: str = Field("", description="What this protocol is for.")
    system: SystemSettings = Field(default_factory=SystemSettings, description="How end-state systems are built.")
    n_windows: int = Field(12, ge=2, le=64, description="Number of λ windows (the default staged schedule).")
    lambda_schedule: dict[str, tuple[float, ...]] | None = Field(
        None, description="User-defined schedule: λ parameter -> values per window (overrides n_windows)."
    )
    sampler: SamplerSettings = Field(default_factory=SamplerSettings, description="Replica-exchange settings.")
    repeats: int = Field(1, ge=1, le=10, description="Independent repeats of every leg (different seeds).")
    charge_method: Literal["am1bcc", "nagl", "gasteiger", "mmff94"] = Field(
        "am1bcc",
        description="Ligand partial charges: am1bcc (sqm on the pose) or nagl (OpenFF NAGL, conformer-independent) "
        "for real work.",
    )
    nnp: NNPSettings = Field(default_factory=NNPSettings, description="ANI-2x endpoint correction settings.")
    charge_change: ChargeChangeSettings = Field(
        default_factory=ChargeChangeSettings, description="Extra windows and time for charge-changing edges."
    )
    rest2: Rest2Settings = Field(
        default_factory=Rest2Settings, description="REST2 solute tempering of the ligand (off unless enabled)."
    )
    lambda_placement: LambdaPlacementSettings = Field(
        default_factory=LambdaPlacementSettings, description="λ windows added where a first pass finds low overlap."
    )
    ligand_torsions: Literal["forcefield", "ani2x"] = Field(
        "forcefield",
        description="Ligand torsions: the small-molecule force field's own, or refitted per ligand to ANI-2x "
        "torsion scans (fep.nnp.torsions; --ligand-ff ani2x-torsions).",
    )

    @model_validator(mode="after")
    def _schedule_ok(self) -> Protocol:
        if self.lambda_schedule is not None:
            lengths = {len(v) for v in self.lambda_schedule.values()}
            if len(lengths) != 1:
                raise ValueError("every λ parameter in lambda_schedule needs the same number of windows")
            if lengths.pop() < 2:
                raise ValueError("lambda_schedule needs at least 2 windows (the two end states)")
        return self

    @model_validator(mode="after")
    def _rest2_is_hotter(self) -> Protocol:
        if self.rest2.enabled and self.rest2.max_temperature < self.sampler.temperature:
            raise ValueError(
                f"rest2.max_temperature {self.rest2.max_temperature:~P} is below sampler.temperature "
                f"{self.sampler.temperature:~P}; the ligand is tempered upwards"
            )
        return self

    @model_validator(mode="after")
    def _timestep_fits_the_system(self) -> Protocol:
        """The step the constraints and hydrogen mass allow: 1 fs with no constraints, 2 fs with HBonds and
        normal hydrogens, 4 fs with HBonds and hydrogens of at least 2.5 Da."""
        dt = self.sampler.timestep.m_as("femtosecond")
        h_mass = self.system.hydrogen_mass.m_as("dalton")
        if self.system.constraints == "none":
            limit, why = 1.0, "without bond constraints"
        elif h_mass < 2.5:
            limit, why = (
                2.0,
                f"with HBonds constraints and {h_mass:g} Da hydrogens (use hydrogen_mass 3 dalton for 4 fs)",
            )
        else:
            limit, why = 4.0, "with HBonds constraints and heavy hydrogens"
        if dt > limit + 1e-9:
            raise ValueError(f"sampler.timestep {dt:g} fs is above the {limit:g} fs that are stable {why}")
        cutoff = self.system.nonbonded_cutoff.m_as("nanometer")
        if not 0.5 <= cutoff <= 2.0:
            raise ValueError(f"system.nonbonded_cutoff {cutoff:g} nm is outside 0.5-2.0 nm")
        width = self.system.lj_switch_width.m_as("nanometer")
        if not 0.0 <= width <= 0.5 * cutoff:
            raise ValueError(
                f"system.lj_switch_width {width:g} nm must lie between 0 (a hard cut) and half the cutoff "
                f"({0.5 * cutoff:g} nm)"
            )
        return self

    # ------------------------------------------------------------------------------------------- views
    def windows(self, charge_change: bool = False) -> tuple[dict[str, float], ...]:
        """The λ windows: one dict (λ parameter -> value) per window, state A first, state B last; a
        charge-changing edge gets ``charge_change.extra_windows`` more (not with a user-defined schedule)."""
        from fep.alchemy.lambdas import LambdaProtocol, default_protocol

        if self.lambda_schedule is not None:
            schedule = {k: list(v) for k, v in self.lambda_schedule.items()}
            try:
                return tuple(LambdaProtocol.from_schedule(schedule).windows)
            except (ValueError, ValidationError) as err:
                raise InputError(f"protocol {self.name}: invalid lambda_schedule ({err})") from err
        extra = self.charge_change.extra_windows if charge_change else 0
        return tuple(default_protocol(self.n_windows + extra).windows)

    def states(
        self, charge_change: bool = False, windows: Sequence[Mapping[str, float]] | None = None
    ) -> tuple[dict[str, float], ...]:
        """The thermodynamic states the sampler runs: the λ windows (the protocol's, or ``windows``), with
        REST2's scaling parameters (:func:`fep.alchemy.rest.rest2_states`) when ``rest2`` is enabled."""
        windows = tuple(dict(w) for w in windows) if windows is not None else self.windows(charge_change=charge_change)
        if not self.rest2.enabled:
            return windows
        from fep.alchemy.rest import rest2_scales, rest2_states

        scales = rest2_scales(
            len(windows), self.sampler.temperature.m_as("kelvin"), self.rest2.max_temperature.m_as("kelvin")
        )
        return rest2_states(windows, scales)

    def sampler_for(
        self, leg: str, *, repeat: int = 0, platform: str | None = None, charge_change: bool = False
    ) -> SamplerSettings:
        """Sampler settings of one leg: vacuum runs NVT; each repeat gets its own seed; a charge-changing edge
        runs ``charge_change.production_factor`` times the production iterations."""
        update: dict[str, Any] = {"seed": self.sampler.seed + 1009 * repeat}
        if charge_change:
            update["n_iterations"] = max(1, round(self.sampler.n_iterations * self.charge_change.production_factor))
        if leg == "vacuum":
            update["pressure"] = None
            update["equilibration_npt_steps"] = 0
        if platform:
            update["platform"] = platform
        return self.sampler.model_copy(update=update)

    def ns_per_window(self, charge_change: bool = False) -> float:
        """Production ns per window and repeat (of a charge-changing edge when asked)."""
        iterations = self.sampler_for("solvent", charge_change=charge_change).n_iterations
        return iterations * self.sampler.steps_per_iteration * self.sampler.timestep.m_as("ns")


def ligand_ff_label(protocol: Protocol, endpoint: bool) -> str:
    """How the ligands were described, in words, e.g. 'openff-2.2.1 (am1bcc charges) + ANI-2x-refitted torsions'."""
    base = f"{protocol.system.small_molecule_forcefield} ({protocol.charge_method} charges)"
    if protocol.ligand_torsions == "ani2x":
        base += " + ANI-2x-refitted torsions"
    if endpoint:
        base += " (MM) and ANI-2x/MM endpoint correction (ML)"
    return base


def _tiers() -> dict[str, dict[str, Any]]:
    return {
        "smoke": {
            "name": "smoke",
            "description": "Proves the pipeline in minutes on 2 CPU cores; numbers are meaningless.",
            "system": {"solvent_padding": "1.0 nm", "complex_padding": "0.8 nm"},
            "n_windows": 5,
            "charge_change": {"extra_windows": 2, "production_factor": 1.0},
            "sampler": {
                "steps_per_iteration": 250,
                "n_iterations": 20,
                "minimization_max_iterations": 200,
                "equilibration_nvt_steps": 250,
                "equilibration_npt_steps": 250,
                "snapshot_interval": 2,
                "checkpoint_interval_s": 60.0,
            },
            "repeats": 1,
            "nnp": {
                "n_frames": 10,
                "lambdas": (0.0, 0.5, 1.0),
                "steps_per_state": 200,
                "sample_interval": 10,
                "n_starts": 2,
                "switch_steps": 50,
                "relax_steps": 20,
                "decorrelation_ps": 0.5,
                "mm_equilibration_ps": 1.0,
            },
        },
        "fast": {
            "name": "fast",
            "description": "CPU-feasible relative hydration free energies of small molecules.",
            # 0.7 nm PME/LJ cutoff (+ dispersion correction): a 609-atom box for benzene, 2.9 ms per 4 fs step on
            # one core vs 6.9 ms at 0.9 nm; the 15-edge FreeSolv benzene series took 2.1 h on 2 cores (rhfe.md,
            # measured with LJ cut hard). LJ is now switched over the last 0.1 nm (0.6-0.7 nm) as in every tier;
            # whether 0.7 nm changes ΔΔG beyond the error bars against Sage's 0.9 nm is still to be measured.
            "system": {"solvent_padding": "1.0 nm", "nonbonded_cutoff": "0.7 nm"},
            "n_windows": 11,
            "charge_change": {"extra_windows": 5, "production_factor": 2.0},
            "sampler": {
                "steps_per_iteration": 500,
                "n_iterations": 36,
                "minimization_max_iterations": 500,
                "equilibration_nvt_steps": 1000,
                "equilibration_npt_steps": 1000,
                "snapshot_interval": 1,
                "checkpoint_interval_s": 120.0,
            },
            "repeats": 2,  # two independent repeats: the σ can be checked against their spread
            # node corrections: 6 starts x (300 + 150 + 300) ML/MM steps per ligand and environment
            "nnp": {
                "n_frames": 30,
                "lambdas": (0.0, 0.25, 0.5, 0.75, 1.0),
                "steps_per_state": 600,
                "n_starts": 6,
                "switch_steps": 300,
                "relax_steps": 150,
                "decorrelation_ps": 2.0,
                "mm_equilibration_ps": 10.0,
            },
        },
        "default": {
            "name": "default",
            "description": "GPU RBFE, OpenFE-like: 12 windows x 5 ns, 3 repeats.",
            "n_windows": 12,
            "sampler": {"steps_per_iteration": 625, "n_iterations": 2000, "snapshot_interval": 40},
            "repeats": 3,
        },
        "production": {
            "name": "production",
            "description": "Difficult edges: 22 windows x 10 ns, 3 repeats.",
            "n_windows": 22,
            "charge_change": {"extra_windows": 10, "production_factor": 2.0},
            "sampler": {"steps_per_iteration": 625, "n_iterations": 4000, "snapshot_interval": 40},
            "repeats": 3,
        },
    }


TIERS = ("smoke", "fast", "default", "production")


def tier(name: str) -> Protocol:
    """One of the shipped protocol tiers."""
    tiers = _tiers()
    if name not in tiers:
        raise InputError(f"unknown protocol '{name}': choose {', '.join(TIERS)} or give a protocol file")
    return Protocol.model_validate(tiers[name])


def _deep_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "lambda_schedule":
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def load_protocol(name_or_path: str | os.PathLike[str]) -> Protocol:
    """A tier by name (``smoke``/``fast``/``default``/``production``) or a JSON/YAML protocol file.

    A file may name ``base`` (a tier, default ``default``) and override any field; unknown fields are rejected
    with the file and field named.
    """
    text = str(name_or_path)
    if text in TIERS:
        return tier(text)
    path = Path(text)
    if not path.exists():
        raise InputError(f"protocol '{text}' is neither a tier ({', '.join(TIERS)}) nor an existing file")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text())
        else:
            data = json.loads(path.read_text())
    except Exception as err:
        reason = " ".join(str(err).split())  # YAML errors span several lines
        raise InputError(f"{path}: cannot read the protocol file ({reason})") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: a protocol file must hold a mapping of settings")
    data.pop("schema_version", None)
    base = data.pop("base", "default")
    tiers = _tiers()
    if base not in tiers:
        raise InputError(f"{path}: base '{base}' is not a tier ({', '.join(TIERS)})")
    merged = _deep_update(tiers[base], data)
    merged.setdefault("name", path.stem)
    if "name" not in data:
        merged["name"] = path.stem
    try:
        return Protocol.model_validate(merged)
    except ValidationError as err:
        loc, msg = first_validation_error(err)
        where = f" '{loc}'" if loc else "s"  # a check across fields names them in its message
        raise InputError(f"{path}: invalid protocol setting{where}: {msg}") from err
