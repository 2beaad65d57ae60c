"""Relative hydration free energies of the FreeSolv benzene series: mlfep (MM and ANI-2x corrected) vs experiment
and vs FreeSolv's own GAFF/AM1-BCC values.

    python benchmarks/rhfe.py [--set benzenes|flexible] [--protocol fast] [--run-dir runs/rhfe_<set>] [--nnp ani2x] [--edges A~B,...]
                              [--analyse-only] [--out benchmarks/results] [--archive PATH.tar.gz]

Runs (resumably: stop it any time and run the same command again) the 15 edges of
``../shared/benchmarks/freesolv/rhfe_<set>_edges.csv`` (15 benzene or 16 flexible edges) in hydration mode with ``fep run``, then writes
``rhfe.json`` and ``rhfe.md``: per edge ΔΔG_MM, ΔΔG_ML with σ, experimental ΔΔG and FreeSolv's GAFF ΔΔG; node ΔG by
maximum likelihood; RMSE, MUE, R², Kendall τ with bootstrap 95 % intervals for MM, ML and GAFF; cycle closures.
``--analyse-only`` tabulates whatever edges have finished so far; ``--archive`` packs a stopped run for the next
session (finished legs without their samples). Data: ../shared/benchmarks (read in place).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tables import ci, fmt, statistics_rows, write_result

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLFEP_SHARED", REPO.parent / "shared"))
FREESOLV = SHARED / "benchmarks" / "freesolv"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


SETS = ("benzenes", "flexible")


def series_files(series: str) -> tuple[Path, Path]:
    """The ligand and edge CSVs of a FreeSolv series (``benzenes`` or ``flexible``)."""
    return FREESOLV / f"rhfe_{series}_ligands.csv", FREESOLV / f"rhfe_{series}_edges.csv"


def plan(run_dir: Path, edges: list[str] | None, series: str = "benzenes") -> Path:
    """The network of the benchmark's own edges (optionally a subset), written next to the run."""
    from ligand_prep.io import read_ligands
    from ligand_prep.network import network_from_edges

    ligands_csv, edges_csv = series_files(series)
    ligands = read_ligands(ligands_csv)
    if edges:
        wanted = {tuple(e.split("~")) for e in edges}
        rows = [r for r in _read_csv(edges_csv) if (r["ligand_a"], r["ligand_b"]) in wanted]
        if len(rows) != len(wanted):
            raise SystemExit(f"--edges: some of {sorted(wanted)} are not edges of {edges_csv}")
        subset = run_dir.parent / f"{run_dir.name}_edges.csv"
        subset.parent.mkdir(parents=True, exist_ok=True)
        subset.write_text("ligand_a,ligand_b\n" + "".join(f"{r['ligand_a']},{r['ligand_b']}\n" for r in rows))
        edges_csv = subset
    network = network_from_edges(ligands, edges_csv, mode="hydration")
    path = run_dir.parent / f"{run_dir.name}_network.json"
    network.to_json_file(path)
    return path


def run(network_json: Path, run_dir: Path, protocol: str, ligand_ff: str, extra: list[str]) -> float:
    fep = Path(sys.executable).parent / "fep"
    cmd = [str(fep), "run", str(network_json), "--protocol", protocol, "--ligand-ff", ligand_ff, "-o", str(run_dir)]
    cmd += extra
    if (run_dir / "run.json").exists():
        cmd.append("--resume")
    print("+", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=False)
    return time.perf_counter() - start


def log_invocation(run_dir: Path, command: str) -> None:
    """Append this run command with its UTC start to ``<run_dir>_invocations.txt`` (a run may take several)."""
    path = run_dir.parent / f"{run_dir.name}_invocations.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC  {command}\n")


def run_span(run_dir: Path) -> dict:
    """First write (prepared ligands, run.json) to last edge result: the run's wall span across all invocations."""
    starts = [p.stat().st_mtime for p in [run_dir / "run.json", *(run_dir / "prepared").glob("*.json")] if p.exists()]
    ends = [p.stat().st_mtime for p in (run_dir / "edges").glob("*/edge_result.json")]
    invocations = run_dir.parent / f"{run_dir.name}_invocations.txt"
    lines = invocations.read_text().splitlines() if invocations.exists() else []
    return {
        "start_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(min(starts))) if starts else None,
        "last_result_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(max(ends))) if ends else None,
        "span_s": round(max(ends) - min(starts), 1) if starts and ends else None,
        "active_s": _active_seconds(run_dir, lines),
        "invocations": lines,
    }


