"""Tests of ligand_prep.network: MST / redundant / star / explicit-edge planning on the shared benchmark sets."""

from __future__ import annotations

import networkx as nx
import pytest

from ligand_prep.mapping import MappingSettings, MCSMapper
from ligand_prep.models import Ligand, Network
from ligand_prep.network import network_from_edges, plan_network
from mlfep_core import InputError, MappingError

TARGETS = ["tyk2", "p38", "thrombin", "mcl1", "ptp1b", "eg5", "pde2"]


def load_sdf(path) -> list[Ligand]:
    """Ligands straight from a benchmark SDF with RDKit (independent of ligand_prep.io)."""
    from rdkit import Chem

    return [
        Ligand(
            name=mol.GetProp("_Name"),
            molblock=Chem.MolToMolBlock(mol),
            smiles=Chem.MolToSmiles(Chem.RemoveHs(mol)),
            formal_charge=Chem.GetFormalCharge(mol),
        )
        for mol in Chem.SDMolSupplier(str(path), removeHs=False)
    ]


@pytest.fixture(scope="module")
def sets(bench) -> dict[str, list[Ligand]]:
    return {t: load_sdf(bench / t / "ligands.sdf") for t in TARGETS}


def _graph(network: Network):
    graph = nx.Graph()
    graph.add_nodes_from(lig.name for lig in network.ligands)
    graph.add_edges_from((e.ligand_a, e.ligand_b) for e in network.edges)
    return graph


