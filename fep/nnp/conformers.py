"""How well a ligand's force field reproduces ANI-2x's conformer energies: an out-of-sample check of torsions.

A torsion fit is judged on its own scans; what sampling feels is the relative energy of whole conformers, with
every rotor at once. This check, in the manner of the OpenFF force-field benchmarks (Lim & Hahn 2020), does:

1. ``n`` seeded ETKDG conformers of the ligand, each relaxed with ANI-2x (the first network in float32, energies
   from the 8-network ensemble in float64, as the torsion scans do); duplicates (heavy-atom RMSD below
   ``DUPLICATE_RMSD_A`` after the best symmetric alignment, to the conformer or to its mirror image) are dropped,
   keeping the lower;
2. each ANI-2x minimum relaxed with the ligand's vacuum MM system (the force field with or without refitted
   torsions), optionally with the driving dihedral of every rotatable bond held at its ANI-2x value, so that MM
   is scored on the same conformer rather than on whichever minimum it slides into;
3. ``ddE_i = (E_MM,i - E_MM,ref) - (E_ANI,i - E_ANI,ref)`` against the ANI-2x global minimum ``ref``, over the
   conformers within ``WINDOW_KCAL`` of it; the RMSE of ddE is the score (0: the force field orders and spaces
   the conformers as ANI-2x does). The heavy-atom RMSD between each ANI and MM minimum says whether MM kept the
   conformer at all.

The ANI-2x part depends on the molecule only, so one :class:`ANIConformers` serves every force-field variant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ligand_prep.models import PreparedLigand
from mlfep_core.constants import HARTREE_TO_KJ_MOL, KJ_PER_KCAL

__all__ = ["ANIConformers", "ANIRelaxer", "ConformerCheck", "ani_conformers", "check_conformers"]

SEED = 20261202
DUPLICATE_RMSD_A = 0.25
WINDOW_KCAL = 5.0
RESTRAINT_K = 4000.0  # kJ/mol/rad², holds a dihedral within ~0.2° of its target
ANI_GTOL = 0.05  # kJ/mol/Å, largest gradient component at convergence (per point)
ANI_MAXITER = 400


class ANIRelaxer:
    """Batched relaxation of many frames (optionally one restrained dihedral each) and their ANI-2x energies.

    Geometries are relaxed on the first network of the ensemble in float32 (7x cheaper than the 8-network
    float64 ensemble, and the geometry error that leaves is second order in the energy); the energies that are
    fitted come from the whole ensemble in float64.
    """

    def __init__(self, species: Sequence[int], threads: int | None = 1) -> None:
        from gpu_kernels.ani import ANIBatch, load_ani2x

        self.batch = ANIBatch(species, device="cpu", dtype="float64", threads=threads, from_free_atoms=True)
        self.member = load_ani2x("cpu", "float32", self_energies=False)[0]
        self.threads = threads
        self.n_calls = 0

    def energies(self, frames_nm: np.ndarray) -> np.ndarray:
        """ANI-2x ensemble energies, kJ/mol from the free atoms, shape (F,)."""
        return self.batch.energies(frames_nm)

    def relax(
        self, frames_nm: np.ndarray, idx: Sequence[int] | None = None, targets: np.ndarray | None = None
    ) -> np.ndarray:
        """Minimise E (+ the restraint holding dihedral ``idx`` at ``targets``, when given) for every frame
        (independent problems solved as one), nm in and out."""
        import torch
        from scipy.optimize import minimize

        from gpu_kernels._torch import torch_threads

        n_frames, n_atoms, _ = frames_nm.shape
        species = torch.tensor(self.batch.species).expand(n_frames, -1)
        held = idx is not None and targets is not None
        phi0 = torch.as_tensor(targets if held else np.zeros(n_frames), dtype=torch.float32)
        i, j, k, l_ = (int(a) for a in idx) if idx is not None else (0, 0, 0, 0)

        def fun(flat: np.ndarray):
            x = torch.tensor(flat.reshape(n_frames, n_atoms, 3), dtype=torch.float32, requires_grad=True)
            e = self.member((species, x)).energies * HARTREE_TO_KJ_MOL  # x in Å
            total = e.sum()
            if held:
                b0, b1, b2 = x[:, i] - x[:, j], x[:, k] - x[:, j], x[:, l_] - x[:, k]
                b1n = b1 / b1.norm(dim=1, keepdim=True)
                v = b0 - (b0 * b1n).sum(1, keepdim=True) * b1n
                w = b2 - (b2 * b1n).sum(1, keepdim=True) * b1n
                phi = torch.atan2((torch.cross(b1n, v, dim=1) * w).sum(1), (v * w).sum(1))
                d = torch.remainder(phi - phi0 + math.pi, 2 * math.pi) - math.pi
                total = total + (0.5 * RESTRAINT_K * d**2).sum()
            (g,) = torch.autograd.grad(total, x)
            self.n_calls += 1
            return float(total.detach()), g.numpy().ravel().astype(np.float64)

        with torch_threads(self.threads):
            res = minimize(
                fun,
                frames_nm.ravel() * 10.0,
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": ANI_MAXITER, "gtol": ANI_GTOL, "maxcor": 30},
            )
        return res.x.reshape(n_frames, n_atoms, 3) / 10.0


@dataclass
class ANIConformers:
    """Distinct ANI-2x minima of one ligand: frames (C, n, 3) nm and energies (C,) kJ/mol, lowest first."""

    frames_nm: np.ndarray
    energies: np.ndarray


@dataclass
class ConformerCheck:
    """MM against ANI-2x conformer energies of one ligand (kcal/mol, Å)."""

    n_conformers: int
    dde_kcal_mol: list[float]  # per conformer in the window, the reference (0) included
    rmsd_a: list[float]  # heavy-atom RMSD of the MM minimum from the ANI-2x one
    rmse_kcal_mol: float


def _same_conformer(mol, a_nm: np.ndarray, b_nm: np.ndarray) -> bool:
    """Whether two frames are one conformer, or one and its mirror image (same energy in MM and ANI-2x)."""
    mirror = a_nm * np.array([-1.0, 1.0, 1.0])
    return min(_heavy_rmsd(mol, a_nm, b_nm), _heavy_rmsd(mol, mirror, b_nm)) < DUPLICATE_RMSD_A


def _heavy_rmsd(mol, a_nm: np.ndarray, b_nm: np.ndarray) -> float:
    """Heavy-atom RMSD (Å) of two frames after the best alignment over the molecule's symmetries."""
    from rdkit import Chem
    from rdkit.Chem import rdMolAlign
    from rdkit.Geometry import Point3D

    heavy = Chem.RemoveHs(mol)
    keep = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    probe, ref = Chem.Mol(heavy), Chem.Mol(heavy)
    for m, x in ((probe, a_nm), (ref, b_nm)):
        m.RemoveAllConformers()
        conf = Chem.Conformer(len(keep))
        for new, old in enumerate(keep):
            conf.SetAtomPosition(new, Point3D(*(float(v) * 10.0 for v in x[old])))
        m.AddConformer(conf, assignId=True)
    return float(rdMolAlign.GetBestRMS(probe, ref))


