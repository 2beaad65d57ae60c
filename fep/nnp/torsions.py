"""Ligand torsions refitted to ANI-2x: a bespoke force field, used in every λ window at no per-step cost.

For each rotatable bond of a ligand:

1. **ML scan.** The driving dihedral i-j-k-l is set to 24 angles (15° apart) on one ETKDG conformer (seeded, so
   the scan is a property of the molecule, not of the pose) and every scan point is relaxed with ANI-2x, the
   dihedral held by a stiff harmonic restraint; all points are relaxed together in one batch (L-BFGS). Each
   point is then restarted from its neighbours' relaxed geometries (rotated onto its angle), keeping the lowest
   ANI energy (a one-sweep torsion drive, which removes most hysteresis).
2. **Fit.** Every force-field torsion term about the bond j-k is switched off and the residual
   ``E_ANI(φ) - E_MM,0(φ)`` is fitted by ``c + Σ_n a_n cos(n φ)``, n = 1..4, with weights that fade out points
   far above the minimum and a small ridge penalty. Only cosines: the terms keep the mirror symmetry of an
   achiral molecule (phases 0 or 180°).
   The residual is taken at MM-relaxed geometries (same restraint, from the ANI-2x points), so the terms make
   MM's own relaxed profile, which is what sampling sees, follow ANI-2x's. The reported RMSE compares the
   MM-relaxed profile with the fitted terms against the ANI-2x profile (and the same with the force field's
   own torsions, for reference).

Bonds are fitted one at a time (the other bonds keep their force-field torsions). The terms are stored on the
:class:`~ligand_prep.models.PreparedLigand` (``torsions``) and applied by
:func:`ligand_prep.parameters.apply_bespoke_torsions` wherever the ligand is parametrized, so both end states, the
hybrid and the vacuum reference of an edge agree (``fep check`` stays exact). Results are cached on disk by a
hash of the molecule (atoms, bonds, charges in order) and the fit settings: ``$MLFEP_CACHE_DIR/torsions``.

Compared with refitting torsions to a QM scan (OpenFF BespokeFit, Schrödinger FFBuilder), an ANI-2x scan of a
drug-sized ligand costs seconds to a minute on one CPU core.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fep.nnp.geometry import dihedral, minimum_disagreements, start_conformer
from ligand_prep.models import BespokeTorsions, PreparedLigand, TorsionTerm
from mlfep_core import atomic_write_text
from mlfep_core.constants import HARTREE_TO_KJ_MOL, KJ_PER_KCAL

__all__ = [
    "METHOD",
    "TorsionScan",
    "fit_bespoke_torsions",
    "rotatable_torsions",
    "torsion_cache_dir",
]

log = logging.getLogger(__name__)

#: Version tag of the scan + fit; part of the cache key, so changing the method invalidates old entries.
METHOD = "ani2x-torsions/1"
STEP_DEG = 15.0
PERIODICITIES = (1, 2, 3, 4)
RESTRAINT_K = 4000.0  # kJ/mol/rad², holds the dihedral within ~0.2° of its target
WEIGHT_SCALE_KJ = 25.0  # points this far above the ANI minimum get weight 1/e
RIDGE_KJ = 0.05  # ridge penalty (kJ/mol) on each Fourier coefficient
PROFILE_CUTOFF_KCAL = 10.0  # RMSE over scan points up to this far above the ANI minimum
ANI_GTOL = 0.05  # kJ/mol/Å, largest gradient component at convergence (per point)
ANI_MAXITER = 400


def torsion_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder fitted torsions are cached in (``$MLFEP_CACHE_DIR/torsions``, default ``~/.cache/mlfep``)."""
    from ligand_prep.charges import cache_root

    return Path(cache_dir) if cache_dir is not None else cache_root() / "torsions"


