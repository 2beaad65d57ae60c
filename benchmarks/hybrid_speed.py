"""Hybrid-system MD speed ÷ plain end-state MD speed (target ≥ 0.90), and where the time goes.

For each case the plain system A of the leg and the hybrid system (at the middle window of the default
λ protocol, where every unique atom interacts through the softcore force) run the same integrator
(LangevinMiddle, 4 fs, HMR from fep.systems.endstates, 300 K) for the same number of steps from the same positions, on one
platform. Plain and hybrid chunks alternate (``--rounds``) and the ratio uses the total times, so that load
from other processes on a shared machine hits both alike; the CPU time of the process (all threads) is reported
too, the robust number on an overloaded machine. Per force group the CPU time of one force (+ energy) evaluation
is measured with ``getState(getForces=True, getEnergy=True, groups={g})``, and the cost of a λ switch
(``setParameter`` for every λ parameter + one evaluation) is compared with a plain evaluation, and with the
same hybrid whose softcore force has OpenMM's long-range correction switched on (the slow design).

Charges are Gasteiger (the speed does not depend on them).

Usage::

    python benchmarks/hybrid_speed.py [--platform CPU] [--steps 2000] [--complex-steps 100] [--rounds 10] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLFEP_SHARED", REPO.parent / "shared")) / "benchmarks"
sys.path.insert(0, str(REPO))

CASES = [
    ("benzene~toluene solvent", "freesolv/rhfe_benzenes_ligands.csv", "benzene", "toluene", "solvent"),
    ("tyk2 lig_ejm_31~lig_ejm_42 solvent", "tyk2/ligands.sdf", "lig_ejm_31", "lig_ejm_42", "solvent"),
    ("tyk2 lig_ejm_31~lig_ejm_42 complex", "tyk2/ligands.sdf", "lig_ejm_31", "lig_ejm_42", "complex"),
]


def _build(ligand_file: str, name_a: str, name_b: str, leg: str, cache: Path):
    from fep.alchemy.hybrid import build_hybrid
    from fep.systems.endstates import build_end_states
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MCSMapper

    ligands = {lig.name: lig for lig in read_ligands(SHARED / ligand_file)}
    a, b = ligands[name_a], ligands[name_b]
    prep_a = assign_charges(a, method="gasteiger", cache_dir=cache)
    prep_b = assign_charges(b, method="gasteiger", cache_dir=cache)
    mapping = MCSMapper().map(a, b)
    protein = SHARED / "tyk2" / "protein.pdb" if leg == "complex" else None
    t0 = time.perf_counter()
    end_states = build_end_states(prep_a, prep_b, mapping, leg, protein_pdb=protein)
    t1 = time.perf_counter()
    hybrid = build_hybrid(end_states, mapping)
    t2 = time.perf_counter()
    return end_states, hybrid, {"end_states_s": t1 - t0, "hybrid_s": t2 - t1}


THREADS: dict[str, str] = {}  # CPU platform properties (set from --threads)


def _context(system, positions, box, platform_name: str, seed: int = 1):
    import openmm
    import openmm.unit as u

    integrator = openmm.LangevinMiddleIntegrator(300 * u.kelvin, 1.0 / u.picosecond, 4.0 * u.femtosecond)
    integrator.setRandomNumberSeed(seed)
    properties = THREADS if platform_name == "CPU" else {}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform_name), properties)
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    return context, integrator


def _time_steps(context, integrator, steps: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) for ``steps`` MD steps."""
    w0, c0 = time.perf_counter(), time.process_time()
    integrator.step(steps)
    context.getState(getEnergy=False)  # synchronise (no-op on CPU)
    return time.perf_counter() - w0, time.process_time() - c0


def _time_groups(context, groups: dict[str, set[int]], repeats: int) -> dict[str, float]:
    """CPU milliseconds (this process, all threads) per force + energy evaluation of each group."""
    out = {}
    for label, group in groups.items():
        context.getState(getForces=True, getEnergy=True, groups=group)
        t0 = time.process_time()
        for _ in range(repeats):
            context.getState(getForces=True, getEnergy=True, groups=group)
        out[label] = 1000.0 * (time.process_time() - t0) / repeats
    return out


def _plain_groups(system) -> tuple[object, dict[str, set[int]]]:
    """A copy of a plain system with one force group per force type."""
    import openmm

    clone = openmm.XmlSerializer.clone(system)
    groups: dict[str, set[int]] = {}
    for force in clone.getForces():
        label = type(force).__name__
        index = groups.setdefault(label, {len(groups)})
        force.setForceGroup(next(iter(index)))
    return clone, groups


def _lambda_switch_ms(context, windows: list[dict[str, float]], repeats: int) -> float:
    """CPU milliseconds per (set every λ parameter to another window + one energy/force evaluation)."""
    t0 = time.process_time()
    for k in range(repeats):
        for name, value in windows[k % len(windows)].items():
            context.setParameter(name, value)
        context.getState(getForces=True, getEnergy=True)
    return 1000.0 * (time.process_time() - t0) / repeats


