"""What the analysis stage produces: per-leg, per-edge and network results, and the edge combination rule.

Sign conventions (every number in kcal/mol):

- ``ΔG_leg = G(B) − G(A)`` within one leg (state 0 of the λ schedule is ligand A, state K−1 is ligand B).
- binding: ``ΔΔG = ΔG_complex − ΔG_solvent``; hydration: ``ΔΔG_hyd = ΔG_solvent − ΔG_vacuum``.
- ML-corrected: ``ΔΔG_ML = ΔΔG_MM + [corr(B) − corr(A)]_first − [corr(B) − corr(A)]_second`` where *first* and
  *second* are (complex, solvent) for binding and (solvent, vacuum) for hydration. No ML value (``None`` and
  ``ml_reason``) when any of the four corrections is missing, skipped or failed.

All models are immutable and round-trip through JSON (:meth:`~mlfep_core.FrozenModel.to_json_file`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from mlfep_core import FrozenModel, InputError
from mlfep_core.constants import LEGS_FOR_MODE

__all__ = [
    "CycleClosure",
    "EdgeResult",
    "EndpointCorrection",
    "LegResult",
    "NetworkResult",
    "Statistic",
    "StatisticsResult",
    "Verdict",
    "combine_edge",
    "correction_sum",
    "worst_status",
]

_RANK = {"pass": 0, "warn": 1, "fail": 2}


class Verdict(FrozenModel):
    """The outcome of one diagnostic check."""

    name: str = Field(description="Which check, e.g. 'overlap', 'mixing', 'convergence', 'ml_correction'.")
    status: Literal["pass", "warn", "fail"] = Field(description="pass, warn (look at it) or fail (do not trust).")
    message: str = Field(description="One line with the numbers behind the status.")


def worst_status(verdicts: Sequence[Verdict]) -> Literal["pass", "warn", "fail"]:
    """The worst status among ``verdicts`` ('pass' when empty)."""
    worst = "pass"
    for verdict in verdicts:
        if _RANK[verdict.status] > _RANK[worst]:
            worst = verdict.status
    return worst  # type: ignore[return-value]


class LegResult(FrozenModel):
    """Free energy of one leg (complex, solvent or vacuum) from MBAR, with its diagnostics."""

    leg: str = Field(description="Leg name: 'complex', 'solvent' or 'vacuum'.")
    dg_kcal_mol: float = Field(description="MBAR ΔG = G(B) − G(A) of this leg, kcal/mol.")
    dg_err_kcal_mol: float = Field(description="MBAR analytic standard error of ΔG, kcal/mol.")
    dg_bar_kcal_mol: float | None = Field(None, description="Sum of BAR ΔG between neighbouring states (cross-check).")
    dg_bar_err_kcal_mol: float | None = Field(None, description="Error of the BAR sum (neighbours independent).")
    dg_bootstrap_err_kcal_mol: float | None = Field(None, description="Bootstrap standard error, if requested.")
    n_bootstrap: int = Field(0, description="Number of bootstrap samples used (0 = none).")
    n_states: int = Field(description="Number of λ states K.")
    n_iterations: int = Field(description="Number of replica-exchange iterations in the input.")
    n_equilibration: int = Field(description="Iterations discarded as equilibration (detected automatically).")
    statistical_inefficiency: float = Field(
        description="Statistical inefficiency g the production part was subsampled by (the largest per-state one)."
    )
    statistical_inefficiency_states: list[float] = Field(
        default_factory=list, description="g of each state's ΔU series (u_k+1 − u_k−1 of the sample at state k)."
    )
    n_effective: float = Field(description="Effective number of uncorrelated samples per state.")
    overlap_matrix: list[list[float]] = Field(description="MBAR overlap matrix, shape (K, K).")
    mixing_matrix: list[list[float]] | None = Field(None, description="Replica state transition matrix (K, K).")
    round_trips: int | None = Field(None, description="Replica round trips 0 → K−1 → 0, summed over replicas.")
    convergence: dict[str, list[float]] = Field(
        default_factory=dict,
        description="Keys 'fraction', 'forward_dg', 'forward_err', 'reverse_dg', 'reverse_err' (kcal/mol).",
    )
    end_state_energy_series: dict[str, list[float]] | None = Field(
        None, description="Per-iteration reduced potential (kT) at state A and state B of the replica there."
    )
    state_dg_kcal_mol: list[float] = Field(default_factory=list, description="G(state k) − G(state 0), kcal/mol.")
    state_labels: tuple[str, ...] = Field((), description="A label per λ state, e.g. 'lambda_sterics=0.5'.")
    verdicts: tuple[Verdict, ...] = Field((), description="Diagnostic verdicts of this leg.")
    temperature_k: float = Field(description="Temperature in kelvin (kT = R·T).")
    lambda_placement: dict[str, Any] | None = Field(
        None,
        description="When windows were placed from overlap: the first pass's windows, iterations and neighbour "
        "overlaps, the target, the gaps refined and the final number of windows (fep.execution.runner).",
    )

    @property
    def status(self) -> Literal["pass", "warn", "fail"]:
        """The worst verdict status of this leg."""
        return worst_status(self.verdicts)


class EndpointCorrection(FrozenModel):
    """MM → ML/MM free energy correction of one end state in one leg (written by the NNP stage)."""

    leg: str = Field(description="Leg name: 'complex', 'solvent' or 'vacuum'.")
    state: Literal["A", "B"] = Field(description="End state: 'A' (ligand A) or 'B' (ligand B).")
    ligand: str = Field(description="Name of the ligand at that end state.")
    dg_kcal_mol: float | None = Field(None, description="ΔG(MM → ML/MM) in kcal/mol; None when not computed.")
    dg_err_kcal_mol: float | None = Field(None, description="Its standard error in kcal/mol.")
    n_effective: float | None = Field(None, description="Effective sample size of the reweighting.")
    min_overlap: float | None = Field(None, description="Smallest neighbour overlap of the MM → ML/MM schedule.")
    status: Literal["pass", "warn", "fail", "skipped"] = Field(description="Outcome of the correction.")
    reason: str = Field("", description="Why it was skipped or failed, or a warning.")
    wall_s: float | None = Field(None, description="Wall seconds the correction took (None: not recorded).")
    cpu_s: float | None = Field(None, description="CPU seconds of the process over the correction.")


class EdgeResult(FrozenModel):
    """ΔΔG of one edge A → B: MM and (when available) ML-corrected, with its legs and diagnostics."""

    ligand_a: str = Field(description="Name of ligand A.")
    ligand_b: str = Field(description="Name of ligand B.")
    mode: Literal["binding", "hydration"] = Field(description="binding (complex − solvent) or hydration.")
    legs: dict[str, LegResult] = Field(default_factory=dict, description="Leg name → LegResult (first repeat).")
    ddg_mm_kcal_mol: float = Field(description="ΔΔG with the MM force field, kcal/mol.")
    ddg_mm_err_kcal_mol: float = Field(description="Its standard error, kcal/mol.")
    ddg_ml_kcal_mol: float | None = Field(None, description="ML-corrected ΔΔG, kcal/mol (None: see ml_reason).")
    ddg_ml_err_kcal_mol: float | None = Field(None, description="Its standard error, kcal/mol.")
    corrections: tuple[EndpointCorrection, ...] = Field((), description="The endpoint corrections used.")
    ml_reason: str = Field("", description="Why there is no ML value (empty when there is one).")
    repeats: int = Field(1, description="Number of independent repeats combined.")
    repeat_spread_kcal_mol: float | None = Field(None, description="Sample std of ΔΔG_MM over the repeats.")
    repeat_ddg_mm_kcal_mol: tuple[float, ...] = Field((), description="ΔΔG_MM of each repeat.")
    repeat_ddg_mm_err_kcal_mol: tuple[float, ...] = Field(
        (), description="The σ each repeat reported for its ΔΔG_MM (what the spread of repeats calibrates)."
    )
    verdicts: tuple[Verdict, ...] = Field((), description="Edge-level verdicts (worst per leg, ML, repeats).")
    status: Literal["done", "failed"] = Field("done", description="done, or failed (see error).")
    error: str | None = Field(None, description="What went wrong when status is 'failed'.")
    ligand_ff: str = Field(
        "", description="How the ligands were described, e.g. 'openff-2.2.1 + ANI-2x-refitted torsions'."
    )
    charge_change: int = Field(
        0, description="Net charge of B minus A: a charge-changing edge (run with an alchemical co-ion) when not 0."
    )

    @property
    def key(self) -> str:
        """``'A~B'``: the edge's identifier and folder name."""
        return f"{self.ligand_a}~{self.ligand_b}"

    @property
    def ddg_best(self) -> tuple[float, float, str]:
        """(ΔΔG, σ, 'ml' or 'mm'): the ML value when available, else MM."""
        if self.ddg_ml_kcal_mol is not None and self.ddg_ml_err_kcal_mol is not None:
            return self.ddg_ml_kcal_mol, self.ddg_ml_err_kcal_mol, "ml"
        return self.ddg_mm_kcal_mol, self.ddg_mm_err_kcal_mol, "mm"

    @classmethod
    def failed(cls, ligand_a: str, ligand_b: str, mode: Literal["binding", "hydration"], error: str) -> EdgeResult:
        """A placeholder result for an edge that could not be computed (NaN-free: ΔΔG 0 ± 0, status 'failed')."""
        return cls(
            ligand_a=ligand_a,
            ligand_b=ligand_b,
            mode=mode,
            ddg_mm_kcal_mol=0.0,
            ddg_mm_err_kcal_mol=0.0,
            status="failed",
            error=error,
            verdicts=(Verdict(name="edge", status="fail", message=error),),
        )


