"""Speed of our HREX sampler vs plain MD and openmmtools' ReplicaExchangeSampler on one alchemical system.

Same system, same total MD steps, one process, on one OpenMM platform (``--platform``, CPU unless told); for 1,
2.5 and 10 ps per iteration:

- plain MD: one context, one state (λ = 1), ``K × n_iter × steps`` steps in one go;
- ours: :class:`fep.sampling.hrex.HREXSampler`, timed over its production loop only (each window is minimised and
  briefly equilibrated first, untimed), with its own time split (propagation, energy matrix, swaps, I/O);
- openmmtools: ``multistate.ReplicaExchangeSampler`` with ``LangevinDynamicsMove`` (the same
  LangevinMiddleIntegrator) and its own NetCDF storage in a temporary folder, timed over ``run()`` after
  minimisation, one equilibration and one warm-up iteration (context creation excluded for every method).

System: ``fep.alchemy.hybrid.build_leg`` (benzene→toluene solvent leg) when it exists, else alanine dipeptide in a
TIP3P box alchemically modified with openmmtools' AbsoluteAlchemicalFactory (the output says which).
Wall and process CPU times are both recorded (the CPU time is less sensitive to other load on the machine). On
CUDA or OpenCL ``step()`` returns before the GPU has finished, so the in-run ratios (total ÷ time inside ``step``)
mean nothing there: the table marks them n/a and the separate-run ratios are the measurement (plain MD is
synchronised by a final ``getState`` inside its timing).

Run: ``.venv/bin/python benchmarks/sampler_speed.py`` (≈ 10 min on 2 cores) → benchmarks/results/sampler_speed.{json,md}
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform as pyplatform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PS_PER_ITERATION = (1.0, 2.5, 10.0)
TIMESTEP_FS = 4.0
PLATFORM = ["CPU"]  # set from --platform in main()


def _platform():
    import openmm

    return openmm.Platform.getPlatformByName(PLATFORM[0])


def build_system(box_nm: float):
    """Alanine dipeptide in water (amber14/TIP3P, PME, HMR 3 amu), solute decoupled by AbsoluteAlchemicalFactory."""
    import openmm
    import openmm.app as app
    import openmm.unit as u
    from openmmtools import alchemy, testsystems

    vacuum = testsystems.AlanineDipeptideVacuum()
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(vacuum.topology, vacuum.positions)
    modeller.addSolvent(forcefield, boxSize=openmm.Vec3(box_nm, box_nm, box_nm) * u.nanometer)
    system = forcefield.createSystem(
        modeller.topology,
        nonbondedMethod=app.PME,
        nonbondedCutoff=0.9 * u.nanometer,
        constraints=app.HBonds,
        hydrogenMass=3.0 * u.amu,
    )
    solute = [a.index for a in modeller.topology.atoms() if a.residue.name not in ("HOH", "NA", "CL")]
    region = alchemy.AlchemicalRegion(alchemical_atoms=solute)
    alchemical = alchemy.AbsoluteAlchemicalFactory().create_alchemical_system(system, region)
    static_types = ("HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "CMMotionRemover")
    for force in alchemical.getForces():  # λ-independent valence terms in group 0, everything else in group 1
        force.setForceGroup(0 if type(force).__name__ in static_types else 1)
    box = np.array(modeller.topology.getPeriodicBoxVectors().value_in_unit(u.nanometer))
    positions = np.array(modeller.positions.value_in_unit(u.nanometer))
    description = (
        f"alanine dipeptide ({len(solute)} atoms) in {box_nm} nm TIP3P box ({system.getNumParticles()} atoms), "
        "amber14, PME 0.9 nm, HMR 3 amu, openmmtools AbsoluteAlchemicalFactory (fep.alchemy.hybrid not available)"
    )
    return alchemical, modeller.topology, positions, box, {0}, description


def build_hybrid_leg(padding: str, cutoff: str):
    """fep.alchemy.hybrid's benzene → toluene solvent leg (default SystemSettings; Gasteiger charges: speed only)."""
    from fep.alchemy.hybrid import build_leg
    from fep.systems.endstates import SystemSettings
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MCSMapper

    csv = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "freesolv" / "rhfe_benzenes_ligands.csv"
    ligands = {lig.name: lig for lig in read_ligands(csv)}
    with tempfile.TemporaryDirectory() as cache:
        prep = {n: assign_charges(ligands[n], method="gasteiger", cache_dir=cache) for n in ("benzene", "toluene")}
    mapping = MCSMapper().map(ligands["benzene"], ligands["toluene"])
    settings = SystemSettings(solvent_padding=padding, nonbonded_cutoff=cutoff)
    leg = build_leg(prep["benzene"], prep["toluene"], mapping, "solvent", settings=settings)
    description = (
        f"fep.alchemy.hybrid.build_leg benzene→toluene solvent leg ({leg.system.getNumParticles()} atoms; OpenFF 2.2.1, "
        f"TIP3P, rhombic dodecahedron, padding {padding}, PME cutoff {cutoff}, HMR 3 amu; Gasteiger charges)"
    )
    return (
        leg.system,
        leg.topology,
        np.asarray(leg.positions),
        np.asarray(leg.box_vectors),
        set(leg.info.lambda_independent_groups),
        description,
    )


