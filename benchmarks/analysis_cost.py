"""Cost of the analysis of one leg (MBAR + bootstrap + diagnostics) against the cost of sampling that leg.

Synthetic replica-exchange data at the default protocol size: K λ states, 5 ns per window at 2.5 ps per
iteration = 2000 iterations (default tier K = 12; production K = 22). Configurations are correlated in time
(AR(1), correlation time ``--tau`` iterations), the reduced potentials carry a large common offset and common
fluctuations like a solvated system, and replicas move between states by neighbour swaps.

Sampling time of the leg = K × ns_per_window / (ns/day) of the hybrid system on one GPU. The ns/day values
are assumptions given on the command line (defaults and their source are written into the output); the
analysis target is ≤ 1 % of the sampling time (DESIGN.md).

Run::

    .venv/bin/python benchmarks/analysis_cost.py            # writes benchmarks/results/analysis_cost.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

# One BLAS thread: on a shared machine, idle OpenBLAS threads spin and inflate the CPU time several-fold;
# the analysis is measured as the single-core cost it is.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.mbar import analyse_leg  # noqa: E402
from mlfep_core import atomic_write_text  # noqa: E402

#: Assumed hybrid-system MD speed on one H100 with 4 fs HMR steps (ns/day). These are deliberately on the
#: fast side, which makes the 1 % budget of the analysis tighter: OpenMM's published CUDA benchmarks give
#: roughly 1,000-2,000 ns/day for ~24k-atom PME systems (DHFR) at 4 fs on recent data-centre GPUs and a few
#: hundred for ~90k atoms (ApoA1); an RBFE complex leg is 30-60k atoms, a solvent leg 3-6k atoms, and the
#: hybrid system runs at ≥ 0.9 of plain MD (DESIGN.md target). Override with measured numbers when available.
DEFAULT_NS_PER_DAY = {"complex": 800.0, "solvent": 2500.0}
ASSUMPTION = (
    "assumed hybrid-system MD speed on one H100, 4 fs HMR: complex leg (30-60k atoms) {complex:.0f} ns/day, "
    "solvent leg (1-6k atoms) {solvent:.0f} ns/day; an optimistic reading of OpenMM's published CUDA benchmarks "
    "(DHFR 23.6k atoms ~1-2k ns/day at 4 fs, ApoA1 92k atoms a few hundred) times ≥ 0.9 for the hybrid system "
    "(tyk2 legs here: complex 34.8k, solvent 1.3k atoms, benchmarks/results/hybrid_speed.md). Faster sampling "
    "would shrink the budget (see the break-even column); re-run with --ns-per-day-* once GPU speeds are measured."
)


def synthetic_leg(n_states: int, n_iter: int, tau: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Replica-exchange arrays for K harmonic states with time-correlated samples.

    Returns
    -------
    energies : ndarray, shape (N_iter, K, K)
    replica_states : ndarray of int, shape (N_iter, K)
    """
    rng = np.random.default_rng(seed)
    springs = np.exp(np.linspace(0.0, 0.35 * (n_states - 1), n_states))  # neighbour overlap ≈ 0.2-0.3
    rho = np.exp(-1.0 / tau)
    # replica random walk by neighbour swaps (even/odd pairs), accepted half the time
    states = np.empty((n_iter, n_states), dtype=np.int64)
    current = np.arange(n_states)
    for n in range(n_iter):
        replica_at = np.argsort(current)
        for k in range(n % 2, n_states - 1, 2):
            if rng.random() < 0.5:
                i, j = replica_at[k], replica_at[k + 1]
                current[i], current[j] = current[j], current[i]
                replica_at[k], replica_at[k + 1] = j, i
        states[n] = current

    # AR(1) unit-normal series per replica: the configuration (scaled by the width of its state) and the
    # rest of the solvated system (a large offset with correlated fluctuations that cancel in differences)
    def ar1(size: tuple[int, int]) -> np.ndarray:
        out = np.empty(size)
        out[0] = rng.normal(size=size[1])
        kicks = rng.normal(size=size) * np.sqrt(1.0 - rho**2)
        for n in range(1, size[0]):
            out[n] = rho * out[n - 1] + kicks[n]
        return out

    x = ar1((n_iter, n_states)) / np.sqrt(springs[states])
    energies = 0.5 * springs[None, None, :] * x[:, :, None] ** 2
    bath = -4.0e4 + 150.0 * ar1((n_iter, n_states))
    return energies + bath[:, :, None], states


