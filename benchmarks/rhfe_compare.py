"""Two ligand force-field options on the same RHFE edges: paired ΔRMSE (B − A) with a bootstrap interval.

    python benchmarks/rhfe_compare.py --set flexible --a sage --b ani2x-torsions [--results benchmarks/results]

Reads ``rhfe_<set>_<a>.json`` and ``rhfe_<set>_<b>.json`` (written by ``benchmarks/rhfe.py --ligand-ff ...``),
pairs their finished edges, and writes ``rhfe_<set>_<a>_vs_<b>.{json,md}``: RMSE of each against experiment and
ΔRMSE/ΔMUE with paired 95 % bootstrap intervals, once resampling edges only and once also drawing each edge's
calculated σ and experimental σ (√(σ_A² + σ_B²) of the two ligands' FreeSolv errors). For the endpoint option
the ML column (ΔΔG_ML) is the estimate; for the others the run's own ΔΔG. The cost of option B is taken from its
results file (torsion fits or NNP corrections as a fraction of the MM sampling of the same legs).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLFEP_SHARED", REPO.parent / "shared"))
FREESOLV = SHARED / "benchmarks" / "freesolv"
OPTIONS = tuple(f"{ff}{q}" for q in ("", "+nagl") for ff in ("sage", "ani2x-torsions", "ani2x-endpoint"))


def result_path(results: Path, series: str, option: str) -> Path:
    """``rhfe_<set>_<option>.json`` in ``results`` (the first benzene Sage run was written as ``rhfe.json``)."""
    named = results / f"rhfe_{series}_{option}.json"
    legacy = results / "rhfe.json"
    return legacy if not named.exists() and (series, option) == ("benzenes", "sage") else named


def _estimate(row: dict, option: str) -> tuple[float | None, float | None]:
    if option.startswith("ani2x-endpoint"):
        return row.get("ddg_ml"), row.get("ddg_ml_err")
    return row["ddg_mm"], row["ddg_mm_err"]


def compare(
    series: str,
    a: str,
    b: str,
    results: Path,
    files: tuple[Path | None, Path | None] = (None, None),
    labels: tuple[str | None, str | None] = (None, None),
) -> dict:
    """Pair option ``a``'s and ``b``'s edges; ``files`` overrides their result files (e.g. an earlier run of the
    same option), ``labels`` their names in the output."""
    from analysis.stats import paired_comparison

    paths = [f or result_path(results, series, opt) for f, opt in zip(files, (a, b), strict=True)]
    raw = [json.loads(path.read_text()) for path in paths]
    options = (a, b)
    a, b = (label or opt for label, opt in zip(labels, options, strict=True))
    data = {a: raw[0], b: raw[1]}
    with open(FREESOLV / f"rhfe_{series}_ligands.csv", newline="") as handle:
        exp_err = {r["name"]: float(r["expt_dg_err_kcal_mol"] or 0.0) for r in csv.DictReader(handle)}
    rows_b = {r["edge"]: r for r in data[b]["edges"]}
    paired = []
    for row_a in data[a]["edges"]:
        row_b = rows_b.get(row_a["edge"])
        if row_b is None:
            continue
        (va, sa), (vb, sb) = _estimate(row_a, options[0]), _estimate(row_b, options[1])
        if va is None or vb is None:
            continue
        la, lb = row_a["edge"].split("~")
        paired.append(
            {
                "edge": row_a["edge"],
                "a": va,
                "sigma_a": sa,
                "b": vb,
                "sigma_b": sb,
                "exp": row_a["ddg_exp"],
                "sigma_exp": math.hypot(exp_err[la], exp_err[lb]),
            }
        )
    out = {
        "benchmark": f"rhfe_{series}_{a}_vs_{b}",
        "series": series,
        "a": a,
        "b": b,
        "edges_a": data[a]["edges_done"],
        "edges_b": data[b]["edges_done"],
        "edges_total": data[a]["edges_total"],
        "protocol": {a: data[a]["protocol"], b: data[b]["protocol"]},
        "files": [str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path) for path in paths],
        "edges": paired,
        "cost_b": data[b].get("torsion_cost") or data[b].get("nnp_cost"),
    }
    if len(paired) >= 2:
        col = {k: [p[k] for p in paired] for k in paired[0] if k != "edge"}
        out["paired_edges_only"] = paired_comparison(col["a"], col["b"], col["exp"]).model_dump(mode="json")
        out["paired_with_errors"] = paired_comparison(
            col["a"], col["b"], col["exp"], sigma_a=col["sigma_a"], sigma_b=col["sigma_b"], sigma_exp=col["sigma_exp"]
        ).model_dump(mode="json")
    return out


def markdown(data: dict, command: str) -> str:
    a, b = data["a"], data["b"]
    lines = [
        f"# RHFE {data['series']} series: `{b}` against `{a}` on the same edges",
        "",
        f"Command: `{command}`  ",
        f"Edges: {len(data['edges'])} paired ({a}: {data['edges_a']}, {b}: {data['edges_b']} of "
        f"{data['edges_total']} finished); protocols {data['protocol'][a]} / {data['protocol'][b]}.",
        "",
    ]
    for key, what in (
        ("paired_edges_only", "edges resampled"),
        ("paired_with_errors", "edges resampled, calculated and experimental σ drawn"),
    ):
        res = data.get(key)
        if not res:
            continue
        d, m = res["delta_rmse"], res["delta_mue"]
        lines.append(
            f"- Paired bootstrap ({what}, {res['n_bootstrap']} samples): RMSE {a} {res['rmse_a']:.2f}, {b} "
            f"{res['rmse_b']:.2f}; ΔRMSE ({b} − {a}) {d['value']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]; "
            f"ΔMUE {m['value']:+.2f} [{m['ci_low']:+.2f}, {m['ci_high']:+.2f}]; {b} better in "
            f"{100 * res['p_b_better']:.0f} % of samples."
        )
    cost = data.get("cost_b") or {}
    if cost.get("fraction") is not None:
        est = " (estimated from a partial run: MM scaled to every edge)" if cost.get("fraction_is_estimate") else ""
        lines.append(
            f"- Cost of `{b}` beyond the MM sampling: {100 * cost['fraction']:.1f} % of the MM sampling wall time{est}."
        )
    lines += [
        "",
        f"| edge | ΔΔG {a} | σ | ΔΔG {b} | σ | expt | σ expt |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in data["edges"]:
        lines.append(
            f"| {p['edge']} | {p['a']:.2f} | {p['sigma_a']:.2f} | {p['b']:.2f} | {p['sigma_b']:.2f} | "
            f"{p['exp']:.2f} | {p['sigma_exp']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="series", default="flexible", choices=("benzenes", "flexible"))
    parser.add_argument("--a", default="sage", choices=OPTIONS)
    parser.add_argument("--b", default="ani2x-torsions", choices=OPTIONS)
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--a-file", type=Path, help="result file of A instead of rhfe_<set>_<a>.json")
    parser.add_argument("--b-file", type=Path, help="result file of B instead of rhfe_<set>_<b>.json")
    parser.add_argument("--label-a", help="A's name in the output (default: --a)")
    parser.add_argument("--label-b", help="B's name in the output (default: --b)")
    args = parser.parse_args(argv)
    label_a, label_b = args.label_a or args.a, args.label_b or args.b
    if label_a == label_b:
        parser.error("A and B must differ (give --label-a/--label-b to compare two runs of one option)")
    for path in (args.a_file, args.b_file):
        if path is not None and not path.exists():
            parser.error(f"{path} not found")
    for opt, path in ((args.a, args.a_file), (args.b, args.b_file)):
        if path is None and not result_path(args.results, args.series, opt).exists():
            parser.error(
                f"{args.results}/rhfe_{args.series}_{opt}.json not found: run benchmarks/rhfe.py --set {args.series} --ligand-ff {opt} first"
            )
    command = "python benchmarks/rhfe_compare.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    data = compare(args.series, args.a, args.b, args.results, (args.a_file, args.b_file), (args.label_a, args.label_b))
    data["command"] = command
    stem = f"rhfe_{args.series}_{label_a}_vs_{label_b}"
    (args.results / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.results / f"{stem}.md").write_text(markdown(data, command))
    print(markdown(data, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
