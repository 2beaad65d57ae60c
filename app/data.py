"""What the dashboard reads: runs (folders of ``fep run`` under a runs root), their progress and their results.

Everything here reads files only (``run.json``, ``network.json``, ``edges/<A>~<B>/edge_result.json``,
``status.json`` of each leg, ``app_launch.json`` and ``fep_run.log`` written when a run is launched from the
dashboard). Nothing imports openmm or torch; RDKit is imported inside the functions that draw molecules.

Where runs come from is a :class:`RunSource`: :class:`FolderRunSource` lists the run directories under a runs
root (``fep app --runs DIR``). A store-backed source can be plugged in through :func:`open_source` without
touching the pages: they only call ``list_runs()`` and ``run_dir(name)``.

Examples
--------
>>> source = open_source(runs="runs")          # doctest: +SKIP
>>> [r.name for r in source.list_runs()]       # doctest: +SKIP
['tyk2-smoke', 'benzenes']
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import Field

from analysis.report import LIGAND_HEADER
from mlfep_core import FrozenModel, InputError
from mlfep_core.io import read_json_object

__all__ = [
    "EXPERIMENTAL_FILE",
    "LAUNCH_FILE",
    "LOG_FILE",
    "PHASES",
    "RUNS_ENV",
    "STORE_ENV",
    "FolderRunSource",
    "RunResults",
    "RunSource",
    "RunSummary",
    "StoreRunSource",
    "age_text",
    "blank_missing",
    "created_text",
    "edge_table",
    "leg_dirs",
    "leg_fraction",
    "ligand_table",
    "load_results",
    "mol_image_uri",
    "open_source",
    "predictions_sdf",
    "report_html",
    "results_csv",
    "run_protein",
    "run_signature",
    "run_status",
    "save_experimental",
    "split_log",
    "summarize_run",
]

log = logging.getLogger(__name__)

#: Environment variables set by ``fep app`` for the Streamlit process.
RUNS_ENV = "MLFEP_RUNS_DIR"
STORE_ENV = "MLFEP_STORE"
#: Written by the dashboard when it launches a run (pid, command, time), and the run's combined output.
LAUNCH_FILE = "app_launch.json"
LOG_FILE = "fep_run.log"
#: Experimental values uploaded on the Results page after a run (they override those of the network's ligands).
EXPERIMENTAL_FILE = "inputs/experimental.csv"

RunState = Literal["starting", "running", "done", "failed", "partial", "interrupted", "pending"]


class RunSummary(FrozenModel):
    """One line of the runs list."""

    name: str = Field(description="Folder name of the run (its identifier in the dashboard).")
    path: str = Field(description="Run directory.")
    state: RunState = Field(description="Overall state of the run.")
    created: float | None = Field(None, description="Creation time (Unix seconds).")
    mode: str = Field("", description="binding or hydration.")
    protocol: str = Field("", description="Protocol name.")
    n_edges: int = Field(0, description="Number of planned edges.")
    counts: dict[str, int] = Field(default_factory=dict, description="Edges per state (done, running, ...).")
    progress: float = Field(0.0, ge=0.0, le=1.0, description="Fraction of the legs' work done.")
    message: str = Field("", description="Why the run failed or what it waits for.")


class RunSource(Protocol):
    """Where the dashboard finds runs (a runs folder today, the results store later)."""

    def list_runs(self) -> list[RunSummary]:
        """Every run, newest first."""
        ...

    def run_dir(self, name: str) -> Path:
        """The run directory of the run called ``name`` (raises InputError when unknown)."""
        ...


class FolderRunSource:
    """Runs are the folders under ``root`` that hold a ``run.json`` (or were launched from the dashboard)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def _candidates(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [
            p for p in self.root.iterdir() if p.is_dir() and ((p / "run.json").is_file() or (p / LAUNCH_FILE).is_file())
        ]

    def list_runs(self) -> list[RunSummary]:
        runs = [summarize_run(p) for p in self._candidates()]
        return sorted(runs, key=lambda r: (-(r.created or 0.0), r.name))

    def run_dir(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if path.parent != self.root or not path.is_dir():
            raise InputError(f"run '{name}' not found under {self.root}")
        return path


class StoreRunSource:
    """Runs registered in a results store (``fep run --store URL``), plus the run folders under ``root``.

    A run whose folder is on this machine is summarised from its files (the same as :class:`FolderRunSource`);
    one whose folder is not is summarised from the store's job table. Names are folder names (``name#id``
    when two stored runs share a folder name).
    """

    def __init__(self, url: str, root: str | os.PathLike[str]) -> None:
        from fep.execution.store import open_store

        self.url = url
        self.folders = FolderRunSource(root)
        open_store(url).close()  # fail early, with the store's own message

    def _stored(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        from fep.execution.store import open_store

        store = open_store(self.url)
        try:
            rows = store.list_runs()
            out, seen = [], set()
            for row in rows:
                name = Path(row["run_dir"]).name
                if name in seen:
                    name = f"{name}#{row['id']}"
                seen.add(name)
                out.append((name, row, store.run_progress(row["id"])))
            return out
        finally:
            store.close()

    def list_runs(self) -> list[RunSummary]:
        runs: list[RunSummary] = []
        paths = set()
        for name, row, progress in self._stored():
            path = Path(row["run_dir"])
            paths.add(str(path.resolve()))
            if (path / "run.json").is_file():
                runs.append(summarize_run(path).model_copy(update={"name": name}))
            else:
                runs.append(_summary_from_store(name, row, progress))
        runs += [r for r in self.folders.list_runs() if str(Path(r.path).resolve()) not in paths]
        return sorted(runs, key=lambda r: (-(r.created or 0.0), r.name))

    def run_dir(self, name: str) -> Path:
        for stored, row, _ in self._stored():
            if stored == name:
                path = Path(row["run_dir"])
                if not path.is_dir():
                    raise InputError(f"run '{name}': its folder {path} is not on this machine")
                return path
        return self.folders.run_dir(name)


def _summary_from_store(name: str, row: dict[str, Any], progress: dict[str, Any]) -> RunSummary:
    jobs = progress["jobs"]
    total = sum(jobs.values())
    if jobs.get("running"):
        state: RunState = "running"
    elif jobs.get("queued"):
        state = "pending"
    elif jobs.get("failed"):
        state = "partial" if jobs.get("done") else "failed"
    else:
        state = "done" if total else "pending"
    fraction = progress["iterations_done"] / progress["iterations_total"] if progress["iterations_total"] else 0.0
    return RunSummary(
        name=name,
        path=str(row["run_dir"]),
        state=state,
        created=row.get("created"),
        mode=row.get("mode") or "",
        protocol=row.get("protocol") or "",
        counts={f"legs {k}": v for k, v in jobs.items() if v},
        progress=round(min(1.0, fraction), 4),
        message="folder not on this machine: summary from the store",
    )


def open_source(runs: str | os.PathLike[str] | None = None, store: str | None = None) -> RunSource:
    """The run source for the dashboard: the results store ``store`` (with the folder ``runs``) if given,
    else the folder ``runs``.

    Defaults come from the environment variables :data:`STORE_ENV` and :data:`RUNS_ENV` (set by ``fep app``),
    else ``./runs``.

    Raises
    ------
    InputError
        The store cannot be opened (the message of :mod:`fep.execution.store`).
    """
    store = store or os.environ.get(STORE_ENV) or None
    runs = runs or os.environ.get(RUNS_ENV) or "runs"
    if store:
        return StoreRunSource(store, runs)
    return FolderRunSource(runs)


# ------------------------------------------------------------------------------------------- status
def _log_tail(run_dir: Path, n_lines: int = 20) -> str:
    path = run_dir / LOG_FILE
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n_lines:])


def split_log(text: str) -> tuple[str, str]:
    """A run log split into what a person reads and the Python warnings of the libraries (``file.py:12:
    SomeWarning: ...`` and the indented source line under it), which the page shows apart."""
    plain: list[str] = []
    technical: list[str] = []
    in_warning = False
    for line in text.splitlines():
        if in_warning and line.startswith((" ", "\t")):
            technical.append(line)
            continue
        in_warning = bool(_WARNING_LINE.search(line))
        (technical if in_warning else plain).append(line)
    return "\n".join(plain), "\n".join(technical)


_WARNING_LINE = re.compile(r"\.py:\d+: \w*Warning: ")


def _last_error_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.startswith("error:") or "Error" in line:
            return line.strip()
    return ""


#: Phases a leg goes through, in order (``fep.execution.runner``, ``fep.sampling``), and the words the page uses.
PHASES: dict[str, str] = {
    "pending": "waiting",
    "queued": "waiting for a worker",
    "starting": "starting",
    "building": "building the system",
    "placement": "placing λ windows (first pass)",
    "equilibration_nvt": "equilibrating (constant volume)",
    "equilibration_npt": "equilibrating (constant pressure)",
    "production": "sampling",
    "analysing": "analysing",
    "nnp correction": "ML correction",
    "done": "done",
}
_ORDER = {name: i for i, name in enumerate(PHASES)}


def _phase_work(protocol, leg: str, nnp: bool) -> dict[str, float]:
    """Relative work of each phase of one leg: MD steps summed over the windows; building, analysis and the ML
    correction as fixed shares of the MD work."""
    sampler = protocol.sampler_for(leg)
    windows = len(protocol.windows())
    md = {
        "equilibration_nvt": windows * (sampler.equilibration_nvt_steps + sampler.minimization_max_iterations),
        "equilibration_npt": windows * (sampler.equilibration_npt_steps if leg != "vacuum" else 0),
        "production": windows * sampler.n_iterations * sampler.steps_per_iteration,
    }
    place = protocol.lambda_placement
    first_pass = (  # its own equilibration and iterations, on the same windows
        md["equilibration_nvt"]
        + md["equilibration_npt"]
        + windows * place.first_pass_iterations * sampler.steps_per_iteration
        if place.enabled
        else 0.0
    )
    total_md = float(sum(md.values())) or 1.0
    return {
        "building": 0.05 * total_md,
        "placement": float(first_pass),
        **{k: float(v) for k, v in md.items()},
        "analysing": 0.02 * total_md,
        "nnp correction": 0.10 * total_md if nnp else 0.0,
    }


def _checkpoint_iteration(leg_dir: Path) -> int:
    """The production iteration of a leg's last checkpoint (0 without one)."""
    data = read_json_object(leg_dir / "sampler" / "checkpoint.json")
    try:
        return int(data.get("iteration", 0)) if data else 0
    except (TypeError, ValueError):
        return 0


def leg_fraction(entry: dict[str, Any], work: dict[str, float], leg_dir: Path | None = None) -> float:
    """Fraction of one leg's work done, from its phase and the ``done``/``total`` count within that phase.

    The phases are weighted by their MD steps (:func:`_phase_work`), so the fraction only grows as a leg moves
    from one phase to the next (the count restarts in each phase). A leg that was resumed starts again at
    "building": its last checkpoint's iteration keeps it at the fraction it had reached.
    """
    state, phase = entry.get("state"), entry.get("phase") or "pending"
    if state == "done" or phase == "done":
        return 1.0
    total_work = sum(work.values()) or 1.0
    names = list(work)
    reached = _ORDER.get(phase, 0)
    done_work = sum(w for name, w in work.items() if _ORDER[name] < reached)
    if phase in work and entry.get("total"):
        done_work += work[phase] * min(1.0, max(0.0, (entry.get("done") or 0) / entry["total"]))
    iteration = _checkpoint_iteration(leg_dir) if leg_dir is not None and entry.get("total_iterations") else 0
    if iteration > 0:
        before = sum(work[n] for n in names[: names.index("production")])
        done_work = max(done_work, before + work["production"] * min(1.0, iteration / entry["total_iterations"]))
    return min(1.0, done_work / total_work)


def run_status(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Edges and legs of a run with their state, plus the launcher's process and log.

    Returns the dict of :func:`fep.execution.status.collect_status` (keys ``mode``, ``protocol``, ``counts``,
    ``edges``; each edge has ``state``, ``error`` and ``legs`` with ``phase``, ``done``, ``total``, ``eta_s``)
    and, from the run's results store when it has one, ``attempts``, ``worker`` and ``error`` per leg) and
    ``launch`` (``app_launch.json`` or None), ``process_alive`` (bool) and ``log_tail`` (str). Each leg also gets
    ``fraction`` (:func:`leg_fraction`); ``progress`` is the run's fraction done (the mean over its legs) and
    ``eta_s`` one estimate of the wall seconds left for the whole run (:func:`_run_eta`; None while unknown). A run
    that was launched but has not written ``run.json`` yet has empty ``edges``.
    """
    from fep.execution.status import collect_status, pid_alive

    run_dir = Path(run_dir)
    launch = read_json_object(run_dir / LAUNCH_FILE)
    alive = pid_alive(launch.get("pid")) if launch else False
    if alive and launch and launch.get("start_ticks") is not None:  # the same process, not a reused pid
        from mlfep_core.runtime import process_start

        alive = process_start(int(launch["pid"])) in (None, launch["start_ticks"])
    if (run_dir / "run.json").is_file() and (run_dir / "network.json").is_file():
        from fep.execution.rundir import RunSpec

        info = collect_status(run_dir)
        spec = RunSpec.from_json_file(run_dir / "run.json")
        works = {leg: _phase_work(spec.protocol, leg, spec.nnp) for leg in {"complex", "solvent", "vacuum"}}
        for edge in info["edges"]:
            for leg in edge["legs"]:
                leg["total_iterations"] = spec.protocol.sampler_for(leg["leg"]).n_iterations
                leg_dir = run_dir / "edges" / edge["edge"] / f"repeat_{leg.get('repeat', 0)}" / leg["leg"]
                finished = edge["state"] in ("done", "failed")
                leg["fraction"] = 1.0 if finished else leg_fraction(leg, works[leg["leg"]], leg_dir)
    else:
        info = {"run_dir": str(run_dir), "mode": "", "protocol": "", "counts": {}, "edges": []}
        if launch:
            info.update(mode=launch.get("mode", ""), protocol=launch.get("protocol", ""))
    info["launch"] = launch
    info["process_alive"] = alive
    info["log_tail"] = _log_tail(run_dir)
    info["progress"] = _progress_fraction(info["edges"])
    info["eta_s"] = _run_eta(run_dir, info)
    return info


def _progress_fraction(edges: list[dict[str, Any]]) -> float:
    fractions = [leg.get("fraction", 0.0) for edge in edges for leg in edge["legs"]]
    return sum(fractions) / len(fractions) if fractions else 0.0


def _run_eta(run_dir: Path, info: dict[str, Any]) -> float | None:
    """Wall seconds left for the whole run, from the progress this run's process has made since it started.

    ``(1 - f) × elapsed / (f - f₀)``: ``elapsed`` since the driving process started (``driver.json``), ``f₀`` the
    fraction of legs already finished before it started (a resumed run). None while it has done too little to
    tell (under 1 % of the run), when nothing runs, or when the run is over.
    """
    if not info["edges"] or not any(e["state"] in ("running", "pending") for e in info["edges"]):
        return None
    driver = read_json_object(run_dir / "driver.json")
    started = driver.get("started") if driver else None
    if not isinstance(started, int | float):
        return None
    before = 0.0
    legs = [(edge, leg) for edge in info["edges"] for leg in edge["legs"]]
    for edge, leg in legs:
        result = run_dir / "edges" / edge["edge"] / f"repeat_{leg.get('repeat', 0)}" / leg["leg"] / "leg_result.json"
        try:
            if result.stat().st_mtime < started:
                before += 1.0
        except OSError:
            continue
    f0, f = before / max(len(legs), 1), info["progress"]
    gained = f - f0
    if gained < 0.01:
        return None
    return max(0.0, (1.0 - f) * (time.time() - started) / gained)


def summarize_run(run_dir: str | os.PathLike[str]) -> RunSummary:
    """The runs-list line of one run directory (never raises for a broken run: says so in ``message``)."""
    run_dir = Path(run_dir)
    launch = read_json_object(run_dir / LAUNCH_FILE) or {}
    created = launch.get("created")
    if created is None:
        try:
            created = (run_dir / "run.json").stat().st_mtime
        except OSError:
            created = None
    try:
        info = run_status(run_dir)
    except Exception as err:  # a half-written or foreign folder must not break the list
        return RunSummary(name=run_dir.name, path=str(run_dir), state="failed", created=created, message=str(err))
    counts = {k: v for k, v in info["counts"].items() if v}
    edges = info["edges"]
    alive = info["process_alive"]
    message = ""
    if not edges:
        if alive:
            state: RunState = "starting"
            message = "reading ligands, charges and planning before the first leg"
        else:
            state = "failed"
            message = _last_error_line(info["log_tail"]) or "the run process ended before writing run.json"
    elif counts.get("running"):
        state = "running"
    elif counts.get("pending") or counts.get("interrupted"):
        state = "running" if alive else ("interrupted" if counts.get("interrupted") else "pending")
    elif counts.get("failed"):
        state = "partial" if counts.get("done") else "failed"
        message = next((e["error"] for e in edges if e["error"]), "")
    else:
        state = "done"
    return RunSummary(
        name=run_dir.name,
        path=str(run_dir),
        state=state,
        created=created,
        mode=info["mode"],
        protocol=info["protocol"],
        n_edges=len(edges),
        counts=counts,
        progress=round(info["progress"], 4),
        message=message,
    )


# ------------------------------------------------------------------------------------------ results
def run_signature(run_dir: str | os.PathLike[str]) -> tuple:
    """(path, mtime_ns) of every result file of a run: changes when a result is added or rewritten."""
    run_dir = Path(run_dir)
    files = [run_dir / "network.json", run_dir / EXPERIMENTAL_FILE]
    files += sorted((run_dir / "edges").glob("*/edge_result.json"))
    return tuple((str(p), p.stat().st_mtime_ns) for p in files if p.is_file())


@dataclass
class RunResults:
    """Everything the results page shows for one run.

    ``net`` is None when no edge has finished. ``experimental`` maps ligand name → experimental ΔG (kcal/mol).
    """

    run_dir: Path
    edges: list = field(default_factory=list)  # analysis.results.EdgeResult
    network: Any | None = None  # ligand_prep.models.Network
    net: Any | None = None  # analysis.results.NetworkResult
    experimental: dict[str, float] = field(default_factory=dict)
    experimental_values: dict[str, Any] = field(default_factory=dict)  # name -> ExperimentalValue

    @property
    def mode(self) -> str:
        return self.edges[0].mode if self.edges else (self.network.mode if self.network else "")


def load_results(run_dir: str | os.PathLike[str], *, n_bootstrap: int = 200, seed: int = 0) -> RunResults:
    """Edge results, the network and the network estimate (MLE ΔG, statistics vs experiment) of a run.

    Raises
    ------
    InputError
        The folder holds no finished or failed edge yet.
    """
    from analysis.network import analyse_network, experimental_dg
    from analysis.report import experimental_from_network, load_run_dir

    run_dir = Path(run_dir)
    edges, network = load_run_dir(run_dir)
    values = experimental_from_network(network)
    uploaded = run_dir / EXPERIMENTAL_FILE
    if uploaded.is_file():
        from ligand_prep.experimental import read_experimental

        values = {**values, **read_experimental(uploaded)}
    exp = experimental_dg(values)
    names = [lig.name for lig in network.ligands] if network is not None else []
    for e in edges:
        names.extend(n for n in (e.ligand_a, e.ligand_b) if n not in names)
    net = None
    if any(e.status == "done" for e in edges):
        net = analyse_network(edges, ligands=names, experimental=exp, n_bootstrap=n_bootstrap, seed=seed)
    return RunResults(
        run_dir=run_dir, edges=edges, network=network, net=net, experimental=exp, experimental_values=values
    )


def save_experimental(run_dir: str | os.PathLike[str], filename: str, content: bytes) -> dict[str, Any]:
    """Check an experimental-data CSV uploaded after a run and keep it as ``RUN_DIR/inputs/experimental.csv``.

    Returns the values read (name -> ExperimentalValue).

    Raises
    ------
    InputError
        Not a CSV, too large, unreadable, no ligand/name column, or no row names a ligand of the run; the
        message names the user's file.
    """
    from ligand_prep.experimental import read_experimental
    from mlfep_core import atomic_write_bytes

    run_dir = Path(run_dir)
    if not filename.lower().endswith(".csv"):
        raise InputError(f"{filename}: experimental data must be a CSV file (columns name, dg_kcal_mol or ki_nm ...)")
    if len(content) > 5_000_000:
        raise InputError(f"{filename}: {len(content) / 1e6:.1f} MB is more than the 5 MB allowed for experimental data")
    with tempfile.TemporaryDirectory(prefix="mlfep-exp-") as tmp:
        path = Path(tmp) / "experimental.csv"
        path.write_bytes(content)
        try:
            values = read_experimental(path)
        except InputError as err:
            raise InputError(str(err).replace(str(path), filename)) from None
    network = run_dir / "network.json"
    names = set()
    if network.is_file():
        names = {lig.get("name") for lig in json.loads(network.read_text()).get("ligands", [])}
    matched = {k: v for k, v in values.items() if not names or k in names}
    if not matched:
        raise InputError(f"{filename}: no row names a ligand of this run ({', '.join(sorted(names)[:5])} ...)")
    atomic_write_bytes(run_dir / EXPERIMENTAL_FILE, content)
    return matched


def run_protein(run_dir: str | os.PathLike[str], network=None) -> str | None:
    """The protein PDB of a run (``run.json``, else the network's), when the file is still there."""
    spec = read_json_object(Path(run_dir) / "run.json") or {}
    for candidate in (spec.get("protein"), getattr(network, "protein", None)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def leg_dirs(run_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """'EDGE leg (repeat N)' -> folder, for every leg that has saved configurations."""
    out = {}
    for folder in sorted(Path(run_dir).glob("edges/*/repeat_*/*")):
        if (folder / "sampler" / "snapshots").is_dir() and (folder / "hybrid" / "topology.pdb").is_file():
            repeat = folder.parent.name.removeprefix("repeat_")
            label = f"{folder.parent.parent.name} {folder.name}" + (
                f" (repeat {int(repeat) + 1})" if repeat != "0" else ""
            )
            out[label] = folder
    return out


#: Columns of the page tables that hold text even when they are empty.
_TEXT_COLUMNS = frozenset({"structure", "ligand", "edge", "status", "estimate", "verdict", "details", "smiles"})


def blank_missing(rows: list[dict[str, Any]]):
    """The rows as a DataFrame whose number columns are floats (missing values NaN), also when a column is all
    empty, so that the page shows them as numbers and, with ``placeholder=""``, missing ones as empty cells."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for column in frame.columns:
        values = frame[column]
        present = values.dropna()
        numeric = present.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool)).all()
        if numeric and (len(present) or column not in _TEXT_COLUMNS):  # an all-empty column counts as numeric
            frame[column] = pd.to_numeric(values, errors="coerce").astype(float)
    return frame


def _num(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def ligand_table(results: RunResults, *, images: bool = True) -> list[dict[str, Any]]:
    """Ranked ligands: rank, structure (image URI), ligand, ΔG, σ, estimate, MM, ML, experimental, |error|.

    Ligands without an estimate (not connected to any finished edge) come last with an empty rank.
    """
    net = results.net
    smiles = {lig.name: lig.smiles for lig in results.network.ligands} if results.network is not None else {}
    rows: list[dict[str, Any]] = []
    ranked = list(net.ranking) if net is not None else []
    others = [n for n in (list(smiles) or []) if n not in ranked]
    for e in results.edges:
        others.extend(n for n in (e.ligand_a, e.ligand_b) if n not in ranked and n not in others)
    for rank, name in enumerate([*ranked, *others], start=1):
        mm = mm_err = ml = ml_err = None
        if net is not None and name in net.dg_mm_kcal_mol:
            mm, mm_err = net.dg_mm_kcal_mol[name], net.dg_mm_err_kcal_mol[name]
            if net.dg_ml_kcal_mol is not None and name in net.dg_ml_kcal_mol:
                ml = net.dg_ml_kcal_mol[name]
                ml_err = (net.dg_ml_err_kcal_mol or {}).get(name)
        best, best_err, which = (ml, ml_err, "ML") if ml is not None else (mm, mm_err, "MM" if mm is not None else "")
        exp = results.experimental.get(name)
        value = results.experimental_values.get(name)
        rows.append(
            {
                "rank": rank if name in ranked else None,
                "structure": mol_image_uri(smiles[name]) if images and name in smiles else None,
                "ligand": name,
                "dg_kcal_mol": _num(best),
                "dg_err_kcal_mol": _num(best_err),
                "estimate": which,
                "dg_mm_kcal_mol": _num(mm),
                "dg_mm_err_kcal_mol": _num(mm_err),
                "dg_ml_kcal_mol": _num(ml),
                "dg_ml_err_kcal_mol": _num(ml_err),
                "exp_dg_kcal_mol": _num(exp),
                "exp_dg_err_kcal_mol": _num(getattr(value, "dg_err_kcal_mol", None)),
                "abs_error_kcal_mol": None if best is None or exp is None else _num(abs(best - exp)),
                "smiles": smiles.get(name, ""),
            }
        )
    return rows


def edge_table(results: RunResults) -> list[dict[str, Any]]:
    """ΔΔG per edge: MM and ML with σ, experimental ΔΔG, worst verdict and the verdict messages or error."""
    from analysis.results import worst_status

    rows = []
    exp = results.experimental
    for e in results.edges:
        done = e.status == "done"
        exp_ddg = exp[e.ligand_b] - exp[e.ligand_a] if e.ligand_a in exp and e.ligand_b in exp else None
        best = e.ddg_best[0] if done else None
        rows.append(
            {
                "edge": e.key,
                "status": e.status,
                "ddg_mm_kcal_mol": _num(e.ddg_mm_kcal_mol) if done else None,
                "ddg_mm_err_kcal_mol": _num(e.ddg_mm_err_kcal_mol) if done else None,
                "ddg_ml_kcal_mol": _num(e.ddg_ml_kcal_mol),
                "ddg_ml_err_kcal_mol": _num(e.ddg_ml_err_kcal_mol),
                "exp_ddg_kcal_mol": _num(exp_ddg),
                "abs_error_kcal_mol": None if best is None or exp_ddg is None else _num(abs(best - exp_ddg)),
                "verdict": worst_status(e.verdicts) if done else "fail",
                "details": e.error
                if not done
                else "; ".join(f"{v.name}: {v.message}" for v in e.verdicts if v.status != "pass") or e.ml_reason,
            }
        )
    return rows


_CSV_COLUMNS = (*LIGAND_HEADER, "smiles")  # the report's results.csv columns, plus the structure


def results_csv(results: RunResults) -> str:
    """The ranked ligand table as CSV text (no images)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in ligand_table(results, images=False):
        writer.writerow({k: "" if row[k] is None else row[k] for k in _CSV_COLUMNS})
    return buf.getvalue()


def predictions_sdf(results: RunResults) -> str:
    """SDF of the run's ligands (poses) with the predictions as SD properties.

    Properties: ``mlfep_rank``, ``mlfep_dg_kcal_mol``, ``mlfep_dg_err_kcal_mol``, ``mlfep_estimate`` (ML or MM),
    ``mlfep_dg_mm_kcal_mol``, ``mlfep_dg_ml_kcal_mol`` (empty values are left out), plus the ``mlfep_*`` ligand
    properties of :func:`ligand_prep.io.write_sdf`.

    Raises
    ------
    InputError
        The run has no network.json (no poses to write).
    """
    from ligand_prep.io import write_sdf

    if results.network is None:
        raise InputError(f"{results.run_dir}: no network.json, so no ligand poses to write")
    props: dict[str, dict[str, str]] = {}
    for row in ligand_table(results, images=False):
        entry = {
            "mlfep_rank": row["rank"],
            "mlfep_dg_kcal_mol": row["dg_kcal_mol"],
            "mlfep_dg_err_kcal_mol": row["dg_err_kcal_mol"],
            "mlfep_estimate": row["estimate"],
            "mlfep_dg_mm_kcal_mol": row["dg_mm_kcal_mol"],
            "mlfep_dg_ml_kcal_mol": row["dg_ml_kcal_mol"],
        }
        props[row["ligand"]] = {k: str(v) for k, v in entry.items() if v not in (None, "")}
    known = {lig.name for lig in results.network.ligands}
    props = {k: v for k, v in props.items() if k in known}
    with tempfile.TemporaryDirectory(prefix="mlfep-sdf-") as tmp:
        path = write_sdf(results.network.ligands, Path(tmp) / "predictions.sdf", properties=props)
        return path.read_text()


def report_html(run_dir: str | os.PathLike[str], *, n_bootstrap: int = 200) -> Path:
    """``RUN_DIR/report/report.html``, (re)written with :func:`analysis.report.write_report` when older than
    any result file of the run."""
    from analysis.report import load_run_dir, write_report

    run_dir = Path(run_dir)
    out = run_dir / "report"
    html = out / "report.html"
    newest = max((mtime for _, mtime in run_signature(run_dir)), default=0)
    if html.is_file() and html.stat().st_mtime_ns >= newest:
        return html
    edges, network = load_run_dir(run_dir)
    return write_report(edges, network, out, n_bootstrap=n_bootstrap, title=f"mlfep report: {run_dir.name}")[
        "report_html"
    ]


# --------------------------------------------------------------------------------------- molecules
def mol_image_uri(smiles: str, size: tuple[int, int] = (180, 120)) -> str | None:
    """A 2D depiction of ``smiles`` as a ``data:image/svg+xml;base64,...`` URI (None if it does not parse)."""
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        return None
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    drawer.drawOptions().clearBackground = False  # type: ignore[assignment]  # RDKit's stub is wrong
    rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol)
    drawer.FinishDrawing()
    svg = drawer.GetDrawingText()
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def age_text(seconds: float | None) -> str:
    """'12 s', '5 min', '2.1 h' (empty for None)."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def created_text(created: float | None) -> str:
    """Local time of a Unix timestamp as 'YYYY-MM-DD HH:MM' (empty for None)."""
    return "" if created is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(created))
