"""`fep run` and `fep status` end to end on a tiny hydration edge (real systems, real sampling, tiny lengths)."""

from __future__ import annotations

import json
import math

import pytest

from fep.cli import main
from tests.tiny import TINY_PROTOCOL

TINY = TINY_PROTOCOL


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    ligands = folder / "ligands.csv"
    ligands.write_text("name,smiles,dg_kcal_mol\nbenzene,c1ccccc1,-0.90\ntoluene,Cc1ccccc1,-0.90\n")
    protocol = folder / "tiny.json"
    protocol.write_text(json.dumps(TINY))
    return ligands, protocol


@pytest.fixture(scope="module")
def finished_run(tiny_inputs, tmp_path_factory, charge_cache):
    ligands, protocol = tiny_inputs
    run_dir = tmp_path_factory.mktemp("run") / "r"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    code = main(
        [
            "run",
            "--edge",
            "benzene,toluene",
            "--ligands",
            str(ligands),
            "--mode",
            "hydration",
            "--protocol",
            str(protocol),
            "-o",
            str(run_dir),
        ]
    )
    mp.undo()
    return code, run_dir


def test_run_writes_every_stage(finished_run):
    code, run_dir = finished_run
    assert code == 0
    edge = run_dir / "edges" / "benzene~toluene"
    result = json.loads((edge / "edge_result.json").read_text())
    assert result["status"] == "done"
    assert math.isfinite(result["ddg_mm_kcal_mol"]) and result["ddg_mm_err_kcal_mol"] > 0
    for leg in ("solvent", "vacuum"):
        leg_dir = edge / "repeat_0" / leg
        leg_result = json.loads((leg_dir / "leg_result.json").read_text())
        assert leg_result["n_iterations"] == TINY["sampler"]["n_iterations"]
        assert leg_result["n_states"] == TINY["n_windows"]
        assert (leg_dir / "hybrid" / "system.xml").exists()
        assert (leg_dir / "end_states" / "system_a.xml").exists()
    # the edge's ΔΔG is solvent minus vacuum
    legs = result["legs"]
    assert result["ddg_mm_kcal_mol"] == pytest.approx(legs["solvent"]["dg_kcal_mol"] - legs["vacuum"]["dg_kcal_mol"])


def test_rerun_with_resume_does_no_simulation(finished_run, tiny_inputs, capsys):
    _, run_dir = finished_run
    ligands, protocol = tiny_inputs
    checkpoint = run_dir / "edges" / "benzene~toluene" / "repeat_0" / "solvent" / "sampler" / "checkpoint.json"
    before = checkpoint.stat().st_mtime_ns
    code = main(
        [
            "run",
            "--edge",
            "benzene,toluene",
            "--ligands",
            str(ligands),
            "--mode",
            "hydration",
            "--protocol",
            str(protocol),
            "-o",
            str(run_dir),
            "--resume",
            "--json",
        ]
    )
    assert code == 0
    assert checkpoint.stat().st_mtime_ns == before
    out = json.loads(capsys.readouterr().out)
    assert out[0]["status"] == "done"