class CycleClosure(FrozenModel):
    """Closure error of one independent cycle of the network."""

    cycle: tuple[str, ...] = Field(description="Ligands along the cycle, in traversal order.")
    estimate: Literal["mm", "ml"] = Field(description="Which ΔΔG values were summed.")
    closure_kcal_mol: float = Field(description="Signed sum of edge ΔΔG along the cycle (0 ideally).")
    closure_err_kcal_mol: float = Field(description="Its standard error (edge σ in quadrature).")


class Statistic(FrozenModel):
    """One statistic with a bootstrap 95 % confidence interval."""

    value: float = Field(description="The statistic on the full data.")
    ci_low: float = Field(description="2.5 % bootstrap percentile.")
    ci_high: float = Field(description="97.5 % bootstrap percentile.")


class StatisticsResult(FrozenModel):
    """Agreement of predictions with experiment (RMSE, MUE, R², Pearson r, Kendall τ)."""

    kind: Literal["edges", "nodes"] = Field(description="edges (ΔΔG) or nodes (ΔG, both centred).")
    estimate: Literal["mm", "ml"] = Field(description="Which predictions.")
    n: int = Field(description="Number of data points.")
    metrics: dict[str, Statistic] = Field(description="'rmse', 'mue', 'r2', 'pearson_r', 'kendall_tau'.")
    n_bootstrap: int = Field(description="Bootstrap samples behind the confidence intervals.")
    seed: int = Field(description="Seed of the bootstrap.")
    noise: bool = Field(
        False, description="Whether each bootstrap sample also drew the calculated and experimental errors."
    )


