"""ANI-2x endpoint correction per ligand and environment ("node" correction), applied at the nodes of the network.

A ligand's correction ΔG(MM → ML/MM) is a property of the ligand in one environment (vacuum, solvent, complex),
not of an edge: it is computed once per ligand and environment on the *plain* ligand system (no dummy atoms) and
the same number enters every edge the ligand is part of, so the ML cycle closures equal the MM ones by
construction.

Method: bidirectional non-equilibrium switching with BAR (Crooks), from many independent starts.

1. The plain ligand system of that environment (:func:`fep.systems.endstates.build_ligand_system`) is minimised
   and equilibrated with MM (NPT for periodic systems, then NVT at that box), at 5/ps friction in vacuum.
2. ``n_starts`` starting states are taken ``decorrelation_ps`` apart from continued MM dynamics, in full
   precision (positions and velocities from the context, never from a compressed trajectory).
3. From each start: switch λ from 0 to 1 in ``switch_steps`` Langevin steps of ``U_λ = U_MM + λ·ΔU``
   (:mod:`fep.nnp.system`), accumulating the forward work ``W_F = Σ Δλ·ΔU(x)``; relax ``relax_steps`` at
   λ = 1; switch back to 0 for the reverse work ``W_R``.
4. ΔG from BAR on the (W_F, W_R) pairs; σ from a bootstrap over the independent starts (each start's pair kept
   together), which makes no assumption about correlation inside a run. The correction is flagged ``warn`` when
   the dissipated work exceeds a few kT (the switching is too fast for the difference between MM and ML) and
   ``fail`` when the forward and reverse work distributions do not overlap at all. It is also flagged ``warn``
   when MM and ANI-2x minima disagree qualitatively (:func:`fep.nnp.geometry.minimum_disagreements`: a
   nitrogen planar in one and pyramidal in the other, an amide twisted in one only).

The result is an :class:`~analysis.results.EndpointCorrection` with ``state`` left to the caller (A or B of
each edge that uses it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from analysis.results import EndpointCorrection
from fep.sampling.platforms import select_platform
from ligand_prep.models import PreparedLigand
from mlfep_core import MlfepError
from mlfep_core.constants import GAS_CONSTANT_KJ_MOL_K, KJ_PER_KCAL

__all__ = ["bar_with_bootstrap", "node_correction"]

log = logging.getLogger(__name__)

_WARN_DISSIPATION_KT = 3.0
_MM_TIMESTEP_PS = 0.002


def bar_with_bootstrap(
    w_f: np.ndarray, w_r: np.ndarray, n_bootstrap: int = 200, seed: int = 0
) -> tuple[float, float, float]:
    """BAR free energy (kT) from paired forward/reverse works (kT), its bootstrap σ over the pairs, and the
    mean dissipated work ``(⟨W_F⟩ + ⟨W_R⟩)/2`` (kT).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> w_f = 2.0 + 0.5 * rng.standard_normal(200) + 0.125   # Gaussian work, dissipation σ²/2
    >>> w_r = -2.0 + 0.5 * rng.standard_normal(200) + 0.125
    >>> dg, sigma, diss = bar_with_bootstrap(w_f, w_r)
    >>> abs(dg - 2.0) < 3 * sigma + 0.05
    True
    """
    from pymbar.other_estimators import bar

    w_f = np.asarray(w_f, dtype=float)
    w_r = np.asarray(w_r, dtype=float)

    def estimate(f: np.ndarray, r: np.ndarray) -> float:
        return float(bar(f, r, compute_uncertainty=False)["Delta_f"])

    dg = estimate(w_f, w_r)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(w_f), len(w_f))
        boot.append(estimate(w_f[idx], w_r[idx]))
    dissipation = 0.5 * float(np.mean(w_f) + np.mean(w_r))
    return dg, float(np.std(boot, ddof=1)), dissipation


def _switch(context, integrator, delta_u, atoms, periodic, lam_from: float, lam_to: float, steps: int) -> float:
    """Switch λ linearly in ``steps`` steps (at most 50 increments); returns the work Σ Δλ·ΔU in kJ/mol."""
    import openmm.unit as u

    from fep.nnp.system import LAMBDA_PARAMETER, make_whole

    n_inc = max(1, min(50, steps))
    per = max(1, steps // n_inc)
    lambdas = np.linspace(lam_from, lam_to, n_inc + 1)
    work = 0.0
    for k in range(n_inc):
        state = context.getState(getPositions=True)
        x = state.getPositions(asNumpy=True).value_in_unit(u.nanometer)[atoms][None]
        if periodic:
            box = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer))[None]
            x = make_whole(x, box, delta_u.bonds)
        work += float(lambdas[k + 1] - lambdas[k]) * float(delta_u(x)[0])
        context.setParameter(LAMBDA_PARAMETER, float(lambdas[k + 1]))
        integrator.step(per)
    return work


def node_correction(
    prepared: PreparedLigand,
    env: str,
    protocol,
    *,
    protein_pdb: str | Path | None = None,
    cofactors: Sequence[str] = (),
    platform: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> EndpointCorrection:
    """ΔG(MM → ML/MM) of one ligand alone in ``env`` ('vacuum', 'solvent' or 'complex'); see the module docstring.

    ``protocol`` is the run's :class:`fep.protocol.Protocol` (its ``system`` builds the environment, its ``nnp``
    sets the switching, its ``sampler`` the temperature and pressure). The ``state`` of the returned correction
    is 'A'; callers relabel it per edge.
    """
    import openmm
    import openmm.unit as u

    from fep.nnp.correction import nnp_support
    from fep.nnp.system import LAMBDA_PARAMETER, DeltaU, add_nnp_force
    from fep.systems.endstates import build_ligand_system
    from fep.systems.forcefield import LIGAND_RESIDUE_NAME
    from gpu_kernels._torch import resolve_device

    settings = protocol.nnp
    base = {"leg": env, "state": "A", "ligand": prepared.name}
    ok, reason = nnp_support(prepared)
    if not ok:
        return EndpointCorrection(**base, status="skipped", reason=reason)
    started, started_cpu = time.perf_counter(), time.process_time()
    temperature = float(protocol.sampler.temperature.m_as("kelvin"))
    kt = GAS_CONSTANT_KJ_MOL_K * temperature
    seed = settings.seed if settings.seed is not None else int(np.random.default_rng().integers(1, 2**30))
    from fep.systems.cofactors import prepare_cofactors

    cofactor_preps = (
        prepare_cofactors(cofactors, protocol.charge_method, protocol.system.small_molecule_forcefield)
        if env == "complex"
        else []
    )
    system, topology, positions, box = build_ligand_system(
        prepared, env, protocol.system, protein_pdb, cofactors=cofactor_preps
    )
    periodic = box is not None
    atoms = [a.index for a in topology.atoms() if a.residue.name == LIGAND_RESIDUE_NAME]
    if len(atoms) != prepared.ligand.n_atoms:
        raise MlfepError(f"ligand {prepared.name} {env}: {len(atoms)} ligand atoms found in the built system")
    friction = settings.vacuum_friction_per_ps if env == "vacuum" else settings.friction_per_ps
    name = platform or settings.platform
    plat = select_platform(name) if name else None

    def context_for(sys, integrator):
        return openmm.Context(sys, integrator) if plat is None else openmm.Context(sys, integrator, plat)

    def mm_context(sys, seed_offset: int):
        integrator = openmm.LangevinMiddleIntegrator(temperature, friction, _MM_TIMESTEP_PS)
        integrator.setRandomNumberSeed(seed + seed_offset)
        return context_for(sys, integrator), integrator

    # 1. MM equilibration (NPT when periodic), 2. independent full-precision starts (NVT at that box)
    eq_system = openmm.XmlSerializer.clone(system)
    if periodic and protocol.sampler.pressure is not None:
        barostat = openmm.MonteCarloBarostat(protocol.sampler.pressure.m_as("bar") * u.bar, temperature)
        barostat.setRandomNumberSeed(seed)
        eq_system.addForce(barostat)
    eq_ctx, eq_int = mm_context(eq_system, 0)
    if periodic:
        eq_ctx.setPeriodicBoxVectors(*box)
    eq_ctx.setPositions(np.asarray(positions))
    openmm.LocalEnergyMinimizer.minimize(eq_ctx, 10.0, 1000)
    eq_ctx.setVelocitiesToTemperature(temperature, seed)
    eq_int.step(round(settings.mm_equilibration_ps / _MM_TIMESTEP_PS))
    equilibrated = eq_ctx.getState(getPositions=True, getVelocities=True)
    del eq_ctx, eq_int
    mm_ctx, mm_int = mm_context(system, 1)
    if periodic:
        mm_ctx.setPeriodicBoxVectors(*equilibrated.getPeriodicBoxVectors())
    mm_ctx.setPositions(equilibrated.getPositions())
    mm_ctx.setVelocities(equilibrated.getVelocities())
    starts = []
    gap = max(1, round(settings.decorrelation_ps / _MM_TIMESTEP_PS))
    for _ in range(settings.n_starts):
        mm_int.step(gap)
        starts.append(mm_ctx.getState(getPositions=True, getVelocities=True))
    if progress:
        progress(f"{prepared.name} {env}: {len(starts)} MM starts")

    # 3. bidirectional switching from each start
    device = resolve_device(None)
    delta_u = DeltaU(prepared, device=device, threads=1 if device.type == "cpu" else None)
    ml_system = openmm.XmlSerializer.clone(system)
    add_nnp_force(ml_system, atoms, delta_u)
    dt_ps = float(settings.timestep.m_as("picosecond"))
    ml_int = openmm.LangevinMiddleIntegrator(temperature, friction, dt_ps)
    ml_int.setRandomNumberSeed(seed + 2)
    ml_ctx = context_for(ml_system, ml_int)
    w_f, w_r = [], []
    try:
        for n, state in enumerate(starts):
            ml_ctx.setParameter(LAMBDA_PARAMETER, 0.0)
            if periodic:
                ml_ctx.setPeriodicBoxVectors(*state.getPeriodicBoxVectors())
            ml_ctx.setPositions(state.getPositions())
            ml_ctx.setVelocities(state.getVelocities())
            ml_ctx.applyConstraints(1e-6)
            w_f.append(_switch(ml_ctx, ml_int, delta_u, atoms, periodic, 0.0, 1.0, settings.switch_steps) / kt)
            ml_int.step(settings.relax_steps)
            w_r.append(_switch(ml_ctx, ml_int, delta_u, atoms, periodic, 1.0, 0.0, settings.switch_steps) / kt)
            if progress:
                progress(f"{prepared.name} {env}: switch {n + 1}/{len(starts)}")
    except openmm.OpenMMException as err:
        return EndpointCorrection(
            **base, status="fail", reason=f"ML/MM switching became unstable ({err}); use a smaller NNP timestep"
        )
    w_f_arr, w_r_arr = np.asarray(w_f), np.asarray(w_r)
    cost = {"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - started_cpu}
    if not (np.all(np.isfinite(w_f_arr)) and np.all(np.isfinite(w_r_arr))):
        return EndpointCorrection(**base, **cost, status="fail", reason="non-finite switching work")
    # 4. BAR + bootstrap over starts
    overlap = float(np.mean(np.minimum(1.0, np.exp(-(w_f_arr[:, None] + w_r_arr[None, :])))))
    if overlap < 1e-4:
        return EndpointCorrection(
            **base,
            **cost,
            status="fail",
            min_overlap=overlap,
            reason=f"forward and reverse work do not overlap (mean W_F {w_f_arr.mean():.1f} kT, W_R "
            f"{w_r_arr.mean():.1f} kT): switch more slowly (nnp.switch_steps)",
        )
    try:
        dg_kt, sigma_kt, dissipation = bar_with_bootstrap(w_f_arr, w_r_arr, seed=seed)
    except Exception as err:  # pymbar convergence failure
        raise MlfepError(f"ligand {prepared.name} {env}: BAR on the switching work failed ({err})") from err
    from fep.nnp.geometry import minimum_disagreements

    problems = minimum_disagreements(prepared)
    if dissipation > _WARN_DISSIPATION_KT:
        problems.append(f"dissipated work {dissipation:.1f} kT: the switching is fast for this ligand")
    status, why = ("warn", "; ".join(problems)) if problems else ("pass", "")
    log.info(
        "node correction %s/%s: ΔG %.3f ± %.3f kcal/mol, dissipation %.2f kT, %d starts, %.0f s",
        prepared.name,
        env,
        dg_kt * kt / KJ_PER_KCAL,
        sigma_kt * kt / KJ_PER_KCAL,
        dissipation,
        len(starts),
        cost["wall_s"],
    )
    return EndpointCorrection(
        **base,
        **cost,
        dg_kcal_mol=dg_kt * kt / KJ_PER_KCAL,
        dg_err_kcal_mol=sigma_kt * kt / KJ_PER_KCAL,
        n_effective=float(len(starts)),
        min_overlap=overlap,
        status=status,
        reason=why,
    )
