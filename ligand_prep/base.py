"""Foundations shared by every mlfep stage: the error hierarchy, the immutable model base and unit fields.

Every package (``ligand_prep``, ``fep``, ``analysis``, ``app``, ``gpu_kernels``) raises subclasses of
:class:`MlfepError`; the CLI turns any of them into one clear line and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

__all__ = [
    "ChargeError",
    "FrozenModel",
    "InputError",
    "LigandValidationError",
    "MappingError",
    "MlfepError",
    "ParametrizationError",
    "atomic_write_bytes",
    "atomic_write_text",
    "quantity",
]


# --------------------------------------------------------------------------------------------- errors
class MlfepError(Exception):
    """Base of every error mlfep raises on purpose. The message is one line a user can act on."""


class InputError(MlfepError, ValueError):
    """A user-supplied file, row or option is wrong (names the file/row and what to do)."""


class LigandValidationError(InputError):
    """A ligand failed validation (names the ligand or row)."""


class ChargeError(MlfepError, RuntimeError):
    """Partial charges could not be assigned (names the ligand)."""


class ParametrizationError(MlfepError, ValueError):
    """A force field could not parametrize a molecule or residue (names it)."""


class MappingError(MlfepError, ValueError):
    """No acceptable atom mapping between two ligands (names both and the reason)."""


# ------------------------------------------------------------------------------------------ models
class FrozenModel(BaseModel):
    """Immutable pydantic model: unknown fields rejected, JSON round-trip, a schema version."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    schema_version: ClassVar[int] = 1

    def to_json_file(self, path: str | os.PathLike[str]) -> Path:
        """Write this model as JSON, atomically (temp file, fsync, rename)."""
        payload = {"schema_version": self.schema_version, **json.loads(self.model_dump_json())}
        return atomic_write_text(path, json.dumps(payload, indent=2) + "\n")

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str]):
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
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise InputError(f"{path}: invalid {cls.__name__} at '{loc}': {first['msg']}") from err


# ------------------------------------------------------------------------------------------- units
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
                    value = Quantity(value.value_in_unit(getattr(omm_unit, unit)), unit)
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
    numbers. Serializes to a string (``"4.0 femtosecond"``) so JSON keeps the unit.

    Examples
    --------
    >>> from ligand_prep.base import FrozenModel, quantity
    >>> class S(FrozenModel):
    ...     timestep: quantity("femtosecond")
    >>> S(timestep="0.004 ps").timestep.m
    4.0
    """
    return Annotated[
        Any,
        BeforeValidator(_quantity_parser(unit)),
        PlainSerializer(lambda q: f"{q.m} {q.units}", return_type=str),
        WithJsonSchema({"type": "string", "description": f"a quantity in {unit}, e.g. '1.0 {unit}'"}),
    ]


# ------------------------------------------------------------------------------------- atomic I/O
def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))
