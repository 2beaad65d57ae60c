"""Leg jobs on the local process pool and on Dask: a 4-ligand benzene-series hydration network end to end.

One leg is made to fail (a damaged hybrid folder injected before the run): it is retried, recorded with its
error, the rest of the network finishes, and `fep status`, the store and the report show the failure.
"""

from __future__ import annotations

import json
import math
import os
import socket

import pytest

from fep.cli import main
from tests.tiny import TINY_PROTOCOL

TINY = {**TINY_PROTOCOL, "charge_method": "gasteiger"}
SERIES = "name,smiles\nbenzene,c1ccccc1\ntoluene,Cc1ccccc1\nphenol,Oc1ccccc1\nanisole,COc1ccccc1\n"
BROKEN = ("phenol~anisole", "vacuum")


@pytest.fixture(scope="module")
def series_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series")
    (folder / "series.csv").write_text(SERIES)
    (folder / "tiny.json").write_text(json.dumps(TINY))
    return folder / "series.csv", folder / "tiny.json"


@pytest.fixture(scope="module")
def series_run(series_inputs, tmp_path_factory):
    """The network run on 2 local workers, with the phenol~anisole vacuum leg's hybrid folder damaged."""
    ligands, protocol = series_inputs
    run_dir = tmp_path_factory.mktemp("local") / "r"
    broken = run_dir / "edges" / BROKEN[0] / "repeat_0" / BROKEN[1] / "hybrid"
    broken.mkdir(parents=True)
    (broken / "leg.json").write_text("{}")  # an impossible input: a hybrid folder without its system
    code = main(
        [
            "run",
            "--ligands",
            str(ligands),
            "--mode",
            "hydration",
            "--protocol",
            str(protocol),
            "-o",
            str(run_dir),
            "--workers",
            "2",
            "--json",
        ]
    )
    return code, run_dir


def _edge(run_dir, key):
    return json.loads((run_dir / "edges" / key / "edge_result.json").read_text())


def test_network_finishes_around_the_failed_leg(series_run):
    code, run_dir = series_run
    assert code == 1  # one edge failed
    for key in ("benzene~toluene", "benzene~phenol"):
        result = _edge(run_dir, key)
        assert result["status"] == "done" and math.isfinite(result["ddg_mm_kcal_mol"])
        for leg in ("solvent", "vacuum"):
            leg_result = json.loads((run_dir / "edges" / key / "repeat_0" / leg / "leg_result.json").read_text())
            assert leg_result["n_iterations"] == TINY["sampler"]["n_iterations"]
    failed = _edge(run_dir, BROKEN[0])
    assert failed["status"] == "failed" and "vacuum" in failed["error"] and "system.xml" in failed["error"]
    # the failing leg's sibling still ran to the end
    sibling = run_dir / "edges" / BROKEN[0] / "repeat_0" / "solvent" / "leg_result.json"
    assert json.loads(sibling.read_text())["n_iterations"] == TINY["sampler"]["n_iterations"]


def test_store_records_jobs_attempts_and_checksums(series_run):
    from fep.execution.store import file_sha256, open_store

    _, run_dir = series_run
    store = open_store(run_dir)
    (run,) = store.list_runs()
    jobs = store.run_jobs(run["id"])
    assert len(jobs) == 3 * 2
    bad = [j for j in jobs if (j["edge"], j["leg"]) == BROKEN]
    assert [j["state"] for j in jobs if j not in bad] == ["done"] * 5
    assert bad[0]["state"] == "failed" and bad[0]["attempts"] == 2  # retried once (--max-attempts 2)
    assert "system.xml" in bad[0]["error"]
    assert "Traceback" in (run_dir / bad[0]["traceback_file"]).read_text()
    edges = {e["key"]: e for e in store.run_edges(run["id"])}
    assert edges[BROKEN[0]]["state"] == "failed" and edges["benzene~toluene"]["state"] == "done"
    for edge in edges.values():
        assert edge["sha256"] == file_sha256(run_dir / edge["file"])
    assert edges["benzene~toluene"]["ddg_mm"] == pytest.approx(_edge(run_dir, "benzene~toluene")["ddg_mm_kcal_mol"])


