"""Checks every ligand must pass before any expensive step, each failing with one actionable line.

The readers in :mod:`ligand_prep.io` call these on RDKit molecules, record by record, and stop at the first
problem with a :class:`~mlfep_core.LigandValidationError` that names the ligand (and the file record or
CSV row it came from). :func:`validate_ligands` re-checks already-built :class:`~ligand_prep.models.Ligand`
objects; :func:`series_warnings` flags things that are allowed but need care (net-charge changes).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence

from ligand_prep.models import Ligand
from mlfep_core import LigandValidationError

__all__ = [
    "ALLOWED_ELEMENTS",
    "check_3d",
    "check_hydrogens",
    "check_molecule",
    "check_stereo_defined",
    "check_unique_names",
    "series_warnings",
    "validate_ligands",
]

log = logging.getLogger(__name__)

#: Elements OpenFF Sage covers (and AM1-BCC handles); anything else is refused.
ALLOWED_ELEMENTS = ("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I")

_METALS_HINT = "metal complexes and boron compounds cannot be simulated with it: remove or replace them"


def check_molecule(mol, label: str) -> None:
    """Elements, radicals and fragments of one parsed molecule.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        The sanitized molecule (hydrogens explicit or implicit).
    label : str
        How to name it in messages, e.g. ``"ligand lig_3 (series.csv row 4)"``.

    Raises
    ------
    LigandValidationError
        An element outside :data:`ALLOWED_ELEMENTS`, an atom with unpaired electrons, or several fragments.
    """
    from rdkit import Chem

    if mol.GetNumAtoms() == 0:
        raise LigandValidationError(f"{label}: the molecule has no atoms")
    fragments = Chem.GetMolFrags(mol, asMols=False, sanitizeFrags=False)
    if len(fragments) > 1:
        smiles = [
            Chem.MolFragmentToSmiles(mol, atomsToUse=list(f), canonical=True, allHsExplicit=False) for f in fragments
        ]
        largest = max(range(len(fragments)), key=lambda k: len(fragments[k]))
        ions = [smi for k, smi in enumerate(smiles) if k != largest and len(fragments[k]) == 1]
        if ions and len(ions) == len(smiles) - 1:
            raise LigandValidationError(
                f"{label}: a salt: the counter-ion(s) {', '.join(ions)} are not part of the ligand; give the "
                f"molecule alone ({smiles[largest]}, in the protonation state you want simulated)"
            )
    bad = sorted({a.GetSymbol() for a in mol.GetAtoms() if a.GetSymbol() not in ALLOWED_ELEMENTS})
    if bad:
        raise LigandValidationError(
            f"{label}: unsupported element {', '.join(bad)} (the OpenFF Sage force field covers only "
            f"{' '.join(ALLOWED_ELEMENTS)}; {_METALS_HINT})"
        )
    if len(fragments) > 1:
        raise LigandValidationError(
            f"{label}: {len(fragments)} disconnected fragments ({', '.join(smiles)[:160]}); remove salts/counter-ions "
            "and solvent so that one molecule remains"
        )
    radicals = [a for a in mol.GetAtoms() if a.GetNumRadicalElectrons() > 0]
    if radicals:
        atom = radicals[0]
        raise LigandValidationError(
            f"{label}: atom {atom.GetIdx() + 1} ({atom.GetSymbol()}) has {atom.GetNumRadicalElectrons()} unpaired "
            "electron(s); radicals are not supported: add the missing hydrogens or fix the bond orders/charges"
        )


def check_3d(mol, label: str) -> None:
    """Refuse a record without a 3D conformer (no conformer, or every z coordinate zero)."""
    hint = (
        "it needs 3D coordinates (a docked or crystal pose), or give its SMILES in a CSV with --reference REF.sdf "
        "to generate a pose"
    )
    if mol.GetNumConformers() == 0:
        raise LigandValidationError(f"{label}: no coordinates; {hint}")
    conf = mol.GetConformer()
    if mol.GetNumAtoms() > 1 and all(abs(conf.GetAtomPosition(i).z) < 1e-4 for i in range(mol.GetNumAtoms())):
        raise LigandValidationError(f"{label}: 2D coordinates only (all z = 0); {hint}")


def check_hydrogens(mol, label: str, protonate: bool = False):
    """Require explicit hydrogens; with ``protonate`` add them (with coordinates) to a neutral molecule.

    Returns
    -------
    rdkit.Chem.Mol
        ``mol`` itself, or a copy with hydrogens added.
    """
    from rdkit import Chem

    missing = sum(a.GetNumImplicitHs() for a in mol.GetAtoms())
    if missing == 0:
        return mol
    if not protonate:
        raise LigandValidationError(
            f"{label}: {missing} hydrogen(s) missing (implicit H on heavy atoms); add explicit hydrogens in the right "
            "protonation state, or pass --protonate to add them as drawn"
        )
    charge = Chem.GetFormalCharge(mol)
    charged_atoms = [a for a in mol.GetAtoms() if a.GetFormalCharge() != 0]
    if charge != 0 or charged_atoms:
        raise LigandValidationError(
            f"{label}: {missing} hydrogen(s) missing on a charged molecule (net charge {charge:+d}); --protonate only "
            "completes neutral molecules: add the hydrogens for the intended protonation state yourself"
        )
    log.info("%s: adding %d hydrogens (--protonate)", label, missing)
    return Chem.AddHs(mol, addCoords=True)


def check_stereo_defined(mol, label: str) -> None:
    """Refuse a molecule from SMILES with unassigned stereocentres or stereo double bonds."""
    from rdkit import Chem

    unspecified = []
    for info in Chem.FindPotentialStereo(mol):
        if info.specified != Chem.StereoSpecified.Unspecified:
            continue
        if info.type == Chem.StereoType.Atom_Tetrahedral:
            atom = mol.GetAtomWithIdx(info.centeredOn)
            unspecified.append(f"stereocentre at atom {info.centeredOn + 1} ({atom.GetSymbol()})")
        elif info.type == Chem.StereoType.Bond_Double:
            bond = mol.GetBondWithIdx(info.centeredOn)
            unspecified.append(f"double bond {bond.GetBeginAtomIdx() + 1}={bond.GetEndAtomIdx() + 1}")
        else:
            unspecified.append(f"{info.type} at {info.centeredOn + 1}")
    if unspecified:
        raise LigandValidationError(
            f"{label}: undefined stereochemistry ({'; '.join(unspecified)}); specify it in the SMILES "
            "(@/@@ for centres, / and \\ for double bonds), one ligand per stereoisomer"
        )


def check_unique_names(named: Iterable[tuple[str, str]]) -> None:
    """Refuse duplicate names; ``named`` yields ``(name, where)`` pairs (e.g. ``("lig_1", "row 3")``)."""
    seen: dict[str, str] = {}
    for name, where in named:
        if name in seen:
            raise LigandValidationError(
                f"duplicate ligand name '{name}' in {seen[name]} and {where}; every ligand needs a unique name"
            )
        seen[name] = where


def validate_ligands(ligands: Sequence[Ligand]) -> list[Ligand]:
    """Re-check built :class:`Ligand` objects: unique names, elements, fragments, radicals, 3D pose, explicit H.

    Returns
    -------
    list of Ligand
        The same ligands, for chaining.
    """
    from rdkit import Chem

    if not ligands:
        raise LigandValidationError("no ligands given")
    check_unique_names((lig.name, lig.source or f"ligand {lig.name}") for lig in ligands)
    for lig in ligands:
        label = f"ligand {lig.name}" + (f" ({lig.source})" if lig.source else "")
        mol = Chem.MolFromMolBlock(lig.molblock, removeHs=False)
        if mol is None:
            raise LigandValidationError(f"{label}: stored mol block does not parse; re-read the ligand from its file")
        check_molecule(mol, label)
        check_3d(mol, label)
        check_hydrogens(mol, label, protonate=False)
    return list(ligands)


def series_warnings(ligands: Sequence[Ligand]) -> list[str]:
    """Warnings about a ligand series that are allowed but need care.

    Currently: different net formal charges within the series (edges between them change the charge).

    Returns
    -------
    list of str
        One line per warning; empty when nothing needs attention.
    """
    groups: dict[int, list[str]] = defaultdict(list)
    for lig in ligands:
        groups[lig.formal_charge].append(lig.name)
    if len(groups) <= 1:
        return []

    def describe(charge: int, names: list[str]) -> str:
        shown = ", ".join(names[:4]) + (f", … ({len(names)} ligands)" if len(names) > 4 else "")
        return f"charge {charge:+d}: {shown}"

    parts = "; ".join(describe(c, groups[c]) for c in sorted(groups))
    return [
        f"net formal charge differs within the series ({parts}); charge-changing edges run with the "
        "charge-changing protocol (an alchemical co-ion, more windows and time; changes of ±1 only)"
    ]
