"""Read ligand series (SDF, CSV of SMILES, .smi) into validated :class:`~ligand_prep.models.Ligand` objects,
and write them back as SDF.

Every record is parsed and validated first (unique names, elements, fragments, radicals, hydrogens, 3D,
stereo); only then are poses generated for SMILES input. The first problem raises one
:class:`~mlfep_core.LigandValidationError` naming the ligand and the record or row. CSV rows are counted
as a spreadsheet shows them: the header is row 1, the first ligand row 2.

SD properties written by :func:`write_sdf` (read back by :func:`read_ligands`):
``mlfep_smiles``, ``mlfep_formal_charge``, ``mlfep_source``, ``mlfep_core_rmsd_A`` (generated poses),
``mlfep_expt_dg_kcal_mol`` / ``mlfep_expt_dg_err_kcal_mol`` / ``mlfep_expt_source`` (experimental value).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ligand_prep.experimental import experimental_from_row
from ligand_prep.models import ExperimentalValue, Ligand
from ligand_prep.validate import (
    check_3d,
    check_hydrogens,
    check_molecule,
    check_stereo_defined,
    check_unique_names,
)
from mlfep_core import InputError, LigandValidationError, atomic_write_text
from mlfep_core.names import name_problem

__all__ = ["SDF_SUFFIXES", "SMILES_SUFFIXES", "read_ligands", "read_reference", "sdf_blocks", "write_sdf"]

log = logging.getLogger(__name__)

SDF_SUFFIXES = (".sdf", ".sd", ".mol")
SMILES_SUFFIXES = (".csv", ".smi", ".smiles")
_ACCEPTED = ".sdf/.sd (3D, explicit H), .csv (columns name, smiles) or .smi (SMILES name per line)"

ProgressCallback = Callable[[int, int, str], None]
#: How many bad records one error lists (the count of the others is given).
MAX_REPORTED = 5
#: A ligand with more heavy atoms than this gets a warning (a peptide or macrocycle, not a drug-like series).
LARGE_LIGAND_HEAVY_ATOMS = 70


@dataclass
class _Record:
    """One parsed, validated input record (internal)."""

    name: str
    source: str
    mol: Any  # rdkit.Chem.Mol
    has_pose: bool
    experimental: ExperimentalValue | None = None
    core_rmsd: float | None = None

    @property
    def label(self) -> str:
        return f"ligand {self.name} ({self.source})"


@contextmanager
def _quiet_rdkit():
    """Silence RDKit's own stderr messages (our errors say what went wrong in one line)."""
    from rdkit import rdBase

    blocker = rdBase.BlockLogs()
    try:
        yield
    finally:
        del blocker


def _sanitize_problem(mol) -> str:
    """Why an unsanitized molecule fails sanitization (one line), e.g. a valence error."""
    from rdkit import Chem

    try:
        Chem.SanitizeMol(mol)
    except Exception as err:  # RDKit raises several exception types with a useful message
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return "unknown RDKit error"


# ------------------------------------------------------------------------------------------ SMILES
def _parse_smiles(smiles: str, where: str):
    from rdkit import Chem

    with _quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles)
        if mol is not None:
            return mol
        raw = Chem.MolFromSmiles(smiles, sanitize=False)
        reason = "syntax error" if raw is None else _sanitize_problem(raw)
    raise LigandValidationError(f"{where}: SMILES '{smiles[:80]}' cannot be parsed ({reason}); fix the SMILES")


def _smiles_record(name: str, smiles: str, source: str, experimental: ExperimentalValue | None) -> _Record:
    from rdkit import Chem

    where = f"{source} ({name})"
    mol = _parse_smiles(smiles, where)
    if any(a.GetAtomicNum() == 1 for a in mol.GetAtoms()):
        mol = Chem.RemoveHs(mol)
    mol.SetProp("_Name", name)
    label = f"ligand {name} ({source})"
    check_molecule(mol, label)
    check_stereo_defined(mol, label)
    return _Record(name=name, source=source, mol=mol, has_pose=False, experimental=experimental)


def _read_csv(path: Path) -> list[_Record]:
    text = _read_text(path)
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise LigandValidationError(f"{path}: empty file (no ligands); give a header 'name,smiles' and one row each")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(lines, dialect=dialect)
    headers = {h.strip().lower(): h for h in (reader.fieldnames or []) if h}
    missing = [col for col in ("name", "smiles") if col not in headers]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(repr(m) for m in missing)} (found: {', '.join(headers) or 'none'}); "
            "a ligand CSV needs a header with 'name' and 'smiles'"
        )
    records, problems = [], []
    for row in reader:
        row_number = reader.line_num  # physical line: header = row 1, blank lines counted
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue
        source = f"{path.name} row {row_number}"
        name = (row.get(headers["name"]) or "").strip()
        smiles = (row.get(headers["smiles"]) or "").strip()
        try:
            if not name:
                raise LigandValidationError(f"{source}: empty name; give every ligand a unique name")
            if not smiles:
                raise LigandValidationError(f"{source} ({name}): empty SMILES; fill in the smiles column")
            experimental = experimental_from_row(
                {k: v for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}, f"{source} ({name})"
            )
            records.append(_smiles_record(name, smiles, source, experimental))
        except LigandValidationError as err:  # every bad row is reported at once, not one per attempt
            problems.append(str(err))
    _raise_problems(problems)
    return records


