"""Cofactors and other bound molecules of the complex leg (``--cofactor FILE.sdf``, repeatable).

A cofactor is parametrised like a ligand (the small-molecule force field of the run, partial charges by the
run's charge method, cached by content), kept exactly where the file puts it (the frame of the protein and of
the docked ligands), and belongs to the environment of every λ state: the same atoms, parameters and positions
in both end states, so ``fep check`` compares it like the protein. Its formal charge counts toward the leg's net
charge (the counter-ions neutralise it). Checks, before any expensive work:

- each record has 3D coordinates and explicit hydrogens (a cofactor's protonation state is a modelling choice:
  it is never guessed);
- no heavy atom of a cofactor sits closer than :data:`MIN_HEAVY_DISTANCE_NM` to a heavy atom of a ligand, of the
  protein or of another cofactor (a file in another frame, or a cofactor where the ligand binds).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ligand_prep.models import Ligand, PreparedLigand
from mlfep_core import InputError, LigandValidationError

__all__ = [
    "COFACTOR_RESIDUE_NAME",
    "MIN_HEAVY_DISTANCE_NM",
    "check_cofactor_placement",
    "posed",
    "prepare_cofactors",
    "read_cofactors",
]

log = logging.getLogger(__name__)

COFACTOR_RESIDUE_NAME = "COF"
#: Heavy atoms of a cofactor and of any other molecule closer than this overlap (covalent bonds are ~0.1-0.2 nm,
#: the closest non-bonded heavy-atom contacts ~0.26 nm).
MIN_HEAVY_DISTANCE_NM = 0.2


def read_cofactors(paths: Sequence[str | os.PathLike[str]]) -> list[Ligand]:
    """Read every record of every cofactor SDF, as posed, with the checks of ligand input.

    Raises
    ------
    InputError
        Missing file or not an SDF; :class:`~mlfep_core.LigandValidationError` (naming the file and record) for a
        record without 3D coordinates or without its hydrogens.
    """
    from ligand_prep.io import read_ligands

    out: list[Ligand] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise InputError(f"cofactor {path}: file not found")
        if path.suffix.lower() not in (".sdf", ".sd", ".mol"):
            raise InputError(
                f"cofactor {path}: give the cofactor as an SDF with 3D coordinates and hydrogens, in the frame of "
                "the protein (e.g. extracted from the same structure)"
            )
        try:
            records = read_ligands(path, align=False)
        except LigandValidationError as err:
            text = str(err).removeprefix("ligand ")
            if "hydrogen(s) missing" in text:
                text = text.split(";")[0] + (
                    "; a cofactor needs every hydrogen of its intended protonation state (e.g. ADP with its phosphates "
                    "as at pH 7), added by your structure-preparation tool with the coordinates kept"
                )
            raise LigandValidationError(f"cofactor {text}") from err
        for rec in records:
            out.append(rec.model_copy(update={"name": f"{path.stem}" if len(records) == 1 else rec.name}))
    names = [c.name for c in out]
    for name in names:
        if names.count(name) > 1:
            raise InputError(f"cofactor {name}: given twice (two files or records with this name): give it once")
    return out


def prepare_cofactors(
    paths: Sequence[str | os.PathLike[str]], charge_method: str, forcefield: str
) -> list[PreparedLigand]:
    """Read the cofactor files and assign their partial charges (cached like a ligand's)."""
    from ligand_prep.charges import assign_charges

    out = []
    for cofactor in read_cofactors(paths):
        prep = assign_charges(cofactor, method=charge_method, forcefield=forcefield)
        log.info("cofactor %s: %d atoms, formal charge %+d", cofactor.name, cofactor.n_atoms, cofactor.formal_charge)
        out.append(prep)
    return out


def _heavy(molecule: Ligand, positions: np.ndarray) -> np.ndarray:
    from rdkit import Chem

    mol = Chem.MolFromMolBlock(molecule.molblock, removeHs=False, sanitize=False)
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    return positions[heavy]


def posed(molecules: Sequence[Ligand]) -> list[tuple[Ligand, np.ndarray]]:
    """Each molecule with its pose from the mol block (nm)."""
    from rdkit import Chem

    out = []
    for molecule in molecules:
        mol = Chem.MolFromMolBlock(molecule.molblock, removeHs=False, sanitize=False)
        out.append((molecule, mol.GetConformer().GetPositions() / 10.0))
    return out


def check_cofactor_placement(
    cofactors: Sequence[tuple[Ligand, np.ndarray]],
    ligands: Sequence[tuple[Ligand, np.ndarray]],
    protein: tuple[np.ndarray, str] | None = None,
) -> None:
    """Refuse a cofactor overlapping a ligand, the protein's heavy atoms or another cofactor.

    Parameters
    ----------
    cofactors, ligands : sequence of (Ligand, positions (N, 3) nm)
    protein : (heavy-atom positions (M, 3) nm, file name), optional

    Raises
    ------
    InputError
        Names the cofactor, what it overlaps and the distance.
    """
    from scipy.spatial import cKDTree

    others: list[tuple[str, np.ndarray]] = [(f"ligand {p.name}", _heavy(p, x)) for p, x in ligands]
    if protein is not None:
        others.append((f"the protein ({protein[1]})", protein[0]))
    for k, (prep, xyz) in enumerate(cofactors):
        mine = _heavy(prep, xyz)
        tree = cKDTree(mine)
        for label, other in [*others, *((f"cofactor {p.name}", _heavy(p, x)) for p, x in cofactors[:k])]:
            if len(other) == 0:
                continue
            distance, _ = tree.query(other)
            closest = float(np.min(distance))
            if closest < MIN_HEAVY_DISTANCE_NM:
                raise InputError(
                    f"cofactor {prep.name} overlaps {label}: heavy atoms {closest * 10:.2f} Å apart; the cofactor file "
                    "must be in the frame of the protein and the docked ligands (taken from the same structure) and "
                    "must not sit where the ligand binds"
                )
