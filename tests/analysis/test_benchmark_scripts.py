"""The benchmark scripts' own logic: speed.py --collect, rbfe.py argument checks and dry run, rhfe.py's cost
and run-span bookkeeping. (The benchmarks themselves run outside the test suite.)"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
PARTS = ("hybrid_speed", "sampler_speed", "analysis_cost", "nnp_speed")


def _script(name: str):
    if str(REPO / "benchmarks") not in sys.path:  # as when the script runs: its folder first (benchmarks/tables.py)
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speed_collect_gathers_the_parts_without_running_them(tmp_path):
    for part in PARTS:
        for ext in ("json", "md"):
            shutil.copy(RESULTS / f"{part}.{ext}", tmp_path)
    assert _script("speed").main(["--collect", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "speed.json").read_text())
    assert set(summary["parts"]) == set(PARTS)
    for part in PARTS:
        entry = summary["parts"][part]
        assert entry["collected"] and entry["result"] == json.loads((RESULTS / f"{part}.json").read_text())
    text = (tmp_path / "speed.md").read_text()
    assert all(f"## {part} (collected from {part}.md)" in text for part in PARTS)


def test_speed_collect_says_the_gpu_suite_was_not_run_and_folds_it_in_once_it_was(tmp_path):
    speed = _script("speed")
    for part in PARTS:
        for ext in ("json", "md"):
            shutil.copy(RESULTS / f"{part}.{ext}", tmp_path)
    assert speed.main(["--collect", "--out", str(tmp_path)]) == 0
    assert "Not run: no GPU machine" in (tmp_path / "speed.md").read_text()
    gpu = tmp_path / "gpu"
    gpu.mkdir()
    hybrid = json.loads((RESULTS / "hybrid_speed.json").read_text())
    suite = {
        "date": "2026-12-06 12:00 UTC",
        "wall_s": 431.0,
        "machine": {"gpus": ["NVIDIA H100 80GB HBM3, 580.159.04, 81559 MiB"]},
        "parts": {"hybrid_speed": {"returncode": 0, "wall_s": 95.0, "result": hybrid}, "rbfe": {"returncode": 124}},
    }
    (gpu / "speed.json").write_text(json.dumps(suite))
    assert speed.main(["--collect", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "speed.md").read_text()
    assert "## GPU suite (`benchmarks/gpu_suite.sh`, 2026-12-06 12:00 UTC, NVIDIA H100 80GB HBM3" in text
    assert "| rbfe | 124 | nan |" in text  # a part stopped at its limit is shown as such, not dropped
    case = hybrid["cases"][0]
    assert f"| {case['case']} | {case['plain_ns_per_day']:.1f} | {case['hybrid_ns_per_day']:.1f} |" in text


def test_gpu_suite_parts_pass_the_platform_and_fit_the_loan(tmp_path):
    speed = _script("speed")
    parts = dict(speed.parts("CUDA", quick=False, gpu_suite=True, out=tmp_path))
    assert set(parts) == set(speed.GPU_SUITE_PART_LIMIT_S) == {"hybrid_speed", "sampler_speed", "nnp_speed", "rbfe"}
    for name in ("hybrid_speed", "sampler_speed", "nnp_speed"):
        assert parts[name][parts[name].index("--platform") + 1] == "CUDA"
    edge = parts["rbfe"]
    assert edge[edge.index("--edges") + 1] == "lig_ejm_31~lig_ejm_42" and "--platform CUDA" in edge[-1]
    assert edge[edge.index("--run-root") + 1] == str(tmp_path / "runs")
    assert sum(speed.GPU_SUITE_PART_LIMIT_S.values()) <= 8 * 60 - 30  # the 8 minutes, installs included
    # every part script takes the arguments the suite gives it
    for name in ("sampler_speed", "nnp_speed", "hybrid_speed"):
        source = (REPO / "benchmarks" / f"{name}.py").read_text()
        flags = [a for a in parts[name] if a.startswith("--")]
        assert all(f'"{flag}"' in source for flag in flags), name


def test_a_gpu_suite_part_past_its_limit_is_stopped_with_what_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(120)"
    )
    assert _script("speed")._run_part([sys.executable, "-c", code], limit=8) == 124  # time to start, loaded too
    stat = Path(f"/proc/{int(pid_file.read_text())}/stat")  # rbfe.py's fep run would be such a grandchild
    for _ in range(50):
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":  # gone, or a zombie
            break
        time.sleep(0.1)
    else:
        pytest.fail("the part's own child outlived the stopped part")
    assert _script("speed")._run_part([sys.executable, "-c", "raise SystemExit(3)"], limit=30) == 3


def test_speed_collect_fails_on_a_missing_part(tmp_path):
    shutil.copy(RESULTS / "nnp_speed.json", tmp_path)
    shutil.copy(RESULTS / "nnp_speed.md", tmp_path)
    assert _script("speed").main(["--collect", "--out", str(tmp_path)]) == 1
    assert "## hybrid_speed (missing)" in (tmp_path / "speed.md").read_text()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--targets", "jnk1"], "unknown jnk1"),
        (["--targets", "tyk2,p38", "--edges", "lig_ejm_31~lig_ejm_42"], "exactly one target"),
    ],
)
def test_rbfe_rejects_bad_arguments_with_one_line(args, expected, capsys):
    with pytest.raises(SystemExit) as exc:
        _script("rbfe").main(args)
    assert exc.value.code == 2 and expected in capsys.readouterr().err


def test_rbfe_edges_must_be_edges_of_the_target(tmp_path):
    with pytest.raises(SystemExit, match="not edges of"):
        _script("rbfe").main(["--edges", "lig_ejm_31~nope", "--run-root", str(tmp_path), "--dry-run"])


def test_rbfe_dry_run_plans_the_subset_and_simulates_nothing(tmp_path, capfd):
    edges = "lig_ejm_31~lig_ejm_42"
    assert _script("rbfe").main(["--edges", edges, "--run-root", str(tmp_path), "--dry-run"]) == 0
    captured = capfd.readouterr()  # the commands (stdout) and what `fep plan` / `fep run --dry-run` tell (stderr)
    assert "fep run" in captured.out and "--dry-run" in captured.out and "GPU-hours" in captured.err
    network = json.loads((tmp_path / "tyk2_network.json").read_text())
    assert [(e["ligand_a"], e["ligand_b"]) for e in network["edges"]] == [("lig_ejm_31", "lig_ejm_42")]
    assert not (tmp_path / "tyk2" / "edges").exists()  # --dry-run: no leg was built or sampled


def _leg(run_dir: Path, edge: str, leg: str, mm_wall: float, nnp_walls: tuple[float | None, float | None]) -> None:
    folder = run_dir / "edges" / edge / "repeat_0" / leg
    folder.mkdir(parents=True)
    summary = {"wall_s": mm_wall, "timings_s": {"production_cpu": mm_wall / 2}}
    (folder / "sampler_summary.json").write_text(json.dumps(summary))
    for state, wall in zip("AB", nnp_walls, strict=True):
        (folder / f"nnp_{state}.json").write_text(json.dumps({"wall_s": wall, "cpu_s": None if wall is None else 1.0}))


def test_rhfe_nnp_cost_uses_only_legs_that_recorded_it(tmp_path):
    _leg(tmp_path, "a~b", "solvent", 100.0, (5.0, 15.0))
    _leg(tmp_path, "a~b", "vacuum", 10.0, (4.0, 6.0))
    _leg(tmp_path, "a~c", "solvent", 300.0, (None, None))  # corrected before costs were recorded
    cost = _script("rhfe").nnp_cost(tmp_path)
    assert [x["leg"] for x in cost["legs"]] == ["a~b/repeat_0/solvent", "a~b/repeat_0/vacuum"]
    assert cost["mm_wall_s"] == 110.0 and cost["nnp_wall_s"] == 30.0
    assert cost["fraction"] == pytest.approx(30.0 / 110.0)
    assert cost["sampler_wall_s_sum_of_last_calls"] == 410.0
    assert cost["sampler_production_cpu_s_sum_of_last_calls"] == 205.0


def test_rhfe_run_span_and_invocations(tmp_path):
    run_dir = tmp_path / "r"
    (run_dir / "edges" / "a~b").mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")
    (run_dir / "edges" / "a~b" / "edge_result.json").write_text("{}")
    (run_dir / "prepared").mkdir()
    (run_dir / "prepared" / "a.json").write_text("{}")
    start = 1_767_225_600  # 2026-01-01 00:00:00 UTC
    os.utime(run_dir / "prepared" / "a.json", (start, start))  # the first write of the run
    os.utime(run_dir / "run.json", (start + 60, start + 60))
    os.utime(run_dir / "edges" / "a~b" / "edge_result.json", (start + 3723.4, start + 3723.4))
    rhfe = _script("rhfe")
    rhfe.log_invocation(run_dir, "python benchmarks/rhfe.py --protocol fast")
    span = rhfe.run_span(run_dir)
    assert span["span_s"] == 3723.4
    assert span["start_utc"] == "2026-01-01 00:00:00" and span["last_result_utc"] == "2026-01-01 01:02:03"
    assert len(span["invocations"]) == 1 and span["invocations"][0].endswith(
        "python benchmarks/rhfe.py --protocol fast"
    )


def test_rhfe_active_time_leaves_out_the_gaps_between_invocations(tmp_path):
    run_dir = tmp_path / "r"
    leg = run_dir / "edges" / "a~b" / "repeat_0" / "solvent"
    leg.mkdir(parents=True)
    start = 1_767_225_600  # 2026-01-01 00:00:00 UTC
    for name, t in (("leg_result.json", start + 600), ("../../edge_result.json", start + 86_400 + 900)):
        (leg / name).write_text("{}")
        os.utime(leg / name, (t, t))
    lines = ["2026-01-01 00:00:00 UTC  python benchmarks/rhfe.py", "2026-01-02 00:00:00 UTC  python benchmarks/rhfe.py"]
    # 10 min in the first session, 15 min in the second; the day between does not count
    assert _script("rhfe")._active_seconds(run_dir, lines) == 1500.0


def test_rhfe_compare_pairs_the_same_edges_and_uses_the_ml_column_for_the_endpoint(tmp_path, bench):
    """Two options' results with one edge missing from B: only shared edges are paired; the endpoint option's
    estimate is its ΔΔG_ML; the paired ΔRMSE is the difference of the two RMSEs on those edges."""
    compare = _script("rhfe_compare")

    def edge(name, mm, ml, exp):
        return {"edge": name, "ddg_mm": mm, "ddg_mm_err": 0.3, "ddg_ml": ml, "ddg_ml_err": 0.4, "ddg_exp": exp}

    common = {"edges_total": 3, "protocol": "fast"}
    a = {
        **common,
        "edges_done": 3,
        "edges": [
            edge("benzene~toluene", 1.0, None, 0.0),
            edge("benzene~phenol", -5.0, None, -6.0),
            edge("benzene~anisole", 0.5, None, 0.0),
        ],
    }
    b = {
        **common,
        "edges_done": 2,
        "edges": [edge("benzene~toluene", 9.0, 0.2, 0.0), edge("benzene~phenol", 9.0, -6.1, -6.0)],
    }
    (tmp_path / "rhfe_benzenes_sage.json").write_text(json.dumps(a))
    (tmp_path / "rhfe_benzenes_ani2x-endpoint.json").write_text(json.dumps(b))
    assert compare.main(["--set", "benzenes", "--a", "sage", "--b", "ani2x-endpoint", "--results", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "rhfe_benzenes_sage_vs_ani2x-endpoint.json").read_text())
    assert [p["edge"] for p in out["edges"]] == ["benzene~toluene", "benzene~phenol"]
    assert [p["b"] for p in out["edges"]] == [0.2, -6.1]
    res = out["paired_edges_only"]
    assert res["rmse_a"] == pytest.approx(1.0) and res["rmse_b"] == pytest.approx((0.04 / 2 + 0.01 / 2) ** 0.5)
    assert res["delta_rmse"]["value"] == pytest.approx(res["rmse_b"] - res["rmse_a"])
    assert out["edges"][0]["sigma_exp"] > 0  # FreeSolv's experimental errors of both ligands
    with pytest.raises(SystemExit):
        compare.main(["--set", "benzenes", "--a", "sage", "--b", "ani2x-torsions", "--results", str(tmp_path)])


def test_rhfe_archive_keeps_unfinished_legs_whole_and_finished_legs_resumable(tmp_path):
    """A finished leg (result newer than its checkpoint) travels without its samples and stays finished after
    unpacking; an unfinished leg travels whole."""
    import tarfile

    run_dir = tmp_path / "runs" / "rhfe_x"
    legs = {name: run_dir / "edges" / "a~b" / "repeat_0" / name for name in ("solvent", "vacuum")}
    for leg_dir in legs.values():
        (leg_dir / "sampler" / "data").mkdir(parents=True)
        (leg_dir / "sampler" / "data" / "iter_0.npz").write_bytes(b"x" * 1000)
        (leg_dir / "hybrid").mkdir()
        (leg_dir / "hybrid" / "system.xml").write_text("<System/>")
        (leg_dir / "sampler" / "checkpoint.json").write_text("{}")
    os.utime(legs["solvent"] / "sampler" / "checkpoint.json", (1e9, 1e9))
    (legs["solvent"] / "leg_result.json").write_text("{}")  # finished: newer than its checkpoint
    (run_dir / "run.json").write_text("{}")
    out = _script("rhfe").archive(run_dir, tmp_path / "partial" / "rhfe_x.tar.gz")
    assert out["finished_legs"] == 1 and out["files_left_out"] == 2
    with tarfile.open(out["archive"]) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "back", filter="tar")
    solvent, vacuum = "rhfe_x/edges/a~b/repeat_0/solvent", "rhfe_x/edges/a~b/repeat_0/vacuum"
    assert {f"{solvent}/leg_result.json", f"{solvent}/sampler/checkpoint.json", "rhfe_x/run.json"} <= names
    assert not any(n.startswith((f"{solvent}/sampler/data", f"{solvent}/hybrid/system.xml")) for n in names)
    assert {f"{vacuum}/sampler/data/iter_0.npz", f"{vacuum}/hybrid/system.xml"} <= names
    back = tmp_path / "back" / solvent
    assert (back / "leg_result.json").stat().st_mtime >= (back / "sampler" / "checkpoint.json").stat().st_mtime

    # an adaptive run extends finished legs: its archive keeps what an extension reads (fep run refuses without)
    (run_dir / "adaptive.json").write_text("{}")
    (legs["solvent"] / "sampler" / "snapshots").mkdir()
    (legs["solvent"] / "sampler" / "snapshots" / "state_0.xtc").write_bytes(b"x" * 100)
    out = _script("rhfe").archive(run_dir, tmp_path / "partial" / "adaptive_x.tar.gz")
    assert out["extendable"] and out["files_left_out"] == 1  # the snapshots only
    with tarfile.open(out["archive"]) as tar:
        names = set(tar.getnames())
    assert {f"{solvent}/sampler/data/iter_0.npz", f"{solvent}/hybrid/system.xml"} <= names
    assert not _script("rhfe").archive(run_dir, tmp_path / "partial" / "y.tar.gz", extendable=False)["extendable"]


def test_adaptive_table_reports_both_runs_and_the_saving():
    sys.path.insert(0, str(REPO / "benchmarks"))  # adaptive.py imports rhfe.py beside it, as when run
    try:
        adaptive = _script("adaptive")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    run = {"edges": 15, "max_sigma_kcal_mol": 0.2, "rms_sigma_kcal_mol": 0.15, "edge_rmse_kcal_mol": 0.7}
    data = {
        "series": "benzenes", "command": "python benchmarks/adaptive.py", "target_sigma_kcal_mol": 0.2,
        "first_iterations": 12, "block_iterations": 6, "stop_reason": "every ligand at the target",
        "uniform": {**run, "replica_ns_total": 10.0}, "adaptive": {**run, "replica_ns_total": 6.5},
        "saving": 0.35, "target_met": True,
    }  # fmt: skip
    text = adaptive.markdown(data)
    assert "| uniform | 15 | 10.00 |" in text and "| adaptive | 15 | 6.50 |" in text
    assert "Sampling saved: 35 %" in text and "met)" in text
    data["uniform"]["replica_ns_per_edge"] = {"a~b": 5.0, "b~c": 5.0}
    data["adaptive"]["replica_ns_per_edge"] = {"a~b": 1.5, "b~c": 5.0}
    data["notes"] = ["two edges were sampled again"]
    text = adaptive.markdown(data)
    assert text.index("| b~c | 5.00 | 5.00 |") < text.index("| a~b | 5.00 | 1.50 |")  # most sampled first
    assert text.rstrip().endswith("Note: two edges were sampled again")


def test_cutoff_change_exp_per_ligand_and_the_edge_shift():
    """Gaussian work w ~ N(μ, s²) (kT): EXP gives μ - s²/2; an edge A~B moves by c(B) - c(A)."""
    import numpy as np

    mod = _script("cutoff_change")
    rng = np.random.default_rng(0)
    kt = 0.6
    legs = {
        "a": [{"w": rng.normal(-0.1, 0.2, 4000).tolist(), "kt_kcal": kt, "leg": f"a{k}"} for k in range(2)],
        "b": [{"w": rng.normal(0.3, 0.2, 4000).tolist(), "kt_kcal": kt, "leg": "b0"}],
    }
    corr = mod.ligand_corrections(legs)
    assert corr["a"]["c_kcal_mol"] == pytest.approx((-0.1 - 0.02) * kt, abs=0.01)
    assert corr["b"]["c_kcal_mol"] == pytest.approx((0.3 - 0.02) * kt, abs=0.01)
    assert corr["a"]["n_legs"] == 2 and corr["a"]["sigma_spread"] is not None
    assert corr["b"]["sigma_spread"] is None and 0 < corr["b"]["sigma_kcal_mol"] < 0.01
    rhfe = {
        "edges": [
            {"edge": "a~b", "ddg_mm": 1.0, "ddg_mm_err": 0.2, "ddg_exp": 1.5, "ddg_exp_err": 0.3},
            {"edge": "a~c", "ddg_mm": 1.0, "ddg_mm_err": 0.2, "ddg_exp": 1.5},
        ]
    }
    (edge,) = mod.edge_changes(rhfe, corr)
    shift = corr["b"]["c_kcal_mol"] - corr["a"]["c_kcal_mol"]
    assert edge["change"] == pytest.approx(shift) and edge["ddg_sage_scheme"] == pytest.approx(1.0 + shift)
    assert edge["sigma_sage_scheme"] > 0.2