def _warn_about_sizes(records: list[_Record]) -> None:
    """Warn about ligands too large for small-molecule FEP, or far larger than the rest of the series."""
    import statistics

    sizes = {rec.name: rec.mol.GetNumHeavyAtoms() for rec in records}
    median = statistics.median(sizes.values()) if sizes else 0
    for rec in records:
        n = sizes[rec.name]
        if n > LARGE_LIGAND_HEAVY_ATOMS:
            log.warning(
                "%s: %d heavy atoms, large for a small-molecule FEP ligand (posing, charges and sampling will be "
                "slow, mappings to the others poor)",
                rec.label,
                n,
            )
        elif len(sizes) > 2 and n > 2 * median + 10:
            log.warning("%s: %d heavy atoms, far more than the series' median of %g", rec.label, n, median)


def _raise_problems(problems: list[str], limit: int = MAX_REPORTED) -> None:
    """One error listing every problem found (up to ``limit``), or nothing."""
    if not problems:
        return
    if len(problems) == 1:
        raise LigandValidationError(problems[0])
    shown = " | ".join(problems[:limit])
    more = f" | and {len(problems) - limit} more" if len(problems) > limit else ""
    raise LigandValidationError(f"{len(problems)} ligands are invalid: {shown}{more}")


def _read_smi(path: Path) -> list[_Record]:
    records, problems = [], []
    for line_number, line in enumerate(_read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if line_number == 1 and parts[0].lower() == "smiles":
            continue
        source = f"{path.name} line {line_number}"
        name = " ".join(parts[1:]) if len(parts) > 1 else f"{path.stem}_{line_number}"
        try:
            records.append(_smiles_record(name, parts[0], source, None))
        except LigandValidationError as err:
            problems.append(str(err))
    _raise_problems(problems)
    return records


# ------------------------------------------------------------------------------------------ SDF
def sdf_blocks(text: str) -> list[str]:
    r"""Split SDF text into record blocks, each ending with ``$$$$`` (a last record without one gets it).

    >>> [b.splitlines()[0] for b in sdf_blocks("a\n$$$$\nb\n")]
    ['a', 'b']
    """
    blocks, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line.startswith("$$$$"):
            blocks.append("\n".join(current) + "\n")
            current = []
    if any(line.strip() for line in current):
        blocks.append("\n".join(current) + "\n$$$$\n")
    return blocks


def _parse_sdf_block(block: str, where: str):
    from rdkit import Chem

    with _quiet_rdkit():
        supplier = Chem.SDMolSupplier()
        supplier.SetData(block, sanitize=True, removeHs=False)
        mol = supplier[0] if len(supplier) else None
        if mol is not None:
            return mol
        raw = Chem.MolFromMolBlock(block, sanitize=False, removeHs=False)
        reason = "not a valid mol block" if raw is None else _sanitize_problem(raw)
    raise LigandValidationError(f"{where}: record cannot be parsed ({reason}); fix or remove it")


def _sdf_records(path: Path, *, name_property: str | None, protonate: bool, limit: int | None = None) -> list[_Record]:
    from rdkit import Chem

    blocks = sdf_blocks(_read_text(path))
    if limit is not None:
        blocks = blocks[:limit]
    records, problems = [], []
    for number, block in enumerate(blocks, start=1):
        try:
            source = f"{path.name} record {number}"
            title = block.splitlines()[0].strip() if block.splitlines() else ""
            mol = _parse_sdf_block(block, f"{source}" + (f" ({title})" if title else ""))
            props = {k: str(v) for k, v in mol.GetPropsAsDict(includePrivate=False, includeComputed=False).items()}
            lower = {k.lower(): v for k, v in props.items()}
            if name_property is not None:
                name = props.get(name_property, lower.get(name_property.lower(), "")).strip()
                if not name:
                    raise LigandValidationError(
                        f"{source}: no SD property '{name_property}' to name the ligand; check --name-property"
                    )
            else:
                name = (mol.GetProp("_Name") if mol.HasProp("_Name") else "").strip() or lower.get("name", "").strip()
                if not name:
                    raise LigandValidationError(
                        f"{source}: no name (empty title line and no 'name' property); put the ligand name on the "
                        "record's first line"
                    )
            label = f"ligand {name} ({source})"
            check_molecule(mol, label)
            check_3d(mol, label)
            mol = check_hydrogens(mol, label, protonate=protonate)
            Chem.AssignStereochemistryFrom3D(mol)
            mol.SetProp("_Name", name)
            experimental = experimental_from_row(props, label)
            core_rmsd = None
            if lower.get("mlfep_core_rmsd_a"):
                try:
                    core_rmsd = float(lower["mlfep_core_rmsd_a"])
                except ValueError:
                    raise LigandValidationError(f"{label}: property mlfep_core_rmsd_A is not a number") from None
            records.append(
                _Record(
                    name=name, source=source, mol=mol, has_pose=True, experimental=experimental, core_rmsd=core_rmsd
                )
            )
        except LigandValidationError as err:  # every bad record is reported at once
            problems.append(str(err))
    _raise_problems(problems)
    return records


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, expected a ligand file ({_ACCEPTED})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file; expected {_ACCEPTED}") from None
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror})") from None


