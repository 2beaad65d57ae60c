"""The foundation every package imports: errors, unit fields, constants, atomic writes, the process set-up."""

from __future__ import annotations

import logging
import warnings

import pytest
from pydantic import ValidationError

import mlfep_core
from mlfep_core import errors
from mlfep_core.constants import GAS_CONSTANT_KCAL_MOL_K, KJ_PER_KCAL, LEGS, LEGS_FOR_MODE, kt_kcal_mol, kt_kj_mol
from mlfep_core.models import Femtoseconds, FrozenModel, Nanometers, PerPicosecond


class _Settings(FrozenModel):
    timestep: Femtoseconds = "4 fs"
    cutoff: Nanometers = "0.9 nm"
    friction: PerPicosecond = "1 / ps"


def test_every_error_is_an_mlfep_error_and_keeps_its_builtin_base():
    classes = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(c, errors.MlfepError) for c in classes)
    assert issubclass(errors.InputError, ValueError)
    assert issubclass(errors.PoseError, errors.InputError)
    assert issubclass(errors.ModelWeightsError, FileNotFoundError)
    assert issubclass(errors.SamplerError, RuntimeError)
    # the packages raise these very classes (not copies)
    from fep.alchemy.hybrid import HybridError
    from fep.sampling.engine import SamplerError

    assert HybridError is errors.HybridError and SamplerError is errors.SamplerError


def test_unit_fields_convert_strings_and_openmm_quantities_and_reject_bare_numbers():
    import openmm.unit as u

    s = _Settings(timestep="0.002 ps", cutoff=1.0 * u.nanometer, friction=5.0 / u.picosecond)
    assert s.timestep.m == pytest.approx(2.0)
    assert str(s.timestep.units) == "femtosecond"
    assert s.cutoff.m_as("angstrom") == pytest.approx(10.0)
    assert s.friction.m_as("1/ps") == pytest.approx(5.0)
    with pytest.raises(ValidationError, match="bare number"):
        _Settings(timestep=4)
    with pytest.raises(ValidationError, match="cannot be converted"):
        _Settings(cutoff="3 fs")


def test_models_round_trip_through_json_files_and_bad_files_name_themselves(tmp_path):
    path = _Settings(timestep="1 fs").to_json_file(tmp_path / "s.json")
    assert _Settings.from_json_file(path) == _Settings(timestep="1 fs")
    path.write_text('{"timestep": "1 fs", "colour": "red"}')
    with pytest.raises(mlfep_core.InputError, match=r"s\.json: invalid _Settings at 'colour'"):
        _Settings.from_json_file(path)
    with pytest.raises(mlfep_core.InputError, match="file not found"):
        _Settings.from_json_file(tmp_path / "missing.json")


def test_atomic_write_leaves_no_temporary_file_and_replaces_whole(tmp_path):
    target = tmp_path / "a" / "b.txt"
    mlfep_core.atomic_write_text(target, "one")
    mlfep_core.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["b.txt"]


def test_constants_agree_with_codata():
    # R = 8.314462618 J/(mol K); kT at 298.15 K = 0.5925 kcal/mol = 2.479 kJ/mol
    assert GAS_CONSTANT_KCAL_MOL_K * KJ_PER_KCAL * 1000 == pytest.approx(8.314462618, abs=1e-9)
    assert kt_kcal_mol(298.15) == pytest.approx(0.592485, abs=1e-6)
    assert kt_kj_mol(298.15) == pytest.approx(2.478957, abs=1e-6)
    assert set(LEGS) == {leg for legs in LEGS_FOR_MODE.values() for leg in legs}


def test_process_set_up_filters_only_the_known_third_party_warnings():
    from mlfep_core.runtime import configure_process

    configure_process()
    configure_process()  # idempotent
    assert logging.getLogger("pint").level == logging.ERROR
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from mlfep_core.runtime import filter_known_warnings

        filter_known_warnings()
        warnings.warn_explicit(
            "`torch.distributed.reduce_op` is deprecated", FutureWarning, "interchange.py", 1, "openff.interchange"
        )
        warnings.warn_explicit("something new", FutureWarning, "x.py", 1, "openff.interchange")
    assert [str(w.message) for w in caught] == ["something new"]


def test_the_version_is_written_once():
    import fep

    assert fep.__version__ == mlfep_core.__version__ != "0+unknown"
