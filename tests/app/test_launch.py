"""app.launch: upload checks, per-ligand validation, network edits, cost, and the detached launch."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from app import launch
from mlfep_core import InputError

BENZENES = "name,smiles,dg_kcal_mol\nbenzene,c1ccccc1,-0.90\ntoluene,Cc1ccccc1,-0.90\nphenol,Oc1ccccc1,-6.62\n"


def test_save_upload_checks_suffix_size_and_text(tmp_path):
    path = launch.save_upload("ligands", "../../evil/series.csv", BENZENES.encode(), tmp_path)
    assert path == tmp_path / "ligands.csv" and path.read_text() == BENZENES
    with pytest.raises(InputError, match="must end in"):
        launch.save_upload("protein", "p.exe", b"ATOM", tmp_path)
    with pytest.raises(InputError, match="empty"):
        launch.save_upload("ligands", "a.sdf", b"", tmp_path)
    with pytest.raises(InputError, match="MB allowed"):
        launch.save_upload("protocol", "p.json", b"x" * (launch.UPLOAD_LIMITS["protocol"] + 1), tmp_path)
    with pytest.raises(InputError, match="not a text file"):
        launch.save_upload("ligands", "a.sdf", b"\x89PNG\r\n\x1a\n\xff\xfe", tmp_path)


def test_check_pdb(tmp_path, bench):
    assert launch.check_pdb(bench / "tyk2" / "protein.pdb") > 1000
    bad = tmp_path / "p.pdb"
    bad.write_text("HEADER nothing here\nEND\n")
    with pytest.raises(InputError, match="ATOM"):
        launch.check_pdb(bad)


def test_check_pdb_runs_the_protein_check_and_names_the_users_file(tmp_path, bench):
    """An unknown residue fails at upload, as `fep protein` would fail it, naming the residue and the user's file
    (not the staging copy)."""
    from mlfep_core import ParametrizationError

    lines = []
    for line in (bench / "tyk2" / "protein.pdb").read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")) and line[17:20] == "THR" and line[22:26].strip() == "923":
            line = line[:17] + "XYZ" + line[20:]  # no force field has it (TPO is supported: phosaa14SB)
        lines.append(line)
    staged = tmp_path / ".upload-x" / "protein.pdb"
    staged.parent.mkdir()
    staged.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParametrizationError, match=r"chain A residue XYZ 923 has no force-field template") as info:
        launch.check_pdb(staged, display_name="tyk2_xyz.pdb")
    assert "tyk2_xyz.pdb" in str(info.value) and ".upload-x" not in str(info.value)


def test_read_series_reports_every_bad_sdf_record(tmp_path, bench):
    text = (bench / "tyk2" / "ligands.sdf").read_text()
    blocks = text.split("$$$$\n")[:4]
    flat = blocks[1].splitlines()
    for i in range(4, 4 + int(flat[3][:3])):  # record 2: every z = 0 -> not 3D
        flat[i] = flat[i][:20] + "    0.0000" + flat[i][30:]
    blocks[1] = "\n".join(flat) + "\n"
    blocks[3] = "broken\n  nothing\n\n  x\n"  # record 4: not a mol block
    path = tmp_path / "ligands.sdf"
    path.write_text("$$$$\n".join(blocks) + "$$$$\n")
    ligands, checks = launch.read_series(path)
    assert [c.ok for c in checks] == [True, False, True, False]
    assert [c.record for c in checks] == ["record 1", "record 2", "record 3", "record 4"]
    assert "record 2" in checks[1].message and "3D" in checks[1].message
    assert "record 4" in checks[3].message
    assert [lig.name for lig in ligands] == [checks[0].ligand, checks[2].ligand]


def test_read_series_keeps_original_csv_rows(tmp_path):
    path = tmp_path / "ligands.csv"
    path.write_text(BENZENES.replace("phenol,", "bad,C1CC\nphenol,"))
    ligands, checks = launch.read_series(path)
    assert [lig.name for lig in ligands] == ["benzene", "toluene", "phenol"]
    bad = [c for c in checks if not c.ok]
    assert len(bad) == 1 and bad[0].record == "row 4" and bad[0].ligand == "bad"
    assert "row 4" in bad[0].message and "C1CC" in bad[0].message


def test_read_series_file_level_error_raises(tmp_path):
    path = tmp_path / "ligands.csv"
    path.write_text("id,structure\na,C\n")
    with pytest.raises(InputError, match="'name'"):
        launch.read_series(path)


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan")
    path = folder / "ligands.csv"
    path.write_text(BENZENES)
    ligands, _ = launch.read_series(path)
    return launch.plan(ligands, mode="hydration", planner="mst")


def test_plan_edit_and_cost(planned):
    from fep.protocol import tier

    assert planned.mode == "hydration" and len(planned.edges) == 2
    keys = {e.key for e in planned.edges}
    names = [lig.name for lig in planned.ligands]
    missing = next((a, b) for a in names for b in names if a < b and f"{a}~{b}" not in keys and f"{b}~{a}" not in keys)
    more = launch.add_edge(planned, *missing)
    assert len(more.edges) == 3 and more.planner == "mst+edited" and more.edges[-1].key == "~".join(missing)
    with pytest.raises(InputError, match="already"):
        launch.add_edge(more, missing[1], missing[0])
    fewer = launch.remove_edges(more, [planned.edges[0].key])
    assert {e.key for e in fewer.edges} == {planned.edges[1].key, more.edges[-1].key}
    assert launch.disconnected(fewer) == []
    assert launch.disconnected(launch.remove_edges(planned, [planned.edges[0].key])) != []
    with pytest.raises(InputError, match="at least one"):
        launch.remove_edges(planned, list(keys))
    cost = launch.cost_estimate(planned, tier("smoke"))
    assert cost["estimate"].protocol == "smoke" and len(cost["estimate"].edges) == 2
    assert cost["estimate"].cpu_core_hours > 0
    # 2 edges x 2 legs x 1 repeat x 5 windows x (20 x 250 x 4 fs = 0.02 ns)
    assert cost["windows"] == 5 and cost["total_ns"] == pytest.approx(2 * 2 * 5 * 0.02)


def test_new_run_dir_names(tmp_path):
    assert launch.new_run_dir(tmp_path, "benz-1").is_dir()
    for bad in ("benz-1", "../x", "", "a b", ".hidden"):
        with pytest.raises(InputError):
            launch.new_run_dir(tmp_path, bad)


def test_launch_run_is_detached_and_logged(planned, tmp_path):
    fake = tmp_path / "python"  # stands in for the interpreter: records its arguments and session id
    fake.write_text('#!/bin/sh\necho "args: $*"\necho "sid: $(ps -o sid= -p $$ | tr -d \' \')"\necho "pid: $$"\n')
    fake.chmod(0o755)
    run_dir = launch.new_run_dir(tmp_path / "runs", "r1")
    record = launch.launch_run(run_dir, planned, protocol="smoke", python=str(fake))
    assert json.loads((run_dir / "app_launch.json").read_text())["pid"] == record["pid"]
    network_json = run_dir / "inputs" / "network.json"
    assert network_json.is_file()
    log = run_dir / "fep_run.log"
    deadline = time.monotonic() + 60  # it ends at once; the launcher's reaper thread waits for it: no zombie
    while Path(f"/proc/{record['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{record['pid']}").exists(), Path(f"/proc/{record['pid']}/stat").read_text()
    lines = dict(line.split(": ", 1) for line in log.read_text().splitlines())
    assert lines["args"].startswith(f"-m fep run {network_json} -o {run_dir} --protocol smoke --mode hydration")
    assert lines["sid"] == lines["pid"] == str(record["pid"])  # its own session: survives the dashboard
    assert lines["sid"] != str(os.getsid(0))


def test_clean_staging_removes_only_old_upload_folders(tmp_path):
    old, new, run = tmp_path / ".upload-old", tmp_path / ".upload-new", tmp_path / "run"
    for folder in (old, new, run):
        folder.mkdir()
    os.utime(old, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    assert launch.clean_staging(tmp_path) == 1
    assert not old.exists() and new.is_dir() and run.is_dir()


def test_user_message_speaks_the_pages_terms():
    folder = "/runs/.upload-abc123"
    text = (
        f"{folder}/ligands/ligands.csv row 3: poses from SMILES in a protein need a reference ligand in the pocket; "
        "add --reference REF.sdf. protein p.pdb: chain A residue XYZ 5 has no force-field template; it looks like a "
        "cofactor or bound molecule: if it is a cofactor, remove it from the PDB and give it as `--cofactor "
        "FILE.sdf` (3D), supply a template with `--extra-forcefield FILE.xml`; residue 7: repair with "
        "`--fix-protein` (pdbfixer: adds missing atoms/loops where safe)"
    )
    said = launch.user_message(text, {f"{folder}/ligands/ligands.csv": "my series.csv"}, [folder])
    assert said.startswith("my series.csv row 3:")
    assert "--" not in said and ".upload-" not in said, said
    assert "'Reference pose SDF' box" in said and "'Cofactors' box" in said and "force-field template" in said
    assert "repair the PDB first (pdbfixer adds missing atoms/loops where safe)" in said


def test_cofactor_uploads_are_checked_in_the_users_terms(bench, tmp_path):
    """The page reads cofactors as fep run --cofactor does: eg5's ADP passes next to the docked ligands; a ligand
    uploaded as a cofactor, and a cofactor without hydrogens, are refused naming the user's file."""
    import shutil

    from rdkit import Chem

    from ligand_prep.io import read_ligands
    from mlfep_core import LigandValidationError

    ligands = read_ligands(bench / "eg5" / "ligands.sdf")[:2]
    adp = Path(shutil.copy(bench / "eg5" / "cofactor.sdf", tmp_path / "ADP.sdf"))
    (cofactor,) = launch.check_cofactors([adp], ligands, {str(adp): "ADP from 3L9H.sdf"})
    assert cofactor.name == "ADP" and cofactor.formal_charge == -3
    staged = tmp_path / "staging" / "wrong.sdf"
    staged.parent.mkdir()
    writer = Chem.SDWriter(str(staged))
    writer.write(ligands[1].to_rdkit())
    writer.close()
    with pytest.raises(InputError, match=r"cofactor wrong overlaps ligand") as info:
        launch.check_cofactors([staged], ligands, {str(staged): "my_ligand.sdf"})
    assert "staging" not in str(info.value)
    bare = tmp_path / "staging" / "noH.sdf"
    Chem.MolToMolFile(Chem.RemoveHs(Chem.MolFromMolFile(str(adp), removeHs=False)), str(bare))
    with pytest.raises(
        LigandValidationError, match=r"^cofactor 3L9H \(my ADP\.sdf record 1\): 12 hydrogen\(s\) missing"
    ) as info:
        launch.check_cofactors([bare], ligands, {str(bare): "my ADP.sdf"})
    assert "--protonate" not in str(info.value)
    # the page's wording of the protein check's cofactor hint
    hint = "remove it from the PDB and give it as `--cofactor FILE.sdf` (3D, all hydrogens, same frame)"
    assert "upload it in the 'Cofactors' box" in launch.user_message(hint)
