"""Each dashboard page's logic through Streamlit's AppTest, on synthetic run folders (no browser)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "app"
TIMEOUT = 120


def _page(name: str, run: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP / "views" / f"{name}.py"), default_timeout=TIMEOUT)
    if run is not None:
        at.query_params["run"] = run
    return at.run()


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_navigation_has_the_four_pages(app_env):
    at = AppTest.from_file(str(APP / "main.py"), default_timeout=TIMEOUT).run()
    _no_exception(at)
    assert [t.value for t in at.title] == ["Runs"]
    for page, title in (("views/new_run.py", "New run"), ("views/progress.py", "Progress")):
        at.switch_page(page).run()
        _no_exception(at)
        assert at.title[0].value == title


def test_runs_page_lists_runs_with_state_and_progress(app_env):
    at = _page("runs")
    _no_exception(at)
    table = at.dataframe[0].value
    assert set(table["run"]) == {"tyk2-done", "tyk2-live"}
    rows = table.set_index("run")
    assert rows.loc["tyk2-done", "state"] == "partial" and rows.loc["tyk2-done", "failed"] == 1
    assert rows.loc["tyk2-live", "state"] == "running" and 0 < rows.loc["tyk2-live", "progress"] < 1
    assert (rows["protocol"] == "smoke").all() and (rows["created"] != "").all()
    at.selectbox[0].set_value("tyk2-live").run()
    assert at.query_params["run"] == ["tyk2-live"] or at.query_params["run"] == "tyk2-live"


def test_runs_page_without_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFEP_RUNS_DIR", str(tmp_path / "none"))
    at = _page("runs")
    _no_exception(at)
    assert "No runs yet" in at.info[0].value


def test_progress_page_shows_legs_eta_and_failures(app_env):
    at = AppTest.from_file(str(APP / "views" / "progress.py"), default_timeout=TIMEOUT)
    at.query_params["run"] = "tyk2-live"
    at.session_state["auto_refresh"] = False
    at.run()
    _no_exception(at)
    legs = at.dataframe[0].value
    assert len(legs) == 8  # 4 edges x (complex, solvent)
    running = legs[legs["leg state"] == "running"]
    assert len(running) == 2 and set(running["step"]) == {"sampling: iteration 5 of 20"}
    assert "ETA" not in legs  # one overall ETA, on the progress bar
    assert (legs[legs["edge state"] == "done"]["leg state"] == "done").all()
    from app.data import _phase_work
    from fep.protocol import tier

    work = _phase_work(tier("smoke"), "complex", nnp=False)  # the running legs: 5 of 20 production iterations
    running_leg = (sum(work.values()) - work["production"] * 0.75 - work["analysing"]) / sum(work.values())
    assert at.progress[0].value == pytest.approx(100 * (4 + 2 * running_leg) / 8, abs=1)  # 4 legs done, 2 running

    at = _page("progress", "tyk2-done")
    _no_exception(at)
    assert len(at.error) == 1 and "NaN in lambda state 3" in at.error[0].value


def test_results_page_table_filters_and_downloads(app_env):
    at = _page("results", "tyk2-done")
    _no_exception(at)
    table = at.dataframe[0].value
    assert len(table) == 13 and list(table["rank"]) == list(range(1, 14))
    assert list(table["dg_kcal_mol"]) == sorted(table["dg_kcal_mol"])
    assert table["structure"].str.startswith("data:image/svg+xml").all()
    assert table["exp_dg_kcal_mol"].notna().all()
    labels = [b.label for b in at.get("download_button")]
    assert labels[:2] == ["results CSV", "SDF with predictions"]
    assert any(b.label == "Build report.html" for b in at.button)
    charts = at.get("vega_lite_chart")
    assert len(charts) == 3  # predicted vs experimental, network coloured by error, ΔΔG per edge
    stats = at.dataframe[1].value  # statistics vs experiment, with human names and CIs
    assert {"MUE", "RMSE", "Pearson r", "Kendall τ"} <= set(stats.columns)
    assert stats["MUE"].str.match(r"^\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]$").all()
    assert not any("data point" in w.value for w in at.warning)  # 17 edges, 13 ligands: no small-n warning
    edges = at.dataframe[2].value
    assert len(edges) == 18 and (edges["status"] == "failed").sum() == 1

    at.text_input(key="name_filter").input("jmc").run()
    shown = at.dataframe[0].value
    assert 0 < len(shown) < 13 and shown["ligand"].str.contains("jmc").all()
    at.text_input(key="name_filter").input("").run()
    low, high = at.slider(key="dg_range").value
    at.slider(key="dg_range").set_value((low, (low + high) / 2)).run()
    assert (at.dataframe[0].value["dg_kcal_mol"] <= (low + high) / 2 + 1e-6).all()


def test_results_page_edge_drill_down(app_env):
    at = _page("results", "tyk2-done")
    edges = at.dataframe[2].value
    done_key = edges[edges["status"] == "done"]["edge"].iloc[0]
    failed_key = edges[edges["status"] == "failed"]["edge"].iloc[0]
    at.selectbox(key="edge_pick").set_value(done_key).run()
    _no_exception(at)
    assert [s.value for s in at.subheader if "leg" in s.value][:2] == [
        s for s in [s.value for s in at.subheader] if s.startswith(("complex leg", "solvent leg"))
    ]
    images = at.get("image")
    assert len(images) == 2  # overlap / convergence / mixing of the complex and solvent legs
    assert any("overlap 0.04" in w.value for w in at.warning)
    at.selectbox(key="edge_pick").set_value(failed_key).run()
    assert any("NaN in lambda state 3" in e.value for e in at.error)


def test_results_page_builds_the_report(app_env, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(app_env / "tyk2-live", root / "small")
    monkeypatch.setenv("MLFEP_RUNS_DIR", str(root))
    at = _page("results", "small")
    next(b for b in at.button if b.label == "Build report.html").click().run()
    _no_exception(at)
    assert (root / "small" / "report" / "report.html").is_file()
    assert [b.label for b in at.get("download_button")][-1] == "report.html"


BENZENES = (
    b"name,smiles,dg_kcal_mol\nbenzene,c1ccccc1,-0.90\nbad,C1CC\ntoluene,Cc1ccccc1,-0.90\nphenol,Oc1ccccc1,-6.62\n"
)


def test_new_run_page_validates_plans_edits_and_launches(tmp_path, monkeypatch):
    from app import launch

    root = tmp_path / "runs"
    monkeypatch.setenv("MLFEP_RUNS_DIR", str(root))
    launched = {}

    def fake_launch(run_dir, network, **kwargs):
        launched.update(run_dir=run_dir, network=network, **kwargs)
        record = {"pid": 999999, "created": 0.0, "mode": network.mode, "protocol": kwargs["protocol"]}
        (run_dir / "app_launch.json").write_text(json.dumps(record))
        return record

    monkeypatch.setattr(launch, "launch_run", fake_launch)
    at = AppTest.from_file(str(APP / "views" / "new_run.py"), default_timeout=TIMEOUT).run()
    _no_exception(at)
    at.form_submit_button[0].click().run()
    assert "upload a ligand file" in at.error[0].value  # nothing uploaded yet

    at.radio(key="mode").set_value("hydration")
    at.selectbox(key="tier").set_value("smoke")
    at.file_uploader(key="ligand_file").set_value(("series.csv", BENZENES, "text/csv"))
    protocol = json.dumps({"base": "smoke", "n_windows": 3}).encode()
    at.file_uploader(key="protocol_file").set_value(("tiny.json", protocol, "application/json"))
    at.form_submit_button[0].click().run()
    _no_exception(at)
    # per-ligand validation: one rejected row, named with the user's file and row
    assert [e.value for e in at.error] == [
        "series.csv row 3 (bad): SMILES 'C1CC' cannot be parsed (syntax error); fix the SMILES"
    ]
    assert "1 of 4 ligand(s) were rejected" in at.warning[0].value
    assert len(at.get("vega_lite_chart")) == 1  # the planned network graph
    keys = list(at.selectbox(key="edge_pick_plan").options)
    assert len(keys) == 2
    assert len(at.get("image")) == 1  # the mapping depiction of the selected edge
    assert any("**0.24 ns**" in m.value for m in at.markdown)  # 2 edges x 2 legs x 3 windows x 0.02 ns
    assert any("GPU-hours" in m.value for m in at.markdown)  # fep.execution.cost estimate

    # edit: add the missing pair, then remove the first planned edge
    names = ["benzene", "toluene", "phenol"]
    present = {frozenset(k.split("~")) for k in keys}
    a, b = next((x, y) for x in names for y in names if x != y and frozenset((x, y)) not in present)
    at.selectbox(key="add_a").set_value(a)
    at.selectbox(key="add_b").set_value(b)
    at.button(key="add_button").click().run()
    _no_exception(at)
    assert len(at.selectbox(key="edge_pick_plan").options) == 3
    at.multiselect(key="remove_edges").set_value([keys[0]]).run()
    at.button(key="remove_button").click().run()
    _no_exception(at)
    remaining = list(at.selectbox(key="edge_pick_plan").options)
    assert remaining == [keys[1], f"{a}~{b}"]

    # validating again with the same inputs keeps the edits; name and protocol are read at Launch
    at.form_submit_button[0].click().run()
    _no_exception(at)
    assert list(at.selectbox(key="edge_pick_plan").options) == remaining
    assert any("edits are kept" in i.value for i in at.info)
    at.text_input(key="run_name").input("benz")
    other = json.dumps({"base": "smoke", "name": "other", "n_windows": 3}).encode()
    at.file_uploader(key="protocol_file").set_value(("other.json", other, "application/json")).run()
    assert any("**other (from other.json)**" in c.value for c in at.caption)
    at.button(key="launch_button").click().run()
    _no_exception(at)
    assert launched["run_dir"] == root / "benz"
    assert launched["protocol"] == str(root / "benz" / "inputs" / "other.json")  # a copy kept with the run
    assert [e.key for e in launched["network"].edges] == remaining
    assert launched["network"].mode == "hydration" and launched["ligand_ff"] == "sage"  # the default
    assert "run **benz** started" in at.success[-1].value
    assert len(at.error) == 1 and "C1CC" in at.error[0].value  # only the rejected ligand, no cost/launch error
    assert not list(root.glob(".upload-*"))  # the staging folder is cleaned up


def test_new_run_page_rejects_a_bad_protein(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFEP_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(APP / "views" / "new_run.py"), default_timeout=TIMEOUT).run()
    at.file_uploader(key="ligand_file").set_value(("s.csv", BENZENES, "text/csv"))
    at.file_uploader(key="protein_file").set_value(("p.pdb", b"HEADER\nEND\n", "chemical/x-pdb"))
    at.form_submit_button[0].click().run()
    _no_exception(at)
    assert "no ATOM or HETATM records" in at.error[0].value


NO_HEAVY = """
import json, sys
from pathlib import Path
from streamlit.testing.v1 import AppTest
from app import launch
from fep.protocol import tier
from ligand_prep.models import Network

