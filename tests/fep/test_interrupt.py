"""Interrupting `fep run`: Ctrl-C stops the driver and its workers and --resume completes; a worker whose driver
was killed stops by itself, `fep status` says so, and --resume finishes with no failed leg."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from fep.cli import main
from tests.fep.processes import alive, gone_within, group_members, kill_group, start_fep, wait_for_production
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


def _assert_resumed(args, run_dir) -> None:
    assert main([*args, "--resume"]) == 0
    result = json.loads((run_dir / "edges" / "benzene~toluene" / "edge_result.json").read_text())
    assert result["status"] == "done"
    for leg in ("solvent", "vacuum"):
        leg_dir = run_dir / "edges" / "benzene~toluene" / "repeat_0" / leg
        assert json.loads((leg_dir / "leg_result.json").read_text())["n_iterations"] == N_ITERATIONS


def test_ctrl_c_stops_every_process_and_resume_completes(inputs, tmp_path):
    run_dir = tmp_path / "r"
    proc = start_fep(inputs)
    try:
        wait_for_production(run_dir, proc, N_ITERATIONS)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        took = gone_within(lambda: bool(group_members(proc.pid)), 15.0)
        left = group_members(proc.pid)
    finally:
        kill_group(proc)
    here = signal.getsignal(signal.SIGINT)
    assert took is not None, f"processes of the run still alive 15 s after Ctrl-C: {left} (SIGINT here: {here})"
    err = proc.stderr.read()
    assert proc.returncode == 130 and "interrupted: the workers are stopped" in err and "Traceback" not in err
    assert not (run_dir / "edges" / "benzene~toluene" / "edge_result.json").exists()  # nothing half-reported
    _assert_resumed(inputs, run_dir)


@pytest.mark.slow
def test_a_worker_stops_when_its_driver_is_killed_and_resume_finishes(inputs, tmp_path, capsys):
    run_dir = tmp_path / "r"
    proc = start_fep(inputs)
    try:
        worker, _ = wait_for_production(run_dir, proc, N_ITERATIONS)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: no clean-up of any kind
        proc.wait()
        took = gone_within(lambda: alive(worker), 10.0)
    finally:
        kill_group(proc)
    assert took is not None, "the orphaned worker was still running 10 s after its driver was killed"
    assert main(["status", str(run_dir), "--json"]) == 0
    states = {leg["state"] for edge in json.loads(capsys.readouterr().out)["edges"] for leg in edge["legs"]}
    assert "running" not in states and "interrupted" in states
    _assert_resumed(inputs, run_dir)


# ------------------------------------------------------------------------------------------ random kills
KILL_ITERATIONS = 16
LEGS = ("solvent", "vacuum")


@pytest.fixture(scope="module")
def kill_args(tmp_path_factory, charge_cache):
    """Arguments of a tiny run (without -o)."""
    folder = tmp_path_factory.mktemp("kills")
    (folder / "ligands.csv").write_text(LIGANDS)
    protocol = dict(TINY_PROTOCOL, sampler={**TINY_PROTOCOL["sampler"], "n_iterations": KILL_ITERATIONS})
    (folder / "protocol.json").write_text(json.dumps(protocol))
    args = ["run", "--edge", "benzene,toluene", "--ligands", str(folder / "ligands.csv"), "--mode", "hydration"]
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    yield [*args, "--protocol", str(folder / "protocol.json"), "--workers", "1"]
    mp.undo()


@pytest.fixture(scope="module")
def kill_reference(kill_args, tmp_path_factory):
    """The edge result of one uninterrupted run."""
    run_dir = tmp_path_factory.mktemp("reference") / "r"
    assert main([*kill_args, "-o", str(run_dir)]) == 0
    return json.loads((run_dir / "edges" / "benzene~toluene" / "edge_result.json").read_text())


def _committed(run_dir) -> dict[str, np.ndarray]:
    """Per leg, the energies its last checkpoint holds (nothing for a leg without one)."""
    from fep.sampling.storage import load_samples

    out = {}
    for leg in LEGS:
        folder = run_dir / "edges" / "benzene~toluene" / "repeat_0" / leg / "sampler"
        if (folder / "checkpoint.json").exists():
            out[leg] = load_samples(folder).energies.copy()
    return out


def _kill_at_random_and_resume(tmp_path, args, reference, seed: int, capsys=None) -> str:
    """SIGKILL the driver or the worker of a running `fep run` at a random point of production; then the run must
    finish (by itself when the worker died, with --resume when the driver did) with every leg complete, every
    iteration committed before the kill unchanged, and (``reference``: an uninterrupted run's edge result) a ΔΔG
    that agrees with the uninterrupted run's."""
    from fep.sampling.storage import load_samples

    rng = np.random.default_rng(seed)
    target = "driver" if rng.random() < 0.5 else "worker"
    run_dir = tmp_path / f"killed-{seed}"
    args = [*args, "-o", str(run_dir)]
    log = tmp_path / f"stderr-{seed}.txt"
    with open(log, "w") as stderr:
        proc = start_fep(args, stderr=stderr)
    try:
        worker, _ = wait_for_production(run_dir, proc, KILL_ITERATIONS, min_done=0)
        time.sleep(float(rng.uniform(0.0, 3.0)))  # anywhere in a leg's production, a checkpoint write, the next leg
        try:
            os.kill(proc.pid if target == "driver" else worker, signal.SIGKILL)
        except ProcessLookupError:  # the worker had moved on or the run had finished
            pass
        before = _committed(run_dir)
        if target == "driver":
            proc.wait()
            assert gone_within(lambda: alive(worker), 15.0) is not None, f"seed {seed}: orphaned worker lives on"
            if capsys is not None:
                capsys.readouterr()
            code = main([*args, "--resume"])
            if code != 0 and capsys is not None:
                log.write_text(log.read_text() + "\n--- the resume:\n" + capsys.readouterr().err)
        else:
            code = proc.wait(timeout=600)  # the driver retries the leg the dead worker had
    finally:
        kill_group(proc)
    tail = "\n".join(log.read_text().splitlines()[-15:])
    assert code == 0, f"seed {seed} ({target} killed): exit {code}; fep run's stderr ends:\n{tail}"
    result = json.loads((run_dir / "edges" / "benzene~toluene" / "edge_result.json").read_text())
    assert result["status"] == "done", f"seed {seed}: {result.get('error')}"
    for leg in LEGS:
        data = load_samples(run_dir / "edges" / "benzene~toluene" / "repeat_0" / leg / "sampler")
        assert (data.iterations == np.arange(KILL_ITERATIONS)).all(), f"seed {seed} {leg}: iterations lost or twice"
        kept = before.get(leg)
        if kept is not None:
            assert np.array_equal(data.energies[: len(kept)], kept), f"seed {seed} {leg}: committed iterations changed"
    if reference is None:
        return target
    sigma = np.hypot(result["ddg_mm_err_kcal_mol"], reference["ddg_mm_err_kcal_mol"])
    assert abs(result["ddg_mm_kcal_mol"] - reference["ddg_mm_kcal_mol"]) < 4 * sigma + 0.05, f"seed {seed}"
    return target


def test_a_killed_worker_is_replaced_and_the_run_completes(tmp_path, kill_args):
    """One trial in the fast suite (a driver killed with its workers: test_executors; the sampler: 3 random kills
    in test_sampler_resume)."""
    assert _kill_at_random_and_resume(tmp_path, kill_args, None, seed=1) == "worker"


@pytest.mark.slow
def test_twenty_random_kills_of_driver_or_worker_resume_to_complete_runs(tmp_path, kill_args, kill_reference, capsys):
    targets = [_kill_at_random_and_resume(tmp_path, kill_args, kill_reference, s, capsys) for s in range(300, 320)]
    print(f"killed: {targets.count('driver')} drivers, {targets.count('worker')} workers; 20 of 20 resumed")
    assert 5 <= targets.count("driver") <= 15


def test_a_dead_drivers_pid_given_to_another_process_does_not_block_a_resume(tmp_path):
    """driver.json records the driver's pid and start time: a live process that has the same pid later (pids wrap)
    is not taken for the driver, while the real driver is."""
    import socket
    import sys

    from fep.execution.status import driver_alive, live_driver_here
    from mlfep_core.runtime import process_start

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # a fep look-alike"])
    try:
        started = process_start(other.pid)
        assert started is not None
        record = {"host": socket.gethostname(), "pid": other.pid, "start_ticks": started, "started": 0.0}
        (tmp_path / "driver.json").write_text(json.dumps(record))
        assert live_driver_here(tmp_path) == other.pid and driver_alive(tmp_path)
        (tmp_path / "driver.json").write_text(json.dumps({**record, "start_ticks": started - 1}))
        assert live_driver_here(tmp_path) is None and not driver_alive(tmp_path)
    finally:
        other.kill()
        other.wait()
