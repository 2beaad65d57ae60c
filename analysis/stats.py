"""Agreement of predictions with experiment: RMSE, MUE, R², Pearson r and Kendall τ, each with a seeded
bootstrap 95 % confidence interval (resampling the (prediction, experiment) pairs).

Edges compare ΔΔG with the experimental ΔΔG = ΔG_exp(B) − ΔG_exp(A); nodes compare ΔG with both sides
centred on their own mean (relative free energies carry no absolute offset).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from analysis.results import Statistic, StatisticsResult
from mlfep_core import FrozenModel, InputError

__all__ = [
    "METRICS",
    "PairedComparison",
    "SigmaCalibration",
    "compute_statistics",
    "kendall_tau",
    "mue",
    "paired_comparison",
    "pearson_r",
    "r2",
    "rmse",
    "sigma_calibration",
]


def rmse(pred: np.ndarray, exp: np.ndarray) -> float:
    """Root-mean-square error sqrt(mean((pred − exp)²))."""
    diff = np.asarray(pred, dtype=float) - np.asarray(exp, dtype=float)
    return float(np.sqrt(np.mean(diff**2)))


def mue(pred: np.ndarray, exp: np.ndarray) -> float:
    """Mean unsigned error mean(|pred − exp|)."""
    return float(np.mean(np.abs(np.asarray(pred, dtype=float) - np.asarray(exp, dtype=float))))


def pearson_r(pred: np.ndarray, exp: np.ndarray) -> float:
    """Pearson correlation coefficient (NaN when either side is constant)."""
    x = np.asarray(pred, dtype=float) - np.mean(pred)
    y = np.asarray(exp, dtype=float) - np.mean(exp)
    denom = math.sqrt(float(np.sum(x**2)) * float(np.sum(y**2)))
    return float(np.sum(x * y) / denom) if denom > 0 else float("nan")


def r2(pred: np.ndarray, exp: np.ndarray) -> float:
    """R² as the FEP benchmarks report it: the square of Pearson's r (cinnabar, Hahn et al. 2022)."""
    r = pearson_r(pred, exp)
    return r * r


def kendall_tau(pred: np.ndarray, exp: np.ndarray) -> float:
    """Kendall's τ-b rank correlation (ties handled as scipy.stats.kendalltau does; NaN if a side is constant).

    τ_b = (C − D) / sqrt((n₀ − n₁)(n₀ − n₂)) over the n₀ = n(n−1)/2 pairs, with n₁ and n₂ the pairs tied in
    each variable. O(n²) memory, fine for the hundreds of points of an FEP benchmark.
    """
    x = np.asarray(pred, dtype=float)
    y = np.asarray(exp, dtype=float)
    iu = np.triu_indices(x.size, k=1)
    dx = np.sign(x[:, None] - x[None, :])[iu]
    dy = np.sign(y[:, None] - y[None, :])[iu]
    untied_x = float(np.count_nonzero(dx))
    untied_y = float(np.count_nonzero(dy))
    if untied_x == 0 or untied_y == 0:
        return float("nan")
    return float(np.sum(dx * dy) / math.sqrt(untied_x * untied_y))


#: name → function(pred, exp).
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rmse": rmse,
    "mue": mue,
    "r2": r2,
    "pearson_r": pearson_r,
    "kendall_tau": kendall_tau,
}


