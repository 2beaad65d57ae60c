"""Run directories for the dashboard tests, written from synthetic results (no simulation)."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app"


def _leg(name: str, dg: float, k: int = 4):
    from analysis.results import LegResult, Verdict

    overlap = np.full((k, k), 0.05) + np.eye(k) * 0.5
    overlap /= overlap.sum(axis=1, keepdims=True)
    fraction = [0.25, 0.5, 0.75, 1.0]
    return LegResult(
        leg=name,
        dg_kcal_mol=dg,
        dg_err_kcal_mol=0.1,
        n_states=k,
        n_iterations=100,
        n_equilibration=10,
        statistical_inefficiency=2.0,
        n_effective=45.0,
        overlap_matrix=overlap.tolist(),
        mixing_matrix=overlap.tolist(),
        round_trips=3,
        convergence={
            "fraction": fraction,
            "forward_dg": [dg + 0.2, dg + 0.1, dg, dg],
            "forward_err": [0.2, 0.15, 0.12, 0.1],
            "reverse_dg": [dg - 0.1, dg, dg, dg],
            "reverse_err": [0.2, 0.15, 0.12, 0.1],
        },
        verdicts=(Verdict(name="overlap", status="pass", message="min neighbour overlap 0.30"),),
        temperature_k=298.15,
    )


def write_synthetic_run(
    root: Path,
    name: str,
    bench: Path,
    *,
    n_edges: int | None = None,
    fail: tuple[str, ...] = (),
    running: tuple[str, ...] = (),
    noise: float = 0.3,
) -> Path:
    """A tyk2 binding run folder: run.json, network.json (13 ligands, experimental values), edge results.

    Edges in ``fail`` get a failed EdgeResult; edges in ``running`` get a solvent-leg status.json owned by this
    (live) process and no result; the other edges are done, with legs that carry diagnostics.
    """
    from analysis.results import EdgeResult, Verdict
    from fep.execution.rundir import RunSpec
    from fep.protocol import tier
    from ligand_prep.experimental import read_experimental
    from ligand_prep.io import read_ligands
    from ligand_prep.models import AtomMapping, Network

    exp = read_experimental(bench / "tyk2" / "experimental.csv")
    ligands = [
        lig.model_copy(update={"experimental": exp[lig.name]}) for lig in read_ligands(bench / "tyk2" / "ligands.sdf")
    ]
    with (bench / "tyk2" / "edges.csv").open() as handle:
        pairs = [(row["ligand_a"], row["ligand_b"]) for row in csv.DictReader(handle)][:n_edges]
    edges = tuple(AtomMapping(ligand_a=a, ligand_b=b, mapping={0: 0, 1: 1}, score=0.8) for a, b in pairs)
    run_dir = root / name
    network = Network(mode="binding", ligands=tuple(ligands), edges=edges, planner="file:edges.csv")
    network.to_json_file(run_dir / "network.json")
    RunSpec(mode="binding", protocol=tier("smoke"), protein=str(bench / "tyk2" / "protein.pdb")).to_json_file(
        run_dir / "run.json"
    )
    rng = np.random.default_rng(0)
    for a, b in pairs:
        key = f"{a}~{b}"
        folder = run_dir / "edges" / key
        if key in running:
            status = {
                "edge": key,
                "leg": "complex",
                "repeat": 0,
                "phase": "production",
                "done": 5,
                "total": 20,
                "ns_done": 0.1,
                "ns_total": 0.4,
                "eta_s": 120.0,
                "pid": os.getpid(),
                "updated": time.time(),
            }
            (folder / "repeat_0" / "complex").mkdir(parents=True)
            (folder / "repeat_0" / "complex" / "status.json").write_text(json.dumps(status))
            continue
        if key in fail:
            EdgeResult.failed(a, b, "binding", "NaN in lambda state 3 after 2 retries").to_json_file(
                folder / "edge_result.json"
            )
            continue
        ddg = exp[b].dg_kcal_mol - exp[a].dg_kcal_mol + rng.normal(0.0, noise)
        legs = {"complex": _leg("complex", ddg - 5.0), "solvent": _leg("solvent", -5.0)}
        for leg in legs:
            leg_dir = folder / "repeat_0" / leg
            leg_dir.mkdir(parents=True, exist_ok=True)
            legs[leg].to_json_file(leg_dir / "leg_result.json")
        EdgeResult(
            ligand_a=a,
            ligand_b=b,
            mode="binding",
            legs=legs,
            ddg_mm_kcal_mol=ddg,
            ddg_mm_err_kcal_mol=0.15,
            ml_reason="no ML correction: not requested",
            verdicts=(Verdict(name="complex", status="warn", message="overlap 0.04 between states 2 and 3"),),
        ).to_json_file(folder / "edge_result.json")
    return run_dir


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory, bench) -> Path:
    """A runs folder with a finished tyk2 run ('tyk2-done', one failed edge) and a running one ('tyk2-live')."""
    root = tmp_path_factory.mktemp("runs")
    with (bench / "tyk2" / "edges.csv").open() as handle:
        pairs = [f"{r['ligand_a']}~{r['ligand_b']}" for r in csv.DictReader(handle)]
    write_synthetic_run(root, "tyk2-done", bench, fail=(pairs[3],))
    write_synthetic_run(root, "tyk2-live", bench, n_edges=4, running=(pairs[2], pairs[3]))
    return root


@pytest.fixture
def app_env(runs_root, monkeypatch) -> Path:
    """The environment `fep app` sets for the Streamlit process."""
    monkeypatch.setenv("MLFEP_RUNS_DIR", str(runs_root))
    monkeypatch.delenv("MLFEP_STORE", raising=False)
    return runs_root


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's AppTest runs page scripts as ``__main__`` and may leave ``sys.modules['__main__']`` pointing
    at one; a later test that starts spawn-method worker processes would then re-run that page in every child.
    Put the real ``__main__`` back after each dashboard test."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main
