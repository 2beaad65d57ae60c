"""ANI-2x endpoint correction: ΔG(MM → ML/MM) of one end state of one leg, from the MM samples.

Hamiltonian of the ML/MM end state (see :mod:`fep.nnp.system`)::

    U_MLMM(x) = U_MM(x) − U_MM,intra(x_lig) + [U_ANI(x_lig) − E_self]

Method (multistate reweighting along a linear path, chosen over non-equilibrium switching because the MM end
state is already sampled and MBAR over a few short equilibrium λ states gives ΔG, σ and the overlap
diagnostics that decide whether to trust the number):

1. states ``U_λ = U_MM + λ·ΔU`` for ``λ`` in ``settings.lambdas`` (default 0, 0.25, 0.5, 0.75, 1);
2. λ = 0: ``n_frames`` MM frames spread evenly over the given ones (no new simulation);
3. each λ > 0: a short Langevin run (``steps_per_state``, the first 20 % discarded, a sample every
   ``sample_interval`` steps), started from the last MM frame and then from the end of the previous λ;
4. ``u_kn = β·λ_k·ΔU(x_n)`` (``U_MM`` and ``pV`` are common to every state and cancel), each state's series
   decorrelated with its statistical inefficiency, then MBAR → ΔG = G(λ=1) − G(λ=0), its σ, the neighbour
   overlaps and the effective sample sizes;
5. status ``fail`` (no number) when a neighbour overlap is below ``settings.min_overlap`` or the ML/MM run blows
   up; ``warn`` when an overlap is below 0.05, a state has fewer than 10 effective samples, or the system's
   ligand parameters differ from ``ligand_system(prepared)``; ``skipped`` when ANI-2x does not apply.
   (MBAR's neighbour overlap is at most 1/K for identical states: 0.2 with the default five.)

The reported ``dg_kcal_mol`` uses ANI-2x energies measured from the free atoms (``E_self`` subtracted), a
per-ligand constant that cancels exactly in ΔΔG_ML. Constraints of the MM system are kept in every λ state: the
λ = 0 frames were sampled with them, and all states must share one configuration space for the reweighting to
be valid (ligand X–H bond lengths stay at their MM values in the ML/MM state too). Default timestep 1 fs.
MD forces of the λ > 0 states come from float32 ANI-2x (energies from the free atoms, ~1e-3 kJ/mol from
float64); every energy entering MBAR is float64.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from analysis.results import EndpointCorrection
from fep.sampling.platforms import select_platform
from ligand_prep.models import PreparedLigand
from mlfep_core import FrozenModel, InputError, MlfepError
from mlfep_core.constants import GAS_CONSTANT_KJ_MOL_K, KJ_PER_KCAL
from mlfep_core.models import Femtoseconds

__all__ = [
    "ANI2X_SYMBOLS",
    "NNPSettings",
    "analyse_lambda_samples",
    "endpoint_correction",
    "nnp_support",
    "sample_lambda_states",
]

log = logging.getLogger(__name__)

#: Elements ANI-2x covers.
ANI2X_SYMBOLS = ("H", "C", "N", "O", "F", "S", "Cl")
_WARN_OVERLAP = 0.05
_WARN_N_EFFECTIVE = 10.0
_WARN_MISMATCH_KJ_MOL = 1.0

Progress = Callable[[int, int, str], None]


class NNPSettings(FrozenModel):
    """Settings of the MM → ML/MM endpoint correction."""

    model: Literal["ani2x"] = Field("ani2x", description="Neural-network potential (ANI-2x).")
    lambdas: tuple[float, ...] = Field(
        (0.0, 0.25, 0.5, 0.75, 1.0), description="λ schedule from MM (0) to ML/MM (1), increasing."
    )
    n_frames: int = Field(100, ge=2, description="MM frames used as the λ = 0 samples (spread evenly).")
    steps_per_state: int = Field(2500, ge=10, description="MD steps per λ > 0 state (first 20 % discarded).")
    sample_interval: int = Field(25, ge=1, description="Steps between stored samples in λ > 0 states.")
    timestep: Femtoseconds = Field(
        "1 fs", description="MD timestep of the λ > 0 states (MM constraints are kept; 1 fs is safe for ANI)."
    )
    friction_per_ps: float = Field(1.0, gt=0, description="Langevin friction of the λ > 0 states in 1/ps.")
    min_overlap: float = Field(0.03, ge=0, le=1, description="Smallest acceptable neighbour overlap (else fail).")
    placement: Literal["node", "edge"] = Field(
        "node",
        description="node: one correction per ligand and environment on the plain ligand system, by bidirectional "
        "switching from independent starts (fep.nnp.nodes), applied at the nodes; edge: per edge end state on the "
        "hybrid's end-state frames (the older method, kept for comparison).",
    )
    n_starts: int = Field(8, ge=2, description="node: independent MM starts, each switched MM -> ML/MM and back.")
    switch_steps: int = Field(500, ge=1, description="node: steps of each switch (0 -> 1 and 1 -> 0).")
    relax_steps: int = Field(250, ge=0, description="node: steps at λ = 1 between the two switches.")
    decorrelation_ps: float = Field(2.0, gt=0, description="node: MM time between two starts (ps).")
    mm_equilibration_ps: float = Field(20.0, ge=0, description="node: MM equilibration before the first start (ps).")
    vacuum_friction_per_ps: float = Field(
        5.0, gt=0, description="Langevin friction in vacuum (1/ps): higher than in solvent, where water thermalises."
    )
    platform: str | None = Field(None, description="OpenMM platform name (None: the fastest available).")
    seed: int | None = Field(None, description="Random seed of the λ > 0 runs (None: random).")

    @field_validator("lambdas")
    @classmethod
    def _lambdas_ok(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) < 2 or value[0] != 0.0 or value[-1] != 1.0:
            raise ValueError("lambdas must start at 0 and end at 1")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("lambdas must be strictly increasing")
        return value


def nnp_support(prepared: PreparedLigand) -> tuple[bool, str]:
    """Whether ANI-2x can describe this ligand: ``(True, "")`` or ``(False, reason)``.

    ANI-2x covers H C N O F S Cl and was trained on neutral molecules.
    """
    from rdkit import Chem

    name = prepared.name
    mol = Chem.MolFromMolBlock(prepared.ligand.molblock, removeHs=False)
    if mol is None:
        return False, f"ligand {name}: its mol block does not parse"
    symbols = sorted({atom.GetSymbol() for atom in mol.GetAtoms()} - set(ANI2X_SYMBOLS))
    if symbols:
        return False, (
            f"ligand {name} contains {', '.join(symbols)}, which ANI-2x does not cover (only {' '.join(ANI2X_SYMBOLS)})"
        )
    charge = prepared.ligand.formal_charge
    if charge != 0 or abs(sum(prepared.partial_charges)) > 1e-3:
        return False, f"ligand {name} has net charge {charge:+d}; ANI-2x is trained on neutral molecules"
    return True, ""


# ---------------------------------------------------------------------------------------------- analysis
def _decorrelate(series: np.ndarray) -> tuple[np.ndarray, float]:
    """Indices of an uncorrelated subsample of ``series`` and its statistical inefficiency g."""
    from pymbar import timeseries

    n = len(series)
    if n < 4 or np.ptp(series) == 0.0:
        return np.arange(n), 1.0
    try:
        g = float(timeseries.statistical_inefficiency(series))
    except Exception:  # pragma: no cover - pymbar raises on degenerate series
        g = 1.0
    if not math.isfinite(g) or g < 1.0:
        g = 1.0
    idx = np.unique(np.round(np.arange(0, n, g)).astype(int))
    return idx[idx < n], g


def analyse_lambda_samples(
    delta_u_k: Sequence[np.ndarray], lambdas: Sequence[float], temperature_k: float, decorrelate: bool = True
) -> dict[str, Any]:
    """MBAR along ``U_λ = U_0 + λ·ΔU`` from ΔU samples of each state.

    Parameters
    ----------
    delta_u_k : sequence of ndarray, K arrays of shape (N_k,)
        ΔU (kJ/mol) of the samples drawn in state k, in time order.
    lambdas : sequence of float, length K
    temperature_k : float

    Returns
    -------
    dict
        ``dg_kj_mol, dg_err_kj_mol`` (G(λ_K−1) − G(λ_0)), ``neighbour_overlap`` (K−1,), ``min_overlap``,
        ``n_effective`` (K,) effective sample numbers, ``statistical_inefficiency`` (K,), ``n_samples`` (K,)
        after decorrelation, ``mean_delta_u_kj_mol`` (K,).
    """
    from pymbar import MBAR

    from gpu_kernels.reduced_potential import reduced_potential_matrix

    lam = np.asarray(lambdas, dtype=np.float64)
    if len(delta_u_k) != len(lam):
        raise InputError(f"{len(delta_u_k)} sample sets for {len(lam)} λ states")
    beta = 1.0 / (GAS_CONSTANT_KJ_MOL_K * temperature_k)
    kept, gs = [], []
    for series in delta_u_k:
        series = np.asarray(series, dtype=np.float64)
        if len(series) == 0:
            raise InputError("a λ state has no samples")
        idx, g = _decorrelate(series) if decorrelate else (np.arange(len(series)), 1.0)
        kept.append(series[idx])
        gs.append(g)
    n_k = np.array([len(s) for s in kept])
    du = np.concatenate(kept)
    # a common shift of ΔU changes every f_k by β·λ_k·shift; remove it for conditioning, add it back after
    shift = float(np.mean(kept[0]))
    u_kn = reduced_potential_matrix((du - shift)[:, None], lam[:, None], beta, device="cpu")
    mbar = MBAR(u_kn, n_k, solver_protocol="robust")
    result = mbar.compute_free_energy_differences()
    f = result["Delta_f"][0, -1]
    df = result["dDelta_f"][0, -1]
    overlap = np.asarray(mbar.compute_overlap()["matrix"])
    neighbour = np.array([overlap[k, k + 1] for k in range(len(lam) - 1)])
    n_eff = np.asarray(mbar.compute_effective_sample_number(), dtype=np.float64)
    kt = 1.0 / beta
    return {
        "dg_kj_mol": float(f * kt + (lambdas[-1] - lambdas[0]) * shift),
        "dg_err_kj_mol": float(df * kt),
        "neighbour_overlap": neighbour,
        "min_overlap": float(neighbour.min()),
        "n_effective": n_eff,
        "statistical_inefficiency": np.array(gs),
        "n_samples": n_k,
        "mean_delta_u_kj_mol": np.array([float(np.mean(s)) for s in kept]),
    }


# ---------------------------------------------------------------------------------------------- sampling
def sample_lambda_states(
    system,
    ligand_atoms: Sequence[int],
    delta_u,
    positions: np.ndarray,
    box: np.ndarray | None,
    lambdas: Sequence[float],
    temperature_k: float,
    settings: NNPSettings,
    progress: Progress | None = None,
) -> list[np.ndarray]:
    """Sample ``U_MM + λ·ΔU`` at each λ in turn (Langevin), storing whole-molecule ligand coordinates.

    Parameters
    ----------
    system : openmm.System
        The plain MM system (cloned here, not modified).
    ligand_atoms : sequence of int
        The ligand's particle indices in mol-block order.
    delta_u : fep.nnp.system.DeltaU
    positions : ndarray, shape (N, 3)
        Start positions in nm; ``box`` (3, 3) nm or None.
    lambdas : sequence of float
        The states to sample, in order (each starts where the previous ended).

    Returns
    -------
    list of ndarray, each shape (M, n, 3)
        Ligand coordinates (nm, made whole) of the samples of each state.

    Raises
    ------
    MlfepError
        The simulation produced non-finite coordinates (unstable: reduce the timestep).
    """
    import openmm
    import openmm.unit as u

    from fep.nnp.system import LAMBDA_PARAMETER, add_nnp_force, make_whole

    sim_system = openmm.XmlSerializer.clone(system)
    add_nnp_force(sim_system, ligand_atoms, delta_u)
    dt_ps = float(settings.timestep.m_as("picosecond"))
    integrator = openmm.LangevinMiddleIntegrator(temperature_k, settings.friction_per_ps, dt_ps)
    if settings.seed is not None:
        integrator.setRandomNumberSeed(settings.seed)
    platform = select_platform(settings.platform) if settings.platform else None
    context = (
        openmm.Context(sim_system, integrator) if platform is None else openmm.Context(sim_system, integrator, platform)
    )
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(np.asarray(positions))
    if settings.seed is not None:
        context.setVelocitiesToTemperature(temperature_k, settings.seed)
    else:
        context.setVelocitiesToTemperature(temperature_k)
    atoms = np.asarray(ligand_atoms, dtype=int)
    periodic = sim_system.usesPeriodicBoundaryConditions()
    n_equil = settings.steps_per_state // 5
    n_samples = max(1, (settings.steps_per_state - n_equil) // settings.sample_interval)
    total = len(lambdas) * (n_equil + n_samples * settings.sample_interval)
    done = 0
    out = []

    def step(n: int, lam: float) -> None:
        try:
            integrator.step(n)
        except openmm.OpenMMException as err:  # e.g. "Particle coordinate is NaN"
            raise MlfepError(
                f"ligand {delta_u.name}: ML/MM simulation at λ={lam:g} became unstable ({err}); "
                "use a smaller timestep in the NNP settings"
            ) from err

    for lam in lambdas:
        context.setParameter(LAMBDA_PARAMETER, float(lam))
        step(n_equil, lam)
        done += n_equil
        coords, boxes = [], []
        for _ in range(n_samples):
            step(settings.sample_interval, lam)
            done += settings.sample_interval
            state = context.getState(getPositions=True)
            pos = state.getPositions(asNumpy=True).value_in_unit(u.nanometer)
            lig = np.asarray(pos[atoms])
            if not np.all(np.isfinite(lig)):
                raise MlfepError(
                    f"ligand {delta_u.name}: ML/MM simulation at λ={lam:g} became unstable (non-finite positions); "
                    "use a smaller timestep in the NNP settings"
                )
            coords.append(lig)
            if periodic:
                boxes.append(np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer)))
        arr = np.asarray(coords)
        out.append(make_whole(arr, np.asarray(boxes) if periodic else None, delta_u.bonds))
        if progress is not None:
            progress(done, total, f"λ={lam:g} sampled")
    return out


# ------------------------------------------------------------------------------------------ the correction
def _parameter_mismatch(system, ligand_atoms, delta_u, lig0: np.ndarray) -> float | None:
    """Std (kJ/mol) over the λ = 0 frames of [ligand intra energy with the system's parameters] − [with
    ``ligand_system(prepared)``]; ~0 when both parametrize the ligand alike (constrained bonds only add a
    constant). None when the system's forces cannot be read by the kernel."""
    from gpu_kernels.mm_intra import MMIntraKernel

    try:
        kernel = MMIntraKernel.from_system(system, ligand_atoms, device="cpu")
    except MlfepError as err:
        log.debug("parameter consistency check skipped: %s", err)
        return None
    diff = kernel.energies(lig0) - delta_u.mm.energies(lig0)
    return float(np.std(diff)) if len(diff) > 1 else 0.0


