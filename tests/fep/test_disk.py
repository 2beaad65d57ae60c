"""Disk space: a run the disk cannot hold is refused before any work; a disk that fills up during a run stops it
with one line, keeps every finished file and the last good checkpoint, and `--resume` goes on once space is free."""

from __future__ import annotations

import errno
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from fep.cli import main
from tests.tiny import TINY_PROTOCOL

LIGANDS = "name,smiles\nbenzene,c1ccccc1\ntoluene,Cc1ccccc1\n"


@pytest.fixture
def args(tmp_path, charge_cache, monkeypatch):
    monkeypatch.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    (tmp_path / "ligands.csv").write_text(LIGANDS)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_PROTOCOL))
    base = ["run", "--edge", "benzene,toluene", "--ligands", str(tmp_path / "ligands.csv"), "--mode", "hydration"]
    return [*base, "--protocol", str(tmp_path / "tiny.json"), "-o", str(tmp_path / "r")]


def test_a_run_the_disk_cannot_hold_is_refused_before_any_work(args, tmp_path, capsys, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=50_000))
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "the run needs about" in err[0] and "50 kB" not in err[0] and "are free there; free space" in err[0]
    assert not (tmp_path / "r").exists()


class _InProcess:
    """The real worker function (fep.execution.executors.execute_leg) on one thread of this process, so that the
    test can make this process's disk full."""

    name, workers = "in-process", 1

    def __init__(self):
        self._pool = ThreadPoolExecutor(1)

    def submit(self, job):
        from fep.execution.executors import execute_leg

        return self._pool.submit(execute_leg, job)

    def close(self, *, stop: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def test_a_disk_that_fills_up_stops_the_run_with_one_line_and_resume_finishes(args, tmp_path, capsys, monkeypatch):
    from fep.cli import run as run_command
    from fep.sampling import storage

    monkeypatch.setattr(run_command, "_make_executor", lambda *a: _InProcess())
    real = storage.atomic_write_bytes
    writes = []

    def fills_up(path, data):
        if "state" in str(path):
            writes.append(path)
            if len(writes) > 2:  # the first leg's first checkpoints fit, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(storage, "atomic_write_bytes", fills_up)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]  # after the plan and the cost table: the one line that ends the run
    assert last.startswith("error: benzene~toluene solvent r0: ") and "no space left on the device" in last, last
    assert "the last good checkpoint (iteration 1) is kept: free disk space, then resume" in last
    solvent = tmp_path / "r" / "edges" / "benzene~toluene" / "repeat_0" / "solvent" / "sampler"
    assert json.loads((solvent / "checkpoint.json").read_text())["iteration"] == 1
    assert not list((tmp_path / "r" / "edges").rglob("leg_result.json"))

    monkeypatch.setattr(storage, "atomic_write_bytes", real)  # space freed
    assert main([*args, "--resume"]) == 0
    result = json.loads((tmp_path / "r" / "edges" / "benzene~toluene" / "edge_result.json").read_text())
    assert result["status"] == "done" and abs(result["ddg_mm_kcal_mol"]) < 5

    # the disk estimate the pre-flight uses is an upper bound of what the finished run holds, and not a loose one
    capsys.readouterr()
    assert main([*args[:-2], "-o", str(tmp_path / "dry"), "--dry-run", "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)["cost"]
    estimate = sum(leg["disk_bytes"] for edge in cost["edges"] for leg in edge["legs"])
    held = sum(p.stat().st_size for p in (tmp_path / "r" / "edges").rglob("*") if p.is_file())
    assert held < estimate < 3 * held, (held, estimate)
