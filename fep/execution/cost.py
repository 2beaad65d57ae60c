"""What a run will cost, before any simulation: atoms per leg, windows × ns × repeats, GPU-hours, CPU core-hours.

Atom counts are estimated without building a system (milliseconds per edge, numpy only):

- ligand atoms from the mol blocks; the hybrid has ``n_A + n_B - n_mapped`` atoms;
- protein atoms from the PDB's ATOM/HETATM records (waters dropped unless ``keep_crystal_waters``); a PDB
  without hydrogens gets one hydrogen per heavy atom (tyk2: 2,316 H per 2,342 heavy atoms);
- waters from the box of :func:`fep.systems.solvation.box_vectors_for` (the padding, shape and cutoff of the protocol,
  the same rule the builder uses): ``(V_box - V_excluded) × 33.4 waters/nm³`` (number density of water at 298 K),
  3 atoms each, with ``V_excluded = 0.0170 nm³ × n_solute + 2.2 nm³``: the solute's volume plus the shell that
  the solvation leaves empty, fitted to the two tyk2 legs that ``benchmarks/system_build.py`` built
  (benchmarks/results/system_build.md: complex 4,684 solute atoms in 383.5 nm³ → 10,015 waters + 56 ions;
  solvent 32 atoms in 15.5 nm³ → 424 waters + 2 ions). Ions count as waters (each replaces one).

Throughput model (ns/day of one replica of an N-atom hybrid system, HREX overhead included)
-------------------------------------------------------------------------------------------
GPU: ``min(GPU_CAP_NS_DAY, GPU_ATOM_NS_DAY / N) × ALCHEMICAL_FACTOR``. The constants are rounded from OpenMM 8's
published CUDA benchmarks for plain MD with 4 fs steps on an A100-class GPU (openmm.org/benchmarks: DHFR, 23.6 k
atoms, ≈ 1,500 ns/day, i.e. ≈ 3.5e7 atom·ns/day, flattening to a few thousand ns/day below ~10 k atoms); the
factor 0.5 stands for the custom alchemical nonbonded forces and the K-state energy matrix of every HREX iteration.
They were NOT measured here (no GPU on the development VM): treat the GPU figure as ±2×.

CPU: ``CPU_CORE_S_PER_ATOM_STEP`` core-seconds per atom and MD step (all replicas, energies, swaps and I/O
included) over production and equilibration steps (building the systems, charges and the analysis are not
counted: they dominate tiny protocols such as smoke), measured on this project's 2-core VM with OpenMM's CPU platform (``CPU_CALIBRATION``): the smoke protocol's
benzene→toluene solvent leg (1,380 atoms, 5 windows × 20 iterations × 250 steps) took 155.6 CPU-seconds of
production → 4.5e-6 core-s per atom-step (the VM was shared, load ≈ 12 on 2 cores: a quiet machine is likely
somewhat faster). Measured with ``fep run --ligands L.csv --edge benzene,toluene --mode hydration --protocol
smoke``; :func:`calibrate_cpu` reads the ``sampler_summary.json`` each leg writes, so the constant can be
re-measured on any machine. Small systems (a vacuum leg, 16 atoms: 2.1e-5) are dominated by per-step overhead.

Disk (:func:`disk_bytes`, per leg and repeat): the system files (two end states, the hybrid, its topology and
positions: 1,200 B per atom), two replica-state files (the last checkpoint's and the previous one's: 24 B per atom
and window each), end-state XTC snapshots of states 0 and K-1 (4 B per atom and frame) and the per-iteration energy
chunks (16 B per state pair and iteration), plus 100 kB of JSON: an upper bound, rounded up from two solvent legs
(the fast protocol's benzene~phenol, 1,236 atoms: 510 kB of system files, 1.8 B per atom and frame; the test
protocol's benzene~toluene, 1,380 atoms: 1.32 MB of system files, 3.5 B per atom and frame in one-frame files).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from mlfep_core import FrozenModel, InputError

__all__ = [
    "ALCHEMICAL_FACTOR",
    "CPU_CORE_S_PER_ATOM_STEP",
    "GPU_ATOM_NS_DAY",
    "GPU_CAP_NS_DAY",
    "EdgeCost",
    "LegCost",
    "RunCost",
    "calibrate_cpu",
    "disk_bytes",
    "estimate_cost",
    "estimate_leg_atoms",
]

GPU_ATOM_NS_DAY = 3.5e7  # atom·ns/day, plain MD, 4 fs, A100-class (openmm.org benchmarks, DHFR)
GPU_CAP_NS_DAY = 3000.0  # small systems are launch-latency bound
ALCHEMICAL_FACTOR = 0.5  # alchemical custom forces + K-state energy evaluations per HREX iteration
CPU_CORE_S_PER_ATOM_STEP = 4.5e-6  # measured here: see CPU_CALIBRATION
CPU_CALIBRATION = (
    "measured: benzene->toluene solvent leg, 1,380 atoms, smoke protocol (5 windows x 20 x 250 steps), OpenMM 8.6 "
    "CPU platform, 2-core VM: 155.6 CPU-s of production"
)
SHELL_VOLUME_NM3 = 2.2  # excluded volume of the solvation shell (fit, see above)


class LegCost(FrozenModel):
    """Estimated size and cost of one leg (all repeats)."""

    leg: str
    n_atoms: int = Field(description="Estimated atoms of the hybrid system.")
    n_waters: int
    windows: int
    ns_per_window: float
    repeats: int
    replica_ns: float = Field(description="windows × ns × repeats.")
    gpu_hours: float
    cpu_core_hours: float
    disk_bytes: int = Field(0, description="Estimated bytes on disk when finished (all repeats).")


class EdgeCost(FrozenModel):
    """Legs of one edge."""

    edge: str
    legs: tuple[LegCost, ...]

    @property
    def gpu_hours(self) -> float:
        """Sum over the legs."""
        return sum(leg.gpu_hours for leg in self.legs)

    @property
    def cpu_core_hours(self) -> float:
        """Sum over the legs."""
        return sum(leg.cpu_core_hours for leg in self.legs)


class RunCost(FrozenModel):
    """Every edge of a run and the totals."""

    protocol: str
    edges: tuple[EdgeCost, ...]
    gpu_hours: float
    cpu_core_hours: float
    model: str = Field(description="The throughput model in words.")

    @property
    def disk_bytes(self) -> int:
        """Estimated bytes on disk of every leg, finished."""
        return sum(leg.disk_bytes for edge in self.edges for leg in edge.legs)


# ------------------------------------------------------------------------------------------------ atoms
def _molblock_atoms(molblock: str) -> tuple[list[str], np.ndarray]:
    """Elements and positions (nm, shape (n, 3)) of a V2000 or V3000 mol block."""
    lines = molblock.splitlines()
    elements, coords = [], []
    if len(lines) > 3 and "V3000" in lines[3]:
        inside = False
        for line in lines:
            if line.startswith("M  V30 BEGIN ATOM"):
                inside = True
            elif line.startswith("M  V30 END ATOM"):
                break
            elif inside:
                parts = line.split()
                elements.append(parts[3])
                coords.append([float(x) for x in parts[4:7]])
    elif len(lines) > 3:
        n = int(lines[3][:3])
        for line in lines[4 : 4 + n]:
            coords.append([float(line[0:10]), float(line[10:20]), float(line[20:30])])
            elements.append(line[31:34].strip())
    return elements, np.asarray(coords, dtype=float).reshape(-1, 3) / 10.0


def _protein_atoms(pdb: str | os.PathLike[str], keep_waters: bool) -> np.ndarray:
    """Positions (nm, shape (n, 3)) of the protein's atoms, hydrogens added (at the parent) when the file has none."""
    coords, has_h = [], False
    try:
        text = Path(pdb).read_text()
    except OSError as err:
        raise InputError(f"{pdb}: cannot read the protein PDB ({err})") from err
    except UnicodeDecodeError as err:
        raise InputError(
            f"{pdb}: not a PDB text file (binary content at byte {err.start}); give the protein PDB"
        ) from err
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith(("ATOM", "HETATM")):
            continue
        if not keep_waters and line[17:20] in ("HOH", "WAT", "TIP"):
            continue
        element = line[76:78].strip() or line[12:16].strip()[:1]
        has_h = has_h or element == "H"
        try:
            coords.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
        except ValueError as err:
            raise InputError(f"{pdb} line {number}: not a PDB ATOM/HETATM record (coordinates unreadable)") from err
    xyz = np.asarray(coords, dtype=float).reshape(-1, 3) / 10.0
    return xyz if has_h else np.repeat(xyz, 2, axis=0)


