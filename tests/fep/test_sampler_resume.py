"""Kill -9 in the middle of production, resume, and compare with an uninterrupted run of the same seed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openmm")

from fep.sampling.hrex import HREXSampler, SamplerSettings, load_samples

N_ITERATIONS = 160
CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import openmm
    import openmm.app as app
    from fep.sampling.hrex import HREXSampler, SamplerSettings

    def toy():
        system = openmm.System()
        well = openmm.CustomExternalForce("0.5*k*(x^2+y^2+z^2)")
        well.addGlobalParameter("k", 1000.0)
        for i in range(3):
            system.addParticle(12.0)
            well.addParticle(i, [])
        system.addForce(well)
        topology = app.Topology()
        chain = topology.addChain()
        for _ in range(3):
            topology.addAtom("C", app.Element.getBySymbol("C"), topology.addResidue("TOY", chain))
        return system, topology, np.full((3, 3), 0.01)

    SETTINGS = dict(
        pressure=None, steps_per_iteration=4000, n_iterations=80, minimization_max_iterations=10,
        equilibration_nvt_steps=200, equilibration_npt_steps=0, platform="Reference",
        checkpoint_interval_s=0.02, snapshot_interval=4,
    )
    STATES = [{"k": k} for k in (1000.0, 1300.0, 1700.0)]

    if __name__ == "__main__":
        system, topology, positions = toy()
        settings = SamplerSettings(**{**SETTINGS, "n_iterations": int(sys.argv[2]), "checkpoint_interval_s": float(sys.argv[3])})
        HREXSampler(system, topology, positions, None, STATES, settings, sys.argv[1]).run()
    """
)


