"""Protein loading, residue-template checks before solvation, and repair with pdbfixer (tyk2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fep.systems.endstates import SystemSettings, build_end_states
from fep.systems.protein import check_protein, fix_protein, load_protein
from mlfep_core import InputError, ParametrizationError

pytest.importorskip("openmm")


def _edited(bench, out: Path, drop=None, rename=None) -> Path:
    """tyk2 protein.pdb with some ATOM/HETATM records dropped or a residue renamed, written to ``out``."""
    lines = []
    for line in (bench / "tyk2" / "protein.pdb").read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")):
            if drop and drop(line):
                continue
            if rename and rename[0](line):
                line = line[:17] + rename[1] + line[20:]
        lines.append(line)
    out.write_text("\n".join(lines) + "\n")
    return out


def _is(name: str, number: int, atoms: tuple[str, ...] | None = None):
    def test(line: str) -> bool:
        hit = line[17:20] == name and line[22:26].strip() == str(number)
        return hit and (atoms is None or line[12:16].strip() in atoms)

    return test


def test_load_tyk2_protein(bench):
    protein = load_protein(bench / "tyk2" / "protein.pdb")
    assert protein.topology.getNumAtoms() == 4652 and protein.positions.shape == (4652, 3)
    assert protein.net_charge == -2 and protein.n_waters_dropped == 2 and protein.n_crystal_waters == 0
    kept = load_protein(bench / "tyk2" / "protein.pdb", SystemSettings(keep_crystal_waters=True))
    assert kept.n_crystal_waters == 2 and kept.topology.getNumAtoms() == 4658 and kept.net_charge == -2
    # HIS tautomers come from the hydrogens present: HD1 only -> HID, HE2 only -> HIE, both -> HIP
    from fep.systems.endstates import make_forcefield

    templates = make_forcefield(SystemSettings()).getMatchingTemplates(protein.topology)
    seen = set()
    for residue, template in zip(protein.topology.residues(), templates, strict=True):
        if residue.name == "HIS":
            names = {a.name for a in residue.atoms()}
            expected = {(True, False): "HID", (False, True): "HIE", (True, True): "HIP"}[
                ("HD1" in names, "HE2" in names)
            ]
            assert template.name.endswith(expected)
            seen.add(expected)
    assert seen  # tyk2 has histidines


def test_nonstandard_residue_is_named(bench, tmp_path):
    pdb = _edited(bench, tmp_path / "tpo.pdb", rename=(_is("THR", 923), "TPO"))
    with pytest.raises(ParametrizationError, match=r"chain A residue TPO 923 has no force-field template") as info:
        load_protein(pdb)
    assert "--extra-forcefield FILE.xml" in str(info.value)


def test_missing_side_chain_atom_then_fix(bench, tmp_path, capsys):
    pdb = _edited(bench, tmp_path / "lys.pdb", drop=_is("LYS", 1077, ("NZ", "HZ1", "HZ2", "HZ3")))
    with pytest.raises(ParametrizationError, match=r"chain A residue LYS 1077 .*missing heavy atoms: NZ") as info:
        load_protein(pdb)
    assert "--fix-protein" in str(info.value)
    # repair through the CLI (fep protein --fix-protein), which calls fix_protein
    import json

    from fep.cli import main

    assert main(["protein", str(pdb), "--fix-protein", str(tmp_path / "fixed.pdb"), "--json"]) == 0
    repair = json.loads(capsys.readouterr().out)["repair"]
    assert repair["added_atoms"] == ["A LYS 1077 NZ"] and repair["added_hydrogens"] == 3
    assert repair["added_residues"] == [] and repair["skipped_gaps"] == []
    fixed = load_protein(tmp_path / "fixed.pdb")
    assert fixed.topology.getNumAtoms() == 4652 and fixed.net_charge == -2
    lys = next(r for r in fixed.topology.residues() if r.name == "LYS" and r.id == "1077")
    assert {"NZ", "HZ1", "HZ2", "HZ3"} <= {a.name for a in lys.atoms()}


def test_missing_residue_is_a_chain_break(bench, tmp_path):
    pdb = _edited(bench, tmp_path / "gap.pdb", drop=_is("GLY", 904))
    with pytest.raises(ParametrizationError, match=r"chain A is broken between LEU 903 and GLU 905"):
        load_protein(pdb)


def test_protein_error_comes_before_solvation(bench, tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from ligand_prep.charges import assign_charges
    from ligand_prep.models import AtomMapping, Ligand

    def prepared(name, smiles):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        ligand = Ligand(name=name, molblock=Chem.MolToMolBlock(mol), smiles=smiles, formal_charge=0)
        return assign_charges(ligand, method="gasteiger", cache_dir=tmp_path)

    pdb = _edited(bench, tmp_path / "tpo.pdb", rename=(_is("THR", 923), "TPO"))
    a, b = prepared("benzene", "c1ccccc1"), prepared("toluene", "Cc1ccccc1")
    mapping = AtomMapping(ligand_a="benzene", ligand_b="toluene", mapping={0: 1, 1: 2}, score=0.5)
    stages: list[str] = []
    with pytest.raises(ParametrizationError, match="TPO 923"):
        build_end_states(a, b, mapping, "complex", protein_pdb=pdb, progress=stages.append)
    assert "solvating" not in stages


def test_extra_forcefield_file_is_used(bench, tmp_path):
    with pytest.raises(InputError, match="cannot load force-field files"):
        load_protein(bench / "tyk2" / "protein.pdb", SystemSettings(extra_forcefield_files=(str(tmp_path / "no.xml"),)))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_protein(tmp_path / "absent.pdb")
    with pytest.raises(InputError, match="file not found"):
        fix_protein(tmp_path / "absent.pdb", tmp_path / "out.pdb")


def test_check_protein_returns_charge(bench):
    import openmm.app as app

    from fep.systems.endstates import make_forcefield
    from fep.systems.solvation import positions_nm

    pdb = app.PDBFile(str(bench / "tyk2" / "protein.pdb"))
    assert check_protein(pdb.topology, positions_nm(pdb.positions), make_forcefield(SystemSettings())) == -2


def test_cli_protein_check(bench, tmp_path, capsys):
    import json

    from fep.cli import main

    assert main(["protein", str(bench / "tyk2" / "protein.pdb"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_atoms"] == 4652 and out["net_charge"] == -2 and out["crystal_waters_dropped"] == 2

    tpo = _edited(bench, tmp_path / "tpo.pdb", rename=(_is("THR", 923), "TPO"))
    assert main(["protein", str(tpo)]) == 2
    assert "TPO 923" in capsys.readouterr().err


@pytest.mark.slow
def test_fix_protein_builds_a_short_internal_loop(bench, tmp_path):
    pdb = _edited(bench, tmp_path / "gap.pdb", drop=_is("GLY", 904))
    repair = fix_protein(pdb, tmp_path / "fixed.pdb")
    assert len(repair.added_residues) == 1 and "GLY" in repair.added_residues[0] and repair.skipped_gaps == ()
    fixed = load_protein(tmp_path / "fixed.pdb")
    assert fixed.topology.getNumAtoms() == 4652 and fixed.net_charge == -2


@pytest.mark.parametrize(
    ("target", "n_atoms", "charge", "chains"),
    [("p38", 5637, -7, {"A"}), ("thrombin", 4626, 4, {"H", "L"}), ("mcl1", 2448, 4, {"B"}), ("ptp1b", 4820, -6, {"A"})],
)
def test_benchmark_proteins_load_with_readme_charges(bench, target, n_atoms, charge, chains):
    """Net charges as listed in shared/benchmarks/README.md; no false chain breaks (thrombin has two chains)."""
    protein = load_protein(bench / target / "protein.pdb")
    assert protein.topology.getNumAtoms() == n_atoms and protein.net_charge == charge
    assert {c.id for c in protein.topology.chains()} == chains