# ------------------------------------------------------------------------------------------ build
def _ligand_from_mol(mol, record: _Record, smiles: str | None = None) -> Ligand:
    from rdkit import Chem

    mol.SetProp("_Name", record.name)
    return Ligand(
        name=record.name,
        molblock=Chem.MolToMolBlock(mol),
        smiles=smiles or Chem.MolToSmiles(Chem.RemoveHs(mol)),
        formal_charge=Chem.GetFormalCharge(mol),
        experimental=record.experimental,
        source=record.source,
        core_rmsd_angstrom=record.core_rmsd,
    )


def read_reference(path, *, protonate: bool = False) -> Ligand:
    """The first record of an SDF as a validated 3D :class:`Ligand` (the pose other ligands are placed on).

    Raises
    ------
    InputError
        Not an SDF, missing or empty file, or the record fails validation (2D, missing H, ...).
    """
    path = Path(path)
    if path.suffix.lower() not in SDF_SUFFIXES:
        raise InputError(f"{path}: a reference ligand must be an SDF (.sdf/.sd/.mol) with a 3D pose")
    records = _sdf_records(path, name_property=None, protonate=protonate, limit=1)
    if not records:
        raise LigandValidationError(f"{path}: empty file (no reference ligand)")
    return _ligand_from_mol(records[0].mol, records[0])


