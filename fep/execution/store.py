"""The results store: runs, ligands, edges, legs, jobs and results of `fep run` in one SQL database.

By default a SQLite file in the run directory (``RUN_DIR/mlfep.sqlite``, WAL journal, 30 s busy timeout, every
write transaction ``BEGIN IMMEDIATE`` so concurrent writers queue instead of dead-locking); any SQLAlchemy URL
(``postgresql+psycopg://user@host/db``) via ``fep run --store URL``. Large arrays (sampler energies, trajectories)
stay as files in the run directory; the store keeps their relative path, size and sha256 (table ``files``).

Tables
------
``runs``      id, project, run_dir, mode, protocol, spec_json, created
``ligands``   id, run_id, name, smiles, formal_charge
``edges``     id, run_id, key ('A~B'), ligand_a, ligand_b, score, state (pending/running/done/failed)
``legs``      id, run_id, edge_id, repeat, leg, dir, phase, done, total, ns_done, ns_total, eta_s, updated
``jobs``      id, leg_id, state (queued/running/done/failed), attempts, error, traceback_file, worker,
              queued_at, started_at, finished_at
``results``   id, edge_id, status, ddg_mm, ddg_mm_err, ddg_ml, ddg_ml_err, error, file, sha256
``files``     id, run_id, path (relative to the run directory), kind, bytes, sha256, created

Read API for the dashboard (imports neither openmm nor torch; only SQLAlchemy)::

    from fep.execution.store import open_store
    store = open_store("runs/series1")            # a run directory, a .sqlite file or a SQLAlchemy URL
    for run in store.list_runs():                  # [{'id', 'project', 'run_dir', 'mode', 'protocol', ...}]
        store.run_jobs(run["id"])                  # one dict per leg job: edge, leg, repeat, state, attempts, ...
        store.run_edges(run["id"])                 # edges with their state and ΔΔG (MM / ML, σ)
        store.run_progress(run["id"])              # counts per job state, iterations done / total

Timestamps are Unix seconds (float, UTC).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.exc import OperationalError

from mlfep_core import InputError, MlfepError, StoreError

__all__ = [
    "JOB_STATES",
    "STORE_FILE",
    "Store",
    "StoreError",
    "file_sha256",
    "open_store",
    "store_url",
]

log = logging.getLogger(__name__)

STORE_FILE = "mlfep.sqlite"
JOB_STATES = ("queued", "running", "done", "failed")


metadata = MetaData()
runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(200), nullable=False, default=""),
    Column("run_dir", String(1000), nullable=False, unique=True),
    Column("mode", String(20), nullable=False),
    Column("protocol", String(200), nullable=False),
    Column("spec_json", Text, nullable=False, default="{}"),
    Column("created", Float, nullable=False),
)
ligands = Table(
    "ligands",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("smiles", Text, nullable=False, default=""),
    Column("formal_charge", Integer, nullable=False, default=0),
    UniqueConstraint("run_id", "name"),
)
edges = Table(
    "edges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False),
    Column("key", String(400), nullable=False),
    Column("ligand_a", String(200), nullable=False),
    Column("ligand_b", String(200), nullable=False),
    Column("score", Float),
    Column("state", String(20), nullable=False, default="pending"),
    UniqueConstraint("run_id", "key"),
)
legs = Table(
    "legs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False),
    Column("edge_id", ForeignKey("edges.id"), nullable=False),
    Column("repeat", Integer, nullable=False),
    Column("leg", String(20), nullable=False),
    Column("dir", String(1000), nullable=False),
    Column("phase", String(40), nullable=False, default="pending"),
    Column("done", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=False, default=0),
    Column("ns_done", Float, nullable=False, default=0.0),
    Column("ns_total", Float, nullable=False, default=0.0),
    Column("eta_s", Float),
    Column("updated", Float),
    UniqueConstraint("edge_id", "repeat", "leg"),
)
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("leg_id", ForeignKey("legs.id"), nullable=False, unique=True),
    Column("state", String(20), nullable=False, default="queued"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("traceback_file", String(1000)),
    Column("worker", String(200)),
    Column("queued_at", Float),
    Column("started_at", Float),
    Column("finished_at", Float),
)
results = Table(
    "results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("edge_id", ForeignKey("edges.id"), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("ddg_mm", Float),
    Column("ddg_mm_err", Float),
    Column("ddg_ml", Float),
    Column("ddg_ml_err", Float),
    Column("error", Text),
    Column("file", String(1000)),
    Column("sha256", String(64)),
    Column("updated", Float),
)
files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False),
    Column("path", String(1000), nullable=False),
    Column("kind", String(40), nullable=False, default=""),
    Column("bytes", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created", Float, nullable=False),
    UniqueConstraint("run_id", "path"),
)


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def store_url(url_or_path: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL of a run directory, a SQLite file or a URL (returned unchanged)."""
    text = str(url_or_path)
    if "://" in text:
        return text
    path = Path(text)
    if path.is_dir() or path.suffix.lower() not in (".sqlite", ".sqlite3", ".db"):
        path = path / STORE_FILE
    return f"sqlite:///{path.resolve()}"


