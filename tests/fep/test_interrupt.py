"""Interrupting `fep run`: Ctrl-C stops the driver and its workers and --resume completes; a worker whose driver
was killed stops by itself, `fep status` says so, and --resume finishes with no failed leg."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fep.cli import main
from tests.tiny import TINY_PROTOCOL

N_ITERATIONS = 40
LIGANDS = "name,smiles\nbenzene,c1ccccc1\ntoluene,Cc1ccccc1\n"


@pytest.fixture
def inputs(tmp_path, charge_cache, monkeypatch):
    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    (tmp_path / "ligands.csv").write_text(LIGANDS)
    protocol = dict(TINY_PROTOCOL, sampler={**TINY_PROTOCOL["sampler"], "n_iterations": N_ITERATIONS})
    (tmp_path / "longer.json").write_text(json.dumps(protocol))
    args = ["run", "--edge", "benzene,toluene", "--ligands", str(tmp_path / "ligands.csv"), "--mode", "hydration"]
    return [*args, "--protocol", str(tmp_path / "longer.json"), "-o", str(tmp_path / "r"), "--workers", "1"]


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fep", *args],
        start_new_session=True,  # its own process group, as a shell gives a foreground job
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _wait_for_production(run_dir, proc, timeout_s: float = 600) -> int:
    """Block until a leg is in production (a few iterations in); returns the worker's pid."""
    from fep.execution.store import open_store

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        if not (run_dir / "mlfep.sqlite").exists():
            continue
        try:
            store = open_store(run_dir)
            runs = store.list_runs()
            jobs = store.run_jobs(runs[0]["id"]) if runs else []
            store.close()
        except Exception:
            continue
        running = [j for j in jobs if j["phase"] == "production" and 2 <= (j["done"] or 0) < N_ITERATIONS]
        if running:
            return int(running[0]["worker"].rsplit(":", 1)[1])
    raise AssertionError(f"the run never reached production (exit {proc.poll()}): {proc.stderr.read()}")


def _group_members(pgid: int) -> list[str]:
    """Live (not zombie) processes of process group ``pgid``, as 'pid command'."""
    out = []
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            with open(f"/proc/{stat}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{stat}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")[:120]
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(f"{stat} {command}")
    return out


def _group_alive(pgid: int) -> bool:
    return bool(_group_members(pgid))


def _gone_within(check, seconds: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not check():
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def _assert_resumed(args, run_dir) -> None:
    assert main([*args, "--resume"]) == 0
    result = json.loads((run_dir / "edges" / "benzene~toluene" / "edge_result.json").read_text())
    assert result["status"] == "done"
    for leg in ("solvent", "vacuum"):
        leg_dir = run_dir / "edges" / "benzene~toluene" / "repeat_0" / leg
        assert json.loads((leg_dir / "leg_result.json").read_text())["n_iterations"] == N_ITERATIONS


def test_ctrl_c_stops_every_process_and_resume_completes(inputs, tmp_path):
    run_dir = tmp_path / "r"
    proc = _start(inputs)
    try:
        _wait_for_production(run_dir, proc)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        took = _gone_within(lambda: _group_alive(proc.pid), 15.0)
        left = _group_members(proc.pid)
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert took is not None, f"processes of the run still alive 15 s after Ctrl-C: {left}"
    err = proc.stderr.read()
    assert proc.returncode == 130 and "interrupted: the workers are stopped" in err and "Traceback" not in err
    assert not (run_dir / "edges" / "benzene~toluene" / "edge_result.json").exists()  # nothing half-reported
    _assert_resumed(inputs, run_dir)


@pytest.mark.slow
def test_a_worker_stops_when_its_driver_is_killed_and_resume_finishes(inputs, tmp_path, capsys):
    run_dir = tmp_path / "r"
    proc = _start(inputs)
    try:
        worker = _wait_for_production(run_dir, proc)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: no clean-up of any kind
        proc.wait()

        def worker_alive() -> bool:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                return False
            return True

        took = _gone_within(worker_alive, 10.0)
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert took is not None, "the orphaned worker was still running 10 s after its driver was killed"
    assert main(["status", str(run_dir), "--json"]) == 0
    states = {leg["state"] for edge in json.loads(capsys.readouterr().out)["edges"] for leg in edge["legs"]}
    assert "running" not in states and "interrupted" in states
    _assert_resumed(inputs, run_dir)
