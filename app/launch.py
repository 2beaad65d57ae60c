"""New runs from the dashboard: uploads (size-limited, parsed as data only), per-ligand validation, network
planning and editing, a cost estimate, and the launch of ``fep run`` as a detached process.

The launched process is the ordinary CLI (``python -m fep run NETWORK.json -o RUN_DIR ...``) in its own session
(``start_new_session=True``), its output in ``RUN_DIR/fep_run.log``: it keeps running when the browser or the
dashboard closes, and ``fep status RUN_DIR`` / the progress page follow it like any CLI run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlfep_core import InputError, MlfepError, atomic_write_bytes, atomic_write_text
from mlfep_core.names import name_problem
from mlfep_core.runtime import process_start

__all__ = [
    "UPLOAD_LIMITS",
    "LigandCheck",
    "add_edge",
    "check_cofactors",
    "check_pdb",
    "check_protocol",
    "clean_staging",
    "cost_estimate",
    "cpu_cores",
    "disconnected",
    "has_gpu",
    "inputs_fingerprint",
    "launch_run",
    "new_run_dir",
    "plan",
    "read_series",
    "readable_duration",
    "readable_number",
    "remove_edges",
    "safe_file_name",
    "save_upload",
    "user_message",
    "wall_hours",
]

log = logging.getLogger(__name__)

#: Largest accepted upload per kind, in bytes, and the suffixes accepted.
UPLOAD_LIMITS: dict[str, int] = {
    "protein": 50_000_000,
    "ligands": 20_000_000,
    "reference": 2_000_000,
    "protocol": 200_000,
    "cofactor": 2_000_000,
}
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "protein": (".pdb",),
    "ligands": (".sdf", ".sd", ".csv", ".smi"),
    "reference": (".sdf", ".sd", ".mol"),
    "protocol": (".json", ".yaml", ".yml"),
    "cofactor": (".sdf", ".sd", ".mol"),
}


def save_upload(kind: str, filename: str, data: bytes, folder: str | os.PathLike[str]) -> Path:
    """Check an uploaded file and write it into ``folder`` as ``<kind><suffix>``.

    Only the suffix of the user's file name is kept (no path from the browser is used); the content must be
    UTF-8 text within :data:`UPLOAD_LIMITS`. Nothing is executed or unpickled: the file is later parsed by the
    ligand, protein or protocol readers.

    Raises
    ------
    InputError
        Unknown kind, wrong suffix, empty, too large or not text (names the file and the limit).
    """
    if kind not in UPLOAD_LIMITS:
        raise InputError(f"unknown upload kind '{kind}'")
    suffix = Path(filename).suffix.lower()
    if suffix not in _SUFFIXES[kind]:
        raise InputError(f"{filename}: a {kind} file must end in {', '.join(_SUFFIXES[kind])}")
    if not data:
        raise InputError(f"{filename}: the file is empty")
    limit = UPLOAD_LIMITS[kind]
    if len(data) > limit:
        raise InputError(f"{filename}: {len(data) / 1e6:.1f} MB is more than the {limit / 1e6:g} MB allowed for {kind}")
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{filename}: not a text file (byte {err.start} is not UTF-8); upload the plain file") from err
    return atomic_write_bytes(Path(folder) / f"{kind}{suffix}", data)


def check_pdb(path: str | os.PathLike[str], display_name: str | None = None, protocol=None) -> int:
    """Check an uploaded protein as ``fep plan --protein`` does: every residue must match a force-field template
    of the protocol's system settings (:func:`fep.systems.protein.load_protein`, seconds). Returns the number of
    ATOM/HETATM records.

    Raises
    ------
    MlfepError
        No atom records, an unknown residue (named with chain and number), a missing atom...; the message names the
        file as ``display_name`` (the user's file name) when given.
    """
    from fep.systems.protein import load_protein
    from mlfep_core import MlfepError

    path = Path(path)
    shown = display_name or path.name
    count = sum(line.startswith(("ATOM  ", "HETATM")) for line in path.read_text(errors="replace").splitlines())
    if count == 0:
        raise InputError(f"{shown}: no ATOM or HETATM records; upload the protein as a PDB file")
    try:
        load_protein(path, protocol.system if protocol is not None else None)
    except MlfepError as err:
        raise type(err)(str(err).replace(str(path), shown).replace(path.name, shown)) from None
    return count


def check_cofactors(paths: Sequence[str | os.PathLike[str]], ligands, names: dict[str, str] | None = None) -> list:
    """Read uploaded cofactors as ``fep run --cofactor`` does (3D, every hydrogen) and check they overlap no
    ligand (:mod:`fep.systems.cofactors`); returns them (Ligand, named after the user's file).

    Raises
    ------
    MlfepError
        A file without hydrogens or coordinates, or a cofactor sitting on a ligand; the message names the user's
        file (``names``: path -> file name shown).
    """
    from fep.systems.cofactors import check_cofactor_placement, posed, read_cofactors
    from mlfep_core import MlfepError

    try:
        cofactors = read_cofactors(paths)
        check_cofactor_placement(posed(cofactors), posed(ligands))
    except MlfepError as err:
        shown = {str(k): v for k, v in (names or {}).items()}
        shown |= {Path(k).name: v for k, v in shown.items() if Path(k).name not in shown}  # record labels
        raise type(err)(user_message(str(err), shown)) from None
    return cofactors


def check_protocol(path: str | os.PathLike[str]):
    """The :class:`~fep.protocol.Protocol` of an uploaded protocol file (JSON or YAML, read as data only)."""
    from fep.protocol import load_protocol

    return load_protocol(path)


# --------------------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class LigandCheck:
    """The validation outcome of one ligand record (``ok`` False: ``message`` says what to fix)."""

    record: str
    ligand: str
    ok: bool
    message: str


_WHERE = re.compile(r"\b(record|row|line) (\d+)\b")


def _split_records(path: Path) -> tuple[str, list[tuple[int, str]]]:
    """(header, [(original number, text)]) of a ligand file, one entry per record or row."""
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    if suffix in (".sdf", ".sd"):
        from ligand_prep.io import sdf_blocks

        return "", list(enumerate(sdf_blocks(text), start=1))
    lines = text.splitlines()
    if suffix == ".csv":
        rows = [(number, line + "\n") for number, line in enumerate(lines[1:], start=2) if line.strip()]
        return ((lines[0] + "\n") if lines else ""), rows
    rows = [(number, line + "\n") for number, line in enumerate(lines, start=1) if line.strip()]
    return "", rows


def read_series(
    path: str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | None = None,
    protein: str | os.PathLike[str] | None = None,
    max_ligands: int = 200,
    display_name: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    align: bool = True,
) -> tuple[list, list[LigandCheck]]:
    """Read a ligand series with :func:`ligand_prep.io.read_ligands`, keeping the good ligands and one message
    per bad record.

    ``read_ligands`` stops at the first invalid record; this drops that record (its error message, with the
    record or row number of the uploaded file, goes into the checks) and reads the rest again, so that every
    bad ligand is reported at once. Errors that are not about one record (missing columns, a bad reference)
    raise. Messages name the file as ``display_name`` (the user's file name) when given.

    Returns
    -------
    (list of Ligand, list of LigandCheck)
        The valid ligands (posed) and a check per record, valid ones included.

    Raises
    ------
    InputError
        The file cannot be read as a ligand series, or holds more than ``max_ligands`` records.
    """
    from ligand_prep.io import read_ligands

    path = Path(path)
    header, records = _split_records(path)
    if len(records) > max_ligands:
        raise InputError(
            f"{display_name or path.name}: {len(records)} ligands; the dashboard accepts up to {max_ligands} per run"
        )
    remaining = list(records)
    bad: dict[int, str] = {}
    work = path.parent / f"_validated{path.suffix.lower()}"
    ligands: list = []
    while remaining:
        atomic_write_text(work, header + "".join(text for _, text in remaining))
        try:
            ligands = read_ligands(work, reference=reference, protein=protein, progress=progress, align=align)
            break
        except MlfepError as err:
            message = str(err).replace(work.name, display_name or path.name)
            index = _culprit(message, remaining, path)
            if index is None:
                raise InputError(message) from err
            message = _WHERE.sub(lambda m: _original(m, remaining, path), message)
            bad[remaining[index][0]] = message
            del remaining[index]
            ligands = []
    by_number = dict(zip((n for n, _ in remaining), ligands, strict=False))
    kind = "row" if path.suffix.lower() == ".csv" else "line" if path.suffix.lower() == ".smi" else "record"
    checks = []
    for number, text in records:
        lig = by_number.get(number)
        if number in bad:
            checks.append(LigandCheck(f"{kind} {number}", _guess_name(text, path), False, bad[number]))
        elif lig is not None:
            checks.append(LigandCheck(f"{kind} {number}", lig.name, True, "ok"))
    return ligands, checks


_POSE = re.compile(r"^ligand (\S+):")


def _position(found: re.Match, path: Path) -> int:
    """Index into the remaining records of a 'row N' / 'record N' / 'line N' in a message."""
    number = int(found.group(2))
    return number - 2 if path.suffix.lower() == ".csv" else number - 1


def _original(found: re.Match, remaining: list[tuple[int, str]], path: Path) -> str:
    index = _position(found, path)
    if 0 <= index < len(remaining):
        return f"{found.group(1)} {remaining[index][0]}"
    return found.group(0)


def _culprit(message: str, remaining: list[tuple[int, str]], path: Path) -> int | None:
    """Which remaining record a read_ligands error is about (the last place it names), or None."""
    places = list(_WHERE.finditer(message))
    if places:
        index = _position(places[-1], path)
        return index if 0 <= index < len(remaining) else None
    named = _POSE.match(message)
    if named:
        for index, (_, text) in enumerate(remaining):
            if _guess_name(text, path) == named.group(1):
                return index
    return None


def _guess_name(text: str, path: Path) -> str:
    first = text.splitlines()[0] if text.strip() else ""
    if path.suffix.lower() == ".csv":
        return first.split(",")[0].strip()
    if path.suffix.lower() in (".smi",):
        parts = first.split()
        return " ".join(parts[1:]) if len(parts) > 1 else ""
    return first.strip()


# ------------------------------------------------------------------------------------------ network
def plan(
    ligands: Sequence,
    *,
    mode: str,
    planner: str = "mst",
    protein: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
):
    """The planned :class:`~ligand_prep.models.Network` (:func:`ligand_prep.network.plan_network`)."""
    from ligand_prep.network import plan_network

    if len(ligands) < 2:
        raise InputError(f"a network needs at least two valid ligands; {len(ligands)} passed validation")
    return plan_network(list(ligands), mode=mode, network=planner, protein=protein, progress=progress)


def add_edge(network, ligand_a: str, ligand_b: str):
    """``network`` with the edge A → B added (mapped with :class:`~ligand_prep.mapping.MCSMapper`).

    Raises
    ------
    InputError
        Same ligand twice, unknown name, or the edge (either direction) is already planned.
    MappingError
        The two ligands cannot be mapped.
    """
    from ligand_prep.mapping import MappingSettings, MCSMapper

    if ligand_a == ligand_b:
        raise InputError(f"edge {ligand_a}~{ligand_b}: choose two different ligands")
    keys = {frozenset((e.ligand_a, e.ligand_b)) for e in network.edges}
    if frozenset((ligand_a, ligand_b)) in keys:
        raise InputError(f"edge {ligand_a}~{ligand_b} is already in the network")
    try:
        a, b = network.ligand(ligand_a), network.ligand(ligand_b)
    except KeyError as err:
        raise InputError(f"ligand {err.args[0]} is not in the network") from err
    mapping = MCSMapper(MappingSettings(use_poses=network.mode != "hydration")).map(a, b)
    return network.model_copy(update={"edges": (*network.edges, mapping), "planner": _edited(network.planner)})


def remove_edges(network, keys: Sequence[str]):
    """``network`` without the edges whose key (``'A~B'``) is in ``keys``."""
    wanted = set(keys)
    unknown = wanted - {e.key for e in network.edges}
    if unknown:
        raise InputError(f"edge(s) {', '.join(sorted(unknown))} not in the network")
    kept = tuple(e for e in network.edges if e.key not in keys)
    if not kept:
        raise InputError("removing every edge leaves nothing to run; keep at least one")
    return network.model_copy(update={"edges": kept, "planner": _edited(network.planner)})


def _edited(planner: str) -> str:
    return planner if planner.endswith("+edited") else f"{planner}+edited"


def disconnected(network) -> list[str]:
    """Ligands not connected to the largest connected part of the network (empty when connected)."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(lig.name for lig in network.ligands)
    graph.add_edges_from((e.ligand_a, e.ligand_b) for e in network.edges)
    parts = sorted(nx.connected_components(graph), key=len, reverse=True)
    return sorted(n for part in parts[1:] for n in part)


def cost_estimate(network, protocol, protein: str | None = None) -> dict[str, Any]:
    """Simulation work of a network under a protocol, before anything runs.

    Returns
    -------
    dict
        ``edges``, ``legs`` (per edge), ``windows``, ``repeats``, ``ns_per_window``, ``total_ns`` (summed over
        edges × legs × repeats × windows), and ``estimate``: the :class:`fep.execution.cost.RunCost` (atoms per leg,
        GPU-hours, CPU core-hours) or None when it cannot be computed (the reason is logged).
    """
    from mlfep_core.constants import LEGS_FOR_MODE

    legs = LEGS_FOR_MODE[network.mode]
    windows = len(protocol.windows())
    ns = protocol.ns_per_window()
    out: dict[str, Any] = {
        "edges": len(network.edges),
        "legs": len(legs),
        "windows": windows,
        "repeats": protocol.repeats,
        "ns_per_window": ns,
        "total_ns": len(network.edges) * len(legs) * protocol.repeats * windows * ns,
        "estimate": None,
    }
    try:
        from fep.execution.cost import estimate_cost

        out["estimate"] = estimate_cost(network, protocol, network.mode, protein=protein)
    except Exception as err:  # the plain numbers above still stand
        log.warning("cost estimate failed: %s", err)
    return out


# ------------------------------------------------------------------------------------------- launch
def clean_staging(root: str | os.PathLike[str], max_age_s: float = 86400.0) -> int:
    """Remove upload folders (``root/.upload-*``) older than ``max_age_s`` left by abandoned pages; returns
    how many were removed."""
    import shutil

    removed = 0
    for folder in Path(root).glob(".upload-*"):
        try:
            if folder.is_dir() and time.time() - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed


def new_run_dir(root: str | os.PathLike[str], name: str) -> Path:
    """Create ``root/name`` for a new run (letters, digits, ``._-``; must not exist yet)."""
    name = name.strip()
    problem = name_problem(name)
    if problem is not None:
        raise InputError(f"run name {problem}")
    path = Path(root).expanduser() / name
    if path.exists():
        raise InputError(f"a run called '{name}' already exists in {Path(root)}; choose another name")
    path.mkdir(parents=True)
    return path


def launch_run(
    run_dir: str | os.PathLike[str],
    network,
    *,
    protocol: str,
    protein: str | None = None,
    nnp: bool = False,
    ligand_ff: str = "sage",
    extra_args: Sequence[str] = (),
    python: str | None = None,
) -> dict[str, Any]:
    """Write ``RUN_DIR/inputs/network.json`` and start ``fep run`` on it, detached.

    Parameters
    ----------
    run_dir : path
        An empty run directory (see :func:`new_run_dir`).
    network : Network
        The planned (and possibly edited) network.
    protocol : str
        A tier name or the path of a protocol file.
    protein : str, optional
        Protein PDB (binding mode).
    nnp : bool
        Apply the ANI-2x endpoint correction (the same as ``ligand_ff='ani2x-endpoint'``).
    ligand_ff : {'sage', 'ani2x-torsions', 'ani2x-endpoint'}
        The ligand force field (``fep run --ligand-ff``).
    extra_args : sequence of str
        More ``fep run`` options.
    python : str, optional
        Interpreter to run (default: this one).

    Returns
    -------
    dict
        The launch record also written to ``RUN_DIR/app_launch.json``: ``pid``, ``command``, ``created``,
        ``mode``, ``protocol``, ``log``.
    """
    from app.control import start_detached
    from app.data import LAUNCH_FILE, LOG_FILE
    from fep.protocol import load_protocol

    run_dir = Path(run_dir).resolve()
    inputs = run_dir / "inputs"
    network_path = network.to_json_file(inputs / "network.json")
    python = python or sys.executable
    command = [python, "-m", "fep", "run", str(network_path), "-o", str(run_dir), "--protocol", str(protocol)]
    if nnp:
        ligand_ff = "ani2x-endpoint"
    command += ["--mode", network.mode, "--ligand-ff", ligand_ff]
    if protein:
        command += ["--protein", str(protein)]
    command += list(extra_args)
    proc = start_detached(command, run_dir)
    log_path = run_dir / LOG_FILE
    record = {
        "pid": proc.pid,
        "start_ticks": process_start(proc.pid),
        "command": command,
        "created": time.time(),
        "mode": network.mode,
        "protocol": load_protocol(protocol).name,
        "ligand_ff": ligand_ff,
        "log": str(log_path),
    }
    atomic_write_text(run_dir / LAUNCH_FILE, json.dumps(record, indent=2) + "\n")
    log.info("launched %s (pid %d)", " ".join(command), proc.pid)
    return record


# ----------------------------------------------------------------------------------- the user's terms
def inputs_fingerprint(*parts: object) -> str:
    """SHA-256 of the inputs that decide the plan (mode, planner, the uploaded files' names and bytes): the page
    validates and plans again only when it changes, so that the edits made to a network are kept."""
    import hashlib

    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else repr(part).encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


_UNSAFE = re.compile(r"[^A-Za-z0-9._+()\-]")


def safe_file_name(filename: str, default: str) -> str:
    """The user's file name (no folders; characters outside letters, digits and ``._-+()`` become ``_``), or
    ``default`` when nothing is left of it."""
    name = _UNSAFE.sub("_", Path(filename.replace("\\", "/")).name).lstrip(".")
    return name or default


#: CLI hints in library messages and what they mean on the New run page.
_ON_THE_PAGE = (
    (re.compile(r"add --reference \S+"), "upload a reference pose in the 'Reference pose SDF' box"),
    (re.compile(r"with --reference \S+"), "with a reference pose in the 'Reference pose SDF' box"),
    (re.compile(r"add --protein \S+"), "upload a protein in the 'Protein PDB' box"),
    (re.compile(r"use --mode hydration"), "choose the hydration mode"),
    (re.compile(r"--mode (binding|hydration)"), r"the \1 mode"),
    (re.compile(r"--protocol \S+"), "another protocol"),
    # the protein checks' hints (fep.systems.protein): options this page does not offer yet
    (re.compile(r"supply a template with `?--extra-forcefield [^`\s,;]+`?"),
     "supply a force-field template for it (the command-line run takes one; this page does not yet)"),
    (re.compile(r"give it as `?--cofactor [^`\s]+`?"), "upload it in the 'Cofactors' box"),
    (re.compile(r"repair with `?--fix-protein`? \(pdbfixer: ([^)]*)\)"), r"repair the PDB first (pdbfixer \1)"),
)  # fmt: skip


def user_message(text: str, names: dict[str, str] | None = None, folders: Sequence[str | os.PathLike[str]] = ()) -> str:
    """A library message in the terms of the page: the upload folder's paths replaced by the user's file names
    (``names``: path -> name shown), other paths inside ``folders`` by their file names, and command-line options
    by what to do on the page."""
    for path, shown in sorted((names or {}).items(), key=lambda item: -len(item[0])):
        text = text.replace(str(path), shown)
    for folder in folders:
        text = re.sub(re.escape(str(folder).rstrip("/")) + r"/(?:[^/\s:'\"]+/)*", "", text)
    for pattern, words in _ON_THE_PAGE:
        text = pattern.sub(words, text)
    return text


# ------------------------------------------------------------------------------------------ the machine
def has_gpu() -> bool:
    """Whether this machine has a GPU OpenMM can use (an NVIDIA driver, or a ROCm device), without importing
    OpenMM."""
    import shutil

    nvidia = Path("/proc/driver/nvidia/gpus")
    if nvidia.is_dir() and any(nvidia.iterdir()):
        return True
    return Path("/dev/kfd").exists() or (shutil.which("nvidia-smi") is not None and Path("/dev/nvidia0").exists())


def cpu_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def readable_number(value: float) -> str:
    """``2.4 × 10⁴`` for large or small numbers, ``12.3`` / ``0.52`` otherwise (3 significant figures)."""
    import math

    if value == 0 or 0.01 <= abs(value) < 10_000:
        return f"{value:.3g}"
    exponent = math.floor(math.log10(abs(value)))
    return f"{value / 10**exponent:.2g} × 10{str(exponent).translate(_SUPERSCRIPT)}"


def readable_duration(hours: float) -> str:
    """A duration in the unit that reads best: '40 s', '12 min', '3.5 h', '30 h', '4.2 days', '2.8 years'."""
    seconds = hours * 3600.0
    for unit, size, least in (("years", 365.25 * 86400, 1.0), ("days", 86400, 1.5), ("h", 3600, 1.0), ("min", 60, 1.0)):
        if seconds >= least * size:
            value = seconds / size
            text = readable_number(value) if value >= 10_000 else f"{value:.2g}" if value < 10 else f"{value:.0f}"
            return f"{text} {unit}"
    return f"{max(seconds, 1.0):.0f} s"


def wall_hours(estimate, gpu: bool, cores: int | None = None) -> float:
    """Wall-clock hours of a :class:`~fep.execution.cost.RunCost` on this machine: its GPU-hours on a GPU, else its
    CPU core-hours spread over this machine's cores."""
    if gpu:
        return float(estimate.gpu_hours)
    return float(estimate.cpu_core_hours) / max(cores or cpu_cores(), 1)
