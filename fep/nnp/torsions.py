"""Ligand torsions refitted to ANI-2x: a bespoke force field, used in every λ window at no per-step cost.

1. **ANI-2x conformers.** ``CONFORMERS`` seeded ETKDG conformers, each relaxed with ANI-2x, duplicates and
   mirror images merged (:func:`fep.nnp.conformers.ani_conformers`); the lowest is the scans' start.
2. **ML scans.** For each rotatable bond, the driving dihedral i-j-k-l of the ANI-2x minimum is set to 24
   angles (15° apart) and every point is relaxed with ANI-2x, the dihedral held by a stiff harmonic restraint;
   all points are relaxed in one batch, each its own L-BFGS problem (:meth:`fep.nnp.conformers.ANIRelaxer.relax`:
   a converged point leaves the batch). Each point is then restarted from its neighbours'
   relaxed geometries (rotated onto its angle), keeping the lowest ANI energy (a one-sweep torsion drive, which
   removes most hysteresis).
3. **One fit of every bond together.** Every force-field torsion term about each scanned bond is switched off
   and the residual ``E_ANI - E_MM,0`` over all scan points and all conformers is fitted by
   ``c + Σ_bonds Σ_n a_bn cos(n φ_b)``, n = 1..4, with weights that fade out points far above the minimum and
   a small ridge penalty. Only cosines: the terms keep the mirror symmetry of an achiral molecule (phases 0 or
   180°). The residual is taken at MM-relaxed geometries with **every** driving dihedral held at its ANI-2x
   value: MM is then compared in the same rotamer of every other rotor (a scan of one bond in which MM let a
   neighbouring rotor flip compared two conformers, and a fit bond by bond could then put a chain's gauche
   below its anti), and because the fitted terms act on held coordinates only, one linear fit is
   self-consistent. The conformers make the fit answer for the relative energies of whole conformers, every
   rotor at once, which is what sampling feels. The reported RMSE per bond compares the MM-relaxed scan with
   the fitted terms against ANI-2x's (and the same with the force field's own torsions, for reference);
   ``benchmarks/torsion_fits.py`` checks conformer energies out of sample (another seed).

The terms are stored on the :class:`~ligand_prep.models.PreparedLigand` (``torsions``) and applied by
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

from fep.nnp.conformers import ANI_GTOL, RESTRAINT_K, ANIRelaxer, ani_conformers
from fep.nnp.geometry import dihedral, minimum_disagreements
from ligand_prep.models import BespokeTorsions, PreparedLigand, TorsionTerm
from mlfep_core import atomic_write_text
from mlfep_core.constants import KJ_PER_KCAL

__all__ = [
    "METHOD",
    "TorsionScan",
    "fit_bespoke_torsions",
    "rotatable_torsions",
    "torsion_cache_dir",
]

log = logging.getLogger(__name__)

#: Version tag of the scan + fit; part of the cache key, so changing the method invalidates old entries.
METHOD = "ani2x-torsions/2"
STEP_DEG = 15.0
PERIODICITIES = (1, 2, 3, 4)
WEIGHT_SCALE_KJ = 25.0  # points this far above the ANI minimum get weight 1/e
RIDGE_KJ = 0.05  # ridge penalty (kJ/mol) on each Fourier coefficient
PROFILE_CUTOFF_KCAL = 10.0  # RMSE over scan points up to this far above the ANI minimum
CONFORMERS = 12  # seeded ETKDG starts of the ANI-2x conformers fitted with the scans (0: scans only)


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
def _base_system(prepared: PreparedLigand):
    """The ligand's vacuum system with the force field's own torsions (no refitted ones)."""
    from ligand_prep.parameters import ligand_system

    system, _, _ = ligand_system(prepared.model_copy(update={"torsions": None}))
    return system


class _MMProfile:
    """The ligand's vacuum MM energy with every scanned bond's driving dihedral held: force-field torsions about
    those bonds off, trial terms on the driving dihedrals.

    Force groups: 0 the rest of the ligand's force field, 1 the trial torsion terms (``set_terms``), 2 the
    restraints holding the driving dihedrals (never part of reported energies). ``keep_base``: leave the force
    field's own torsions about the bonds on (the reference profile). Holding every driving dihedral, not only the
    scanned one, keeps MM in the rotamer ANI-2x relaxed to, so a residual never mixes two conformers.
    """

    def __init__(
        self,
        prepared: PreparedLigand,
        dihedrals: Sequence[tuple[int, int, int, int]],
        keep_base: bool = False,
        base_system=None,
    ) -> None:
        import copy

        import openmm

        # parametrizing the ligand takes seconds: one copy of its force-field system serves every variant
        system = copy.deepcopy(base_system if base_system is not None else _base_system(prepared))
        bonds = {frozenset(d[1:3]) for d in dihedrals}
        for force in system.getForces():
            force.setForceGroup(0)
            if isinstance(force, openmm.PeriodicTorsionForce) and not keep_base:
                for t in range(force.getNumTorsions()):
                    *atoms, per, phase, _ = force.getTorsionParameters(t)
                    if frozenset(atoms[1:3]) in bonds:
                        force.setTorsionParameters(t, *atoms, per, phase, 0.0)
        self.dihedrals = [tuple(int(a) for a in d) for d in dihedrals]
        self.trial = openmm.PeriodicTorsionForce()
        self.trial.setForceGroup(1)
        for d in self.dihedrals:
            for _ in PERIODICITIES:
                self.trial.addTorsion(*d, 1, 0.0, 0.0)
        system.addForce(self.trial)
        self.restraint = openmm.CustomTorsionForce("0.5*kr*min(dt, 2*pi-dt)^2; dt=abs(theta-t0); pi=3.141592653589793")
        self.restraint.addGlobalParameter("kr", RESTRAINT_K)
        self.restraint.addPerTorsionParameter("t0")
        for d in self.dihedrals:
            self.restraint.addTorsion(*d, [0.0])
        self.restraint.setForceGroup(2)
        system.addForce(self.restraint)
        platform = openmm.Platform.getPlatformByName("Reference")
        self.context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)

    def set_terms(self, terms: Sequence[tuple]) -> None:
        """Put ``terms`` ``(atoms, n, phase_rad, k)`` in the trial slots of their dihedral (the rest off)."""
        per = len(PERIODICITIES)
        used = dict.fromkeys(range(len(self.dihedrals)), 0)
        values = {t: (self.dihedrals[t // per], 1, 0.0, 0.0) for t in range(self.trial.getNumTorsions())}
        for atoms, n, phase, k in terms:
            d = self.dihedrals.index(tuple(int(a) for a in atoms))
            values[d * per + used[d]] = (self.dihedrals[d], int(n), float(phase), float(k))
            used[d] += 1
        for t, (atoms, n, phase, k) in values.items():
            self.trial.setTorsionParameters(t, *atoms, n, phase, k)
        self.trial.updateParametersInContext(self.context)

    def energies(self, frames_nm: np.ndarray, groups: Sequence[int] = (0, 1)) -> np.ndarray:
        """kJ/mol of every frame (without the restraints)."""
        mask = sum(1 << g for g in groups)
        out = np.empty(len(frames_nm))
        for f, x in enumerate(frames_nm):
            self.context.setPositions(x)
            out[f] = self.context.getState(getEnergy=True, groups=mask).getPotentialEnergy()._value
        return out

    def relax(self, frames_nm: np.ndarray) -> np.ndarray:
        """MM minimisation of every frame with the current trial terms, each driving dihedral held where it is in
        that frame."""
        import openmm

        out = np.empty_like(frames_nm)
        for f, x in enumerate(frames_nm):
            for t, d in enumerate(self.dihedrals):
                self.restraint.setTorsionParameters(t, *d, [dihedral(x, d)])
            self.restraint.updateParametersInContext(self.context)
            self.context.setPositions(x)
            openmm.LocalEnergyMinimizer.minimize(self.context, 1e-3, 2000)
            out[f] = self.context.getState(getPositions=True).getPositions(asNumpy=True)._value
        return out


# ------------------------------------------------------------------------------------------------ fitting
def _weights(e_ml: np.ndarray) -> np.ndarray:
    rel = e_ml - e_ml.min()
    return np.exp(-np.maximum(rel - 5.0, 0.0) / WEIGHT_SCALE_KJ)


def _fit_fourier(phis: np.ndarray, residual: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted ridge least squares of ``residual ≈ c + Σ_b Σ_n a_bn cos(n φ_b)`` over every point; ``phis`` is
    (P, D), one column per driving dihedral. Returns the (D, N) coefficients in kJ/mol."""
    columns = [np.cos(n * phis[:, b]) for b in range(phis.shape[1]) for n in PERIODICITIES]
    design = np.column_stack([np.ones(len(phis)), *columns])
    sw = np.sqrt(weights)
    a = design * sw[:, None]
    penalty = np.diag([0.0, *[RIDGE_KJ] * len(columns)])
    coef = np.linalg.solve(a.T @ a + penalty, a.T @ (residual * sw))
    return coef[1:].reshape(phis.shape[1], len(PERIODICITIES))


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
    prepared: PreparedLigand, idx: tuple[int, int, int, int], relaxer: ANIRelaxer, start_nm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """ANI-2x relaxed scan of one dihedral from ``start_nm``: the relaxed frames (P, n, 3) nm and their energies."""
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
    return frames, energies


