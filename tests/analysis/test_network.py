"""Network estimates: cycle closure, maximum-likelihood node ΔG and covariance, analyse_network."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.network import analyse_network, cycle_closures, mle_estimate
from analysis.results import EdgeResult
from mlfep_core import InputError

TRUE = {"a": 0.0, "b": 1.3, "c": -0.7, "d": 2.1, "e": 0.4, "f": -1.8, "g": 0.9, "h": 1.6}
PAIRS = [
    ("a", "b"),
    ("b", "c"),
    ("c", "d"),
    ("d", "e"),
    ("e", "f"),
    ("f", "g"),
    ("g", "h"),
    ("h", "a"),
    ("a", "c"),
    ("b", "e"),
    ("d", "g"),
    ("f", "a"),
    ("c", "h"),
]


def consistent_edges(sigma: float = 0.2) -> list[tuple[str, str, float, float]]:
    return [(a, b, TRUE[b] - TRUE[a], sigma) for a, b in PAIRS]


def test_cycle_closure_of_consistent_network_is_zero():
    closures = cycle_closures(consistent_edges())
    assert len(closures) == len(PAIRS) - len(TRUE) + 1  # independent cycles = E − V + 1
    for cycle, value, sigma in closures:
        assert abs(value) < 1e-12
        assert sigma == pytest.approx(0.2 * np.sqrt(len(cycle)))


def test_cycle_closure_finds_an_inconsistent_edge():
    edges = [("a", "b", 1.0, 0.1), ("b", "c", 1.0, 0.1), ("c", "a", -1.5, 0.1)]  # should be −2
    [(cycle, value, _)] = cycle_closures(edges)
    assert set(cycle) == {"a", "b", "c"}
    assert abs(value) == pytest.approx(0.5)
    # reversing an edge (and its sign) describes the same network
    [(_, value2, _)] = cycle_closures([("a", "b", 1.0, 0.1), ("b", "c", 1.0, 0.1), ("a", "c", 1.5, 0.1)])
    assert abs(value2) == pytest.approx(0.5)


def test_mle_recovers_node_values_within_error():
    rng = np.random.default_rng(42)
    sigmas = rng.uniform(0.1, 0.5, size=len(PAIRS))
    edges = [(a, b, TRUE[b] - TRUE[a] + rng.normal(0, s), s) for (a, b), s in zip(PAIRS, sigmas, strict=True)]
    est = mle_estimate(edges, reference="a")
    assert est.reference == "a"
    assert est.dg[0] == 0.0 and est.covariance[0, 0] == pytest.approx(0.0, abs=1e-12)
    for i, name in enumerate(est.ligands[1:], start=1):
        z = (est.dg[i] - TRUE[name]) / est.dg_err[i]
        assert abs(z) < 3, (name, z)
    # every node has a smaller error than the direct edge from the reference would give alone
    assert est.dg_err[1] < sigmas[0]


def test_mle_covariance_matches_analytic_on_a_triangle():
    s1, s2, s3 = 0.2, 0.3, 0.5
    est = mle_estimate([("a", "b", 1.0, s1), ("b", "c", 1.0, s2), ("a", "c", 2.0, s3)], reference="a")
    w1, w2, w3 = 1 / s1**2, 1 / s2**2, 1 / s3**2
    fisher_bc = np.array([[w1 + w2, -w2], [-w2, w2 + w3]])  # Fisher matrix with a fixed
    expected = np.linalg.inv(fisher_bc)
    assert np.allclose(est.covariance[1:, 1:], expected, rtol=1e-10)
    assert np.allclose(est.covariance[0], 0.0, atol=1e-12)
    assert np.allclose(est.dg, [0.0, 1.0, 2.0])
    # two nodes, one edge: the variance is σ²
    two = mle_estimate([("a", "b", 0.5, 0.3)])
    assert two.covariance[1, 1] == pytest.approx(0.09)


def test_mle_offsets_to_experimental_mean():
    exp = {name: value - 9.0 for name, value in TRUE.items() if name in ("a", "b", "c")}
    est = mle_estimate(consistent_edges(), experimental=exp)
    assert est.reference == "experimental mean"
    dg = dict(zip(est.ligands, est.dg, strict=True))
    for name, value in TRUE.items():
        assert dg[name] == pytest.approx(value - 9.0, abs=1e-9)
    # the mean over the experimental ligands is exact: its variance vanishes
    w = np.array([1.0 if n in exp else 0.0 for n in est.ligands]) / 3
    assert w @ est.covariance @ w == pytest.approx(0.0, abs=1e-12)


def test_mle_reports_disconnected_ligands_and_rejects_bad_input():
    est = mle_estimate([("a", "b", 1.0, 0.1), ("c", "d", 1.0, 0.1)], ligands=["a", "b", "c", "d", "x"])
    assert est.ligands == ("a", "b")
    assert est.disconnected == ("c", "d", "x")
    with pytest.raises(InputError, match="reference"):
        mle_estimate([("a", "b", 1.0, 0.1)], reference="zz")
    with pytest.raises(InputError, match="finite"):
        mle_estimate([("a", "b", float("nan"), 0.1)])
    with pytest.raises(InputError, match="no edges"):
        mle_estimate([])


def _edge(a: str, b: str, mm: float, ml: float | None = None, status: str = "done") -> EdgeResult:
    if status == "failed":
        return EdgeResult.failed(a, b, "binding", "sampler crashed")
    return EdgeResult(
        ligand_a=a,
        ligand_b=b,
        mode="binding",
        ddg_mm_kcal_mol=mm,
        ddg_mm_err_kcal_mol=0.2,
        ddg_ml_kcal_mol=ml,
        ddg_ml_err_kcal_mol=None if ml is None else 0.25,
    )


def test_analyse_network_end_to_end():
    edges = [_edge(a, b, TRUE[b] - TRUE[a], TRUE[b] - TRUE[a] + 0.1) for a, b in PAIRS]
    edges.append(_edge("a", "h", 0.0, status="failed"))
    exp = {name: value - 10.0 for name, value in TRUE.items()}
    res = analyse_network(edges, experimental=exp, n_bootstrap=200)
    assert res.reference == "experimental mean"
    assert res.excluded_edges == ("a~h",)
    for name, value in TRUE.items():
        assert res.dg_mm_kcal_mol[name] == pytest.approx(value - 10.0, abs=1e-9)
    assert res.ranking[0] == "f" and res.ranking[-1] == "d"
    assert all(abs(c.closure_kcal_mol) < 1e-12 for c in res.cycle_closures if c.estimate == "mm")
    stats = {(s.kind, s.estimate): s for s in res.statistics}
    assert set(stats) == {("edges", "mm"), ("edges", "ml"), ("nodes", "mm"), ("nodes", "ml")}
    assert stats[("edges", "mm")].metrics["rmse"].value == pytest.approx(0.0, abs=1e-9)
    assert stats[("edges", "ml")].metrics["rmse"].value == pytest.approx(0.1, abs=1e-9)
    assert stats[("nodes", "mm")].metrics["pearson_r"].value == pytest.approx(1.0)
    assert res.dg_ml_kcal_mol is not None and res.ml_reason == ""
    assert type(res).model_validate_json(res.model_dump_json()) == res


def test_analyse_network_without_experiment_uses_reference_and_partial_ml():
    edges = [_edge("a", "b", 1.0, 1.2), _edge("b", "c", 1.0), _edge("a", "c", 2.0, 2.1)]
    res = analyse_network(edges)
    assert res.reference == "a" and res.statistics == ()
    assert res.dg_mm_kcal_mol["a"] == 0.0
    assert "b~c" in res.ml_reason
    assert any(v.name == "ml_coverage" and v.status == "warn" for v in res.verdicts)
    with pytest.raises(InputError, match="no edge"):
        analyse_network([_edge("a", "b", 0.0, status="failed")])


def test_a_hydration_series_of_two_scaffolds_is_estimated_per_group():
    """Two groups that share no core: each is estimated in its own gauge (its experimental mean), together in one
    result with a block-diagonal covariance; nothing is left out."""
    from analysis.network import mle_estimate

    edges = [("a", "b", 1.0, 0.1), ("b", "c", 1.0, 0.1), ("x", "y", -2.0, 0.2)]
    exp = {"a": -1.0, "b": 0.0, "c": 1.0, "x": 5.0, "y": 3.0}
    est = mle_estimate(edges, experimental=exp, all_components=True)
    assert est.ligands == ("a", "b", "c", "x", "y") and est.disconnected == ()
    assert est.reference == "experimental mean (per group of ligands)"
    np.testing.assert_allclose(est.dg, [-1.0, 0.0, 1.0, 5.0, 3.0], atol=1e-9)
    assert np.all(est.covariance[:3, 3:] == 0.0)
    single = mle_estimate(edges, experimental=exp)  # binding mode: the best-anchored group only
    assert single.ligands == ("a", "b", "c") and single.disconnected == ("x", "y")
