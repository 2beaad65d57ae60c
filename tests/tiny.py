"""The tiny protocol the end-to-end tests run with: real systems and sampling, seconds of work."""

from __future__ import annotations

TINY_PROTOCOL = {
    "base": "smoke",
    "name": "tiny",
    "n_windows": 3,
    "sampler": {
        "steps_per_iteration": 50,
        "n_iterations": 6,
        "minimization_max_iterations": 50,
        "equilibration_nvt_steps": 100,
        "equilibration_npt_steps": 100,
        "snapshot_interval": 1,
        "checkpoint_interval_s": 0.0,
    },
}
