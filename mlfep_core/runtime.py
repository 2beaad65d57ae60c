"""The one process set-up of mlfep: logging, warning filters and the tools' PATH.

Library modules never change global state (loggers' levels, warning filters, ``os.environ``); the entry points
do, once, by calling :func:`configure_process`: the ``fep`` CLI, every worker process of the local and Dask
executors, the dashboard and the test suite. The filters are targeted: each names one known third-party
warning, so a new warning (ours or theirs) still shows.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import warnings
from pathlib import Path

__all__ = [
    "KNOWN_THIRD_PARTY_WARNINGS",
    "QUIET_LOGGERS",
    "configure_process",
    "filter_known_warnings",
    "process_start",
    "tools_path",
]

#: (category name, message regex, module regex) of third-party warnings that say nothing to a user of mlfep.
KNOWN_THIRD_PARTY_WARNINGS: tuple[tuple[str, str, str], ...] = (
    # openff-interchange walks every module's globals and touches torch's deprecated alias
    ("FutureWarning", r"`torch\.distributed\.reduce_op` is deprecated", r"openff\.interchange"),
    # openff-interchange, whenever a ligand's (our prepared) charges are used as they are meant to be
    ("Warning", r"Preset charges were provided", r"openff\.interchange"),
    # torchani's optional compiled CUDA extensions (cuaev...), which the CPU paths never use
    ("UserWarning", r"The extensions: .* are not installed", r"torchani"),
    # pkg_resources, imported by some of the OpenFF and OpenMM plugins
    ("DeprecationWarning", r"pkg_resources is deprecated", r".*"),
    ("UserWarning", r"pkg_resources is deprecated", r".*"),
    ("DeprecationWarning", r"Deprecated call to `pkg_resources", r".*"),
    # pymbar 4's timeseries module announces itself
    ("UserWarning", r"Warning on use of the timeseries module", r"pymbar"),
)

#: Third-party loggers and the level below which their records are dropped.
QUIET_LOGGERS: dict[str, int] = {
    "pint": logging.ERROR,  # unit-registry redefinition notices (openff-units and openmm both define units)
    "pymbar.mbar_solvers": logging.ERROR,  # 'JAX not found' banner
    "pymbar.timeseries": logging.ERROR,
    "openff.interchange": logging.WARNING,  # one 'Preset charges applied' line per ligand atom at INFO
    "openff.toolkit": logging.WARNING,
    "torchani": logging.WARNING,
    "distributed": logging.WARNING,
    "streamlit": logging.WARNING,
}

_configured: dict[str, bool] = {}


def _category(name: str) -> type[Warning]:
    import builtins

    return getattr(builtins, name)


def filter_known_warnings() -> None:
    """Ignore the :data:`KNOWN_THIRD_PARTY_WARNINGS` (and nothing else)."""
    for category, message, module in KNOWN_THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=_category(category), module=module)
    # PresetChargesAndVirtualSitesWarning is not a builtin category; its message is matched above for any module
    warnings.filterwarnings("ignore", message=r"Preset charges were provided")


def tools_path() -> str | None:
    """The PATH with the interpreter's bin folder (where pip puts AmberTools' antechamber and sqm) in front, or
    None when the tools are already found."""
    if shutil.which("antechamber") and shutil.which("sqm"):
        return None
    bindir = Path(sys.executable).parent
    if not (bindir / "antechamber").exists():
        return None
    return f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


def configure_process(verbose: bool = False, *, log_format: str | None = None) -> None:
    """Set up this process for mlfep: warning filters, logging on stderr, AmberTools on PATH. Idempotent.

    Parameters
    ----------
    verbose : bool
        INFO-level progress from mlfep's modules (default WARNING only). Known third-party warnings stay
        filtered either way.
    log_format : str, optional
        ``logging`` format of the root handler.
    """
    filter_known_warnings()
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    root = logging.getLogger()
    if not _configured.get("logging"):
        logging.basicConfig(
            level=logging.INFO if verbose else logging.WARNING,
            format=log_format or "%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        _configured["logging"] = True
    elif verbose:
        root.setLevel(logging.INFO)
    path = tools_path()
    if path is not None:
        os.environ["PATH"] = path


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22), or None without /proc.

    Recorded with a pid so that a pid the system has given to another process since (pid_max is 32,768 here:
    pids wrap within hours on a busy machine) is not taken for the process that is gone.
    """
    try:
        with open(f"/proc/{int(pid)}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
