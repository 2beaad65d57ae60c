"""Adaptive sampling across a network (fep run --target-sigma): which edges get the next block, and a run that
spends its budget on the edges that carry the ligands' uncertainty."""

from __future__ import annotations

import json

import pytest

from analysis.results import EdgeResult, LegResult
from fep.execution.adaptive import choose_extensions, edge_replica_ns, ligand_sigmas


def _leg(name: str, err: float, n_iterations: int = 100, n_states: int = 5) -> LegResult:
    return LegResult(
        leg=name, dg_kcal_mol=0.0, dg_err_kcal_mol=err, n_states=n_states, n_iterations=n_iterations,
        n_equilibration=0, statistical_inefficiency=1.0, n_effective=float(n_iterations),
        overlap_matrix=[[1.0]], temperature_k=298.15,
    )  # fmt: skip


def _edge(a: str, b: str, sigma: float, n_iterations: int = 100, status: str = "done") -> EdgeResult:
    return EdgeResult(
        ligand_a=a, ligand_b=b, mode="hydration", ddg_mm_kcal_mol=0.5, ddg_mm_err_kcal_mol=sigma, status=status,
        legs={"solvent": _leg("solvent", sigma, n_iterations), "vacuum": _leg("vacuum", 0.01, n_iterations)},
    )  # fmt: skip


def test_the_noisy_edge_on_the_path_of_most_ligands_is_extended_first():
    """a–b is noisy and every other ligand hangs behind it (reference a): extending it buys the most; an edge
    already precise is never the first choice; a failed edge is no candidate."""
    results = [
        _edge("a", "b", 0.6),
        _edge("b", "c", 0.1),
        _edge("c", "d", 0.3),
        _edge("a", "e", 0.2, status="failed"),
    ]
    sigmas = ligand_sigmas(results)
    assert set(sigmas) == {"a", "b", "c", "d"} and sigmas["a"] == 0.0
    assert sigmas["d"] == pytest.approx((0.6**2 + 0.1**2 + 0.3**2) ** 0.5)
    chosen, record = choose_extensions(results, target=0.3, block_iterations=100, ns_per_iteration=0.001, n_pick=1)
    assert chosen == ["a~b"]
    assert next(iter(record["scores"])) == "a~b" and "a~e" not in record["scores"]
    assert record["scores"]["a~b"] > record["scores"]["c~d"] > record["scores"].get("b~c", 0.0)
    two, _ = choose_extensions(results, target=0.3, block_iterations=100, ns_per_iteration=0.001, n_pick=2)
    assert two == ["a~b", "c~d"]
    # every ligand at the target: nothing to extend
    done, record = choose_extensions(results, target=1.0, block_iterations=100, ns_per_iteration=0.001, n_pick=1)
    assert done == [] and record["shortfall_kcal2_mol2"] == 0.0
    # production spent: states × iterations over the legs
    assert edge_replica_ns(results[0], 0.001) == pytest.approx((5 * 100 + 5 * 100) * 0.001)


@pytest.mark.slow
def test_target_sigma_run_extends_within_its_budget_and_says_where_the_time_went(tmp_path, capsys, charge_cache):
    from fep.cli import main
    from tests.tiny import TINY_PROTOCOL

    ligands = tmp_path / "ligands.csv"
    ligands.write_text("name,smiles\nbenzene,c1ccccc1\ntoluene,Cc1ccccc1\nphenol,Oc1ccccc1\n")
    protocol = tmp_path / "tiny.json"
    protocol.write_text(json.dumps(TINY_PROTOCOL))
    per_iteration = 50 * 4e-6  # ns
    first = 3 * 6 * per_iteration * 2  # per edge: 3 states x 6 iterations, two legs
    block = 3 * 3 * per_iteration * 2  # a block: half the production
    run_dir = tmp_path / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    try:
        args = ["run", "--ligands", str(ligands), "--mode", "hydration", "--protocol", str(protocol), "-o"]
        code = main([*args, str(run_dir), "--workers", "1", "--target-sigma", "0.001",
                     "--max-ns", f"{2 * first + 2 * block + 1e-4:.6f}"])  # fmt: skip
    finally:
        mp.undo()
    assert code == 0, capsys.readouterr()
    data = json.loads((run_dir / "adaptive.json").read_text())
    assert len(data["rounds"]) == 2 and "--max-ns" in data["stop_reason"]
    assert data["replica_ns_total"] == pytest.approx(2 * first + 2 * block)
    extended = [key for r in data["rounds"] for key in r["extended"]]
    for key in set(extended):
        leg = json.loads((run_dir / "edges" / key / "repeat_0" / "solvent" / "leg_result.json").read_text())
        assert leg["n_iterations"] == 6 + 3 * extended.count(key)
    capsys.readouterr()
    assert main(["status", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["adaptive"]["rounds"] == data["rounds"]
    from rich.console import Console

    from fep.cli.status import _print_adaptive

    console = Console(record=True, width=200)
    _print_adaptive(console, data)
    said = console.export_text()
    assert "adaptive (--target-sigma 0.001): 2 round(s)" in said
    for key in set(extended):
        assert f"{key}: " in said and f"extended {extended.count(key)} time(s)" in said
    assert "Sampling per edge" in (run_dir / "report" / "report.html").read_text()
