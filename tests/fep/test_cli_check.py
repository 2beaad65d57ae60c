"""``fep check``: end-state energy check from the command line."""

from __future__ import annotations

import json

import pytest

from fep.cli import main

pytest.importorskip("openmm")


def test_check_benzene_phenol_vacuum_json(bench, charge_cache, monkeypatch, capsys):
    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    ligands = bench / "freesolv" / "rhfe_benzenes_ligands.csv"
    code = main(["check", "--ligands", str(ligands), "--edge", "benzene,phenol", "--leg", "vacuum", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert result["passed"] is True
    assert result["edge"] == "benzene~phenol" and result["leg"] == "vacuum"
    for label in ("A", "B"):
        assert abs(result["states"][label]["difference"]["total"]) < 0.01
    assert result["unique_a"] == 1 and result["unique_b"] == 2  # benzene H <-> phenol O-H


def test_check_rejects_bad_edge(bench, capsys):
    ligands = bench / "freesolv" / "rhfe_benzenes_ligands.csv"
    assert main(["check", "--ligands", str(ligands), "--edge", "benzene", "--leg", "vacuum"]) == 2
    assert "--edge" in capsys.readouterr().err


def test_check_unknown_ligand(bench, capsys):
    ligands = bench / "freesolv" / "rhfe_benzenes_ligands.csv"
    code = main(["check", "--ligands", str(ligands), "--edge", "benzene,xylene", "--leg", "vacuum"])
    assert code == 2
    assert "xylene" in capsys.readouterr().err


def test_check_complex_needs_protein(bench, capsys):
    ligands = bench / "freesolv" / "rhfe_benzenes_ligands.csv"
    assert main(["check", "--ligands", str(ligands), "--edge", "benzene,phenol", "--leg", "complex"]) == 2
    assert "--protein" in capsys.readouterr().err


def test_check_with_refitted_torsions_is_exact(bench, charge_cache, tmp_path, monkeypatch, capsys):
    """benzene~anisole in vacuum with anisole's C(ar)-O torsion refitted to ANI-2x: end states still exact."""
    pytest.importorskip("torchani")
    monkeypatch.setenv("MLFEP_CACHE_DIR", str(tmp_path))
    ligands = bench / "freesolv" / "rhfe_benzenes_ligands.csv"
    args = ["check", "--ligands", str(ligands), "--edge", "benzene,anisole", "--leg", "vacuum"]
    code = main([*args, "--charge-method", "gasteiger", "--ligand-ff", "ani2x-torsions", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["passed"] is True
    assert len(list((tmp_path / "torsions").glob("*.json"))) == 2  # benzene (no rotatable bond) and anisole
