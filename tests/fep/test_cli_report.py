"""``fep report`` on run directories written from synthetic EdgeResults."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from analysis.results import EdgeResult
from fep.cli import main
from ligand_prep.experimental import read_experimental
from ligand_prep.models import AtomMapping, ExperimentalValue, Ligand, Network

MOLBLOCK = "x\n  mlfep\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\n    0.0000    0.0000    0.0000 C   0  0\nM  END\n"


def _tyk2(bench):
    exp = read_experimental(bench / "tyk2" / "experimental.csv")
    with (bench / "tyk2" / "edges.csv").open() as handle:
        pairs = [(row["ligand_a"], row["ligand_b"]) for row in csv.DictReader(handle)]
    return exp, pairs


def _write_run(run_dir, exp, pairs, noise=0.3, seed=0, network=None):
    rng = np.random.default_rng(seed)
    for a, b in pairs:
        ddg = exp[b].dg_kcal_mol - exp[a].dg_kcal_mol + rng.normal(0.0, noise)
        edge = EdgeResult(
            ligand_a=a,
            ligand_b=b,
            mode="binding",
            ddg_mm_kcal_mol=ddg,
            ddg_mm_err_kcal_mol=noise,
            ml_reason="no ML correction: not requested",
        )
        edge.to_json_file(run_dir / "edges" / f"{a}~{b}" / "edge_result.json")
    if network is not None:
        network.to_json_file(run_dir / "network.json")


def test_fep_report_with_experimental_csv(bench, tmp_path, capsys):
    exp, pairs = _tyk2(bench)
    run_dir = tmp_path / "run"
    _write_run(run_dir, exp, pairs)
    out = tmp_path / "report"
    code = main(
        [
            "report",
            str(run_dir),
            "--experimental",
            str(bench / "tyk2" / "experimental.csv"),
            "-o",
            str(out),
            "--json",
            "--n-bootstrap",
            "50",
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["ligands"]) == 13 and len(payload["edges"]) == 18
    assert [row["rank"] for row in payload["ligands"]] == [str(i) for i in range(1, 14)]
    values = [float(row["dg_kcal_mol"]) for row in payload["ligands"]]
    assert values == sorted(values)
    for row in payload["ligands"]:  # 0.3 kcal/mol noise on 18 edges: nodes stay within ~1 kcal/mol
        assert abs(float(row["dg_kcal_mol"]) - exp[row["ligand"]].dg_kcal_mol) < 1.0
    for name in ("results.csv", "edges.csv", "results.json", "report.html"):
        assert (out / name).is_file()
    data = json.loads((out / "results.json").read_text())
    stats = {(s["kind"], s["estimate"]): s for s in data["network"]["statistics"]}
    assert 0.1 < stats[("edges", "mm")]["metrics"]["rmse"]["value"] < 0.6
    assert len(data["network"]["cycle_closures"]) == 6  # tyk2: 18 edges − 13 ligands + 1


def test_fep_report_takes_experimental_values_from_network(tmp_path, capsys):
    values = {"a": -8.0, "b": -9.0, "c": -10.0}
    ligands = tuple(
        Ligand(name=n, molblock=MOLBLOCK, smiles="C", formal_charge=0, experimental=ExperimentalValue(dg_kcal_mol=v))
        for n, v in values.items()
    )
    pairs = [("a", "b"), ("b", "c")]
    edges = tuple(AtomMapping(ligand_a=a, ligand_b=b, mapping={0: 0}, score=1.0) for a, b in pairs)
    network = Network(ligands=ligands, edges=edges)
    exp = {n: ExperimentalValue(dg_kcal_mol=v) for n, v in values.items()}
    run_dir = tmp_path / "run"
    _write_run(run_dir, exp, pairs, noise=0.01, network=network)
    code = main(["report", str(run_dir), "-o", str(tmp_path / "out"), "--json", "--n-bootstrap", "20"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert [row["ligand"] for row in payload["ligands"]] == ["c", "b", "a"]
    assert float(payload["ligands"][0]["exp_dg_kcal_mol"]) == pytest.approx(-10.0)
    assert float(payload["ligands"][0]["dg_kcal_mol"]) == pytest.approx(-10.0, abs=0.05)


def test_fep_report_without_edge_results_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    code = main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "edge_result.json" in err


def test_fep_report_help(capsys):
    assert main(["report", "--help"]) == 0
    assert "--experimental" in capsys.readouterr().out
