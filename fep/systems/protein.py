"""The protein of the complex leg: load a prepared PDB, check it against the force field, repair it.

Checks are cheap and happen before ligand parametrization and solvation, so a bad protein fails in about a
second with a message that names the chain, residue name and number and says what to do:

- a residue no template matches (a non-standard residue, a standard residue with missing or extra atoms, a
  cofactor left in the PDB as HETATM) -> :class:`~mlfep_core.ParametrizationError`;
- a residue named as an amber protonation variant (HID, HIE, HIP, CYM, CYX, ASH, GLH, LYN) whose hydrogens are
  those of another variant -> :class:`~mlfep_core.ParametrizationError` (the name is the user's statement; the
  hydrogens present decide when the residue carries the plain name, e.g. HIS);
- a chain break (peptide C–N distance > 0.2 nm: missing residues; OpenMM would silently bond across it)
  -> :class:`~mlfep_core.ParametrizationError`.

What is supported beyond the standard residues of amber14 (ff14SB): phosphorylated residues (TPO, SEP, PTR and
their monoanionic forms T1P, S1P, Y1P; phosaa14SB, Raguette et al. JCTC 2024): a PDB holding one is
parametrised with openmmforcefields' ff14SB + phosaa14SB instead of OpenMM's amber14-all, the same protein
parameters (energies identical on the shared targets, tested); metal and other monatomic ions by residue name
(ZN, MG, CA, MN, FE2, FE, NA, K, CL, ...: the Li/Merz 12-6 set of amber14/tip3p, a nonbonded model of the metal
site); crystal waters (kept by default).

:func:`fix_protein` repairs what can be repaired safely with pdbfixer (missing heavy atoms, short internal loops,
missing hydrogens at pH 7).
"""

from __future__ import annotations

import io
import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from mlfep_core import FrozenModel, InputError, ParametrizationError, atomic_write_text

__all__ = [
    "PHOSPHO_RESIDUES",
    "ProteinRepair",
    "ProteinStructure",
    "check_protein",
    "fix_protein",
    "load_protein",
    "protein_forcefield_files",
    "read_pdb",
]

log = logging.getLogger(__name__)

AMINO_ACIDS = frozenset(
    "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL "
    "HID HIE HIP HSD HSE HSP CYX CYM ASH GLH LYN".split()
)
#: Protonation variants by their amber names; a residue carrying one of these names must match that template.
NAMED_VARIANTS = frozenset("HID HIE HIP CYM CYX ASH GLH LYN".split())
#: Phosphorylated residues of phosaa14SB (dianionic TPO/SEP/PTR, monoanionic T1P/S1P/Y1P, phospho-histidines).
PHOSPHO_RESIDUES = frozenset("TPO SEP PTR T1P S1P Y1P H1D H2D H1E H2E".split())
PHOSPHO_FORCEFIELD = ("amber/ff14SB.xml", "amber/phosaa14SB.xml")
DEFAULT_PROTEIN_FORCEFIELD = ("amber14-all.xml",)
ION_NAMES = frozenset("ZN MG CA MN FE FE2 CO NI CU CD NA K CL LI RB CS BR IOD F SR BA HG PB".split())
STANDARD_RESIDUES = AMINO_ACIDS | PHOSPHO_RESIDUES | ION_NAMES | frozenset("ACE NME NH2 HOH WAT".split())
WATER_NAMES = frozenset({"HOH", "WAT", "H2O", "TIP3", "SOL"})
FIX_HINT = "repair with `--fix-protein` (pdbfixer: adds missing atoms/loops where safe)"
TEMPLATE_HINT = "supply a template with `--extra-forcefield FILE.xml`"
COFACTOR_HINT = (
    "if it is a cofactor or another bound molecule, remove it from the PDB and give it as `--cofactor FILE.sdf` "
    "(3D, all hydrogens, same frame); if it must stay part of the protein"
)
MAX_PEPTIDE_BOND_NM = 0.2


@dataclass(eq=False)
class ProteinStructure:
    """A checked protein, ready to be solvated.

    Attributes
    ----------
    topology : openmm.app.Topology
    positions : ndarray, shape (N, 3)
        nm.
    net_charge : int
        Sum of the force field's partial charges, rounded.
    path : Path
        The PDB it was read from.
    n_crystal_waters : int
        Crystal waters kept (all of them unless ``keep_crystal_waters`` is off).
    n_waters_dropped : int
        Crystal waters removed.
    """

    topology: Any
    positions: np.ndarray
    net_charge: int
    path: Path
    n_crystal_waters: int = 0
    n_waters_dropped: int = 0