def hybrid_states(n_states: int) -> list[dict[str, float]]:
    """fep.alchemy.lambdas' default protocol with ``n_states`` windows."""
    from fep.alchemy.lambdas import LambdaProtocol

    return [dict(w) for w in LambdaProtocol.default_protocol(n_states).windows]


def alchemical_states(n_states: int) -> list[dict[str, float]]:
    """Decoupling schedule: charges off first, then sterics."""
    n_elec = n_states // 2
    states = []
    for i in range(n_states):
        if i < n_elec:
            states.append({"lambda_electrostatics": 1.0 - i / n_elec, "lambda_sterics": 1.0})
        else:
            j = i - n_elec
            states.append({"lambda_electrostatics": 0.0, "lambda_sterics": 1.0 - j / max(n_states - n_elec - 1, 1)})
    return states


def equilibrate(system, positions, box, state, steps: int):
    """Shared starting point: minimise and run a little NPT at the first state."""
    import openmm
    import openmm.unit as u

    system = openmm.XmlSerializer.clone(system)
    system.addForce(openmm.MonteCarloBarostat(1.0 * u.bar, 298.15 * u.kelvin, 25))
    integrator = openmm.LangevinMiddleIntegrator(298.15 * u.kelvin, 1.0 / u.picosecond, TIMESTEP_FS * u.femtosecond)
    context = openmm.Context(system, integrator, _platform())
    context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    for name, value in state.items():
        context.setParameter(name, value)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 500)
    context.setVelocitiesToTemperature(298.15 * u.kelvin, 1)
    integrator.step(steps)
    s = context.getState(getPositions=True)
    return (
        np.array(s.getPositions(asNumpy=True).value_in_unit(u.nanometer)),
        np.array(s.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer)),
    )


def _fastest(runs: list[dict]) -> dict:
    """The run with the smallest wall time, plus the smallest CPU time and every repeat's times."""
    best = dict(min(runs, key=lambda r: r["wall_s"]))
    best["cpu_s"] = min(r["cpu_s"] for r in runs)
    best["repeats_wall_s"] = [round(r["wall_s"], 3) for r in runs]
    best["repeats_cpu_s"] = [round(r["cpu_s"], 3) for r in runs]
    best["repeats_wall_over_own_md"] = [round(r["wall_s"] / r["md_steps_s"], 4) for r in runs]
    best["wall_over_own_md"] = float(np.mean([r["wall_s"] / r["md_steps_s"] for r in runs]))
    return best


_IN_STEP = [0.0]  # seconds spent inside LangevinMiddleIntegrator.step (any method), see _count_md_steps


