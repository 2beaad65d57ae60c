"""The ANI-2x endpoint correction on an RHFE series, made at the nodes, on a finished plain-Sage run's edges.

    python benchmarks/rhfe_nodes.py --set flexible --mm benchmarks/results/rhfe_flexible_sage.json
                                    [--protocol fast] [--run-dir runs/rhfe_<set>_nodes] [--workers 2]

``--ligand-ff ani2x-endpoint`` changes nothing in the MM sampling: each edge's ML value is its MM ΔΔG plus the
node corrections of its two ligands, ``ΔΔG_ML = ΔΔG_MM + [C(B) − C(A)]`` with ``C = C_solvent − C_vacuum``
(:func:`analysis.results.correction_sum`, what ``fep run`` does). So the corrections of a series can be made once
per ligand and environment (:func:`fep.execution.runner.node_corrections`, the same code path and cache as a run)
and added to the MM edges of a finished Sage run of the same series and protocol: the comparison ML − MM is then
paired by construction (the same MM samples on both sides). Resumable: corrections are cached in
``RUN_DIR/nodes/<ligand>/<env>.json``.

Writes ``rhfe_<set>_ani2x-endpoint.{json,md}``: per edge MM and ML side by side with experiment, statistics,
the paired bootstrap ΔRMSE(ML − MM) over the same edges, the correction cost against the MM sampling of the Sage
run (both measured with two processes on the two cores), and the ligands whose MM and ANI-2x minima disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from rhfe import REPO, _read_csv, series_files
from tables import fmt, statistics_rows, write_result

ENVS = ("solvent", "vacuum")


def _init_worker() -> None:  # pragma: no cover - runs in the pool's processes
    for var in ("OPENMM_CPU_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from mlfep_core.runtime import configure_process

    configure_process()


def _correct(prepared_json: str, env: str, protocol_name: str, run_dir: str) -> dict:
    from fep.execution.runner import node_corrections
    from fep.protocol import load_protocol
    from ligand_prep.models import PreparedLigand

    prep = PreparedLigand.from_json_file(prepared_json)
    (corr,) = node_corrections([("A", prep)], (env,), load_protocol(protocol_name), run_dir)
    return corr.model_dump(mode="json")


def prepare(series: str, run_dir: Path, protocol_name: str) -> dict[str, Path]:
    """Each ligand of the series prepared as ``fep run`` prepares it for plain Sage (charges from the cache)."""
    from fep.execution.runner import prepare_ligands
    from fep.protocol import load_protocol
    from ligand_prep.io import read_ligands

    ligands_csv, _ = series_files(series)
    folder = run_dir / "prepared"
    paths = {}
    todo = []
    for lig in read_ligands(ligands_csv):
        paths[lig.name] = folder / f"{lig.name}.json"
        if not paths[lig.name].exists():
            todo.append(lig)
    if todo:
        for name, prep in prepare_ligands(todo, load_protocol(protocol_name)).items():
            prep.to_json_file(paths[name])
    return paths


def corrections(paths: dict[str, Path], run_dir: Path, protocol_name: str, workers: int) -> dict[tuple[str, str], dict]:
    """Every ligand's correction in each environment (cached ones read back), on ``workers`` processes."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(name, env) for name in paths for env in ENVS]
    out = {}
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker) as pool:
        futures = {
            (name, env): pool.submit(_correct, str(paths[name]), env, protocol_name, str(run_dir)) for name, env in jobs
        }
        for key, future in futures.items():
            out[key] = future.result()
            c = out[key]
            print(f"{key[0]:>28} {key[1]:>8}: {c['status']} {fmt(c.get('dg_kcal_mol'))} ± {fmt(c.get('dg_err_kcal_mol'))}"
                  f"  ({c.get('wall_s') or 0:.0f} s)", flush=True)  # fmt: skip
    return out


def combine(mm: dict, corr: dict[tuple[str, str], dict], series: str) -> dict:
    """MM rows of the Sage run with the ML value of each edge, statistics, the paired ΔRMSE and the cost."""
    from analysis.results import EndpointCorrection, correction_sum
    from analysis.stats import compute_statistics, paired_comparison

    rows = []
    for row in mm["edges"]:
        a, b = row["edge"].split("~")
        found = [
            EndpointCorrection.model_validate({**corr[(lig, env)], "state": state})
            for lig, state in ((a, "A"), (b, "B"))
            for env in ENVS
        ]
        delta, sigma, reason = correction_sum(a, b, ENVS, found)
        ml = None if delta is None else row["ddg_mm"] + delta
        ml_err = None if sigma is None else (row["ddg_mm_err"] ** 2 + sigma**2) ** 0.5
        rows.append({**row, "ddg_ml": ml, "ddg_ml_err": ml_err, "ml_reason": reason, "node_delta": delta})
    both = [r for r in rows if r["ddg_ml"] is not None]
    exp = [r["ddg_exp"] for r in both]
    stats = {
        "edges_mm": compute_statistics([r["ddg_mm"] for r in both], exp, kind="edges", estimate="mm"),
        "edges_ml": compute_statistics([r["ddg_ml"] for r in both], exp, kind="edges", estimate="ml"),
        "edges_gaff": compute_statistics([r["ddg_gaff"] for r in both], exp, kind="edges"),
    }
    # edges resampled only: the MM noise is the same on both sides, so drawing it twice would be wrong
    paired = paired_comparison([r["ddg_mm"] for r in both], [r["ddg_ml"] for r in both], exp)
    node_wall = sum(c.get("wall_s") or 0.0 for c in corr.values())
    node_cpu = sum(c.get("cpu_s") or 0.0 for c in corr.values())
    mm_wall = (mm.get("nnp_cost") or {}).get("sampler_wall_s_sum_of_last_calls")
    warnings = sorted(f"{lig} ({env}): {c['reason']}" for (lig, env), c in corr.items() if c["status"] == "warn")
    return {
        "edges": rows,
        "statistics": {k: v.model_dump(mode="json") for k, v in stats.items()},
        "paired_ml_vs_mm": paired.model_dump(mode="json"),
        "n_paired": len(both),
        "corrections": [{"ligand": k[0], "env": k[1], **v} for k, v in sorted(corr.items())],
        "nnp_cost": {
            "node_wall_s": round(node_wall, 1),
            "node_cpu_s": round(node_cpu, 1),
            "mm_sampler_wall_s": mm_wall,
            "fraction": node_wall / mm_wall if mm_wall else None,
        },
        "warnings": warnings,
    }


