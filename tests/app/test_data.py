"""app.data: run discovery, states, progress, ranked tables and downloads from synthetic run folders."""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys

import pytest

from app import data
from fep.protocol import tier
from mlfep_core import InputError


def test_list_runs_states_and_progress(runs_root):
    runs = {r.name: r for r in data.FolderRunSource(runs_root).list_runs()}
    assert set(runs) == {"tyk2-done", "tyk2-live"}
    done, live = runs["tyk2-done"], runs["tyk2-live"]
    assert done.state == "partial" and done.counts == {"done": 17, "failed": 1}
    assert done.progress == 1.0 and "NaN" in done.message
    assert done.mode == "binding" and done.protocol == "smoke" and done.n_edges == 18
    # 2 of 4 edges done (2 legs each), 2 running: one leg 5/20 each, one leg pending each
    assert live.state == "running" and live.counts == {"done": 2, "running": 2}
    work = data._phase_work(tier("smoke"), "complex", nnp=False)
    leg = data.leg_fraction({"state": "running", "phase": "production", "done": 5, "total": 20}, work)
    assert live.progress == pytest.approx((4 + 2 * leg) / 8, abs=1e-4)


@pytest.mark.parametrize("leg", ["complex", "vacuum"])
def test_leg_progress_only_moves_forward_through_the_phases(leg):
    """Each phase restarts its own count (windows while equilibrating, iterations while sampling); the leg's
    fraction must still grow at every report, from 0 to 1."""
    protocol = tier("smoke")
    work = data._phase_work(protocol, leg, nnp=True)
    sampler = protocol.sampler_for(leg)
    k = len(protocol.windows())
    reports = [("pending", 0, 0), ("starting", 0, 0), ("building", 0, 0)]
    reports += [("equilibration_nvt", i, k) for i in range(1, k + 1)]
    if leg != "vacuum":
        reports += [("equilibration_npt", i, k) for i in range(1, k + 1)]
    reports += [("production", i, sampler.n_iterations) for i in range(sampler.n_iterations + 1)]
    reports += [("analysing", 0, 0), ("nnp correction", 0, 2), ("nnp correction", 1, 2), ("done", 20, 20)]
    values = [
        data.leg_fraction({"state": "running", "phase": phase, "done": done, "total": total}, work)
        for phase, done, total in reports
    ]
    assert values[0] == 0.0 and values[-1] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(values)), values
    # equilibration is a small share of a smoke leg: sampling starts well below half way
    start = reports.index(("production", 0, sampler.n_iterations))
    assert 0.05 < values[start] < 0.3


def test_a_resumed_leg_keeps_its_checkpointed_progress(tmp_path):
    """A resumed leg reports "building" again: its last checkpoint's iteration keeps its fraction."""
    work = data._phase_work(tier("smoke"), "solvent", nnp=False)
    (tmp_path / "sampler").mkdir()
    (tmp_path / "sampler" / "checkpoint.json").write_text(json.dumps({"iteration": 15}))
    entry = {"state": "running", "phase": "production", "done": 15, "total": 20, "total_iterations": 20}
    before = data.leg_fraction(entry, work, tmp_path)
    resumed = {"state": "running", "phase": "building", "done": 0, "total": 0, "total_iterations": 20}
    assert data.leg_fraction(resumed, work, tmp_path) == pytest.approx(before)


def test_run_dir_refuses_names_outside_the_root(runs_root):
    source = data.FolderRunSource(runs_root)
    assert source.run_dir("tyk2-done") == (runs_root / "tyk2-done").resolve()
    for bad in ("../etc", "nope", "/tmp"):
        with pytest.raises(InputError):
            source.run_dir(bad)


def test_open_source_reads_the_environment(runs_root, monkeypatch):
    monkeypatch.setenv(data.RUNS_ENV, str(runs_root))
    source = data.open_source()
    assert isinstance(source, data.FolderRunSource) and source.root == runs_root.resolve()


def test_launched_run_that_died_early_is_failed_with_the_log_line(tmp_path):
    run = tmp_path / "broken"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / data.LAUNCH_FILE).write_text(json.dumps({"pid": dead.pid, "created": 1.0, "mode": "hydration"}))
    (run / data.LOG_FILE).write_text("reading\nerror: ligands.csv row 3 (x): SMILES 'C1CC' cannot be parsed\n")
    summary = data.summarize_run(run)
    assert summary.state == "failed"
    assert summary.message.startswith("error: ligands.csv row 3")
    assert [r.name for r in data.FolderRunSource(tmp_path).list_runs()] == ["broken"]


def test_ligand_table_is_ranked_with_structures_and_experiment(runs_root):
    results = data.load_results(runs_root / "tyk2-done", n_bootstrap=20)
    rows = data.ligand_table(results)
    assert len(rows) == 13
    assert [r["rank"] for r in rows] == list(range(1, 14))
    values = [r["dg_kcal_mol"] for r in rows]
    assert values == sorted(values)
    assert all(r["structure"].startswith("data:image/svg+xml;base64,") for r in rows)
    assert all(r["estimate"] == "MM" and r["dg_ml_kcal_mol"] is None for r in rows)
    for r in rows:  # 0.3 kcal/mol noise: node estimates stay close to experiment
        assert r["abs_error_kcal_mol"] == pytest.approx(abs(r["dg_kcal_mol"] - r["exp_dg_kcal_mol"]), abs=0.011)
        assert r["abs_error_kcal_mol"] < 1.0


