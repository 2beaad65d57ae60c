"""Binding mode for real: a tyk2 edge, complex and solvent legs, smoke protocol, through the CLI (slow: ~10-20 min
on 2 CPU cores)."""

from __future__ import annotations

import json
import math

import pytest

from fep.cli import main


@pytest.mark.slow
def test_tyk2_binding_smoke_edge_completes_both_legs(bench, tmp_path, charge_cache, monkeypatch):
    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    run_dir = tmp_path / "r3"
    code = main(
        [
            "run",
            "--edge",
            "lig_ejm_31,lig_ejm_42",
            "--ligands",
            str(bench / "tyk2" / "ligands.sdf"),
            "--protein",
            str(bench / "tyk2" / "protein.pdb"),
            "--mode",
            "binding",
            "--protocol",
            "smoke",
            "-o",
            str(run_dir),
        ]
    )
    assert code == 0
    edge = run_dir / "edges" / "lig_ejm_31~lig_ejm_42"
    result = json.loads((edge / "edge_result.json").read_text())
    assert result["status"] == "done"
    assert set(result["legs"]) == {"complex", "solvent"}
    for leg in ("complex", "solvent"):
        leg_result = json.loads((edge / "repeat_0" / leg / "leg_result.json").read_text())
        assert leg_result["n_iterations"] == 20 and leg_result["n_states"] == 5
    assert math.isfinite(result["ddg_mm_kcal_mol"])
    assert result["ddg_mm_kcal_mol"] == pytest.approx(
        result["legs"]["complex"]["dg_kcal_mol"] - result["legs"]["solvent"]["dg_kcal_mol"]
    )


@pytest.mark.slow
def test_thrombin_charge_changing_edge_completes_both_legs(bench, tmp_path, charge_cache, monkeypatch):
    """lig_4 (+2) -> lig_5 (+1): both legs with the co-ion (Na+ in B), the smoke tier's extra windows."""
    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    run_dir = tmp_path / "thrombin"
    args = ["run", "--edge", "lig_4,lig_5", "--ligands", str(bench / "thrombin" / "ligands.sdf"), "--protein"]
    args += [str(bench / "thrombin" / "protein.pdb"), "--mode", "binding", "--protocol", "smoke"]
    assert main([*args, "--charge-method", "nagl", "-o", str(run_dir)]) == 0
    edge = run_dir / "edges" / "lig_4~lig_5"
    result = json.loads((edge / "edge_result.json").read_text())
    assert result["status"] == "done" and result["charge_change"] == -1
    for leg in ("complex", "solvent"):
        info = json.loads((edge / "repeat_0" / leg / "hybrid" / "leg.json").read_text())
        assert info["coion"] == "Na+" and len(info["coion_atoms"]) == 3
        leg_result = json.loads((edge / "repeat_0" / leg / "leg_result.json").read_text())
        assert leg_result["n_states"] == 7 and leg_result["n_iterations"] == 20  # 5 + 2 windows for a charge change
    assert math.isfinite(result["ddg_mm_kcal_mol"])