def estimate_leg_atoms(
    leg: str,
    ligand_xyz: np.ndarray,
    n_hybrid: int,
    settings,
    protein_xyz: np.ndarray | None = None,
) -> tuple[int, int]:
    """(atoms, waters) of one leg's hybrid system.

    Parameters
    ----------
    leg : {"complex", "solvent", "vacuum"}
    ligand_xyz : ndarray, shape (n, 3)
        Ligand A positions, nm (the box is built around them).
    n_hybrid : int
        Atoms of the hybrid ligand.
    settings : fep.systems.endstates.SystemSettings
    protein_xyz : ndarray, shape (m, 3), optional
        Protein positions, nm (complex leg).
    """
    from fep.systems.solvation import ATOM_VOLUME_NM3, WATER_PER_NM3, box_vectors_for, npt_growth

    if leg == "vacuum":
        return n_hybrid, 0
    solute = ligand_xyz if leg != "complex" or protein_xyz is None else np.vstack([protein_xyz, ligand_xyz])
    n_solute = n_hybrid + (len(protein_xyz) if leg == "complex" and protein_xyz is not None else 0)
    box = box_vectors_for(
        solute,
        settings.padding_for(leg).m_as("nanometer"),
        settings.box_shape,
        settings.nonbonded_cutoff.m_as("nanometer"),
    )
    cutoff = settings.nonbonded_cutoff.m_as("nanometer")
    for _ in range(3):  # the builder's rule: a box NPT would shrink below the cutoff is made larger
        volume = abs(float(np.linalg.det(box)))
        n_waters = max(0, int((volume - n_solute * ATOM_VOLUME_NM3 - SHELL_VOLUME_NM3) * WATER_PER_NM3))
        grow = npt_growth(box, n_waters, n_solute, cutoff)
        if grow <= 1.0:
            break
        box = box * grow
    return n_solute + 3 * n_waters, n_waters


