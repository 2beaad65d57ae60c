"""Adaptive sampling across a network (``fep run --target-sigma S``): compute goes to the edges that carry the
network's uncertainty, not evenly to every edge.

After every edge has run its first block (the protocol's production), the ligand ΔG of the network come from
the maximum-likelihood estimate (:func:`analysis.network.mle_estimate`, every connected group in its own gauge,
as the report does) with its covariance. The shortfall ``J = Σ_i max(0, σ_i² − S²)`` over the ligands says how
far the network is from the target. Extending edge *e* by a block of *b* iterations on top of its *n* shrinks
its variance to about ``σ_e² · n / (n + b)`` (σ² ∝ 1 / sampling once the samples decorrelate); each candidate
extension is scored by the drop in ``J`` it buys per replica-ns it costs (windows × legs × block), computed with
the real estimator, and the best-scoring edges (as many as there are workers) are extended by one block. This
repeats until every ligand's σ is at most S, no extension lowers J, or the ``--max-ns`` budget would be
exceeded. Every round is written atomically to ``RUN_DIR/adaptive.json`` (what was extended, σ before, the
replica-ns spent per edge), which ``fep status`` and the report read.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlfep_core import atomic_write_text
from mlfep_core.io import read_json_object

__all__ = [
    "ADAPTIVE_FILE",
    "block_replica_ns",
    "choose_extensions",
    "edge_replica_ns",
    "ligand_sigmas",
    "read_adaptive",
    "record_round",
]

ADAPTIVE_FILE = "adaptive.json"


def _edges(results) -> list[tuple[str, str, float, float]]:
    out = []
    for r in results:
        if r.status != "done":
            continue
        value, sigma, _ = r.ddg_best
        out.append((r.ligand_a, r.ligand_b, float(value), float(sigma)))
    return out


def ligand_sigmas(results, sigma_override: dict[str, float] | None = None) -> dict[str, float]:
    """σ of each ligand's network ΔG (kcal/mol) from the finished edges; ``sigma_override`` replaces the σ of
    some edges (by key) — what an extension would bring."""
    from analysis.network import mle_estimate

    edges = _edges(results)
    if sigma_override:
        edges = [(a, b, v, sigma_override.get(f"{a}~{b}", s)) for a, b, v, s in edges]
    if not edges:
        return {}
    estimate = mle_estimate(edges, all_components=True)
    return dict(zip(estimate.ligands, (float(s) for s in estimate.dg_err), strict=True))


def _shortfall(sigmas: dict[str, float], target: float) -> float:
    return float(sum(max(0.0, s * s - target * target) for s in sigmas.values()))


def _iterations(result) -> int:
    """Production iterations of an edge (the fewest over its legs)."""
    counts = [leg.n_iterations for leg in result.legs.values()]
    return min(counts) if counts else 0


def edge_replica_ns(result, ns_per_iteration: float, repeats: int = 1) -> float:
    """Production replica-ns an edge has taken: Σ over legs of states × iterations × ns per iteration × repeats."""
    return float(sum(leg.n_states * leg.n_iterations for leg in result.legs.values()) * ns_per_iteration * repeats)


def block_replica_ns(result, block_iterations: int, ns_per_iteration: float, repeats: int = 1) -> float:
    """Production replica-ns one more block of ``block_iterations`` on every leg of an edge costs."""
    return float(sum(leg.n_states for leg in result.legs.values()) * block_iterations * ns_per_iteration * repeats)


def choose_extensions(
    results, target: float, block_iterations: int, ns_per_iteration: float, n_pick: int, repeats: int = 1
) -> tuple[list[str], dict[str, Any]]:
    """The edges to extend by one block now (best drop in shortfall per replica-ns first), and why.

    Returns the edge keys (empty when every ligand is at the target or nothing helps) and a record: the ligand
    σ, the shortfall and, per candidate edge, its score (kcal²/mol² per replica-ns).
    """
    sigmas = ligand_sigmas(results)
    base = _shortfall(sigmas, target)
    scores: dict[str, float] = {}
    if base > 0.0:
        for r in results:
            if r.status != "done" or not r.legs:
                continue
            n = _iterations(r)
            _, sigma, _ = r.ddg_best
            if n <= 0 or not math.isfinite(sigma):
                continue
            shrunk = sigma * math.sqrt(n / (n + block_iterations))
            gain = base - _shortfall(ligand_sigmas(results, {r.key: shrunk}), target)
            cost = block_replica_ns(r, block_iterations, ns_per_iteration, repeats)
            if gain > 1e-12 and cost > 0:
                scores[r.key] = gain / cost
    ranked = sorted(scores, key=lambda k: scores[k], reverse=True)
    chosen = ranked[: max(1, n_pick)] if ranked else []
    record = {
        "ligand_sigma_kcal_mol": sigmas,
        "max_sigma_kcal_mol": max(sigmas.values()) if sigmas else None,
        "shortfall_kcal2_mol2": base,
        "scores": {k: scores[k] for k in ranked},
        "extended": chosen,
    }
    return chosen, record


def read_adaptive(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``RUN_DIR/adaptive.json`` (None when the run is not adaptive)."""
    return read_json_object(Path(run_dir) / ADAPTIVE_FILE)


def record_round(
    run_dir: str | os.PathLike[str],
    settings: dict[str, Any],
    round_record: dict[str, Any] | None,
    results: Sequence,
    ns_per_iteration: float,
    repeats: int,
    stop_reason: str | None = None,
) -> dict[str, Any]:
    """Append a round (or only the state) to ``adaptive.json``, atomically; returns the whole record."""
    data = read_adaptive(run_dir) or {"settings": settings, "rounds": []}
    data["settings"] = settings
    if round_record is not None:
        data["rounds"].append({**round_record, "time": time.time()})
    spent = {r.key: edge_replica_ns(r, ns_per_iteration, repeats) for r in results if r.status == "done"}
    data["replica_ns_per_edge"] = spent
    data["replica_ns_total"] = float(sum(spent.values()))
    sigmas = ligand_sigmas(results)
    data["ligand_sigma_kcal_mol"] = sigmas
    data["max_sigma_kcal_mol"] = max(sigmas.values()) if sigmas else None
    data["stop_reason"] = stop_reason
    atomic_write_text(Path(run_dir) / ADAPTIVE_FILE, json.dumps(data, indent=1) + "\n")
    return data