def test_status_and_report_show_the_failure(series_run, capsys):
    _, run_dir = series_run
    capsys.readouterr()
    assert main(["status", str(run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"] == "store"
    assert info["counts"]["done"] == 2 and info["counts"]["failed"] == 1
    edge = next(e for e in info["edges"] if e["edge"] == BROKEN[0])
    leg = next(x for x in edge["legs"] if x["leg"] == BROKEN[1])
    assert leg["state"] == "failed" and leg["attempts"] == 2 and "system.xml" in leg["error"]
    html = (run_dir / "report" / "report.html").read_text()
    assert BROKEN[0] in html and "system.xml" in html


def test_rerun_skips_finished_legs_and_proposes_a_repair(series_run, series_inputs, capsys):
    _, run_dir = series_run
    ligands, protocol = series_inputs
    checkpoints = sorted(run_dir.glob("edges/*/repeat_0/*/sampler/checkpoint.json"))
    assert len(checkpoints) == 5
    before = [p.stat().st_mtime_ns for p in checkpoints]
    capsys.readouterr()
    code = main(
        [
            "run",
            "--ligands",
            str(ligands),
            "--mode",
            "hydration",
            "--protocol",
            str(protocol),
            "-o",
            str(run_dir),
            "--resume",
            "--workers",
            "1",
        ]
    )
    out = capsys.readouterr().err
    assert code == 1
    assert [p.stat().st_mtime_ns for p in checkpoints] == before  # no simulation
    assert "cut off ligand(s) anisole" in out
    assert "replacement edge" in out and "anisole" in out.split("replacement edge", 1)[1].splitlines()[0]


def test_cut_off_ligands_and_repairs():
    import tempfile
    from pathlib import Path

    from fep.execution.executors import cut_off_ligands, propose_repairs
    from ligand_prep.io import read_ligands
    from ligand_prep.models import Network

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.csv"
        path.write_text(SERIES)
        ligs = read_ligands(path)
    from ligand_prep.mapping import MCSMapper

    by = {lig.name: lig for lig in ligs}
    mapper = MCSMapper()
    edges = tuple(
        mapper.map(by[a], by[b]) for a, b in (("benzene", "toluene"), ("benzene", "phenol"), ("phenol", "anisole"))
    )
    net = Network(mode="hydration", ligands=tuple(ligs), edges=edges)
    assert cut_off_ligands(net, []) == []
    assert cut_off_ligands(net, ["phenol~anisole"]) == [["anisole"]]
    assert cut_off_ligands(net, ["benzene~phenol"]) == [["anisole", "phenol"]]
    (repair,) = propose_repairs(net, ["phenol~anisole"])
    assert "anisole" in repair.key and {repair.ligand_a, repair.ligand_b} != {"phenol", "anisole"}
    assert repair.score > 0


def test_dask_local_cluster_matches_the_local_executor(series_run, series_inputs, tmp_path):
    distributed = pytest.importorskip("distributed")
    _, local_dir = series_run
    ligands, protocol = series_inputs
    run_dir = tmp_path / "dask"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            dask_pids = set(client.run(os.getpid).values())
        code = main(
            [
                "run",
                "--edge",
                "benzene,toluene",
                "--ligands",
                str(ligands),
                "--mode",
                "hydration",
                "--protocol",
                str(protocol),
                "-o",
                str(run_dir),
                "--executor",
                "dask",
                "--scheduler",
                cluster.scheduler_address,
            ]
        )
    assert code == 0
    dask_result, local_result = _edge(run_dir, "benzene~toluene"), _edge(local_dir, "benzene~toluene")
    sigma = math.hypot(dask_result["ddg_mm_err_kcal_mol"], local_result["ddg_mm_err_kcal_mol"])
    # same seeds, but OpenMM's CPU platform is not bitwise reproducible: the two estimates of one ΔΔG agree
    # within 4 combined σ (measured: -1.13 ± 0.28 vs 0.54 ± 0.71, 2.2 σ apart)
    assert dask_result["status"] == "done" and sigma > 0
    assert abs(dask_result["ddg_mm_kcal_mol"] - local_result["ddg_mm_kcal_mol"]) <= 4 * sigma
    from fep.execution.store import open_store

    store = open_store(run_dir)
    jobs = store.run_jobs(store.list_runs()[0]["id"])
    assert {j["state"] for j in jobs} == {"done"}
    # every leg ran in a Dask worker process, none in the driver
    assert {int(j["worker"].rsplit(":", 1)[1]) for j in jobs} <= dask_pids and os.getpid() not in dask_pids


def test_dask_needs_a_scheduler_or_a_cluster_file(series_inputs, tmp_path, capsys):
    ligands, protocol = series_inputs
    code = main(
        [
            "run",
            "--edge",
            "benzene,toluene",
            "--ligands",
            str(ligands),
            "--mode",
            "hydration",
            "--protocol",
            str(protocol),
            "-o",
            str(tmp_path / "x"),
            "--executor",
            "dask",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--scheduler" in err and len(err.strip().splitlines()) == 1


def test_cluster_config_without_dask_jobqueue_says_what_to_install(tmp_path, monkeypatch):
    import sys

    from fep.execution.executors import ExecutorError, cluster_from_config

    config = tmp_path / "slurm.yaml"
    config.write_text("kind: slurm\njobs: 2\nqueue: gpu\ncores: 4\nmemory: 16GB\n")
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed
    with pytest.raises(ExecutorError, match=r"mlfep\[cluster\]"):
        cluster_from_config(config)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(series_inputs, tmp_path):
    """SIGKILL the whole `fep run` process group mid-production; --resume finishes with exactly n_iterations."""
    import os
    import signal
    import subprocess

    from fep.sampling.storage import load_samples
    from tests.fep.processes import kill_group, start_fep, wait_for_production

    ligands, _ = series_inputs
    n_iterations = 30
    protocol = tmp_path / "longer.json"
    protocol.write_text(json.dumps(dict(TINY, sampler={**TINY["sampler"], "n_iterations": n_iterations})))
    run_dir = tmp_path / "r"
    args = ["run", "--edge", "benzene,toluene", "--ligands", str(ligands), "--mode", "hydration"]
    args += ["--protocol", str(protocol), "-o", str(run_dir), "--workers", "1"]
    proc = start_fep(args, stderr=subprocess.DEVNULL)
    try:
        wait_for_production(run_dir, proc, n_iterations, min_done=3)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker processes, no clean-up
    finally:
        kill_group(proc)
    assert not (run_dir / "edges" / "benzene~toluene" / "edge_result.json").exists()
    code = main([*args, "--resume"])
    assert code == 0
    for leg in ("solvent", "vacuum"):
        leg_dir = run_dir / "edges" / "benzene~toluene" / "repeat_0" / leg
        assert json.loads((leg_dir / "leg_result.json").read_text())["n_iterations"] == n_iterations
        data = load_samples(leg_dir / "sampler")
        assert data.n_iterations == n_iterations
        assert data.energies.shape[0] == n_iterations
    assert json.loads((run_dir / "edges" / "benzene~toluene" / "edge_result.json").read_text())["status"] == "done"


@pytest.mark.slow
def test_smoke_series_with_repair(series_inputs, tmp_path, charge_cache, monkeypatch, capsys):
    """The smoke protocol on the 4-ligand series; the failed edge cuts anisole off and --repair reconnects it."""
    ligands, _ = series_inputs
    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    run_dir = tmp_path / "r2"
    broken = run_dir / "edges" / BROKEN[0] / "repeat_0" / BROKEN[1] / "hybrid"
    broken.mkdir(parents=True)
    (broken / "leg.json").write_text("{}")
    args = ["run", "--ligands", str(ligands), "--mode", "hydration", "--protocol", "smoke", "-o", str(run_dir)]
    assert main(args) == 1
    assert "replacement edge" in capsys.readouterr().err
    checkpoint = run_dir / "edges" / "benzene~toluene" / "repeat_0" / "solvent" / "sampler" / "checkpoint.json"
    before = checkpoint.stat().st_mtime_ns
    assert main([*args, "--resume", "--repair"]) == 1  # the damaged edge still fails, the repair edge runs
    assert checkpoint.stat().st_mtime_ns == before
    from ligand_prep.models import Network

    net = Network.from_json_file(run_dir / "network.json")
    assert len(net.edges) == 4
    repair = net.edges[-1]
    assert "anisole" in repair.key
    assert _edge(run_dir, repair.key)["status"] == "done"
    html = (run_dir / "report" / "report.html").read_text()
    assert "anisole" in html


def test_edge_with_every_leg_done_but_no_result_is_running_while_its_driver_lives(series_run, capsys):
    _, run_dir = series_run
    result = run_dir / "edges" / "benzene~toluene" / "edge_result.json"
    driver = run_dir / "driver.json"
    kept_result, kept_driver = result.read_text(), driver.read_text()
    assert json.loads(kept_driver)["pid"] > 0
    states = {}
    try:
        result.unlink()  # the legs are sampled; the driver is still combining them (MBAR, NNP)
        for pid, label in ((os.getpid(), "alive"), (2**22 + 1, "gone")):  # 2**22 + 1: above Linux's pid_max
            driver.write_text(json.dumps({"host": socket.gethostname(), "pid": pid}))
            capsys.readouterr()
            assert main(["status", str(run_dir), "--json"]) == 0
            info = json.loads(capsys.readouterr().out)
            states[label] = next(e for e in info["edges"] if e["edge"] == "benzene~toluene")["state"]
    finally:
        result.write_text(kept_result)
        driver.write_text(kept_driver)
    assert states == {"alive": "running", "gone": "interrupted"}


def test_local_pool_shares_the_cores_between_its_workers(monkeypatch):
    from fep.execution import executors

    for var in executors.CPU_THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(executors, "gpu_count", lambda: 0)
    pool = executors.LocalExecutor(workers=2)
    try:
        seen = pool._pool.submit(os.getenv, "OPENMM_CPU_THREADS").result(timeout=120)
    finally:
        pool.close()
    assert seen == str(max(1, (os.cpu_count() or 1) // 2))
    assert not any(var in os.environ for var in executors.CPU_THREAD_VARIABLES)  # the driver's own are untouched


def test_nnp_node_corrections_are_made_on_the_workers_and_close_cycles_like_mm(tmp_path, capsys):
    """ANI-2x corrects the chlorobenzene and toluene edges (node corrections, one per ligand and environment, made
    on the workers); the benzene → chlorobenzene → toluene cycle closes for ML exactly as for MM; bromobenzene's
    edge keeps MM with the reason."""
    import sqlite3

    (tmp_path / "halo.csv").write_text(
        "name,smiles\nbenzene,c1ccccc1\nchlorobenzene,Clc1ccccc1\ntoluene,Cc1ccccc1\nbromobenzene,Brc1ccccc1\n"
    )
    # the smoke tier's corrections, shorter still: this test is about where they are made and how they are used
    nnp = {"switch_steps": 20, "relax_steps": 10, "mm_equilibration_ps": 0.2, "decorrelation_ps": 0.2}
    (tmp_path / "tiny.json").write_text(json.dumps({**TINY, "nnp": nnp}))
    edges = ("benzene,chlorobenzene", "chlorobenzene,toluene", "benzene,toluene", "benzene,bromobenzene")
    (tmp_path / "edges.csv").write_text("ligand_a,ligand_b\n" + "".join(f"{e}\n" for e in edges))
    run_dir, network = tmp_path / "r", tmp_path / "network.json"
    plan = ["plan", str(tmp_path / "halo.csv"), "--mode", "hydration", "--network", str(tmp_path / "edges.csv")]
    assert main([*plan, "-o", str(network)]) == 0
    args = ["run", str(network), "--protocol", str(tmp_path / "tiny.json"), "--nnp", "ani2x", "-o", str(run_dir)]
    assert main([*args, "--workers", "2", "--json"]) == 0
    chloro, bromo = _edge(run_dir, "benzene~chlorobenzene"), _edge(run_dir, "benzene~bromobenzene")
    assert math.isfinite(chloro["ddg_ml_kcal_mol"]) and chloro["ddg_ml_err_kcal_mol"] > 0
    assert {(c["leg"], c["state"], c["ligand"]) for c in chloro["corrections"]} == {
        (leg, state, name)
        for leg in ("solvent", "vacuum")
        for state, name in (("A", "benzene"), ("B", "chlorobenzene"))
    }
    assert all(c["status"] in ("pass", "warn") and c["wall_s"] > 0 and c["cpu_s"] > 0 for c in chloro["corrections"])
    assert bromo["ddg_ml_kcal_mol"] is None and "Br" in bromo["ml_reason"] and math.isfinite(bromo["ddg_mm_kcal_mol"])
    # one correction per ligand and environment, the same numbers in every edge of the ligand
    for name in ("benzene", "chlorobenzene", "toluene"):
        for env in ("solvent", "vacuum"):
            stored = json.loads((run_dir / "nodes" / name / f"{env}.json").read_text())
            for key in ("benzene~chlorobenzene", "chlorobenzene~toluene", "benzene~toluene"):
                used = [c for c in _edge(run_dir, key)["corrections"] if c["ligand"] == name and c["leg"] == env]
                assert all(c["dg_kcal_mol"] == stored["dg_kcal_mol"] for c in used)
    cycle = [_edge(run_dir, k) for k in ("benzene~chlorobenzene", "chlorobenzene~toluene", "benzene~toluene")]
    closure_mm = cycle[0]["ddg_mm_kcal_mol"] + cycle[1]["ddg_mm_kcal_mol"] - cycle[2]["ddg_mm_kcal_mol"]
    closure_ml = cycle[0]["ddg_ml_kcal_mol"] + cycle[1]["ddg_ml_kcal_mol"] - cycle[2]["ddg_ml_kcal_mol"]
    assert closure_ml == pytest.approx(closure_mm, abs=1e-9)
    with sqlite3.connect(run_dir / "mlfep.sqlite") as db:
        finished = [t for (t,) in db.execute("SELECT finished_at FROM jobs").fetchall()]
    assert len(finished) == 8
    for path in (run_dir / "nodes").glob("*/*.json"):  # written by the legs' workers, before the last job ended
        assert path.stat().st_mtime <= max(finished)


def test_a_node_correction_that_raises_leaves_the_mm_value(tmp_path, monkeypatch):
    """A failing ML step (here: no weights) gives a 'fail' correction with the reason, is not cached, and the edge's
    combination keeps its MM value."""
    from fep.execution.runner import node_corrections
    from fep.nnp import nodes
    from fep.protocol import load_protocol
    from gpu_kernels.weights import ModelWeightsError
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands

    (tmp_path / "l.csv").write_text("name,smiles\nbenzene,c1ccccc1\n")
    prep = assign_charges(read_ligands(tmp_path / "l.csv")[0], method="gasteiger", cache_dir=tmp_path / "q")

    def no_weights(*args, **kwargs):
        raise ModelWeightsError("ANI-2x weights not found in /nowhere")

    monkeypatch.setattr(nodes, "node_correction", no_weights)
    out = node_corrections([("B", prep)], ("solvent",), load_protocol("smoke"), tmp_path / "run")
    assert [(c.state, c.status, c.ligand) for c in out] == [("B", "fail", "benzene")]
    assert "weights not found" in out[0].reason
    assert not (tmp_path / "run" / "nodes").exists()
