"""Protocol tiers and user protocol files."""

from __future__ import annotations

import json

import pytest

from fep.protocol import TIERS, Protocol, load_protocol, tier
from mlfep_core import InputError


@pytest.mark.parametrize("name", TIERS)
def test_tiers_load_and_round_trip(name, tmp_path):
    proto = tier(name)
    assert proto.name == name
    windows = proto.windows()
    assert len(windows) == proto.n_windows
    assert all(v == 0.0 for v in windows[0].values())
    assert all(v == 1.0 for v in windows[-1].values())
    path = proto.to_json_file(tmp_path / "p.json")
    assert Protocol.from_json_file(path) == proto


def test_tier_sizes_match_the_design():
    assert tier("default").n_windows == 12 and tier("default").ns_per_window() == pytest.approx(5.0)
    assert tier("default").repeats == 3
    assert tier("production").n_windows == 22
    assert tier("smoke").ns_per_window() < 0.05


def test_vacuum_runs_nvt_and_repeats_get_their_own_seed():
    proto = tier("smoke")
    assert proto.sampler_for("vacuum").pressure is None
    assert proto.sampler_for("solvent").pressure is not None
    assert proto.sampler_for("solvent", repeat=1).seed != proto.sampler_for("solvent", repeat=0).seed


def test_user_file_overrides_a_base_tier(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: smoke\nn_windows: 7\nsampler:\n  n_iterations: 3\nsystem:\n  solvent_padding: 1.4 nm\n")
    proto = load_protocol(path)
    assert proto.name == "mine"
    assert proto.n_windows == 7 and len(proto.windows()) == 7
    assert proto.sampler.n_iterations == 3
    assert proto.sampler.steps_per_iteration == tier("smoke").sampler.steps_per_iteration
    assert proto.system.solvent_padding.m_as("nanometer") == pytest.approx(1.4)


def test_user_schedule(tmp_path):
    base = tier("smoke").windows()
    schedule = {k: [w[k] for w in base] for k in base[0]}
    path = tmp_path / "sched.json"
    path.write_text(json.dumps({"base": "smoke", "lambda_schedule": schedule}))
    assert load_protocol(path).windows() == base


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"base": "smoke", "n_windowz": 3}', "n_windowz"),
        ('{"base": "nope"}', "base 'nope'"),
        ('{"base": "smoke", "sampler": {"timestep": 4}}', "sampler.timestep"),
        ("[1, 2]", "mapping"),
        ('{"base": "smoke", "sampler": {"timestep": "-2 fs"}}', r"sampler\.timestep.*must be > 0"),
        ('{"base": "smoke", "sampler": {"timestep": "8 fs"}}', r"sampler\.timestep.*above 4 fs"),
        ('{"base": "smoke", "sampler": {"temperature": "-300 K"}}', r"sampler\.temperature.*must be > 0"),
        ('{"base": "smoke", "sampler": {"pressure": "0 bar"}}', r"sampler\.pressure.*must be > 0"),
        ('{"base": "smoke", "sampler": {"n_iterations": 0}}', r"sampler\.n_iterations.*greater than or equal to 1"),
        ('{"base": "smoke", "n_windows": 1}', r"n_windows.*greater than or equal to 2"),
        ('{"base": "smoke", "system": {"hydrogen_mass": "1.008 dalton"}}', r"above the 2 fs .* 1\.008 Da hydrogens"),
        ('{"base": "smoke", "system": {"constraints": "none"}}', r"above the 1 fs that are stable without bond"),
        ('{"base": "smoke", "system": {"nonbonded_cutoff": "0.2 nm"}}', r"nonbonded_cutoff 0\.2 nm is outside"),
    ],
)
def test_bad_protocol_files_name_the_problem(tmp_path, text, expected):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=expected) as info:
        load_protocol(path)
    assert str(path) in str(info.value)


def test_unknown_tier_is_a_clear_error():
    with pytest.raises(InputError, match="neither a tier"):
        load_protocol("turbo")


def test_cli_protocol_show(capsys):
    from fep.cli import main

    assert main(["protocol", "show", "default", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["n_windows"] == 12 and shown["repeats"] == 3
    assert Protocol.model_validate(shown) == tier("default")
    assert main(["protocol", "show", "turbo"]) == 2
    assert "turbo" in capsys.readouterr().err


def test_ligand_ff_label_names_force_field_charges_torsions_and_endpoint():
    from fep.protocol import ligand_ff_label, load_protocol

    fast = load_protocol("fast")
    assert ligand_ff_label(fast, False) == "openff-2.2.1 (am1bcc charges)"
    refit = fast.model_copy(update={"ligand_torsions": "ani2x", "charge_method": "nagl"})
    assert ligand_ff_label(refit, False) == "openff-2.2.1 (nagl charges) + ANI-2x-refitted torsions"
    assert ligand_ff_label(fast, True).endswith("ANI-2x/MM endpoint correction (ML)")