def _active_seconds(run_dir: Path, invocations: list[str]) -> float | None:
    """Time the run was running: for each invocation, from its start to the last leg or edge result written before
    the next one began (a run resumed in a later session otherwise counts the gap between sessions)."""
    import calendar

    starts = []
    for line in invocations:
        try:
            starts.append(calendar.timegm(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")))
        except ValueError:
            continue
    results = sorted(
        p.stat().st_mtime for pattern in ("*/edge_result.json", "*/repeat_*/*/leg_result.json")
        for p in (run_dir / "edges").glob(pattern)
    )  # fmt: skip
    if not starts or not results:
        return None
    total = 0.0
    for k, t0 in enumerate(starts):
        t1 = starts[k + 1] if k + 1 < len(starts) else float("inf")
        inside = [t for t in results if t0 <= t < t1]
        total += (max(inside) - t0) if inside else 0.0
    return round(total, 1)


def analyse(
    run_dir: Path, protocol: str, wall_s: float | None, command: str, series: str = "benzenes", ligand_ff: str = ""
) -> dict:
    """Tabulate the finished edges against experiment and FreeSolv's GAFF values."""
    import numpy as np

    from analysis.network import analyse_network, cycle_closures
    from analysis.report import load_run_dir
    from analysis.stats import compute_statistics, sigma_calibration
    from fep.execution.rundir import package_versions
    from ligand_prep.models import ExperimentalValue

    ligands_csv, edges_csv = series_files(series)
    ligands = {r["name"]: r for r in _read_csv(ligands_csv)}
    expt = {n: float(r["expt_dg_kcal_mol"]) for n, r in ligands.items()}
    expt_err = {n: float(r["expt_dg_err_kcal_mol"]) for n, r in ligands.items() if r.get("expt_dg_err_kcal_mol")}
    gaff = {n: float(r["freesolv_calc_dg_kcal_mol"]) for n, r in ligands.items()}
    if (run_dir / "run.json").exists():
        protocol = json.loads((run_dir / "run.json").read_text())["protocol"]["name"]
    results, _ = load_run_dir(run_dir)
    done = [e for e in results if e.status == "done"]
    rows = []
    for e in done:
        a, b = e.ligand_a, e.ligand_b
        rows.append(
            {
                "edge": e.key,
                "ddg_mm": e.ddg_mm_kcal_mol,
                "ddg_mm_err": e.ddg_mm_err_kcal_mol,
                "ddg_ml": e.ddg_ml_kcal_mol,
                "ddg_ml_err": e.ddg_ml_err_kcal_mol,
                "ddg_exp": expt[b] - expt[a],
                "ddg_exp_err": float(np.hypot(expt_err.get(a, 0.0), expt_err.get(b, 0.0))),
                "ddg_gaff": gaff[b] - gaff[a],
                "ml_reason": e.ml_reason,
                "verdicts": {v.name: v.status for v in e.verdicts},
                "sigma_solvent": e.legs["solvent"].dg_err_kcal_mol if "solvent" in e.legs else None,
                "repeats_mm": list(e.repeat_ddg_mm_kcal_mol),
                "repeats_mm_err": list(e.repeat_ddg_mm_err_kcal_mol),
            }
        )
    stats = {}  # every bootstrap sample also draws the calculated and the experimental σ (as cinnabar does)
    if len(rows) >= 3:
        exp_arr, exp_sig = [r["ddg_exp"] for r in rows], [r["ddg_exp_err"] for r in rows]
        stats["edges_mm"] = compute_statistics(
            [r["ddg_mm"] for r in rows], exp_arr, kind="edges", estimate="mm",
            sigma_predicted=[r["ddg_mm_err"] for r in rows], sigma_experimental=exp_sig,
        )  # fmt: skip
        stats["edges_gaff"] = compute_statistics(
            [r["ddg_gaff"] for r in rows], exp_arr, kind="edges", sigma_experimental=exp_sig
        )
        ml_rows = [r for r in rows if r["ddg_ml"] is not None]
        if len(ml_rows) >= 3:
            stats["edges_ml"] = compute_statistics(
                [r["ddg_ml"] for r in ml_rows], [r["ddg_exp"] for r in ml_rows], kind="edges", estimate="ml",
                sigma_predicted=[r["ddg_ml_err"] for r in ml_rows],
                sigma_experimental=[r["ddg_exp_err"] for r in ml_rows],
            )  # fmt: skip
    measured = {n: ExperimentalValue(dg_kcal_mol=expt[n], dg_err_kcal_mol=expt_err.get(n)) for n in expt}
    network = analyse_network(done, experimental=measured) if done else None
    if network is not None:
        names = list(network.ligands)
        for s in network.statistics:  # MLE node ΔG (experimental-mean gauge) vs experiment
            if s.kind == "nodes":
                stats[f"nodes_{s.estimate}"] = s
        stats["nodes_gaff"] = compute_statistics(
            [gaff[n] for n in names], [expt[n] for n in names], kind="nodes",
            sigma_experimental=[expt_err.get(n) for n in names],
        )  # fmt: skip
    calibration = None  # the reported σ against the spread of independent repeats of the same edges
    with_repeats = [r for r in rows if len(r["repeats_mm"]) >= 2 and len(r["repeats_mm_err"]) == len(r["repeats_mm"])]
    if with_repeats:
        calibration = sigma_calibration(
            [r["repeats_mm"] for r in with_repeats], [r["repeats_mm_err"] for r in with_repeats]
        ).model_dump(mode="json")
    closures = cycle_closures([(e.ligand_a, e.ligand_b, e.ddg_mm_kcal_mol, e.ddg_mm_err_kcal_mol) for e in done])
    return {
        "benchmark": f"rhfe_{series}",
        "series": series,
        "ligand_ff": ligand_ff,
        "command": command,
        "protocol": protocol,
        "run_dir": str(run_dir),
        "edges_total": len(_read_csv(edges_csv)),
        "edges_done": len(done),
        "edges_failed": [e.key for e in results if e.status != "done"],
        "wall_s_this_call": wall_s,
        "run_span": run_span(run_dir),
        "nnp_cost": nnp_cost(run_dir),
        "torsion_cost": torsion_cost(run_dir),
        "cpu_count": os.cpu_count(),
        "versions": package_versions(),
        "edges": rows,
        "statistics": {k: v.model_dump(mode="json") for k, v in stats.items()},  # edges_mm/gaff/ml, nodes_mm/ml/gaff
        "nodes": [
            {
                "ligand": n,
                "dg_mm": network.dg_mm_kcal_mol[n],
                "dg_mm_err": network.dg_mm_err_kcal_mol[n],
                "dg_ml": (network.dg_ml_kcal_mol or {}).get(n),
                "dg_ml_err": (network.dg_ml_err_kcal_mol or {}).get(n),
                "dg_exp": expt[n],
                "dg_gaff": gaff[n],
            }
            for n in network.ligands
        ]
        if network
        else [],
        "network": network.model_dump(mode="json") if network else None,
        "cycle_closures_mm": [{"cycle": list(c), "closure": x, "sigma": s} for c, x, s in closures],
        "sigma_calibration": calibration,
        "median_edge_sigma_mm": float(np.median([r["ddg_mm_err"] for r in rows])) if rows else None,
    }


def torsion_cost(run_dir: Path) -> dict | None:
    """Wall time of the ANI-2x torsion scans and fits of the run's ligands (as recorded when each fit was made)
    against the MM sampling of all legs; None when the ligands carry no refitted torsions."""
    walls = {}
    for path in sorted((run_dir / "prepared").glob("*.json")):
        torsions = json.loads(path.read_text()).get("torsions")
        if torsions is not None:
            walls[path.stem] = torsions.get("wall_s") or 0.0
    if not walls:
        return None
    sampler = [
        json.loads(p.read_text())["wall_s"]
        for p in sorted((run_dir / "edges").glob("*/repeat_*/*/sampler_summary.json"))
    ]
    fit = sum(walls.values())
    mm = sum(sampler)
    edges_total = (
        len(json.loads((run_dir / "network.json").read_text())["edges"]) if (run_dir / "network.json").exists() else 0
    )
    edges_sampled = len(
        {p.parent.parent.parent.name for p in (run_dir / "edges").glob("*/repeat_*/*/sampler_summary.json")}
    )
    # the fits cover every ligand at once; while the run is partial, scale its MM sampling to the whole network
    full_mm = mm * edges_total / edges_sampled if edges_sampled and edges_total else None
    return {
        "fit_wall_s": round(fit, 1),
        "per_ligand_wall_s": walls,
        "mm_sampler_wall_s": round(mm, 1),
        "edges_sampled": edges_sampled,
        "edges_total": edges_total,
        "fraction": fit / full_mm if full_mm else None,
        "fraction_is_estimate": edges_sampled < edges_total,
    }


def nnp_cost(run_dir: Path) -> dict:
    """ANI-2x correction time ÷ MM sampling time, over the legs whose corrections recorded their time.

    MM: the sampler's wall (equilibration + production) from ``sampler_summary.json``; NNP: the wall of both
    end-state corrections (``nnp_A/B.json``), measured in the same worker right after the sampling, under the
    same load.
    """
    summaries = {
        path.parent: json.loads(path.read_text())
        for path in sorted((run_dir / "edges").glob("*/repeat_*/*/sampler_summary.json"))
    }
    legs = []
    for leg_dir, summary in summaries.items():
        corrections = [json.loads(p.read_text()) for p in sorted(leg_dir.glob("nnp_[AB].json"))]
        if len(corrections) != 2 or any(c.get("wall_s") is None for c in corrections):
            continue
        legs.append(
            {
                "leg": str(leg_dir.relative_to(run_dir / "edges")),
                "mm_wall_s": summary["wall_s"],
                "nnp_wall_s": sum(c["wall_s"] for c in corrections),
                "nnp_cpu_s": sum(c["cpu_s"] for c in corrections),
            }
        )
    totals = {
        "sampler_wall_s_sum_of_last_calls": round(sum(x["wall_s"] for x in summaries.values()), 1),
        "sampler_production_cpu_s_sum_of_last_calls": round(
            sum(x["timings_s"]["production_cpu"] for x in summaries.values()), 1
        ),
    }
    if not legs:
        return {"legs": [], **totals}
    mm = sum(x["mm_wall_s"] for x in legs)
    nnp = sum(x["nnp_wall_s"] for x in legs)
    return {"legs": legs, "mm_wall_s": mm, "nnp_wall_s": nnp, "fraction": nnp / mm, **totals}


#: what a finished leg no longer needs to be skipped on resume (its result and checkpoint stay): the samples,
#: snapshots, replica state, end-state and hybrid systems
BULKY = (
    "sampler/data",
    "sampler/snapshots",
    "sampler/state",
    "end_states",
    "hybrid/system.xml",
    "hybrid/positions.npy",
)


def _extendable_leaves_out() -> tuple[str, ...]:
    """What a finished leg that may still be extended (``fep run --extend`` / ``--target-sigma``) can do without:
    the bulky files less those fep run checks for before it extends (``fep.cli.run.EXTEND_NEEDS``)."""
    from fep.cli.run import EXTEND_NEEDS

    return tuple(b for b in BULKY if b not in EXTEND_NEEDS)


def archive(run_dir: Path, path: Path, extendable: bool | None = None) -> dict:
    """A resumable ``.tar.gz`` of a stopped run (run folders do not outlive a session here): every file of an
    unfinished leg, and of a finished leg (``leg_result.json`` newer than its checkpoint, which is how a resume
    recognises it) only what the resume and the analysis read; the run's report folder is left out (it is made
    again from the results). Unpack with ``tar -xzf PATH -C <parent of run_dir>``;
    modification times are kept, so finished legs stay finished.

    ``extendable`` (default: when the run is adaptive, i.e. has an ``adaptive.json``) keeps what extending a
    finished leg reads (samples, replica state, hybrid system): larger, but ``--target-sigma`` can go on."""
    import tarfile

    if extendable is None:
        extendable = (run_dir / "adaptive.json").exists()
    bulky = _extendable_leaves_out() if extendable else BULKY

    path.parent.mkdir(parents=True, exist_ok=True)
    finished = skipped = 0
    with tarfile.open(path.with_suffix(".part"), "w:gz") as tar:
        for file in sorted(p for p in run_dir.rglob("*") if p.is_file()):
            rel = file.relative_to(run_dir)
            if rel.parts[0] == "report":  # `fep report`'s pages and plots, made again from the results
                skipped += 1
                continue
            leg_dir = run_dir.joinpath(*rel.parts[:4]) if rel.parts[0] == "edges" and len(rel.parts) > 4 else None
            if leg_dir is not None and _leg_done(leg_dir):
                inner = file.relative_to(leg_dir).as_posix()
                if any(inner == b or inner.startswith(b + "/") for b in bulky):
                    skipped += 1
                    continue
                finished += inner == "leg_result.json"
            tar.add(file, arcname=(Path(run_dir.name) / rel).as_posix())
        invocations = run_dir.parent / f"{run_dir.name}_invocations.txt"  # the run's commands, for run_span
        if invocations.exists():
            tar.add(invocations, arcname=invocations.name)
    path.with_suffix(".part").replace(path)
    return {
        "archive": str(path),
        "bytes": path.stat().st_size,
        "finished_legs": finished,
        "files_left_out": skipped,
        "extendable": extendable,
    }


def _leg_done(leg_dir: Path) -> bool:
    result, checkpoint = leg_dir / "leg_result.json", leg_dir / "sampler" / "checkpoint.json"
    return result.exists() and checkpoint.exists() and result.stat().st_mtime >= checkpoint.stat().st_mtime


def markdown(data: dict) -> str:
    span = data.get("run_span") or {}
    lines = [
        f"# RHFE {data['benchmark'].removeprefix('rhfe_')} series (FreeSolv): mlfep vs experiment and FreeSolv GAFF",
        "",
        f"Command of this table: `{data['command']}`  ",
        *[f"Run: `{line}`  " for line in span.get("invocations", [])],
        f"Protocol: `{data['protocol']}`; ligand force field: `{data.get('ligand_ff') or 'sage'}`; "
        f"edges finished: {data['edges_done']} of {data['edges_total']}"
        + (f"; failed: {', '.join(data['edges_failed'])}" if data["edges_failed"] else ""),
        "",
    ]
    if span.get("span_s"):
        lines += [
            f"Wall time: {span['span_s'] / 3600:.2f} h from the first prepared ligand ({span['start_utc']} UTC) to the "
            f"last edge result ({span['last_result_utc']} UTC)"
            + (
                f", of which {span['active_s'] / 3600:.2f} h running over {len(span['invocations'])} invocations"
                if span.get("active_s") and len(span.get("invocations", [])) > 1
                else ""
            )
            + f" on {data.get('cpu_count')} CPU cores; median MM edge "
            f"σ {data['median_edge_sigma_mm']:.2f} kcal/mol.",
            "",
        ]
    lines += [
        "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()),
        "",
        "Statistics: ΔΔG per edge (edges_*) and MLE ΔG per ligand, centred on the experimental mean (nodes_*), "
        "against experiment; 95 % bootstrap intervals"
        + (
            " (each sample resamples the edges or ligands and draws the calculated and experimental σ)"
            if any(s.get("noise") for s in data["statistics"].values())
            else " (resampling the edges or ligands only)"
        )
        + ". gaff = FreeSolv's own GAFF/AM1-BCC calculated values.",
        "",
        "| statistic set | n | RMSE [95 % CI] | MUE | R² | Kendall τ |",
        "| --- | ---: | --- | --- | --- | --- |",
        *statistics_rows(data["statistics"]),
        "",
        "Per edge (kcal/mol):",
        "",
        "| edge | ΔΔG MM | σ | ΔΔG ML | σ | expt ΔΔG | GAFF ΔΔG |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["edges"]:
        lines.append(
            f"| {r['edge']} | {fmt(r['ddg_mm'])} | {fmt(r['ddg_mm_err'])} | {fmt(r['ddg_ml'])} | "
            f"{fmt(r['ddg_ml_err'])} | {fmt(r['ddg_exp'])} | {fmt(r['ddg_gaff'])} |"
        )
    if data.get("nodes"):
        lines += [
            "",
            "Per ligand, MLE ΔG (kcal/mol, experimental-mean gauge):",
            "",
            "| ligand | ΔG MM | σ | ΔG ML | σ | expt ΔG | GAFF ΔG |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for n in data["nodes"]:
            lines.append(
                f"| {n['ligand']} | {fmt(n['dg_mm'])} | {fmt(n['dg_mm_err'])} | {fmt(n['dg_ml'])} | "
                f"{fmt(n['dg_ml_err'])} | {fmt(n['dg_exp'])} | {fmt(n['dg_gaff'])} |"
            )
    cost = data.get("nnp_cost") or {}
    if cost.get("legs"):
        lines += [
            "",
            f"ANI-2x correction cost: {100 * cost['fraction']:.1f} % of the MM sampling wall time over the "
            f"{len(cost['legs'])} legs that recorded it ({cost['nnp_wall_s']:.0f} s vs {cost['mm_wall_s']:.0f} s).",
        ]
    tcost = data.get("torsion_cost")
    if tcost and tcost.get("fraction") is not None:
        lines += [
            "",
            f"ANI-2x torsion scans and fits: {tcost['fit_wall_s']:.0f} s for {len(tcost['per_ligand_wall_s'])} ligands, "
            f"{100 * tcost['fraction']:.1f} % of the MM sampling wall time of the run "
            + (
                f"(estimated: {tcost['mm_sampler_wall_s']:.0f} s of MM for the {tcost['edges_sampled']} of "
                f"{tcost['edges_total']} edges sampled so far, scaled to all; "
                if tcost.get("fraction_is_estimate")
                else f"({tcost['mm_sampler_wall_s']:.0f} s; "
            )
            + "made once per ligand, cached).",
        ]
    cal = data.get("sigma_calibration")
    if cal:
        lines += [
            "",
            f"σ calibration (MM, {cal['n_edges']} edges with independent repeats): spread of the repeats / the σ "
            f"they reported = {ci(cal['ratio'])} (1 = honest; target 0.8-1.25).",
            "",
            "| edge | repeats ΔΔG | σ reported | spread s | RMS σ | s / RMS σ |",
            "| --- | --- | --- | ---: | ---: | ---: |",
        ]
        for row in data["edges"]:
            x, e = row.get("repeats_mm") or [], row.get("repeats_mm_err") or []
            if len(x) < 2 or len(e) != len(x):
                continue
            spread = statistics.stdev(x)
            rms = math.sqrt(sum(v * v for v in e) / len(e))
            lines.append(
                f"| {row['edge']} | {', '.join(f'{v:.2f}' for v in x)} | {', '.join(f'{v:.2f}' for v in e)} | "
                f"{spread:.2f} | {rms:.2f} | {spread / rms:.2f} |"
            )
    lines += ["", "Cycle closures (MM, kcal/mol):", ""]
    for c in data["cycle_closures_mm"]:
        lines.append(f"- {' → '.join(c['cycle'])}: {c['closure']:+.2f} ± {c['sigma']:.2f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="fast")
    parser.add_argument("--set", dest="series", default="benzenes", choices=SETS, help="FreeSolv series")
    parser.add_argument("--run-dir", type=Path, default=None, help="Default: runs/rhfe_<set>")
    parser.add_argument(
        "--ligand-ff",
        default=None,
        choices=["sage", "ani2x-torsions", "ani2x-endpoint"],
        help="Ligand force field of the run (fep run --ligand-ff); default sage",
    )
    parser.add_argument("--charge-method", default="am1bcc", choices=["am1bcc", "nagl"], help="Ligand charges")
    parser.add_argument("--nnp", default=None, choices=["ani2x", "none"], help="Older name: ani2x = ani2x-endpoint")
    parser.add_argument("--edges", default=None, help="Comma-separated subset, e.g. benzene~toluene,benzene~phenol")
    parser.add_argument("--analyse-only", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--fep-args", default="", help="Extra arguments for `fep run`, e.g. '--workers 2'")
    parser.add_argument(
        "--archive", type=Path, default=None, help="Only write a resumable .tar.gz of the (stopped) run to this path"
    )
    parser.add_argument(
        "--extendable",
        action="store_true",
        default=None,
        help="With --archive: keep what extending a finished leg needs (default only for an adaptive run)",
    )
    args = parser.parse_args(argv)
    command = "python benchmarks/rhfe.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.ligand_ff is None:
        args.ligand_ff = "ani2x-endpoint" if args.nnp == "ani2x" else "sage"
    option = args.ligand_ff if args.charge_method == "am1bcc" else f"{args.ligand_ff}+{args.charge_method}"
    if args.run_dir is None:
        args.run_dir = REPO / "runs" / f"rhfe_{args.series}_{option}"
    if args.archive is not None:
        print(json.dumps(archive(args.run_dir, args.archive, args.extendable)))
        return 0
    wall = None
    if not args.analyse_only:
        log_invocation(args.run_dir, command)
        network_json = plan(args.run_dir, args.edges.split(",") if args.edges else None, args.series)
        extra = ["--charge-method", args.charge_method, *args.fep_args.split()]
        wall = run(network_json, args.run_dir, args.protocol, args.ligand_ff, extra)
    data = analyse(args.run_dir, args.protocol, wall, command, args.series, option)
    write_result(args.out, f"rhfe_{args.series}_{option}", data, markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