@pytest.mark.parametrize("target", TARGETS)
def test_mst_connects_every_ligand_of_the_benchmark(sets, target):
    ligands = sets[target]
    calls = []
    network = plan_network(ligands, progress=lambda done, total, msg: calls.append((done, total)))
    n = len(ligands)
    assert calls[-1] == (n * (n - 1) // 2, n * (n - 1) // 2)
    assert network.planner == "mst" and network.mode == "binding"
    assert len(network.edges) == n - 1
    graph = _graph(network)
    assert nx.is_connected(graph) and graph.number_of_nodes() == n
    for edge in network.edges:
        assert len(edge.mapping) >= 10
        assert 0.0 < edge.score <= 1.0
    if target == "thrombin":
        for edge in network.edges:
            involves_lig4 = "lig_4" in (edge.ligand_a, edge.ligand_b)
            assert (edge.charge_change != 0) == involves_lig4
            assert any("charge-changing" in w for w in edge.warnings) == involves_lig4
        assert any("lig_4" in (e.ligand_a, e.ligand_b) for e in network.edges)  # lig_4 must be connected


def test_mst_minimises_total_cost(sets):
    ligands = sets["tyk2"]
    mapper = MCSMapper()
    network = plan_network(ligands, mapper=mapper)
    cost = sum(1 - e.score for e in network.edges)
    # any other spanning tree built from the same scores costs at least as much: check against star trees
    for hub in ligands[:4]:
        star = plan_network(ligands, network="star", reference=hub.name, mapper=mapper)
        assert sum(1 - e.score for e in star.edges) >= cost - 1e-9


def test_thrombin_edges_file_flags_exactly_the_lig4_edges(sets, bench):
    network = network_from_edges(sets["thrombin"], bench / "thrombin" / "edges.csv")
    charged = sorted(e.key for e in network.edges if e.charge_change)
    assert charged == ["lig_4~lig_5", "lig_4~lig_7f"]
    assert all(e.charge_change == -1 for e in network.edges if e.charge_change)


def test_tyk2_edges_file_maps_all_18_edges_in_order(sets, bench):
    import csv

    path = bench / "tyk2" / "edges.csv"
    rows = [(r["ligand_a"], r["ligand_b"]) for r in csv.DictReader(path.open())]
    network = plan_network(sets["tyk2"], network=str(path))
    assert len(network.edges) == 18
    assert [(e.ligand_a, e.ligand_b) for e in network.edges] == rows
    assert network.planner == f"file:{path}"
    assert all(e.mapping and e.score > 0 for e in network.edges)


def test_redundant_puts_every_ligand_on_a_cycle(sets):
    ligands = sets["tyk2"]
    mapper = MCSMapper()
    tree = plan_network(ligands, mapper=mapper)
    network = plan_network(ligands, network="redundant", mapper=mapper)
    graph = _graph(network)
    assert {e.key for e in tree.edges} <= {e.key for e in network.edges}
    bridges = {frozenset(b) for b in nx.bridges(graph)}
    on_cycle = {n for u, v in graph.edges() if frozenset((u, v)) not in bridges for n in (u, v)}
    assert on_cycle == {lig.name for lig in ligands}
    assert len(network.edges) > len(tree.edges)


def test_star_uses_the_reference_or_the_best_mean(sets):
    ligands = sets["tyk2"]
    network = plan_network(ligands, network="star", reference="lig_ejm_31")
    assert network.planner == "star:lig_ejm_31"
    assert len(network.edges) == len(ligands) - 1
    assert all(e.ligand_a == "lig_ejm_31" for e in network.edges)
    auto = plan_network(ligands, network="star")
    assert auto.planner.startswith("star:")
    with pytest.raises(InputError, match="nope"):
        plan_network(ligands, network="star", reference="nope")


def test_unconnectable_ligand_is_named(sets):
    import numpy as np
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    conf = mol.GetConformer()
    for i in range(mol.GetNumAtoms()):
        p = np.asarray(conf.GetAtomPosition(i)) + 50.0
        conf.SetAtomPosition(i, p.tolist())
    far = Ligand(name="far_benzene", molblock=Chem.MolToMolBlock(mol), smiles="c1ccccc1", formal_charge=0)
    with pytest.raises(MappingError, match="far_benzene"):
        plan_network([*sets["tyk2"][:3], far])


def test_bad_inputs(sets, tmp_path):
    ligands = sets["tyk2"]
    bad = tmp_path / "edges.csv"
    bad.write_text("ligand_a,ligand_b\nlig_ejm_31,lig_ejm_42\nlig_ejm_31,lig_xyz\n")
    with pytest.raises(InputError, match=r"row 3: unknown ligand 'lig_xyz'"):
        network_from_edges(ligands, bad)
    cols = tmp_path / "cols.csv"
    cols.write_text("a,b\nlig_ejm_31,lig_ejm_42\n")
    with pytest.raises(InputError, match="ligand_a,ligand_b"):
        network_from_edges(ligands, cols)
    with pytest.raises(InputError, match="twice"):
        plan_network([ligands[0], ligands[0]])
    with pytest.raises(InputError, match="unknown network"):
        plan_network(ligands, network="ring")
    with pytest.raises(InputError, match="at least two"):
        plan_network(ligands[:1])


def test_network_json_round_trip(sets, tmp_path):
    network = plan_network(sets["tyk2"], protein="protein.pdb")
    path = network.to_json_file(tmp_path / "network.json")
    again = Network.from_json_file(path)
    assert again == network
    assert again.protein == "protein.pdb"


def test_freesolv_benzenes_planned_from_smiles_in_hydration_mode(bench):
    io = pytest.importorskip("ligand_prep.io", reason="ligand_prep.io (read_ligands) not available yet")
    ligands = io.read_ligands(bench / "freesolv" / "rhfe_benzenes_ligands.csv")
    network = plan_network(ligands, mode="hydration")
    assert network.mode == "hydration"
    assert len(network.edges) == len(ligands) - 1 == 9
    assert nx.is_connected(_graph(network))
    names = {lig.name for lig in ligands}
    assert "benzene" in names and "toluene" in names
    for edge in network.edges:
        assert sum(1 for _ in edge.mapping) >= 11  # at least the phenyl ring + 5 H


MIXED = (
    "name,smiles\nethane,CC\nchloroethane,CCCl\nmethanol,CO\nmethanethiol,CS\npropane,CCC\npropan-2-ol,CC(C)O\n"
    "cyclohexane,C1CCCCC1\ncyclohexanone,O=C1CCCCC1\nbenzene,c1ccccc1\npyridine,c1ccncc1\n"
)


def test_a_hydration_series_of_mixed_scaffolds_plans_in_one_go(tmp_path):
    """Each ligand embedded for itself (no common frame), mapped on topology: the series falls into three groups
    (chains, saturated rings, aromatic rings), each planned as its own network, with the obvious pairs."""
    from ligand_prep.io import read_ligands

    (tmp_path / "mixed.csv").write_text(MIXED)
    ligands = read_ligands(tmp_path / "mixed.csv", align=False)
    network = plan_network(ligands, mode="hydration")
    keys = {edge.key for edge in network.edges}
    wanted = {
        "ethane~chloroethane",
        "methanol~methanethiol",
        "propane~propan-2-ol",
        "cyclohexane~cyclohexanone",
        "benzene~pyridine",
    }
    assert wanted <= keys, keys
    graph = _graph(network)
    assert nx.number_connected_components(graph) == 3 and set(graph.nodes) == {lig.name for lig in ligands}
    ethane = next(e for e in network.edges if e.key == "ethane~chloroethane")
    heavy = [a for a in ethane.mapping if ligands[0].to_rdkit().GetAtomWithIdx(a).GetAtomicNum() > 1]
    assert len(heavy) == 2 and len(ethane.mapping) >= 5  # a two-heavy-atom core, anchored by its hydrogens
    with pytest.raises(MappingError, match="need 3 not on one line"):  # without the hydrogens: two atoms only
        MCSMapper(MappingSettings(use_poses=False, map_hydrogens=False)).map(ligands[0], ligands[1])


def test_substituents_at_the_same_ring_position_map_onto_each_other(bench):
    """On topology, toluene's methyl carbon maps onto phenol's oxygen and phenol's oxygen onto anisole's, whatever
    the ligands' own poses (each pair is fitted for itself)."""
    from ligand_prep.io import read_ligands

    ligands = {lig.name: lig for lig in read_ligands(bench / "freesolv" / "rhfe_benzenes_ligands.csv", align=False)}
    mapper = MCSMapper(MappingSettings(use_poses=False))

    def substituent(name: str, element: str) -> int:
        mol = ligands[name].to_rdkit()
        return next(a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == element and not a.GetIsAromatic())

    toluene_phenol = mapper.map(ligands["toluene"], ligands["phenol"]).mapping
    assert toluene_phenol[substituent("toluene", "C")] == substituent("phenol", "O")
    phenol_anisole = mapper.map(ligands["phenol"], ligands["anisole"]).mapping
    assert phenol_anisole[substituent("phenol", "O")] == substituent("anisole", "O")