class ProteinRepair(FrozenModel):
    """What :func:`fix_protein` changed."""

    input_pdb: str = Field(description="The PDB that was repaired.")
    output_pdb: str = Field(description="Where the repaired PDB was written.")
    added_residues: tuple[str, ...] = Field((), description="Residues built into internal gaps ('A 105 GLY').")
    skipped_gaps: tuple[str, ...] = Field((), description="Missing residues not built (termini, long loops).")
    added_atoms: tuple[str, ...] = Field((), description="Heavy atoms added ('A LYS 1000 NZ').")
    added_hydrogens: int = Field(0, description="Number of hydrogens added.")
    n_atoms: int = Field(0, description="Atoms in the repaired PDB.")


def _label(residue) -> str:
    return f"chain {residue.chain.id} residue {residue.name} {residue.id}{residue.insertionCode.strip()}"


def read_pdb(pdb_path: str | os.PathLike[str]):
    """``openmm.app.PDBFile`` of ``pdb_path``; a missing or unreadable file gives an :class:`InputError`."""
    import openmm.app as app

    path = Path(pdb_path)
    if not path.is_file():
        raise InputError(f"protein {path}: file not found")
    head = path.read_bytes()[:4096]
    if b"\0" in head:
        raise InputError(f"protein {path}: a binary file, not a PDB text file")
    text = head.decode("latin-1").lstrip()
    if path.suffix.lower() in (".cif", ".mmcif") or text.startswith("data_") or "_atom_site." in text:
        raise InputError(
            f"protein {path}: mmCIF is not supported; convert it to PDB first (e.g. `gemmi convert {path.name} "
            f"{path.stem}.pdb`, or pdbfixer), keeping the hydrogens"
        )
    _warn_alternate_locations(path)
    if _residue_names(path) & PHOSPHO_RESIDUES:
        _define_phospho_bonds()
    try:
        return app.PDBFile(str(path))
    except Exception as err:
        raise InputError(f"protein {path}: not a readable PDB file ({err})") from err


def _define_phospho_bonds() -> None:
    """Teach OpenMM's PDB reader the bonds of the phosaa14SB residues (taken from their templates), so a TPO is
    bonded inside and to its neighbours like a standard residue (PDBFile bonds only the residues it knows)."""
    import io
    import xml.etree.ElementTree as ET

    import openmm.app as app

    if PHOSPHO_RESIDUES <= set(app.Topology._standardBonds):
        return
    from openmmforcefields.utils import get_ffxml_path

    root = ET.parse(Path(get_ffxml_path()) / PHOSPHO_FORCEFIELD[1]).getroot()
    out = ET.Element("Residues")
    for residue in root.iter("Residue"):
        name = residue.get("name", "")
        if name not in PHOSPHO_RESIDUES:
            continue
        entry = ET.SubElement(out, "Residue", name=name)
        ET.SubElement(entry, "Bond", {"from": "-C", "to": "N"})
        for bond in residue.iter("Bond"):
            ET.SubElement(entry, "Bond", {"from": bond.get("atomName1", ""), "to": bond.get("atomName2", "")})
    app.Topology.loadBondDefinitions(io.BytesIO(ET.tostring(out)))


def _warn_alternate_locations(path: Path) -> None:
    """Log the residues whose atoms have alternate locations: OpenMM keeps the first location of each atom."""
    residues = set()
    with open(path, errors="replace") as handle:
        for line in handle:
            if line.startswith(("ATOM", "HETATM")) and len(line) > 26 and line[16] not in (" ", "A"):
                residues.add(f"{line[21]}:{line[17:20].strip()}{line[22:27].strip()}")
    if residues:
        shown = ", ".join(sorted(residues)[:8]) + (f" and {len(residues) - 8} more" if len(residues) > 8 else "")
        log.warning(
            "protein %s: alternate locations of %d residue(s) (%s) are dropped; the first location is used",
            path,
            len(residues),
            shown,
        )


def _template_heavy_atoms(forcefield, residue) -> set[str] | None:
    """Heavy-atom names of the template named like ``residue`` (HIS -> HIE), or None if there is none."""
    templates = getattr(forcefield, "_templates", {})
    for name in (residue.name, {"HIS": "HIE"}.get(residue.name, ""), f"N{residue.name}", f"C{residue.name}"):
        template = templates.get(name)
        if template is not None:
            return {a.name for a in template.atoms if a.element is not None and a.element.symbol != "H"}
    return None


