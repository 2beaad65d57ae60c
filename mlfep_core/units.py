"""Small helpers for OpenMM's unit-carrying values (no openmm import needed)."""

from __future__ import annotations

from typing import Any

__all__ = ["openmm_value"]


def openmm_value(x: Any) -> float:
    """The bare number of an ``openmm.unit`` quantity in the unit OpenMM returned it in, or ``float(x)``.

    OpenMM getters return lengths in nm and energies in kJ/mol, so this is the MD-unit value.

    >>> openmm_value(2)
    2.0
    """
    return float(x._value) if hasattr(x, "_value") else float(x)