def test_rerun_without_resume_refuses(finished_run, tiny_inputs, capsys):
    _, run_dir = finished_run
    ligands, protocol = tiny_inputs
    code = main(
        ["run", "--edge", "benzene,toluene", "--ligands", str(ligands), "--protocol", str(protocol), "-o", str(run_dir)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "--resume" in err and len(err.strip().splitlines()) == 1


def test_resume_with_a_changed_protocol_refuses_and_names_the_change(finished_run, tiny_inputs, tmp_path, capsys):
    _, run_dir = finished_run
    ligands, _ = tiny_inputs
    longer = tmp_path / "longer.json"
    longer.write_text(json.dumps(dict(TINY, sampler={**TINY["sampler"], "n_iterations": 7})))
    args = ["run", "--edge", "benzene,toluene", "--ligands", str(ligands), "-o", str(run_dir), "--resume"]
    code = main([*args, "--protocol", str(longer)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"protocol.sampler.n_iterations: {TINY['sampler']['n_iterations']} -> 7" in err
    assert main([*args, "--protocol", str(tiny_inputs[1]), "--ligand-ff", "ani2x-endpoint"]) == 2
    assert "ANI-2x endpoint correction: off -> on" in capsys.readouterr().err


def test_resume_with_a_changed_molecule_under_the_same_name_refuses(finished_run, tiny_inputs, tmp_path, capsys):
    _, run_dir = finished_run
    _, protocol = tiny_inputs
    other = tmp_path / "other.csv"
    other.write_text("name,smiles\nbenzene,c1ccccc1\ntoluene,CCc1ccccc1\n")  # toluene is now ethylbenzene
    args = ["run", "--edge", "benzene,toluene", "--ligands", str(other), "--protocol", str(protocol), "--resume"]
    assert main([*args, "-o", str(run_dir), "--mode", "hydration"]) == 2
    err = capsys.readouterr().err
    assert "ligand(s) toluene are other molecules" in err and "Cc1ccccc1 -> CCc1ccccc1" in err


def _copy_of(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    return copy


def _edit_key(leg_dir, **fields):
    path = leg_dir / "leg_key.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_every_leg_stores_its_content_key_and_resume_refuses_a_leg_run_with_other_versions(
    finished_run, tiny_inputs, tmp_path, capsys
):
    run_dir = _copy_of(finished_run[1], tmp_path)
    ligands, protocol = tiny_inputs
    edge = run_dir / "edges" / "benzene~toluene" / "repeat_0"
    keys = {leg: json.loads((edge / leg / "leg_key.json").read_text()) for leg in ("solvent", "vacuum")}
    assert keys["solvent"]["leg"] == "benzene~toluene repeat 0 solvent" and keys["solvent"]["protein"] is None
    assert keys["solvent"]["key"] != keys["vacuum"]["key"]  # the key names the leg
    assert keys["solvent"]["protocol"]["sampler.n_iterations"] == TINY["sampler"]["n_iterations"]
    assert set(keys["solvent"]["versions"]) == {
        "mlfep", "mlfep-source", "openmm", "rdkit", "acellera-openff-toolkit", "pymbar"
    }  # fmt: skip
    from fep.execution.rundir import source_digest

    assert keys["solvent"]["versions"]["mlfep-source"] == source_digest()  # a code change shows within a version
    assert keys["solvent"]["charges"].startswith("am1bcc ") and keys["solvent"]["nnp"] == "off"

    # the vacuum leg was run with another OpenMM: resume and extend refuse it, naming the leg and the change
    _edit_key(edge / "vacuum", versions={**keys["vacuum"]["versions"], "openmm": "8.5.0"})
    args = ["run", "--edge", "benzene,toluene", "--ligands", str(ligands), "--protocol", str(protocol)]
    args += ["--mode", "hydration", "-o", str(run_dir), "--resume"]
    checkpoint = edge / "solvent" / "sampler" / "checkpoint.json"
    before = checkpoint.stat().st_mtime_ns
    for extra in ([], ["--extend", "0.0002"]):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert "leg benzene~toluene repeat 0 vacuum was run with other settings (versions: openmm 8.5.0 -> " in err[0]
        assert "resume with --allow-changed versions to go on, or use a new -o folder" in err[0]
    assert checkpoint.stat().st_mtime_ns == before  # nothing sampled

    # accepted once, recorded in the key: later resumes do not ask again
    assert main([*args, "--allow-changed", "versions"]) == 0
    accepted = json.loads((edge / "vacuum" / "leg_key.json").read_text())["accepted"]
    assert len(accepted) == 1 and "versions: openmm 8.5.0 -> " in accepted[0]
    assert main(args) == 0 and checkpoint.stat().st_mtime_ns == before


def test_extending_a_leg_whose_samples_were_archived_away_is_one_clear_error(
    finished_run, tiny_inputs, tmp_path, capsys
):
    import shutil

    run_dir = _copy_of(finished_run[1], tmp_path)
    ligands, protocol = tiny_inputs
    leg = run_dir / "edges" / "benzene~toluene" / "repeat_0" / "solvent"
    shutil.rmtree(leg / "sampler" / "data")  # what benchmarks/rhfe.py --archive leaves out of a finished leg
    checkpoint = leg / "sampler" / "checkpoint.json"
    before = checkpoint.stat().st_mtime_ns
    args = ["run", "--edge", "benzene,toluene", "--ligands", str(ligands), "--protocol", str(protocol)]
    args += ["--mode", "hydration", "-o", str(run_dir), "--resume"]
    for extra in (["--extend", "0.0002"], ["--target-sigma", "0.01", "--max-ns", "0.001"]):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert "leg benzene~toluene repeat 0 solvent cannot be extended: " in err[0] and "sampler/data" in err[0]
        assert "delete that folder to sample the leg again on --resume" in err[0]
    assert checkpoint.stat().st_mtime_ns == before  # nothing sampled
    assert main(args) == 0  # a plain resume still reads the finished leg's result


def test_resume_refuses_a_leg_with_other_charges_and_allow_changed_cannot_accept_it(
    finished_run, tiny_inputs, tmp_path, capsys
):
    run_dir = _copy_of(finished_run[1], tmp_path)
    ligands, protocol = tiny_inputs
    _edit_key(run_dir / "edges" / "benzene~toluene" / "repeat_0" / "solvent", charges="am1bcc 0123456789abcdef")
    args = ["run", "--edge", "benzene,toluene", "--ligands", str(ligands), "--protocol", str(protocol)]
    args += ["--mode", "hydration", "-o", str(run_dir), "--resume"]
    assert main([*args, "--allow-changed", "versions"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(charges: am1bcc 0123456789abcdef -> am1bcc " in err[0], err
    assert "restore the settings it was run with, or use a new -o folder" in err[0]
    assert main([*args, "--allow-changed", "protocol"]) == 2
    assert "--allow-changed protocol: only versions, protein, cofactors can change" in capsys.readouterr().err
    assert main([*args[:-1], "--allow-changed", "versions"]) == 2  # without --resume
    assert "--allow-changed goes with --resume" in capsys.readouterr().err


def test_an_allowed_protein_change_is_written_into_the_run(tmp_path):
    from fep.execution.rundir import RunSpec, check_run_dir, open_run_dir
    from fep.protocol import tier
    from ligand_prep.models import Network
    from mlfep_core import InputError

    old, new = tmp_path / "old.pdb", tmp_path / "new.pdb"
    old.write_text("REMARK first\nEND\n")
    new.write_text("REMARK re-protonated\nEND\n")
    network = Network(mode="binding", ligands=(), edges=(), planner="test")
    first = RunSpec(mode="binding", protocol=tier("smoke"), protein=str(old))
    open_run_dir(tmp_path / "r", first, network, resume=False)
    second = first.model_copy(update={"protein": str(new)})
    with pytest.raises(InputError, match=r"protein: .*old.pdb -> .*new.pdb\): .*\(or --allow-changed protein\)"):
        check_run_dir(tmp_path / "r", second, resume=True)
    open_run_dir(tmp_path / "r", second, network, resume=True, allow_changed=("protein",))
    recorded = RunSpec.from_json_file(tmp_path / "r" / "run.json")
    assert recorded.protein == str(new) and recorded.protein_sha256 is not None
    check_run_dir(tmp_path / "r", second, resume=True)  # the run now is the new protein's


def test_a_folder_that_is_not_a_run_is_never_overwritten(tiny_inputs, tmp_path, capsys):
    ligands, protocol = tiny_inputs
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "network.json").write_text('{"my": "own network"}')
    args = ["run", "--edge", "benzene,toluene", "--ligands", str(ligands), "--protocol", str(protocol)]
    assert main([*args, "-o", str(mine)]) == 2
    assert "is not empty and is not an mlfep run (it holds network.json)" in capsys.readouterr().err
    assert (mine / "network.json").read_text() == '{"my": "own network"}' and not (mine / "run.json").exists()
    assert main([*args, "-o", str(tmp_path / "never"), "--resume"]) == 2
    assert "holds no run to resume" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    "option", [["--ligand-ff", "ani2x-endpoint"], ["--ligand-ff", "ani2x-torsions"], ["--nnp", "ani2x"]]
)
def test_missing_model_weights_stop_the_run_before_any_work(tiny_inputs, tmp_path, capsys, monkeypatch, option):
    ligands, protocol = tiny_inputs
    monkeypatch.setenv("TORCHANI_DATA_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no weights in ~/.local/share either
    run_dir = tmp_path / "r"
    args = ["run", "--edge", "benzene,toluene", "--ligands", str(ligands), "--protocol", str(protocol)]
    assert main([*args, "-o", str(run_dir), *option]) == 2
    err = capsys.readouterr().err
    assert "ANI-2x weights not found" in err and len(err.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_status_reports_done(finished_run, capsys):
    _, run_dir = finished_run
    assert main(["status", str(run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"]["done"] == 1
    assert {leg["state"] for leg in info["edges"][0]["legs"]} == {"done"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--edge", "benzene,xylene"], "xylene"),
        (["--edge", "benzene"], "two ligand names"),
        (["--mode", "binding", "--edge", "benzene,toluene"], "protein"),
        (["--protocol", "turbo", "--edge", "benzene,toluene"], "turbo"),
        (["--nnp", "mace", "--edge", "benzene,toluene"], "--nnp"),
        (["--edge", "benzene,benzene"], "two different ligands"),
        (["--edge", "benzene,toluene", "--target-sigma", "0"], "--target-sigma"),
        (["--edge", "benzene,toluene", "--max-ns", "5"], "--target-sigma"),
        (["--edge", "benzene,toluene", "--target-sigma", "0.2", "--extend", "1"], "--extend"),
    ],
)
def test_bad_run_options_give_one_line(tiny_inputs, tmp_path, capsys, args, expected):
    ligands, _ = tiny_inputs
    code = main(["run", "--ligands", str(ligands), "-o", str(tmp_path / "x"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_status_of_a_non_run_dir(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "run.json" in capsys.readouterr().err


def test_a_failing_leg_is_recorded_and_the_command_says_so(tiny_inputs, tmp_path, capsys, charge_cache, monkeypatch):
    ligands, _ = tiny_inputs
    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    # far too hot for a 4 fs step: the integration blows up on every retry (a 200 fs step is now refused up front)
    broken = dict(TINY, sampler={**TINY["sampler"], "temperature": "300000 K", "max_nan_retries": 1})
    protocol = tmp_path / "broken.json"
    protocol.write_text(json.dumps(broken))
    run_dir = tmp_path / "r"
    code = main(
        [
            "run",
            "--edge",
            "benzene,toluene",
            "--ligands",
            str(ligands),
            "--mode",
            "hydration",
            "--protocol",
            str(protocol),
            "-o",
            str(run_dir),
        ]
    )
    assert code == 1
    result = json.loads((run_dir / "edges" / "benzene~toluene" / "edge_result.json").read_text())
    assert result["status"] == "failed" and result["error"]
    capsys.readouterr()
    assert main(["status", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["failed"] == 1


def test_status_reads_the_store_and_falls_back_to_files(finished_run, tmp_path, capsys):
    import shutil

    _, run_dir = finished_run
    assert main(["status", str(run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"] == "store"
    assert {leg["attempts"] for leg in info["edges"][0]["legs"]} == {1}
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("mlfep.sqlite*"))
    assert main(["status", str(copy), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"] == "files" and info["counts"]["done"] == 1


def test_dry_run_prints_the_cost_and_simulates_nothing(tiny_inputs, tmp_path, capsys):
    ligands, protocol = tiny_inputs
    out_dir = tmp_path / "dry"
    code = main(
        [
            "run",
            "--ligands",
            str(ligands),
            "--mode",
            "hydration",
            "--protocol",
            str(protocol),
            "-o",
            str(out_dir),
            "--dry-run",
            "--json",
        ]
    )
    assert code == 0 and not out_dir.exists()
    data = json.loads(capsys.readouterr().out)
    (edge,) = data["cost"]["edges"]
    legs = {leg["leg"]: leg for leg in edge["legs"]}
    assert legs["vacuum"]["n_atoms"] == 12 + 15 - 11  # benzene + toluene - mapped: the hybrid ligand
    assert legs["solvent"]["n_waters"] > 100 and legs["solvent"]["windows"] == TINY["n_windows"]


def test_a_two_heavy_atom_core_runs_end_to_end(tmp_path, charge_cache, monkeypatch):
    """ethane -> chloroethane: two mapped heavy atoms anchored by their hydrogens; the hybrid builds, both legs
    sample, and the edge has a finite ΔΔG (the ligands are embedded for themselves: no common frame)."""
    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    (tmp_path / "l.csv").write_text("name,smiles\nethane,CC\nchloroethane,CCCl\n")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    args = ["run", "--ligands", str(tmp_path / "l.csv"), "--edge", "ethane,chloroethane", "--mode", "hydration"]
    assert main([*args, "--protocol", str(tmp_path / "tiny.json"), "-o", str(tmp_path / "r")]) == 0
    result = json.loads((tmp_path / "r" / "edges" / "ethane~chloroethane" / "edge_result.json").read_text())
    assert result["status"] == "done" and math.isfinite(result["ddg_mm_kcal_mol"])