def _load_child(tmp_path: Path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    namespace: dict = {}
    exec(compile(CHILD, str(script), "exec"), namespace)  # the same system and settings in this process
    return script, namespace


def _checkpoint_iteration(folder: Path) -> int:
    try:
        return json.loads((folder / "checkpoint.json").read_text())["iteration"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return -1


def _run_in_process(namespace, folder: Path, n_iterations: int, interval: float = 0.02):
    system, topology, positions = namespace["toy"]()
    settings = SamplerSettings(
        **{**namespace["SETTINGS"], "n_iterations": n_iterations, "checkpoint_interval_s": interval}
    )
    return HREXSampler(system, topology, positions, None, namespace["STATES"], settings, folder).run()


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    script, namespace = _load_child(tmp_path)
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen(
        [sys.executable, str(script), str(killed), str(N_ITERATIONS), "0.02"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while _checkpoint_iteration(killed) < 8:
            assert child.poll() is None, child.stdout.read().decode()
            assert time.monotonic() < deadline, "the child never reached iteration 8"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    at_kill = _checkpoint_iteration(killed)
    assert 8 <= at_kill < N_ITERATIONS, "killed mid-production"

    # resume twice from the same checkpoint: identical (the checkpoint fixes every random stream)
    copy = tmp_path / "killed-copy"
    shutil.copytree(killed, copy)
    summary = _run_in_process(namespace, killed, N_ITERATIONS)
    assert summary.resumed_from_iteration == at_kill and summary.iterations_this_call == N_ITERATIONS - at_kill
    _run_in_process(namespace, copy, N_ITERATIONS, interval=5.0)
    resumed, resumed_again = load_samples(killed), load_samples(copy)
    assert np.array_equal(resumed.energies, resumed_again.energies)
    assert np.array_equal(resumed.replica_states, resumed_again.replica_states)

    # no iteration lost or duplicated; rows before the checkpoint identical to an uninterrupted run
    reference = tmp_path / "reference"
    _run_in_process(namespace, reference, N_ITERATIONS)
    uninterrupted = load_samples(reference)
    assert (resumed.iterations == np.arange(N_ITERATIONS)).all() and resumed.energies.shape == (N_ITERATIONS, 3, 3)
    assert np.array_equal(resumed.energies[:at_kill], uninterrupted.energies[:at_kill])
    assert np.array_equal(resumed.replica_states[:at_kill], uninterrupted.replica_states[:at_kill])
    assert np.array_equal(resumed.accepted_nkl[:at_kill], uninterrupted.accepted_nkl[:at_kill])
    assert not np.array_equal(resumed.energies[at_kill:], uninterrupted.energies[at_kill:])  # new random streams
    # end-state frames: one every 4 iterations, none duplicated
    assert (resumed.end_state_iterations(0) == np.arange(3, N_ITERATIONS, 4)).all()
    assert resumed.end_state_frames(-1)[0].shape == (N_ITERATIONS // 4, 3, 3)


def test_resume_discards_files_written_after_the_checkpoint(tmp_path):
    _, namespace = _load_child(tmp_path)
    folder = tmp_path / "run"
    _run_in_process(namespace, folder, 12, interval=0.0)
    checkpoint = json.loads((folder / "checkpoint.json").read_text())
    # fake a crash between writing a chunk and the checkpoint naming it
    (folder / "data" / "iter_000000012_000000020.npz").write_bytes(b"partial")
    (folder / "snapshots" / ".state0_x.tmp.xtc").write_bytes(b"partial")
    summary = _run_in_process(namespace, folder, 20)
    assert summary.resumed_from_iteration == checkpoint["iteration"] == 12
    data = load_samples(folder)
    assert (data.iterations == np.arange(20)).all()
    assert not (folder / "snapshots" / ".state0_x.tmp.xtc").exists()
    final = json.loads((folder / "checkpoint.json").read_text())
    assert {f"data/{p.name}" for p in (folder / "data").iterdir()} == {c["file"] for c in final["chunks"]}
    assert b"partial" not in b"".join(p.read_bytes()[:7] for p in (folder / "data").iterdir())
    previous = json.loads((folder / "checkpoint.prev.json").read_text())
    kept = {f"state/{p.name}" for p in (folder / "state").iterdir()}
    assert kept == {final["state_file"], previous["state_file"]}  # older replica states are removed


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted run of the toy sampler: what every killed-and-resumed run must reproduce."""
    folder = tmp_path_factory.mktemp("reference")
    _, namespace = _load_child(folder)
    started = time.monotonic()
    _run_in_process(namespace, folder / "run", N_ITERATIONS)
    return load_samples(folder / "run"), time.monotonic() - started


def _kill_at_random_and_resume(tmp_path: Path, reference, seed: int) -> int:
    """SIGKILL the sampler after a random delay (equilibration, a checkpoint write, production...), resume it,
    and check the result against the uninterrupted run; returns the iteration the kill left on disk."""
    data_ref, wall = reference
    script, namespace = _load_child(tmp_path)
    folder = tmp_path / f"killed-{seed}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    delay = float(np.random.default_rng(seed).uniform(0.5, 0.5 + 0.9 * wall))  # after python and openmm load
    child = subprocess.Popen([sys.executable, str(script), str(folder), str(N_ITERATIONS), "0.02"], env=env)
    try:
        time.sleep(delay)
        child.kill()
    finally:
        child.wait(timeout=30)
    at_kill = _checkpoint_iteration(folder)
    _run_in_process(namespace, folder, N_ITERATIONS)
    resumed = load_samples(folder)
    assert (resumed.iterations == np.arange(N_ITERATIONS)).all(), f"seed {seed}: iterations lost or repeated"
    keep = max(at_kill, 0)
    assert np.array_equal(resumed.energies[:keep], data_ref.energies[:keep]), f"seed {seed}"
    assert np.array_equal(resumed.replica_states[:keep], data_ref.replica_states[:keep]), f"seed {seed}"
    assert (resumed.end_state_iterations(0) == np.arange(3, N_ITERATIONS, 4)).all(), f"seed {seed}"
    return at_kill


def test_a_few_random_kills_resume_to_the_same_run(tmp_path, reference_run):
    for seed in (1, 2, 3):
        _kill_at_random_and_resume(tmp_path, reference_run, seed)


@pytest.mark.slow
def test_twenty_random_kills_resume_to_the_same_run(tmp_path, reference_run):
    at = [_kill_at_random_and_resume(tmp_path, reference_run, seed) for seed in range(100, 120)]
    print(f"checkpoint iteration left by each of the 20 kills: {at}")
    # the kills spread over the run: before the first checkpoint, in production, near the end
    assert min(at) <= 0 < max(at) and len(set(at)) >= 10, at
