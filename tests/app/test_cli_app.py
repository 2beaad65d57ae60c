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


def test_fep_app_warns_when_it_listens_beyond_this_machine(tmp_path, capsys):
    assert main(["app", "--runs", str(tmp_path / "r"), "--address", "0.0.0.0", "--dry-run"]) == 0
    assert "warning: listening on 0.0.0.0, not only on this machine" in capsys.readouterr().err
    assert main(["app", "--runs", str(tmp_path / "r"), "--dry-run"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_sigterm_to_fep_app_stops_its_streamlit_server(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fep", "app", "--runs", str(tmp_path / "runs"), "--port", str(port)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the dashboard never answered")
        os.kill(proc.pid, signal.SIGTERM)  # fep app only, as a service manager would
        proc.wait(timeout=15)
        for _ in range(50):  # its server goes too: the port stops answering
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                time.sleep(0.2)
            except OSError:
                break
        else:
            raise AssertionError("the Streamlit server still answers after SIGTERM to fep app")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
