"""End-state systems: shared environment, poses, box, ions, HMR, vacuum, unsupported edges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fep.systems.endstates import (
    SystemSettings,
    UnsupportedEdgeError,
    align_ligand_b,
    box_vectors_for,
    build_end_states,
    build_ligand_system,
    ion_counts,
    ligand_positions,
)
from ligand_prep.models import AtomMapping, Ligand
from mlfep_core import InputError, MappingError, MlfepError

pytest.importorskip("openmm")


def _ligand(name: str, smiles: str, seed: int, charge: int = 0) -> Ligand:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    return Ligand(name=name, molblock=Chem.MolToMolBlock(mol), smiles=smiles, formal_charge=charge)


def _prepared(name, smiles, seed, tmp, charge=0):
    from ligand_prep.charges import assign_charges

    return assign_charges(_ligand(name, smiles, seed, charge), method="gasteiger", cache_dir=tmp)


def _mapping(prep_a, prep_b) -> AtomMapping:
    """Heavy atoms of A's skeleton matched in B, plus the hydrogens on mapped atoms pairwise."""
    from rdkit import Chem

    mol_a, mol_b = prep_a.ligand.to_rdkit(), prep_b.ligand.to_rdkit()
    core = Chem.RemoveHs(mol_a)
    pairs = dict(zip(mol_a.GetSubstructMatch(core), mol_b.GetSubstructMatch(core), strict=True))
    for i, j in list(pairs.items()):
        h_a = [n.GetIdx() for n in mol_a.GetAtomWithIdx(i).GetNeighbors() if n.GetAtomicNum() == 1]
        h_b = [n.GetIdx() for n in mol_b.GetAtomWithIdx(j).GetNeighbors() if n.GetAtomicNum() == 1]
        pairs.update(zip(h_a, h_b, strict=False))
    return AtomMapping(ligand_a=prep_a.name, ligand_b=prep_b.name, mapping=pairs, score=0.8)


@pytest.fixture(scope="module")
def ligands(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("charges")
    benzene = _prepared("benzene", "c1ccccc1", 1, tmp)
    toluene = _prepared("toluene", "Cc1ccccc1", 7, tmp)
    phenol = _prepared("phenol", "Oc1ccccc1", 3, tmp)
    return benzene, toluene, phenol


@pytest.fixture(scope="module")
def solvent(ligands):
    benzene, toluene, _ = ligands
    return build_end_states(benzene, toluene, _mapping(benzene, toluene), "solvent")


@pytest.fixture(scope="module")
def vacuum(ligands):
    benzene, _, phenol = ligands
    return build_end_states(benzene, phenol, _mapping(benzene, phenol), "vacuum")


def _nonbonded(system):
    import openmm

    return next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))


def _charges(system) -> np.ndarray:
    import openmm.unit as u

    nb = _nonbonded(system)
    return np.array(
        [nb.getParticleParameters(i)[0].value_in_unit(u.elementary_charge) for i in range(nb.getNumParticles())]
    )


def _residue_names(topology) -> list[str]:
    return [r.name for r in topology.residues()]


# --------------------------------------------------------------------------------------------- solvent
def test_solvent_same_box_waters_and_ions(solvent):
    es = solvent
    for top in (es.topology_a, es.topology_b):
        names = _residue_names(top)
        assert names.count("LIG") == 1
        assert names.count("HOH") == es.n_waters
        assert names.count("NA") == es.n_positive_ions
        assert names.count("CL") == es.n_negative_ions
    np.testing.assert_allclose(es.box_vectors, _box(es.topology_a))
    np.testing.assert_allclose(_box(es.topology_a), _box(es.topology_b))
    for system in (es.system_a, es.system_b):
        vectors = np.array([[v.x, v.y, v.z] for v in system.getDefaultPeriodicBoxVectors()])
        np.testing.assert_allclose(vectors, es.box_vectors, atol=1e-6)
    assert es.n_waters > 200


