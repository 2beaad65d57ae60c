"""`fep prep`: a prepared SDF from CSV/SDF input, --json output, and one-line errors for bad inputs."""

from __future__ import annotations

import json

import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from fep.cli import main
from ligand_prep.io import read_ligands


def test_prep_benzene_series_json(bench, tmp_path, capsys):
    out = tmp_path / "prepared.sdf"
    code = main(["prep", str(bench / "freesolv" / "rhfe_benzenes_ligands.csv"), "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out)
    assert [row["name"] for row in payload][:2] == ["benzene", "toluene"]
    assert len(payload) == 10
    assert payload[2]["experimental_dg_kcal_mol"] == pytest.approx(-6.6)
    assert payload[1]["core_rmsd_angstrom"] < 0.1
    assert payload[0]["n_atoms"] == 12
    assert "chlorobenzene" in captured.err  # the table goes to stderr
    mols = list(Chem.SDMolSupplier(str(out), removeHs=False))
    assert mols[1].GetProp("mlfep_smiles") == "Cc1ccccc1"
    assert float(mols[1].GetProp("mlfep_core_rmsd_A")) < 0.1
    assert not mols[0].HasProp("mlfep_partial_charges")
    again = read_ligands(out)
    assert [lig.name for lig in again] == [row["name"] for row in payload]


def test_prep_tyk2_smiles_with_reference_and_protein(bench, tmp_path, capsys):
    csv_path = tmp_path / "three.csv"
    lines = ["name,smiles"]
    for mol in Chem.SDMolSupplier(str(bench / "tyk2" / "ligands.sdf"), removeHs=False):
        if mol.GetProp("_Name") in {"lig_jmc_23", "lig_ejm_46", "lig_ejm_54"}:
            lines.append(f"{mol.GetProp('_Name')},{Chem.MolToSmiles(Chem.RemoveHs(mol))}")
    csv_path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "prepared.sdf"
    code = main(
        [
            "prep",
            str(csv_path),
            "--reference",
            str(bench / "tyk2" / "ligands.sdf"),
            "--protein",
            str(bench / "tyk2" / "protein.pdb"),
            "-o",
            str(out),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out)
    assert [row["name"] for row in payload] == ["lig_ejm_54", "lig_jmc_23", "lig_ejm_46"]
    assert all(row["core_rmsd_angstrom"] < 0.5 for row in payload)
    assert len(read_ligands(out)) == 3


def test_prep_with_charges(tmp_path, capsys, monkeypatch, charge_cache):
    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    csv_path = tmp_path / "two.csv"
    csv_path.write_text("name,smiles\nbenzene,c1ccccc1\nphenol,Oc1ccccc1\n")
    out = tmp_path / "charged.sdf"
    code = main(["prep", str(csv_path), "-o", str(out), "--charges", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    mols = list(Chem.SDMolSupplier(str(out), removeHs=False))
    for mol in mols:
        charges = [float(q) for q in mol.GetProp("mlfep_partial_charges").split()]
        assert len(charges) == mol.GetNumAtoms()
        assert sum(charges) == pytest.approx(0.0, abs=1e-4)
    phenol = mols[1]
    oxygen = next(a.GetIdx() for a in phenol.GetAtoms() if a.GetSymbol() == "O")
    assert float(phenol.GetProp("mlfep_partial_charges").split()[oxygen]) < -0.4
    assert len(json.loads(captured.out)[1]["partial_charges"]) == 13
    assert len(read_ligands(out)) == 2


def _sdf(mol, name) -> str:
    mol.SetProp("_Name", name)
    return Chem.MolToMolBlock(mol) + "$$$$\n"


def _flat_sdf() -> str:
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.Compute2DCoords(mol)
    return _sdf(mol, "flat_ethanol")


BAD_INPUTS = {
    "broken_smiles": ("s.csv", "name,smiles\nbenzene,c1ccccc1\nbroken_one,C1CC(\n", ["s.csv row 3", "broken_one"]),
    "2d_sdf": ("flat.sdf", _flat_sdf(), ["flat_ethanol", "3D"]),
    "duplicate": ("d.csv", "name,smiles\nlig_a,CCO\nlig_b,CCN\nlig_a,CCC\n", ["lig_a", "row 2", "row 4"]),
    "boron": ("b.csv", "name,smiles\nboronic,OB(O)c1ccccc1\n", ["boronic", "element B"]),
    "zinc": ("z.csv", "name,smiles\nzinc_thing,C[Zn]C\n", ["zinc_thing", "Zn"]),
    "iron": ("f.csv", "name,smiles\nferrocene,[Fe+2].c1cc[cH-]c1.c1cc[cH-]c1\n", ["ferrocene", "Fe"]),
    "radical": ("r.csv", "name,smiles\nethyl_rad,C[CH2]\n", ["ethyl_rad", "unpaired"]),
    "fragments": (
        "salt.csv",
        "name,smiles\namine_hcl,CCN.Cl\n",
        ["amine_hcl", "a salt: the counter-ion(s) Cl are not part of the ligand"],
    ),
    "stereo": ("st.csv", "name,smiles\nchiral_x,CC(F)Cl\n", ["chiral_x", "stereo"]),
    "empty_csv": ("empty.csv", "", ["empty.csv", "no ligands"]),
    "empty_sdf": ("empty.sdf", "\n", ["empty.sdf", "no ligands"]),
    "extension": ("ligands.xyz", "3\n", ["ligands.xyz", ".sdf"]),
    "no_columns": ("cols.csv", "id,structure\na,CCO\n", ["cols.csv", "'name'"]),
    "valence": ("v.csv", "name,smiles\npentavalent,CC(C)(C)(C)(C)C\n", ["pentavalent", "valence"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_one_line_exit_2(case, tmp_path, capsys):
    filename, content, needles = BAD_INPUTS[case]
    path = tmp_path / filename
    path.write_text(content)
    code = main(["prep", str(path), "-o", str(tmp_path / "out.sdf")])
    captured = capsys.readouterr()
    assert code == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "out.sdf").exists()


def test_missing_hydrogens_offers_protonate(tmp_path, capsys):
    mol = Chem.AddHs(Chem.MolFromSmiles("CC(=O)O"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    path = tmp_path / "noh.sdf"
    path.write_text(_sdf(Chem.RemoveHs(mol), "acetic"))
    assert main(["prep", str(path), "-o", str(tmp_path / "out.sdf")]) == 2
    err = capsys.readouterr().err
    assert "acetic" in err and "--protonate" in err
    assert main(["prep", str(path), "--protonate", "-o", str(tmp_path / "out.sdf")]) == 0
    assert read_ligands(tmp_path / "out.sdf")[0].n_atoms == 8


def test_missing_file_one_line(tmp_path, capsys):
    assert main(["prep", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.sdf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.csv" in err[0] and "not found" in err[0]


def test_help():
    assert main(["prep", "--help"]) == 0