app_dir, run_dir = Path(sys.argv[1]), Path(sys.argv[2])
for page, run in (("progress", "tyk2-live"), ("results", "tyk2-done")):
    at = AppTest.from_file(str(app_dir / "views" / f"{page}.py"), default_timeout=120)
    if run:
        at.query_params["run"] = run
    at.session_state["auto_refresh"] = False
    at.run()
    assert not at.exception, (page, [e.value for e in at.exception])
network = Network.from_json_file(run_dir / "network.json")
cost = launch.cost_estimate(network, tier("smoke"), protein=sys.argv[3])
assert cost["estimate"] is not None
print(json.dumps(sorted(m for m in ("openmm", "torch", "torchani", "openff.toolkit") if m in sys.modules)))
"""


def test_pages_never_import_openmm_or_torch(app_env, bench):
    """The progress and results pages (the heaviest imports) and the cost estimate run in a fresh interpreter
    without loading openmm or torch."""
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", NO_HEAVY, str(APP), str(app_env / "tyk2-done"), str(bench / "tyk2" / "protein.pdb")],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _flatten(block: str) -> str:
    """An SDF record with every z coordinate set to 0 (a 2D drawing)."""
    lines = block.splitlines()
    n_atoms = int(lines[3][:3])
    for i in range(4, 4 + n_atoms):
        lines[i] = lines[i][:20] + f"{0.0:10.4f}" + lines[i][30:]
    return "\n".join(lines) + "\n"


def test_new_run_page_speaks_the_users_terms(tmp_path, monkeypatch, bench):
    """Item 4: a 2D-only SDF says that nothing was planned (no 'the others are planned below', no progress bar
    left), names the user's file and no upload folder or command-line option; a file over the limit says so."""
    root = tmp_path / "runs"
    monkeypatch.setenv("MLFEP_RUNS_DIR", str(root))
    blocks = (bench / "tyk2" / "ligands.sdf").read_text().split("$$$$\n")[:3]
    flat = "".join(_flatten(b) + "$$$$\n" for b in blocks)
    at = AppTest.from_file(str(APP / "views" / "new_run.py"), default_timeout=TIMEOUT).run()
    at.radio(key="mode").set_value("hydration")
    at.file_uploader(key="ligand_file").set_value(("my_drawings.sdf", flat.encode(), "chemical/x-mdl-sdfile"))
    at.form_submit_button[0].click().run()
    _no_exception(at)
    messages = [e.value for e in at.error] + [w.value for w in at.warning]
    assert any("nothing was planned" in m for m in messages), messages
    assert not any("planned below" in m for m in messages), messages
    assert sum("2D coordinates only" in m for m in messages) == 3
    assert all("my_drawings.sdf" in m for m in messages if "2D coordinates" in m)
    assert not any(".upload-" in m or "--reference" in m or "_validated" in m for m in messages), messages
    assert "Reference pose SDF" in next(m for m in messages if "2D coordinates" in m)
    assert not at.get("progress")  # no bar left behind
    assert len(at.get("vega_lite_chart")) == 0

    big = b"x" * (launch_limits()["ligands"] + 1)
    at.file_uploader(key="ligand_file").set_value(("huge.sdf", big, "chemical/x-mdl-sdfile"))
    at.form_submit_button[0].click().run()
    _no_exception(at)
    assert any("huge.sdf" in e.value and "MB allowed" in e.value for e in at.error), [e.value for e in at.error]
    assert not any("upload a ligand file" in e.value for e in at.error)


