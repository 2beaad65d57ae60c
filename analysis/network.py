"""Network estimates from edge ΔΔG: cycle closure errors, maximum-likelihood node ΔG with covariance, ranking
and statistics against experiment.

The maximum-likelihood estimate (Xu, JCIM 2019; the estimator of cinnabar) minimises
``Σ_e (g_b − g_a − ΔΔG_e)² / σ_e²``. Its Fisher matrix is the weighted graph Laplacian ``L`` (weights 1/σ²);
node values are fixed up to a constant, so the estimate uses the pseudo-inverse ``L⁺`` and a gauge: either
the mean of the experimental values of the ligands that have one, or ΔG = 0 for a reference ligand. The
covariance in that gauge is ``P L⁺ Pᵀ`` with ``P`` the projection that applies it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from analysis.results import CycleClosure, EdgeResult, NetworkResult, StatisticsResult, Verdict
from mlfep_core import InputError

__all__ = [
    "MIN_SIGMA_KCAL_MOL",
    "MleEstimate",
    "analyse_network",
    "cycle_closures",
    "experimental_dg",
    "mle_estimate",
]

logger = logging.getLogger(__name__)

#: Edge σ below this (kcal/mol) is raised to it so the Fisher matrix stays well conditioned.
MIN_SIGMA_KCAL_MOL = 0.01

#: (ligand_a, ligand_b, ΔΔG, σ) in kcal/mol, ΔΔG = G(b) − G(a).
EdgeTuple = tuple[str, str, float, float]


@dataclass(frozen=True)
class MleEstimate:
    """Maximum-likelihood node free energies.

    Attributes
    ----------
    ligands : tuple of str
        Ligands with an estimate (the component connected to the reference), in input order.
    dg : ndarray, shape (n,)
        Node ΔG in kcal/mol, order of ``ligands``.
    covariance : ndarray, shape (n, n)
        Their covariance in kcal²/mol².
    reference : str
        'experimental mean' or the reference ligand's name.
    disconnected : tuple of str
        Ligands without a path to the reference.
    """

    ligands: tuple[str, ...]
    dg: np.ndarray
    covariance: np.ndarray
    reference: str
    disconnected: tuple[str, ...]

    @property
    def dg_err(self) -> np.ndarray:
        """Standard errors, sqrt of the covariance diagonal, shape (n,)."""
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))


def _check_edges(edges: Sequence[EdgeTuple]) -> list[EdgeTuple]:
    out = []
    for a, b, ddg, sigma in edges:
        if a == b:
            raise InputError(f"edge {a}~{b}: an edge must join two different ligands")
        if not (math.isfinite(ddg) and math.isfinite(sigma)) or sigma < 0:
            raise InputError(f"edge {a}~{b}: ΔΔG {ddg} ± {sigma} is not a finite value with σ ≥ 0")
        out.append((str(a), str(b), float(ddg), max(float(sigma), MIN_SIGMA_KCAL_MOL)))
    return out


def cycle_closures(edges: Sequence[EdgeTuple]) -> list[tuple[tuple[str, ...], float, float]]:
    """Closure error of every independent cycle (networkx ``cycle_basis`` of the undirected graph).

    Parameters
    ----------
    edges : sequence of (ligand_a, ligand_b, ΔΔG, σ)
        ΔΔG = G(b) − G(a) in kcal/mol. Several edges joining the same pair are first combined by their
        inverse-variance weighted mean (their own disagreement is not a cycle of the basis).

    Returns
    -------
    list of (cycle, closure, σ)
        ``cycle`` lists the ligands in traversal order; ``closure`` is Σ ΔΔG along it (an edge traversed
        against its direction counts negatively), 0 for a consistent network; σ adds edge σ in quadrature.
    """
    import networkx as nx

    pairs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for a, b, ddg, sigma in _check_edges(edges):
        key, sign = ((a, b), 1.0) if a <= b else ((b, a), -1.0)
        pairs.setdefault(key, []).append((sign * ddg, sigma))
    graph = nx.Graph()
    combined: dict[tuple[str, str], tuple[float, float]] = {}
    for key, values in pairs.items():
        w = np.array([1.0 / s**2 for _, s in values])
        v = np.array([d for d, _ in values])
        combined[key] = (float(np.sum(w * v) / np.sum(w)), float(1.0 / math.sqrt(np.sum(w))))
        graph.add_edge(*key)
    out = []
    for cycle in nx.cycle_basis(graph):
        total, var = 0.0, 0.0
        for i, a in enumerate(cycle):
            b = cycle[(i + 1) % len(cycle)]
            if (a, b) in combined:
                d, s = combined[(a, b)]
            else:
                d, s = combined[(b, a)]
                d = -d
            total += d
            var += s * s
        out.append((tuple(cycle), total, math.sqrt(var)))
    return out


def mle_estimate(
    edges: Sequence[EdgeTuple],
    *,
    ligands: Sequence[str] | None = None,
    reference: str | None = None,
    experimental: Mapping[str, float] | None = None,
    all_components: bool = False,
) -> MleEstimate:
    """Maximum-likelihood node ΔG and covariance from edge ΔΔG (weighted least squares, weights 1/σ²).

    Parameters
    ----------
    edges : sequence of (ligand_a, ligand_b, ΔΔG, σ)
        ΔΔG = G(b) − G(a) in kcal/mol; σ below :data:`MIN_SIGMA_KCAL_MOL` is raised to it.
    ligands : sequence of str, optional
        Every ligand (order of the output; ligands without edges end up in ``disconnected``). Default: the
        ligands of the edges, in order of appearance.
    reference : str, optional
        Ligand set to ΔG = 0; given, it overrides the experimental-mean gauge. Without it and without
        experimental values the first ligand is the reference. Only the component connected to it is estimated.
    experimental : mapping of str to float, optional
        Experimental ΔG; when at least one estimated ligand has one, the node values are offset so their mean
        over those ligands equals the experimental mean (and the component with the most such ligands is used
        when no reference is given).
    all_components : bool
        Without a reference: estimate every connected component of two or more ligands, each in its own gauge
        (its experimental mean, else its first ligand), with a block-diagonal covariance (a hydration series of
        several scaffolds, planned as one sub-network each). ``reference`` then reads e.g.
        'experimental mean (per group of ligands)'.

    Returns
    -------
    MleEstimate

    Raises
    ------
    InputError
        No edges, an unknown reference, or non-finite ΔΔG/σ.

    Examples
    --------
    >>> est = mle_estimate([("a", "b", 1.0, 0.1), ("b", "c", 1.0, 0.1), ("a", "c", 2.0, 0.1)])
    >>> est.dg.round(6).tolist()
    [0.0, 1.0, 2.0]
    """
    import networkx as nx

    edges = _check_edges(edges)
    if not edges:
        raise InputError("network estimate: no edges with a result")
    order: list[str] = list(ligands) if ligands is not None else []
    for a, b, _, _ in edges:
        for name in (a, b):
            if name not in order:
                order.append(name)
    graph = nx.Graph()
    graph.add_nodes_from(order)
    graph.add_edges_from((a, b) for a, b, _, _ in edges)
    experimental = {k: float(v) for k, v in (experimental or {}).items() if v is not None and math.isfinite(v)}
    if reference is not None and reference not in graph:
        raise InputError(f"network estimate: reference ligand {reference!r} is not in the network")
    groups = [c for c in nx.connected_components(graph) if len(c) > 1]
    if all_components and reference is None and len(groups) > 1:
        return _per_component(edges, order, groups, experimental)
    if reference is not None:
        component = nx.node_connected_component(graph, reference)
    else:
        components = sorted(
            nx.connected_components(graph),
            key=lambda c: (len(c & experimental.keys()), len(c), -min(order.index(n) for n in c)),
            reverse=True,
        )
        component = components[0]
    names = [n for n in order if n in component]
    disconnected = tuple(n for n in order if n not in component)
    index = {n: i for i, n in enumerate(names)}
    n = len(names)
    fisher = np.zeros((n, n))
    rhs = np.zeros(n)
    for a, b, ddg, sigma in edges:
        if a not in index:
            continue
        i, j, w = index[a], index[b], 1.0 / sigma**2
        fisher[i, i] += w
        fisher[j, j] += w
        fisher[i, j] -= w
        fisher[j, i] -= w
        rhs[j] += w * ddg
        rhs[i] -= w * ddg
    pinv = np.linalg.pinv(fisher, hermitian=True)
    dg = pinv @ rhs  # sum-zero gauge
    with_exp = [index[k] for k in names if k in experimental]
    if with_exp and reference is None:
        weights = np.zeros(n)
        weights[with_exp] = 1.0 / len(with_exp)
        offset = float(np.mean([experimental[names[i]] for i in with_exp]))
        label = "experimental mean"
    else:
        ref = reference if reference is not None else names[0]
        weights = np.zeros(n)
        weights[index[ref]] = 1.0
        offset = 0.0
        label = ref
    projection = np.eye(n) - np.outer(np.ones(n), weights)
    dg = projection @ dg + offset
    covariance = projection @ pinv @ projection.T
    covariance = 0.5 * (covariance + covariance.T)
    return MleEstimate(tuple(names), dg, covariance, label, disconnected)


def _per_component(edges, order: list[str], groups, experimental: Mapping[str, float]) -> MleEstimate:
    """:func:`mle_estimate` of each group of ligands for itself, put together (block-diagonal covariance)."""
    parts = []
    for group in sorted(groups, key=lambda g: min(order.index(n) for n in g)):
        names = [n for n in order if n in group]
        part_edges = [e for e in edges if e[0] in group]
        parts.append(mle_estimate(part_edges, ligands=names, experimental=experimental))
    names = [n for part in parts for n in part.ligands]
    covariance = np.zeros((len(names), len(names)))
    start = 0
    for part in parts:
        k = len(part.ligands)
        covariance[start : start + k, start : start + k] = part.covariance
        start += k
    labels = sorted({part.reference for part in parts})
    label = (
        "experimental mean (per group of ligands)"
        if labels == ["experimental mean"]
        else "per group of ligands: " + ", ".join(part.reference for part in parts)
    )
    placed = set(names)
    return MleEstimate(
        tuple(names),
        np.concatenate([part.dg for part in parts]),
        covariance,
        label,
        tuple(n for n in order if n not in placed),
    )


def experimental_err(values: Mapping[str, Any] | None) -> dict[str, float]:
    """Reported uncertainties (kcal/mol) of the experimental values that carry one (ExperimentalValue)."""
    out: dict[str, float] = {}
    for name, value in (values or {}).items():
        err = getattr(value, "dg_err_kcal_mol", None)
        if err is not None and math.isfinite(float(err)):
            out[str(name)] = float(err)
    return out


def experimental_dg(values: Mapping[str, Any] | None) -> dict[str, float]:
    """Experimental ΔG in kcal/mol from floats or objects with ``dg_kcal_mol`` (ExperimentalValue)."""
    out: dict[str, float] = {}
    for name, value in (values or {}).items():
        dg = getattr(value, "dg_kcal_mol", value)
        if dg is not None and math.isfinite(float(dg)):
            out[str(name)] = float(dg)
    return out


def _edge_tuples(edges: Sequence[EdgeResult], estimate: str) -> tuple[list[EdgeTuple], list[str]]:
    """(ligand_a, ligand_b, ΔΔG, σ) per done edge; for 'ml' the edges that fell back to MM are listed."""
    out, fallback = [], []
    for edge in edges:
        if estimate == "ml" and edge.ddg_ml_kcal_mol is not None and edge.ddg_ml_err_kcal_mol is not None:
            out.append((edge.ligand_a, edge.ligand_b, edge.ddg_ml_kcal_mol, edge.ddg_ml_err_kcal_mol))
        else:
            if estimate == "ml":
                fallback.append(edge.key)
            out.append((edge.ligand_a, edge.ligand_b, edge.ddg_mm_kcal_mol, edge.ddg_mm_err_kcal_mol))
    return out, fallback


def analyse_network(
    edges: Sequence[EdgeResult],
    *,
    ligands: Sequence[str] | None = None,
    experimental: Mapping[str, Any] | None = None,
    reference: str | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    closure_warn_kcal_mol: float = 1.0,
) -> NetworkResult:
    """Cycle closures, MLE node ΔG (MM and ML), ranking and statistics vs experiment for a set of edges.

    Parameters
    ----------
    edges : sequence of EdgeResult
        Failed edges are listed in ``excluded_edges`` and otherwise ignored.
    ligands : sequence of str, optional
        Every ligand of the network (so that ligands left without a done edge are reported).
    experimental : mapping of str to float or ExperimentalValue, optional
        Experimental ΔG per ligand; turns on the experimental-mean gauge and the statistics.
    reference : str, optional
        Reference ligand (ΔG = 0) when there is no experimental data.
    n_bootstrap, seed : int
        Bootstrap of the statistics' confidence intervals.
    closure_warn_kcal_mol : float
        A cycle closure above this and above 2σ gives a warning.

    Returns
    -------
    NetworkResult

    Raises
    ------
    InputError
        No edge finished, or edges of different modes.
    """
    done = [e for e in edges if e.status == "done"]
    excluded = [e.key for e in edges if e.status != "done"]
    if not done:
        raise InputError("network: no edge has finished successfully; nothing to estimate")
    modes = {e.mode for e in done}
    if len(modes) > 1:
        raise InputError(f"network: edges mix modes {sorted(modes)}; analyse binding and hydration separately")
    mode = done[0].mode
    exp = experimental_dg(experimental)
    verdicts: list[Verdict] = []

    mm_tuples, _ = _edge_tuples(done, "mm")
    per_group = mode == "hydration"  # a hydration series of several scaffolds: each group in its own gauge
    mm = mle_estimate(mm_tuples, ligands=ligands, reference=reference, experimental=exp, all_components=per_group)
    if "per group" in mm.reference:
        anchored = mm.reference.startswith("experimental mean")
        verdicts.append(
            Verdict(
                name="groups",
                status="pass" if anchored else "warn",
                message="the ligands form groups that share no core, each estimated for itself"
                + (
                    " and anchored on its own experimental mean"
                    if anchored
                    else f" ({mm.reference}): compare ΔG only within a group"
                ),
            )
        )
    has_ml = any(e.ddg_ml_kcal_mol is not None for e in done)
    ml = None
    ml_reason = ""
    ml_tuples: list[EdgeTuple] = []
    if has_ml:
        ml_tuples, fallback = _edge_tuples(done, "ml")
        ml = mle_estimate(ml_tuples, ligands=ligands, reference=reference, experimental=exp, all_components=per_group)
        if fallback:
            ml_reason = f"MM ΔΔG used for {len(fallback)} edge(s) without ML correction: {', '.join(fallback)}"
            verdicts.append(Verdict(name="ml_coverage", status="warn", message=ml_reason))
    else:
        ml_reason = "no edge has an ML-corrected ΔΔG"

    closures: list[CycleClosure] = []
    for label, tuples in (("mm", mm_tuples), ("ml", ml_tuples)):
        if not tuples:
            continue
        for cycle, value, sigma in cycle_closures(tuples):
            closures.append(
                CycleClosure(cycle=cycle, estimate=label, closure_kcal_mol=value, closure_err_kcal_mol=sigma)
            )
    bad = [c for c in closures if abs(c.closure_kcal_mol) > max(closure_warn_kcal_mol, 2 * c.closure_err_kcal_mol)]
    if closures:
        worst = max(closures, key=lambda c: abs(c.closure_kcal_mol))
        message = (
            f"{len(closures)} cycle(s); largest closure {worst.closure_kcal_mol:+.2f} ± "
            f"{worst.closure_err_kcal_mol:.2f} kcal/mol ({worst.estimate}: {' → '.join(worst.cycle)})"
        )
        verdicts.append(
            Verdict(name="cycle_closure", status="warn" if bad else "pass", message=message + f"; {len(bad)} above")
        )
    if mm.disconnected:
        verdicts.append(
            Verdict(
                name="connectivity",
                status="warn",
                message=f"no estimate for {', '.join(mm.disconnected)}: not connected by finished edges",
            )
        )

    statistics: list[StatisticsResult] = []
    if exp:
        statistics = _statistics(done, mm, ml, exp, experimental_err(experimental), n_bootstrap=n_bootstrap, seed=seed)

    best = ml if ml is not None else mm
    order = np.argsort(best.dg, kind="stable")
    excluded_disconnected = [e.key for e in done if e.ligand_a in mm.disconnected]
    return NetworkResult(
        mode=mode,
        ligands=mm.ligands,
        dg_mm_kcal_mol=dict(zip(mm.ligands, map(float, mm.dg), strict=True)),
        dg_mm_err_kcal_mol=dict(zip(mm.ligands, map(float, mm.dg_err), strict=True)),
        covariance_mm=mm.covariance.tolist(),
        dg_ml_kcal_mol=None if ml is None else dict(zip(ml.ligands, map(float, ml.dg), strict=True)),
        dg_ml_err_kcal_mol=None if ml is None else dict(zip(ml.ligands, map(float, ml.dg_err), strict=True)),
        covariance_ml=None if ml is None else ml.covariance.tolist(),
        ml_reason=ml_reason,
        reference=mm.reference,
        cycle_closures=tuple(closures),
        statistics=tuple(statistics),
        ranking=tuple(best.ligands[i] for i in order),
        excluded_edges=tuple(excluded + excluded_disconnected),
        disconnected_ligands=mm.disconnected,
        verdicts=tuple(verdicts),
    )


def _statistics(
    done: Sequence[EdgeResult],
    mm: MleEstimate,
    ml: MleEstimate | None,
    exp: Mapping[str, float],
    exp_err: Mapping[str, float],
    *,
    n_bootstrap: int,
    seed: int,
) -> list[StatisticsResult]:
    """Edge and node statistics; each bootstrap sample also draws the calculated σ and the experimental σ
    (those reported; an edge's is the two ligands' in quadrature)."""
    from analysis.stats import compute_statistics

    out: list[StatisticsResult] = []
    estimates: tuple[Literal["mm", "ml"], ...] = ("mm", "ml")
    for label in estimates:
        if label == "ml" and ml is None:
            continue
        pred, ref, sig, sig_exp = [], [], [], []
        for edge in done:
            if edge.ligand_a in exp and edge.ligand_b in exp:
                value = edge.ddg_ml_kcal_mol if label == "ml" else edge.ddg_mm_kcal_mol
                err = edge.ddg_ml_err_kcal_mol if label == "ml" else edge.ddg_mm_err_kcal_mol
                if value is None:
                    continue
                pred.append(value)
                sig.append(err)
                ref.append(exp[edge.ligand_b] - exp[edge.ligand_a])
                sig_exp.append(math.hypot(exp_err.get(edge.ligand_a, 0.0), exp_err.get(edge.ligand_b, 0.0)))
        if len(pred) >= 2:
            out.append(
                compute_statistics(
                    pred,
                    ref,
                    kind="edges",
                    estimate=label,
                    sigma_predicted=sig,
                    sigma_experimental=sig_exp,
                    n_bootstrap=n_bootstrap,
                    seed=seed,
                )
            )
    for label, est in (("mm", mm), ("ml", ml)):
        if est is None:
            continue
        names = [n for n in est.ligands if n in exp]
        if len(names) >= 2:
            index = [est.ligands.index(n) for n in names]
            out.append(
                compute_statistics(
                    [float(est.dg[i]) for i in index],
                    [exp[n] for n in names],
                    kind="nodes",
                    estimate=label,
                    sigma_predicted=[float(np.sqrt(est.covariance[i, i])) for i in index],
                    sigma_experimental=[exp_err.get(n) for n in names],
                    n_bootstrap=n_bootstrap,
                    seed=seed,
                )
            )
    return out
