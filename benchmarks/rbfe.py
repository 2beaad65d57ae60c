"""Relative binding free energies of the shared protein-ligand sets (tyk2 first) against experiment.

    python benchmarks/rbfe.py [--targets tyk2[,p38,thrombin,mcl1,ptp1b]] [--protocol default] [--nnp ani2x]
                              [--edges lig_ejm_31~lig_ejm_42,...] [--run-root runs/rbfe] [--dry-run]
                              [--analyse-only] [--fep-args "--platform CUDA --workers 1"] [--out benchmarks/results]

For each target of ``../shared/benchmarks/<target>/`` (read in place): ``fep plan`` maps exactly the edges of its
``edges.csv`` (binding mode, docked poses, the shipped protein), ``fep run`` runs them with the protocol (``default``:
12 windows x 5 ns x 3 repeats, the OpenFE-like GPU protocol) into ``RUN_ROOT/<target>`` — resumably: stop it any
time and run the same command again — then the finished edges are compared with ``experimental.csv``: per edge
ΔΔG_MM and ΔΔG_ML with σ against the experimental ΔΔG, node ΔG by maximum likelihood, RMSE / MUE / R² / Kendall τ
with bootstrap 95 % intervals for MM and ML (edges and nodes), and the cycle closures. Output: ``rbfe.json`` and
``rbfe.md`` in ``--out`` (all targets of the call together).

This is a GPU benchmark: the tyk2 complex leg alone (about 35,000 atoms) runs at about 0.7 ns/day per CPU core
(benchmarks/results/hybrid_speed.md), so the default protocol (180 ns per complex leg) is out of reach on a CPU.
``--dry-run`` prints the plan and ``fep run``'s cost estimate without simulating. A shorter protocol file (``base:
default`` with fewer iterations or ``repeats: 1``) and ``--edges`` give a reduced run that is already informative.
Charge-changing edges (thrombin lig_4~lig_5, lig_4~lig_7f) are refused by ``fep run`` and reported as failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from tables import fmt, statistics_rows

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLFEP_SHARED", REPO.parent / "shared"))
TARGETS = ("tyk2", "p38", "thrombin", "mcl1", "ptp1b")


def _fep() -> str:
    return str(Path(sys.executable).parent / "fep")


def plan(target: str, run_root: Path, edges: list[str] | None) -> Path:
    """``fep plan`` of the target's own edges (optionally a subset) into RUN_ROOT/<target>_network.json."""
    data = SHARED / "benchmarks" / target
    edges_csv = data / "edges.csv"
    run_root.mkdir(parents=True, exist_ok=True)
    if edges:
        rows = edges_csv.read_text().splitlines()
        wanted = {tuple(e.split("~")) for e in edges}
        keep = [r for r in rows[1:] if tuple(r.split(",")[:2]) in wanted]
        if len(keep) != len(wanted):
            raise SystemExit(f"--edges: some of {sorted(wanted)} are not edges of {edges_csv}")
        edges_csv = run_root / f"{target}_edges.csv"
        edges_csv.write_text("\n".join([rows[0], *keep]) + "\n")
    network = run_root / f"{target}_network.json"
    cmd = [_fep(), "plan", str(data / "ligands.sdf"), "--protein", str(data / "protein.pdb")]
    cmd += ["--mode", "binding", "--network", str(edges_csv), "-o", str(network)]
    print("+", " ".join(cmd), flush=True)
    if subprocess.run(cmd, check=False).returncode != 0:
        raise SystemExit(f"fep plan failed for {target}")
    return network


def run(target: str, network: Path, run_dir: Path, protocol: str, nnp: str, extra: list[str], dry: bool) -> float:
    """``fep run`` of the network into ``run_dir`` (``--resume`` when it already holds the run); wall seconds."""
    data = SHARED / "benchmarks" / target
    cmd = [_fep(), "run", str(network), "--protocol", protocol, "--nnp", nnp, "-o", str(run_dir)]
    cmd += ["--protein", str(data / "protein.pdb"), *extra]
    if dry:
        cmd.append("--dry-run")
    elif (run_dir / "run.json").exists():
        cmd.append("--resume")
    print("+", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=False)
    return time.perf_counter() - start