class NetworkResult(FrozenModel):
    """Node ΔG from the maximum-likelihood network estimate, cycle closures and statistics vs experiment."""

    mode: Literal["binding", "hydration"] = Field(description="binding or hydration.")
    ligands: tuple[str, ...] = Field(description="Ligands with an estimate (connected to the reference).")
    dg_mm_kcal_mol: dict[str, float] = Field(description="MLE node ΔG with MM edges, kcal/mol.")
    dg_mm_err_kcal_mol: dict[str, float] = Field(description="Its standard error (sqrt of the covariance diagonal).")
    covariance_mm: list[list[float]] = Field(description="Covariance of the MM node ΔG, order of ``ligands``.")
    dg_ml_kcal_mol: dict[str, float] | None = Field(None, description="MLE node ΔG with ML edges (None: no ML).")
    dg_ml_err_kcal_mol: dict[str, float] | None = Field(None, description="Its standard error.")
    covariance_ml: list[list[float]] | None = Field(None, description="Covariance of the ML node ΔG.")
    ml_reason: str = Field("", description="Why there are no ML node values, or which edges used MM instead.")
    reference: str = Field(description="'experimental mean' or the name of the reference ligand (ΔG = 0).")
    cycle_closures: tuple[CycleClosure, ...] = Field((), description="One per independent cycle and estimate.")
    statistics: tuple[StatisticsResult, ...] = Field((), description="Agreement with experiment, when known.")
    ranking: tuple[str, ...] = Field((), description="Ligands from best (most negative ΔG) to worst.")
    excluded_edges: tuple[str, ...] = Field((), description="Edges left out (failed, or not connected).")
    disconnected_ligands: tuple[str, ...] = Field((), description="Ligands not connected to the reference.")
    verdicts: tuple[Verdict, ...] = Field((), description="Network-level verdicts (cycle closure, connectivity).")