def _residue_names(path: Path) -> set[str]:
    """Residue names of the ATOM/HETATM records (a text scan, no parsing)."""
    names = set()
    with open(path, errors="replace") as handle:
        for line in handle:
            if line.startswith(("ATOM", "HETATM")) and len(line) > 20:
                names.add(line[17:20].strip())
    return names


def protein_forcefield_files(files: tuple[str, ...], pdb_path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The protein force-field files for ``pdb_path``: phosaa14SB with openmmforcefields' ff14SB (the parameters
    of amber14-all) when the PDB holds a phosphorylated residue and ``files`` are the default, else ``files``."""
    if tuple(files) != DEFAULT_PROTEIN_FORCEFIELD or not Path(pdb_path).is_file():
        return tuple(files)
    found = _residue_names(Path(pdb_path)) & PHOSPHO_RESIDUES
    if not found:
        return tuple(files)
    log.info("protein %s: %s present: ff14SB + phosaa14SB", pdb_path, ", ".join(sorted(found)))
    return PHOSPHO_FORCEFIELD


def _describe_unmatched(forcefield, residue, source: str) -> str:
    label = _label(residue)
    atoms = list(residue.atoms())
    if len(atoms) == 1 and residue.name not in STANDARD_RESIDUES:
        symbol = atoms[0].element.symbol if atoms[0].element is not None else "?"
        return (
            f"protein {source}: {label} ({symbol}) is an ion without parameters: name the residue as amber does (ZN, "
            f"MG, CA, MN, FE2 for Fe2+, FE for Fe3+, NA, K, CL, ...) or {TEMPLATE_HINT}"
        )
    if residue.name not in STANDARD_RESIDUES:
        names = {a.name for a in atoms}
        heavy = [a for a in atoms if a.element is not None and a.element.symbol != "H"]
        if not {"N", "CA", "C"} <= names and len(heavy) >= 4:  # not an amino acid: a bound molecule
            return (
                f"protein {source}: {label} has no force-field template; it looks like a cofactor or bound "
                f"molecule ({len(heavy)} heavy atoms, no backbone): {COFACTOR_HINT}, {TEMPLATE_HINT}"
            )
        return (
            f"protein {source}: {label} has no force-field template (non-standard residue): {TEMPLATE_HINT}, "
            "or replace it by its standard residue"
        )
    detail = "its atoms or bonds match no template"
    try:
        expected = _template_heavy_atoms(forcefield, residue)
        if expected is not None:
            present = {a.name for a in residue.atoms() if a.element is not None and a.element.symbol != "H"}
            missing, extra = sorted(expected - present - {"OXT"}), sorted(present - expected - {"OXT"})
            if missing:
                detail = f"missing heavy atoms: {', '.join(missing)}"
            elif extra:
                detail = f"unexpected atoms: {', '.join(extra)}"
            else:
                detail = "its hydrogens match no protonation state"
    except Exception:  # pragma: no cover - the detail is a courtesy only
        log.debug("could not compare %s with its template", label, exc_info=True)
    if residue.name in PHOSPHO_RESIDUES:
        return (
            f"protein {source}: {label} does not match its phosaa14SB template ({detail}): complete the residue in "
            "your structure-preparation tool (pdbfixer does not build phosphorylated residues)"
        )
    return f"protein {source}: {label} does not match its force-field template ({detail}): {FIX_HINT}"


def _check_chain_breaks(topology, positions: np.ndarray, source: str) -> None:
    for chain in topology.chains():
        residues = [r for r in chain.residues() if r.name in AMINO_ACIDS]
        for prev, nxt in itertools.pairwise(residues):
            if nxt.index != prev.index + 1:
                continue
            c = next((a.index for a in prev.atoms() if a.name == "C"), None)
            n = next((a.index for a in nxt.atoms() if a.name == "N"), None)
            if c is None or n is None:
                continue
            distance = float(np.linalg.norm(positions[c] - positions[n]))
            if distance > MAX_PEPTIDE_BOND_NM:
                raise ParametrizationError(
                    f"protein {source}: chain {chain.id} is broken between {prev.name} {prev.id} and {nxt.name} "
                    f"{nxt.id} (C–N {distance:.2f} nm: missing residues): {FIX_HINT}, or cap both ends (ACE/NME) "
                    "and start a new chain"
                )


def _check_named_variants(topology, forcefield, named: dict[tuple[str, str, str], str], source: str) -> None:
    """A residue named as a protonation variant must match that variant's template (not another one)."""
    wanted = {
        r: named[key]
        for r in topology.residues()
        if (key := (r.chain.id, r.id, r.insertionCode.strip())) in named and named[key] in NAMED_VARIANTS
    }
    if not wanted:
        return
    templates = forcefield.getMatchingTemplates(topology)
    for residue, template in zip(topology.residues(), templates, strict=True):
        name = wanted.get(residue)
        if name is None or template is None:
            continue
        got = template.name[1:] if template.name[:1] in ("N", "C") and len(template.name) == 4 else template.name
        if got != name:
            raise ParametrizationError(
                f"protein {source}: chain {residue.chain.id} residue {name} {residue.id} is named {name} but its "
                f"hydrogens are those of {got}: rename it {got}, or remove its side-chain hydrogens and "
                f"{FIX_HINT.replace('repair', 'add them')} (hydrogens follow the residue name)"
            )