def _box(topology) -> np.ndarray:
    import openmm.unit as u

    return np.array([[v.x, v.y, v.z] for v in topology.getPeriodicBoxVectors().value_in_unit(u.nanometer)])


def test_solvent_box_is_reduced_rhombic_dodecahedron(solvent):
    a, b, c = solvent.box_vectors
    width = a[0]
    np.testing.assert_allclose(a, [width, 0, 0], atol=1e-9)
    np.testing.assert_allclose(b, [0, width, 0], atol=1e-9)
    np.testing.assert_allclose(c, [width / 2, width / 2, width * math.sqrt(2) / 2], atol=1e-9)
    # a small solute: 2 x padding (2.4 nm) would leave c_z = 1.70 nm < 2 x cutoff, so the box was enlarged to
    # 2.2 x cutoff, then once more so that NPT, which brings the under-dense water to its density, leaves it at
    # 2.15 x cutoff or more (fep.systems.solvation.npt_growth)
    assert width > 2.2 * 0.9 * math.sqrt(2) and c[2] >= 2.2 * 0.9
    n_waters = sum(1 for r in solvent.topology_a.residues() if r.name in ("HOH", "NA", "CL"))
    from fep.systems.solvation import ATOM_VOLUME_NM3, WATER_PER_NM3

    equilibrated = (n_waters / WATER_PER_NM3 + ATOM_VOLUME_NM3 * 15) / abs(np.linalg.det(solvent.box_vectors))
    assert c[2] * equilibrated ** (1 / 3) >= 2.15 * 0.9 - 1e-6
    # OpenMM's reduced form
    assert abs(b[0]) <= a[0] / 2 and abs(c[0]) <= a[0] / 2 and abs(c[1]) <= b[1] / 2


@pytest.mark.parametrize("shape", ["dodecahedron", "octahedron", "cube"])
def test_box_vectors_for_shapes(shape):
    solute = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    box = box_vectors_for(solute, 1.0, shape, 0.9)
    radius = np.linalg.norm(solute - [1.5, 0.5, 0.0], axis=1).max()
    assert box[0, 0] == pytest.approx(2 * radius + 1.0)  # OpenMM's padding rule for a large solute
    assert box[0, 1] == box[0, 2] == box[1, 2] == 0.0 and min(np.diag(box)) > 1.8
    # the three shapes have the same image distance: volume cube > dodecahedron (71 %) > octahedron (77 %)
    volume = np.linalg.det(box) / box[0, 0] ** 3
    assert volume == pytest.approx(
        {"cube": 1.0, "dodecahedron": math.sqrt(2) / 2, "octahedron": 4 / (3 * math.sqrt(3))}[shape]
    )
    small = box_vectors_for(solute[:1], 1.2, shape, 0.9)
    assert min(np.diag(small)) == pytest.approx(max(2.2 * 0.9, 2.4 * min(np.diag(box)) / box[0, 0]))


def test_solvent_environment_identical_in_a_and_b(solvent):
    es = solvent
    assert len(es.environment_atoms_a) == len(es.environment_atoms_b) == es.n_environment > 600
    assert es.system_a.getNumParticles() == len(es.ligand_atoms_a) + es.n_environment
    assert es.system_b.getNumParticles() == len(es.ligand_atoms_b) + es.n_environment
    np.testing.assert_array_equal(es.positions_a[es.environment_atoms_a], es.positions_b[es.environment_atoms_b])
    nb_a, nb_b = _nonbonded(es.system_a), _nonbonded(es.system_b)
    atoms_a, atoms_b = list(es.topology_a.atoms()), list(es.topology_b.atoms())
    for i, j in zip(es.environment_atoms_a, es.environment_atoms_b, strict=True):
        assert atoms_a[i].name == atoms_b[j].name and atoms_a[i].residue.name == atoms_b[j].residue.name
        assert nb_a.getParticleParameters(i) == nb_b.getParticleParameters(j)
        assert es.system_a.getParticleMass(i) == es.system_b.getParticleMass(j)


