"""What a finished RHFE run's ΔΔG would be with Sage's Lennard-Jones cutoff scheme, from its end-state samples.

    python benchmarks/cutoff_change.py --run-dir runs/rhfe_benzenes_sage [--set benzenes] [--cutoff 0.9 --switch 0.8]

The fast tier samples its solvent legs with LJ switched over 0.6-0.7 nm; Sage specifies 0.8-0.9 nm. For every
ligand L, the free energy of changing the scheme in water, c(L) = -kT ln <exp(-ΔU/kT)>, is estimated by exponential
averaging (EXP) over the solvent legs' end-state snapshots of L (state 0 of edges L~X, the last state of X~L),
after each leg's equilibration, one estimate per leg; ΔU = U_Sage - U_tier is exact
(:class:`fep.systems.cutoffs.LJSchemeChange`, checked against OpenMM). c(L) is the mean over legs, its σ the
larger of the legs' spread (σ/√n) and the EXP σ. Vacuum legs have no cutoff, so each edge's ΔΔG with Sage's
scheme is ΔΔG + c(B) - c(A). Writes ``benchmarks/results/cutoff_<set>.{json,md}``: c per ligand, the change per
edge against the edge's σ, and the paired RMSE of both schemes against experiment over the same edges.
Only legs whose snapshots are on disk count (an archived leg keeps none).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np
from tables import fmt, write_result

REPO = Path(__file__).resolve().parents[1]


def leg_samples(leg_dir: Path, scheme) -> dict[str, dict]:
    """ΔU/kT series of both end states of one solvent leg: {'A' or 'B': {'ligand', 'w', 'kt_kcal'}}."""
    import openmm

    from fep.alchemy.hybrid import HybridLegInfo
    from fep.sampling.storage import load_samples
    from fep.systems.cutoffs import LJSchemeChange
    from mlfep_core.constants import kt_kcal_mol, kt_kj_mol

    info = HybridLegInfo.from_json_file(leg_dir / "hybrid" / "leg.json")
    n_eq = json.loads((leg_dir / "leg_result.json").read_text())["n_equilibration"]
    data = load_samples(leg_dir / "sampler")
    kt, kt_kcal = kt_kj_mol(data.temperature_k), kt_kcal_mol(data.temperature_k)
    names = leg_dir.parents[1].name.split("~")
    out = {}
    for tag, state, name in (("a", 0, names[0]), ("b", -1, names[1])):
        frames, boxes = data.end_state_frames(state)
        keep = data.end_state_iterations(state) >= n_eq
        frames = frames[:, : info.n_atoms_a] if tag == "a" else frames[:, np.asarray(info.b_to_hybrid)]
        system = openmm.XmlSerializer.deserialize((leg_dir / "end_states" / f"system_{tag}.xml").read_text())
        change = LJSchemeChange(system, scheme)
        du = change.energies(frames[keep], boxes[keep])
        out[tag.upper()] = {"ligand": name, "w": (du / kt).tolist(), "kt_kcal": kt_kcal, "old": change.old}
    return out


def ligand_corrections(per_leg: dict[str, list[dict]]) -> dict[str, dict]:
    """c(L) in kcal/mol from the per-leg EXP estimates of each ligand."""
    from analysis.estimators import import_pymbar

    exp = import_pymbar().other_estimators.exp

    out = {}
    for name, legs in sorted(per_leg.items()):
        values, errs = [], []
        for leg in legs:
            res = exp(np.asarray(leg["w"]), is_timeseries=True)
            values.append(res["Delta_f"] * leg["kt_kcal"])
            errs.append(res["dDelta_f"] * leg["kt_kcal"])
        n = len(values)
        spread = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else None
        exp_sigma = float(math.sqrt(sum(e * e for e in errs)) / n)
        du = np.concatenate([np.asarray(leg["w"]) * leg["kt_kcal"] for leg in legs])
        out[name] = {
            "c_kcal_mol": float(np.mean(values)),
            "sigma_kcal_mol": exp_sigma if spread is None else max(spread, exp_sigma),
            "sigma_spread": spread,
            "sigma_exp": exp_sigma,
            "n_legs": n,
            "n_frames": int(du.size),
            "mean_du_kcal_mol": float(du.mean()),
            "sd_du_kcal_mol": float(du.std(ddof=1)) if du.size > 1 else None,
            "legs": [leg["leg"] for leg in legs],
            "per_leg_kcal_mol": values,
        }
    return out


def edge_changes(rhfe: dict, corr: dict[str, dict]) -> list[dict]:
    """Each finished edge A~B of an rhfe.py result with ΔΔG + c(B) - c(A) (the Sage scheme) and the change's σ."""
    edges = []
    for row in rhfe["edges"]:
        la, lb = row["edge"].split("~")
        if row.get("ddg_mm") is None or la not in corr or lb not in corr:
            continue
        change = corr[lb]["c_kcal_mol"] - corr[la]["c_kcal_mol"]
        sigma_change = math.hypot(corr[la]["sigma_kcal_mol"], corr[lb]["sigma_kcal_mol"])
        edges.append(
            {
                "edge": row["edge"],
                "ddg_tier": row["ddg_mm"],
                "sigma_tier": row["ddg_mm_err"],
                "change": change,
                "sigma_change": sigma_change,
                "ddg_sage_scheme": row["ddg_mm"] + change,
                "sigma_sage_scheme": math.hypot(row["ddg_mm_err"], sigma_change),
                "ddg_exp": row["ddg_exp"],
                "sigma_exp": row.get("ddg_exp_err") or 0.0,
                "change_over_sigma": change / row["ddg_mm_err"] if row["ddg_mm_err"] else None,
            }
        )
    return edges


