"""ANI-2x torsion refits of a FreeSolv series: how far Sage's relaxed torsion profiles are from ANI-2x's, how close
the refitted terms come, and what the scans cost.

    python benchmarks/torsion_fits.py [--set benzenes|flexible] [--out benchmarks/results]

Prepares every ligand of the series as ``fep run --ligand-ff ani2x-torsions`` does (AM1-BCC charges, then the
scans and fits of :mod:`fep.nnp.torsions`, cached in ``$MLFEP_CACHE_DIR/torsions``; a cached ligand reports the
wall time its fit took when it was made) and writes ``torsion_fits_<set>.{json,md}``: per rotatable bond the RMSE
of the MM-relaxed profile against the ANI-2x profile (points within 10 kcal/mol of the minimum, best constant
offset) with Sage's own torsions and with the refitted ones; and per ligand an out-of-sample check
(:mod:`fep.nnp.conformers`): the RMSE of MM's relative conformer energies against ANI-2x's over ANI-2x minima
reached from 16 ETKDG conformers of another seed than the fit's (within 5 kcal/mol of the lowest; MM relaxed with
every rotatable bond's dihedral held at its ANI-2x value), with Sage's torsions and with the refitted ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLFEP_SHARED", REPO.parent / "shared"))
FREESOLV = SHARED / "benchmarks" / "freesolv"


EVAL_SEED = 7  # the conformers of the check: not the fit's seed
EVAL_CONFORMERS = 16


def fits(series: str) -> dict:
    from fep.execution.rundir import package_versions
    from fep.execution.runner import prepare_ligands
    from fep.nnp.conformers import ani_conformers, check_conformers
    from fep.nnp.torsions import rotatable_torsions
    from fep.protocol import load_protocol
    from ligand_prep.io import read_ligands

    ligands = read_ligands(FREESOLV / f"rhfe_{series}_ligands.csv")
    protocol = load_protocol("fast").model_copy(update={"ligand_torsions": "ani2x"})
    start = time.perf_counter()
    prepared = prepare_ligands(ligands, protocol, progress=lambda m: print(m, flush=True))
    rows = []
    for name, prep in prepared.items():
        t = prep.torsions
        if t is None:
            rows.append({"ligand": name, "bonds": [], "wall_s": None, "note": "not refitted"})
            continue
        ani = ani_conformers(prep, n=EVAL_CONFORMERS, seed=EVAL_SEED)
        hold = rotatable_torsions(prep.ligand.to_rdkit())
        sage = check_conformers(prep.model_copy(update={"torsions": None}), ani, hold=hold)
        refit = check_conformers(prep, ani, hold=hold)
        print(f"{name}: conformer ddE RMSE {sage.rmse_kcal_mol:.2f} -> {refit.rmse_kcal_mol:.2f}", flush=True)
        rows.append(
            {
                "ligand": name,
                "bonds": [
                    {"bond": b, "rmse_sage": t.rmse_base_kcal_mol[b], "rmse_fitted": t.rmse_kcal_mol[b]}
                    for b in t.rmse_kcal_mol
                ],
                "n_terms": len(t.terms),
                "wall_s": t.wall_s,
                "conformers": {
                    "n": sage.n_conformers,
                    "rmse_sage": sage.rmse_kcal_mol,
                    "rmse_fitted": refit.rmse_kcal_mol,
                    "dde_sage": sage.dde_kcal_mol,
                    "dde_fitted": refit.dde_kcal_mol,
                    "rmsd_sage_a": sage.rmsd_a,
                    "rmsd_fitted_a": refit.rmsd_a,
                },
            }
        )
    bonds = [b for r in rows for b in r["bonds"]]
    return {
        "benchmark": f"torsion_fits_{series}",
        "method": next((p.torsions.method for p in prepared.values() if p.torsions), None),
        "wall_s_this_call": round(time.perf_counter() - start, 1),
        "fit_wall_s_total": round(sum(r["wall_s"] or 0.0 for r in rows), 1),
        "cpu_count": os.cpu_count(),
        "versions": package_versions(),
        "ligands": rows,
        "n_bonds": len(bonds),
        "median_rmse_sage": float(np.median([b["rmse_sage"] for b in bonds])) if bonds else None,
        "median_rmse_fitted": float(np.median([b["rmse_fitted"] for b in bonds])) if bonds else None,
        "max_rmse_fitted": float(max(b["rmse_fitted"] for b in bonds)) if bonds else None,
        "conformer_rmse_sage": _rms([r["conformers"]["rmse_sage"] for r in rows if r.get("conformers")]),
        "conformer_rmse_fitted": _rms([r["conformers"]["rmse_fitted"] for r in rows if r.get("conformers")]),
    }


def _rms(values: list[float]) -> float | None:
    return float(np.sqrt(np.mean(np.square(values)))) if values else None


def markdown(data: dict, command: str) -> str:
    lines = [
        f"# ANI-2x torsion refits: {data['benchmark'].removeprefix('torsion_fits_')} series",
        "",
        f"Command: `{command}`  ",
        f"Method: {data['method']}; {data['n_bonds']} rotatable bonds; scans and fits took "
        f"{data['fit_wall_s_total']:.0f} s in all (one thread each, {data['cpu_count']} cores shared with other work).",
        "",
        "RMSE (kcal/mol) of the MM-relaxed torsion profile against the ANI-2x relaxed scan (points within 10 kcal/mol "
        f"of the minimum): median with Sage's torsions {data['median_rmse_sage']:.2f}, with the refitted ones "
        f"{data['median_rmse_fitted']:.2f} (largest {data['max_rmse_fitted']:.2f}).",
        "",
    ]
    if data.get("conformer_rmse_sage") is not None:
        lines += [
            "Out of sample, relative conformer energies (MM minima from the ANI-2x minima of 16 ETKDG conformers of "
            "another seed than the fit's, within 5 kcal/mol of the lowest, rotors held at the ANI-2x values): RMS over ligands of the per-ligand ddE "
            f"RMSE, Sage {data['conformer_rmse_sage']:.2f}, refitted {data['conformer_rmse_fitted']:.2f} kcal/mol.",
            "",
        ]
    lines += [
        "| ligand | bond (atoms) | RMSE Sage | RMSE refitted | fit wall s | conformers | ddE RMSE Sage | ddE RMSE refitted |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["ligands"]:
        conf = r.get("conformers")
        for n, b in enumerate(r["bonds"]):
            wall = f"{r['wall_s']:.0f}" if n == 0 and r["wall_s"] is not None else ""
            c = f"{conf['n']} | {conf['rmse_sage']:.2f} | {conf['rmse_fitted']:.2f}" if n == 0 and conf else " | |"
            lines.append(
                f"| {r['ligand']} | {b['bond']} | {b['rmse_sage']:.2f} | {b['rmse_fitted']:.2f} | {wall} | {c} |"
            )
        if not r["bonds"]:
            lines.append(f"| {r['ligand']} | none | | | | | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from mlfep_core.runtime import configure_process

    configure_process()  # logging, warnings, AmberTools on PATH: what the fep command does
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="series", default="flexible", choices=("benzenes", "flexible"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    command = "python benchmarks/torsion_fits.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    data = fits(args.series)
    data["command"] = command
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"torsion_fits_{args.series}.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / f"torsion_fits_{args.series}.md").write_text(markdown(data, command))
    print(markdown(data, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
