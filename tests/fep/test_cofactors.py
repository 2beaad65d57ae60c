"""Cofactors of the complex leg (eg5's ADP): reading, checks, placement, and the run files that record them."""

from __future__ import annotations

import json

import pytest

from fep.systems.cofactors import check_cofactor_placement, posed, read_cofactors
from mlfep_core import InputError, LigandValidationError

pytest.importorskip("openmm")


def test_read_eg5_adp(bench):
    (adp,) = read_cofactors([bench / "eg5" / "cofactor.sdf"])
    assert adp.name == "cofactor" and adp.n_atoms == 39 and adp.formal_charge == -3
    assert adp.smiles.count("P") == 2


def test_cofactor_missing_hydrogens_is_refused(bench, tmp_path):
    from rdkit import Chem

    mol = Chem.MolFromMolFile(str(bench / "eg5" / "cofactor.sdf"), removeHs=False)
    path = tmp_path / "adp_noH.sdf"
    Chem.MolToMolFile(Chem.RemoveHs(mol), str(path))
    with pytest.raises(LigandValidationError, match=r"^cofactor .*adp_noH.*hydrogen\(s\) missing") as info:
        read_cofactors([path])
    assert "protonation state" in str(info.value) and "--protonate" not in str(info.value)


def test_cofactor_file_problems(bench, tmp_path):
    with pytest.raises(InputError, match=r"cofactor .*absent.sdf: file not found"):
        read_cofactors([tmp_path / "absent.sdf"])
    (tmp_path / "adp.pdb").write_text("END\n")
    with pytest.raises(InputError, match=r"give the cofactor as an SDF"):
        read_cofactors([tmp_path / "adp.pdb"])
    with pytest.raises(InputError, match=r"cofactor cofactor: given twice"):
        read_cofactors([bench / "eg5" / "cofactor.sdf"] * 2)


def test_cofactor_overlapping_the_ligand_is_refused(bench, tmp_path):
    from ligand_prep.io import read_ligands

    ligands = read_ligands(bench / "eg5" / "ligands.sdf")[:2]
    (adp,) = read_cofactors([bench / "eg5" / "cofactor.sdf"])
    check_cofactor_placement(posed([adp]), posed(ligands))  # eg5's ADP sits clear of the docked ligands
    # a ligand given as a cofactor sits where the ligand binds
    from rdkit import Chem

    writer = Chem.SDWriter(str(tmp_path / "extra.sdf"))
    writer.write(ligands[1].to_rdkit())
    writer.close()
    (wrong,) = read_cofactors([tmp_path / "extra.sdf"])
    with pytest.raises(InputError, match=rf"cofactor extra overlaps ligand {ligands[0].name}: heavy atoms .* Å apart"):
        check_cofactor_placement(posed([wrong]), posed(ligands))


def test_plan_records_cofactors_and_run_keeps_them(bench, tmp_path, capsys):
    """fep plan --cofactor records the file in network.json; fep run --dry-run takes it from there; a cofactor in
    a hydration run is refused."""
    from fep.cli import main

    edges = tmp_path / "edges.csv"
    edges.write_text("ligand_a,ligand_b\nlig_CHEMBL1088740,lig_CHEMBL1089393\n")
    net = tmp_path / "net.json"
    cofactor = str(bench / "eg5" / "cofactor.sdf")
    args = ["plan", str(bench / "eg5" / "ligands.sdf"), "-o", str(net), "--network", str(edges)]
    assert main([*args, "--protein", str(bench / "eg5" / "protein.pdb"), "--cofactor", cofactor]) == 0
    assert json.loads(net.read_text())["cofactors"] == [cofactor]
    capsys.readouterr()
    assert main(["plan", str(bench / "eg5" / "ligands.sdf"), "-o", str(net), "--cofactor", cofactor]) == 2
    assert "--cofactor belongs to the complex leg" in capsys.readouterr().err


def test_run_spec_and_leg_key_follow_the_cofactor_content(bench, tmp_path):
    import shutil

    from fep.execution.legkey import leg_key
    from fep.execution.rundir import RunSpec, spec_changes
    from fep.protocol import load_protocol
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MCSMapper

    cofactor = tmp_path / "adp.sdf"
    shutil.copy(bench / "eg5" / "cofactor.sdf", cofactor)
    spec = RunSpec(mode="binding", protocol=load_protocol("smoke"), protein="p.pdb", cofactors=(str(cofactor),))
    a, b = read_ligands(bench / "eg5" / "ligands.sdf")[:2]
    mapping = MCSMapper().map(a, b)
    prep_a, prep_b = (assign_charges(x, method="gasteiger", cache_dir=tmp_path) for x in (a, b))
    complex_key = leg_key(spec, prep_a, prep_b, mapping, "complex", 0, {})
    solvent_key = leg_key(spec, prep_a, prep_b, mapping, "solvent", 0, {})
    assert len(complex_key.cofactors) == 1 and solvent_key.cofactors == ()
    started = spec.model_copy(update={"cofactors_sha256": complex_key.cofactors})
    assert spec_changes(started, spec) == []
    cofactor.write_text(cofactor.read_text().replace("17.7103", "17.7104", 1))  # moved by 0.1 mÅ
    assert [field for field, _ in spec_changes(started, spec)] == ["cofactors"]
    assert leg_key(spec, prep_a, prep_b, mapping, "complex", 0, {}).cofactors != complex_key.cofactors
    assert leg_key(spec, prep_a, prep_b, mapping, "solvent", 0, {}).key == solvent_key.key


@pytest.mark.slow  # ~2-3 min on 2 cores; the fast suite covers cofactors by reading, placement and run files
def test_eg5_complex_with_adp_is_exact(bench, charge_cache, monkeypatch, capsys):
    """fep check --leg complex on an eg5 edge with its ADP (-3) and crystal waters: the cofactor is in both end
    states and the hybrid reproduces them (Reference platform, about 2 minutes on 2 cores)."""
    from fep.cli import main

    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    args = ["check", "--ligands", str(bench / "eg5" / "ligands.sdf"), "--edge", "lig_CHEMBL1088740,lig_CHEMBL1089393"]
    args += ["--protein", str(bench / "eg5" / "protein.pdb"), "--cofactor", str(bench / "eg5" / "cofactor.sdf")]
    assert main([*args, "--leg", "complex", "--charge-method", "nagl", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] is True and result["cofactors"] == ["cofactor"]
    assert result["net_charge_before_ions"] == -3  # protein 0, ligand 0, ADP -3
    for label in ("A", "B"):
        assert abs(result["states"][label]["difference"]["total"]) < 0.01


@pytest.mark.slow
def test_pde2_complex_with_metals_and_waters_is_exact(bench, charge_cache, monkeypatch, capsys):
    """pde2 keeps its Zn2+, Mg2+ and their crystal waters in the complex leg; the end states are exact."""
    from fep.cli import main

    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    args = ["check", "--ligands", str(bench / "pde2" / "ligands.sdf"), "--edge", "lig_49582390,lig_48271249"]
    args += ["--protein", str(bench / "pde2" / "protein.pdb"), "--leg", "complex", "--charge-method", "nagl"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] is True and result["crystal_waters"] == 3
    assert {"ZN", "MG"} <= set(result["ions_in_protein"])