def worker_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _sqlite_setup(engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade dead-locks


class Store:
    """A connection to the results store (thread- and process-safe; open one per process).

    Parameters
    ----------
    url : str
        SQLAlchemy URL (see :func:`store_url`).
    create : bool
        Create missing tables (the writer does; readers need not).
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        try:
            if self.is_sqlite:
                folder = Path(url.split(":///", 1)[1]).parent
                if create:
                    folder.mkdir(parents=True, exist_ok=True)
                self.engine = create_engine(url, connect_args={"timeout": 30.0})
                _sqlite_setup(self.engine)
            else:
                self.engine = create_engine(url, pool_pre_ping=True)
            if create:
                self._retry(lambda: metadata.create_all(self.engine))
        except MlfepError:
            raise
        except Exception as err:
            raise StoreError(f"store {url}: cannot open ({type(err).__name__}: {err}); check the --store URL") from err

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------------------------- plumbing
    def _retry(self, fn, attempts: int = 20):
        """Run ``fn`` and retry when SQLite reports a lock held beyond the busy timeout."""
        for attempt in range(attempts):
            try:
                return fn()
            except OperationalError as err:
                if ("locked" not in str(err) and "busy" not in str(err)) or attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        return None  # pragma: no cover

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self.engine.begin() as conn:
            yield conn

    def _write(self, fn):
        def once():
            with self._tx() as conn:
                return fn(conn)

        return self._retry(once)

    def _read(self, stmt) -> list[dict[str, Any]]:
        def once():
            with self.engine.connect() as conn:
                return [dict(row._mapping) for row in conn.execute(stmt)]

        return self._retry(once)

    # ---------------------------------------------------------------------------------------- writes
    def register_run(self, run_dir: str | os.PathLike[str], network: Any, spec: Any, *, project: str = "") -> int:
        """Create (or find) the run of ``run_dir`` and its ligands, edges, legs and jobs; returns the run id.

        ``network`` is a :class:`ligand_prep.models.Network`, ``spec`` a :class:`fep.execution.runner.RunSpec`. Calling it
        again adds what is new (edges added by ``--repair``) and leaves existing rows alone.
        """
        from mlfep_core.constants import LEGS_FOR_MODE

        run_dir = str(Path(run_dir).resolve())
        now = time.time()

        def fn(conn) -> int:
            row = conn.execute(select(runs.c.id).where(runs.c.run_dir == run_dir)).first()
            if row is None:
                run_id = conn.execute(
                    runs.insert().values(
                        project=project or Path(run_dir).name,
                        run_dir=run_dir,
                        mode=spec.mode,
                        protocol=spec.protocol.name,
                        spec_json=spec.model_dump_json(),
                        created=now,
                    )
                ).inserted_primary_key[0]
            else:
                run_id = row[0]
            known = {r[0] for r in conn.execute(select(ligands.c.name).where(ligands.c.run_id == run_id))}
            for lig in network.ligands:
                if lig.name not in known:
                    conn.execute(
                        ligands.insert().values(
                            run_id=run_id, name=lig.name, smiles=lig.smiles, formal_charge=lig.formal_charge
                        )
                    )
            edge_ids = dict(conn.execute(select(edges.c.key, edges.c.id).where(edges.c.run_id == run_id)).all())
            for mapping in network.edges:
                if mapping.key not in edge_ids:
                    edge_ids[mapping.key] = conn.execute(
                        edges.insert().values(
                            run_id=run_id,
                            key=mapping.key,
                            ligand_a=mapping.ligand_a,
                            ligand_b=mapping.ligand_b,
                            score=mapping.score,
                            state="pending",
                        )
                    ).inserted_primary_key[0]
                for r in range(spec.protocol.repeats):
                    for leg in LEGS_FOR_MODE[spec.mode]:
                        exists = conn.execute(
                            select(legs.c.id).where(
                                legs.c.edge_id == edge_ids[mapping.key], legs.c.repeat == r, legs.c.leg == leg
                            )
                        ).first()
                        if exists:
                            continue
                        leg_id = conn.execute(
                            legs.insert().values(
                                run_id=run_id,
                                edge_id=edge_ids[mapping.key],
                                repeat=r,
                                leg=leg,
                                dir=f"edges/{mapping.key}/repeat_{r}/{leg}",
                                phase="pending",
                            )
                        ).inserted_primary_key[0]
                        conn.execute(jobs.insert().values(leg_id=leg_id, state="queued", attempts=0, queued_at=now))
            return run_id

        return self._write(fn)

    def leg_id(self, run_id: int, edge: str, leg: str, repeat: int) -> int:
        """Id of one leg (KeyError-like StoreError when unknown)."""
        stmt = (
            select(legs.c.id)
            .join(edges, edges.c.id == legs.c.edge_id)
            .where(legs.c.run_id == run_id, edges.c.key == edge, legs.c.leg == leg, legs.c.repeat == repeat)
        )
        rows = self._read(stmt)
        if not rows:
            raise StoreError(f"store {self.url}: run {run_id} has no leg {edge} {leg} repeat {repeat}")
        return rows[0]["id"]

    def set_job(self, leg_id: int, state: str, *, error: str | None = None, traceback_file: str | None = None) -> None:
        """Move a leg's job to ``state`` (queued/running/done/failed); 'running' counts an attempt."""
        if state not in JOB_STATES:
            raise StoreError(f"job state '{state}': choose one of {', '.join(JOB_STATES)}")
        now = time.time()

        def fn(conn) -> None:
            values: dict[str, Any] = {"state": state}
            if state == "running":
                values.update(started_at=now, finished_at=None, worker=worker_name(), attempts=jobs.c.attempts + 1)
                values.update(error=None, traceback_file=None)
            elif state == "queued":
                values.update(queued_at=now)
            else:
                values.update(finished_at=now, error=error, traceback_file=traceback_file)
            conn.execute(update(jobs).where(jobs.c.leg_id == leg_id).values(**values))

        self._write(fn)

    def reset_attempts(self, leg_id: int) -> None:
        """Zero the attempt count of a leg's job (a new `fep run` gives failed legs a fresh budget)."""
        self._write(lambda conn: conn.execute(update(jobs).where(jobs.c.leg_id == leg_id).values(attempts=0)))

    def set_progress(self, leg_id: int, **fields: Any) -> None:
        """Progress of a leg: any of phase, done, total, ns_done, ns_total, eta_s."""
        values = {k: v for k, v in fields.items() if k in ("phase", "done", "total", "ns_done", "ns_total", "eta_s")}
        values["updated"] = time.time()
        self._write(lambda conn: conn.execute(update(legs).where(legs.c.id == leg_id).values(**values)))

    def set_edge_result(self, run_id: int, result: Any, file: str | None = None, sha256: str | None = None) -> None:
        """Record an :class:`analysis.results.EdgeResult` (done or failed) and the edge's state."""
        now = time.time()

        def fn(conn) -> None:
            edge_id = conn.execute(
                select(edges.c.id).where(edges.c.run_id == run_id, edges.c.key == result.key)
            ).scalar()
            if edge_id is None:
                raise StoreError(f"store {self.url}: run {run_id} has no edge {result.key}")
            values = {
                "status": result.status,
                "ddg_mm": None if result.status != "done" else result.ddg_mm_kcal_mol,
                "ddg_mm_err": None if result.status != "done" else result.ddg_mm_err_kcal_mol,
                "ddg_ml": result.ddg_ml_kcal_mol,
                "ddg_ml_err": result.ddg_ml_err_kcal_mol,
                "error": result.error,
                "file": file,
                "sha256": sha256,
                "updated": now,
            }
            if conn.execute(select(results.c.id).where(results.c.edge_id == edge_id)).first():
                conn.execute(update(results).where(results.c.edge_id == edge_id).values(**values))
            else:
                conn.execute(results.insert().values(edge_id=edge_id, **values))
            conn.execute(update(edges).where(edges.c.id == edge_id).values(state=result.status))

        self._write(fn)

    def set_edge_state(self, run_id: int, key: str, state: str) -> None:
        """pending / running / done / failed."""
        self._write(
            lambda conn: conn.execute(
                update(edges).where(edges.c.run_id == run_id, edges.c.key == key).values(state=state)
            )
        )

    def add_file(
        self, run_id: int, run_dir: str | os.PathLike[str], path: str | os.PathLike[str], kind: str = ""
    ) -> str:
        """Reference a file of the run directory with its size and sha256 (returned)."""
        full = Path(path)
        rel = str(full.resolve().relative_to(Path(run_dir).resolve()))
        digest, size, now = file_sha256(full), full.stat().st_size, time.time()

        def fn(conn) -> None:
            old = conn.execute(select(files.c.id).where(files.c.run_id == run_id, files.c.path == rel)).first()
            values = {"kind": kind, "bytes": size, "sha256": digest, "created": now}
            if old:
                conn.execute(update(files).where(files.c.id == old[0]).values(**values))
            else:
                conn.execute(files.insert().values(run_id=run_id, path=rel, **values))

        self._write(fn)
        return digest

    # ----------------------------------------------------------------------------------------- reads
    def list_runs(self) -> list[dict[str, Any]]:
        """Every run: id, project, run_dir, mode, protocol, created (newest first)."""
        cols = [runs.c.id, runs.c.project, runs.c.run_dir, runs.c.mode, runs.c.protocol, runs.c.created]
        return self._read(select(*cols).order_by(runs.c.created.desc()))

    def run_id(self, run_dir: str | os.PathLike[str]) -> int | None:
        """Id of the run of ``run_dir`` (None if not registered)."""
        rows = self._read(select(runs.c.id).where(runs.c.run_dir == str(Path(run_dir).resolve())))
        return rows[0]["id"] if rows else None

    def run_jobs(self, run_id: int) -> list[dict[str, Any]]:
        """One dict per leg job: edge, leg, repeat, dir, state, attempts, error, traceback_file, worker,
        queued_at, started_at, finished_at, phase, done, total, ns_done, ns_total, eta_s, updated, leg_id."""
        stmt = (
            select(
                edges.c.key.label("edge"),
                legs.c.leg,
                legs.c.repeat,
                legs.c.dir,
                jobs.c.state,
                jobs.c.attempts,
                jobs.c.error,
                jobs.c.traceback_file,
                jobs.c.worker,
                jobs.c.queued_at,
                jobs.c.started_at,
                jobs.c.finished_at,
                legs.c.phase,
                legs.c.done,
                legs.c.total,
                legs.c.ns_done,
                legs.c.ns_total,
                legs.c.eta_s,
                legs.c.updated,
                legs.c.id.label("leg_id"),
            )
            .join(legs, legs.c.edge_id == edges.c.id)
            .join(jobs, jobs.c.leg_id == legs.c.id)
            .where(legs.c.run_id == run_id)
            .order_by(edges.c.id, legs.c.repeat, legs.c.id)
        )
        return self._read(stmt)

    def run_edges(self, run_id: int) -> list[dict[str, Any]]:
        """One dict per edge: key, ligand_a, ligand_b, score, state, status, ddg_mm, ddg_mm_err, ddg_ml, ddg_ml_err,
        error, file, sha256 (result columns None until the edge is finished)."""
        stmt = (
            select(
                edges.c.key,
                edges.c.ligand_a,
                edges.c.ligand_b,
                edges.c.score,
                edges.c.state,
                results.c.status,
                results.c.ddg_mm,
                results.c.ddg_mm_err,
                results.c.ddg_ml,
                results.c.ddg_ml_err,
                results.c.error,
                results.c.file,
                results.c.sha256,
            )
            .outerjoin(results, results.c.edge_id == edges.c.id)
            .where(edges.c.run_id == run_id)
            .order_by(edges.c.id)
        )
        return self._read(stmt)

    def run_ligands(self, run_id: int) -> list[dict[str, Any]]:
        """name, smiles, formal_charge of every ligand of a run."""
        stmt = select(ligands.c.name, ligands.c.smiles, ligands.c.formal_charge).where(ligands.c.run_id == run_id)
        return self._read(stmt.order_by(ligands.c.id))

    def run_files(self, run_id: int) -> list[dict[str, Any]]:
        """path (relative to the run directory), kind, bytes, sha256 of every referenced file."""
        stmt = select(files.c.path, files.c.kind, files.c.bytes, files.c.sha256).where(files.c.run_id == run_id)
        return self._read(stmt.order_by(files.c.id))

    def run_progress(self, run_id: int) -> dict[str, Any]:
        """Counts of jobs per state and iterations done / total over all legs."""
        rows = self.run_jobs(run_id)
        counts = {s: sum(r["state"] == s for r in rows) for s in JOB_STATES}
        return {
            "jobs": counts,
            "iterations_done": sum(r["done"] for r in rows),
            "iterations_total": sum(r["total"] for r in rows),
        }


def open_store(url_or_run_dir: str | os.PathLike[str], *, create: bool = False) -> Store:
    """Open the store of a run directory, a SQLite file or a SQLAlchemy URL (read API for the dashboard).

    Raises
    ------
    InputError
        A run directory or SQLite file without a store (and ``create`` false).
    """
    url = store_url(url_or_run_dir)
    if url.startswith("sqlite:///") and not create:
        path = Path(url.split(":///", 1)[1])
        if not path.exists():
            raise InputError(f"{path}: no results store here; is this the -o folder of `fep run`?")
    return Store(url, create=create)
