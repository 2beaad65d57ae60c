"""A leg's content key: what its numbers depend on, stored with the leg (``leg_key.json``) when it is first run.

The components: the two ligands as molecules with their poses, the atom mapping, the protein file's content
(complex legs), cofactors, the force fields (small molecule, protein, water, fitted torsions), the ligand charges,
the NNP setting, every other protocol field, and the versions of the packages that decide the numbers. Before any
leg is run, resumed or extended, :func:`check_leg_keys` compares each stored key with the one the run would use now
and refuses, naming the leg and what changed. ``--allow-changed FIELD`` accepts a change of the components in
:data:`ALLOWABLE` (the accepted change is written into the key, so later resumes do not ask again); a change of the
molecules, mapping, force field, charges, NNP or protocol means other numbers, and needs a new run directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from fep.execution.rundir import RunSpec, file_digest, flat
from ligand_prep.models import AtomMapping, Network, PreparedLigand
from mlfep_core import FrozenModel, InputError, atomic_write_text
from mlfep_core.constants import LEGS_FOR_MODE
from mlfep_core.names import inside

__all__ = ["ALLOWABLE", "LegKey", "check_leg_keys", "key_changes", "leg_key"]

#: Components whose change ``--allow-changed`` may accept: the run goes on, the legs sampled before keep their numbers.
ALLOWABLE = ("versions", "protein", "cofactors")
#: Versions that decide the numbers of every leg; torch and torchani only when an ML potential is used.
_ALWAYS = ("mlfep", "mlfep-source", "openmm", "rdkit", "acellera-openff-toolkit", "pymbar")
_ML = ("torchani", "torch")
#: Protocol sections with an ``enabled`` switch, part of the key only when enabled.
_OPTIONAL_SECTIONS = ("rest2", "lambda_placement")
#: Protocol fields that are components of their own (not repeated under ``protocol``).
_OWN_COMPONENT = (
    "charge_method",
    "ligand_torsions",
    "system.small_molecule_forcefield",
    "system.protein_forcefield",
    "system.water_model",
    "system.extra_forcefield_files",
)


class LegKey(FrozenModel):
    """The content key of one leg (see the module docstring)."""

    key: str = Field(description="SHA-256 over every component below but ``accepted``.")
    leg: str = Field(description="'<A>~<B> repeat <r> <leg>'.")
    ligands: str = Field(description="SHA-256 of both ligands' SMILES and mol blocks (molecule and pose).")
    mapping: str = Field(description="SHA-256 of the atom mapping.")
    protein: str | None = Field(None, description="SHA-256 of the protein file (complex legs), else None.")
    cofactors: tuple[str, ...] = Field((), description="SHA-256 of each cofactor file (complex legs).")
    forcefield: str = Field(description="Small-molecule, protein and water force fields, fitted torsions.")
    charges: str = Field(description="Charge method and SHA-256 of both ligands' partial charges.")
    nnp: str = Field(description="The NNP setting: 'off', or the correction's settings.")
    protocol: dict[str, Any] = Field(description="Every other protocol field, flattened ('sampler.timestep': ...).")
    versions: dict[str, str] = Field(description="Versions of the packages that decide the numbers.")
    accepted: tuple[str, ...] = Field((), description="Changes accepted with --allow-changed (when, what).")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def leg_key(
    spec: RunSpec,
    prep_a: PreparedLigand,
    prep_b: PreparedLigand,
    mapping: AtomMapping,
    leg: str,
    repeat: int,
    versions: Mapping[str, str],
) -> LegKey:
    """The key of one leg as this run would make it now."""
    protocol = spec.protocol
    system = protocol.system
    ligands = _sha(json.dumps([(p.ligand.smiles, p.ligand.molblock) for p in (prep_a, prep_b)]))
    charges = [[round(q, 4) for q in p.partial_charges] for p in (prep_a, prep_b)]
    torsions = [p.torsions.key if p.torsions is not None else None for p in (prep_a, prep_b)]
    forcefield = "; ".join(
        [
            system.small_molecule_forcefield,
            *system.protein_forcefield,
            system.water_model,
            *system.extra_forcefield_files,
            f"torsions {protocol.ligand_torsions}" + (f" {_sha(json.dumps(torsions))[:16]}" if any(torsions) else ""),
        ]
    )
    # an option section that is off changes no number: left out, so keys written before it existed still match
    off = {name for name in _OPTIONAL_SECTIONS if not getattr(protocol, name).enabled}
    settings = flat(protocol.model_dump(mode="json", exclude={"nnp", *off}))
    uses_ml = spec.nnp or protocol.ligand_torsions == "ani2x"
    fields: dict[str, Any] = {
        "leg": f"{mapping.key} repeat {repeat} {leg}",
        "ligands": ligands,
        "mapping": _sha(json.dumps(sorted(mapping.mapping.items()) if isinstance(mapping.mapping, dict) else [])),
        "protein": file_digest(spec.protein) if leg == "complex" else None,
        "cofactors": tuple(file_digest(c) or "missing" for c in spec.cofactors) if leg == "complex" else (),
        "forcefield": forcefield,
        "charges": f"{protocol.charge_method} {_sha(json.dumps(charges))[:16]}",
        "nnp": json.dumps(protocol.nnp.model_dump(mode="json"), sort_keys=True) if spec.nnp else "off",
        "protocol": {k: v for k, v in settings.items() if k not in _OWN_COMPONENT},
        "versions": {k: v for k, v in versions.items() if k in _ALWAYS or (uses_ml and k in _ML)},
    }
    return LegKey(key=_sha(json.dumps(fields, sort_keys=True)), **fields)


def key_changes(old: LegKey, new: LegKey) -> list[tuple[str, str]]:
    """What differs: (component, 'what: old -> new') pairs, in component order."""
    out: list[tuple[str, str]] = []
    if old.ligands != new.ligands:
        out.append(("ligands", "ligands: other molecules or poses"))
    if old.mapping != new.mapping:
        out.append(("mapping", "mapping: other mapped atoms"))
    if old.protein != new.protein:
        out.append(("protein", "protein: other file content"))
    if old.cofactors != new.cofactors:
        out.append(("cofactors", "cofactors: other files"))
    for name in ("forcefield", "charges", "nnp"):
        if getattr(old, name) != getattr(new, name):
            out.append((name, f"{name}: {getattr(old, name)} -> {getattr(new, name)}"))
    for field in sorted(set(old.protocol) | set(new.protocol)):
        if old.protocol.get(field) != new.protocol.get(field):
            out.append(("protocol", f"protocol.{field}: {old.protocol.get(field)} -> {new.protocol.get(field)}"))
    moved = [
        f"{name} {old.versions.get(name, '-')} -> {new.versions.get(name, '-')}"
        for name in sorted(set(old.versions) | set(new.versions))
        if old.versions.get(name) != new.versions.get(name)
    ]
    if moved:
        out.append(("versions", "versions: " + ", ".join(moved)))
    return out


def check_leg_keys(
    run_dir: str | os.PathLike[str],
    network: Network,
    spec: RunSpec,
    prepared: Mapping[str, PreparedLigand],
    versions: Mapping[str, str],
    *,
    allow_changed: Collection[str] = (),
    write: bool = True,
) -> None:
    """Compare every leg's stored key with the one it would get now; write the keys of legs that have none
    (``write``: also the accepted changes; off for a check that only looks).

    Runs in the driver before any leg is submitted (run, resume and extend alike). A leg whose key differs only in
    ``allow_changed`` components gets the new key, with the accepted change recorded in it.

    Raises
    ------
    InputError
        A leg's key differs in a component not allowed (the first legs and every change named, and what to do).
    """
    run_dir = Path(run_dir)
    refused: list[tuple[str, list[tuple[str, str]]]] = []
    updates: list[tuple[Path, LegKey]] = []
    for mapping in network.edges:
        prep_a, prep_b = prepared[mapping.ligand_a], prepared[mapping.ligand_b]
        for repeat in range(spec.protocol.repeats):
            for leg in LEGS_FOR_MODE[spec.mode]:
                folder = inside(run_dir / "edges" / mapping.key / f"repeat_{repeat}" / leg, run_dir / "edges")
                path = folder / "leg_key.json"
                new = leg_key(spec, prep_a, prep_b, mapping, leg, repeat, versions)
                if not path.exists():
                    updates.append((path, new))
                    continue
                old = LegKey.from_json_file(path)
                changes = key_changes(old, new)  # the components, not the stored hash, are compared
                if not changes:
                    continue
                blocked = [c for c in changes if c[0] not in allow_changed]
                if blocked:
                    refused.append((new.leg, blocked))
                else:
                    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
                    accepted = (*old.accepted, *(f"{stamp} {text}" for _, text in changes))
                    updates.append((path, new.model_copy(update={"accepted": accepted})))
    if refused:
        leg, changes = refused[0]
        fields = sorted({c[0] for _, cs in refused for c in cs})
        others = f" (and {len(refused) - 1} more leg(s))" if len(refused) > 1 else ""
        can_allow = [f for f in fields if f in ALLOWABLE]
        if can_allow and len(can_allow) == len(fields):
            hint = f"resume with --allow-changed {' --allow-changed '.join(can_allow)} to go on, or use a new -o folder"
        else:
            hint = "restore the settings it was run with, or use a new -o folder"
        shown = "; ".join(text for _, text in changes[:4]) + ("; ..." if len(changes) > 4 else "")
        raise InputError(f"{run_dir}: leg {leg}{others} was run with other settings ({shown}): {hint}")
    for path, key in updates if write else ():
        atomic_write_text(path, key.model_dump_json(indent=1))