def test_no_water_clashes_across_cell_faces(solvent):
    es = solvent
    oxygens = np.array([a.index for a in es.topology_a.atoms() if a.residue.name == "HOH" and a.element.symbol == "O"])
    pos = es.positions_a[oxygens]
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)]) @ es.box_vectors
    d = np.linalg.norm(pos[:, None, None, :] + shifts[None, :, None, :] - pos[None, None, :, :], axis=3)
    d[d < 1e-9] = np.inf  # self
    assert d.min() >= 0.24


def test_solvent_neutral_and_ion_count(solvent):
    es = solvent
    for system in (es.system_a, es.system_b):
        assert abs(_charges(system).sum()) < 1e-4
    # 0.15 M NaCl from the water count before replacement, rounded (neutral ligands: no counter-ions)
    n_before = es.n_waters + es.n_positive_ions + es.n_negative_ions
    expected = math.floor(n_before * 0.15 / 55.4 + 0.5)
    assert es.n_positive_ions == es.n_negative_ions == expected
    assert ion_counts(1000, -2, 0.15) == (2 + 3, 3)
    assert ion_counts(1000, 3, 0.15) == (3, 3 + 3)


def test_solvent_poses_and_no_clash(solvent, ligands):
    es = solvent
    benzene, _toluene, _ = ligands
    lig_a = es.positions_a[es.ligand_atoms_a]
    lig_b = es.positions_b[es.ligand_atoms_b]
    # A keeps its pose exactly (solvation does not move the solute)
    np.testing.assert_allclose(lig_a, ligand_positions(benzene), atol=1e-9)
    for i, j in es.mapping.mapping.items():
        np.testing.assert_array_equal(lig_a[i], lig_b[j])
    # no water oxygen or ion close to any atom of A or of B (the methyl of toluene is B-unique)
    env = es.positions_a[es.environment_atoms_a]
    heavy_env = np.array([a.element.symbol != "H" for a in es.topology_a.atoms()])[es.environment_atoms_a]
    for lig in (lig_a, lig_b):
        d = np.linalg.norm(env[heavy_env][:, None, :] - lig[None, :, :], axis=2)
        assert d.min() > 0.2
    unique_b = [j for j in range(len(lig_b)) if j not in set(es.mapping.mapping.values())]
    assert len(unique_b) == 4


def test_solvent_nonbonded_settings(solvent):
    import openmm

    for system in (solvent.system_a, solvent.system_b):
        nb = _nonbonded(system)
        assert nb.getNonbondedMethod() == openmm.NonbondedForce.PME
        assert nb.getCutoffDistance().value_in_unit(openmm.unit.nanometer) == pytest.approx(0.9)
        assert nb.getUseDispersionCorrection()
        assert system.getNumConstraints() > 0


def test_hmr_masses(solvent, ligands):
    es = solvent
    for system, top, lig in (
        (es.system_a, es.topology_a, es.ligand_atoms_a),
        (es.system_b, es.topology_b, es.ligand_atoms_b),
    ):
        atoms = list(top.atoms())
        masses = np.array([system.getParticleMass(i).value_in_unit(openmm_dalton()) for i in range(len(atoms))])
        for i in lig:
            if atoms[i].element.symbol == "H":
                assert masses[i] == pytest.approx(3.0)
        for i, atom in enumerate(atoms):  # water hydrogens are not repartitioned (rigid water)
            if atom.element.symbol == "H" and atom.residue.name == "HOH":
                assert masses[i] == pytest.approx(1.008, abs=1e-3)
        # force-field masses differ from OpenMM's element masses in the 4th decimal at most
        elements = sum(a.element.mass.value_in_unit(openmm_dalton()) for a in atoms)
        assert masses.sum() == pytest.approx(elements, abs=1e-5 * len(atoms))


def openmm_dalton():
    import openmm.unit as u

    return u.dalton