def measure(n_states: int, n_iter: int, n_bootstrap: int, tau: float, repeats: int) -> dict:
    energies, states = synthetic_leg(n_states, n_iter, tau, seed=n_states)
    wall, cpu = [], []
    result = None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = analyse_leg(energies, states, 298.15, leg="complex", n_bootstrap=n_bootstrap)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "n_states": n_states,
        "n_iterations": n_iter,
        "n_bootstrap": n_bootstrap,
        "analysis_s": min(cpu),
        "analysis_cpu_s_all": cpu,
        "analysis_wall_s_all": wall,
        "n_effective": result.n_effective,
        "statistical_inefficiency": result.statistical_inefficiency,
        "n_equilibration": result.n_equilibration,
        "dg_err_kcal_mol": result.dg_err_kcal_mol,
        "dg_bootstrap_err_kcal_mol": result.dg_bootstrap_err_kcal_mol,
        "verdicts": {v.name: v.status for v in result.verdicts},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-bootstrap", type=int, nargs="+", default=[0, 200])
    parser.add_argument("--ns-per-window", type=float, default=5.0)
    parser.add_argument("--ps-per-iteration", type=float, default=2.5)
    parser.add_argument(
        "--tau", type=float, nargs="+", default=[0.3, 3.0], help="correlation times of the samples, in iterations"
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--ns-per-day-complex", type=float, default=DEFAULT_NS_PER_DAY["complex"])
    parser.add_argument("--ns-per-day-solvent", type=float, default=DEFAULT_NS_PER_DAY["solvent"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "analysis_cost")
    parser.add_argument("--render-only", action="store_true", help="rebuild the markdown from the existing JSON")
    args = parser.parse_args(argv)
    if args.render_only:
        data = json.loads(args.out.with_suffix(".json").read_text())
        data["meta"].setdefault("n_iterations", round(args.ns_per_window * 1000.0 / args.ps_per_iteration))
        data["meta"].setdefault("repeats", args.repeats)
        speeds = {r["leg"]: r["ns_per_day"] for r in data["rows"]}
        data["meta"]["assumption"] = ASSUMPTION.format(**speeds)
        atomic_write_text(args.out.with_suffix(".json"), json.dumps(data, indent=2) + "\n")
        atomic_write_text(args.out.with_suffix(".md"), render_markdown(data["meta"], data["rows"]))
        return 0

    n_iter = round(args.ns_per_window * 1000.0 / args.ps_per_iteration)
    speeds = {"complex": args.ns_per_day_complex, "solvent": args.ns_per_day_solvent}
    rows = []
    for tier, n_states in (("default", 12), ("production", 22)):
        for tau, n_boot in ((t, b) for t in args.tau for b in args.n_bootstrap):
            cost = {"tau_iterations": tau, **measure(n_states, n_iter, n_boot, tau, args.repeats)}
            for leg, speed in speeds.items():
                sampling_s = n_states * args.ns_per_window / speed * 86400.0
                rows.append(
                    {
                        "tier": tier,
                        "leg": leg,
                        **cost,
                        "ns_per_day": speed,
                        "sampling_s": sampling_s,
                        "ratio_percent": 100.0 * cost["analysis_s"] / sampling_s,
                    }
                )
            print(
                f"{tier} K={n_states} τ={tau} bootstrap={n_boot}: CPU {cost['analysis_s']:.2f} s, "
                f"wall {min(cost['analysis_wall_s_all']):.2f} s",
                flush=True,
            )

    meta = {
        "machine": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "pymbar": __import__("pymbar").__version__,
        "ns_per_window": args.ns_per_window,
        "ps_per_iteration": args.ps_per_iteration,
        "assumption": ASSUMPTION.format(**speeds),
        "target_percent": 1.0,
    }
    meta.update({"n_iterations": n_iter, "repeats": args.repeats})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    text = render_markdown(meta, rows)
    atomic_write_text(args.out.with_suffix(".md"), text)
    print(text)
    return 0


def render_markdown(meta: dict, rows: list[dict]) -> str:
    """The markdown table of a run (also: ``--render-only`` rebuilds it from the JSON)."""
    lines = [
        "# Analysis cost vs sampling cost (one leg)",
        "",
        f"`analyse_leg` (equilibration detection, decorrelation, MBAR, BAR, bootstrap, overlap, mixing, "
        f"forward/reverse convergence) on synthetic replica-exchange data, {meta['n_iterations']} iterations "
        f"({meta['ns_per_window']:g} ns per window at {meta['ps_per_iteration']:g} ps per iteration), correlation "
        f"time τ of the samples in iterations (τ = 0.3: essentially uncorrelated, every iteration kept: the "
        f"most expensive case); best of {meta['repeats']}; the first row includes importing pymbar/scipy. One BLAS "
        f"thread. 'analysis' is the CPU time of the process (time.process_time), because the "
        f"{meta['cpu_count']}-core machine was shared (load average {meta['load_average'][0]:.1f} at the end) and "
        f"wall times there are several times longer; on an idle core wall ≈ CPU time. Wall times are in the JSON.",
        "",
        f"Sampling time = K × {meta['ns_per_window']:g} ns / (ns/day). {meta['assumption']}",
        "",
        "'break-even ns/day' is the sampling speed at which this analysis would reach 1 % of the sampling time.",
        "",
        "| tier | K | leg | τ | bootstrap | g | N_eff/state | analysis CPU (s) | ns/day | sampling (s) "
        "| analysis / sampling | ≤ 1 %? | break-even ns/day |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in rows:
        break_even = r["n_states"] * meta["ns_per_window"] * 86400.0 / (100.0 * r["analysis_s"])
        lines.append(
            f"| {r['tier']} | {r['n_states']} | {r['leg']} | {r['tau_iterations']:g} | {r['n_bootstrap']} | "
            f"{r['statistical_inefficiency']:.1f} | {r['n_effective']:.0f} | "
            f"{r['analysis_s']:.2f} | {r['ns_per_day']:.0f} | {r['sampling_s']:.0f} | {r['ratio_percent']:.3f} % | "
            f"{'yes' if r['ratio_percent'] <= 1.0 else 'NO'} | {break_even:,.0f} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