def markdown(data: dict) -> str:
    p, cost = data["paired_ml_vs_mm"], data["nnp_cost"]
    d = p["delta_rmse"]
    lines = [
        f"# RHFE {data['series']} series (FreeSolv): ANI-2x endpoint correction at the nodes vs plain Sage",
        "",
        f"Command: `{data['command']}`  ",
        f"MM edges: `{data['mm_source']}` (protocol `{data['protocol']}`); corrections: `fep.nnp.nodes` with the "
        f"`{data['protocol']}` tier, one per ligand and environment; {data['n_paired']} edges with both values.",
        "",
        f"- Paired bootstrap over the same edges ({p['n_bootstrap']} samples; MM noise shared, so edges only): "
        f"RMSE MM {p['rmse_a']:.2f}, ML {p['rmse_b']:.2f}; **ΔRMSE (ML − MM) {d['value']:+.2f} "
        f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]**; ML better in {100 * p['p_b_better']:.0f} % of samples.",
    ]
    if cost.get("fraction") is not None:
        lines.append(
            f"- Cost: {cost['node_wall_s']:.0f} s of corrections (wall, 2 processes on 2 cores) = "
            f"**{100 * cost['fraction']:.1f} %** of the MM sampling wall time of the Sage run "
            f"({cost['mm_sampler_wall_s']:.0f} s, same load)."
        )
    lines += [
        "",
        "| statistic set | n | RMSE [95 % CI] | MUE | R² | Kendall τ |",
        "| --- | ---: | --- | --- | --- | --- |",
        *statistics_rows(data["statistics"]),
        "",
        "| edge | ΔΔG MM | σ | ΔΔG ML | σ | C(B) − C(A) | expt ΔΔG |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["edges"]:
        lines.append(
            f"| {r['edge']} | {fmt(r['ddg_mm'])} | {fmt(r['ddg_mm_err'])} | {fmt(r['ddg_ml'])} | "
            f"{fmt(r['ddg_ml_err'])} | {fmt(r['node_delta'])} | {fmt(r['ddg_exp'])} |"
        )
    lines += [
        "",
        "Node corrections (kcal/mol):",
        "",
        "| ligand | env | C | σ | wall s |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for c in data["corrections"]:
        lines.append(
            f"| {c['ligand']} | {c['env']} | {fmt(c.get('dg_kcal_mol'))} | {fmt(c.get('dg_err_kcal_mol'))} | "
            f"{c.get('wall_s') or 0:.0f} |"
        )
    if data["warnings"]:
        lines += ["", "Corrections with a warning (e.g. MM and ANI-2x minima that disagree):", ""]
        lines += [f"- {w}" for w in data["warnings"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from mlfep_core.runtime import configure_process

    configure_process()  # logging, warnings, AmberTools on PATH: what the fep command does
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="series", default="benzenes", choices=("benzenes", "flexible"))
    parser.add_argument("--mm", type=Path, required=True, help="rhfe_<set>_sage.json (or rhfe.json) of the MM run")
    parser.add_argument("--protocol", default="fast")
    parser.add_argument("--run-dir", type=Path, default=None, help="Default: runs/rhfe_<set>_nodes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    command = "python benchmarks/rhfe_nodes.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    mm = json.loads(args.mm.read_text())
    if mm.get("protocol") != args.protocol:
        raise SystemExit(f"{args.mm} was run with protocol {mm.get('protocol')!r}, not {args.protocol!r}")
    run_dir = args.run_dir or REPO / "runs" / f"rhfe_{args.series}_nodes"
    start = time.perf_counter()
    paths = prepare(args.series, run_dir, args.protocol)
    corr = corrections(paths, run_dir, args.protocol, args.workers)
    data = {
        "benchmark": f"rhfe_{args.series}_nodes",
        "series": args.series,
        "ligand_ff": "ani2x-endpoint",
        "command": command,
        "protocol": args.protocol,
        "mm_source": str(args.mm),
        "edges_total": len(_read_csv(series_files(args.series)[1])),
        "wall_s_this_call": round(time.perf_counter() - start, 1),
        "cpu_count": os.cpu_count(),
        **combine(mm, corr, args.series),
    }
    data["edges_done"] = data["n_paired"]
    write_result(args.out, f"rhfe_{args.series}_ani2x-endpoint", data, markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