def test_hmr_can_be_disabled_and_conserves_mass(ligands):
    toluene = ligands[1]
    plain, topology, positions, box = build_ligand_system(
        toluene, "vacuum", SystemSettings(hydrogen_mass="1.008 dalton", constraints="none")
    )
    heavy, *_ = build_ligand_system(toluene, "vacuum", SystemSettings(hydrogen_mass="4 dalton"))
    assert box is None and positions.shape == (15, 3) and plain.getNumConstraints() == 0
    assert heavy.getNumConstraints() == 8  # every X-H bond
    m_plain = [plain.getParticleMass(i).value_in_unit(openmm_dalton()) for i in range(15)]
    m_heavy = [heavy.getParticleMass(i).value_in_unit(openmm_dalton()) for i in range(15)]
    for i, atom in enumerate(topology.atoms()):
        if atom.element.symbol == "H":
            assert m_plain[i] == pytest.approx(1.008, abs=1e-3) and m_heavy[i] == pytest.approx(4.0)
    assert sum(m_heavy) == pytest.approx(sum(m_plain), abs=1e-9)
    assert m_heavy[0] == pytest.approx(m_plain[0] - 3 * (4.0 - m_plain[8]))  # methyl carbon gave 3 H their mass


def test_charged_ligand_is_neutralised(tmp_path):
    benzoate = _prepared("benzoate", "[O-]C(=O)c1ccccc1", 2, tmp_path, charge=-1)
    system, topology, positions, box = build_ligand_system(benzoate, "solvent")
    names = _residue_names(topology)
    n_water, n_na, n_cl = names.count("HOH"), names.count("NA"), names.count("CL")
    assert n_na - n_cl == 1 and abs(_charges(system).sum()) < 1e-4
    assert n_cl == math.floor((n_water + n_na + n_cl - 1) * 0.15 / 55.4 + 0.5)
    assert positions.shape == (system.getNumParticles(), 3) and box.shape == (3, 3)


# ---------------------------------------------------------------------------------------------- vacuum
def test_vacuum_no_box_no_cutoff_only_ligand(vacuum, ligands):
    import openmm

    es = vacuum
    benzene, _, phenol = ligands
    assert es.box_vectors is None and es.environment_atoms_a == [] and es.environment_atoms_b == []
    assert es.ligand_atoms_a == list(range(benzene.ligand.n_atoms))
    assert es.ligand_atoms_b == list(range(phenol.ligand.n_atoms))
    for system in (es.system_a, es.system_b):
        assert not system.usesPeriodicBoundaryConditions()
        assert _nonbonded(system).getNonbondedMethod() == openmm.NonbondedForce.NoCutoff
    assert es.n_positive_ions == es.n_negative_ions == 0
    np.testing.assert_allclose(es.positions_a, ligand_positions(benzene), atol=1e-12)
    np.testing.assert_allclose(_charges(es.system_a), benzene.partial_charges, atol=1e-6)
    np.testing.assert_allclose(_charges(es.system_b), phenol.partial_charges, atol=1e-6)
    for i, j in es.mapping.mapping.items():
        np.testing.assert_array_equal(es.positions_a[i], es.positions_b[j])
    masses = [
        es.system_b.getParticleMass(i).value_in_unit(openmm_dalton()) for i in range(es.system_b.getNumParticles())
    ]
    h = [a.index for a in es.topology_b.atoms() if a.element.symbol == "H"]
    assert all(masses[i] == pytest.approx(3.0) for i in h)