def analyse(target: str, run_dir: Path, wall_s: float | None) -> dict:
    """The finished edges of one target against its experimental ΔG."""
    from analysis.network import analyse_network
    from analysis.report import load_run_dir
    from ligand_prep.experimental import read_experimental

    expt = {
        name: value.dg_kcal_mol
        for name, value in read_experimental(SHARED / "benchmarks" / target / "experimental.csv").items()
    }
    results, _ = load_run_dir(run_dir) if (run_dir / "run.json").exists() else ([], None)
    done = [e for e in results if e.status == "done"]
    protocol = json.loads((run_dir / "run.json").read_text())["protocol"]["name"] if done else None
    rows = [
        {
            "edge": e.key,
            "ddg_mm": e.ddg_mm_kcal_mol,
            "ddg_mm_err": e.ddg_mm_err_kcal_mol,
            "ddg_ml": e.ddg_ml_kcal_mol,
            "ddg_ml_err": e.ddg_ml_err_kcal_mol,
            "ddg_exp": expt[e.ligand_b] - expt[e.ligand_a],
            "ml_reason": e.ml_reason,
            "sigma_legs": {leg: r.dg_err_kcal_mol for leg, r in e.legs.items()},
            "repeats": e.repeats,
        }
        for e in done
    ]
    network = analyse_network(done, experimental=expt) if done else None
    return {
        "target": target,
        "protocol": protocol,
        "run_dir": str(run_dir),
        "edges_total": len((SHARED / "benchmarks" / target / "edges.csv").read_text().splitlines()) - 1,
        "edges_done": len(done),
        "edges_failed": {e.key: e.error for e in results if e.status != "done"},
        "wall_s_this_call": wall_s,
        "edges": rows,
        "network": network.model_dump(mode="json") if network else None,
    }


def markdown(data: dict) -> str:
    lines = [
        "# RBFE protein-ligand benchmark: mlfep vs experiment",
        "",
        f"Command: `{data['command']}`  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()),
    ]
    for t in data["targets"]:
        lines += [
            "",
            f"## {t['target']}",
            "",
            f"Protocol `{t['protocol']}`; edges finished {t['edges_done']} of {t['edges_total']}"
            + "".join(f"; {k} failed: {v}" for k, v in t["edges_failed"].items()),
        ]
        if not t["edges"]:
            continue
        lines += ["", "| edge | ΔΔG MM | σ | ΔΔG ML | σ | expt ΔΔG |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in t["edges"]:
            lines.append(
                f"| {r['edge']} | {fmt(r['ddg_mm'])} | {fmt(r['ddg_mm_err'])} | {fmt(r['ddg_ml'])} | "
                f"{fmt(r['ddg_ml_err'])} | {fmt(r['ddg_exp'])} |"
            )
        net = t["network"] or {}
        if net.get("statistics"):
            lines += [
                "",
                "| statistics | n | RMSE [95 % CI] | MUE | R² | Kendall τ |",
                "| --- | ---: | --- | --- | --- | --- |",
            ]
            named = {f"{s.get('kind', '')} {s.get('estimate', '')}".strip(): s for s in net["statistics"]}
            lines += statistics_rows(named)
        if net.get("cycle_closures"):
            lines += ["", "Cycle closures (kcal/mol):", ""]
            for c in net["cycle_closures"]:
                lines.append(
                    f"- {c.get('estimate', '')} {' → '.join(c['cycle'])}: {c['closure_kcal_mol']:+.2f} ± {c['closure_err_kcal_mol']:.2f}"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="tyk2", help=f"Comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--protocol", default="default", help="A tier or a protocol file")
    parser.add_argument("--nnp", default="ani2x", choices=["ani2x", "none"])
    parser.add_argument("--edges", default=None, help="Subset of one target's edges, e.g. lig_ejm_31~lig_ejm_42")
    parser.add_argument("--run-root", type=Path, default=REPO / "runs" / "rbfe")
    parser.add_argument("--dry-run", action="store_true", help="Plan and print the cost estimate; no simulation")
    parser.add_argument("--analyse-only", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--fep-args", default="", help="Extra `fep run` arguments, e.g. '--platform CUDA'")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"--targets: unknown {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    if args.edges and len(targets) != 1:
        parser.error("--edges needs exactly one target")
    from fep.execution.rundir import package_versions

    command = "python benchmarks/rbfe.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    out = {"benchmark": "rbfe", "command": command, "versions": package_versions(), "targets": []}
    for target in targets:
        run_dir = args.run_root / target
        wall = None
        if not args.analyse_only:
            network = plan(target, args.run_root, args.edges.split(",") if args.edges else None)
            wall = run(target, network, run_dir, args.protocol, args.nnp, args.fep_args.split(), args.dry_run)
        if not args.dry_run:
            out["targets"].append(analyse(target, run_dir, wall))
    if args.dry_run:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rbfe.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "rbfe.md").write_text(markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