def _check_inputs(system, topology, ligand_atoms, frames, boxes, prepared) -> tuple[np.ndarray, np.ndarray | None]:
    name = prepared.name
    frames = np.asarray(frames, dtype=np.float64)
    n_particles = system.getNumParticles()
    if frames.ndim != 3 or frames.shape[1:] != (n_particles, 3) or len(frames) == 0:
        raise InputError(
            f"ligand {name}: frames must have shape (F, {n_particles}, 3) in nm for this system, got {frames.shape}"
        )
    if len(ligand_atoms) != prepared.ligand.n_atoms:
        raise InputError(
            f"ligand {name}: {len(ligand_atoms)} ligand atom indices given for {prepared.ligand.n_atoms} atoms"
        )
    if len(set(ligand_atoms)) != len(ligand_atoms) or min(ligand_atoms) < 0 or max(ligand_atoms) >= n_particles:
        raise InputError(f"ligand {name}: ligand atom indices must be unique and within 0..{n_particles - 1}")
    if topology is not None:
        from rdkit import Chem

        mol = Chem.MolFromMolBlock(prepared.ligand.molblock, removeHs=False)
        expected = [a.GetAtomicNum() for a in mol.GetAtoms()]
        atoms = list(topology.atoms())
        got = [atoms[i].element.atomic_number if atoms[i].element is not None else 0 for i in ligand_atoms]
        if got != expected:
            raise InputError(
                f"ligand {name}: the elements at the given ligand atom indices do not match its mol block "
                "(indices must be the ligand's particles in mol-block order)"
            )
    if not np.all(np.isfinite(frames)):
        raise InputError(f"ligand {name}: frames contain non-finite coordinates")
    if system.usesPeriodicBoundaryConditions():
        if boxes is None:
            raise InputError(f"ligand {name}: the system is periodic; give the box vectors of every frame")
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.shape != (len(frames), 3, 3):
            raise InputError(f"ligand {name}: boxes must have shape ({len(frames)}, 3, 3) nm, got {boxes.shape}")
    else:
        boxes = None
    return frames, boxes