def fit_scans(
    prepared: PreparedLigand,
    dihedrals: Sequence[tuple[int, int, int, int]],
    scans: Sequence[tuple[np.ndarray, np.ndarray]],
    extra: tuple[np.ndarray, np.ndarray] | None = None,
    base_system=None,
) -> list[TorsionScan]:
    """Fit every driving dihedral's Fourier terms at once to the ANI-2x energies of all scans (one per dihedral)
    and of ``extra`` points (e.g. the ANI-2x conformers), with the MM geometries relaxed with every driving
    dihedral held at its ANI-2x value: the fitted terms then act on held coordinates only, so one linear fit is
    self-consistent. All energies are of one molecule, so one constant offset serves every point."""
    if base_system is None:
        base_system = _base_system(prepared)
    frames = np.concatenate([f for f, _ in scans] + ([extra[0]] if extra is not None else []))
    e_ml = np.concatenate([e for _, e in scans] + ([extra[1]] if extra is not None else []))
    mm = _MMProfile(prepared, dihedrals, base_system=base_system)
    mm.set_terms([])
    geometries = mm.relax(frames)
    e0 = mm.energies(geometries, groups=(0,))
    phis = np.array([[dihedral(x, d) for d in dihedrals] for x in geometries])
    coeffs = _fit_fourier(phis, e_ml - e0, _weights(e_ml))
    terms = [_terms(d, c) for d, c in zip(dihedrals, coeffs, strict=True)]
    mm.set_terms([t for per_bond in terms for t in per_bond])
    e_fit = mm.energies(geometries)  # the trial terms act on held dihedrals: the relaxed geometries stand
    base = _MMProfile(prepared, dihedrals, keep_base=True, base_system=base_system)
    e_base = base.energies(base.relax(frames))
    out, start = [], 0
    for d, (f, e), t in zip(dihedrals, scans, terms, strict=True):
        part = slice(start, start + len(e))
        start += len(e)
        out.append(
            TorsionScan(
                idx=(int(d[0]), int(d[1]), int(d[2]), int(d[3])),
                phi=np.array([dihedral(x, d) for x in f]),
                e_ml=e,
                frames_ml=f,
                terms=t,
                e_mm_fitted=e_fit[part],
                e_mm_base=e_base[part],
                rmse_kcal_mol=_profile_rmse(e_fit[part], e),
                rmse_base_kcal_mol=_profile_rmse(e_base[part], e),
            )
        )
    return out