def _count_md_steps() -> None:
    """Time every LangevinMiddleIntegrator.step call (plain MD, openmmtools' LangevinDynamicsMove; our sampler
    reports its own). On the CPU platform step() is synchronous, so this is the MD time of each method, measured
    in the same moments as its total: their ratio is robust to other load on the machine."""
    import openmm

    original = openmm.LangevinMiddleIntegrator.step
    if getattr(original, "_timed", False):
        return

    def step(self, n_steps):
        start = time.perf_counter()
        try:
            return original(self, n_steps)
        finally:
            _IN_STEP[0] += time.perf_counter() - start

    step._timed = True
    openmm.LangevinMiddleIntegrator.step = step


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def plain_md(system, positions, box, state, n_steps: int) -> dict:
    import openmm
    import openmm.unit as u

    system = openmm.XmlSerializer.clone(system)
    system.addForce(openmm.MonteCarloBarostat(1.0 * u.bar, 298.15 * u.kelvin, 25))
    integrator = openmm.LangevinMiddleIntegrator(298.15 * u.kelvin, 1.0 / u.picosecond, TIMESTEP_FS * u.femtosecond)
    context = openmm.Context(system, integrator, _platform())
    context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    for name, value in state.items():
        context.setParameter(name, value)
    context.setVelocitiesToTemperature(298.15 * u.kelvin, 2)
    integrator.step(5)  # warm-up
    _IN_STEP[0] = 0.0
    start = _clock()
    integrator.step(n_steps)
    context.getState(getEnergy=True)  # waits for the last step on an asynchronous (GPU) platform
    wall, cpu = _since(start)
    return {"wall_s": wall, "cpu_s": cpu, "md_steps_s": _IN_STEP[0]}


def ours(system, topology, positions, box, states, static_groups, steps: int, n_iter: int, folder: Path) -> dict:
    from fep.sampling.hrex import HREXSampler, SamplerSettings

    settings = SamplerSettings(
        timestep=f"{TIMESTEP_FS} fs",
        steps_per_iteration=steps,
        n_iterations=n_iter,
        minimization_max_iterations=200,  # per window; not timed (production only)
        equilibration_nvt_steps=0,
        equilibration_npt_steps=100,
        snapshot_interval=1,
        platform=PLATFORM[0],
    )
    sampler = HREXSampler(system, topology, positions, box, states, settings, folder, static_force_groups=static_groups)
    start = _clock()
    summary = sampler.run()
    wall_total, _ = _since(start)
    t = summary.timings_s
    # production wall and CPU time from the sampler's own clocks (context creation excluded)
    production = t["production"]
    return {
        "wall_s": production,
        "md_steps_s": t["md_steps"],
        "cpu_s": t["production_cpu"],
        "run_wall_s": wall_total,
        "split_s": {k: t[k] for k in ("propagation", "md_steps", "energies", "swaps", "io")},
        "storage_bytes": summary.storage_bytes,
        "neighbor_acceptance": summary.mean_neighbor_acceptance,
    }


def openmmtools_run(system, positions, box, states, steps: int, n_iter: int, folder: Path) -> dict:
    import copy

    import openmm.unit as u
    from openmmtools import cache, mcmc, multistate
    from openmmtools import states as ostates

    cache.global_context_cache.empty()
    cache.global_context_cache.platform = _platform()
    thermo = ostates.ThermodynamicState(system, 298.15 * u.kelvin, 1.0 * u.bar)
    # a composable state over exactly the global parameters our states set (how perses drives hybrid λs)
    names = sorted(states[0])
    parameters = {n: ostates.GlobalParameterState.GlobalParameter(n, standard_value=states[0][n]) for n in names}
    lambda_state_class = type("BenchLambdaState", (ostates.GlobalParameterState,), parameters)
    lambda_state = lambda_state_class.from_system(system)
    thermo_states = []
    for state in states:
        compound = ostates.CompoundThermodynamicState(copy.deepcopy(thermo), [copy.deepcopy(lambda_state)])
        for name, value in state.items():
            setattr(compound, name, value)
        thermo_states.append(compound)
    sampler_state = ostates.SamplerState(positions * u.nanometer, box_vectors=box * u.nanometer)
    move = mcmc.LangevinDynamicsMove(
        timestep=TIMESTEP_FS * u.femtosecond, collision_rate=1.0 / u.picosecond, n_steps=steps
    )
    sampler = multistate.ReplicaExchangeSampler(
        mcmc_moves=move, number_of_iterations=n_iter + 1, online_analysis_interval=None
    )
    reporter = multistate.MultiStateReporter(str(folder / "openmmtools.nc"), checkpoint_interval=50)
    sampler.create(thermodynamic_states=thermo_states, sampler_states=sampler_state, storage=reporter)
    sampler.minimize(max_iterations=200)  # per window, as ours; not timed
    sampler.equilibrate(1)
    sampler.run(1)  # warm-up: contexts created, first energies
    _IN_STEP[0] = 0.0
    start = _clock()
    sampler.run(n_iter)
    wall, cpu = _since(start)
    reporter.close()
    return {"wall_s": wall, "cpu_s": cpu, "md_steps_s": _IN_STEP[0]}