def analyse(run_dir: Path, rhfe: dict, scheme) -> dict:
    from analysis.stats import paired_comparison

    per_leg: dict[str, list[dict]] = {}
    old = None
    for leg_dir in sorted(run_dir.glob("edges/*/repeat_*/solvent")):
        if not (leg_dir / "sampler" / "snapshots").is_dir() or not (leg_dir / "leg_result.json").exists():
            continue
        for side in leg_samples(leg_dir, scheme).values():
            old = side.pop("old")
            side["leg"] = str(leg_dir.relative_to(run_dir))
            per_leg.setdefault(side.pop("ligand"), []).append(side)
    if old is None:
        raise SystemExit(f"{run_dir}: no finished solvent leg with snapshots on disk")
    corr = ligand_corrections(per_leg)
    edges = edge_changes(rhfe, corr)
    out = {
        "benchmark": f"cutoff_{rhfe['series']}",
        "series": rhfe["series"],
        "run_dir": str(run_dir),
        "scheme_sampled": old.label(),
        "scheme_reweighted_to": scheme.label(),
        "ligands": corr,
        "edges": edges,
    }
    if edges:
        changes = np.array([e["change"] for e in edges])
        out["summary"] = {
            "n_edges": len(edges),
            "max_abs_change": float(np.max(np.abs(changes))),
            "rms_change": float(np.sqrt(np.mean(changes**2))),
            "mean_change": float(np.mean(changes)),
            "n_within_edge_sigma": int(sum(abs(e["change"]) <= e["sigma_tier"] for e in edges)),
            "median_edge_sigma": float(np.median([e["sigma_tier"] for e in edges])),
        }
    if len(edges) >= 2:
        col = {k: [e[k] for e in edges] for k in edges[0] if k != "edge"}
        out["paired"] = paired_comparison(
            col["ddg_tier"],
            col["ddg_sage_scheme"],
            col["ddg_exp"],
            sigma_a=col["sigma_tier"],
            sigma_b=col["sigma_sage_scheme"],
            sigma_exp=col["sigma_exp"],
        ).model_dump(mode="json")
    return out


def markdown(data: dict) -> str:
    lines = [
        f"# LJ cutoff scheme on the {data['series']} series: sampled {data['scheme_sampled']}, reweighted to "
        f"{data['scheme_reweighted_to']} (Sage)",
        "",
        f"Command: `{data['command']}`  ",
        f"Run: `{data['run_dir']}`. c(L) = free energy of the scheme change for ligand L in water (EXP over end-state "
        "snapshots, one estimate per solvent leg; σ = max(spread over legs / √n, EXP σ)); vacuum legs have no cutoff.",
        "",
    ]
    s = data.get("summary")
    if s:
        lines.append(
            f"- {s['n_edges']} edges: ΔΔG change (Sage scheme − sampled) max |{s['max_abs_change']:.3f}|, RMS "
            f"{s['rms_change']:.3f}, mean {s['mean_change']:+.3f} kcal/mol; within the edge's own σ on "
            f"{s['n_within_edge_sigma']} of {s['n_edges']} (median edge σ {s['median_edge_sigma']:.2f})."
        )
    p = data.get("paired")
    if p:
        d = p["delta_rmse"]
        lines.append(
            f"- RMSE against experiment: sampled scheme {p['rmse_a']:.2f}, Sage scheme {p['rmse_b']:.2f}; paired ΔRMSE "
            f"(Sage − sampled) {d['value']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] (edges resampled, "
            "calculated and experimental σ drawn)."
        )
    lines += [
        "",
        "| ligand | c (kcal/mol) | σ | legs | frames | ⟨ΔU⟩ | sd ΔU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, c in data["ligands"].items():
        lines.append(
            f"| {name} | {c['c_kcal_mol']:+.3f} | {c['sigma_kcal_mol']:.3f} | {c['n_legs']} | {c['n_frames']} | "
            f"{c['mean_du_kcal_mol']:+.3f} | {fmt(c['sd_du_kcal_mol'], 3)} |"
        )
    lines += [
        "",
        "| edge | ΔΔG sampled | σ | change | σ change | ΔΔG Sage scheme | expt | change / σ |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in data["edges"]:
        lines.append(
            f"| {e['edge']} | {e['ddg_tier']:.2f} | {e['sigma_tier']:.2f} | {e['change']:+.3f} | "
            f"{e['sigma_change']:.3f} | {e['ddg_sage_scheme']:.2f} | {e['ddg_exp']:.2f} | "
            f"{fmt(e['change_over_sigma'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from fep.systems.cutoffs import LJScheme
    from mlfep_core.runtime import configure_process

    configure_process()  # logging, warnings: what the fep command does
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--set", dest="series", default="benzenes", choices=("benzenes", "flexible"))
    parser.add_argument("--rhfe", type=Path, help="the run's rhfe_<set>_sage.json (default: benchmarks/results)")
    parser.add_argument("--cutoff", type=float, default=0.9, help="nm (Sage: 0.9)")
    parser.add_argument("--switch", type=float, default=0.8, help="nm (Sage: 0.8)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    rhfe_path = args.rhfe or REPO / "benchmarks" / "results" / f"rhfe_{args.series}_sage.json"
    if not rhfe_path.exists():
        parser.error(f"{rhfe_path} not found: run benchmarks/rhfe.py --set {args.series} first (or pass --rhfe)")
    data = analyse(args.run_dir, json.loads(rhfe_path.read_text()), LJScheme(args.cutoff, args.switch))
    data["command"] = "python benchmarks/cutoff_change.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    write_result(args.out, data["benchmark"], data, markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