def compute_statistics(
    predicted: Sequence[float],
    experimental: Sequence[float],
    *,
    kind: Literal["edges", "nodes"],
    estimate: Literal["mm", "ml"] = "mm",
    sigma_predicted: Sequence[float | None] | None = None,
    sigma_experimental: Sequence[float | None] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> StatisticsResult:
    """Every metric of :data:`METRICS` with a bootstrap 95 % confidence interval.

    Each bootstrap sample resamples the pairs with replacement and, when σ are given, adds normal noise with those
    σ to each predicted and experimental value it drew (as cinnabar's bootstrap does), so the interval carries the
    calculated and the experimental uncertainty as well as the finite number of pairs.

    Parameters
    ----------
    predicted, experimental : sequence of float, length n
        Paired values in kcal/mol (ΔΔG for edges, ΔG for nodes).
    kind : {'edges', 'nodes'}
        'nodes' centres both sides on their mean (in every bootstrap sample as well).
    estimate : {'mm', 'ml'}
        Recorded in the result.
    sigma_predicted, sigma_experimental : sequence of float or None, length n, optional
        Standard errors (kcal/mol) of each value (None or missing: 0).
    n_bootstrap : int
        Resamples of the pairs, with replacement.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    StatisticsResult
        Metrics that are undefined for the data (e.g. r when a side is constant) are left out.

    Raises
    ------
    InputError
        Lengths differ, fewer than 2 pairs, or non-finite values.

    Examples
    --------
    >>> res = compute_statistics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], kind="edges", n_bootstrap=10)
    >>> round(res.metrics["mue"].value, 6)
    0.333333
    """
    pred = np.asarray(predicted, dtype=float)
    exp = np.asarray(experimental, dtype=float)
    if pred.shape != exp.shape or pred.ndim != 1:
        raise InputError(f"statistics: {pred.size} predictions for {exp.size} experimental values")
    if pred.size < 2:
        raise InputError(f"statistics ({kind}): need at least 2 pairs with experimental data, got {pred.size}")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(exp))):
        raise InputError(f"statistics ({kind}): non-finite predicted or experimental value")

    def prepare(p: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if kind == "nodes":
            return p - p.mean(), e - e.mean()
        return p, e

    import warnings

    sp, se = _sigmas(sigma_predicted, pred.size, kind), _sigmas(sigma_experimental, pred.size, kind)
    p0, e0 = prepare(pred, exp)
    values = {name: fn(p0, e0) for name, fn in METRICS.items()}
    rng = np.random.default_rng(seed)
    boot: dict[str, list[float]] = {name: [] for name in METRICS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_bootstrap):
            idx = rng.integers(0, pred.size, size=pred.size)
            noisy_p = pred[idx] + rng.normal(0.0, 1.0, pred.size) * sp[idx]
            noisy_e = exp[idx] + rng.normal(0.0, 1.0, pred.size) * se[idx]
            pb, eb = prepare(noisy_p, noisy_e)
            for name, fn in METRICS.items():
                boot[name].append(fn(pb, eb))
    metrics: dict[str, Statistic] = {}
    for name, value in values.items():
        if not math.isfinite(value):
            continue
        samples = np.asarray(boot[name], dtype=float)
        samples = samples[np.isfinite(samples)]
        if samples.size:
            low, high = (float(x) for x in np.percentile(samples, [2.5, 97.5]))
        else:
            low = high = value
        metrics[name] = Statistic(value=value, ci_low=low, ci_high=high)
    return StatisticsResult(
        kind=kind,
        estimate=estimate,
        n=int(pred.size),
        metrics=metrics,
        n_bootstrap=n_bootstrap,
        seed=seed,
        noise=bool(np.any(sp) or np.any(se)),
    )


def _sigmas(values: Sequence[float | None] | None, n: int, kind: str) -> np.ndarray:
    if values is None:
        return np.zeros(n)
    out = np.asarray([0.0 if v is None or not math.isfinite(float(v)) else float(v) for v in values], dtype=float)
    if out.shape != (n,):
        raise InputError(f"statistics ({kind}): {out.size} uncertainties for {n} values")
    if np.any(out < 0):
        raise InputError(f"statistics ({kind}): a negative uncertainty")
    return out


class PairedComparison(FrozenModel):
    """Method B against method A on the same edges: ΔRMSE and ΔMUE (B − A) with paired bootstrap intervals."""

    n: int = Field(description="Edges (or ligands) both methods have, with experiment.")
    rmse_a: float = Field(description="RMSE of method A against experiment (kcal/mol).")
    rmse_b: float = Field(description="RMSE of method B against experiment (kcal/mol).")
    delta_rmse: Statistic = Field(description="RMSE(B) − RMSE(A) with its paired 95 % bootstrap interval.")
    delta_mue: Statistic = Field(description="MUE(B) − MUE(A) with its paired 95 % bootstrap interval.")
    p_b_better: float = Field(description="Fraction of bootstrap samples in which B has the smaller RMSE.")
    n_bootstrap: int
    seed: int
    noise: bool = Field(description="Whether each sample also drew the calculated and experimental errors.")


def paired_comparison(
    predicted_a: Sequence[float],
    predicted_b: Sequence[float],
    experimental: Sequence[float],
    *,
    sigma_a: Sequence[float] | None = None,
    sigma_b: Sequence[float] | None = None,
    sigma_exp: Sequence[float] | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap of ΔRMSE = RMSE(B) − RMSE(A) over the same items (edges or ligands).

    Each bootstrap sample resamples the items with replacement (the same items for both methods, which is what
    makes the comparison paired) and, when the σ are given, adds normal noise with those σ to each calculated
    value and to the experimental value (one draw of the experiment shared by both methods), in the spirit of
    cinnabar's bootstrap. Two unpaired intervals that overlap say little; this interval says whether B is better.

    Examples
    --------
    >>> res = paired_comparison([1.0, 2.0, 3.5], [1.1, 2.0, 3.1], [1.0, 2.0, 3.0], n_bootstrap=200)
    >>> res.delta_rmse.value < 0
    True
    """
    a = np.asarray(predicted_a, dtype=float)
    b = np.asarray(predicted_b, dtype=float)
    e = np.asarray(experimental, dtype=float)
    if not (a.shape == b.shape == e.shape) or a.ndim != 1:
        raise InputError(f"paired comparison: {a.size}, {b.size} and {e.size} values; they must be the same items")
    if a.size < 2:
        raise InputError(f"paired comparison: need at least 2 shared items, got {a.size}")

    def sig(x: Sequence[float] | None) -> np.ndarray:
        if x is None:
            return np.zeros_like(a)
        arr = np.asarray([0.0 if v is None else float(v) for v in x], dtype=float)
        if arr.shape != a.shape:
            raise InputError(f"paired comparison: {arr.size} uncertainties for {a.size} items")
        return arr

    sa, sb, se = sig(sigma_a), sig(sigma_b), sig(sigma_exp)
    noise = bool(np.any(sa) or np.any(sb) or np.any(se))
    rng = np.random.default_rng(seed)
    d_rmse, d_mue = np.empty(n_bootstrap), np.empty(n_bootstrap)
    for i in range(n_bootstrap):
        idx = rng.integers(0, a.size, size=a.size)
        eb = e[idx] + rng.normal(0.0, 1.0, a.size) * se[idx]
        ab = a[idx] + rng.normal(0.0, 1.0, a.size) * sa[idx]
        bb = b[idx] + rng.normal(0.0, 1.0, a.size) * sb[idx]
        d_rmse[i] = rmse(bb, eb) - rmse(ab, eb)
        d_mue[i] = mue(bb, eb) - mue(ab, eb)

    def stat(value: float, samples: np.ndarray) -> Statistic:
        low, high = (float(x) for x in np.percentile(samples, [2.5, 97.5]))
        return Statistic(value=value, ci_low=low, ci_high=high)

    return PairedComparison(
        n=int(a.size),
        rmse_a=rmse(a, e),
        rmse_b=rmse(b, e),
        delta_rmse=stat(rmse(b, e) - rmse(a, e), d_rmse),
        delta_mue=stat(mue(b, e) - mue(a, e), d_mue),
        p_b_better=float(np.mean(d_rmse < 0)),
        n_bootstrap=n_bootstrap,
        seed=seed,
        noise=noise,
    )


class SigmaCalibration(FrozenModel):
    """How the reported σ compare with the spread of independent repeats of the same edges."""

    n_edges: int = Field(description="Edges with two or more repeats.")
    ratio: Statistic = Field(
        description="sqrt(mean over edges of s² / mean σ²): s the sample std of an edge's repeats, σ the errors they "
        "reported; 1 when the σ are honest (0.8-1.25 is the target), with a 95 % bootstrap interval over the edges."
    )
    n_bootstrap: int
    seed: int


def sigma_calibration(
    values: Sequence[Sequence[float]], sigmas: Sequence[Sequence[float]], *, n_bootstrap: int = 2000, seed: int = 0
) -> SigmaCalibration:
    """Calibration of reported σ against the spread of repeats (one sequence of repeat values and σ per edge).

    For an edge with n repeats x_i, each reporting σ_i, E[s²] = mean σ² when the σ are right; the ratio pools
    ``s² / mean σ²`` over the edges and takes the square root (a spread-to-σ ratio).

    Examples
    --------
    >>> round(sigma_calibration([[0.0, 2.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]).ratio.value, 3)
    1.0

    Raises
    ------
    InputError
        No edge with two or more repeats, or values and σ of different lengths.
    """
    terms = []
    for x, e in zip(values, sigmas, strict=True):
        x_arr, e_arr = np.asarray(x, dtype=float), np.asarray(e, dtype=float)
        if x_arr.shape != e_arr.shape:
            raise InputError(f"sigma calibration: {x_arr.size} repeat values with {e_arr.size} σ")
        if x_arr.size >= 2 and np.all(e_arr > 0):
            terms.append(float(np.var(x_arr, ddof=1) / np.mean(e_arr**2)))
    if not terms:
        raise InputError("sigma calibration: no edge has two or more repeats with a reported σ")
    t = np.asarray(terms)
    rng = np.random.default_rng(seed)
    boot = [math.sqrt(float(np.mean(t[rng.integers(0, t.size, t.size)]))) for _ in range(n_bootstrap)]
    low, high = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    return SigmaCalibration(
        n_edges=int(t.size),
        ratio=Statistic(value=math.sqrt(float(t.mean())), ci_low=low, ci_high=high),
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
