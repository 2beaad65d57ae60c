"""Edge combination: sign conventions, the ML correction formula, repeats, JSON round trip."""

from __future__ import annotations

import math

import pytest

from analysis.results import EdgeResult, EndpointCorrection, LegResult, Verdict, combine_edge, worst_status
from mlfep_core import InputError


def leg(name: str, dg: float, err: float = 0.1, verdicts: tuple[Verdict, ...] = ()) -> LegResult:
    return LegResult(
        leg=name,
        dg_kcal_mol=dg,
        dg_err_kcal_mol=err,
        n_states=2,
        n_iterations=100,
        n_equilibration=0,
        statistical_inefficiency=1.0,
        n_effective=100.0,
        overlap_matrix=[[0.6, 0.4], [0.4, 0.6]],
        verdicts=verdicts,
        temperature_k=298.15,
    )


def corr(leg_name: str, state: str, dg: float | None, status: str = "pass", err: float = 0.05) -> EndpointCorrection:
    return EndpointCorrection(
        leg=leg_name,
        state=state,
        ligand="lig_" + state.lower(),
        dg_kcal_mol=dg,
        dg_err_kcal_mol=None if dg is None else err,
        status=status,
        reason="" if status == "pass" else "element Br not supported",
    )


def test_binding_is_complex_minus_solvent():
    edge = combine_edge(
        "a", "b", "binding", {"complex": leg("complex", -3.0, 0.3), "solvent": leg("solvent", -1.0, 0.4)}
    )
    assert edge.ddg_mm_kcal_mol == pytest.approx(-2.0)
    assert edge.ddg_mm_err_kcal_mol == pytest.approx(0.5)
    assert edge.ddg_ml_kcal_mol is None and "no endpoint corrections" in edge.ml_reason
    assert edge.key == "a~b" and edge.status == "done" and edge.repeats == 1


def test_hydration_is_solvent_minus_vacuum():
    edge = combine_edge("a", "b", "hydration", {"solvent": leg("solvent", 2.5), "vacuum": leg("vacuum", 4.0)})
    assert edge.ddg_mm_kcal_mol == pytest.approx(-1.5)


def test_missing_leg_is_an_input_error():
    with pytest.raises(InputError, match="vacuum"):
        combine_edge("a", "b", "hydration", {"solvent": leg("solvent", 1.0)})


def test_ml_correction_formula_binding():
    legs = {"complex": leg("complex", -3.0), "solvent": leg("solvent", -1.0)}
    corrections = [
        corr("complex", "A", 0.1),
        corr("complex", "B", 0.4),
        corr("solvent", "A", 0.2),
        corr("solvent", "B", 0.3),
    ]
    edge = combine_edge("a", "b", "binding", legs, corrections)
    # ΔΔG_ML = ΔΔG_MM + (0.4 − 0.1)_complex − (0.3 − 0.2)_solvent = −2 + 0.3 − 0.1
    assert edge.ddg_ml_kcal_mol == pytest.approx(-1.8)
    assert edge.ddg_ml_err_kcal_mol == pytest.approx(math.sqrt(2 * 0.1**2 + 4 * 0.05**2))
    assert edge.ml_reason == ""
    assert edge.ddg_best == (edge.ddg_ml_kcal_mol, edge.ddg_ml_err_kcal_mol, "ml")


def test_ml_correction_formula_hydration():
    legs = {"solvent": leg("solvent", 1.0), "vacuum": leg("vacuum", 0.5)}
    corrections = [
        corr("solvent", "A", -1.0),
        corr("solvent", "B", 1.0),
        corr("vacuum", "A", 0.5),
        corr("vacuum", "B", 0.0),
    ]
    edge = combine_edge("a", "b", "hydration", legs, corrections)
    # 0.5 + (1 − (−1)) − (0 − 0.5) = 3.0
    assert edge.ddg_ml_kcal_mol == pytest.approx(3.0)


@pytest.mark.parametrize("bad", ["skipped", "fail", "missing"])
def test_no_ml_value_when_a_correction_is_not_usable(bad):
    legs = {"complex": leg("complex", -3.0), "solvent": leg("solvent", -1.0)}
    corrections = [corr("complex", "A", 0.1), corr("complex", "B", 0.4), corr("solvent", "A", 0.2)]
    if bad != "missing":
        corrections.append(corr("solvent", "B", None, status=bad))
    edge = combine_edge("a", "b", "binding", legs, corrections)
    assert edge.ddg_ml_kcal_mol is None and edge.ddg_ml_err_kcal_mol is None
    assert "solvent/B" in edge.ml_reason
    assert edge.ddg_best[2] == "mm"
    assert any(v.name == "ml_correction" and v.status == "warn" for v in edge.verdicts)


def test_repeats_mean_and_error():
    legs = {"solvent": leg("solvent", 0.0), "vacuum": leg("vacuum", 0.0)}
    reps = [
        EdgeResult(ligand_a="a", ligand_b="b", mode="hydration", ddg_mm_kcal_mol=v, ddg_mm_err_kcal_mol=0.1)
        for v in (1.0, 2.0, 3.0)
    ]
    edge = combine_edge("a", "b", "hydration", legs, repeats=reps)
    assert edge.repeats == 3
    assert edge.ddg_mm_kcal_mol == pytest.approx(2.0)
    assert edge.repeat_spread_kcal_mol == pytest.approx(1.0)
    # σ = max(sqrt(3·0.01)/3, 1/sqrt(3)): the spread dominates here
    assert edge.ddg_mm_err_kcal_mol == pytest.approx(1 / math.sqrt(3))
    assert any(v.name == "repeats" and v.status == "warn" for v in edge.verdicts)
    tight = [r.model_copy(update={"ddg_mm_kcal_mol": 2.0}) for r in reps]
    edge2 = combine_edge("a", "b", "hydration", legs, repeats=tight)
    assert edge2.ddg_mm_err_kcal_mol == pytest.approx(math.sqrt(3 * 0.01) / 3)
    with pytest.raises(InputError, match="repeat"):
        combine_edge("a", "c", "hydration", legs, repeats=reps)


def test_leg_verdicts_propagate_and_json_round_trip(tmp_path):
    warn = Verdict(name="overlap", status="warn", message="smallest neighbour overlap 0.01")
    legs = {"complex": leg("complex", -3.0, verdicts=(warn,)), "solvent": leg("solvent", -1.0)}
    edge = combine_edge("a", "b", "binding", legs)
    assert worst_status(edge.verdicts) == "warn"
    assert {v.name: v.status for v in edge.verdicts}["leg:solvent"] == "pass"
    path = edge.to_json_file(tmp_path / "edge_result.json")
    assert EdgeResult.from_json_file(path) == edge
    failed = EdgeResult.failed("a", "b", "binding", "NaN in complex leg")
    assert failed.status == "failed" and worst_status(failed.verdicts) == "fail"