def rotatable_torsions(mol) -> list[tuple[int, int, int, int]]:
    """One driving dihedral (i, j, k, l) per rotatable bond j-k of an RDKit molecule with explicit H.

    Rotatable: a single, acyclic bond whose atoms both have another heavy neighbour, or which ends in a
    hydroxyl/thiol (O-H, S-H). Methyl (and other XH3) rotors and bonds to triple-bonded atoms are left to the
    force field. i and l are the heaviest other neighbours (H only for O-H/S-H).
    """

    def others(atom, exclude: int, heavy: bool):
        nbrs = [n for n in atom.GetNeighbors() if n.GetIdx() != exclude and (not heavy or n.GetAtomicNum() > 1)]
        return sorted(nbrs, key=lambda n: (-n.GetAtomicNum(), n.GetIdx()))

    out = []
    for bond in mol.GetBonds():
        if bond.GetBondTypeAsDouble() != 1.0 or bond.IsInRing():
            continue
        a, b = bond.GetBeginAtom(), bond.GetEndAtom()
        if a.GetAtomicNum() == 1 or b.GetAtomicNum() == 1:
            continue
        if any(x.GetBondTypeAsDouble() == 3.0 for atom in (a, b) for x in atom.GetBonds()):
            continue
        ends = []
        for atom, other in ((a, b), (b, a)):
            heavy = others(atom, other.GetIdx(), heavy=True)
            if heavy:
                ends.append(heavy[0].GetIdx())
            elif atom.GetAtomicNum() in (8, 16) and atom.GetTotalNumHs(includeNeighbors=True) == 1:
                ends.append(others(atom, other.GetIdx(), heavy=False)[0].GetIdx())
            else:
                ends.append(None)
        if None in ends:
            continue
        out.append((ends[0], a.GetIdx(), b.GetIdx(), ends[1]))
    return out


def _rotate_to(x: np.ndarray, idx: Sequence[int], moving: np.ndarray, target: float) -> np.ndarray:
    """Rotate the ``moving`` atoms about the j-k axis so that the dihedral becomes ``target`` (rad)."""
    j, k = idx[1], idx[2]
    axis = x[k] - x[j]
    axis = axis / np.linalg.norm(axis)
    # rotating the k side by +θ about j->k changes the dihedral by -θ in this convention; measure and correct
    theta = dihedral(x, idx) - target
    c, s = math.cos(theta), math.sin(theta)
    rel = x[moving] - x[k]
    rot = rel * c + np.cross(axis, rel) * s + np.outer(rel @ axis, axis) * (1 - c)
    out = x.copy()
    out[moving] = rot + x[k]
    if abs(_wrap(dihedral(out, idx) - target)) > 1e-6:  # the other sense
        rot = rel * c - np.cross(axis, rel) * s + np.outer(rel @ axis, axis) * (1 - c)
        out[moving] = rot + x[k]
    return out


def _wrap(d):
    return (d + np.pi) % (2 * np.pi) - np.pi


def _moving_side(mol, j: int, k: int) -> np.ndarray:
    """Atoms on k's side of the bond j-k."""
    seen, stack = {k}, [k]
    while stack:
        a = stack.pop()
        for n in mol.GetAtomWithIdx(a).GetNeighbors():
            m = n.GetIdx()
            if m != j and m not in seen:
                seen.add(m)
                stack.append(m)
    return np.array(sorted(seen))