# ------------------------------------------------------------------------------------------ combining
def correction_sum(
    ligand_a: str,
    ligand_b: str,
    legs: tuple[str, str],
    corrections: Sequence[EndpointCorrection],
) -> tuple[float | None, float | None, str]:
    """Σ sign · [corr(B) − corr(A)] over the two legs, or (None, None, reason)."""
    found: dict[tuple[str, str], EndpointCorrection] = {}
    for given in corrections:
        found[(given.leg, given.state)] = given
    total, var, problems = 0.0, 0.0, []
    for sign, leg in zip((1.0, -1.0), legs, strict=True):
        for state, state_sign, ligand in (("B", 1.0, ligand_b), ("A", -1.0, ligand_a)):
            corr = found.get((leg, state))
            if corr is None:
                problems.append(f"{leg}/{state} ({ligand}) missing")
            elif corr.status in ("skipped", "fail"):
                problems.append(f"{leg}/{state} ({ligand}) {corr.status}" + (f": {corr.reason}" if corr.reason else ""))
            elif corr.dg_kcal_mol is None or not math.isfinite(corr.dg_kcal_mol):
                problems.append(f"{leg}/{state} ({ligand}) has no value")
            else:
                total += sign * state_sign * corr.dg_kcal_mol
                var += (corr.dg_err_kcal_mol or 0.0) ** 2
    if problems:
        return None, None, "no ML correction: " + "; ".join(problems)
    return total, math.sqrt(var), ""


