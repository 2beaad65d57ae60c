"""A run directory's identity: :class:`RunSpec` (what the run is), and the rules for creating, refusing and
resuming one — never a folder that holds someone else's files, never a resume with other settings, other molecules
or a live driver elsewhere (see :func:`check_run_dir`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from fep.protocol import Protocol
from ligand_prep.models import Network
from mlfep_core import FrozenModel, InputError, atomic_write_text

__all__ = [
    "OWN_ENTRIES",
    "RunSpec",
    "check_disk_space",
    "check_run_dir",
    "file_digest",
    "flat",
    "open_run_dir",
    "package_versions",
    "spec_changes",
]

log = logging.getLogger(__name__)


class RunSpec(FrozenModel):
    """What a run directory holds: recorded once, checked when the run is resumed."""

    mode: Literal["binding", "hydration"] = Field(description="Binding or hydration free energies.")
    protocol: Protocol = Field(description="The protocol every edge uses.")
    protein: str | None = Field(None, description="Protein PDB (binding mode).")
    protein_sha256: str | None = Field(None, description="SHA-256 of the protein file when the run started.")
    cofactors: tuple[str, ...] = Field((), description="Cofactor SDF files of the complex leg (--cofactor).")
    cofactors_sha256: tuple[str | None, ...] = Field((), description="SHA-256 of each cofactor file at the start.")
    nnp: bool = Field(False, description="Whether the ANI-2x endpoint correction is applied.")
    versions: dict[str, str] = Field(default_factory=dict, description="Package versions at creation.")


#: mlfep's own packages whose source decides the numbers (``mlfep-source`` in the versions).
SOURCE_PACKAGES = ("mlfep_core", "ligand_prep", "fep", "analysis", "gpu_kernels")


def source_digest() -> str:
    """First 16 hex digits of the SHA-256 over mlfep's Python sources (path and content of every ``.py`` file of
    :data:`SOURCE_PACKAGES`): a code change within one version number shows as a change of ``mlfep-source``."""
    import hashlib
    import importlib.util

    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide the numbers, and the digest of mlfep's own source."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("mlfep", "openmm", "rdkit", "acellera-openff-toolkit", "pymbar", "torchani", "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    out["mlfep-source"] = source_digest()
    return out


#: What mlfep itself may have put into a run directory before its run.json (the dashboard's launch files).
OWN_ENTRIES = frozenset({"inputs", "app_launch.json", "fep_run.log", "edges"})


def flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as one level of dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``)."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def file_digest(path: str | None) -> str | None:
    """SHA-256 of a file's content (None when there is no such file)."""
    import hashlib

    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def spec_changes(old: RunSpec, new: RunSpec) -> list[tuple[str, str]]:
    """What differs between the run a folder holds and the one asked for: (component, ``what: old -> new``)."""
    changes = []
    if old.mode != new.mode:
        changes.append(("mode", f"mode: {old.mode} -> {new.mode}"))
    if old.nnp != new.nnp:
        on_off = {True: "on", False: "off"}
        changes.append(("nnp", f"ANI-2x endpoint correction: {on_off[old.nnp]} -> {on_off[new.nnp]}"))
    if old.protein != new.protein:
        same_content = old.protein and new.protein and file_digest(old.protein) == file_digest(new.protein)
        if not same_content:
            changes.append(("protein", f"protein: {old.protein} -> {new.protein}"))
    elif old.protein_sha256 is not None and file_digest(old.protein) not in (None, old.protein_sha256):
        changes.append(("protein", f"protein: the content of {old.protein} changed since the run started"))
    if old.cofactors != new.cofactors:
        if [file_digest(c) for c in old.cofactors] != [file_digest(c) for c in new.cofactors]:
            shown = ", ".join(old.cofactors) or "none"
            changes.append(("cofactors", f"cofactors: {shown} -> {', '.join(new.cofactors) or 'none'}"))
    elif old.cofactors_sha256 and tuple(file_digest(c) for c in old.cofactors) != old.cofactors_sha256:
        changes.append(("cofactors", "cofactors: the content of a cofactor file changed since the run started"))
    a, b = flat(old.protocol.model_dump(mode="json")), flat(new.protocol.model_dump(mode="json"))
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            changes.append(("protocol", f"protocol.{key}: {a.get(key)} -> {b.get(key)}"))
    return changes


def check_run_dir(
    run_dir: str | os.PathLike[str], spec: RunSpec, *, resume: bool, allow_changed: Collection[str] = ()
) -> None:
    """Refuse, before any work, a run directory this run must not use.

    Raises
    ------
    InputError
        The folder holds a run and ``resume`` is off; ``resume`` is on and the folder holds no run; the folder
        holds files that are not mlfep's; the run it holds was made with other settings (each change named) that
        are not in ``allow_changed``.
    """
    run_dir = Path(run_dir)
    spec_path = run_dir / "run.json"
    if spec_path.exists():
        if not resume:
            raise InputError(f"{run_dir} already holds a run: add --resume to continue it, or choose a new -o folder")
        changes = [text for field, text in spec_changes(RunSpec.from_json_file(spec_path), spec)
                   if field not in allow_changed]  # fmt: skip
        if changes:
            shown = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
            allowable = [c.split(":")[0] for c in changes]
            hint = (
                f" (or --allow-changed {' --allow-changed '.join(sorted(set(allowable)))})"
                if set(allowable) <= {"protein", "cofactors"}
                else ""
            )
            raise InputError(
                f"{run_dir} holds a run made with other settings ({shown}): resume it with the settings it was "
                f"started with{hint}, or use a new -o folder"
            )
        return
    if resume:
        raise InputError(f"{run_dir}: holds no run to resume (no run.json); leave out --resume to start one there")
    if run_dir.exists():
        if not run_dir.is_dir():
            raise InputError(f"{run_dir}: is a file; give a folder for the run (-o)")
        foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in OWN_ENTRIES)
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise InputError(f"{run_dir} is not empty and is not an mlfep run (it holds {shown}); choose a new folder")


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.0f} MB"