# ------------------------------------------------------------------------------------------------ energies
class _ANIRelaxer:
    """Batched relaxation of many frames, one restrained dihedral each, and ANI-2x energies of the results.

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

    def relax(self, frames_nm: np.ndarray, idx: Sequence[int], targets: np.ndarray) -> np.ndarray:
        """Minimise E + restraint for every frame (independent problems solved as one), nm in and out."""
        import torch
        from scipy.optimize import minimize

        from gpu_kernels._torch import torch_threads

        n_frames, n_atoms, _ = frames_nm.shape
        species = torch.tensor(self.batch.species).expand(n_frames, -1)
        phi0 = torch.as_tensor(targets, dtype=torch.float32)
        i, j, k, l_ = (int(a) for a in idx)

        def fun(flat: np.ndarray):
            x = torch.tensor(flat.reshape(n_frames, n_atoms, 3), dtype=torch.float32, requires_grad=True)
            e = self.member((species, x)).energies * HARTREE_TO_KJ_MOL  # x in Å
            b0, b1, b2 = x[:, i] - x[:, j], x[:, k] - x[:, j], x[:, l_] - x[:, k]
            b1n = b1 / b1.norm(dim=1, keepdim=True)
            v = b0 - (b0 * b1n).sum(1, keepdim=True) * b1n
            w = b2 - (b2 * b1n).sum(1, keepdim=True) * b1n
            phi = torch.atan2((torch.cross(b1n, v, dim=1) * w).sum(1), (v * w).sum(1))
            d = torch.remainder(phi - phi0 + math.pi, 2 * math.pi) - math.pi
            total = (e + 0.5 * RESTRAINT_K * d**2).sum()
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


class _MMProfile:
    """The ligand's vacuum MM energy about one bond: force-field torsions about it off, trial terms on top.

    Force groups: 0 the rest of the ligand's force field, 1 the trial torsion terms on the driving dihedral
    (``set_terms``), 2 the restraint holding the driving dihedral (never part of reported energies).
    ``keep_base``: leave the force field's own torsions about the bond on (the reference profile).
    """

    def __init__(self, prepared: PreparedLigand, idx: tuple[int, int, int, int], keep_base: bool = False) -> None:
        import openmm
        import openmm.unit as u

        from ligand_prep.parameters import ligand_system

        system, _, _ = ligand_system(prepared.model_copy(update={"torsions": None}))
        bond = frozenset(idx[1:3])
        self.base_terms: list[tuple] = []
        for force in system.getForces():
            force.setForceGroup(0)
            if isinstance(force, openmm.PeriodicTorsionForce):
                for t in range(force.getNumTorsions()):
                    *atoms, per, phase, k = force.getTorsionParameters(t)
                    if frozenset(atoms[1:3]) == bond:
                        self.base_terms.append(
                            (
                                tuple(atoms),
                                int(per),
                                phase.value_in_unit(u.radian),
                                k.value_in_unit(u.kilojoule_per_mole),
                            )
                        )
                        if not keep_base:
                            force.setTorsionParameters(t, *atoms, per, phase, 0.0)
        self.idx = tuple(int(a) for a in idx)
        self.trial = openmm.PeriodicTorsionForce()
        self.trial.setForceGroup(1)
        for _ in PERIODICITIES:
            self.trial.addTorsion(*self.idx, 1, 0.0, 0.0)
        system.addForce(self.trial)
        self.restraint = openmm.CustomTorsionForce("0.5*kr*min(dt, 2*pi-dt)^2; dt=abs(theta-t0); pi=3.141592653589793")
        self.restraint.addGlobalParameter("kr", RESTRAINT_K)
        self.restraint.addPerTorsionParameter("t0")
        self.restraint.addTorsion(*self.idx, [0.0])
        self.restraint.setForceGroup(2)
        system.addForce(self.restraint)
        platform = openmm.Platform.getPlatformByName("Reference")
        self.context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)

    def set_terms(self, terms: Sequence[tuple]) -> None:
        """Put ``terms`` ``(atoms, n, phase_rad, k)`` in the trial slots (the rest switched off)."""
        for t in range(self.trial.getNumTorsions()):
            if t < len(terms):
                atoms, per, phase, k = terms[t]
                self.trial.setTorsionParameters(t, *atoms, int(per), float(phase), float(k))
            else:
                self.trial.setTorsionParameters(t, *self.idx, 1, 0.0, 0.0)
        self.trial.updateParametersInContext(self.context)

    def energies(self, frames_nm: np.ndarray, groups: Sequence[int] = (0, 1)) -> np.ndarray:
        """kJ/mol of every frame (without the restraint)."""
        mask = sum(1 << g for g in groups)
        out = np.empty(len(frames_nm))
        for f, x in enumerate(frames_nm):
            self.context.setPositions(x)
            out[f] = self.context.getState(getEnergy=True, groups=mask).getPotentialEnergy()._value
        return out

    def relax(self, frames_nm: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """MM minimisation of every frame with the current trial terms and the dihedral held at its target."""
        import openmm

        out = np.empty_like(frames_nm)
        for f, (x, t0) in enumerate(zip(frames_nm, targets, strict=True)):
            self.restraint.setTorsionParameters(0, *self.idx, [float(t0)])
            self.restraint.updateParametersInContext(self.context)
            self.context.setPositions(x)
            openmm.LocalEnergyMinimizer.minimize(self.context, 1e-3, 2000)
            out[f] = self.context.getState(getPositions=True).getPositions(asNumpy=True)._value
        return out


# ------------------------------------------------------------------------------------------------ fitting
def _weights(e_ml: np.ndarray) -> np.ndarray:
    rel = e_ml - e_ml.min()
    return np.exp(-np.maximum(rel - 5.0, 0.0) / WEIGHT_SCALE_KJ)


def _fit_fourier(phi: np.ndarray, residual: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted ridge least squares of ``residual ≈ c + Σ a_n cos(nφ)``; returns (a_1..a_N) in kJ/mol."""
    design = np.column_stack([np.ones_like(phi), *[np.cos(n * phi) for n in PERIODICITIES]])
    sw = np.sqrt(weights)
    a = design * sw[:, None]
    b = residual * sw
    penalty = np.diag([0.0, *[RIDGE_KJ] * len(PERIODICITIES)])
    coef = np.linalg.solve(a.T @ a + penalty, a.T @ b)
    return coef[1:]


