"""Experimental values: unit conversions by hand and the shared benchmark files."""

from __future__ import annotations

import csv
import math

import pytest

from ligand_prep.experimental import RT_KCAL_MOL, experimental_from_row, read_experimental
from mlfep_core import InputError


def test_rt_matches_benchmark_readme():
    assert RT_KCAL_MOL == pytest.approx(0.592484, abs=1e-6)


def test_ki_nanomolar_by_hand():
    value = experimental_from_row({"Ki_nM": "2.5", "ki_nm_err": "0.75"}, "row 2")
    assert value.dg_kcal_mol == pytest.approx(-11.735, abs=0.002)
    # σ = RT σ(X)/X = 0.592484 * 0.3
    assert value.dg_err_kcal_mol == pytest.approx(0.178, abs=0.001)
    assert "Ki" in value.source


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"ki_um": "0.096"}, -9.574),  # tyk2 lig_ejm_31
        ({"ic50_nm": "1000"}, 0.592484 * math.log(1e-6)),
        ({"ic50_um": "1"}, 0.592484 * math.log(1e-6)),
        ({"pIC50": "7"}, -0.592484 * math.log(10) * 7),
        ({"pki": "9"}, -0.592484 * math.log(10) * 9),
        ({"dg": "-8.5"}, -8.5),
        ({"expt_dg_kcal_mol": "-0.9", "expt_dg_err_kcal_mol": "0.2"}, -0.9),
        ({"value": "10", "unit": "nM", "type": "Kd"}, 0.592484 * math.log(1e-8)),
        ({"value": "10", "unit": "µM"}, 0.592484 * math.log(1e-5)),
        ({"value": "0.5", "unit": "M"}, 0.592484 * math.log(0.5)),
        ({"value": "-7.25", "unit": "kcal/mol"}, -7.25),
        ({"value": "-41.84", "unit": "kJ/mol"}, -10.0),
    ],
)
def test_conversions(row, expected):
    assert experimental_from_row(row, "row 2").dg_kcal_mol == pytest.approx(expected, abs=2e-3)


def test_dg_error_column_is_read():
    value = experimental_from_row({"dg_kcal_mol": "-9.0", "dg_err_kcal_mol": "0.3"}, "row 2")
    assert (value.dg_kcal_mol, value.dg_err_kcal_mol) == (-9.0, 0.3)


def test_row_without_value_gives_none():
    assert experimental_from_row({"name": "a", "smiles": "C", "ki_nm": ""}, "row 2") is None


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"ki_nm": "abc"}, "not a number"),
        ({"ki_nm": "-3"}, "positive"),
        ({"value": "3", "unit": "furlongs"}, "furlongs"),
    ],
)
def test_bad_values_name_the_row(row, needle):
    with pytest.raises(InputError) as info:
        experimental_from_row(row, "series.csv row 7 (lig_x)")
    assert "series.csv row 7 (lig_x)" in str(info.value)
    assert needle in str(info.value)


def test_read_tyk2_experimental(bench):
    values = read_experimental(bench / "tyk2" / "experimental.csv")
    assert len(values) == 13
    assert values["lig_jmc_23"].dg_kcal_mol == pytest.approx(-11.735, abs=1e-9)
    assert values["lig_jmc_23"].dg_err_kcal_mol == pytest.approx(0.178)
    assert values["lig_ejm_43"].dg_kcal_mol == pytest.approx(-8.289)


def test_tyk2_source_values_convert_to_the_published_dg(bench):
    """Our Ki conversion of every tyk2 source value reproduces the file's ΔG (rounded to 0.001)."""
    with open(bench / "tyk2" / "experimental.csv") as handle:
        rows = list(csv.DictReader(handle))
    for number, row in enumerate(rows, start=2):
        converted = experimental_from_row(
            {"value": row["source_value"], "unit": row["source_unit"], "type": row["source_type"]}, f"row {number}"
        )
        assert converted.dg_kcal_mol == pytest.approx(float(row["dg_kcal_mol"]), abs=0.0015), row["ligand"]


def test_read_freesolv_benzenes(bench):
    values = read_experimental(bench / "freesolv" / "rhfe_benzenes_ligands.csv")
    assert len(values) == 10
    assert values["phenol"].dg_kcal_mol == pytest.approx(-6.6)
    assert values["phenol"].dg_err_kcal_mol == pytest.approx(0.2)
    assert values["benzonitrile"].dg_kcal_mol == pytest.approx(-4.1)


def test_read_experimental_needs_a_key_column(tmp_path):
    path = tmp_path / "exp.csv"
    path.write_text("compound,ki_nm\na,3\n")
    with pytest.raises(InputError, match="'ligand' or 'name'"):
        read_experimental(path)


def test_read_experimental_duplicate(tmp_path):
    path = tmp_path / "exp.csv"
    path.write_text("name,ki_nm\na,3\na,4\n")
    with pytest.raises(InputError, match="rows 2 and 3"):
        read_experimental(path)