def main(argv: list[str] | None = None) -> dict:
    from mlfep_core.runtime import configure_process

    configure_process()  # logging, warnings, AmberTools on PATH: what the fep command does
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=6, help="number of λ windows K")
    parser.add_argument("--box", type=float, default=2.2, help="water box edge in nm (fallback system only)")
    parser.add_argument("--fallback", action="store_true", help="use the openmmtools alanine-dipeptide system")
    parser.add_argument("--padding", default="1.2 nm", help="solvent padding of the hybrid leg")
    parser.add_argument("--cutoff", default="0.9 nm", help="nonbonded cutoff of the hybrid leg")
    parser.add_argument(
        "--threads", type=int, default=1, help="OpenMM CPU threads (1: CPU time = work, robust to machine load)"
    )
    parser.add_argument("--ps-per-replica", type=float, default=10.0, help="production ps per replica per setting")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats per setting (fastest kept)")
    parser.add_argument("--smoke", action="store_true", help="tiny step counts to check the script (not for reporting)")
    parser.add_argument("--platform", default="CPU", help="OpenMM platform for every method (CPU, CUDA, OpenCL)")
    args = parser.parse_args(argv)
    PLATFORM[0] = args.platform
    os.environ["OPENMM_CPU_THREADS"] = str(args.threads)  # read when the CPU platform is first loaded
    import openmm  # after OPENMM_CPU_THREADS is set

    _count_md_steps()

    logging.basicConfig(level=logging.WARNING)

    try:
        if args.fallback:
            raise ImportError("fallback asked for")
        system, topology, positions, box, static_groups, description = build_hybrid_leg(args.padding, args.cutoff)
        states = hybrid_states(args.states)
    except ImportError as err:  # fep.alchemy.hybrid not there (yet)
        print(f"fep.alchemy.hybrid not used ({err}); alanine dipeptide fallback", flush=True)
        system, topology, positions, box, static_groups, description = build_system(args.box)
        states = alchemical_states(args.states)
    positions, box = equilibrate(system, positions, box, states[0], steps=500)
    rows = []
    storage = storage_estimate(positions, box)
    load_start = [round(x, 1) for x in os.getloadavg()]
    for ps in (0.04, 0.1) if args.smoke else PS_PER_ITERATION:
        steps = round(ps * 1000 / TIMESTEP_FS)
        n_iter = max(1, round(args.ps_per_replica / ps))
        total_steps = args.states * n_iter * steps
        runs: dict[str, list[dict]] = {"md": [], "hrex": [], "omt": []}
        for _ in range(args.repeats):  # interleaved repeats; the fastest of each is kept (load on shared machines)
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                runs["md"].append(plain_md(system, positions, box, states[0], total_steps))
                runs["hrex"].append(
                    ours(system, topology, positions, box, states, static_groups, steps, n_iter, tmp / "ours")
                )
                omt = openmmtools_run(system, positions, box, states, steps, n_iter, tmp / "omt")
                omt["storage_bytes"] = sum(p.stat().st_size for p in (tmp / "omt").rglob("*") if p.is_file())
                runs["omt"].append(omt)
                shutil.rmtree(tmp / "ours", ignore_errors=True)
        md, hrex, omt = (_fastest(runs[k]) for k in ("md", "hrex", "omt"))
        row = {
            "ps_per_iteration": ps,
            "steps_per_iteration": steps,
            "n_iterations": n_iter,
            "total_md_steps": total_steps,
            "plain_md": md,
            "hrex": hrex,
            "openmmtools": omt,
            "hrex_wall_over_md": hrex["wall_s"] / md["wall_s"],
            "openmmtools_wall_over_md": omt["wall_s"] / md["wall_s"],
            "hrex_cpu_over_md": hrex["cpu_s"] / md["cpu_s"],
            "openmmtools_cpu_over_md": omt["cpu_s"] / md["cpu_s"],
            "md_speed_over_hrex": md["wall_s"] / hrex["wall_s"],
            "md_speed_over_openmmtools": md["wall_s"] / omt["wall_s"],
            # in-run ratios: total ÷ time inside integrator.step in the same run (robust to machine load)
            "hrex_wall_over_own_md": hrex["wall_over_own_md"],
            "openmmtools_wall_over_own_md": omt["wall_over_own_md"],
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)}), flush=True)
        result = {
            "benchmark": "sampler_speed",
            "system": description,
            "n_atoms": system.getNumParticles(),
            "n_states": args.states,
            "platform": args.platform,
            "threads": _platform().getPropertyDefaultValue("Threads") if args.platform == "CPU" else None,
            "synchronous_steps": args.platform in ("CPU", "Reference"),
            "machine": f"{pyplatform.machine()} {pyplatform.processor() or ''}".strip(),
            "openmm": openmm.__version__,
            "timestep_fs": TIMESTEP_FS,
            "repeats": args.repeats,
            "load_average": load_start,
            "rows": rows,
            "storage": storage,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        _write(args.out, result)  # after every row, so a long run leaves its finished rows behind
    return result


def _write(out: Path, result: dict) -> None:
    from mlfep_core import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sampler_speed.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "sampler_speed.md", to_markdown(result))