def test_align_ligand_b_recovers_rigid_motion():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(8, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    b = np.vstack([a[:6] @ q.T + [1.0, -2.0, 3.0], rng.normal(size=(2, 3))])
    placed = align_ligand_b(a, b, {i: i for i in range(6)})
    np.testing.assert_allclose(placed[:6], a[:6], atol=1e-12)
    # unique atoms follow the same rigid motion back
    np.testing.assert_allclose(placed[6:], (b[6:] - [1.0, -2.0, 3.0]) @ q, atol=1e-9)


# --------------------------------------------------------------------------------------------- errors
def test_charge_change_of_two_is_refused(ligands, tmp_path):
    benzene = ligands[0]
    dianion = _prepared("phthalate", "[O-]C(=O)c1ccccc1C(=O)[O-]", 2, tmp_path, charge=-2)
    mapping = AtomMapping(ligand_a="benzene", ligand_b="phthalate", mapping={0: 3}, score=0.5, charge_change=-2)
    with pytest.raises(UnsupportedEdgeError, match=r"edge benzene~phthalate changes the net charge by -2") as info:
        build_end_states(benzene, dianion, mapping, "solvent")
    assert isinstance(info.value, MlfepError) and isinstance(info.value, NotImplementedError)
    assert "only changes of ±1 are supported" in str(info.value) and "intermediate" in str(info.value)


def test_mapping_must_match_the_ligands(ligands):
    benzene, toluene, _ = ligands
    swapped = AtomMapping(ligand_a="toluene", ligand_b="benzene", mapping={0: 0}, score=0.5)
    with pytest.raises(MappingError, match="benzene~toluene"):
        build_end_states(benzene, toluene, swapped, "vacuum")
    out_of_range = AtomMapping(ligand_a="benzene", ligand_b="toluene", mapping={40: 0}, score=0.5)
    with pytest.raises(MappingError, match="outside"):
        build_end_states(benzene, toluene, out_of_range, "vacuum")


def test_bad_leg_and_missing_protein(ligands):
    benzene, toluene, _ = ligands
    mapping = _mapping(benzene, toluene)
    with pytest.raises(InputError, match="unknown leg 'gas'"):
        build_end_states(benzene, toluene, mapping, "gas")
    with pytest.raises(InputError, match="--protein"):
        build_end_states(benzene, toluene, mapping, "complex")


def test_settings_round_trip(tmp_path):
    settings = SystemSettings(solvent_padding="15 angstrom", box_shape="cube", extra_forcefield_files=("x.xml",))
    path = settings.to_json_file(tmp_path / "s.json")
    again = SystemSettings.from_json_file(path)
    assert again == settings and again.solvent_padding.m_as("nanometer") == pytest.approx(1.5)
    with pytest.raises(ValueError, match="bare number"):
        SystemSettings(nonbonded_cutoff=0.9)


# --------------------------------------------------------------------------------------------- complex
def _sdf_ligand(bench, name: str) -> Ligand:
    from rdkit import Chem

    for mol in Chem.SDMolSupplier(str(bench / "tyk2" / "ligands.sdf"), removeHs=False):
        if mol.GetProp("_Name") == name:
            smiles = Chem.MolToSmiles(Chem.RemoveHs(mol))
            return Ligand(
                name=name, molblock=Chem.MolToMolBlock(mol), smiles=smiles, formal_charge=Chem.GetFormalCharge(mol)
            )
    raise KeyError(name)


def _mcs_mapping(prep_a, prep_b) -> AtomMapping:
    from rdkit import Chem
    from rdkit.Chem import rdFMCS

    mol_a, mol_b = prep_a.ligand.to_rdkit(), prep_b.ligand.to_rdkit()
    mcs = rdFMCS.FindMCS(
        [Chem.RemoveHs(mol_a), Chem.RemoveHs(mol_b)], ringMatchesRingOnly=True, completeRingsOnly=True, timeout=10
    )
    pattern = Chem.MolFromSmarts(mcs.smartsString)
    pairs = dict(zip(mol_a.GetSubstructMatch(pattern), mol_b.GetSubstructMatch(pattern), strict=True))
    return AtomMapping(ligand_a=prep_a.name, ligand_b=prep_b.name, mapping=pairs, score=0.7)


@pytest.fixture(scope="module")
def complex_states(bench, tmp_path_factory):
    from ligand_prep.charges import assign_charges

    tmp = tmp_path_factory.mktemp("tyk2-charges")
    a = assign_charges(_sdf_ligand(bench, "lig_ejm_31"), method="gasteiger", cache_dir=tmp)
    b = assign_charges(_sdf_ligand(bench, "lig_ejm_42"), method="gasteiger", cache_dir=tmp)
    mapping = _mcs_mapping(a, b)
    stages: list[str] = []
    es = build_end_states(a, b, mapping, "complex", protein_pdb=bench / "tyk2" / "protein.pdb", progress=stages.append)
    return es, a, b, stages


def test_complex_tyk2(complex_states, bench):
    es, a, _b, stages = complex_states
    assert stages == ["parametrizing", "solvating", "creating systems"]
    pdb_lines = (bench / "tyk2" / "protein.pdb").read_text().splitlines()
    n_protein = sum(1 for line in pdb_lines if line.startswith(("ATOM", "HETATM")) and line[17:20] != "HOH")
    for top, system in ((es.topology_a, es.system_a), (es.topology_b, es.system_b)):
        names = [a.residue.name for a in top.atoms()]
        protein = [n for n in names if n not in ("HOH", "NA", "CL", "LIG")]
        assert len(protein) == n_protein == 4652
        # tyk2's two crystal waters are kept (neither sits where a ligand is), before the ligand
        assert names.count("HOH") == 3 * (es.n_waters + 2)
        assert names.index("HOH") < names.index("LIG")
        assert abs(_charges(system).sum()) < 1e-3
    assert es.net_charge == -2  # tyk2 (−2) + a neutral ligand
    assert es.n_positive_ions - es.n_negative_ions == 2
    assert es.n_environment == len(es.environment_atoms_b) == es.system_a.getNumParticles() - a.ligand.n_atoms
    np.testing.assert_array_equal(es.positions_a[es.environment_atoms_a], es.positions_b[es.environment_atoms_b])
    # the ligand keeps its docked pose and sits in the pocket: 2.2-3.5 Å from the closest protein heavy atom
    lig = es.positions_a[es.ligand_atoms_a]
    np.testing.assert_allclose(lig, ligand_positions(a), atol=1e-9)
    atoms = list(es.topology_a.atoms())
    protein_heavy = [
        i
        for i, atom in enumerate(atoms)
        if atom.residue.name not in ("HOH", "NA", "CL", "LIG") and atom.element.symbol != "H"
    ]
    lig_heavy = [i for i in es.ligand_atoms_a if atoms[i].element.symbol != "H"]
    d = np.linalg.norm(es.positions_a[lig_heavy][:, None] - es.positions_a[protein_heavy][None], axis=2)
    assert 0.22 <= d.min() <= 0.35
    assert (d.min(axis=1) < 0.6).mean() > 0.5  # most ligand heavy atoms are in contact: buried, not on the surface
    for i, j in es.mapping.mapping.items():
        np.testing.assert_array_equal(es.positions_a[es.ligand_atoms_a[i]], es.positions_b[es.ligand_atoms_b[j]])
    width = es.box_vectors[0, 0]
    np.testing.assert_allclose(es.box_vectors[2], [width / 2, width / 2, width * math.sqrt(2) / 2], atol=1e-9)


def test_same_graph_ligands_keep_their_own_charges(ligands):
    """Two ligands with one graph (as stereoisomers have) must each carry their own prepared charges."""
    from ligand_prep.models import PreparedLigand

    benzene = ligands[0]
    charges = list(benzene.partial_charges)
    charges[0] += 0.05
    charges[1] -= 0.05
    twin = PreparedLigand(
        ligand=benzene.ligand.model_copy(update={"name": "benzene-twin"}),
        partial_charges=tuple(charges),
        charge_method="gasteiger",
    )
    mapping = AtomMapping(ligand_a="benzene", ligand_b="benzene-twin", mapping={i: i for i in range(12)}, score=1.0)
    es = build_end_states(benzene, twin, mapping, "vacuum")
    np.testing.assert_allclose(_charges(es.system_a), benzene.partial_charges, atol=1e-6)
    np.testing.assert_allclose(_charges(es.system_b), charges, atol=1e-6)


def _energy(system, positions, box=None) -> float:
    import openmm
    import openmm.unit as u

    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    if box is not None:
        context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    context.setPositions(positions)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)