def run_case(label, ligand_file, name_a, name_b, leg, steps, rounds, platform_name, cache, log) -> dict:
    import openmm

    from fep.alchemy.lambdas import LambdaProtocol

    log(f"[{label}] building")
    end_states, hybrid, build_times = _build(ligand_file, name_a, name_b, leg, cache)
    protocol = LambdaProtocol.default_protocol(11)
    middle = protocol.windows[protocol.n_windows // 2]
    box = None if hybrid.box_vectors is None else [openmm.Vec3(*row) for row in hybrid.box_vectors]

    # common starting positions: minimise the hybrid at the middle window
    h_ctx, h_int = _context(hybrid.system, hybrid.positions, box, platform_name, seed=2)
    for name, value in middle.items():
        h_ctx.setParameter(name, value)
    openmm.LocalEnergyMinimizer.minimize(h_ctx, 10.0, 50 if leg == "complex" else 200)
    positions = h_ctx.getState(getPositions=True).getPositions(asNumpy=True)
    h_ctx.setPositions(positions)
    n_a = hybrid.info.n_atoms_a
    p_ctx, p_int = _context(end_states.system_a, positions[:n_a], box, platform_name, seed=2)

    # warm-up, then alternate timed chunks
    _time_steps(p_ctx, p_int, max(10, steps // 10))
    _time_steps(h_ctx, h_int, max(10, steps // 10))
    t_plain, t_hybrid, c_plain, c_hybrid = [], [], [], []
    chunk = max(1, steps // rounds)
    for _ in range(rounds):
        wall, cpu = _time_steps(p_ctx, p_int, chunk)
        t_plain.append(wall)
        c_plain.append(cpu)
        wall, cpu = _time_steps(h_ctx, h_int, chunk)
        t_hybrid.append(wall)
        c_hybrid.append(cpu)
    n_steps = chunk * rounds
    ns = n_steps * 4e-6  # ns simulated
    plain_ns_day = ns / sum(t_plain) * 86400.0
    hybrid_ns_day = ns / sum(t_hybrid) * 86400.0
    cpu_ratio = sum(c_plain) / sum(c_hybrid)
    log(f"[{label}] plain {plain_ns_day:.2f} ns/day, hybrid {hybrid_ns_day:.2f} ns/day, CPU-time ratio {cpu_ratio:.3f}")

    # where the time goes
    repeats = max(3, min(50, steps // 40))
    hybrid_groups = {name: {g} for name, g in hybrid.info.force_groups.items()}
    hybrid_groups["all"] = set(range(32))
    present = {f.getForceGroup() for f in hybrid.system.getForces()}
    hybrid_groups = {k: v for k, v in hybrid_groups.items() if k == "all" or v & present}
    hybrid_group_ms = _time_groups(h_ctx, hybrid_groups, repeats)
    plain_clone, plain_groups = _plain_groups(end_states.system_a)
    pc_ctx, _ = _context(plain_clone, positions[:n_a], box, platform_name)
    plain_groups["all"] = set(range(32))
    plain_group_ms = _time_groups(pc_ctx, plain_groups, repeats)

    # λ switch: our hybrid vs. a softcore force with OpenMM's long-range correction (recomputed on every switch)
    switch = {"hybrid_ms": _lambda_switch_ms(h_ctx, list(protocol.windows), repeats)}
    if hybrid.info.periodic:
        slow = openmm.XmlSerializer.clone(hybrid.system)
        for force in slow.getForces():
            if isinstance(force, openmm.CustomNonbondedForce) and force.getName() == "hybrid_softcore":
                force.setUseLongRangeCorrection(True)
        s_ctx, _ = _context(slow, positions, box, platform_name)
        switch["softcore_with_lrc_ms"] = _lambda_switch_ms(s_ctx, list(protocol.windows), max(3, repeats // 5))
        del s_ctx
    switch["plain_evaluation_ms"] = plain_group_ms["all"]
    return {
        "case": label,
        "leg": leg,
        "edge": f"{name_a}~{name_b}",
        "n_atoms_plain": end_states.system_a.getNumParticles(),
        "n_atoms_hybrid": hybrid.info.n_atoms,
        "unique_a": len(hybrid.info.unique_a),
        "unique_b": len(hybrid.info.unique_b),
        "steps": n_steps,
        "rounds": rounds,
        "plain_seconds": sum(t_plain),
        "hybrid_seconds": sum(t_hybrid),
        "plain_ns_per_day": plain_ns_day,
        "hybrid_ns_per_day": hybrid_ns_day,
        "ratio": hybrid_ns_day / plain_ns_day,
        "ratio_median_of_rounds": float(np.median(np.asarray(t_plain) / np.asarray(t_hybrid))),
        "plain_cpu_seconds": sum(c_plain),
        "hybrid_cpu_seconds": sum(c_hybrid),
        "ratio_cpu_time": cpu_ratio,
        "hybrid_lambda_window": middle,
        "hybrid_group_ms": hybrid_group_ms,
        "plain_group_ms": plain_group_ms,
        "lambda_switch": switch,
        "build_seconds": build_times,
    }


def _markdown(report: dict) -> str:
    lines = [
        "# Hybrid-system MD speed vs plain end state",
        "",
        f"{report['date']} · OpenMM {report['openmm']} · platform {report['platform']} "
        f"(threads: {report['threads']}) · "
        f"{report['cpu_count']} CPU cores ({report['machine']}) · LangevinMiddle 4 fs, HMR · target ratio ≥ 0.90",
        "",
        "| case | atoms plain / hybrid | unique A / B | steps | plain ns/day | hybrid ns/day | ratio (wall) | "
        "median ratio of rounds | ratio (CPU time) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["cases"]:
        lines.append(
            f"| {r['case']} | {r['n_atoms_plain']} / {r['n_atoms_hybrid']} | {r['unique_a']} / {r['unique_b']} | "
            f"{r['steps']} | {r['plain_ns_per_day']:.2f} | {r['hybrid_ns_per_day']:.2f} | **{r['ratio']:.3f}** | "
            f"{r['ratio_median_of_rounds']:.3f} | **{r['ratio_cpu_time']:.3f}** |"
        )
    lines += ["", "## Where the time goes (CPU ms per force + energy evaluation of one force group)", ""]
    for r in report["cases"]:
        hybrid = ", ".join(f"{k} {v:.2f}" for k, v in r["hybrid_group_ms"].items())
        plain = ", ".join(f"{k} {v:.2f}" for k, v in r["plain_group_ms"].items())
        sw = r["lambda_switch"]
        slow = (
            f"; with LRC on the softcore force {sw['softcore_with_lrc_ms']:.2f} ms"
            if "softcore_with_lrc_ms" in sw
            else ""
        )
        lines += [
            f"**{r['case']}**",
            f"- hybrid: {hybrid}",
            f"- plain: {plain}",
            f"- λ switch (set all λ + evaluate): {sw['hybrid_ms']:.2f} ms vs plain evaluation "
            f"{sw['plain_evaluation_ms']:.2f} ms{slow}",
            f"- build: end states {r['build_seconds']['end_states_s']:.1f} s, hybrid {r['build_seconds']['hybrid_s']:.1f} s",
            "",
        ]
    lines += [
        "Method: plain system A and the hybrid at the middle window of the default 11-window protocol, same "
        "minimised positions, same integrator and step count; plain and hybrid chunks alternate and the ratio uses "
        "total times. ratio (CPU time) = plain ÷ hybrid CPU seconds of the process (all threads) for the same steps: "
        "on a shared, overloaded machine it is the robust number (wall-clock chunks also absorb other users' load).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from mlfep_core.runtime import configure_process

    configure_process()  # logging, warnings, AmberTools on PATH: what the fep command does
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--steps", type=int, default=2000, help="MD steps per solvent case (plain and hybrid each)")
    parser.add_argument("--complex-steps", type=int, default=100, help="MD steps for the complex case")
    parser.add_argument("--rounds", type=int, default=10, help="alternating plain/hybrid chunks")
    parser.add_argument("--threads", type=int, default=0, help="CPU platform threads (0: OpenMM's default)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--cases", default="all", help="comma-separated case indices (0,1,2) or 'all'")
    args = parser.parse_args(argv)

    import openmm

    from ligand_prep.charges import charge_cache_dir
    from mlfep_core import atomic_write_text

    cache = charge_cache_dir()
    if args.threads:
        THREADS["Threads"] = str(args.threads)
    chosen = range(len(CASES)) if args.cases == "all" else [int(x) for x in args.cases.split(",")]
    results = []
    out = Path(args.out)
    for index in chosen:
        label, ligand_file, a, b, leg = CASES[index]
        steps = args.complex_steps if leg == "complex" else args.steps
        results.append(
            run_case(
                label, ligand_file, a, b, leg, steps, args.rounds, args.platform, cache, lambda m: print(m, flush=True)
            )
        )
        report = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "openmm": openmm.__version__,
            "platform": args.platform,
            "threads": args.threads or "default",
            "cpu_count": os.cpu_count(),
            "machine": f"{pyplatform.machine()} {pyplatform.processor() or pyplatform.system()}",
            "target_ratio": 0.90,
            "cases": results,
            "min_ratio": min(r["ratio"] for r in results),
            "min_ratio_cpu_time": min(r["ratio_cpu_time"] for r in results),
        }
        # after every case, so a run stopped at a time limit (the GPU suite's) keeps the cases it finished
        atomic_write_text(out / "hybrid_speed.json", json.dumps(report, indent=2, default=float) + "\n")
        atomic_write_text(out / "hybrid_speed.md", _markdown(report))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