def combine_edge(
    ligand_a: str,
    ligand_b: str,
    mode: Literal["binding", "hydration"],
    legs: dict[str, LegResult],
    corrections: Sequence[EndpointCorrection] = (),
    repeats: list[EdgeResult] | None = None,
) -> EdgeResult:
    """Combine leg results (and optionally repeats) into the edge's ΔΔG, MM and ML-corrected.

    Parameters
    ----------
    ligand_a, ligand_b : str
        The edge A → B.
    mode : {'binding', 'hydration'}
        binding needs legs 'complex' and 'solvent'; hydration needs 'solvent' and 'vacuum'.
    legs : dict of str to LegResult
        The legs of one repeat (kept in the result as the representative legs).
    corrections : sequence of EndpointCorrection
        Endpoint corrections for (leg, state) of both legs; all four are needed for an ML value.
    repeats : list of EdgeResult, optional
        Every independent repeat of this edge (each combined from its own legs). When given, ΔΔG is their mean
        and σ = max(sqrt(Σ σ_i²)/n, s/sqrt(n)) with s the sample std of the repeats (the larger of the error
        from the per-repeat errors and the one from the spread). ``legs`` and ``corrections`` then only
        describe the representative repeat.

    Returns
    -------
    EdgeResult

    Raises
    ------
    InputError
        A leg needed by ``mode`` is missing, or a repeat belongs to another edge.

    Examples
    --------
    ΔΔG_bind = ΔG_complex − ΔG_solvent::

        combine_edge("a", "b", "binding", {"complex": leg_c, "solvent": leg_s})
    """
    if mode not in LEGS_FOR_MODE:
        raise InputError(f"edge {ligand_a}~{ligand_b}: mode must be 'binding' or 'hydration', got {mode!r}")
    first, second = LEGS_FOR_MODE[mode]
    missing = [leg for leg in (first, second) if leg not in legs]
    if missing:
        raise InputError(
            f"edge {ligand_a}~{ligand_b}: {mode} needs legs {first!r} and {second!r}; missing {', '.join(missing)}"
        )
    verdicts: list[Verdict] = []
    for name in (first, second):
        leg = legs[name]
        bad = [v for v in leg.verdicts if v.status != "pass"]
        status = worst_status(leg.verdicts)
        text = "; ".join(f"{v.name}: {v.message}" for v in bad) if bad else "all diagnostics pass"
        verdicts.append(Verdict(name=f"leg:{name}", status=status, message=text))

    ddg = legs[first].dg_kcal_mol - legs[second].dg_kcal_mol
    err = math.hypot(legs[first].dg_err_kcal_mol, legs[second].dg_err_kcal_mol)
    correction, correction_err, ml_reason = correction_sum(ligand_a, ligand_b, (first, second), corrections)
    ml = None if correction is None else ddg + correction
    ml_err = None if correction_err is None else math.hypot(err, correction_err)
    if corrections:
        bad_corr = [c for c in corrections if c.status in ("warn", "fail")]
        status = "warn" if ml is not None and bad_corr else ("pass" if ml is not None else "warn")
        message = ml_reason or (
            "; ".join(f"{c.leg}/{c.state}: {c.reason or c.status}" for c in bad_corr) or "all corrections pass"
        )
        verdicts.append(Verdict(name="ml_correction", status=status, message=message))
    else:
        ml_reason = "no ML correction: no endpoint corrections were computed"

    repeat_values: tuple[float, ...] = ()
    repeat_errors: tuple[float, ...] = ()
    n_repeats, spread = 1, None
    if repeats:
        for rep in repeats:
            if (rep.ligand_a, rep.ligand_b, rep.mode) != (ligand_a, ligand_b, mode):
                raise InputError(
                    f"edge {ligand_a}~{ligand_b}: a repeat belongs to {rep.ligand_a}~{rep.ligand_b} ({rep.mode})"
                )
        done = [rep for rep in repeats if rep.status == "done"]
        if not done:
            raise InputError(f"edge {ligand_a}~{ligand_b}: every repeat failed; nothing to combine")
        n_repeats = len(done)
        repeat_values = tuple(rep.ddg_mm_kcal_mol for rep in done)
        repeat_errors = tuple(rep.ddg_mm_err_kcal_mol for rep in done)
        ddg, err, spread = _mean_with_spread(repeat_values, [rep.ddg_mm_err_kcal_mol for rep in done])
        ml_values = [rep.ddg_ml_kcal_mol for rep in done]
        ml_errs = [rep.ddg_ml_err_kcal_mol for rep in done]
        if all(v is not None for v in ml_values) and all(e is not None for e in ml_errs):
            ml, ml_err, _ = _mean_with_spread(ml_values, ml_errs)  # type: ignore[arg-type]
            ml_reason = ""
        else:
            reasons = sorted({rep.ml_reason for rep in done if rep.ml_reason})
            ml, ml_err = None, None
            ml_reason = "no ML correction in every repeat" + (f": {reasons[0]}" if reasons else "")
        if n_repeats > 1 and spread is not None:
            within = math.sqrt(sum(e**2 for e in (rep.ddg_mm_err_kcal_mol for rep in done)) / n_repeats)
            status = "warn" if spread > max(2.0 * within, 0.5) else "pass"
            verdicts.append(
                Verdict(
                    name="repeats",
                    status=status,
                    message=f"{n_repeats} repeats, spread {spread:.2f} kcal/mol vs typical σ {within:.2f} kcal/mol",
                )
            )
    return EdgeResult(
        ligand_a=ligand_a,
        ligand_b=ligand_b,
        mode=mode,
        legs=dict(legs),
        ddg_mm_kcal_mol=float(ddg),
        ddg_mm_err_kcal_mol=float(err),
        ddg_ml_kcal_mol=None if ml is None else float(ml),
        ddg_ml_err_kcal_mol=None if ml_err is None else float(ml_err),
        corrections=tuple(corrections),
        ml_reason=ml_reason,
        repeats=n_repeats,
        repeat_spread_kcal_mol=spread,
        repeat_ddg_mm_kcal_mol=repeat_values,
        repeat_ddg_mm_err_kcal_mol=repeat_errors,
        verdicts=tuple(verdicts),
    )


def _mean_with_spread(values: Sequence[float], errors: Sequence[float]) -> tuple[float, float, float | None]:
    """Mean, its σ = max(from the errors, from the spread), and the sample std (None for one value)."""
    n = len(values)
    mean = sum(values) / n
    from_errors = math.sqrt(sum(e**2 for e in errors)) / n
    if n < 2:
        return mean, from_errors, None
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, max(from_errors, spread / math.sqrt(n)), spread
