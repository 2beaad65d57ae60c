"""The immutable model base and the unit-carrying field types every mlfep model uses.

Models are frozen pydantic models that reject unknown fields and round-trip through JSON files written atomically.
Physical settings are openff-units quantities: a field declared with one of the aliases below (``Femtoseconds``,
``Nanometers``...) accepts ``"4 fs"``, an openff ``Quantity`` or an ``openmm.unit`` quantity, rejects a bare number,
and serializes to a string that keeps the unit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

from mlfep_core.errors import InputError
from mlfep_core.io import atomic_write_text

__all__ = [
    "Bar",
    "Daltons",
    "Femtoseconds",
    "FrozenModel",
    "Kelvin",
    "Molar",
    "Nanometers",
    "PerPicosecond",
    "first_validation_error",
    "quantity",
]


class FrozenModel(BaseModel):
    """Immutable pydantic model: unknown fields rejected, JSON round-trip, a schema version."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    schema_version: ClassVar[int] = 1

    def to_json_file(self, path: str | os.PathLike[str]) -> Path:
        """Write this model as JSON, atomically (temp file, fsync, rename)."""
        payload = {"schema_version": self.schema_version, **json.loads(self.model_dump_json())}
        return atomic_write_text(path, json.dumps(payload, indent=2) + "\n")

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str]) -> Self:
        """Read a model written by :meth:`to_json_file`; a wrong file gives an :class:`InputError`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as err:
            raise InputError(f"{path}: file not found") from err
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: not a readable JSON file ({err})") from err
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object for {cls.__name__}")
        version = data.pop("schema_version", cls.schema_version)
        if version != cls.schema_version:
            raise InputError(
                f"{path}: {cls.__name__} schema version {version} is not supported "
                f"(this mlfep reads version {cls.schema_version})"
            )
        from pydantic import ValidationError

        try:
            return cls.model_validate(data)
        except ValidationError as err:
            loc, msg = first_validation_error(err)
            raise InputError(f"{path}: invalid {cls.__name__} at '{loc}': {msg}") from err


def first_validation_error(err: Any) -> tuple[str, str]:
    """(dotted location, message) of the first error of a pydantic ``ValidationError`` (one line for a user)."""
    first = err.errors()[0]
    return ".".join(str(p) for p in first["loc"]), first["msg"]


def _quantity_parser(unit: str):
    def parse(value: Any) -> Any:
        from openff.units import Quantity

        if isinstance(value, bool) or isinstance(value, int | float):
            raise ValueError(f"a bare number ({value}) is not accepted here: give a unit, e.g. '{value} {unit}'")
        if isinstance(value, str):
            try:
                value = Quantity(value)
            except Exception as err:
                raise ValueError(f"cannot read '{value}' as a quantity in {unit}") from err
        if not hasattr(value, "units"):
            # openmm.unit quantities: convert through their value in the unit asked for
            try:
                import openmm.unit as omm_unit

                if isinstance(value, omm_unit.Quantity):
                    inverse = unit.startswith("1/")
                    target = getattr(omm_unit, unit[2:] if inverse else unit)
                    value = Quantity(value.value_in_unit(target**-1 if inverse else target), unit)
            except Exception as err:
                raise ValueError(f"cannot convert {value!r} to {unit}") from err
        if not hasattr(value, "units"):
            raise ValueError(f"expected a quantity in {unit}, got {value!r}")
        try:
            return value.to(unit)
        except Exception as err:
            raise ValueError(f"{value} cannot be converted to {unit}") from err

    return parse


def quantity(unit: str) -> Any:
    """An annotated pydantic field type for an openff-units quantity stored in ``unit``.

    Accepts an openff ``Quantity``, an ``openmm.unit`` quantity or a string such as ``"4 fs"``; rejects bare
    numbers. Serializes to a string (``"4 femtosecond"``) so JSON keeps the unit.

    Examples
    --------
    >>> from mlfep_core.models import FrozenModel, quantity
    >>> Timestep = quantity("femtosecond")
    >>> class S(FrozenModel):
    ...     timestep: Timestep
    >>> round(S(timestep="0.004 ps").timestep.m, 9)
    4.0
    >>> S(timestep="4 fs").model_dump(mode="json")
    {'timestep': '4 femtosecond'}
    """
    return Annotated[
        Any,
        BeforeValidator(_quantity_parser(unit)),
        PlainSerializer(_serialize_quantity, return_type=str),
        _schema(unit),
    ]


def _serialize_quantity(q: Any) -> str:
    return f"{q.m} {q.units}"


def _schema(unit: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "description": f"a quantity in {unit}, e.g. '1.0 {unit}'"})


# Field types for the units mlfep's settings use. Written out (not built by calling ``quantity``) so that type
# checkers read them as types: each is ``Any`` at type-check time, an openff Quantity in that unit at run time.
Femtoseconds = Annotated[
    Any,
    BeforeValidator(_quantity_parser("femtosecond")),
    PlainSerializer(_serialize_quantity, return_type=str),
    _schema("femtosecond"),
]
Nanometers = Annotated[
    Any,
    BeforeValidator(_quantity_parser("nanometer")),
    PlainSerializer(_serialize_quantity, return_type=str),
    _schema("nanometer"),
]
Kelvin = Annotated[
    Any,
    BeforeValidator(_quantity_parser("kelvin")),
    PlainSerializer(_serialize_quantity, return_type=str),
    _schema("kelvin"),
]
Bar = Annotated[
    Any,
    BeforeValidator(_quantity_parser("bar")),
    PlainSerializer(_serialize_quantity, return_type=str),
    _schema("bar"),
]
Daltons = Annotated[
    Any,
    BeforeValidator(_quantity_parser("dalton")),
    PlainSerializer(_serialize_quantity, return_type=str),
    _schema("dalton"),
]
Molar = Annotated[
    Any,
    BeforeValidator(_quantity_parser("molar")),
    PlainSerializer(_serialize_quantity, return_type=str),
    _schema("molar"),
]
PerPicosecond = Annotated[
    Any,
    BeforeValidator(_quantity_parser("1/picosecond")),
    PlainSerializer(_serialize_quantity, return_type=str),
    _schema("1/picosecond"),
]
