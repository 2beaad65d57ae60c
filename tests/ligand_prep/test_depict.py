"""Tests of ligand_prep.depict: mapping and network pictures."""

from __future__ import annotations

import pytest

from ligand_prep.depict import depict_mapping, depict_network
from ligand_prep.mapping import MCSMapper
from ligand_prep.models import Ligand, Network
from mlfep_core import InputError

UNIQUE_A_FILL = "#F98C8C"
UNIQUE_B_FILL = "#72A5F9"


def load_sdf(path, limit: int | None = None) -> list[Ligand]:
    from rdkit import Chem

    out = []
    for mol in Chem.SDMolSupplier(str(path), removeHs=False):
        out.append(
            Ligand(
                name=mol.GetProp("_Name"),
                molblock=Chem.MolToMolBlock(mol),
                smiles=Chem.MolToSmiles(Chem.RemoveHs(mol)),
                formal_charge=Chem.GetFormalCharge(mol),
            )
        )
        if limit and len(out) == limit:
            break
    return out


@pytest.fixture(scope="module")
def tyk2(bench) -> list[Ligand]:
    return load_sdf(bench / "tyk2" / "ligands.sdf", limit=3)


def test_mapping_png_and_svg(tyk2, tmp_path):
    a, b = tyk2[0], tyk2[1]
    mapping = MCSMapper().map(a, b)
    png = depict_mapping(mapping, a, b, tmp_path / "edge.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = depict_mapping(mapping, a, b, tmp_path / "edge.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert a.name in svg and b.name in svg
    # both ligands have unique heavy atoms here: both highlight colours are drawn
    assert UNIQUE_A_FILL in svg and UNIQUE_B_FILL in svg


def test_identical_ligands_have_nothing_highlighted(tyk2, tmp_path):
    a = tyk2[0]
    mapping = MCSMapper().map(a, a)
    svg = depict_mapping(mapping, a, a, tmp_path / "same.svg").read_text()
    assert UNIQUE_A_FILL not in svg and UNIQUE_B_FILL not in svg
    assert "(0 unique)" in svg


def test_network_picture_dashes_charge_changing_edges(tyk2, tmp_path):
    mapper = MCSMapper()
    edges = (mapper.map(tyk2[0], tyk2[1]), mapper.map(tyk2[1], tyk2[2]))
    plain = Network(ligands=tuple(tyk2), edges=edges, planner="mst")
    svg = depict_network(plain, tmp_path / "net.svg").read_text()
    assert "stroke-dasharray" not in svg
    charged = Network(
        ligands=tuple(tyk2), edges=(edges[0], edges[1].model_copy(update={"charge_change": 1})), planner="mst"
    )
    svg = depict_network(charged, tmp_path / "charged.svg").read_text()
    assert "stroke-dasharray" in svg
    png = depict_network(charged, tmp_path / "net.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_suffix_and_wrong_ligands(tyk2, tmp_path):
    mapping = MCSMapper().map(tyk2[0], tyk2[1])
    with pytest.raises(InputError, match=r"\.png or \.svg"):
        depict_mapping(mapping, tyk2[0], tyk2[1], tmp_path / "edge.jpg")
    with pytest.raises(InputError, match="does not belong"):
        depict_mapping(mapping, tyk2[1], tyk2[0], tmp_path / "edge.png")


def test_element_changes_are_highlighted_in_both_panels(tmp_path):
    """toluene -> phenol maps the methyl C onto O: that atom is drawn in the element-change colour on both sides
    and the legend counts it."""
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings

    csv = tmp_path / "pair.csv"
    csv.write_text("name,smiles\ntoluene,Cc1ccccc1\nphenol,Oc1ccccc1\n")
    a, b = read_ligands(csv, align=False)
    mapping = MCSMapper(MappingSettings(use_poses=False)).map(a, b)
    svg = depict_mapping(mapping, a, b, tmp_path / "pair.svg").read_text()
    assert "1 element change(s)" in svg
    assert svg.count("#F9CC3F") >= 2  # the C in toluene's panel, the O in phenol's
    assert UNIQUE_A_FILL not in svg and UNIQUE_B_FILL not in svg  # nothing else differs in heavy atoms