def launch_limits() -> dict[str, int]:
    from app import launch

    return launch.UPLOAD_LIMITS


def test_runs_page_deletes_a_run_only_after_confirmation(app_env, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(app_env / "tyk2-done", root / "old-run")
    monkeypatch.setenv("MLFEP_RUNS_DIR", str(root))
    at = _page("runs", "old-run")
    _no_exception(at)
    stop, resume = at.button(key="runs_ctl_stop"), at.button(key="runs_ctl_resume")
    assert stop.disabled  # nothing runs it
    assert not resume.disabled  # partial (one failed edge): Resume retries what is left
    at.button(key="runs_ctl_delete").click().run()
    _no_exception(at)
    assert any("cannot be undone" in w.value for w in at.warning)
    assert (root / "old-run").is_dir()  # not yet
    at.button(key="runs_ctl_delete_no").click().run()
    assert (root / "old-run").is_dir() and not any("cannot be undone" in w.value for w in at.warning)
    at.button(key="runs_ctl_delete").click().run()
    at.button(key="runs_ctl_delete_yes").click().run()
    _no_exception(at)
    assert not (root / "old-run").exists()
    assert any("old-run deleted" in s.value for s in at.success)


def test_resume_command_repeats_the_launch_or_reads_run_json(app_env, tmp_path):
    """Resume continues with the settings the run was started with: the dashboard's launch command, or for a run
    started from the command line its run.json (protocol, mode, protein)."""
    import shutil

    from app import control
    from fep.execution.rundir import RunSpec
    from fep.protocol import load_protocol

    run_dir = tmp_path / "cli-run"
    shutil.copytree(app_env / "tyk2-done", run_dir)
    command = control.resume_command(run_dir)
    assert command[-1] == "--resume" and command[command.index("-o") + 1] == str(run_dir)
    assert command[command.index("--mode") + 1] == "binding"
    spec = RunSpec.from_json_file(run_dir / "run.json")
    assert command[command.index("--protein") + 1] == spec.protein
    assert load_protocol(command[command.index("--protocol") + 1]) == spec.protocol  # the same protocol, field by field
    launch = {"pid": 1, "command": ["python", "-m", "fep", "run", "n.json", "-o", str(run_dir), "--protocol", "smoke"]}
    (run_dir / "app_launch.json").write_text(json.dumps(launch))
    assert control.resume_command(run_dir) == [*launch["command"], "--resume"]
    empty = tmp_path / "never-started"
    empty.mkdir()
    with pytest.raises(Exception, match="nothing to resume"):
        control.resume_command(empty)


def test_new_run_page_without_gpu_warns_and_confirms_a_long_launch(tmp_path, monkeypatch):
    """Item 6: no GPU here, so smoke is preselected; choosing default warns, the cost reads in human units
    (no '2.44e+04') with the wall time on this machine, and Launch waits for a confirmation."""
    from app import launch

    if launch.has_gpu():
        pytest.skip("this machine has a GPU: default is preselected there")
    monkeypatch.setenv("MLFEP_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(APP / "views" / "new_run.py"), default_timeout=TIMEOUT).run()
    assert at.selectbox(key="tier").value == "smoke"
    assert any("No GPU on this machine" in i.value for i in at.info)
    at.radio(key="mode").set_value("hydration")
    at.file_uploader(key="ligand_file").set_value(("series.csv", BENZENES, "text/csv"))
    at.form_submit_button[0].click().run()
    at.selectbox(key="tier").set_value("default").run()
    _no_exception(at)
    assert any("meant for a GPU" in w.value for w in at.warning)
    cost = next(m.value for m in at.markdown if "CPU core-hours" in m.value)
    assert "e+" not in cost and re.search(r"about \*\*[\d.]+ (h|days|years)\*\* on this machine's \d+ CPU cores", cost)
    assert at.button(key="launch_button").disabled
    at.checkbox(key="confirm_big").check().run()
    assert not at.button(key="launch_button").disabled