def _named_residues(path: Path) -> dict[tuple[str, str, str], str]:
    """(chain, number, insertion code) -> residue name as written in the file (PDBFile renames HID to HIS)."""
    out: dict[tuple[str, str, str], str] = {}
    with open(path, errors="replace") as handle:
        for line in handle:
            if line.startswith(("ATOM", "HETATM")) and len(line) > 26:
                out.setdefault((line[21].strip(), line[22:26].strip(), line[26].strip()), line[17:20].strip())
    return out


def check_protein(topology, positions: np.ndarray, forcefield, source: str = "protein") -> int:
    """Check every residue against ``forcefield`` (cheap, before solvation) and return the net charge.

    Parameters
    ----------
    topology : openmm.app.Topology
    positions : ndarray, shape (N, 3)
        nm.
    forcefield : openmm.app.ForceField
    source : str
        Name used in messages (the PDB path).

    Returns
    -------
    int
        The protein's net charge (sum of partial charges, rounded).

    Raises
    ------
    ParametrizationError
        Names the first bad residue (chain, name, number) and says what to do.
    """
    import openmm
    import openmm.app as app
    import openmm.unit as u

    from fep.systems.forcefield import ion_templates
    from fep.systems.solvation import copy_topology

    # ions named like a template are matched by name at createSystem (FE/FE2 share the element); the template
    # checks run on the rest
    named_ions = ion_templates(topology, forcefield)
    rest = (
        copy_topology(topology, positions, skip_residues={r.index for r in named_ions})[0] if named_ions else topology
    )
    unmatched = forcefield.getUnmatchedResidues(rest)
    if unmatched:
        # a non-standard residue also unbonds its neighbours: report it first
        unmatched = sorted(unmatched, key=lambda r: (r.name in STANDARD_RESIDUES, r.index))
        message = _describe_unmatched(forcefield, unmatched[0], source)
        if len(unmatched) > 1:
            others = ", ".join(f"{r.chain.id}:{r.name}{r.id}" for r in unmatched[1:6])
            message += f" ({len(unmatched) - 1} more unmatched: {others}{', ...' if len(unmatched) > 6 else ''})"
        raise ParametrizationError(message)
    _check_chain_breaks(topology, positions, source)
    if Path(source).is_file():
        _check_named_variants(rest, forcefield, _named_residues(Path(source)), source)
    try:
        system = forcefield.createSystem(
            topology,
            nonbondedMethod=app.NoCutoff,
            constraints=None,
            rigidWater=False,
            residueTemplates=named_ions,
        )
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ParametrizationError(f"protein {source}: the force field cannot parametrize it ({first})") from err
    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    total = sum(
        nonbonded.getParticleParameters(i)[0].value_in_unit(u.elementary_charge)
        for i in range(system.getNumParticles())
    )
    if abs(total - round(total)) > 0.01:
        log.warning("protein %s: partial charges sum to %.4f, not an integer", source, total)
    return round(total)


def load_protein(pdb_path: str | os.PathLike[str], settings=None, forcefield=None) -> ProteinStructure:
    """Read a prepared protein PDB, drop crystal waters if asked, check it against the force field.

    Parameters
    ----------
    pdb_path : path
        PDB with hydrogens (HIS tautomers are taken from them); ACE/NME caps as HETATM and CONECT are fine.
    settings : SystemSettings, optional
        ``keep_crystal_waters``, ``protein_forcefield``, ``extra_forcefield_files``.
    forcefield : openmm.app.ForceField, optional
        Default: :func:`fep.systems.endstates.make_forcefield` of ``settings`` without ligands (with phosaa14SB
        when the PDB holds a phosphorylated residue, :func:`protein_forcefield_files`).
    """

    from fep.systems.forcefield import SystemSettings, make_forcefield
    from fep.systems.solvation import copy_topology, positions_nm

    settings = settings or SystemSettings()
    path = Path(pdb_path)
    pdb = read_pdb(path)
    if forcefield is None:
        files = protein_forcefield_files(settings.protein_forcefield, path)
        forcefield = make_forcefield(settings.model_copy(update={"protein_forcefield": files}))
    topology, positions = pdb.topology, positions_nm(pdb.positions)
    waters = [r for r in topology.residues() if r.name in WATER_NAMES]
    dropped = 0
    if waters and not settings.keep_crystal_waters:
        topology, positions, _ = copy_topology(topology, positions, skip_residues={r.index for r in waters})
        dropped = len(waters)
    if topology.getNumAtoms() == 0:
        raise InputError(f"protein {path}: no atoms left after removing waters")
    net_charge = check_protein(topology, positions, forcefield, source=str(path))
    log.info(
        "protein %s: %d atoms, net charge %+d, %d crystal waters dropped", path, len(positions), net_charge, dropped
    )
    return ProteinStructure(
        topology=topology,
        positions=positions,
        net_charge=net_charge,
        path=path,
        n_crystal_waters=len(waters) - dropped,
        n_waters_dropped=dropped,
    )