def test_edge_table_has_verdicts_and_the_failure(runs_root):
    results = data.load_results(runs_root / "tyk2-done", n_bootstrap=0)
    rows = {r["edge"]: r for r in data.edge_table(results)}
    failed = [r for r in rows.values() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["verdict"] == "fail" and "NaN" in failed[0]["details"]
    done = [r for r in rows.values() if r["status"] == "done"]
    assert all(r["verdict"] == "warn" and "overlap 0.04" in r["details"] for r in done)
    assert all(r["exp_ddg_kcal_mol"] is not None and r["abs_error_kcal_mol"] < 1.5 for r in done)


def test_results_csv_and_sdf_downloads(runs_root):
    from rdkit import Chem

    results = data.load_results(runs_root / "tyk2-done", n_bootstrap=0)
    table = list(csv.DictReader(io.StringIO(data.results_csv(results))))
    assert len(table) == 13 and table[0]["rank"] == "1" and table[0]["smiles"]
    by_name = {row["ligand"]: row for row in table}
    sdf = data.predictions_sdf(results)
    supplier = Chem.SDMolSupplier()
    supplier.SetData(sdf, removeHs=False)
    mols = [m for m in supplier]
    assert len(mols) == 13 and all(m is not None and m.GetNumConformers() == 1 for m in mols)
    for mol in mols:
        name = mol.GetProp("_Name")
        assert float(mol.GetProp("mlfep_dg_kcal_mol")) == pytest.approx(float(by_name[name]["dg_kcal_mol"]))
        assert mol.GetProp("mlfep_rank") == by_name[name]["rank"]
        assert mol.HasProp("mlfep_expt_dg_kcal_mol")


def test_report_html_is_written_once_and_reused(runs_root, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(runs_root / "tyk2-live", run)
    html = data.report_html(run, n_bootstrap=10)
    assert html == run / "report" / "report.html"
    text = html.read_text()
    assert "<html" in text and "Ranked ligands" in text
    first = html.stat().st_mtime_ns
    assert data.report_html(run, n_bootstrap=10).stat().st_mtime_ns == first


def test_no_results_yet_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match=r"edge_result\.json"):
        data.load_results(tmp_path)


def test_mol_image_uri():
    assert data.mol_image_uri("c1ccccc1").startswith("data:image/svg+xml;base64,")
    assert data.mol_image_uri("C1CC") is None


def test_store_source_lists_stored_and_folder_runs(runs_root, tmp_path):
    from fep.execution.rundir import RunSpec
    from fep.execution.store import open_store
    from ligand_prep.models import Network

    url = f"sqlite:///{tmp_path / 'team.sqlite'}"
    store = open_store(url, create=True)
    done = runs_root / "tyk2-done"
    network = Network.from_json_file(done / "network.json")
    spec = RunSpec.from_json_file(done / "run.json")
    store.register_run(done, network, spec)
    elsewhere = store.register_run(tmp_path / "cluster" / "far-away", network, spec)  # folder not on this machine
    jobs = store.run_jobs(elsewhere)
    store.set_job(jobs[0]["leg_id"], "running")
    store.set_job(jobs[1]["leg_id"], "done")
    store.close()

    source = data.open_source(runs=runs_root, store=url)
    assert isinstance(source, data.StoreRunSource)
    runs = {r.name: r for r in source.list_runs()}
    assert set(runs) == {"tyk2-done", "tyk2-live", "far-away"}  # the live run is only in the runs folder
    assert runs["tyk2-done"].state == "partial"  # summarised from its files
    far = runs["far-away"]
    assert far.state == "running" and far.counts == {"legs queued": 34, "legs running": 1, "legs done": 1}
    assert "not on this machine" in far.message
    assert source.run_dir("tyk2-done") == done
    with pytest.raises(InputError, match="not on this machine"):
        source.run_dir("far-away")


def test_store_source_refuses_a_missing_store(runs_root, tmp_path):
    with pytest.raises(InputError, match="no results store"):
        data.open_source(runs=runs_root, store=str(tmp_path / "none.sqlite"))


def test_experimental_values_uploaded_after_a_run_replace_the_networks(runs_root, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(runs_root / "tyk2-done", run_dir)
    before = data.load_results(run_dir, n_bootstrap=20)
    name = sorted(before.experimental)[0]
    text = f"name,dg_kcal_mol,dg_err_kcal_mol\n{name},-12.34,0.4\nnot_in_this_run,-5.0,0.1\n"
    found = data.save_experimental(run_dir, "assay.csv", text.encode())
    assert set(found) == {name}
    after = data.load_results(run_dir, n_bootstrap=20)
    assert after.experimental[name] == pytest.approx(-12.34)
    assert data.run_signature(run_dir) != data.run_signature(runs_root / "tyk2-done")  # the page's cache sees it
    with pytest.raises(InputError, match=r"assay2\.csv: needs a 'ligand' or 'name' column"):
        data.save_experimental(run_dir, "assay2.csv", b"compound,dg\nx,1\n")
    with pytest.raises(InputError, match="no row names a ligand of this run"):
        data.save_experimental(run_dir, "other.csv", b"name,dg_kcal_mol\nzzz,-1\n")


def test_split_log_keeps_library_warnings_apart():
    log = (
        "charges for benzene\n"
        "/venv/lib/python3.11/site-packages/openff/x.py:88: UserWarning: something internal\n"
        "  warnings.warn(message)\n"
        "all legs 3/12\n"
        "error: benzene~toluene failed: NaN (a message for the user)\n"
    )
    plain, technical = data.split_log(log)
    assert plain.splitlines() == [
        "charges for benzene",
        "all legs 3/12",
        "error: benzene~toluene failed: NaN (a message for the user)",
    ]
    assert "UserWarning" in technical and "warnings.warn" in technical
