"""λ protocols: the alchemical windows of a leg, one value per λ parameter of the hybrid system per window.

Default staging (``t`` runs from 0 at state A to 1 at state B over the windows)::

    lambda_electrostatics_a     0 -> 1 over t in [0, 0.3]     unique-A charges off first
    lambda_sterics_a            0 -> 1 over t in [0.3, 0.7]   unique-A softcore LJ off ...
    lambda_sterics_b            0 -> 1 over t in [0.3, 0.7]   ... while unique-B softcore LJ comes on
    lambda_electrostatics_b     0 -> 1 over t in [0.7, 1]     unique-B charges on last
    lambda_electrostatics_core  0 -> 1 linearly over t in [0, 1]
    lambda_sterics_core         0 -> 1 linearly over t in [0, 1]
    lambda_bonded               0 -> 1 linearly over t in [0, 1]

so a unique atom never carries charge while its softcore LJ is partly off.

Tiers (:meth:`LambdaProtocol.windows_for`): ``smoke`` 5 windows (proves the pipeline), ``fast`` 11 (CPU-sized
RHFE of small molecules), ``default`` 12 (GPU RBFE, OpenFE-like), ``production`` 22 (more overlap, larger
perturbations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field, field_validator, model_validator

from mlfep_core import FrozenModel, InputError

__all__ = ["LAMBDA_PARAMETERS", "TIERS", "LambdaProtocol", "default_protocol", "refine_windows"]

LAMBDA_PARAMETERS: tuple[str, ...] = (
    "lambda_electrostatics_a",
    "lambda_sterics_a",
    "lambda_sterics_b",
    "lambda_electrostatics_b",
    "lambda_electrostatics_core",
    "lambda_sterics_core",
    "lambda_bonded",
)
TIERS: dict[str, int] = {"smoke": 5, "fast": 11, "default": 12, "production": 22}

# (start, end) of each parameter's ramp in the default staging, as fractions of the path
_STAGING: dict[str, tuple[float, float]] = {
    "lambda_electrostatics_a": (0.0, 0.3),
    "lambda_sterics_a": (0.3, 0.7),
    "lambda_sterics_b": (0.3, 0.7),
    "lambda_electrostatics_b": (0.7, 1.0),
    "lambda_electrostatics_core": (0.0, 1.0),
    "lambda_sterics_core": (0.0, 1.0),
    "lambda_bonded": (0.0, 1.0),
}


def _ramp(t: float, start: float, end: float) -> float:
    if t <= start:
        return 0.0
    if t >= end:
        return 1.0
    return (t - start) / (end - start)


class LambdaProtocol(FrozenModel):
    """The windows of one leg: each window gives every λ parameter a value in [0, 1].

    The first window is state A (all 0), the last state B (all 1).

    Examples
    --------
    >>> p = LambdaProtocol.default_protocol(5)
    >>> p.n_windows, p.windows[0]["lambda_sterics_a"], p.windows[-1]["lambda_electrostatics_b"]
    (5, 0.0, 1.0)
    """

    windows: tuple[dict[str, float], ...] = Field(description="Per window: λ parameter name -> value in [0, 1].")
    name: str = Field("custom", description="Where the protocol came from, e.g. 'default-11' or 'custom'.")

    @field_validator("windows")
    @classmethod
    def _known_and_in_range(cls, windows: tuple[dict[str, float], ...]) -> tuple[dict[str, float], ...]:
        if len(windows) < 2:
            raise ValueError(f"a λ protocol needs at least 2 windows (state A and state B), got {len(windows)}")
        expected = set(LAMBDA_PARAMETERS)
        for k, window in enumerate(windows):
            names = set(window)
            if names != expected:
                missing = sorted(expected - names)
                unknown = sorted(names - expected)
                raise ValueError(
                    f"window {k}: missing λ parameters {missing} and unknown {unknown}; every window must set "
                    f"exactly {', '.join(LAMBDA_PARAMETERS)}"
                )
            for name, value in window.items():
                if not 0.0 <= float(value) <= 1.0:
                    raise ValueError(f"window {k}: {name} = {value} is outside [0, 1]")
        return tuple({name: float(window[name]) for name in LAMBDA_PARAMETERS} for window in windows)

    @model_validator(mode="after")
    def _end_states(self) -> LambdaProtocol:
        first, last = self.windows[0], self.windows[-1]
        if any(v != 0.0 for v in first.values()):
            raise ValueError("the first window must be state A (every λ parameter 0)")
        if any(v != 1.0 for v in last.values()):
            raise ValueError("the last window must be state B (every λ parameter 1)")
        return self

    @property
    def n_windows(self) -> int:
        """Number of windows (thermodynamic states)."""
        return len(self.windows)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The λ parameter names, in a fixed order."""
        return LAMBDA_PARAMETERS

    def schedule(self) -> dict[str, list[float]]:
        """The protocol as parameter name -> list of values over the windows (the inverse of :meth:`from_schedule`)."""
        return {name: [w[name] for w in self.windows] for name in LAMBDA_PARAMETERS}

    @classmethod
    def default_protocol(cls, n_windows: int = 11) -> LambdaProtocol:
        """The default staging (module docstring) with ``n_windows`` equally spaced points of the path."""
        if n_windows < 2:
            raise InputError(f"a λ protocol needs at least 2 windows, got {n_windows}")
        windows = []
        for k in range(n_windows):
            t = k / (n_windows - 1)
            windows.append({name: round(_ramp(t, *_STAGING[name]), 10) for name in LAMBDA_PARAMETERS})
        return cls(windows=tuple(windows), name=f"default-{n_windows}")

    @classmethod
    def from_schedule(cls, schedule: Mapping[str, Sequence[float]], name: str = "custom") -> LambdaProtocol:
        """A protocol from ``{parameter: [value per window]}``; every parameter must be given, lists equally long."""
        lengths = {key: len(values) for key, values in schedule.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"λ schedule lists differ in length: {lengths}")
        unknown = sorted(set(schedule) - set(LAMBDA_PARAMETERS))
        missing = sorted(set(LAMBDA_PARAMETERS) - set(schedule))
        if unknown or missing:
            raise InputError(
                f"λ schedule: unknown parameters {unknown}, missing {missing}; give exactly {', '.join(LAMBDA_PARAMETERS)}"
            )
        n = next(iter(lengths.values()))
        windows = tuple({key: float(schedule[key][k]) for key in LAMBDA_PARAMETERS} for k in range(n))
        from pydantic import ValidationError

        try:
            return cls(windows=windows, name=name)
        except ValidationError as err:
            raise InputError(f"λ schedule: {err.errors()[0]['msg']}") from err

    @classmethod
    def windows_for(cls, tier: str | int) -> LambdaProtocol:
        """The default staging for a tier name (``smoke`` 5, ``fast`` 11, ``default`` 12, ``production`` 22
        windows) or an explicit number of windows."""
        if isinstance(tier, int) and not isinstance(tier, bool):
            return cls.default_protocol(tier)
        if tier not in TIERS:
            raise InputError(f"unknown protocol tier '{tier}' (choose {', '.join(TIERS)} or a number of windows)")
        protocol = cls.default_protocol(TIERS[tier])
        return protocol.model_copy(update={"name": tier})


