"""Tests of the ``fep plan`` command."""

from __future__ import annotations

import json

from fep.cli import main
from ligand_prep.models import Network


def test_plan_tyk2_writes_network_and_json(bench, tmp_path, capsys):
    out = tmp_path / "network.json"
    images = tmp_path / "img"
    code = main(["plan", str(bench / "tyk2" / "ligands.sdf"), "-o", str(out), "--images", str(images), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    network = Network.from_json_file(out)
    assert len(network.ligands) == 13 and len(network.edges) == 12
    payload = json.loads(captured.out)
    assert payload["connected"] is True
    assert len(payload["ligands"]) == 13
    assert {"ligand_a", "ligand_b", "score", "n_mapped", "charge_change", "warnings"} <= set(payload["edges"][0])
    assert [(e["ligand_a"], e["ligand_b"]) for e in payload["edges"]] == [
        (e.ligand_a, e.ligand_b) for e in network.edges
    ]
    assert (images / "network.png").is_file()
    assert sorted(p.name for p in images.glob("*~*.png")) == sorted(f"{e.key}.png" for e in network.edges)
    assert "12 edges over 13 ligands" in captured.err


def test_plan_with_edges_file(bench, tmp_path, capsys):
    out = tmp_path / "network.json"
    code = main(
        ["plan", str(bench / "tyk2" / "ligands.sdf"), "--network", str(bench / "tyk2" / "edges.csv"), "-o", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    assert len(Network.from_json_file(out).edges) == 18


def test_plan_unknown_ligand_in_edges_file_exits_2_naming_the_row(bench, tmp_path, capsys):
    edges = tmp_path / "edges.csv"
    edges.write_text("ligand_a,ligand_b\nlig_ejm_31,lig_ejm_42\nlig_ejm_31,lig_missing\n")
    out = tmp_path / "network.json"
    code = main(["plan", str(bench / "tyk2" / "ligands.sdf"), "--network", str(edges), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:")
    assert "row 3" in err[0] and "lig_missing" in err[0]
    assert not out.exists()


def test_plan_hydration_from_smiles_csv(bench, tmp_path, capsys):
    out = tmp_path / "network.json"
    code = main(
        ["plan", str(bench / "freesolv" / "rhfe_benzenes_ligands.csv"), "--mode", "hydration", "-o", str(out), "--json"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    network = Network.from_json_file(out)
    assert network.mode == "hydration" and len(network.edges) == 9
    assert json.loads(captured.out)["connected"] is True


def test_plan_bad_options_exit_2(bench, tmp_path, capsys):
    sdf = str(bench / "tyk2" / "ligands.sdf")
    assert main(["plan", sdf, "--mode", "gas", "-o", str(tmp_path / "n.json")]) == 2
    assert main(["plan", sdf, "--network", "nope.csv", "-o", str(tmp_path / "n.json")]) == 2
    assert main(["plan", sdf, "--star-reference", "lig_ejm_31", "-o", str(tmp_path / "n.json")]) == 2
    err = capsys.readouterr().err
    assert "--mode gas" in err and "nope.csv" in err and "--network star" in err
