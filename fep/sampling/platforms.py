"""OpenMM platform selection: the fastest platform that actually works here, with its precision properties.

``auto`` tries CUDA, then OpenCL, then CPU (each checked by creating a one-particle context, so a CUDA
platform without a usable GPU is skipped); ``Reference`` is used only when asked for by name.
"""

from __future__ import annotations

import logging
from typing import Literal

from mlfep_core import InputError, PlatformError

__all__ = ["PlatformError", "PlatformName", "Precision", "platform_properties", "select_platform"]

logger = logging.getLogger(__name__)

PlatformName = Literal["auto", "CUDA", "OpenCL", "CPU", "Reference"]
Precision = Literal["single", "mixed", "double"]

_AUTO_ORDER = ("CUDA", "OpenCL", "CPU")
_PRECISION_PLATFORMS = ("CUDA", "OpenCL", "HIP")


def platform_properties(platform_name: str, precision: str = "mixed") -> dict[str, str]:
    """Context properties for ``platform_name``: the precision on GPU platforms, nothing elsewhere.

    Parameters
    ----------
    platform_name : str
        An OpenMM platform name (``"CUDA"``, ``"OpenCL"``, ``"CPU"``, ``"Reference"``).
    precision : str
        ``"single"``, ``"mixed"`` or ``"double"``; only GPU platforms take it (CPU is mixed, Reference double).

    Returns
    -------
    dict of str to str
        Properties to pass to ``openmm.Context``.
    """
    if precision not in ("single", "mixed", "double"):
        raise InputError(f"precision '{precision}' is not one of single, mixed, double")
    if platform_name in _PRECISION_PLATFORMS:
        return {"Precision": precision}
    return {}


def _usable(platform, precision: str) -> bool:
    import openmm
    import openmm.unit as u

    system = openmm.System()
    system.addParticle(1.0)
    integrator = openmm.VerletIntegrator(1.0 * u.femtosecond)
    try:
        context = openmm.Context(system, integrator, platform, platform_properties(platform.getName(), precision))
        context.setPositions([openmm.Vec3(0.0, 0.0, 0.0)] * 1)
        del context
    except Exception as err:  # OpenMMException: no device, driver too old, ...
        logger.info("OpenMM platform %s is present but not usable: %s", platform.getName(), err)
        return False
    return True


def select_platform(name: str = "auto", precision: str = "mixed"):
    """The OpenMM platform to run on.

    Parameters
    ----------
    name : {"auto", "CUDA", "OpenCL", "CPU", "Reference"}
        ``auto`` picks the first usable of CUDA > OpenCL > CPU (never Reference); a name asks for exactly that
        platform.
    precision : {"single", "mixed", "double"}
        Precision the platform must accept (applies to GPU platforms; see :func:`platform_properties`).

    Returns
    -------
    openmm.Platform
        The platform; pass ``platform_properties(platform.getName(), precision)`` when creating contexts.

    Raises
    ------
    InputError
        ``name`` is not a known platform name.
    PlatformError
        The platform asked for (or, for ``auto``, every candidate) is missing or unusable.
    """
    import openmm

    if name not in ("auto", "CUDA", "OpenCL", "CPU", "Reference"):
        raise InputError(f"platform '{name}' is not one of auto, CUDA, OpenCL, CPU, Reference")
    platform_properties(name, precision)  # validates the precision
    available = {openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())}
    candidates = _AUTO_ORDER if name == "auto" else (name,)
    for candidate in candidates:
        if candidate not in available:
            continue
        platform = openmm.Platform.getPlatformByName(candidate)
        if _usable(platform, precision):
            logger.info("using OpenMM platform %s (%s precision)", candidate, precision)
            return platform
    hint = "install openmm-cuda-12 for CUDA, or ask for 'CPU'" if name != "CPU" else "check the OpenMM install"
    raise PlatformError(
        f"OpenMM platform '{name}' is not usable here (available: {', '.join(sorted(available))}); {hint}"
    )
