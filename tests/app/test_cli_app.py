"""`fep app`: options, the streamlit command line it would start, and bad options."""

from __future__ import annotations

import json

from fep.cli import main


def test_fep_app_dry_run_json(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["app", "--runs", str(runs), "--port", "8765", "--dry-run", "--json"])
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["url"] == "http://localhost:8765" and info["runs"] == str(runs.resolve())
    command = info["command"]
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("app/main.py")
    assert command[command.index("--server.port") + 1] == "8765"
    assert command[command.index("--server.headless") + 1] == "true"
    assert not runs.exists()  # a dry run creates nothing


def test_fep_app_runs_must_be_a_folder(tmp_path, capsys):
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    assert main(["app", "--runs", str(not_a_folder), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a folder" in err and len(err.strip().splitlines()) == 1


def test_fep_app_help(capsys):
    assert main(["app", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--runs" in out and "--store" in out and "--port" in out


def test_fep_app_store_must_exist(tmp_path, capsys):
    code = main(["app", "--runs", str(tmp_path), "--store", str(tmp_path / "none.sqlite"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "no results store" in err and len(err.strip().splitlines()) == 1
