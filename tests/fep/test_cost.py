"""Cost estimate: atom counts without building systems, the throughput model, and the tyk2 `--dry-run`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fep.cli import main
from fep.execution.cost import (
    ALCHEMICAL_FACTOR,
    CPU_CORE_S_PER_ATOM_STEP,
    GPU_CAP_NS_DAY,
    calibrate_cpu,
    cpu_core_hours,
    estimate_leg_atoms,
    gpu_ns_per_day,
)
from fep.protocol import load_protocol

# benchmarks/results/system_build.md: tyk2 lig_ejm_31 legs built by fep.systems.endstates (default protocol settings)
TYK2_COMPLEX_ATOMS, TYK2_SOLVENT_ATOMS = 34785, 1306


def test_tyk2_dry_run_prints_the_estimate_without_simulating(bench, tmp_path, capsys):
    out_dir = tmp_path / "x"
    code = main(
        [
            "run",
            "--ligands",
            str(bench / "tyk2" / "ligands.sdf"),
            "--protein",
            str(bench / "tyk2" / "protein.pdb"),
            "--protocol",
            "default",
            "-o",
            str(out_dir),
            "--dry-run",
            "--json",
        ]
    )
    assert code == 0
    assert not out_dir.exists()  # nothing simulated, nothing written
    captured = capsys.readouterr()
    assert "GPU-hours" in captured.err and "CPU core-hours" in captured.err  # the human-facing table
    data = json.loads(captured.out)
    cost = data["cost"]
    assert len(cost["edges"]) == len(data["edges"]) >= 12  # 13 ligands: at least a spanning tree
    for edge in cost["edges"]:
        legs = {leg["leg"]: leg for leg in edge["legs"]}
        assert set(legs) == {"complex", "solvent"}
        # within 10 % / 25 % of what the system builder made for lig_ejm_31
        assert abs(legs["complex"]["n_atoms"] / TYK2_COMPLEX_ATOMS - 1) < 0.10
        assert abs(legs["solvent"]["n_atoms"] / TYK2_SOLVENT_ATOMS - 1) < 0.25
        assert legs["complex"]["windows"] == 12 and legs["complex"]["repeats"] == 3
        assert legs["complex"]["replica_ns"] == pytest.approx(12 * 5.0 * 3)
        assert legs["complex"]["gpu_hours"] > legs["solvent"]["gpu_hours"] > 0
    assert cost["gpu_hours"] == pytest.approx(sum(leg["gpu_hours"] for e in cost["edges"] for leg in e["legs"]))


def test_vacuum_leg_is_the_hybrid_and_the_box_grows_with_padding():
    proto = load_protocol("fast")
    xyz = np.random.default_rng(0).normal(scale=0.2, size=(20, 3))
    assert estimate_leg_atoms("vacuum", xyz, 23, proto.system) == (23, 0)
    small, waters_small = estimate_leg_atoms("solvent", xyz, 23, proto.system)
    wider = proto.system.model_copy(update={"solvent_padding": proto.system.solvent_padding * 2})
    large, waters_large = estimate_leg_atoms("solvent", xyz, 23, wider)
    assert small == 23 + 3 * waters_small and large > small and waters_large > waters_small


def test_throughput_model():
    assert gpu_ns_per_day(100) == pytest.approx(GPU_CAP_NS_DAY * ALCHEMICAL_FACTOR)
    assert gpu_ns_per_day(40000) == pytest.approx(gpu_ns_per_day(20000) / 2)
    assert cpu_core_hours(1000, 3.6e6) == pytest.approx(CPU_CORE_S_PER_ATOM_STEP * 1e6)


def test_calibrate_cpu_from_sampler_summaries(tmp_path):
    path = tmp_path / "sampler_summary.json"
    summary = {
        "n_atoms": 1000,
        "n_states": 4,
        "iterations_this_call": 10,
        "steps_per_iteration": 100,
        "timings_s": {"production_cpu": 8.0},
    }
    path.write_text(json.dumps(summary))
    assert calibrate_cpu([path]) == pytest.approx(8.0 / (1000 * 4 * 10 * 100))


def test_equilibration_steps_count_and_charge_changing_edges_cost_more(bench):
    """The CPU estimate counts each window's equilibration MD with production (vacuum: NVT only), and a
    charge-changing edge its extra windows and time (protocol charge_change)."""
    from fep.execution.cost import estimate_cost
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MCSMapper
    from ligand_prep.models import Network

    a, b = read_ligands(bench / "tyk2" / "ligands.sdf")[:2]
    mapping = MCSMapper().map(a, b)
    network = Network(mode="hydration", ligands=(a, b), edges=(mapping,))
    smoke = load_protocol("smoke")
    bare = smoke.model_copy(
        update={
            "sampler": smoke.sampler.model_copy(update={"equilibration_nvt_steps": 0, "equilibration_npt_steps": 0})
        }
    )
    with_eq, without = estimate_cost(network, smoke, "hydration"), estimate_cost(network, bare, "hydration")
    for leg_eq, leg_bare in zip(with_eq.edges[0].legs, without.edges[0].legs, strict=True):
        sampler = smoke.sampler_for(leg_eq.leg)
        production = sampler.n_iterations * sampler.steps_per_iteration
        extra = sampler.equilibration_nvt_steps + (sampler.equilibration_npt_steps if sampler.pressure else 0)
        assert leg_eq.cpu_core_hours == pytest.approx(leg_bare.cpu_core_hours * (production + extra) / production)
    charged = network.model_copy(update={"edges": (mapping.model_copy(update={"charge_change": 1}),)})
    leg = estimate_cost(charged, smoke, "hydration").edges[0].legs[0]
    assert leg.windows == smoke.n_windows + smoke.charge_change.extra_windows
    assert leg.cpu_core_hours > with_eq.edges[0].legs[0].cpu_core_hours