def torsion_key(prepared: PreparedLigand) -> str:
    """Hash of the molecule (atoms, formal charges, bonds in order), its charges (1e-4 e) and the fit settings."""
    mol = prepared.ligand.to_rdkit()
    parts = [METHOD, f"{STEP_DEG}", ",".join(map(str, PERIODICITIES)), f"{CONFORMERS}", prepared.forcefield]
    parts += [f"relax=lbfgs-per-frame,gtol={ANI_GTOL}"]
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
    n_conformers = 0
    if dihedrals:
        relaxer = ANIRelaxer([a.GetAtomicNum() for a in mol.GetAtoms()], threads=threads)
        if progress:
            progress(f"ANI-2x conformers of {prepared.name}")
        conformers = ani_conformers(prepared, n=CONFORMERS, relaxer=relaxer)
        n_conformers = len(conformers.energies)
        raw = []
        for idx in dihedrals:
            if progress:
                progress(f"torsion scan {prepared.name} {idx[1]}-{idx[2]}")
            # from the ANI-2x global minimum, so each scan sees the other rotors where ANI-2x puts them
            raw.append(scan_bond(prepared, idx, relaxer, conformers.frames_nm[0]))
        fitted = fit_scans(
            prepared,
            dihedrals,
            raw,
            extra=(conformers.frames_nm, conformers.energies) if CONFORMERS else None,
        )
        for scan in fitted:
            if scans is not None:
                scans.append(scan)
            label = f"{scan.idx[1]}-{scan.idx[2]}"
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
        method=f"{METHOD} ({len(PERIODICITIES)} cosines, {int(360 / STEP_DEG)} x {STEP_DEG:g} deg ANI-2x scans from the "
        f"ANI-2x minimum and {n_conformers} ANI-2x conformers, fitted together)",
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
