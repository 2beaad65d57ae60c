"""Physical constants and the fixed vocabulary of legs and modes, defined once for every package.

>>> round(kt_kcal_mol(298.15), 4)
0.5925
>>> LEGS_FOR_MODE["hydration"]
('solvent', 'vacuum')
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "GAS_CONSTANT_KCAL_MOL_K",
    "GAS_CONSTANT_KJ_MOL_K",
    "HARTREE_TO_KJ_MOL",
    "KJ_PER_KCAL",
    "LEGS",
    "LEGS_FOR_MODE",
    "MODES",
    "kt_kcal_mol",
    "kt_kj_mol",
]

#: Molar gas constant R = N_A·k_B (CODATA 2018, exact), kJ/(mol·K).
GAS_CONSTANT_KJ_MOL_K: Final = 8.31446261815324e-3
#: Thermochemical calorie.
KJ_PER_KCAL: Final = 4.184
#: R in kcal/(mol·K).
GAS_CONSTANT_KCAL_MOL_K: Final = GAS_CONSTANT_KJ_MOL_K / KJ_PER_KCAL
#: One hartree in kJ/mol (CODATA 2018), the energy unit of ANI models.
HARTREE_TO_KJ_MOL: Final = 2625.4996394799

#: Every leg a run can have, and the two legs of each mode (the first is the "bound"/"solvated" one).
LEGS: Final = ("complex", "solvent", "vacuum")
LEGS_FOR_MODE: Final[dict[str, tuple[str, str]]] = {
    "binding": ("complex", "solvent"),
    "hydration": ("solvent", "vacuum"),
}
MODES: Final = tuple(LEGS_FOR_MODE)


def kt_kj_mol(temperature_k: float) -> float:
    """kT in kJ/mol at ``temperature_k`` kelvin."""
    return GAS_CONSTANT_KJ_MOL_K * float(temperature_k)


def kt_kcal_mol(temperature_k: float) -> float:
    """kT in kcal/mol at ``temperature_k`` kelvin."""
    return GAS_CONSTANT_KCAL_MOL_K * float(temperature_k)
