"""How long building the plain end states of one edge takes (``fep.systems.endstates.build_end_states``), per leg.

Edge lig_ejm_31~lig_ejm_42 of tyk2 (protein 4652 atoms; complex box ≈ 35k atoms with 1.0 nm padding, solvent
box with 1.2 nm padding, vacuum). Charges are Gasteiger so that sqm time is not counted (the AM1-BCC charges
are computed once per ligand and cached; they do not change the build time). Wall and process CPU time are
both recorded (CPU time is less sensitive to other load on a shared machine), with the time per stage from the
progress callback and the machine's load average at the start.

Run: ``.venv/bin/python benchmarks/system_build.py [--repeats N]`` → benchmarks/results/system_build.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(os.environ.get("MLFEP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
EDGE = ("lig_ejm_31", "lig_ejm_42")


def _edge(cache: Path):
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MCSMapper

    ligands = {lig.name: lig for lig in read_ligands(SHARED / "benchmarks" / "tyk2" / "ligands.sdf")}
    lig_a, lig_b = ligands[EDGE[0]], ligands[EDGE[1]]
    mapping = MCSMapper().map(lig_a, lig_b)
    prep = [assign_charges(lig, method="gasteiger", cache_dir=cache) for lig in (lig_a, lig_b)]
    return prep[0], prep[1], mapping


def measure(leg: str, prep_a, prep_b, mapping) -> dict:
    from fep.systems.endstates import build_end_states

    protein = SHARED / "benchmarks" / "tyk2" / "protein.pdb" if leg == "complex" else None
    marks: list[tuple[str, float]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    load = os.getloadavg()[0]
    es = build_end_states(
        prep_a, prep_b, mapping, leg, protein_pdb=protein, progress=lambda s: marks.append((s, time.perf_counter()))
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stages, previous, name = {}, t0, "checks"
    for stage, at in marks:
        stages[name] = round(at - previous, 2)
        previous, name = at, stage
    stages[name] = round(t0 + wall - previous, 2)
    return {
        "leg": leg,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "load_avg_1min": round(load, 2),
        "stages_wall_s": stages,
        "n_atoms_a": es.system_a.getNumParticles(),
        "n_atoms_b": es.system_b.getNumParticles(),
        "n_waters": es.n_waters,
        "na": es.n_positive_ions,
        "cl": es.n_negative_ions,
        "box_width_nm": None if es.box_vectors is None else round(float(es.box_vectors[0, 0]), 3),
    }


def main() -> None:
    from mlfep_core.runtime import configure_process

    configure_process()  # logging, warnings, AmberTools on PATH: what the fep command does
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--legs", default="complex,solvent,vacuum")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prep_a, prep_b, mapping = _edge(Path(tmp))
        rows = [measure(leg, prep_a, prep_b, mapping) for _ in range(args.repeats) for leg in args.legs.split(",")]
    payload = {
        "edge": "~".join(EDGE),
        "machine": f"{pyplatform.node()} ({os.cpu_count()} CPUs)",
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "system_build.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# build_end_states, tyk2 {payload['edge']} ({payload['machine']})",
        "",
        "| leg | atoms A | waters | Na+/Cl- | box (nm) | wall (s) | CPU (s) | load | stages (s) |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        stages = ", ".join(f"{k} {v}" for k, v in r["stages_wall_s"].items())
        lines.append(
            f"| {r['leg']} | {r['n_atoms_a']} | {r['n_waters']} | {r['na']}/{r['cl']} | {r['box_width_nm']} | "
            f"{r['wall_s']} | {r['cpu_s']} | {r['load_avg_1min']} | {stages} |"
        )
    (RESULTS / "system_build.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