def _terms(idx, coeffs: np.ndarray) -> list[tuple]:
    """OpenMM torsion tuples ``(atoms, n, phase_rad, k)`` for the Fourier coefficients."""
    out = []
    for n, a in zip(PERIODICITIES, coeffs, strict=True):
        if abs(a) < 1e-4:
            continue
        out.append((tuple(idx), n, 0.0 if a >= 0 else math.pi, float(abs(a))))
    return out


def _profile_rmse(e_mm: np.ndarray, e_ml: np.ndarray) -> float:
    """RMSE (kcal/mol) of two profiles over the points within ``PROFILE_CUTOFF_KCAL`` of the ML minimum,
    after the best constant offset."""
    keep = (e_ml - e_ml.min()) <= PROFILE_CUTOFF_KCAL * KJ_PER_KCAL
    diff = e_mm[keep] - e_ml[keep]
    return float(np.sqrt(np.mean((diff - diff.mean()) ** 2)) / KJ_PER_KCAL)


@dataclass
class TorsionScan:
    """One bond's ML scan and MM fit (energies in kJ/mol, angles in radians)."""

    idx: tuple[int, int, int, int]
    phi: np.ndarray  # (P,) achieved dihedral of each ML-relaxed point
    e_ml: np.ndarray  # (P,) ANI-2x energies of the ML-relaxed points
    frames_ml: np.ndarray  # (P, n, 3) nm
    terms: list[tuple]  # fitted OpenMM torsion tuples
    e_mm_fitted: np.ndarray  # (P,) MM-relaxed energies with the fitted terms
    e_mm_base: np.ndarray  # (P,) MM-relaxed energies with the force field's own torsions
    rmse_kcal_mol: float
    rmse_base_kcal_mol: float


def scan_bond(
    prepared: PreparedLigand, idx: tuple[int, int, int, int], relaxer: _ANIRelaxer, start_nm: np.ndarray
) -> TorsionScan:
    """ANI-2x relaxed scan of one dihedral, the Fourier fit and its self-consistent MM refinement."""
    mol = prepared.ligand.to_rdkit()
    moving = _moving_side(mol, idx[1], idx[2])
    targets = np.radians(np.arange(-180.0 + STEP_DEG, 180.0 + 1e-9, STEP_DEG))
    frames = np.stack([_rotate_to(start_nm, idx, moving, t) for t in targets])
    frames = relaxer.relax(frames, idx, targets)
    energies = relaxer.energies(frames)
    # one sweep each way: restart each point from its relaxed neighbour, rotated onto its angle; keep the lower
    for shift in (1, -1):
        seeds = np.stack(
            [_rotate_to(frames[(p - shift) % len(targets)], idx, moving, t) for p, t in enumerate(targets)]
        )
        trial = relaxer.relax(seeds, idx, targets)
        e_trial = relaxer.energies(trial)
        better = e_trial < energies - 1e-3
        frames[better], energies[better] = trial[better], e_trial[better]
    phi = np.array([dihedral(x, idx) for x in frames])

    mm = _MMProfile(prepared, idx)
    # the fitted terms act on the driving dihedral only, so at a held φ they are constant and the MM-relaxed
    # geometry does not depend on them: one fit on the MM-relaxed geometries is already self-consistent
    mm.set_terms([])
    geometries = mm.relax(frames, phi)
    e0 = mm.energies(geometries, groups=(0,))
    phi_mm = np.array([dihedral(x, idx) for x in geometries])
    terms = _terms(idx, _fit_fourier(phi_mm, energies - e0, _weights(energies)))
    mm.set_terms(terms)
    e_fit = mm.energies(mm.relax(geometries, phi))
    base = _MMProfile(prepared, idx, keep_base=True)
    e_base = base.energies(base.relax(frames, phi))
    return TorsionScan(
        idx=(int(idx[0]), int(idx[1]), int(idx[2]), int(idx[3])),
        phi=phi,
        e_ml=energies,
        frames_ml=frames,
        terms=terms,
        e_mm_fitted=e_fit,
        e_mm_base=e_base,
        rmse_kcal_mol=_profile_rmse(e_fit, energies),
        rmse_base_kcal_mol=_profile_rmse(e_base, energies),
    )