def default_protocol(n_windows: int = 11) -> LambdaProtocol:
    """Shortcut for :meth:`LambdaProtocol.default_protocol`."""
    return LambdaProtocol.default_protocol(n_windows)


def refine_windows(
    windows: Sequence[Mapping[str, float]], overlap: Sequence[Sequence[float]], target: float, max_added: int
) -> tuple[tuple[dict[str, float], ...], list[dict[str, float | int]]]:
    """Windows added where neighbouring MBAR overlap is below ``target``.

    The overlap of neighbours a distance Δ apart on a smooth path falls roughly as exp(−cΔ²), so splitting a gap
    of overlap O into m + 1 equal parts brings it to about O^(1/(m+1)²): a gap gets the smallest m with
    O^(1/(m+1)²) ≥ target, i.e. m = ⌈√(ln O / ln target)⌉ − 1. The new windows are equally spaced between the
    two neighbours (each λ parameter interpolated linearly: the path and the end states are unchanged). The gaps
    with the lowest overlap are served first while more than ``max_added`` windows would be needed.

    Returns the new windows and, per refined gap, ``{"after": k, "overlap": O, "added": m}`` (k indexes the
    windows given).

    Examples
    --------
    >>> w = LambdaProtocol.default_protocol(3).windows
    >>> o = [[0.9, 0.001, 0.0], [0.001, 0.8, 0.2], [0.0, 0.2, 0.8]]
    >>> new, gaps = refine_windows(w, o, target=0.03, max_added=8)
    >>> len(new), gaps
    (4, [{'after': 0, 'overlap': 0.001, 'added': 1}])
    """
    import math

    if not 0.0 < target < 1.0:
        raise InputError(f"target overlap {target:g} must lie between 0 and 1")
    gaps = []
    for k in range(len(windows) - 1):
        o = float(overlap[k][k + 1])
        if o < target:
            need = max(1, math.ceil(math.sqrt(math.log(max(o, 1e-300)) / math.log(target)) - 1e-12) - 1)
            gaps.append({"after": k, "overlap": o, "added": need})
    budget = max_added
    for gap in sorted(gaps, key=lambda g: g["overlap"]):
        gap["added"] = min(int(gap["added"]), budget)
        budget -= int(gap["added"])
    gaps = [g for g in gaps if g["added"] > 0]
    adds = {int(g["after"]): int(g["added"]) for g in gaps}
    out: list[dict[str, float]] = []
    for k, window in enumerate(windows):
        out.append({name: float(v) for name, v in window.items()})
        m = adds.get(k, 0)
        for j in range(1, m + 1):
            f = j / (m + 1)
            nxt = windows[k + 1]
            out.append({name: round((1 - f) * float(window[name]) + f * float(nxt[name]), 10) for name in window})
    return tuple(out), gaps