def storage_estimate(
    positions: np.ndarray,
    box: np.ndarray,
    n_states: int = 12,
    ps_per_iteration: float = 2.5,
    snapshot_interval: int = 40,
):
    """Bytes written per ns (of every window) for a solvent leg with the default protocol, measured by writing
    one ns of data through :class:`fep.sampling.storage.SamplerStore` (snapshots: the equilibrated system
    with thermal noise)."""
    n_atoms = len(positions)
    from fep.sampling.storage import IterationBuffer, SamplerStore

    rng = np.random.default_rng(0)
    n_iter = round(1000 / ps_per_iteration)
    with tempfile.TemporaryDirectory() as tmp:
        store = SamplerStore(tmp)
        buffer = IterationBuffer()
        for n in range(n_iter):
            buffer.iterations.append(n)
            buffer.energies.append(-20000.0 + rng.normal(0, 30, (n_states, n_states)))
            buffer.replica_states.append(rng.permutation(n_states))
            buffer.accepted.append(rng.integers(0, 10, (n_states, n_states)).astype(np.int32))
            buffer.proposed.append(rng.integers(10, 20, (n_states, n_states)).astype(np.int32))
            if (n + 1) % snapshot_interval == 0:
                for state in (0, n_states - 1):
                    buffer.add_snapshot(state, n, positions + rng.normal(0, 0.03, (n_atoms, 3)), box)
        arrays = {"positions": np.zeros((1, 1, 3)), "velocities": np.zeros((1, 1, 3)), "boxes": np.zeros((1, 3, 3))}
        store.write_checkpoint(None, buffer, {**arrays, "replica_states": np.zeros(1)}, {"iteration": n_iter})
        folder = Path(tmp)
        data = sum(p.stat().st_size for p in (folder / "data").iterdir())
        snaps = sum(p.stat().st_size for p in (folder / "snapshots").iterdir())
    return {
        "assumed": f"K={n_states}, {ps_per_iteration} ps/iteration, snapshots every {snapshot_interval} iterations, "
        f"{n_atoms} atoms",
        "energies_states_swaps_bytes_per_ns": data,
        "snapshots_bytes_per_ns": snaps,
        "total_bytes_per_ns": data + snaps,
        "note": "plus one fixed-size checkpoint state file (K × N × 3 × 2 doubles) that is replaced, not appended",
    }


