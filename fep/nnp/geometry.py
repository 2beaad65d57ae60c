"""Where MM and ANI-2x disagree about a ligand's shape qualitatively: nitrogen pyramidality and amide twist.

Both the ligand's vacuum MM system and ANI-2x minimise the same seeded conformer; then

* every nitrogen with three neighbours is called *planar* when the sum of its three bond angles is at least
  350°, *pyramidal* when it is below 345° (in between: undecided, never flagged);
* every amide C(=O)–N is called *twisted* when its O=C–N–X dihedral is more than 25° from planar.

A nitrogen planar in one and pyramidal in the other, or an amide twisted in one only, is reported: a
mechanically embedded ML correction of such a ligand carries the difference into its interactions with fixed MM
charges (aniline's NH2: Sage planar, ANI-2x pyramidal), so its ML value deserves suspicion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ligand_prep.models import PreparedLigand

__all__ = ["dihedral", "minimum_disagreements", "start_conformer"]

PLANAR_SUM_DEG = 350.0
PYRAMIDAL_SUM_DEG = 345.0
AMIDE_TWIST_DEG = 25.0


def dihedral(x: np.ndarray, idx: Sequence[int]) -> float:
    """The i-j-k-l dihedral of one frame, radians in (-π, π]."""
    p0, p1, p2, p3 = (x[i] for i in idx)
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1)
    v = b0 - np.dot(b0, b1n) * b1n
    w = b2 - np.dot(b2, b1n) * b1n
    return float(math.atan2(np.dot(np.cross(b1n, v), w), np.dot(v, w)))


def start_conformer(prepared: PreparedLigand, seed: int = 20261201) -> np.ndarray:
    """One seeded ETKDG conformer (nm), pose-independent; falls back to the pose."""
    from rdkit.Chem import rdDistGeom

    mol = prepared.ligand.to_rdkit()
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed  # type: ignore[assignment]  # RDKit's stub types this property wrongly
    conf_id = rdDistGeom.EmbedMolecule(mol, params)
    if conf_id < 0:
        return np.asarray(prepared.ligand.to_rdkit().GetConformer().GetPositions()) / 10.0
    return np.asarray(mol.GetConformer(conf_id).GetPositions()) / 10.0


def _angle(x: np.ndarray, i: int, j: int, k: int) -> float:
    a, b = x[i] - x[j], x[k] - x[j]
    return math.degrees(math.acos(float(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))))


def _nitrogen_shapes(mol, x: np.ndarray) -> dict[int, str]:
    out = {}
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() != 7 or atom.GetDegree() != 3:
            continue
        n = [nb.GetIdx() for nb in atom.GetNeighbors()]
        total = _angle(x, n[0], atom.GetIdx(), n[1]) + _angle(x, n[0], atom.GetIdx(), n[2])
        total += _angle(x, n[1], atom.GetIdx(), n[2])
        out[atom.GetIdx()] = "planar" if total >= PLANAR_SUM_DEG else "pyramidal" if total < PYRAMIDAL_SUM_DEG else "?"
    return out


def _amide_twists(mol, x: np.ndarray) -> dict[tuple[int, int], bool]:
    from rdkit import Chem

    out: dict[tuple[int, int], bool] = {}
    for o, c, n, sub in mol.GetSubstructMatches(Chem.MolFromSmarts("O=C-[NX3]-[*]")):
        phi = abs(math.degrees(dihedral(x, (o, c, n, sub))))
        twist = min(phi, 180.0 - phi)
        key = (c, n)
        out[key] = out.get(key, False) or twist > AMIDE_TWIST_DEG
    return out


def minimum_disagreements(prepared: PreparedLigand, threads: int | None = 1) -> list[str]:
    """Qualitative MM vs ANI-2x differences of the minimised ligand, one sentence each (empty: none)."""
    import openmm
    from scipy.optimize import minimize

    from gpu_kernels.ani import ANIBatch
    from ligand_prep.parameters import ligand_system

    mol = prepared.ligand.to_rdkit()
    start = start_conformer(prepared)
    system, _, _ = ligand_system(prepared)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(start)
    openmm.LocalEnergyMinimizer.minimize(ctx, 1e-3, 5000)
    x_mm = ctx.getState(getPositions=True).getPositions(asNumpy=True)._value
    ani = ANIBatch([a.GetAtomicNum() for a in mol.GetAtoms()], device="cpu", threads=threads, from_free_atoms=True)

    def fun(flat: np.ndarray):
        e, f = ani.energies_and_forces(flat.reshape(1, -1, 3))
        return float(e[0]), -f[0].ravel()

    x_ml = minimize(fun, start.ravel(), jac=True, method="L-BFGS-B", options={"gtol": 1e-2, "maxiter": 1000})
    x_ml = x_ml.x.reshape(-1, 3)
    out = []
    shapes_mm, shapes_ml = _nitrogen_shapes(mol, x_mm), _nitrogen_shapes(mol, x_ml)
    for idx, mm in shapes_mm.items():
        ml = shapes_ml[idx]
        if {mm, ml} == {"planar", "pyramidal"}:
            out.append(f"N{idx + 1} is {mm} with {prepared.forcefield} but {ml} with ANI-2x")
    twist_mm, twist_ml = _amide_twists(mol, x_mm), _amide_twists(mol, x_ml)
    for (c, n), twisted in twist_mm.items():
        if twisted != twist_ml[(c, n)]:
            who = prepared.forcefield if twisted else "ANI-2x"
            out.append(f"the amide C{c + 1}-N{n + 1} is twisted out of plane only with {who}")
    return out
