"""Write docs/results.md, the results page, from the committed benchmark outputs in benchmarks/results/.

    python benchmarks/results_page.py [--results benchmarks/results] [--out docs/results.md] [--check]

Every number on the page is read from a JSON file in ``--results`` (the page names the file); nothing is typed in
by hand. ``--check`` exits 1 when the page differs from what the files give (the test suite runs it), so the page
cannot drift from the outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tables import ci, fmt, statistics_rows

REPO = Path(__file__).resolve().parents[1]


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _f(x: float | None, digits: int = 2) -> str:
    return fmt(x, digits, missing="–")


def _ci(metric: dict | None) -> str:
    return ci(metric, missing="–")


def rhfe_section(results: Path) -> list[str]:
    """The benzene series with the current defaults (``rhfe_benzenes_sage``; the first run, ``rhfe``, before them)."""
    out = ["## Relative hydration free energies: FreeSolv benzene series (CPU, `fast` protocol)", ""]
    stem = "rhfe_benzenes_sage" if (results / "rhfe_benzenes_sage.json").exists() else "rhfe"
    data = _load(results, stem)
    if data is None:
        return [*out, 'Not run yet: `python benchmarks/rhfe.py --protocol fast --fep-args "--workers 2"`.', ""]
    span = data.get("run_span") or {}
    out += [
        f"Source: `benchmarks/results/{stem}.json` / `{stem}.md`. {data['edges_done']} of {data['edges_total']} edges "
        f"finished with protocol `{data['protocol']}`"
        + (f"; failed: {', '.join(data['edges_failed'])}" if data["edges_failed"] else "")
        + ".",
    ]
    if span.get("span_s"):
        ran = span.get("active_s") if len(span.get("invocations", [])) > 1 else None
        out.append(
            (
                f"Ran {ran / 3600:.2f} h over {len(span['invocations'])} invocations"
                if ran
                else f"Wall time {span['span_s'] / 3600:.2f} h"
            )
            + f" on {data.get('cpu_count')} CPU cores ({span['start_utc']} → {span['last_result_utc']} UTC); median MM "
            f"edge σ {_f(data['median_edge_sigma_mm'])} kcal/mol."
        )
    out += [
        "",
        "Against experiment (kcal/mol; 95 % bootstrap intervals). *edges*: ΔΔG per edge; *nodes*: maximum-likelihood "
        "ΔG per ligand, centred on the experimental mean. FreeSolv GAFF: the database's own GAFF/AM1-BCC values.",
        "",
        "| estimate | n | RMSE | MUE | R² | Kendall τ |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    labels = {
        "edges_mm": "edges, mlfep MM (Sage 2.2.1)",
        "edges_ml": "edges, mlfep ML-corrected (ANI-2x)",
        "edges_gaff": "edges, FreeSolv GAFF",
        "nodes_mm": "nodes, mlfep MM",
        "nodes_ml": "nodes, mlfep ML-corrected",
        "nodes_gaff": "nodes, FreeSolv GAFF",
    }
    named = {label: data["statistics"][key] for key, label in labels.items() if data["statistics"].get(key)}
    out += statistics_rows(named, missing="–")
    cost = data.get("nnp_cost") or {}
    if cost.get("legs"):
        out += [
            "",
            f"ANI-2x correction cost in this run: {100 * cost['fraction']:.1f} % of the MM sampling wall time of the same legs "
            f"({len(cost['legs'])} legs that recorded it; the `fast` tier's CPU samples are short, so the correction "
            "weighs more than on a GPU tier, see the NNP row of the speed section).",
        ]
    closures = data.get("cycle_closures_mm") or []
    if closures:
        worst = max(closures, key=lambda c: abs(c["closure"]))
        rms = (sum(c["closure"] ** 2 for c in closures) / len(closures)) ** 0.5
        out += [
            "",
            f"Cycle closures (MM): {len(closures)} independent cycles, RMS {rms:.2f} kcal/mol, largest "
            f"{worst['closure']:+.2f} ± {worst['sigma']:.2f} ({' → '.join(worst['cycle'])}).",
        ]
    cal = data.get("sigma_calibration")
    if cal:
        out += [
            "",
            f"σ calibration: over {cal['n_edges']} edges with two independent repeats, the spread of the repeats / the "
            f"σ they reported = {ci(cal['ratio'])} (1 = honest; target 0.8-1.25; per-edge table in `{stem}.md`).",
        ]
    for path in sorted(results.glob("rhfe_benzenes_previous-*_vs_*.json")):
        cmp = json.loads(path.read_text())
        res = cmp.get("paired_with_errors") or cmp.get("paired_edges_only")
        if res:
            d = res["delta_rmse"]
            out += [
                "",
                f"Against the previous fast tier (`{cmp['files'][0] if cmp.get('files') else cmp['a']}`: LJ cut hard at "
                f"0.7 nm, one repeat, smaller boxes, every dummy term kept) on the same {res['n']} edges (`{path.name}`): "
                f"RMSE {_f(res['rmse_a'])} then, {_f(res['rmse_b'])} now; paired ΔRMSE (now − then) {d['value']:+.2f} "
                f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] kcal/mol.",
            ]
    cut = _load(results, "cutoff_benzenes")
    if cut and cut.get("summary"):
        c, p = cut["summary"], cut.get("paired") or {}
        out += [
            "",
            f"LJ cutoff (`cutoff_benzenes.json`): reweighting every edge from the tier's {cut['scheme_sampled']} to Sage's "
            f"{cut['scheme_reweighted_to']} (EXP over the solvent legs' end-state snapshots) moves ΔΔG by at most "
            f"{c['max_abs_change']:.2f} kcal/mol (RMS {c['rms_change']:.2f}; median edge σ "
            f"{c['median_edge_sigma']:.2f}), within the edge's own σ on {c['n_within_edge_sigma']} of {c['n_edges']} "
            "edges" + (f"; RMSE {_f(p['rmse_a'])} → {_f(p['rmse_b'])}" if p else "") + ".",
        ]
    adaptive = _load(results, "adaptive_benzenes")
    if adaptive and adaptive.get("stop_reason"):
        u, a = adaptive["uniform"], adaptive["adaptive"]
        out += [
            "",
            f"Adaptive compute (`adaptive_benzenes.json`, `fep run --target-sigma "
            f"{adaptive['target_sigma_kcal_mol']:.3f}`, the uniform run's largest ligand σ): "
            f"{a['replica_ns_total']:.1f} replica-ns of production against the uniform run's "
            f"{u['replica_ns_total']:.1f} ({100 * adaptive['saving']:.0f} % saved), largest ligand σ "
            f"{a['max_sigma_kcal_mol']:.3f} against {u['max_sigma_kcal_mol']:.3f}, edge RMSE "
            f"{_f(a['edge_rmse_kcal_mol'])} against {_f(u['edge_rmse_kcal_mol'])}; stopped: {adaptive['stop_reason']}. "
            f"Target (≥ 30 % less sampling at the same largest σ): {'met' if adaptive['target_met'] else 'not met'}.",
        ]
    return [*out, ""]


def rbfe_section(data: dict | None) -> list[str]:
    out = ["## Relative binding free energies: protein-ligand sets (GPU, `default` protocol)", ""]
    if data is None or not any(t["edges_done"] for t in data.get("targets", [])):
        return [
            *out,
            "Not measured yet: no GPU has been available to this project. The script is ready: "
            '`python benchmarks/rbfe.py --targets tyk2 --fep-args "--platform CUDA"` (`--dry-run` prints the plan '
            "and the cost estimate; `--edges` and a protocol file with fewer iterations give a reduced run).",
            "",
        ]
    out.append("Source: `benchmarks/results/rbfe.json` / `rbfe.md`.")
    out += ["", "| target | protocol | edges done | estimate | RMSE (nodes) | Kendall τ (nodes) |"]
    out.append("| --- | --- | ---: | --- | --- | --- |")
    for t in data["targets"]:
        for s in (t.get("network") or {}).get("statistics", []):
            if s["kind"] == "nodes":
                out.append(
                    f"| {t['target']} | {t['protocol']} | {t['edges_done']}/{t['edges_total']} | {s['estimate']} | "
                    f"{_ci(s['metrics'].get('rmse'))} | {_ci(s['metrics'].get('kendall_tau'))} |"
                )
    return [*out, ""]


def speed_section(results: Path) -> list[str]:
    out = ["## Speed (CPU; GPU numbers once a GPU is available)", ""]
    hybrid = _load(results, "hybrid_speed")
    if hybrid:
        out += [
            f"**Hybrid topology vs plain end state** (`hybrid_speed.json`, {hybrid['date']}, OpenMM "
            f"{hybrid['openmm']} {hybrid['platform']}; target ≥ {hybrid['target_ratio']}): MD speed of the hybrid "
            "system at an intermediate λ window ÷ the plain end state.",
            "",
            "| case | atoms | ratio (wall) | ratio (CPU time) |",
            "| --- | ---: | ---: | ---: |",
        ]
        for c in hybrid["cases"]:
            out.append(
                f"| {c['case']} | {c['n_atoms_hybrid']} | {_f(c['ratio'], 3)} | {_f(c.get('ratio_cpu_time'), 3)} |"
            )
        out.append("")
    sampler = _load(results, "sampler_speed")
    if sampler:
        out += [
            f"**Sampler** (`sampler_speed.json`, {sampler['date']}, {sampler['n_atoms']} atoms, K = "
            f"{sampler['n_states']}): wall time ÷ the time inside MD steps in the same run (1.00 = no overhead).",
            "",
            "| ps per iteration | mlfep HREX | openmmtools ReplicaExchangeSampler |",
            "| ---: | ---: | ---: |",
        ]
        for r in sampler["rows"]:
            out.append(
                f"| {r['ps_per_iteration']} | {_f(r['hrex_wall_over_own_md'], 3)} | "
                f"{_f(r['openmmtools_wall_over_own_md'], 3)} |"
            )
        out.append("")
    cost = _load(results, "analysis_cost")
    if cost:
        worst = max(cost["rows"], key=lambda r: r["ratio_percent"])
        out += [
            f"**Analysis cost** (`analysis_cost.json`): MBAR + diagnostics of a leg at most "
            f"{worst['ratio_percent']:.2f} % of its sampling time ({worst['tier']} {worst['leg']} leg, "
            f"{worst['n_bootstrap']} bootstrap samples; target ≤ {cost['meta']['target_percent']} %). The sampling "
            "time is an assumed GPU speed (stated in the JSON), not a measurement.",
            "",
        ]
    nnp = _load(results, "nnp_speed")
    if nnp:
        k = nnp["kernels_cpu"]
        out += [
            f"**NNP correction** (`nnp_speed.json`, {nnp['date_utc']}, {nnp['molecule']}): batched ANI-2x "
            f"{k['ani_batched']['frames_per_s']:.0f} frames/s vs {k['ani_reference']['frames_per_s']:.0f} one by one "
            f"on CPU; cost of the correction ÷ the MM leg ({nnp['target']}):",
            "",
            "| tier | fraction | measured or estimated |",
            "| --- | ---: | --- |",
        ]
        for tier, t in nnp["tiers"].items():
            out.append(
                f"| {tier} | {100 * t['fraction_per_leg']:.1f} % | {'measured' if t['measured'] else 'estimated'} |"
            )
        out.append("")
    build = _load(results, "system_build")
    if build:
        rows = ", ".join(f"{r['leg']} {r['n_atoms_a']} atoms {r['cpu_s']:.1f} CPU-s" for r in build["rows"])
        out += [f"**System building** (`system_build.json`, {build['edge']}): {rows}.", ""]
    from speed import gpu_section  # benchmarks/speed.py: the GPU suite's results, or that it was not run

    gpu = gpu_section(results / "gpu")
    return [*out, gpu[0].replace("## ", "**", 1) + "**", *gpu[1:]]


def ml_forcefield_section(results: Path) -> list[str]:
    """The ML ligand force-field options: torsion refits, per-option RHFE runs and paired comparisons."""
    out = ["## ML ligand force field (`--ligand-ff`): torsion refits and paired comparisons", ""]
    fits = [_load(results, f"torsion_fits_{s}") for s in ("flexible", "benzenes")]
    for data in filter(None, fits):
        out.append(
            f"- `{data['benchmark']}.json`: {data['n_bonds']} rotatable bonds; RMSE of the MM-relaxed torsion profile "
            f"against ANI-2x's, median {_f(data['median_rmse_sage'])} kcal/mol with Sage's torsions, "
            f"{_f(data['median_rmse_fitted'])} refitted (largest {_f(data['max_rmse_fitted'])}); "
            f"{data['fit_wall_s_total']:.0f} s of scans and fits in all"
            + (
                f"; out of sample, relative conformer energies (RMS of the per-ligand ddE RMSE against ANI-2x): "
                f"Sage {_f(data['conformer_rmse_sage'])}, refitted {_f(data['conformer_rmse_fitted'])} kcal/mol."
                if data.get("conformer_rmse_sage") is not None
                else "."
            )
        )
    runs = sorted(results.glob("rhfe_*_*.json"))
    runs = [p for p in runs if "_vs_" not in p.stem]
    for path in runs:
        data = json.loads(path.read_text())
        endpoint = str(data.get("ligand_ff", "")).startswith("ani2x-endpoint")
        edges = (data.get("statistics") or {}).get("edges_ml" if endpoint else "edges_mm")
        rmse = _ci((edges or {}).get("metrics", {}).get("rmse")) if edges else "–"
        line = (
            f"- `{path.name}`: ligand force field `{data.get('ligand_ff')}`, {data['edges_done']} of "
            f"{data['edges_total']} edges, edge RMSE {rmse} kcal/mol (protocol `{data['protocol']}`)"
        )
        paired = data.get("paired_ml_vs_mm")
        if paired:
            d, cost = paired["delta_rmse"], (data.get("nnp_cost") or {}).get("fraction")
            line += (
                f"; on the same MM samples, paired ΔRMSE (ML − MM) {d['value']:+.2f} [{d['ci_low']:+.2f}, "
                f"{d['ci_high']:+.2f}] kcal/mol"
                + (f"; correction cost {100 * cost:.0f} % of the MM sampling" if cost is not None else "")
            )
        out.append(line + ".")
    for path in sorted(results.glob("rhfe_*_vs_*.json")):
        data = json.loads(path.read_text())
        res = data.get("paired_with_errors") or data.get("paired_edges_only")
        if not res:
            continue
        d = res["delta_rmse"]
        out.append(
            f"- `{path.name}`: on {res['n']} shared edges, RMSE {data['a']} {_f(res['rmse_a'])}, {data['b']} "
            f"{_f(res['rmse_b'])}; paired ΔRMSE ({data['b']} − {data['a']}) {d['value']:+.2f} "
            f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] kcal/mol."
        )
    if len(out) == 2:
        out.append("Not run yet: `python benchmarks/torsion_fits.py`, `python benchmarks/rhfe.py --set flexible ...`.")
    return [*out, ""]


def page(results: Path) -> str:
    lines = [
        "# mlfep results",
        "",
        "Generated by `python benchmarks/results_page.py` from the committed outputs in `benchmarks/results/`; "
        "each section names its file, which holds the exact command, settings and package versions.",
        "",
        "Reproduce:",
        "",
        "```bash",
        'python benchmarks/rhfe.py --protocol fast --fep-args "--workers 2"   # FreeSolv benzene series, CPU',
        "python benchmarks/cutoff_change.py --run-dir runs/rhfe_benzenes_sage  # the same edges with Sage's LJ cutoff",
        "python benchmarks/rhfe.py --set flexible --ligand-ff sage --protocol fast --fep-args '--workers 2'",
        "python benchmarks/rhfe.py --set flexible --ligand-ff ani2x-torsions --protocol fast --fep-args '--workers 2'",
        "python benchmarks/rhfe_compare.py --set flexible --a sage --b ani2x-torsions  # paired ΔRMSE",
        "python benchmarks/rhfe_nodes.py --set flexible --mm benchmarks/results/rhfe_flexible_sage.json  # endpoint",
        "python benchmarks/rhfe_nodes.py --set benzenes --mm benchmarks/results/rhfe.json  # endpoint, benzenes",
        "python benchmarks/torsion_fits.py --set flexible   # ANI-2x torsion refits: profiles and cost",
        'python benchmarks/rbfe.py --targets tyk2 --fep-args "--platform CUDA"  # protein-ligand, GPU',
        "make bench                                   # speed suite (PLATFORM=CUDA on a GPU)",
        "python benchmarks/results_page.py            # this page",
        "```",
        "",
        *rhfe_section(results),
        *ml_forcefield_section(results),
        *rbfe_section(_load(results, "rbfe")),
        *speed_section(results),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if --out differs from the outputs")
    args = parser.parse_args(argv)
    text = page(args.results)
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python benchmarks/results_page.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
