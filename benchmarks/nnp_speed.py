"""Speed of the NNP (ANI-2x) endpoint correction and of its kernels, on the CPU (or ``--platform CUDA --device cuda``).

1. Kernels, frames per second, batched vs the per-frame reference path:
   - ``gpu_kernels.ani.ANIBatch.energies`` vs one frame at a time through torchani (toluene, 15 atoms);
   - ``gpu_kernels.mm_intra.MMIntraKernel.energies`` vs OpenMM's Reference platform frame by frame;
   - ``gpu_kernels.reduced_potential.reduced_potential_matrix`` vs the numpy loop (K = 5 states).
2. The endpoint correction of toluene's solvent end state (``fep.systems.endstates.build_ligand_system``, smoke box),
   run for real with the smoke tier's NNP settings, and its cost as a fraction of the MM cost of the leg:
   MM cost = (MD steps of the leg in that tier) × (seconds per MD step measured here on the same system);
   correction cost for other tiers = fixed part + ML/MM steps × (seconds per ML/MM step measured here).
   A leg has two end states (A and B), so the leg's correction is twice one end state's.

Run: ``.venv/bin/python benchmarks/nnp_speed.py`` (a few minutes on 2 cores)
→ benchmarks/results/nnp_speed.{json,md}
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform as pyplatform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared"
TEMPERATURE_K = 298.15
SETUP = {"platform": "CPU", "device": "cpu"}  # OpenMM platform and torch device, from --platform and --device


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def toluene():
    """Toluene with an RDKit/MMFF pose and AM1-BCC charges (cached)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from ligand_prep.charges import assign_charges
    from ligand_prep.models import Ligand

    mol = Chem.AddHs(Chem.MolFromSmiles("Cc1ccccc1"))
    AllChem.EmbedMolecule(mol, randomSeed=42)
    AllChem.MMFFOptimizeMolecule(mol)
    ligand = Ligand(name="toluene", molblock=Chem.MolToMolBlock(mol), smiles="Cc1ccccc1", formal_charge=0)
    return assign_charges(ligand)


def kernel_speeds(prepared, n_frames: int) -> dict:
    import openmm

    from fep.nnp.system import DeltaU
    from gpu_kernels.mm_intra import openmm_reference_energies
    from gpu_kernels.reduced_potential import reduced_potential_matrix, reduced_potential_matrix_reference
    from ligand_prep.parameters import ligand_system

    system, _, positions = ligand_system(prepared)
    x0 = np.asarray(positions.value_in_unit(openmm.unit.nanometer))
    frames = x0 + np.random.default_rng(0).normal(0.0, 0.005, size=(n_frames, *x0.shape))
    delta_u = DeltaU(prepared, device=SETUP["device"], threads=1)
    delta_u.ani.energies(frames[:2])  # warm-up
    out = {}

    def rate(fn, n):
        start = _clock()
        fn()
        wall, cpu = _since(start)
        return {"frames_per_s": n / wall, "frames_per_cpu_s": n / max(cpu, 1e-9), "wall_s": wall, "cpu_s": cpu}

    n_ref = min(n_frames, 50)
    out["ani_batched"] = rate(lambda: delta_u.ani.energies(frames), n_frames)
    out["ani_reference"] = rate(lambda: delta_u.ani.reference_energies(frames[:n_ref]), n_ref)
    out["mm_intra_batched"] = rate(lambda: delta_u.mm.energies(frames), n_frames)
    out["mm_intra_reference"] = rate(lambda: openmm_reference_energies(system, frames[:n_ref]), n_ref)
    components = np.random.default_rng(1).normal(size=(n_frames, 1))
    coefficients = np.linspace(0.0, 1.0, 5)[:, None]
    out["u_kn_batched"] = rate(
        lambda: reduced_potential_matrix(components, coefficients, 0.4, device=SETUP["device"]), n_frames
    )
    out["u_kn_reference"] = rate(lambda: reduced_potential_matrix_reference(components, coefficients, 0.4), n_frames)
    for name in ("ani", "mm_intra", "u_kn"):
        out[f"{name}_speedup"] = out[f"{name}_batched"]["frames_per_s"] / out[f"{name}_reference"]["frames_per_s"]
    return out


