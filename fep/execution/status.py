"""The state of a run directory: which edges and legs are done, running, interrupted, failed or pending.

Read by ``fep status`` and by the dashboard; it reads the results store and the run's files and starts nothing.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from mlfep_core import InputError
from mlfep_core.constants import LEGS_FOR_MODE
from mlfep_core.runtime import process_start

__all__ = ["collect_status", "driver_alive", "live_driver_here", "pid_alive"]


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, i.e. finished but not yet reaped, does not count)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _store_jobs(run_dir: Path) -> dict[tuple, dict] | None:
    """Jobs of the run from RUN_DIR/mlfep.sqlite keyed by (edge, leg, repeat); None without a store."""
    if not (run_dir / "mlfep.sqlite").exists():
        return None
    from fep.execution.store import open_store

    try:
        store = open_store(run_dir)
        run_id = store.run_id(run_dir)
        rows = store.run_jobs(run_id) if run_id is not None else []
        store.close()
    except Exception:  # a damaged or foreign store: the files still tell the story
        return None
    return {(r["edge"], r["leg"], r["repeat"]): r for r in rows}


def _alive(worker: str | None) -> bool | None:
    """Whether the ``host:pid`` worker still runs (None when it is on another host)."""
    if not worker or ":" not in worker:
        return None
    host, pid = worker.rsplit(":", 1)
    if host != socket.gethostname():
        return None
    return pid_alive(int(pid))


def driver_alive(run_dir: Path) -> bool:
    """Whether the process driving the run (``RUN_DIR/driver.json``) still runs; True when it is on another host."""
    try:
        record = json.loads((run_dir / "driver.json").read_text())
    except (OSError, ValueError):
        return False
    alive = _alive(f"{record.get('host')}:{record.get('pid')}")
    if alive and record.get("start_ticks") is not None:
        alive = process_start(int(record["pid"])) in (None, record["start_ticks"])
    return True if alive is None else alive


def live_driver_here(run_dir: Path) -> int | None:
    """The pid of a `fep run` on this host that still drives ``run_dir`` (not this process), or None.

    Stricter than :func:`driver_alive`: the pid must be alive *and* be an mlfep process (a pid reused by another
    program does not count), so a dead driver's stale record never blocks a resume.
    """
    try:
        record = json.loads((run_dir / "driver.json").read_text())
        pid = int(record.get("pid"))
    except (OSError, ValueError, TypeError):
        return None
    if record.get("host") != socket.gethostname() or pid == os.getpid() or not pid_alive(pid):
        return None
    started = record.get("start_ticks")
    if started is not None and process_start(pid) not in (None, started):
        return None  # the pid now belongs to another process
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return pid  # no /proc: trust the pid
    return pid if "fep" in command else None


def collect_status(run_dir: Path) -> dict:
    """Edges and legs of a run directory with their state (done / running / interrupted / failed / pending).

    A leg may also be ``queued`` (waiting for a worker after an earlier attempt); a leg whose store row says
    ``running`` but whose worker process (on this host) is gone is ``interrupted``.

    Reads the results store (RUN_DIR/mlfep.sqlite: job state, attempts, error, worker, progress) and falls back
    to the files (status.json, leg_result.json, edge_result.json) for runs without one.
    """
    from fep.execution.rundir import RunSpec
    from ligand_prep.models import Network

    if not (run_dir / "run.json").exists():
        raise InputError(f"{run_dir}: not a run directory (run.json missing); start one with `fep run -o {run_dir}`")
    spec = RunSpec.from_json_file(run_dir / "run.json")
    network = Network.from_json_file(run_dir / "network.json")
    jobs = _store_jobs(run_dir)
    edges = []
    for mapping in network.edges:
        folder = run_dir / "edges" / mapping.key
        entry: dict[str, Any] = {"edge": mapping.key, "state": "pending", "legs": [], "error": None}
        result_path = folder / "edge_result.json"
        if result_path.exists():
            data = json.loads(result_path.read_text())
            entry["state"] = "done" if data.get("status") == "done" else "failed"
            entry["error"] = data.get("error")
            entry["ddg_mm_kcal_mol"] = data.get("ddg_mm_kcal_mol")
            entry["ddg_ml_kcal_mol"] = data.get("ddg_ml_kcal_mol")
        for r in range(spec.protocol.repeats):
            for leg in LEGS_FOR_MODE[spec.mode]:
                leg_dir = folder / f"repeat_{r}" / leg
                leg_entry = {"leg": leg, "repeat": r, "state": "pending"}
                job = jobs.get((mapping.key, leg, r)) if jobs else None
                status_path = leg_dir / "status.json"
                if job is not None:
                    state = job["state"]  # queued / running / done / failed
                    if state == "queued" and job["attempts"] == 0 and not status_path.exists():
                        state = "pending"
                    if state == "running" and _alive(job["worker"]) is False:
                        state = "interrupted"
                    leg_entry.update(
                        state=state,
                        attempts=job["attempts"],
                        error=job["error"],
                        traceback_file=job["traceback_file"],
                        worker=job["worker"],
                        phase=job["phase"],
                        done=job["done"],
                        total=job["total"],
                        eta_s=job["eta_s"],
                    )
                elif (leg_dir / "leg_result.json").exists():
                    leg_entry["state"] = "done"
                elif status_path.exists():
                    st = json.loads(status_path.read_text())
                    alive = pid_alive(int(st["pid"]))
                    leg_entry.update(
                        state="running" if alive else "interrupted",
                        phase=st["phase"],
                        done=st["done"],
                        total=st["total"],
                        eta_s=st["eta_s"],
                    )
                entry["legs"].append(leg_entry)
        if entry["state"] == "pending" and any(leg["state"] != "pending" for leg in entry["legs"]):
            states = {leg["state"] for leg in entry["legs"]}
            if states == {"done"}:  # every leg sampled, no edge_result.json yet: the run is combining the legs
                entry["state"] = "running" if driver_alive(run_dir) else "interrupted"
            else:
                entry["state"] = "running" if "running" in states else "interrupted"
        edges.append(entry)
    counts = {s: sum(e["state"] == s for e in edges) for s in ("done", "running", "interrupted", "failed", "pending")}
    return {
        "run_dir": str(run_dir),
        "mode": spec.mode,
        "protocol": spec.protocol.name,
        "source": "store" if jobs is not None else "files",
        "counts": counts,
        "edges": edges,
    }