def read_ligands(
    path,
    *,
    reference=None,
    protein=None,
    protonate: bool = False,
    n_conformers: int = 10,
    seed: int = 42,
    name_property: str | None = None,
    progress: ProgressCallback | None = None,
    align: bool = True,
) -> list[Ligand]:
    """Read, validate and (for SMILES) pose a ligand series.

    Parameters
    ----------
    path : path
        ``.sdf``/``.sd`` (3D records with explicit H, kept as posed), ``.csv`` (columns ``name``, ``smiles``,
        optional experimental columns, see :mod:`ligand_prep.experimental`) or ``.smi``.
    reference : path or Ligand, optional
        Reference pose (SDF, first record) for SMILES input. Without one, the first SMILES ligand is embedded
        freely and the others are placed on it (``align``) or each embedded freely (``align`` off: a hydration
        series, mapped on topology, needs no common frame, and mixed scaffolds have no common core).
    protein : path, optional
        Protein PDB, used to penalise clashing poses of SMILES input.
    protonate : bool
        Add missing hydrogens to neutral SDF records instead of refusing them.
    n_conformers, seed : int
        Pose generation: conformers tried per ligand and the random seed.
    name_property : str, optional
        SD property holding the ligand name (default: the title line, else a ``name`` property).
    progress : callable, optional
        Called as ``progress(done, total, name)`` after each generated pose.
    align : bool
        Place SMILES ligands on a common reference (see ``reference``).

    Returns
    -------
    list of Ligand
        In file order, with names, poses (explicit H, 3D), canonical SMILES, charges and experimental values.

    Raises
    ------
    InputError
        Unknown format or unreadable file; :class:`~mlfep_core.LigandValidationError` for the first
        invalid record; :class:`~ligand_prep.poses.PoseError` when a pose cannot be generated.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SDF_SUFFIXES:
        records = _sdf_records(path, name_property=name_property, protonate=protonate)
    elif suffix == ".csv":
        records = _read_csv(path)
    elif suffix in (".smi", ".smiles"):
        records = _read_smi(path)
    else:
        raise InputError(f"{path}: unknown ligand file format '{suffix or '(none)'}'; accepted: {_ACCEPTED}")
    if not records:
        raise LigandValidationError(f"{path}: no ligands found (empty file); accepted: {_ACCEPTED}")
    bad = [(rec, problem) for rec in records if (problem := name_problem(rec.name)) is not None]
    if bad:
        listed = "; ".join(f"{rec.source}: {problem}" for rec, problem in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise LigandValidationError(f"{listed}{more}; rename the ligand(s): names become file names")
    check_unique_names((rec.name, rec.source) for rec in records)
    _warn_about_sizes(records)

    needs_pose = [rec for rec in records if not rec.has_pose]
    ref_ligand: Ligand | None = None
    if reference is not None:
        ref_ligand = reference if isinstance(reference, Ligand) else read_reference(reference)
    if protein is not None and not Path(protein).is_file():
        raise InputError(f"{protein}: protein PDB file not found")
    if needs_pose and protein is not None and ref_ligand is None:
        raise InputError(
            f"{path}: poses from SMILES in a protein need a reference ligand in the pocket; add --reference REF.sdf"
        )
    if needs_pose and protein is not None:
        from ligand_prep.poses import protein_heavy_atoms

        protein_heavy_atoms(protein)  # read (and cache) the PDB now: a bad file fails before any pose work
    return _build(records, ref_ligand, protein, n_conformers, seed, progress, align=align or ref_ligand is not None)


def _build(
    records: list[_Record],
    ref_ligand: Ligand | None,
    protein,
    n_conformers: int,
    seed: int,
    progress: ProgressCallback | None,
    *,
    align: bool = True,
) -> list[Ligand]:
    from rdkit import Chem

    from ligand_prep.poses import embed_free, generate_pose

    total = sum(1 for rec in records if not rec.has_pose)
    done = 0
    ligands: list[Ligand] = []
    for rec in records:
        if rec.has_pose:
            ligands.append(_ligand_from_mol(rec.mol, rec))
            continue
        smiles = Chem.MolToSmiles(rec.mol)
        if ref_ligand is None:
            molblock = embed_free(rec.mol, n_conformers=n_conformers, seed=seed, name=rec.name)
            rec.core_rmsd = None
            if align:
                log.info("%s: embedded freely; it is the reference for the rest of the series", rec.label)
        else:
            molblock, rec.core_rmsd = generate_pose(
                rec.mol, ref_ligand, protein_pdb=protein, n_conformers=n_conformers, seed=seed
            )
        posed = Chem.MolFromMolBlock(molblock, removeHs=False)
        ligand = _ligand_from_mol(posed, rec, smiles=smiles)
        if ref_ligand is None and align:
            ref_ligand = ligand
        ligands.append(ligand)
        done += 1
        if progress is not None:
            progress(done, total, rec.name)
    return ligands


# ------------------------------------------------------------------------------------------ write
def write_sdf(
    ligands: Sequence[Ligand],
    path,
    properties: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write ligands to an SDF (atomically), name as title, with the ``mlfep_*`` SD properties.

    Parameters
    ----------
    ligands : sequence of Ligand
        Written in order.
    path : path
        Output ``.sdf``.
    properties : mapping, optional
        Extra SD properties per ligand name: ``{name: {property: text}}``.

    Returns
    -------
    Path
        The file written; :func:`read_ligands` reads it back (poses, names, experimental values, core RMSD).
    """
    import io

    from rdkit import Chem

    properties = properties or {}
    unknown = set(properties) - {lig.name for lig in ligands}
    if unknown:
        raise InputError(f"properties given for unknown ligand(s): {', '.join(sorted(unknown))}")
    buffer = io.StringIO()
    writer = Chem.SDWriter(buffer)
    writer.SetKekulize(True)
    for lig in ligands:
        mol = lig.to_rdkit()
        mol.SetProp("mlfep_smiles", lig.smiles)
        mol.SetProp("mlfep_formal_charge", str(lig.formal_charge))
        if lig.source:
            mol.SetProp("mlfep_source", lig.source)
        if lig.core_rmsd_angstrom is not None:
            mol.SetProp("mlfep_core_rmsd_A", f"{lig.core_rmsd_angstrom:.4f}")
        if lig.experimental is not None:
            mol.SetProp("mlfep_expt_dg_kcal_mol", f"{lig.experimental.dg_kcal_mol:.4f}")
            if lig.experimental.dg_err_kcal_mol is not None:
                mol.SetProp("mlfep_expt_dg_err_kcal_mol", f"{lig.experimental.dg_err_kcal_mol:.4f}")
            if lig.experimental.source:
                mol.SetProp("mlfep_expt_source", lig.experimental.source)
        for key, value in properties.get(lig.name, {}).items():
            mol.SetProp(str(key), str(value))
        writer.write(mol)
    writer.close()
    return atomic_write_text(Path(path), buffer.getvalue())