def solvent_end_state(prepared):
    import openmm

    from fep.protocol import tier
    from fep.systems.endstates import build_ligand_system

    system, topology, positions, box = build_ligand_system(prepared, "solvent", tier("smoke").system)
    ligand_atoms = [a.index for a in topology.atoms() if a.residue.name == "LIG"]
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE_K, 1.0, 0.004)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(SETUP["platform"]))
    context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 300)
    context.setVelocitiesToTemperature(TEMPERATURE_K, 1)
    integrator.step(250)
    return system, topology, ligand_atoms, context, integrator


def mm_frames(context, integrator, n_frames: int, interval: int) -> tuple[np.ndarray, np.ndarray, dict]:
    import openmm.unit as u

    frames, boxes = [], []
    start = _clock()
    for _ in range(n_frames):
        integrator.step(interval)
        state = context.getState(getPositions=True)
        frames.append(state.getPositions(asNumpy=True).value_in_unit(u.nanometer))
        boxes.append(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer))
    wall, cpu = _since(start)
    steps = n_frames * interval
    timing = {
        "steps": steps,
        "timestep_fs": 4.0,
        "s_per_step": wall / steps,
        "cpu_s_per_step": cpu / steps,
        "ns_per_day": steps * 4e-6 / wall * 86400.0,
    }
    return np.asarray(frames), np.asarray(boxes), timing


def ml_step_cost(system, ligand_atoms, prepared, frames, boxes, n_steps: int) -> dict:
    """Seconds per MD step of the λ = 0.5 ML/MM system (1 fs, as the correction runs it)."""
    import openmm

    from fep.nnp.system import LAMBDA_PARAMETER, DeltaU, add_nnp_force

    delta_u = DeltaU(prepared, device=SETUP["device"], threads=1)
    lam_system = openmm.XmlSerializer.clone(system)
    add_nnp_force(lam_system, ligand_atoms, delta_u, lam=0.5)
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE_K, 1.0, 0.001)
    context = openmm.Context(lam_system, integrator, openmm.Platform.getPlatformByName(SETUP["platform"]))
    context.setPeriodicBoxVectors(*boxes[-1])
    context.setPositions(frames[-1])
    context.setParameter(LAMBDA_PARAMETER, 0.5)
    integrator.step(5)
    start = _clock()
    integrator.step(n_steps)
    wall, cpu = _since(start)
    return {"steps": n_steps, "s_per_step": wall / n_steps, "cpu_s_per_step": cpu / n_steps}


def leg_md_steps(protocol) -> int:
    s = protocol.sampler
    return protocol.n_windows * (
        s.n_iterations * s.steps_per_iteration + s.equilibration_nvt_steps + s.equilibration_npt_steps
    )


def nnp_md_steps(settings) -> int:
    return (len(settings.lambdas) - 1) * settings.steps_per_state