def ani_conformers(
    prepared: PreparedLigand,
    n: int = 12,
    threads: int | None = 1,
    seed: int = SEED,
    relaxer: ANIRelaxer | None = None,
) -> ANIConformers:
    """The distinct ANI-2x minima reached from ``n`` seeded ETKDG conformers, lowest first."""
    from rdkit.Chem import rdDistGeom

    mol = prepared.ligand.to_rdkit()
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed  # type: ignore[assignment]  # RDKit's stub types this property wrongly
    ids = list(rdDistGeom.EmbedMultipleConfs(mol, numConfs=n, params=params))
    if not ids:
        frames = np.asarray(mol.GetConformer().GetPositions())[None] / 10.0
    else:
        frames = np.stack([np.asarray(mol.GetConformer(i).GetPositions()) / 10.0 for i in ids])
    if relaxer is None:
        relaxer = ANIRelaxer([a.GetAtomicNum() for a in mol.GetAtoms()], threads=threads)
    frames = relaxer.relax(frames)
    energies = relaxer.energies(frames)
    order = np.argsort(energies)
    kept: list[int] = []
    for c in order:
        if not any(_same_conformer(mol, frames[c], frames[k]) for k in kept):
            kept.append(int(c))
    return ANIConformers(frames_nm=frames[kept], energies=energies[kept])


def check_conformers(
    prepared: PreparedLigand, ani: ANIConformers, hold: Sequence[tuple[int, int, int, int]] = ()
) -> ConformerCheck:
    """ddE of the ligand's force field (``prepared.torsions`` applied when present) against the ANI-2x minima.

    ``hold``: dihedrals (e.g. one per rotatable bond) kept at their ANI-2x values while MM relaxes, so each MM
    energy is of the same conformer; a force field that does not keep a conformer then pays for it in ddE
    instead of sliding into another minimum unseen."""
    import copy

    import openmm

    from fep.nnp.geometry import dihedral
    from ligand_prep.parameters import ligand_system

    mol = prepared.ligand.to_rdkit()
    system, _, _ = ligand_system(prepared)
    system = copy.deepcopy(system)
    restraint = openmm.CustomTorsionForce("0.5*kr*min(dt, 2*pi-dt)^2; dt=abs(theta-t0); pi=3.141592653589793")
    restraint.addGlobalParameter("kr", RESTRAINT_K)
    restraint.addPerTorsionParameter("t0")
    for d in hold:
        restraint.addTorsion(*d, [0.0])
    restraint.setForceGroup(31)
    system.addForce(restraint)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    rel_ani = (ani.energies - ani.energies[0]) / KJ_PER_KCAL
    window = np.flatnonzero(rel_ani <= WINDOW_KCAL)
    e_mm, rmsd = [], []
    for c in window:
        x = ani.frames_nm[c]
        for t, d in enumerate(hold):
            restraint.setTorsionParameters(t, *d, [dihedral(x, d)])
        if hold:
            restraint.updateParametersInContext(context)
        context.setPositions(x)
        openmm.LocalEnergyMinimizer.minimize(context, 1e-3, 5000)
        state = context.getState(getEnergy=True, getPositions=True, groups=set(range(31)))
        e_mm.append(state.getPotentialEnergy()._value)
        rmsd.append(_heavy_rmsd(mol, x, state.getPositions(asNumpy=True)._value))
    rel_mm = (np.array(e_mm) - e_mm[0]) / KJ_PER_KCAL
    dde = rel_mm - rel_ani[window]
    rmse = float(np.sqrt(np.mean(dde[1:] ** 2))) if len(dde) > 1 else 0.0
    return ConformerCheck(
        n_conformers=len(window),
        dde_kcal_mol=[round(float(x), 4) for x in dde],
        rmsd_a=[round(x, 3) for x in rmsd],
        rmse_kcal_mol=rmse,
    )
