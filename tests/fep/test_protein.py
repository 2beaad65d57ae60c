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
    protein = load_protein(bench / "tyk2" / "protein.pdb", SystemSettings(keep_crystal_waters=False))
    assert protein.topology.getNumAtoms() == 4652 and protein.positions.shape == (4652, 3)
    assert protein.net_charge == -2 and protein.n_waters_dropped == 2 and protein.n_crystal_waters == 0
    kept = load_protein(bench / "tyk2" / "protein.pdb")  # crystal waters are kept by default
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
    pdb = _edited(bench, tmp_path / "xyz.pdb", rename=(_is("THR", 923), "XYZ"))
    with pytest.raises(ParametrizationError, match=r"chain A residue XYZ 923 has no force-field template") as info:
        load_protein(pdb)
    assert "--extra-forcefield FILE.xml" in str(info.value)
    # a phosphothreonine without its phosphate: phosaa14SB's template names what is missing
    tpo = _edited(bench, tmp_path / "tpo.pdb", rename=(_is("THR", 923), "TPO"))
    with pytest.raises(ParametrizationError, match=r"TPO 923 .*phosaa14SB .*missing heavy atoms: O1P, O2P, O3P, P"):
        load_protein(tpo)


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
    assert fixed.topology.getNumAtoms() == 4658 and fixed.net_charge == -2
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

    pdb = _edited(bench, tmp_path / "xyz.pdb", rename=(_is("THR", 923), "XYZ"))
    a, b = prepared("benzene", "c1ccccc1"), prepared("toluene", "Cc1ccccc1")
    mapping = AtomMapping(ligand_a="benzene", ligand_b="toluene", mapping={0: 1, 1: 2}, score=0.5)
    stages: list[str] = []
    with pytest.raises(ParametrizationError, match="XYZ 923"):
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
    assert out["n_atoms"] == 4658 and out["net_charge"] == -2
    assert (out["crystal_waters_kept"], out["crystal_waters_dropped"]) == (2, 0)
    assert main(["protein", str(bench / "tyk2" / "protein.pdb"), "--drop-crystal-waters", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_atoms"] == 4652 and (out["crystal_waters_kept"], out["crystal_waters_dropped"]) == (0, 2)

    bad = _edited(bench, tmp_path / "xyz.pdb", rename=(_is("THR", 923), "XYZ"))
    assert main(["protein", str(bad)]) == 2
    assert "XYZ 923" in capsys.readouterr().err


@pytest.mark.slow
def test_fix_protein_builds_a_short_internal_loop(bench, tmp_path):
    pdb = _edited(bench, tmp_path / "gap.pdb", drop=_is("GLY", 904))
    repair = fix_protein(pdb, tmp_path / "fixed.pdb")
    assert len(repair.added_residues) == 1 and "GLY" in repair.added_residues[0] and repair.skipped_gaps == ()
    fixed = load_protein(tmp_path / "fixed.pdb")
    assert fixed.topology.getNumAtoms() == 4658 and fixed.net_charge == -2


@pytest.mark.parametrize(
    ("target", "n_atoms", "charge", "chains"),
    [("p38", 5637, -7, {"A"}), ("thrombin", 4626, 4, {"H", "L"}), ("mcl1", 2448, 4, {"B"}), ("ptp1b", 4820, -6, {"A"})],
)
def test_benchmark_proteins_load_with_readme_charges(bench, target, n_atoms, charge, chains):
    """Net charges as listed in shared/benchmarks/README.md; no false chain breaks (thrombin has two chains)."""
    protein = load_protein(bench / target / "protein.pdb", SystemSettings(keep_crystal_waters=False))
    assert protein.topology.getNumAtoms() == n_atoms and protein.net_charge == charge
    assert {c.id for c in protein.topology.chains()} == chains


# ----------------------------------------------------------------- phosphorylated residues, variants, metal ions
def test_phosphothreonine_is_parametrised_with_phosaa14sb(bench, tmp_path):
    from fep.systems.endstates import make_forcefield
    from fep.systems.protein import PHOSPHO_FORCEFIELD, protein_forcefield_files
    from tests.fep.structures import TPO_RESIDUE, phosphorylated_tyk2

    pdb = phosphorylated_tyk2(bench, tmp_path / "tpo.pdb")
    assert protein_forcefield_files(("amber14-all.xml",), pdb) == PHOSPHO_FORCEFIELD
    assert protein_forcefield_files(("amber14-all.xml",), bench / "tyk2" / "protein.pdb") == ("amber14-all.xml",)
    protein = load_protein(pdb)
    assert protein.net_charge == -4  # tyk2 -2, a dianionic phosphate -2
    tpo = next(r for r in protein.topology.residues() if r.id == TPO_RESIDUE)
    assert tpo.name == "TPO" and {"P", "O1P", "O2P", "O3P"} <= {a.name for a in tpo.atoms()}
    # bonded like a standard residue: to its neighbours' backbone and to its phosphate
    bonded = {frozenset((a.name, b.name)) for a, b in protein.topology.bonds() if tpo in (a.residue, b.residue)}
    assert {frozenset(("OG1", "P")), frozenset(("C", "N")), frozenset(("P", "O1P"))} <= bonded
    forcefield = make_forcefield(SystemSettings(protein_forcefield=PHOSPHO_FORCEFIELD))
    templates = forcefield.getMatchingTemplates(protein.topology)
    assert templates[tpo.index].name == "TPO"


def test_ff14sb_with_phosaa_equals_amber14_on_standard_residues(bench):
    """The force field used for phosphorylated proteins gives amber14-all's energies, term by term (pde2, with its
    Zn2+, Mg2+ and crystal waters)."""
    import openmm
    import openmm.app as app

    from fep.systems.endstates import make_forcefield
    from fep.systems.protein import PHOSPHO_FORCEFIELD, read_pdb

    pdb = read_pdb(bench / "pde2" / "protein.pdb")

    def energies(files):
        forcefield = make_forcefield(SystemSettings(protein_forcefield=files))
        system = forcefield.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=None)
        for k, force in enumerate(system.getForces()):
            force.setForceGroup(k)
        context = openmm.Context(system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(pdb.positions)
        return {
            type(f).__name__: context.getState(getEnergy=True, groups={k}).getPotentialEnergy()._value
            for k, f in enumerate(system.getForces())
        }

    plain, phos = energies(("amber14-all.xml",)), energies(PHOSPHO_FORCEFIELD)
    assert set(plain) == set(phos)
    for term, value in plain.items():
        assert phos[term] == pytest.approx(value, abs=1e-6), term


def test_named_protonation_variant_must_match_its_hydrogens(bench, tmp_path, capsys):
    # tyk2 HIS 907 carries HD1 only: it is HID
    hid = _edited(bench, tmp_path / "hid.pdb", rename=(_is("HIS", 907), "HID"))
    assert load_protein(hid).net_charge == -2
    hie = _edited(bench, tmp_path / "hie.pdb", rename=(_is("HIS", 907), "HIE"))
    with pytest.raises(ParametrizationError, match=r"residue HIE 907 is named HIE but its hydrogens are those of HID"):
        load_protein(hie)
    # --fix-protein gives the named variant its hydrogens (HD1 removed, HE2 added)
    fix_protein(hie, tmp_path / "fixed.pdb")
    fixed = load_protein(tmp_path / "fixed.pdb")
    his = next(r for r in fixed.topology.residues() if r.id == "907")
    names = {a.name for a in his.atoms()}
    assert "HE2" in names and "HD1" not in names and fixed.net_charge == -2


def test_metal_ions_and_their_messages(bench, tmp_path):
    from tests.fep.structures import far_point, with_extra_atoms

    pde2 = load_protein(bench / "pde2" / "protein.pdb")
    assert {"ZN", "MG"} <= {r.name for r in pde2.topology.residues()} and pde2.n_crystal_waters == 3
    tyk2 = bench / "tyk2" / "protein.pdb"
    far = far_point(tyk2)
    # FE2 (Fe2+) and FE (Fe3+) share the element: the residue name picks the template
    iron = with_extra_atoms(tyk2, tmp_path / "fe.pdb", [("FE", "FE2", "FE", far)])
    assert load_protein(iron).net_charge == -2 + 2
    iron3 = with_extra_atoms(tyk2, tmp_path / "fe3.pdb", [("FE", "FE", "FE", far)])
    assert load_protein(iron3).net_charge == -2 + 3
    gold = with_extra_atoms(tyk2, tmp_path / "au.pdb", [("AU", "AU", "AU", far)])
    with pytest.raises(ParametrizationError, match=r"chain X residue AU 900 \(Au\) is an ion without parameters"):
        load_protein(gold)


def test_cofactor_left_in_the_pdb_is_recognised(bench, tmp_path):
    from rdkit import Chem

    from tests.fep.structures import with_extra_atoms

    adp = Chem.MolFromMolFile(str(bench / "eg5" / "cofactor.sdf"), removeHs=False)
    xyz = adp.GetConformer().GetPositions()
    counts: dict[str, int] = {}
    atoms = []
    for atom in adp.GetAtoms():
        symbol = atom.GetSymbol()
        counts[symbol] = counts.get(symbol, 0) + 1
        atoms.append((f"{symbol}{counts[symbol]}", "ADP", symbol.upper(), xyz[atom.GetIdx()]))
    lines = with_extra_atoms(bench / "eg5" / "protein.pdb", tmp_path / "tmp.pdb", atoms).read_text().splitlines()
    # one residue: same number on every ADP record
    one = [line[:22] + " 900" + line[26:] if line[17:20] == "ADP" else line for line in lines]
    (tmp_path / "eg5_adp.pdb").write_text("\n".join(one) + "\n")
    with pytest.raises(
        ParametrizationError, match=r"residue ADP 900 has no force-field template; it looks like a cofactor"
    ) as info:
        load_protein(tmp_path / "eg5_adp.pdb")
    assert "--cofactor FILE.sdf" in str(info.value)
