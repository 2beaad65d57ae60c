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
ANI_GTOL = 0.05  # kJ/mol/Å, largest gradient component at convergence (per frame)
ANI_MAXITER = 400  # iterations of the per-frame L-BFGS (one network call on the unconverged frames each)
ANI_MAXSTEP_A = 0.2  # Å, the largest move of any atom in one step (the trust radius it starts from)
ANI_UPHILL_KJ = 1e-3  # kJ/mol: a step that raises the energy by more is undone (float32 energies' noise is below)
ANI_H0_KJ_A2 = 2000.0  # kJ/mol/Å², the curvature of the first step (before any curvature pair)
LBFGS_MEMORY = 10


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
        self.n_calls = 0  # network calls
        self.n_frame_calls = 0  # frames through the network, the cost

    def energies(self, frames_nm: np.ndarray) -> np.ndarray:
        """ANI-2x ensemble energies, kJ/mol from the free atoms, shape (F,)."""
        return self.batch.energies(frames_nm)

    def _energy_grad(
        self, x_a: np.ndarray, phi0: np.ndarray | None, idx: Sequence[int] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Energy (F,) kJ/mol and gradient (F, n, 3) kJ/mol/Å on the first network in float32, with the restraint
        holding dihedral ``idx`` of each frame at ``phi0`` when given; positions in Å."""
        import torch

        n_frames = len(x_a)
        species = torch.tensor(self.batch.species).expand(n_frames, -1)
        x = torch.tensor(x_a, dtype=torch.float32, requires_grad=True)
        e = self.member((species, x)).energies * HARTREE_TO_KJ_MOL
        if phi0 is not None and idx is not None:
            i, j, k, l_ = (int(a) for a in idx)
            b0, b1, b2 = x[:, i] - x[:, j], x[:, k] - x[:, j], x[:, l_] - x[:, k]
            b1n = b1 / b1.norm(dim=1, keepdim=True)
            v = b0 - (b0 * b1n).sum(1, keepdim=True) * b1n
            w = b2 - (b2 * b1n).sum(1, keepdim=True) * b1n
            phi = torch.atan2((torch.cross(b1n, v, dim=1) * w).sum(1), (v * w).sum(1))
            d = torch.remainder(phi - torch.as_tensor(phi0, dtype=torch.float32) + math.pi, 2 * math.pi) - math.pi
            e = e + 0.5 * RESTRAINT_K * d**2
        (g,) = torch.autograd.grad(e.sum(), x)
        self.n_calls += 1
        self.n_frame_calls += n_frames
        return e.detach().numpy().astype(np.float64), g.numpy().astype(np.float64)

    def relax(
        self, frames_nm: np.ndarray, idx: Sequence[int] | None = None, targets: np.ndarray | None = None
    ) -> np.ndarray:
        """Minimise E (+ the restraint holding dihedral ``idx`` at ``targets``, when given) for every frame, nm in
        and out.

        Each frame is its own L-BFGS problem (memory ``LBFGS_MEMORY``, step scaled by the last curvature pair,
        every atom's move capped by a per-frame trust radius that halves on an uphill step, which is then undone);
        the network is called once per iteration on the frames not yet converged (largest gradient component
        below ``ANI_GTOL``), so an easy frame stops costing as soon as it is done instead of riding along with
        the slowest one, as it did when all frames were one stacked problem.
        """
        from gpu_kernels._torch import torch_threads

        held = idx is not None and targets is not None
        x = np.array(frames_nm, dtype=np.float64) * 10.0
        n_frames, n_atoms, _ = x.shape
        dim = 3 * n_atoms
        phi0_all = np.asarray(targets, dtype=np.float64) if held else None
        mem = LBFGS_MEMORY
        s_hist = np.zeros((n_frames, mem, dim))
        y_hist = np.zeros((n_frames, mem, dim))
        n_hist = np.zeros(n_frames, dtype=int)
        trust = np.full(n_frames, ANI_MAXSTEP_A)
        with torch_threads(self.threads):
            e, g = self._energy_grad(x, phi0_all, idx if held else None)
            g = g.reshape(n_frames, dim)
            active = np.flatnonzero(np.abs(g).max(axis=1) >= ANI_GTOL)
            for _ in range(ANI_MAXITER):
                if active.size == 0:
                    break
                step = np.empty((active.size, dim))
                for row, f in enumerate(active):
                    step[row] = -self._two_loop(g[f], s_hist[f, : n_hist[f]], y_hist[f, : n_hist[f]])
                # no atom moves further than the frame's trust radius
                longest = np.linalg.norm(step.reshape(active.size, n_atoms, 3), axis=2).max(axis=1)
                scale = np.minimum(1.0, trust[active] / np.maximum(longest, 1e-12))
                step *= scale[:, None]
                x_new = x[active] + step.reshape(active.size, n_atoms, 3)
                phi0 = phi0_all[active] if phi0_all is not None else None
                e_new, g_new = self._energy_grad(x_new, phi0, idx if held else None)
                g_new = g_new.reshape(active.size, dim)
                uphill = e_new > e[active] + ANI_UPHILL_KJ
                for row, f in enumerate(active):
                    if uphill[row]:
                        trust[f] *= 0.5
                        n_hist[f] = 0
                        continue
                    s, y = step[row], g_new[row] - g[f]
                    if s @ y > 1e-10:
                        if n_hist[f] == mem:
                            s_hist[f, :-1], y_hist[f, :-1] = s_hist[f, 1:].copy(), y_hist[f, 1:].copy()
                            n_hist[f] -= 1
                        s_hist[f, n_hist[f]], y_hist[f, n_hist[f]] = s, y
                        n_hist[f] += 1
                    x[f], e[f], g[f] = x_new[row], e_new[row], g_new[row]
                    trust[f] = min(ANI_MAXSTEP_A, 1.5 * trust[f])
                done = (np.abs(g[active]).max(axis=1) < ANI_GTOL) | (trust[active] < 1e-6)
                active = active[~done]
        return x / 10.0

    @staticmethod
    def _two_loop(g: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
        """L-BFGS two-loop recursion: H g from the curvature pairs (oldest first); H0 = γ I with γ = s·y / y·y of
        the newest pair (1/``ANI_H0_KJ_A2`` with none)."""
        q = g.copy()
        rho = 1.0 / np.einsum("ij,ij->i", s, y) if len(s) else np.empty(0)
        alpha = np.empty(len(s))
        for k in range(len(s) - 1, -1, -1):
            alpha[k] = rho[k] * (s[k] @ q)
            q -= alpha[k] * y[k]
        gamma = (s[-1] @ y[-1]) / (y[-1] @ y[-1]) if len(s) else 1.0 / ANI_H0_KJ_A2
        r = gamma * q
        for k in range(len(s)):
            beta = rho[k] * (y[k] @ r)
            r += s[k] * (alpha[k] - beta)
        return r


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