def to_markdown(result: dict) -> str:
    lines = [
        "# Sampler speed: our HREX vs plain MD vs openmmtools ReplicaExchangeSampler",
        "",
        f"System: {result['system']}; K = {result['n_states']} states; {result['timestep_fs']} fs; "
        f"platform {result['platform']}"
        + (f" ({result['threads']} threads)" if result.get("threads") else "")
        + f", OpenMM {result['openmm']}; {result['date']}.",
        "Same total MD steps per row; times exclude context creation; fastest of "
        f"{result['repeats']} interleaved repeats (load average at the start: {result['load_average']}).",
        "",
        "- **in-run** (robust): a sampler's production wall ÷ the time it spent inside "
        "`LangevinMiddleIntegrator.step` in the same run, i.e. its wall ÷ the plain MD of the same steps at the "
        "same moments (mean over repeats; 1.00 = no overhead).",
        "- **separate runs**: wall(sampler) ÷ wall(plain MD run), process CPU-time ratio in parentheses; on a "
        "loaded shared machine these vary by ±20 % between repeats and can fall below 1.",
        "",
        "| ps/iter | iterations | MD steps | HREX ÷ MD in-run | openmmtools ÷ MD in-run | plain MD s | HREX s |"
        " openmmtools s | HREX ÷ MD separate | openmmtools ÷ MD separate |"
        " HREX split: propagation (MD steps) / energies / swaps / I/O (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    synchronous = result.get("synchronous_steps", True)  # results before --platform ran on the CPU
    for r in result["rows"]:
        split = r["hrex"]["split_s"]
        in_run = (
            f"**{r['hrex_wall_over_own_md']:.3f}** | **{r['openmmtools_wall_over_own_md']:.3f}**"
            if synchronous
            else "n/a | n/a"
        )
        lines.append(
            f"| {r['ps_per_iteration']} | {r['n_iterations']} | {r['total_md_steps']} | {in_run} | "
            f"{r['plain_md']['wall_s']:.1f} | {r['hrex']['wall_s']:.1f} | {r['openmmtools']['wall_s']:.1f} | "
            f"{r['hrex_wall_over_md']:.3f} ({r['hrex_cpu_over_md']:.3f}) | "
            f"{r['openmmtools_wall_over_md']:.3f} ({r['openmmtools_cpu_over_md']:.3f}) | "
            f"{split['propagation']:.2f} ({split['md_steps']:.2f}) / {split['energies']:.3f} / {split['swaps']:.4f} / "
            f"{split['io']:.3f} |"
        )
    if not synchronous:
        lines += [
            "",
            f"On {result['platform']} a step returns before the GPU has finished it: the in-run ratios and the time "
            "split are not measurements here; the separate-run ratios are.",
        ]
    lines += [
        "",
        "Time outside MD steps per replica and iteration (ms; same runs): what grows relative to MD on a GPU, "
        "where a step is ~100× faster but Python and storage costs are not.",
        "",
        "| ps/iter | HREX: all non-MD | HREX: energy matrix | HREX: rest (transfers, swaps, I/O, Python) |"
        " openmmtools: all non-MD (energies, storage, Python) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        n = result["n_states"] * r["n_iterations"]
        h, o = r["hrex"], r["openmmtools"]
        energies = h["split_s"]["energies"]
        lines.append(
            f"| {r['ps_per_iteration']} | {(h['wall_s'] - h['md_steps_s']) / n * 1e3:.1f} | "
            f"{energies / n * 1e3:.1f} | {(h['wall_s'] - h['md_steps_s'] - energies) / n * 1e3:.1f} | "
            f"{(o['wall_s'] - o['md_steps_s']) / n * 1e3:.1f} |"
        )
    s = result["storage"]
    lines += [
        "",
        f"Storage ({s['assumed']}): {s['energies_states_swaps_bytes_per_ns'] / 1e3:.0f} kB/ns energies + states + "
        f"swaps, {s['snapshots_bytes_per_ns'] / 1e3:.0f} kB/ns end-state snapshots (XTC), "
        f"total {s['total_bytes_per_ns'] / 1e6:.2f} MB per ns of sampling (every window advanced 1 ns); {s['note']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
