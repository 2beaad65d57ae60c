"""λ protocols: validation, default staging, tiers, user schedules, JSON round trip."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fep.alchemy.lambdas import LAMBDA_PARAMETERS, TIERS, LambdaProtocol, refine_windows
from mlfep_core import InputError


@pytest.mark.parametrize("n", [2, 5, 11, 12, 22])
def test_default_protocol_end_states_and_range(n):
    p = LambdaProtocol.default_protocol(n)
    assert p.n_windows == n
    assert all(v == 0.0 for v in p.windows[0].values())
    assert all(v == 1.0 for v in p.windows[-1].values())
    for window in p.windows:
        assert set(window) == set(LAMBDA_PARAMETERS)
        assert all(0.0 <= v <= 1.0 for v in window.values())


@pytest.mark.parametrize("n", [5, 11, 12, 22])
def test_default_staging_order(n):
    """Unique-A charges are off before its sterics change; unique-B sterics are fully on before its charges."""
    p = LambdaProtocol.default_protocol(n)
    for w in p.windows:
        if w["lambda_sterics_a"] > 0:
            assert w["lambda_electrostatics_a"] == 1.0
        if w["lambda_electrostatics_b"] > 0:
            assert w["lambda_sterics_b"] == 1.0
    # every parameter is monotone non-decreasing along the path
    for name in LAMBDA_PARAMETERS:
        values = [w[name] for w in p.windows]
        assert values == sorted(values), name
    # in the 11-window protocol the middle window is half way through the sterics
    if n == 11:
        assert p.windows[5]["lambda_sterics_a"] == pytest.approx(0.5)
        assert p.windows[5]["lambda_electrostatics_core"] == pytest.approx(0.5)


def test_tiers():
    assert {name: LambdaProtocol.windows_for(name).n_windows for name in TIERS} == {
        "smoke": 5,
        "fast": 11,
        "default": 12,
        "production": 22,
    }
    assert LambdaProtocol.windows_for("fast").name == "fast"
    assert LambdaProtocol.windows_for(7).n_windows == 7
    with pytest.raises(InputError, match="tier"):
        LambdaProtocol.windows_for("huge")


def test_from_schedule_round_trip():
    p = LambdaProtocol.default_protocol(6)
    q = LambdaProtocol.from_schedule(p.schedule())
    assert q.windows == p.windows
    custom = {name: [0.0, 0.25, 1.0] for name in LAMBDA_PARAMETERS}
    assert LambdaProtocol.from_schedule(custom).windows[1]["lambda_bonded"] == 0.25


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda s: s.pop("lambda_bonded"), "missing"),
        (lambda s: s.update(lambda_typo=[0.0, 0.5, 1.0]), "unknown"),
        (lambda s: s.update(lambda_bonded=[0.0, 1.0]), "length"),
        (lambda s: s.update(lambda_bonded=[0.0, 1.5, 1.0]), "outside"),
        (lambda s: s.update(lambda_bonded=[0.2, 0.5, 1.0]), "state A"),
        (lambda s: s.update(lambda_bonded=[0.0, 0.5, 0.9]), "state B"),
    ],
)
def test_from_schedule_rejects_bad_input(edit, match):
    schedule = {name: [0.0, 0.5, 1.0] for name in LAMBDA_PARAMETERS}
    edit(schedule)
    with pytest.raises(InputError, match=match):
        LambdaProtocol.from_schedule(schedule)


def test_model_validation_and_json_round_trip(tmp_path):
    with pytest.raises(ValidationError):
        LambdaProtocol(windows=(dict.fromkeys(LAMBDA_PARAMETERS, 0.0),))  # one window only
    p = LambdaProtocol.windows_for("smoke")
    path = p.to_json_file(tmp_path / "protocol.json")
    assert LambdaProtocol.from_json_file(path) == p
    with pytest.raises(InputError):
        LambdaProtocol.default_protocol(1)


def _neighbour_overlap(values):
    """A K×K overlap matrix with the given neighbour overlaps (the rest does not matter to refine_windows)."""
    n = len(values) + 1
    return [[values[min(i, j)] if abs(i - j) == 1 else (0.5 if i == j else 0.0) for j in range(n)] for i in range(n)]


def test_refine_windows_adds_where_the_overlap_is_low_and_keeps_the_path():
    windows = LambdaProtocol.default_protocol(5).windows
    # gaps 0-1 fine, 1-2 a bit low, 2-3 very low, 3-4 fine
    new, gaps = refine_windows(windows, _neighbour_overlap([0.2, 0.02, 1e-12, 0.1]), target=0.03, max_added=8)
    assert [(g["after"], g["added"]) for g in gaps] == [(1, 1), (2, 2)]  # ⌈√(ln 1e-12 / ln 0.03)⌉ − 1 = 2
    assert len(new) == 5 + 3 and new[0] == windows[0] and new[-1] == windows[-1]
    for name in LAMBDA_PARAMETERS:  # still a monotone path from A to B through every old window
        values = [w[name] for w in new]
        assert values == sorted(values)
    assert all(w in new for w in windows)
    LambdaProtocol(windows=new)  # a valid protocol
    # the budget goes to the worst gap first
    _, gaps = refine_windows(windows, _neighbour_overlap([0.2, 0.02, 1e-12, 0.1]), target=0.03, max_added=2)
    assert [(g["after"], g["added"]) for g in gaps] == [(2, 2)]
    # nothing below the target: nothing added
    same, gaps = refine_windows(windows, _neighbour_overlap([0.2, 0.2, 0.2, 0.2]), target=0.03, max_added=8)
    assert same == windows and gaps == []
    with pytest.raises(InputError, match="target"):
        refine_windows(windows, _neighbour_overlap([0.2] * 4), target=1.5, max_added=8)