def torsion_key(prepared: PreparedLigand) -> str:
    """Hash of the molecule (atoms, formal charges, bonds in order), its charges (1e-4 e) and the fit settings."""
    mol = prepared.ligand.to_rdkit()
    parts = [METHOD, f"{STEP_DEG}", ",".join(map(str, PERIODICITIES)), prepared.forcefield]
    parts += [f"{a.GetAtomicNum()},{a.GetFormalCharge()}" for a in mol.GetAtoms()]
    parts += [f"{b.GetBeginAtomIdx()}-{b.GetEndAtomIdx()}:{b.GetBondTypeAsDouble()}" for b in mol.GetBonds()]
    parts += [f"{q:.4f}" for q in prepared.partial_charges]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def fit_bespoke_torsions(
    prepared: PreparedLigand,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = 1,
    progress: Callable[[str], None] | None = None,
    scans: list[TorsionScan] | None = None,
) -> PreparedLigand:
    """``prepared`` with its rotatable torsions refitted to ANI-2x (cached); unchanged when it has none.

    Ligands ANI-2x cannot describe (elements beyond H C N O F S Cl, net charge) are returned unchanged with a
    warning: their torsions stay the force field's. ``scans``, when given, receives the per-bond scans (only
    when they were computed, not read from the cache).
    """
    from fep.nnp.correction import nnp_support

    ok, reason = nnp_support(prepared)
    if not ok:
        log.warning("%s: torsions not refitted (%s)", prepared.name, reason)
        return prepared.model_copy(update={"torsions": None})
    key = torsion_key(prepared)
    path = torsion_cache_dir(cache_dir) / f"{key}.json"
    if path.exists():
        try:
            cached = BespokeTorsions.model_validate_json(path.read_text())
            if cached.key == key:
                return prepared.model_copy(update={"torsions": cached})
        except ValueError:
            log.warning("ignoring unreadable torsion cache entry %s", path)
    mol = prepared.ligand.to_rdkit()
    dihedrals = rotatable_torsions(mol)
    start = time.perf_counter()
    terms: list[TorsionTerm] = []
    rmse, rmse_base = {}, {}
    if dihedrals:
        relaxer = _ANIRelaxer([a.GetAtomicNum() for a in mol.GetAtoms()], threads=threads)
        conf = start_conformer(prepared)
        for idx in dihedrals:
            if progress:
                progress(f"torsion scan {prepared.name} {idx[1]}-{idx[2]}")
            scan = scan_bond(prepared, idx, relaxer, conf)
            if scans is not None:
                scans.append(scan)
            label = f"{idx[1]}-{idx[2]}"
            rmse[label] = round(scan.rmse_kcal_mol, 4)
            rmse_base[label] = round(scan.rmse_base_kcal_mol, 4)
            terms += [
                TorsionTerm(atoms=atoms, periodicity=n, phase_deg=math.degrees(phase), k_kj_mol=k)
                for atoms, n, phase, k in scan.terms
            ]
            log.info(
                "%s bond %s: ANI-2x profile RMSE %.2f kcal/mol with fitted torsions, %.2f with %s",
                prepared.name,
                label,
                scan.rmse_kcal_mol,
                scan.rmse_base_kcal_mol,
                prepared.forcefield,
            )

    warnings = tuple(minimum_disagreements(prepared, threads=threads))
    for text in warnings:
        log.warning("%s: %s (refitted torsions do not change that)", prepared.name, text)
    record = BespokeTorsions(
        method=f"{METHOD} ({len(PERIODICITIES)} cosines, {int(360 / STEP_DEG)} x {STEP_DEG:g} deg ANI-2x scans)",
        key=key,
        bonds=tuple((int(d[1]), int(d[2])) for d in dihedrals),
        terms=tuple(terms),
        rmse_kcal_mol=rmse,
        rmse_base_kcal_mol=rmse_base,
        wall_s=round(time.perf_counter() - start, 2),
        warnings=warnings,
    )
    atomic_write_text(path, json.dumps(record.model_dump(mode="json"), indent=1))
    return prepared.model_copy(update={"torsions": record})
