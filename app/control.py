"""Start, stop, resume and delete runs from the dashboard.

A run is the ordinary CLI, ``python -m fep run ... -o RUN_DIR``, started in its own session (its own process
group: it survives the browser and the dashboard) with its output in ``RUN_DIR/fep_run.log``. The dashboard keeps
no list of its children: a daemon thread per started process waits for it, so a finished ``fep run`` is reaped at
once and never lingers as a zombie under the dashboard.

Stop sends SIGTERM to the process that drives the run (``fep run`` treats it as Ctrl-C: the workers stop, every leg
keeps its last checkpoint), waits for it to end, and kills what is left of its process group. Resume starts
``fep run NETWORK --resume -o RUN_DIR`` with the options the run was started with (``app_launch.json``, or the
run's ``run.json`` for a run started from the command line), which is what ``fep run --resume`` requires.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.data import LAUNCH_FILE, LOG_FILE, read_json_object
from mlfep_core import InputError, atomic_write_text
from mlfep_core.runtime import process_start

__all__ = ["delete_run", "resume_command", "resume_run", "run_process", "start_detached", "stop_run"]

log = logging.getLogger(__name__)


def start_detached(command: Sequence[str], run_dir: str | os.PathLike[str]) -> subprocess.Popen:
    """Start ``command`` in ``run_dir`` in a new session, output appended to ``RUN_DIR/fep_run.log``.

    A daemon thread waits for the process, so that it is reaped the moment it ends.
    """
    run_dir = Path(run_dir)
    env = dict(os.environ)
    bin_dir = str(Path(command[0]).parent)  # AmberTools (sqm) lives beside the interpreter in the venv
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    with open(run_dir / LOG_FILE, "ab") as handle:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=str(run_dir),
            env=env,
            start_new_session=True,  # not killed with the dashboard or the browser session
            close_fds=True,
        )
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    return proc


def _alive(pid: int, start_ticks: int | None) -> bool:
    from fep.execution.status import pid_alive

    if not pid_alive(pid):
        return False
    return start_ticks is None or process_start(pid) in (None, start_ticks)


def run_process(run_dir: str | os.PathLike[str]) -> int | None:
    """The pid of the live process driving ``run_dir`` on this machine, or None.

    The ``fep run`` named in ``driver.json`` (alive, and the same process: its start time matches), else the
    process the dashboard launched (``app_launch.json``) while it is still preparing, before ``driver.json``.
    """
    from fep.execution.status import live_driver_here

    run_dir = Path(run_dir)
    pid = live_driver_here(run_dir)
    if pid is not None:
        return pid
    launch = read_json_object(run_dir / LAUNCH_FILE)
    if launch and launch.get("pid") and _alive(int(launch["pid"]), launch.get("start_ticks")):
        return int(launch["pid"])
    return None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_run(run_dir: str | os.PathLike[str], timeout_s: float = 120.0) -> str:
    """Stop the run: SIGTERM to its driving process, wait until it has ended, then kill what is left of its
    process group. Returns a sentence for the page.

    Raises
    ------
    InputError
        No process drives the run on this machine.
    """
    from fep.execution.status import pid_alive

    run_dir = Path(run_dir)
    pid = run_process(run_dir)
    if pid is None:
        raise InputError(f"{run_dir.name} is not running on this machine; there is nothing to stop")
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return f"{run_dir.name} had already ended"
    own_group = pgid == pid  # started as a session leader (by the dashboard, or `setsid`): its group is the run's
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    forced = pid_alive(pid)
    if forced:
        os.killpg(pgid, signal.SIGKILL) if own_group else os.kill(pid, signal.SIGKILL)
    if own_group:  # workers of the pool that outlived their driver
        end = time.monotonic() + 10.0
        while _group_alive(pgid) and time.monotonic() < end:
            time.sleep(0.2)
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline + 10.0:  # ended and reaped
        time.sleep(0.1)
    log.info("stopped %s (pid %d%s)", run_dir, pid, ", killed" if forced else "")
    if forced:
        return (
            f"{run_dir.name} stopped: it did not end within {timeout_s:.0f} s of being asked and was killed; "
            "Resume starts from the last checkpoint"
        )
    return f"{run_dir.name} stopped; every leg keeps its last checkpoint, and Resume goes on from there"


def resume_command(run_dir: str | os.PathLike[str], python: str | None = None) -> list[str]:
    """The ``fep run ... --resume -o RUN_DIR`` that continues ``run_dir`` with the settings it was started with.

    A run launched from the dashboard repeats its launch command (``app_launch.json``); one started from the
    command line is resumed from its ``run.json`` (protocol written to ``RUN_DIR/inputs/resume_protocol.json``)
    and ``network.json``.

    Raises
    ------
    InputError
        The folder holds no run (no ``run.json``): it never started, so there is nothing to resume.
    """
    from fep.execution.rundir import RunSpec

    run_dir = Path(run_dir).resolve()
    if not (run_dir / "run.json").is_file() or not (run_dir / "network.json").is_file():
        raise InputError(f"{run_dir.name} never got as far as its first leg; there is nothing to resume")
    launch = read_json_object(run_dir / LAUNCH_FILE)
    if launch and isinstance(launch.get("command"), list):
        command = [str(c) for c in launch["command"] if c != "--resume"]
        if python:
            command[0] = python
        return [*command, "--resume"]
    spec = RunSpec.from_json_file(run_dir / "run.json")
    protocol = run_dir / "inputs" / "resume_protocol.json"
    protocol.parent.mkdir(exist_ok=True)
    atomic_write_text(protocol, spec.protocol.model_dump_json(indent=1) + "\n")
    command = [python or sys.executable, "-m", "fep", "run", str(run_dir / "network.json"), "-o", str(run_dir)]
    command += ["--protocol", str(protocol), "--mode", spec.mode]
    command += ["--ligand-ff", "ani2x-endpoint" if spec.nnp else "sage"]
    if spec.protein:
        command += ["--protein", spec.protein]
    return [*command, "--resume"]


def resume_run(run_dir: str | os.PathLike[str], python: str | None = None) -> dict[str, Any]:
    """Continue a stopped or interrupted run (detached, like a launch); returns the updated launch record.

    Raises
    ------
    InputError
        The run is still running, or holds nothing to resume.
    """
    run_dir = Path(run_dir).resolve()
    pid = run_process(run_dir)
    if pid is not None:
        raise InputError(f"{run_dir.name} is still running (pid {pid}); stop it first or let it finish")
    command = resume_command(run_dir, python)
    proc = start_detached(command, run_dir)
    record = read_json_object(run_dir / LAUNCH_FILE) or {"created": time.time()}
    record.update(
        pid=proc.pid,
        start_ticks=process_start(proc.pid),
        command=command,
        resumed=time.time(),
        log=str(run_dir / LOG_FILE),
    )
    atomic_write_text(run_dir / LAUNCH_FILE, json.dumps(record, indent=2) + "\n")
    log.info("resumed %s (pid %d)", run_dir, proc.pid)
    return record


def delete_run(root: str | os.PathLike[str], name: str) -> Path:
    """Remove the run folder ``root/name`` and everything in it (the page asks for confirmation first).

    Raises
    ------
    InputError
        The name is not a run folder directly under ``root``, or the run is still running.
    """
    root = Path(root).expanduser().resolve()
    path = (root / name).resolve()
    if path.parent != root or not path.is_dir():
        raise InputError(f"run '{name}' not found under {root}")
    if not ((path / "run.json").is_file() or (path / LAUNCH_FILE).is_file()):
        raise InputError(f"{name} is not a run folder (no run.json); it is left alone")
    pid = run_process(path)
    if pid is not None:
        raise InputError(f"{name} is still running (pid {pid}); stop it before deleting it")
    shutil.rmtree(path)
    log.info("deleted %s", path)
    return path