def fix_protein(
    pdb_in: str | os.PathLike[str],
    pdb_out: str | os.PathLike[str],
    ph: float = 7.0,
    max_loop: int = 10,
) -> ProteinRepair:
    """Repair a protein PDB with pdbfixer and write it atomically.

    Builds missing residues only for internal gaps of at most ``max_loop`` residues (termini and long loops are
    left alone: modelling them needs more than pdbfixer), adds missing heavy atoms, then missing hydrogens at
    ``ph``. Existing atoms, names and numbering are kept.

    Parameters
    ----------
    pdb_in, pdb_out : path
    ph : float
        pH for the added hydrogens (existing hydrogens, e.g. HIS tautomers, are kept).
    max_loop : int
        Longest internal gap (residues) that is built.

    Returns
    -------
    ProteinRepair
    """
    import openmm.app as app

    read_pdb(pdb_in)  # clear error for a missing/unreadable file
    from pdbfixer import PDBFixer

    fixer = PDBFixer(filename=str(pdb_in))
    n_h_before = sum(1 for a in fixer.topology.atoms() if a.element is not None and a.element.symbol == "H")
    fixer.findMissingResidues()
    chains = list(fixer.topology.chains())
    added_res, skipped = [], []
    for key in list(fixer.missingResidues):
        chain_index, position = key
        names = fixer.missingResidues[key]
        chain = chains[chain_index]
        n_res = len(list(chain.residues()))
        where = f"chain {chain.id} before residue position {position}: {len(names)} residues"
        if position == 0 or position >= n_res or len(names) > max_loop:
            skipped.append(where)
            del fixer.missingResidues[key]
        else:
            added_res.append(f"{chain.id} {'-'.join(names)} at {position}")
    fixer.findMissingAtoms()
    added_atoms = [
        f"{res.chain.id} {res.name} {res.id} {atom.name}" for res, atoms in fixer.missingAtoms.items() for atom in atoms
    ]
    added_atoms += [
        f"{res.chain.id} {res.name} {res.id} {name}" for res, names in fixer.missingTerminals.items() for name in names
    ]
    fixer.addMissingAtoms()
    # hydrogens: a residue named as a protonation variant (HID, CYM, ASH, ...) gets that variant's hydrogens (added
    # or removed); the others keep theirs and get the missing ones at ``ph``
    named = _named_residues(Path(pdb_in))
    variants = [
        name if (name := named.get((r.chain.id, r.id, r.insertionCode.strip()))) in NAMED_VARIANTS else None
        for r in fixer.topology.residues()
    ]
    modeller = app.Modeller(fixer.topology, fixer.positions)
    modeller.addHydrogens(pH=ph, variants=variants)
    fixer.topology, fixer.positions = modeller.topology, modeller.positions
    n_h_after = sum(1 for a in fixer.topology.atoms() if a.element is not None and a.element.symbol == "H")
    buffer = io.StringIO()
    app.PDBFile.writeFile(fixer.topology, fixer.positions, buffer, keepIds=True)
    atomic_write_text(pdb_out, buffer.getvalue())
    log.info("fixed %s -> %s: %d atoms added, %d residues built", pdb_in, pdb_out, len(added_atoms), len(added_res))
    return ProteinRepair(
        input_pdb=str(pdb_in),
        output_pdb=str(pdb_out),
        added_residues=tuple(added_res),
        skipped_gaps=tuple(skipped),
        added_atoms=tuple(added_atoms),
        added_hydrogens=n_h_after - n_h_before,
        n_atoms=fixer.topology.getNumAtoms(),
    )