def test_solvent_and_complex_energies_are_sane(solvent, complex_states):
    """Finite and strongly negative (water-dominated) potential energies: no clashes, sensible box."""
    for es in (solvent, complex_states[0]):
        e_a = _energy(es.system_a, es.positions_a, es.box_vectors)
        e_b = _energy(es.system_b, es.positions_b, es.box_vectors)
        assert np.isfinite(e_a) and np.isfinite(e_b)
        assert e_a < -20.0 * es.n_waters and e_b < -20.0 * es.n_waters  # liquid TIP3P: about -41 kJ/mol per water


def test_lj_switch_matches_openff_interchange_export_of_sage(ligands):
    """Two toluenes 0.85 nm apart (pairs below, inside and beyond the 0.8-0.9 nm switch) in a periodic box: the
    Lennard-Jones energy of our end-state NonbondedForce equals OpenFF Interchange's own OpenMM export of Sage."""
    import openmm
    import openmm.app as app
    import openmm.unit as u
    from openff.interchange import Interchange
    from openff.toolkit import ForceField, Molecule, Topology

    from fep.systems.forcefield import _create_system, ligand_topology, make_forcefield

    toluene = ligands[1]
    settings = SystemSettings()
    top = ligand_topology(toluene)
    xyz = ligand_positions(toluene)
    shifted = xyz + np.array([0.85, 0.0, 0.0])
    modeller = app.Modeller(top, xyz * u.nanometer)
    modeller.add(top, shifted * u.nanometer)
    box = np.eye(3) * 4.0
    modeller.topology.setPeriodicBoxVectors(box * u.nanometer)
    ours = _create_system(make_forcefield(settings, [toluene]), modeller.topology, settings, True, "toluene dimer")

    molecule = Molecule.from_rdkit(toluene.ligand.to_rdkit(), allow_undefined_stereo=True)
    molecule.partial_charges = np.asarray(toluene.partial_charges) * u.elementary_charge
    topology = Topology.from_molecules([molecule, molecule])
    topology.box_vectors = box * u.nanometer
    interchange = Interchange.from_smirnoff(
        ForceField(f"{settings.small_molecule_forcefield}.offxml"), topology, charge_from_molecules=[molecule]
    )
    theirs = interchange.to_openmm(combine_nonbonded_forces=True)

    positions = np.vstack([xyz, shifted]) * u.nanometer
    energies = []
    for system in (ours, theirs):
        nb = _nonbonded(system)
        assert nb.getUseSwitchingFunction()
        assert nb.getSwitchingDistance().value_in_unit(u.nanometer) == pytest.approx(0.8)
        assert nb.getCutoffDistance().value_in_unit(u.nanometer) == pytest.approx(0.9)
        assert nb.getUseDispersionCorrection()
        for i in range(nb.getNumParticles()):  # Lennard-Jones only
            _, sigma, epsilon = nb.getParticleParameters(i)
            nb.setParticleParameters(i, 0.0, sigma, epsilon)
        for k in range(nb.getNumExceptions()):
            i, j, _, sigma, epsilon = nb.getExceptionParameters(k)
            nb.setExceptionParameters(k, i, j, 0.0, sigma, epsilon)
        for force in list(system.getForces()):
            force.setForceGroup(1 if force is nb else 0)
        context = openmm.Context(system, openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions)
        state = context.getState(getEnergy=True, groups={1})
        energies.append(state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole))
    assert energies[0] == pytest.approx(energies[1], abs=1e-4), energies
