"""Equilibration of the K windows of a replica-exchange run: each state from the starting frame, minimised,
thermalised, NVT, then NPT (when a pressure is set), one window after another in the engine's context."""

from __future__ import annotations

import time

import numpy as np

from fep.sampling.engine import EnergyEngine, stream_seed
from fep.sampling.reporters import ProgressReporter
from fep.sampling.settings import SamplerSettings

__all__ = ["equilibrate_windows"]


def equilibrate_windows(
    engine: EnergyEngine,
    settings: SamplerSettings,
    positions: np.ndarray,
    box: np.ndarray | None,
    timestep_fs: float,
    attempt: int,
    reporter: ProgressReporter,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions, velocities and boxes (K, N, 3 / K, 3, 3; zero boxes when not periodic) of the equilibrated
    windows. ``attempt`` (0, 1, ... after blow-ups) changes every random stream.

    Raises
    ------
    BlowUp
        A window's minimisation or dynamics failed.
    """
    t_start = time.monotonic()
    n, n_atoms = len(engine.states), len(positions)
    pos = np.empty((n, n_atoms, 3))
    vel = np.empty((n, n_atoms, 3))
    boxes = np.zeros((n, 3, 3))
    # with no NVT work to do, start in the production (NPT) context right away: one context creation less
    npt_now = engine.npt and settings.minimization_max_iterations == 0 and settings.equilibration_nvt_steps == 0
    engine.make_context(barostat=npt_now, timestep_fs=timestep_fs, salt=1_000_000 + attempt)
    nvt_ns = settings.equilibration_nvt_steps * timestep_fs * 1e-6
    for k in range(n):
        engine.apply_state(k)
        engine.load(positions, None, box)
        if settings.minimization_max_iterations > 0:
            engine.minimize(settings.minimization_max_iterations, k, positions, box)
        engine.thermalize(stream_seed(settings.seed, k, attempt, 11))
        start_pos, _, start_box = engine.read()
        engine.step(settings.equilibration_nvt_steps, k, k, start_pos, start_box)
        pos[k], vel[k], box_k = engine.read()
        engine.check_finite(pos[k], k, k, start_pos, start_box)
        boxes[k] = box_k if box_k is not None else 0.0
        reporter.windows("equilibration_nvt", k + 1, n, nvt_ns * (k + 1) / n, nvt_ns, t_start)
    if not engine.npt:
        return pos, vel, boxes
    if not npt_now:
        engine.make_context(barostat=True, timestep_fs=timestep_fs, salt=2_000_000 + attempt)
    npt_ns = settings.equilibration_npt_steps * timestep_fs * 1e-6
    t_phase = time.monotonic()
    for k in range(n):
        engine.apply_state(k)
        engine.load(pos[k], vel[k], boxes[k])
        start_pos, start_box = pos[k].copy(), boxes[k].copy()
        engine.step(settings.equilibration_npt_steps, k, k, start_pos, start_box)
        pos[k], vel[k], box_k = engine.read()
        engine.check_finite(pos[k], k, k, start_pos, start_box)
        boxes[k] = box_k
        reporter.windows("equilibration_npt", k + 1, n, npt_ns * (k + 1) / n, npt_ns, t_phase)
    return pos, vel, boxes
