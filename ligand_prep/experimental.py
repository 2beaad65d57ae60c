"""Experimental affinities and hydration free energies, converted to ΔG (kcal/mol) at 298.15 K.

Recognised columns (header match is case-insensitive, surrounding blanks ignored):

=========================================  =====================================================
column(s)                                  meaning
=========================================  =====================================================
``dg_kcal_mol`` / ``expt_dg_kcal_mol`` /   ΔG in kcal/mol, used as is; optional uncertainty in
``dg``                                     ``dg_err_kcal_mol`` / ``expt_dg_err_kcal_mol`` / ``dg_err``
``ki_nm``, ``ki_um``, ``ic50_nm``,         Ki or IC50 in nM / µM; optional ``<column>_err`` or
``ic50_um`` (also ``kd_nm``, ``kd_um``)    ``<kind>_err_<unit>`` (same unit)
``pki``, ``pic50`` (also ``pkd``)          −log10 of the value in M; optional ``<column>_err``
``value`` + ``unit`` (+ ``type``)          unit nM/uM/µM/mM/pM/M (a concentration) or kcal/mol
                                           (kJ/mol too); optional ``error``/``value_err`` column
=========================================  =====================================================

Concentrations are converted with ΔG = RT ln(X / 1 M), σ(ΔG) = RT σ(X)/X, RT = 0.592484 kcal/mol
(T = 298.15 K), as in ``shared/benchmarks/README.md`` section 3. IC50 is used as if it were Ki.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

from ligand_prep.models import ExperimentalValue
from mlfep_core import InputError
from mlfep_core.constants import kt_kcal_mol

__all__ = [
    "RT_KCAL_MOL",
    "dg_from_concentration",
    "dg_from_p_value",
    "experimental_from_row",
    "read_experimental",
]

#: R·T at 298.15 K in kcal/mol (R = 8.314462618 J/(mol·K) / 4184 J/kcal).
RT_KCAL_MOL = kt_kcal_mol(298.15)

_MOLAR = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "μm": 1e-6, "nm": 1e-9, "pm": 1e-12}
_ENERGY = {"kcal/mol": 1.0, "kcal mol-1": 1.0, "kcal": 1.0, "kj/mol": 1.0 / 4.184, "kj mol-1": 1.0 / 4.184}

_DG_COLUMNS = ("mlfep_expt_dg_kcal_mol", "dg_kcal_mol", "expt_dg_kcal_mol", "dg")
_DG_ERR_COLUMNS = ("mlfep_expt_dg_err_kcal_mol", "dg_err_kcal_mol", "expt_dg_err_kcal_mol", "dg_err")
_CONC_COLUMNS = {f"{kind}_{unit}": (kind, unit) for kind in ("ki", "kd", "ic50") for unit in ("nm", "um", "µm", "μm")}
_P_COLUMNS = ("pki", "pkd", "pic50")


def dg_from_concentration(value_molar: float, err_molar: float | None = None) -> tuple[float, float | None]:
    """ΔG and its uncertainty (kcal/mol) from a Ki / Kd / IC50 in mol/L.

    Examples
    --------
    >>> round(dg_from_concentration(2.5e-9)[0], 3)
    -11.735
    """
    dg = RT_KCAL_MOL * math.log(value_molar)
    err = None if err_molar is None or err_molar <= 0 else RT_KCAL_MOL * err_molar / value_molar
    return dg, err


def dg_from_p_value(p_value: float, err: float | None = None) -> tuple[float, float | None]:
    """ΔG and its uncertainty (kcal/mol) from a pKi / pIC50 (−log10 of the value in M)."""
    factor = RT_KCAL_MOL * math.log(10.0)
    return -factor * p_value, (None if err is None or err <= 0 else factor * err)


def _norm(row: Mapping[str, str | None]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in row.items():
        if key is None:
            continue
        text = "" if value is None else str(value).strip()
        out[str(key).strip().lower()] = text
    return out


def _number(row: dict[str, str], column: str, where: str) -> float | None:
    text = row.get(column, "")
    if text == "" or text.lower() in {"nan", "na", "n/a", "none", "-"}:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: column '{column}' value '{text}' is not a number; fix or leave it empty") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: column '{column}' value '{text}' is not a finite number")
    return value


def _first_number(row: dict[str, str], columns: tuple[str, ...], where: str) -> tuple[str, float] | None:
    for column in columns:
        value = _number(row, column, where)
        if value is not None:
            return column, value
    return None


def _positive(value: float, column: str, where: str) -> float:
    if value <= 0:
        raise InputError(f"{where}: column '{column}' must be a positive concentration, got {value:g}")
    return value


def experimental_from_row(row: Mapping[str, str], where: str) -> ExperimentalValue | None:
    """The experimental ΔG of one CSV row (or SD record's properties), or None when the row has none.

    Parameters
    ----------
    row : mapping of str to str
        Column name -> cell text (header names are matched case-insensitively).
    where : str
        Where the row came from, for error messages (e.g. ``"series.csv row 5"``).

    Raises
    ------
    InputError
        A recognised column holds something that is not a valid number or unit.

    Examples
    --------
    >>> round(experimental_from_row({"Ki_nM": "2.5"}, "row 2").dg_kcal_mol, 3)
    -11.735
    """
    cells = _norm(row)

    found = _first_number(cells, _DG_COLUMNS, where)
    if found is not None:
        column, dg = found
        err = _first_number(cells, _DG_ERR_COLUMNS, where)
        source = cells.get("mlfep_expt_source") if column.startswith("mlfep_") else None
        return ExperimentalValue(
            dg_kcal_mol=dg, dg_err_kcal_mol=None if err is None else err[1], source=source or "dG kcal/mol"
        )

    for column, (kind, unit) in _CONC_COLUMNS.items():
        value = _number(cells, column, where)
        if value is None:
            continue
        value = _positive(value, column, where)
        err = _first_number(cells, (f"{column}_err", f"{kind}_err_{unit}"), where)
        factor = _MOLAR[unit]
        dg, dg_err = dg_from_concentration(value * factor, None if err is None else err[1] * factor)
        label = {"ki": "Ki", "kd": "Kd", "ic50": "IC50"}[kind]
        return ExperimentalValue(dg_kcal_mol=dg, dg_err_kcal_mol=dg_err, source=f"{label} {value:g} {unit[:-1]}M")

    for column in _P_COLUMNS:
        value = _number(cells, column, where)
        if value is None:
            continue
        err = _first_number(cells, (f"{column}_err",), where)
        dg, dg_err = dg_from_p_value(value, None if err is None else err[1])
        label = {"pki": "pKi", "pkd": "pKd", "pic50": "pIC50"}[column]
        return ExperimentalValue(dg_kcal_mol=dg, dg_err_kcal_mol=dg_err, source=f"{label} {value:g}")

    value = _number(cells, "value", where)
    if value is None:
        return None
    unit_text = cells.get("unit", "")
    unit = unit_text.lower().replace(" ", "") if unit_text else ""
    err_found = _first_number(cells, ("error", "value_err", "err", "uncertainty"), where)
    err_value = None if err_found is None else err_found[1]
    kind = cells.get("type", "") or "value"
    if unit in _MOLAR:
        value = _positive(value, "value", where)
        factor = _MOLAR[unit]
        dg, dg_err = dg_from_concentration(value * factor, None if err_value is None else err_value * factor)
        return ExperimentalValue(dg_kcal_mol=dg, dg_err_kcal_mol=dg_err, source=f"{kind} {value:g} {unit_text}")
    energy = {k.replace(" ", ""): v for k, v in _ENERGY.items()}.get(unit)
    if energy is not None:
        return ExperimentalValue(
            dg_kcal_mol=value * energy,
            dg_err_kcal_mol=None if err_value is None else err_value * energy,
            source=f"{kind} {value:g} {unit_text}",
        )
    raise InputError(
        f"{where}: unit '{unit_text}' of column 'value' is not understood; use nM, uM, µM, mM, pM, M or kcal/mol"
    )


def read_experimental(path: str | os.PathLike[str]) -> dict[str, ExperimentalValue]:
    """Experimental ΔG values from a CSV keyed by a ``ligand`` or ``name`` column.

    Rows without any recognised value are skipped. Works on ``shared/benchmarks/<target>/experimental.csv``
    and ``freesolv/rhfe_benzenes_ligands.csv``.

    Raises
    ------
    InputError
        Missing file, no ``ligand``/``name`` column, a duplicate name or an unreadable value (names the row;
        rows count the header as row 1, as a spreadsheet shows them).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read experimental CSV ({err})") from None
    reader = csv.DictReader(text.splitlines())
    headers = {h.strip().lower(): h for h in (reader.fieldnames or []) if h is not None}
    key = headers.get("ligand") or headers.get("name")
    if key is None:
        raise InputError(f"{path}: needs a 'ligand' or 'name' column (found: {', '.join(headers) or 'no header'})")
    values: dict[str, ExperimentalValue] = {}
    rows_of: dict[str, int] = {}
    for row in reader:
        row_number = reader.line_num  # physical line: header = row 1, blank lines counted
        name = (row.get(key) or "").strip()
        if not name:
            continue
        where = f"{path.name} row {row_number} ({name})"
        value = experimental_from_row(row, where)
        if value is None:
            continue
        if name in values:
            raise InputError(f"{path.name}: ligand '{name}' appears twice (rows {rows_of[name]} and {row_number})")
        values[name] = value
        rows_of[name] = row_number
    return values