# ------------------------------------------------------------------------------------------------- cost
def gpu_ns_per_day(n_atoms: int) -> float:
    """ns/day of one replica on one GPU (see the module docstring)."""
    return min(GPU_CAP_NS_DAY, GPU_ATOM_NS_DAY / max(n_atoms, 1)) * ALCHEMICAL_FACTOR


def disk_bytes(n_atoms: int, windows: int, n_iterations: int, snapshot_interval: int) -> int:
    """Bytes one finished leg (one repeat) of an ``n_atoms`` hybrid with ``windows`` states takes on disk."""
    systems = 1200 * n_atoms
    replica_states = 2 * 24 * n_atoms * windows
    snapshots = 2 * 4 * n_atoms * (n_iterations // snapshot_interval + 1)
    energies = 16 * windows * windows * n_iterations
    return int(systems + replica_states + snapshots + energies + 100_000)


def cpu_core_hours(n_atoms: int, md_steps: float) -> float:
    """Core-hours of ``md_steps`` MD steps (summed over replicas) of an ``n_atoms`` system."""
    return CPU_CORE_S_PER_ATOM_STEP * n_atoms * md_steps / 3600.0


def estimate_cost(network, protocol, mode: str, protein: str | None = None) -> RunCost:
    """Cost of every leg of every edge of ``network`` with ``protocol`` (no system is built)."""
    from mlfep_core.constants import LEGS_FOR_MODE

    legs = LEGS_FOR_MODE[mode]
    settings = protocol.system
    protein_xyz = _protein_atoms(protein, settings.keep_crystal_waters) if protein and "complex" in legs else None
    by_name = {lig.name: lig for lig in network.ligands}
    edges = []
    for mapping in network.edges:
        charged = bool(mapping.charge_change)
        windows = len(protocol.windows(charge_change=charged))
        ns = protocol.ns_per_window(charge_change=charged)
        elements_a, xyz_a = _molblock_atoms(by_name[mapping.ligand_a].molblock)
        elements_b, _ = _molblock_atoms(by_name[mapping.ligand_b].molblock)
        n_hybrid = len(elements_a) + len(elements_b) - len(mapping.mapping)
        leg_costs = []
        for leg in legs:
            n_atoms, n_waters = estimate_leg_atoms(leg, xyz_a, n_hybrid, settings, protein_xyz)
            sampler = protocol.sampler_for(leg, charge_change=charged)
            replica_ns = windows * ns * protocol.repeats
            # production and the per-window equilibration (NVT, then NPT where there is a barostat): the same
            # cost per atom-step; building, charges and analysis are not counted
            equilibration = sampler.equilibration_nvt_steps + (
                sampler.equilibration_npt_steps if sampler.pressure is not None else 0
            )
            md_steps = windows * protocol.repeats * (sampler.n_iterations * sampler.steps_per_iteration + equilibration)
            if protocol.lambda_placement.enabled:  # the first pass (the windows it adds are not known yet)
                first = protocol.lambda_placement.first_pass_iterations * sampler.steps_per_iteration
                md_steps += windows * protocol.repeats * (first + equilibration)
            leg_costs.append(
                LegCost(
                    leg=leg,
                    n_atoms=n_atoms,
                    n_waters=n_waters,
                    windows=windows,
                    ns_per_window=ns,
                    repeats=protocol.repeats,
                    replica_ns=replica_ns,
                    gpu_hours=24.0 * replica_ns / gpu_ns_per_day(n_atoms),
                    cpu_core_hours=cpu_core_hours(n_atoms, md_steps),
                    disk_bytes=protocol.repeats
                    * disk_bytes(n_atoms, windows, sampler.n_iterations, sampler.snapshot_interval),
                )
            )
        edges.append(EdgeCost(edge=mapping.key, legs=tuple(leg_costs)))
    model = (
        f"GPU ns/day = min({GPU_CAP_NS_DAY:g}, {GPU_ATOM_NS_DAY:.2g}/atoms) x {ALCHEMICAL_FACTOR:g} (OpenMM CUDA "
        f"benchmarks, not measured here); CPU {CPU_CORE_S_PER_ATOM_STEP:.2g} core-s per atom-step ({CPU_CALIBRATION})"
    )
    return RunCost(
        protocol=protocol.name,
        edges=tuple(edges),
        gpu_hours=sum(e.gpu_hours for e in edges),
        cpu_core_hours=sum(e.cpu_core_hours for e in edges),
        model=model,
    )


def calibrate_cpu(summary_files: Sequence[str | os.PathLike[str]]) -> float:
    """Core-seconds per atom and MD step from ``sampler_summary.json`` files of CPU runs (median).

    Uses the production CPU time of the sampler process (all threads) over K replicas × iterations × steps.
    """
    values = []
    for path in summary_files:
        data: dict[str, Any] = json.loads(Path(path).read_text())
        steps = data["n_states"] * data["iterations_this_call"] * data["steps_per_iteration"]
        values.append(data["timings_s"]["production_cpu"] / (data["n_atoms"] * steps))
    if not values:
        raise InputError("calibrate_cpu: no sampler_summary.json given")
    return float(np.median(values))