def check_disk_space(run_dir: str | os.PathLike[str], needed_bytes: int) -> None:
    """Refuse, before any work, a run the disk under ``run_dir`` cannot hold.

    ``needed_bytes`` is the size of the finished run (:attr:`fep.execution.cost.RunCost.disk_bytes`); what the
    folder holds already (a resumed run) counts toward it.

    Raises
    ------
    InputError
        Less space is free than the run still needs (both named, and what to do).
    """
    import shutil

    folder = Path(run_dir)
    held = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
    probe = folder.absolute()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    missing = needed_bytes - held
    if missing > free:
        raise InputError(
            f"{run_dir}: the run needs about {_gb(needed_bytes)} on disk ({_gb(missing)} more than the folder "
            f"holds) and {_gb(free)} are free there; free space or choose another -o folder"
        )


def open_run_dir(
    run_dir: str | os.PathLike[str],
    spec: RunSpec,
    network: Network,
    *,
    resume: bool,
    allow_changed: Collection[str] = (),
) -> None:
    """Create a run directory, or check that an existing one holds the same run (``resume``) and add the new
    edges and ligands of ``network`` to its network.json. Refuses what :func:`check_run_dir` refuses; an allowed
    change of the protein (``allow_changed``) is written into run.json, as are the versions when allowed."""
    check_run_dir(run_dir, spec, resume=resume, allow_changed=allow_changed)
    run_dir = Path(run_dir)
    spec_path = run_dir / "run.json"
    if spec_path.exists():
        recorded = RunSpec.from_json_file(spec_path)
        update: dict[str, Any] = {}
        if "protein" in allow_changed and any(f == "protein" for f, _ in spec_changes(recorded, spec)):
            update.update(protein=spec.protein, protein_sha256=file_digest(spec.protein))
        if "cofactors" in allow_changed and any(f == "cofactors" for f, _ in spec_changes(recorded, spec)):
            update.update(cofactors=spec.cofactors, cofactors_sha256=tuple(file_digest(c) for c in spec.cofactors))
        if "versions" in allow_changed and recorded.versions != spec.versions:
            update.update(versions=spec.versions)
        if update:
            log.warning("%s: accepted changes of %s (--allow-changed)", run_dir, ", ".join(sorted(update)))
            recorded.model_copy(update=update).to_json_file(spec_path)
        old_net = Network.from_json_file(run_dir / "network.json")
        before = {lig.name: lig.smiles for lig in old_net.ligands}
        changed = [lig.name for lig in network.ligands if lig.name in before and before[lig.name] != lig.smiles]
        if changed:
            raise InputError(
                f"{run_dir}: ligand(s) {', '.join(changed)} are other molecules than the ones this run started with "
                f"(e.g. {changed[0]}: {before[changed[0]]} -> "
                f"{next(lig.smiles for lig in network.ligands if lig.name == changed[0])}); rename them or use a new "
                "-o folder"
            )
        old_versions = recorded.versions
        moved = {k: (v, spec.versions.get(k)) for k, v in old_versions.items() if spec.versions.get(k, v) != v}
        if moved and "versions" not in allow_changed:
            log.warning(
                "%s: resumed with other package versions (%s); each leg sampled before is checked (leg_key.json)",
                run_dir,
                ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(moved.items())),
            )
        new_edges = {e.key for e in network.edges} - {e.key for e in old_net.edges}
        if new_edges or {lig.name for lig in network.ligands} != {lig.name for lig in old_net.ligands}:
            network = Network(
                mode=network.mode,
                ligands=tuple({lig.name: lig for lig in (*old_net.ligands, *network.ligands)}.values()),
                edges=(*old_net.edges, *(e for e in network.edges if e.key in new_edges)),
                planner=old_net.planner,
                protein=old_net.protein,
                cofactors=old_net.cofactors,
            )
            network.to_json_file(run_dir / "network.json")
        _write_driver(run_dir)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    if spec.protein_sha256 is None and spec.protein is not None:  # a resume can then tell a file edited in place
        spec = spec.model_copy(update={"protein_sha256": file_digest(spec.protein)})
    if spec.cofactors and not spec.cofactors_sha256:
        spec = spec.model_copy(update={"cofactors_sha256": tuple(file_digest(c) for c in spec.cofactors)})
    network.to_json_file(run_dir / "network.json")
    spec.to_json_file(spec_path)
    _write_driver(run_dir)


def _write_driver(run_dir: Path) -> None:
    """``RUN_DIR/driver.json``: host and pid of the process driving the run (``fep status`` asks if it lives)."""
    import socket

    from mlfep_core.runtime import process_start

    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start_ticks": process_start(os.getpid()),  # tells this process from a later one given the same pid
        "started": time.time(),
    }
    atomic_write_text(run_dir / "driver.json", json.dumps(record))