def main(argv: list[str] | None = None) -> dict:
    from mlfep_core.runtime import configure_process

    configure_process()  # logging, warnings, AmberTools on PATH: what the fep command does
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500, help="Frames for the kernel timings.")
    parser.add_argument("--ml-steps", type=int, default=100, help="ML/MM steps for the per-step cost.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--platform", default="CPU", help="OpenMM platform of the MM and ML/MM systems")
    parser.add_argument("--device", default="cpu", help="torch device of the ANI-2x and batched kernels (cpu, cuda)")
    args = parser.parse_args(argv)
    SETUP.update(platform=args.platform, device=args.device)
    os.environ.setdefault("TORCHANI_DATA_DIR", str(SHARED / "models" / "torchani"))
    os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
    logging.basicConfig(level=logging.WARNING)

    from fep.nnp.correction import endpoint_correction
    from fep.protocol import tier

    prepared = toluene()
    print("kernels ...", flush=True)
    kernels = kernel_speeds(prepared, args.frames)
    print("solvent end state ...", flush=True)
    system, topology, ligand_atoms, context, integrator = solvent_end_state(prepared)
    smoke = tier("smoke")
    frames, boxes, mm = mm_frames(context, integrator, n_frames=smoke.nnp.n_frames * 2, interval=50)
    print(f"MM: {mm['ns_per_day']:.2f} ns/day, {mm['s_per_step'] * 1e3:.1f} ms/step", flush=True)
    ml = ml_step_cost(system, ligand_atoms, prepared, frames, boxes, args.ml_steps)
    print(f"ML/MM: {ml['s_per_step'] * 1e3:.1f} ms/step", flush=True)

    settings = smoke.nnp.model_copy(update={"platform": SETUP["platform"], "seed": 1})
    start = _clock()
    result = endpoint_correction(
        system,
        topology,
        ligand_atoms,
        frames,
        boxes,
        prepared,
        leg="solvent",
        state="A",
        temperature_k=TEMPERATURE_K,
        settings=settings,
    )
    corr_wall, corr_cpu = _since(start)
    smoke_ml_steps = nnp_md_steps(settings)
    fixed = max(corr_wall - smoke_ml_steps * ml["s_per_step"], 0.0)
    fixed_cpu = max(corr_cpu - smoke_ml_steps * ml["cpu_s_per_step"], 0.0)
    print(f"correction (smoke): {corr_wall:.1f} s, {result.status}, {result.dg_kcal_mol}", flush=True)

    tiers = {}
    for name in ("smoke", "fast", "default", "production"):
        protocol = tier(name)
        mm_steps = leg_md_steps(protocol)
        mm_leg_s = mm_steps * mm["s_per_step"]
        n_ml = nnp_md_steps(protocol.nnp)
        corr_s = corr_wall if name == "smoke" else fixed + n_ml * ml["s_per_step"]
        corr_cpu_s = corr_cpu if name == "smoke" else fixed_cpu + n_ml * ml["cpu_s_per_step"]
        tiers[name] = {
            "mm_leg_md_steps": mm_steps,
            "mm_leg_s": mm_leg_s,
            "nnp_md_steps_per_end_state": n_ml,
            "correction_s_per_end_state": corr_s,
            "measured": name == "smoke",
            "fraction_per_leg": 2.0 * corr_s / mm_leg_s,
            "fraction_per_leg_cpu_time": 2.0 * corr_cpu_s / (mm_steps * mm["cpu_s_per_step"]),
        }

    payload = {
        "benchmark": "nnp_speed",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": pyplatform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "molecule": "toluene (15 atoms), AM1-BCC, OpenFF 2.2.1",
        "openmm_platform": SETUP["platform"],
        "torch_device": SETUP["device"],
        "kernels_cpu": kernels,  # the key predates --device: the kernels ran on torch_device
        "solvent_end_state": {
            "n_particles": system.getNumParticles(),
            "box": "smoke tier (0.8 nm padding, dodecahedron)",
            "mm": mm,
            "ml_mm_step": ml,
        },
        "correction_smoke": {
            "wall_s": corr_wall,
            "cpu_s": corr_cpu,
            "fixed_s": fixed,
            "fixed_cpu_s": fixed_cpu,
            "result": json.loads(result.model_dump_json()),
            "settings": json.loads(settings.model_dump_json()),
        },
        "tiers": tiers,
        "target": "NNP correction <= 10 % of the MM cost of the leg",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    from mlfep_core import atomic_write_text

    atomic_write_text(args.out / "nnp_speed.json", json.dumps(payload, indent=2, default=float) + "\n")
    atomic_write_text(args.out / "nnp_speed.md", markdown(payload))
    print(markdown(payload))
    return payload


def markdown(p: dict) -> str:
    k = p["kernels_cpu"]
    se = p["solvent_end_state"]
    c = p["correction_smoke"]
    lines = [
        "# NNP (ANI-2x) endpoint correction: speed on the CPU"
        if p.get("openmm_platform", "CPU") == "CPU" and p.get("torch_device", "cpu") == "cpu"
        else f"# NNP (ANI-2x) endpoint correction: speed on OpenMM {p['openmm_platform']}, torch {p['torch_device']}",
        "",
        f"{p['date_utc']}, {p['machine']['platform']}, {p['machine']['cpus']} CPUs, load average at the end "
        f"{', '.join(f'{x:.1f}' for x in p['machine']['load_avg'])} (shared machine: absolute times are noisy; "
        "ratios were measured in one run).",
        "",
        f"Molecule: {p['molecule']}. Command: `.venv/bin/python benchmarks/nnp_speed.py`.",
        "",
        "## Kernels (frames per second of wall time, and per CPU second; float64, 1 torch thread)",
        "",
        "| kernel | batched | reference (one frame at a time) | speed-up | batched per CPU s | reference per CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in (
        ("ani", "ANI-2x energies (torchani)"),
        ("mm_intra", "MM intramolecular (OpenMM Reference)"),
        ("u_kn", "u_kn, K = 5 (numpy loop)"),
    ):
        lines.append(
            f"| {label} | {k[name + '_batched']['frames_per_s']:.0f} | {k[name + '_reference']['frames_per_s']:.0f} "
            f"| {k[name + '_speedup']:.1f}× | {k[name + '_batched']['frames_per_cpu_s']:.0f} "
            f"| {k[name + '_reference']['frames_per_cpu_s']:.0f} |"
        )
    lines += [
        "",
        f"## Toluene solvent end state ({se['n_particles']} particles, {se['box']})",
        "",
        f"- plain MM MD (4 fs, HMR, {p.get('openmm_platform', 'CPU')} platform): {se['mm']['ns_per_day']:.2f} ns/day, "
        f"{se['mm']['s_per_step'] * 1e3:.1f} ms/step",
        f"- ML/MM MD at λ = 0.5 (1 fs, ANI-2x float32 forces through a PythonForce): "
        f"{se['ml_mm_step']['s_per_step'] * 1e3:.1f} ms/step ({se['ml_mm_step']['cpu_s_per_step'] * 1e3:.1f} ms CPU; "
        f"plain MM: {se['mm']['cpu_s_per_step'] * 1e3:.1f} ms CPU)",
        f"- endpoint correction with the smoke settings (measured): {c['wall_s']:.1f} s wall "
        f"(fixed part {c['fixed_s']:.1f} s), status {c['result']['status']}, "
        f"ΔG {c['result']['dg_kcal_mol']} ± {c['result']['dg_err_kcal_mol']} kcal/mol, "
        f"min overlap {c['result']['min_overlap']}",
        "",
        "## Correction cost vs the MM cost of the leg (two end states per leg)",
        "",
        "| tier | MM MD steps per leg | MM leg (s) | ML/MM steps per end state | correction per end state (s) "
        "| correction / MM leg (wall) | (CPU time) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, t in p["tiers"].items():
        how = "measured" if t["measured"] else "estimated"
        lines.append(
            f"| {name} | {t['mm_leg_md_steps']:,} | {t['mm_leg_s']:.0f} | {t['nnp_md_steps_per_end_state']:,} | "
            f"{t['correction_s_per_end_state']:.0f} ({how}) | {100 * t['fraction_per_leg']:.1f} % "
            f"| {100 * t['fraction_per_leg_cpu_time']:.1f} % |"
        )
    lines += [
        "",
        "MM cost: the tier's MD steps (windows × (iterations × steps + equilibration)) × the ms/step measured above "
        "on the smoke box (the default tier's larger boxes make both the MM and the ML/MM steps dearer; the fast tier's smaller 0.7 nm-cutoff box makes MM cheaper, so its real fraction is higher: benchmarks/results/rhfe.json measures it in a real run). "
        "Correction cost for the other tiers: the fixed part of the smoke run + their ML/MM steps × ms/step. "
        f"Target: {p['target']}.",
        "",
        "Reading the two ratios: wall time is what a user waits for, but on a shared, overloaded machine it "
        "penalises the ML/MM steps most (every step hands over between OpenMM's threads and the Python ANI "
        "callback, and each hand-over waits for a time slice); CPU time counts the work done. On an idle machine "
        "the plain MM step runs on all cores while the ANI call uses one, so the idle wall ratio lies between "
        "the CPU-time ratio and about twice it. On a GPU the MM leg is the GPU's and the per-step ANI call "
        "(~15 atoms) is latency-bound, so measure there before quoting a GPU ratio.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--markdown-from":
        # re-render the table from a saved JSON: nnp_speed.py --markdown-from results/nnp_speed.json
        saved = json.loads(Path(sys.argv[2]).read_text())
        from mlfep_core import atomic_write_text

        atomic_write_text(Path(sys.argv[2]).with_suffix(".md"), markdown(saved))
    else:
        main()