def endpoint_correction(
    system,
    topology,
    ligand_atoms: Sequence[int],
    frames: np.ndarray,
    boxes: np.ndarray | None,
    prepared: PreparedLigand,
    *,
    leg: str,
    state: Literal["A", "B"],
    temperature_k: float,
    settings: NNPSettings | None = None,
    progress: Progress | None = None,
) -> EndpointCorrection:
    """ΔG(MM → ML/MM) of one end state of one leg (see the module docstring for the method).

    Parameters
    ----------
    system : openmm.System
        The plain MM end-state system (not the hybrid) the frames belong to.
    topology : openmm.app.Topology or None
        Its topology (used to check that ``ligand_atoms`` point at the ligand's elements).
    ligand_atoms : sequence of int
        The ligand's particle indices in mol-block order.
    frames : ndarray, shape (F, N, 3)
        MM samples of this end state in nm, in time order.
    boxes : ndarray, shape (F, 3, 3) or None
        Their box vectors in nm (required for periodic systems).
    prepared : PreparedLigand
        The ligand of this end state.
    leg : str
        'complex', 'solvent' or 'vacuum' (recorded).
    state : {'A', 'B'}
        Which end state (recorded).
    temperature_k : float
        Temperature of the MM samples in kelvin.
    settings : NNPSettings, optional
    progress : callable, optional
        ``progress(done_steps, total_steps, message)``.

    Returns
    -------
    EndpointCorrection
        ``status`` 'pass'/'warn' with ΔG and σ in kcal/mol; 'fail' (ΔG None) when the overlap is too poor or
        the ML/MM simulation is unstable; 'skipped' when ANI-2x does not cover the ligand.

    Raises
    ------
    InputError
        Inconsistent frames, boxes or atom indices.
    ModelWeightsError
        ANI-2x weights are not installed.
    """
    settings = settings or NNPSettings()
    base = {"leg": leg, "state": state, "ligand": prepared.name}
    ok, reason = nnp_support(prepared)
    if not ok:
        log.info("NNP correction skipped: %s", reason)
        return EndpointCorrection(**base, status="skipped", reason=reason)
    ligand_atoms = [int(a) for a in ligand_atoms]
    frames, boxes = _check_inputs(system, topology, ligand_atoms, frames, boxes, prepared)
    if temperature_k <= 0:
        raise InputError(f"ligand {prepared.name}: temperature must be positive, got {temperature_k}")

    from fep.nnp.system import DeltaU, make_whole
    from gpu_kernels._torch import resolve_device

    t0 = time.perf_counter()
    device = resolve_device(None)
    delta_u = DeltaU(prepared, device=device, threads=1 if device.type == "cpu" else None)

    n_use = min(settings.n_frames, len(frames))
    idx = np.unique(np.round(np.linspace(0, len(frames) - 1, n_use)).astype(int))
    lig0 = make_whole(frames[idx][:, ligand_atoms], None if boxes is None else boxes[idx], delta_u.bonds)
    du = [delta_u(lig0)]
    mismatch = _parameter_mismatch(system, ligand_atoms, delta_u, lig0)

    lambdas = list(settings.lambdas)
    try:
        samples = sample_lambda_states(
            system,
            ligand_atoms,
            delta_u,
            frames[idx[-1]],
            None if boxes is None else boxes[idx[-1]],
            lambdas[1:],
            temperature_k,
            settings,
            progress,
        )
    except MlfepError as err:
        return EndpointCorrection(**base, status="fail", reason=str(err))
    du.extend(delta_u(s) for s in samples)
    if not all(np.all(np.isfinite(d)) for d in du):
        return EndpointCorrection(**base, status="fail", reason=f"ligand {prepared.name}: non-finite ΔU energies")

    res = analyse_lambda_samples(du, lambdas, temperature_k)
    n_eff = float(res["n_effective"].min())
    min_ov = res["min_overlap"]
    k_worst = int(np.argmin(res["neighbour_overlap"]))
    pair = f"λ={lambdas[k_worst]:g} and λ={lambdas[k_worst + 1]:g}"
    log.info(
        "NNP correction %s %s/%s: ΔG %.3f ± %.3f kJ/mol, overlaps %s, n_eff %s, g %s, %.1f s",
        prepared.name,
        leg,
        state,
        res["dg_kj_mol"],
        res["dg_err_kj_mol"],
        np.round(res["neighbour_overlap"], 3).tolist(),
        np.round(res["n_effective"], 1).tolist(),
        np.round(res["statistical_inefficiency"], 2).tolist(),
        time.perf_counter() - t0,
    )
    common = {**base, "n_effective": n_eff, "min_overlap": min_ov}
    if min_ov < settings.min_overlap or not math.isfinite(res["dg_kj_mol"]):
        return EndpointCorrection(
            **common,
            status="fail",
            reason=(
                f"overlap between {pair} is {min_ov:.3f} < {settings.min_overlap:g}: the MM and ML/MM ensembles "
                "differ too much for this schedule; add λ states or sample longer"
            ),
        )
    status, why = "pass", ""
    if mismatch is not None and mismatch > _WARN_MISMATCH_KJ_MOL:
        status, why = (
            "warn",
            (
                f"the ligand's intramolecular MM energy in the system differs from ligand_system(prepared) by a "
                f"fluctuating {mismatch:.2f} kJ/mol (std): different force field or charges? The correction then "
                "includes that difference"
            ),
        )
    elif min_ov < _WARN_OVERLAP:
        status, why = "warn", f"low overlap {min_ov:.3f} between {pair}"
    elif n_eff < _WARN_N_EFFECTIVE:
        status, why = "warn", f"few effective samples ({n_eff:.1f}) in some λ state; sample longer"
    return EndpointCorrection(
        **common,
        dg_kcal_mol=res["dg_kj_mol"] / KJ_PER_KCAL,
        dg_err_kcal_mol=res["dg_err_kj_mol"] / KJ_PER_KCAL,
        status=status,
        reason=why,
    )
