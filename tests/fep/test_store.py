"""The results store: schema, job life cycle, file checksums, concurrent writers, a read API without openmm/torch."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys

import pytest

from fep.execution.rundir import RunSpec
from fep.execution.store import Store, file_sha256, open_store, store_url
from fep.protocol import load_protocol
from ligand_prep.models import AtomMapping, Ligand, Network
from mlfep_core import InputError

MOL = """benzene
     RDKit          3D

  0  0  0  0  0  0  0  0  0  0999 V3000
M  END
"""


def _network(n_edges: int = 3) -> Network:
    names = [f"L{i}" for i in range(n_edges + 1)]
    ligs = tuple(Ligand(name=n, molblock=MOL, smiles="c1ccccc1", formal_charge=0) for n in names)
    maps = tuple(
        AtomMapping(ligand_a=names[i], ligand_b=names[i + 1], mapping={0: 0}, score=0.5) for i in range(n_edges)
    )
    return Network(mode="hydration", ligands=ligs, edges=maps)


def _spec() -> RunSpec:
    return RunSpec(mode="hydration", protocol=load_protocol("smoke"))


def _hammer(url: str, run_id: int, worker: int, n: int) -> None:
    store = Store(url)
    jobs = store.run_jobs(run_id)
    for i in range(n):
        job = jobs[(worker + i) % len(jobs)]
        store.set_job(job["leg_id"], "running")
        store.set_progress(job["leg_id"], phase="production", done=i, total=n)
        store.set_job(job["leg_id"], "done" if i % 2 else "failed", error=f"w{worker} i{i}")
    store.close()


def test_register_is_idempotent_and_adds_new_edges(tmp_path):
    store = open_store(tmp_path, create=True)
    net = _network(2)
    run_id = store.register_run(tmp_path, net, _spec())
    assert store.register_run(tmp_path, net, _spec()) == run_id
    jobs = store.run_jobs(run_id)
    assert len(jobs) == 2 * 2  # edges x legs (solvent, vacuum), one repeat
    assert {j["state"] for j in jobs} == {"queued"} and {j["attempts"] for j in jobs} == {0}
    bigger = _network(3)
    store.register_run(tmp_path, bigger, _spec())
    assert len(store.run_jobs(run_id)) == 3 * 2
    assert [e["key"] for e in store.run_edges(run_id)] == ["L0~L1", "L1~L2", "L2~L3"]
    assert [r["name"] for r in store.run_ligands(run_id)] == ["L0", "L1", "L2", "L3"]
    assert store.list_runs()[0]["mode"] == "hydration"
    assert (tmp_path / "mlfep.sqlite").exists()


def test_job_life_cycle_counts_attempts(tmp_path):
    store = open_store(tmp_path, create=True)
    run_id = store.register_run(tmp_path, _network(1), _spec())
    leg = store.leg_id(run_id, "L0~L1", "solvent", 0)
    store.set_job(leg, "running")
    store.set_job(leg, "failed", error="boom", traceback_file="x/error.txt")
    store.set_job(leg, "running")
    job = next(j for j in store.run_jobs(run_id) if j["leg_id"] == leg)
    assert job["state"] == "running" and job["attempts"] == 2 and job["error"] is None
    assert job["worker"].endswith(f":{__import__('os').getpid()}")
    store.set_job(leg, "failed", error="boom again")
    job = next(j for j in store.run_jobs(run_id) if j["leg_id"] == leg)
    assert job["error"] == "boom again" and job["finished_at"] >= job["started_at"]
    assert store.run_progress(run_id)["jobs"] == {"queued": 1, "running": 0, "done": 0, "failed": 1}


def test_files_are_referenced_by_checksum(tmp_path):
    store = open_store(tmp_path, create=True)
    run_id = store.register_run(tmp_path, _network(1), _spec())
    data = tmp_path / "edges" / "energies.npy"
    data.parent.mkdir()
    data.write_bytes(b"\x00\x01" * 1000)
    digest = store.add_file(run_id, tmp_path, data, kind="energies")
    import hashlib

    assert digest == hashlib.sha256(b"\x00\x01" * 1000).hexdigest() == file_sha256(data)
    assert store.run_files(run_id) == [
        {"path": "edges/energies.npy", "kind": "energies", "bytes": 2000, "sha256": digest}
    ]


def test_concurrent_writer_processes_do_not_corrupt(tmp_path):
    store = open_store(tmp_path, create=True)
    run_id = store.register_run(tmp_path, _network(3), _spec())
    url = store_url(tmp_path)
    n_workers, n_updates = 4, 25
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(url, run_id, w, n_updates)) for w in range(n_workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * n_workers
    jobs = store.run_jobs(run_id)
    # every "running" transition was counted exactly once: no lost updates
    assert sum(j["attempts"] for j in jobs) == n_workers * n_updates
    import sqlite3

    with sqlite3.connect(tmp_path / "mlfep.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_open_store_needs_a_store(tmp_path):
    with pytest.raises(InputError, match="no results store"):
        open_store(tmp_path)


def test_read_api_imports_no_openmm_or_torch(tmp_path):
    store = open_store(tmp_path, create=True)
    store.register_run(tmp_path, _network(1), _spec())
    code = (
        "import sys; from fep.execution.store import open_store; s = open_store(sys.argv[1]); r = s.list_runs()[0]; "
        "s.run_jobs(r['id']); s.run_edges(r['id']); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('openmm', 'torch')]; print(len(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
