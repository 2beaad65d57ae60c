"""Run the legs of a network as jobs: locally on a process pool or on a Dask cluster, resumably, with retries.

A job is one leg (edge × repeat × leg). The parent process (:func:`execute_network`):

1. prepares the ligands (charges) and saves them to ``RUN_DIR/prepared/`` so that any worker can read them;
2. registers the run in the store (:mod:`fep.execution.store`) and queues every leg that is not finished already (a leg
   with a fresh ``leg_result.json`` is skipped without simulation; an interrupted one resumes from its sampler
   checkpoint inside :func:`fep.execution.runner.run_leg`);
3. submits the jobs to an executor, polls the store for progress, re-submits a failed leg until it has had
   ``max_attempts`` attempts, and, once every leg of an edge is resolved, runs the NNP correction and
   :func:`analysis.results.combine_edge` (:func:`fep.execution.runner.finish_edge`) and records the edge in the store.

Executors
---------
:class:`LocalExecutor`
    A ``spawn`` process pool of N workers (default :func:`default_workers`: the number of GPUs, else
    max(1, cores // 2)); with GPUs each worker gets its own device through ``CUDA_VISIBLE_DEVICES``.
:class:`DaskExecutor`
    ``distributed.Client`` of an existing scheduler (``tcp://host:8786``), a dask-jobqueue SLURM/PBS cluster
    from a YAML file (:func:`cluster_from_config`), or any cluster object (tests use a ``LocalCluster``). Workers
    need the run directory on a shared file system; the scheduler never touches a GPU.

Worker jobs (:func:`execute_leg`) write their state (running/done/failed, attempts, error, traceback file,
``host:pid``) and progress to the store; a failure never raises out of the worker.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlfep_core import DiskFullError, ExecutorError, FrozenModel, InputError, MlfepError, atomic_write_text

__all__ = [
    "DaskExecutor",
    "LegJob",
    "LocalExecutor",
    "cluster_from_config",
    "cut_off_ligands",
    "default_workers",
    "execute_leg",
    "execute_network",
    "propose_repairs",
]

log = logging.getLogger(__name__)


class LegJob(FrozenModel):
    """What a worker needs to run one leg: everything else is read from the run directory."""

    run_dir: str
    store_url: str
    leg_id: int
    edge: str
    leg: str
    repeat: int
    platform: str | None = None
    extend_iterations: int = 0


# ----------------------------------------------------------------------------------------------- worker
def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(err, MlfepError) and first:
        return first
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def execute_leg(job: LegJob) -> dict[str, Any]:
    """Run one leg in this (worker) process; record running/done/failed in the store.

    Returns ``{"leg_id", "state": "done" | "failed", "error", "disk_full"}``; exceptions are caught and recorded (the traceback
    goes to the leg's ``error.txt``), so a failed leg never takes a worker down.
    """
    from fep.execution.runner import RunSpec, correct_leg, load_prepared, node_corrections, run_leg
    from fep.execution.store import Store
    from ligand_prep.models import Network
    from mlfep_core.runtime import configure_process

    configure_process()  # a Dask worker runs no initializer of ours

    store = Store(job.store_url, create=False)
    leg_dir = Path(job.run_dir) / "edges" / job.edge / f"repeat_{job.repeat}" / job.leg
    try:
        store.set_job(job.leg_id, "running")
        spec = RunSpec.from_json_file(Path(job.run_dir) / "run.json")
        network = Network.from_json_file(Path(job.run_dir) / "network.json")
        mapping = next((e for e in network.edges if e.key == job.edge), None)
        if mapping is None:
            raise InputError(f"{job.run_dir}/network.json has no edge {job.edge}")
        prepared = load_prepared(job.run_dir, (mapping.ligand_a, mapping.ligand_b))
        last = [0.0]

        def progress(p) -> None:
            now = time.monotonic()
            if now - last[0] < 1.0 and p.phase not in ("done", "analysing") and p.done not in (0, p.total):
                return
            last[0] = now
            store.set_progress(
                job.leg_id,
                phase=p.phase,
                done=p.done,
                total=p.total,
                ns_done=p.ns_done,
                ns_total=p.ns_total,
                eta_s=p.eta_s,
            )

        mapping.to_json_file(leg_dir.parent.parent / "edge.json")
        result = run_leg(
            prepared[mapping.ligand_a],
            prepared[mapping.ligand_b],
            mapping,
            job.leg,
            spec.protocol,
            leg_dir,
            protein=spec.protein if job.leg == "complex" else None,
            cofactors=spec.cofactors if job.leg == "complex" else (),
            repeat=job.repeat,
            platform=job.platform,
            extend_iterations=job.extend_iterations,
            progress=progress,
        )
        if (
            spec.nnp and not mapping.charge_change
        ):  # the ANI-2x corrections for this leg, here on the worker (RUN_DIR/nodes/, or nnp_A/B.json per edge)
            store.set_progress(job.leg_id, phase="nnp correction", done=0, total=2)
            try:
                pair = (("A", prepared[mapping.ligand_a]), ("B", prepared[mapping.ligand_b]))
                if spec.protocol.nnp.placement == "node":  # this leg's environment, once per ligand for the run
                    node_corrections(
                        pair,
                        (job.leg,),
                        spec.protocol,
                        job.run_dir,
                        protein=spec.protein,
                        cofactors=spec.cofactors,
                        platform=job.platform,
                    )
                else:
                    correct_leg(pair[0][1], pair[1][1], job.leg, spec.protocol, leg_dir, platform=job.platform)
            except Exception as err:  # the MM leg stands; finish_edge retries and records the reason
                log.warning("%s %s repeat %d: NNP correction failed: %s", job.edge, job.leg, job.repeat, err)
        store.set_progress(job.leg_id, phase="done", done=result.n_iterations, total=result.n_iterations)
        store.set_job(job.leg_id, "done")
        return {"leg_id": job.leg_id, "state": "done", "error": None}
    except Exception as err:
        message = _first_line(err)
        disk_full = isinstance(err, DiskFullError) or (
            isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
        )
        log.error("%s %s repeat %d failed: %s", job.edge, job.leg, job.repeat, message)
        rel: str | None = str((leg_dir / "error.txt").relative_to(job.run_dir))
        try:
            atomic_write_text(leg_dir / "error.txt", traceback.format_exc())
        except OSError:  # pragma: no cover - unwritable run directory
            rel = None
        try:
            store.set_job(job.leg_id, "failed", error=message, traceback_file=rel)
        except Exception:  # pragma: no cover - store gone; the parent records the failure
            log.exception("could not record the failure of leg %d", job.leg_id)
        return {"leg_id": job.leg_id, "state": "failed", "error": message, "disk_full": disk_full}
    finally:
        store.close()


# -------------------------------------------------------------------------------------------- executors
CPU_THREAD_VARIABLES = ("OPENMM_CPU_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def gpu_count() -> int:
    """Number of NVIDIA GPUs visible (``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``); 0 without one."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def default_workers() -> int:
    """Number of GPUs, else max(1, cores // 2) (OpenMM's CPU platform uses several threads per context)."""
    return gpu_count() or max(1, (os.cpu_count() or 2) // 2)


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:  # pragma: no cover - a worker's thread
    """Stop this worker when the process that started it is gone (killed with SIGKILL, say): an orphan would go
    on sampling a leg, hold its folder's lock and look alive to ``fep status``. The last checkpoint stays valid."""
    while True:
        time.sleep(every_s)
        if os.getppid() != parent:
            log.warning("the driving process %d is gone; this worker (pid %d) stops", parent, os.getpid())
            os._exit(3)


def _init_worker(devices, thread_counts: dict[str, str], parent: int) -> None:  # pragma: no cover - pool processes
    """Set up a worker process: mlfep's logging and warnings, its share of the cores, its GPU, and a watch on the
    driver (the worker stops by itself when the driver dies)."""
    import signal
    import threading

    from mlfep_core.runtime import configure_process

    for var, value in thread_counts.items():
        os.environ.setdefault(var, value)  # before torch or OpenMM are imported here; an explicit setting wins
    configure_process()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the driver, which stops the workers itself
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="mlfep-parent-watch").start()
    if devices is not None:
        try:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get(timeout=5))
        except Exception:
            pass


class LocalExecutor:
    """A pool of ``workers`` spawned processes on this machine."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self._pool = self._start()

    def _start(self):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        n_gpus = gpu_count()
        thread_counts: dict[str, str] = {}
        if n_gpus == 0:  # share the cores: N workers x all-core OpenMM/torch contexts would oversubscribe them
            thread_counts = dict.fromkeys(CPU_THREAD_VARIABLES, str(max(1, (os.cpu_count() or 1) // self.workers)))
        devices = None
        if n_gpus > 1:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            ids = [d.strip() for d in visible.split(",")] if visible else [str(i) for i in range(n_gpus)]
            devices = ctx.Queue()
            for i in range(self.workers):
                devices.put(ids[i % len(ids)])
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(devices, thread_counts, os.getpid()),
        )

    def submit(self, job: LegJob):
        """A future whose result is :func:`execute_leg`'s dict (a pool broken by a killed worker is restarted)."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._pool.submit(execute_leg, job)
        except BrokenProcessPool:
            log.warning("a worker process died; restarting the pool")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(execute_leg, job)

    def close(self, *, stop: bool = False, grace_s: float = 5.0) -> None:
        """Wait for the workers to exit; ``stop``: drop the queued legs and stop the running ones now (their last
        checkpoint is kept, so ``--resume`` goes on from it)."""
        if not stop:
            self._pool.shutdown(wait=True, cancel_futures=True)
            return
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + grace_s
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)


def cluster_from_config(path: str | os.PathLike[str]):
    """A dask-jobqueue cluster from a YAML file.

    The file names the kind and passes everything else to the cluster class, e.g.::

        kind: slurm            # slurm or pbs
        jobs: 4                # batch jobs to start (cluster.scale(jobs=...))
        queue: gpu
        cores: 8
        memory: 32GB
        walltime: "12:00:00"
        job_extra_directives: ["--gres=gpu:1"]
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise InputError(f"--cluster-config {path}: file not found")
    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"--cluster-config {path}: not valid YAML ({err})") from err
    if not isinstance(settings, dict):
        raise InputError(f"--cluster-config {path}: must hold a mapping (kind: slurm, jobs: N, queue: ...)")
    settings = dict(settings)
    kind = str(settings.pop("kind", "slurm")).lower()
    jobs = int(settings.pop("jobs", 1))
    try:
        import dask_jobqueue
    except ImportError as err:
        raise ExecutorError(
            "--cluster-config needs dask-jobqueue: pip install 'mlfep[cluster]' (or pip install dask-jobqueue)"
        ) from err
    classes = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}
    if kind not in classes:
        raise InputError(f"--cluster-config {path}: kind '{kind}': choose slurm or pbs")
    try:
        cluster = classes[kind](**settings)
    except TypeError as err:
        raise InputError(f"--cluster-config {path}: {err}") from err
    cluster.scale(jobs=jobs)
    return cluster


class DaskExecutor:
    """Legs on a Dask cluster: ``scheduler`` address, a cluster object, or a dask-jobqueue config file."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, *, cluster=None, cluster_config: str | None = None) -> None:
        try:
            from distributed import Client
        except ImportError as err:  # pragma: no cover - a core dependency
            raise ExecutorError("--executor dask needs dask[distributed]: pip install 'dask[distributed]'") from err
        if sum(x is not None for x in (scheduler, cluster, cluster_config)) != 1:
            raise InputError(
                "--executor dask: give exactly one of --scheduler tcp://host:8786 or --cluster-config FILE"
            )
        self._own_cluster = None
        if cluster_config is not None:
            cluster = self._own_cluster = cluster_from_config(cluster_config)
        try:
            self.client = Client(scheduler if scheduler is not None else cluster, timeout="30s")
        except (OSError, TimeoutError) as err:
            raise ExecutorError(
                f"--scheduler {scheduler}: cannot connect ({err}); is the Dask scheduler running?"
            ) from err
        self.workers = len(self.client.scheduler_info().get("workers", {})) or 1

    def submit(self, job: LegJob):
        """A Dask future of :func:`execute_leg` (not pure: every submission runs)."""
        return self.client.submit(execute_leg, job, pure=False, key=f"leg-{job.leg_id}-{time.time_ns()}")

    def close(self, *, stop: bool = False) -> None:
        """Close the client (and a cluster this executor started); ``stop``: cancel this run's legs first."""
        if stop:
            try:
                self.client.cancel(list(self.client.futures.values()), force=True)
            except Exception as err:  # the scheduler may already be gone
                log.warning("could not cancel the Dask legs: %s", err)
        self.client.close()
        if self._own_cluster is not None:
            self._own_cluster.close()


# ---------------------------------------------------------------------------------------------- parent
def _finished(run_dir: Path, edge: str, leg: str, repeat: int, spec, charged: bool = False) -> bool:
    from fep.execution.runner import leg_finished

    leg_dir = run_dir / "edges" / edge / f"repeat_{repeat}" / leg
    return leg_finished(leg_dir, spec.protocol.sampler_for(leg, repeat=repeat, charge_change=charged).n_iterations)


def execute_network(
    network,
    spec,
    run_dir: str | os.PathLike[str],
    executor,
    store,
    *,
    max_attempts: int = 2,
    platform: str | None = None,
    extend_iterations: int = 0,
    allow_changed: Sequence[str] = (),
    poll_s: float = 0.5,
    on_poll: Callable[[list[dict[str, Any]]], None] | None = None,
    message: Callable[[str], None] | None = None,
) -> list:
    """Run every unfinished leg of ``network`` on ``executor``; returns one EdgeResult per edge (network order).

    Parameters
    ----------
    network : ligand_prep.models.Network
    spec : fep.execution.runner.RunSpec
    run_dir : path
        An opened run directory (:func:`fep.execution.rundir.open_run_dir`).
    executor : LocalExecutor or DaskExecutor
        Anything with ``submit(LegJob) -> future`` (``done()``, ``result()``).
    store : fep.execution.store.Store
    max_attempts : int
        Attempts per leg in this call (a failed leg is re-submitted until it has had this many).
    allow_changed : sequence of str
        Leg-key components whose change is accepted (:func:`fep.execution.legkey.check_leg_keys`).
    on_poll : callable(list of job dicts), optional
        Called every ``poll_s`` with :meth:`fep.execution.store.Store.run_jobs` (progress bars).
    message : callable(str), optional
        One line per event worth telling the user (a leg failed, an edge finished).
    """
    from analysis.results import EdgeResult
    from fep.execution.legkey import check_leg_keys
    from fep.execution.rundir import package_versions
    from fep.execution.runner import finish_edge, prepare_ligands, save_prepared

    if max_attempts < 1:
        raise InputError(f"--max-attempts {max_attempts}: give 1 or more")
    run_dir = Path(run_dir).resolve()
    say = message or (lambda text: None)
    prepared = prepare_ligands(network.ligands, spec.protocol, progress=say)
    save_prepared(prepared, run_dir)
    check_leg_keys(run_dir, network, spec, prepared, package_versions(), allow_changed=allow_changed)
    run_id = store.register_run(run_dir, network, spec)
    rows = {(r["edge"], r["leg"], r["repeat"]): r for r in store.run_jobs(run_id)}
    from mlfep_core.constants import LEGS_FOR_MODE

    legs = LEGS_FOR_MODE[spec.mode]
    keys_of_edge = {
        m.key: [(m.key, leg, r) for r in range(spec.protocol.repeats) for leg in legs] for m in network.edges
    }
    state: dict[tuple, str] = {}
    errors: dict[tuple, str] = {}
    attempts: dict[tuple, int] = {}
    futures: dict[tuple, Any] = {}

    def submit(key: tuple) -> None:
        edge, leg, repeat = key
        job = LegJob(
            run_dir=str(run_dir),
            store_url=store.url,
            leg_id=rows[key]["leg_id"],
            edge=edge,
            leg=leg,
            repeat=repeat,
            platform=platform,
            extend_iterations=extend_iterations,
        )
        attempts[key] = attempts.get(key, 0) + 1
        store.set_job(job.leg_id, "queued")
        futures[key] = executor.submit(job)
        state[key] = "submitted"

    for mapping in network.edges:
        for key in keys_of_edge[mapping.key]:
            if extend_iterations == 0 and _finished(run_dir, *key, spec, bool(mapping.charge_change)):
                state[key] = "done"
                if rows[key]["state"] != "done":
                    store.set_job(rows[key]["leg_id"], "done")
            else:
                store.reset_attempts(rows[key]["leg_id"])
                submit(key)
        store.set_edge_state(run_id, mapping.key, "running")

    results: dict[str, Any] = {}

    def resolve(mapping) -> None:
        keys = keys_of_edge[mapping.key]
        failed = [k for k in keys if state[k] == "failed"]
        folder = run_dir / "edges" / mapping.key
        if failed:
            text = "; ".join(f"{k[1]} r{k[2]}: {errors.get(k, 'failed')}" for k in failed)
            result = EdgeResult.failed(mapping.ligand_a, mapping.ligand_b, spec.mode, text)
            result.to_json_file(folder / "edge_result.json")
            say(f"edge {mapping.key} failed: {text}")
        else:
            try:
                result = finish_edge(prepared, mapping, spec, run_dir, platform=platform)
            except Exception as err:
                text = _first_line(err)
                atomic_write_text(folder / "error.txt", traceback.format_exc())
                result = EdgeResult.failed(mapping.ligand_a, mapping.ligand_b, spec.mode, f"analysis: {text}")
                result.to_json_file(folder / "edge_result.json")
                say(f"edge {mapping.key} failed: analysis: {text}")
        path = folder / "edge_result.json"
        digest = store.add_file(run_id, run_dir, path, kind="edge_result")
        store.set_edge_result(run_id, result, file=str(path.relative_to(run_dir)), sha256=digest)
        results[mapping.key] = result

    pending_edges = list(network.edges)
    last_poll = 0.0
    while True:
        for key, future in list(futures.items()):
            if not future.done():
                continue
            del futures[key]
            try:
                outcome = future.result()
            except Exception as err:  # the worker process itself died (killed, out of memory, lost)
                outcome = {"state": "failed", "error": f"worker lost: {_first_line(err)}"}
                store.set_job(rows[key]["leg_id"], "failed", error=outcome["error"])
            if outcome.get("disk_full"):  # every other leg would fail the same way: stop the run, keep the rest
                raise DiskFullError(f"{key[0]} {key[1]} r{key[2]}: {outcome['error']}")
            if outcome["state"] == "done":
                state[key] = "done"
            elif attempts[key] < max_attempts:
                say(f"{key[0]} {key[1]} r{key[2]} failed ({outcome['error']}); retrying")
                submit(key)
            else:
                state[key] = "failed"
                errors[key] = outcome["error"]
        for mapping in list(pending_edges):
            if all(state[k] in ("done", "failed") for k in keys_of_edge[mapping.key]):
                pending_edges.remove(mapping)
                resolve(mapping)
        now = time.monotonic()
        if on_poll and (now - last_poll >= poll_s or not futures):
            last_poll = now
            on_poll(store.run_jobs(run_id))
        if not futures and not pending_edges:
            break
        time.sleep(min(poll_s, 0.2))
    return [results[m.key] for m in network.edges]


# ---------------------------------------------------------------------------------------------- repair
def cut_off_ligands(network, failed_edges: Sequence[str]) -> list[list[str]]:
    """Groups of ligands that the edges still standing no longer connect to the largest group.

    Among groups of equal size the one holding the network's first ligand is kept. Returns one sorted list of
    names per cut-off connected component (empty when the network stays connected).
    """
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(lig.name for lig in network.ligands)
    failed = set(failed_edges)
    graph.add_edges_from((e.ligand_a, e.ligand_b) for e in network.edges if e.key not in failed)
    order = {lig.name: i for i, lig in enumerate(network.ligands)}
    # the largest group stays; among equals, the one holding the earliest ligand (the series' reference)
    components = sorted(
        (sorted(c, key=order.__getitem__) for c in nx.connected_components(graph)),
        key=lambda c: (-len(c), order[c[0]]),
    )
    return [sorted(c) for c in components[1:]]


def propose_repairs(network, failed_edges: Sequence[str], mapper=None) -> list:
    """Replacement edges that reconnect every cut-off group: per group, the best-scoring mapping to the rest.

    Pairs already in the network (failed ones included) are not proposed again.
    """
    from ligand_prep.mapping import MappingSettings, MCSMapper
    from mlfep_core import MappingError

    mapper = mapper or MCSMapper(MappingSettings(use_poses=network.mode != "hydration"))
    groups = cut_off_ligands(network, failed_edges)
    if not groups:
        return []
    by_name = {lig.name: lig for lig in network.ligands}
    existing = {frozenset((e.ligand_a, e.ligand_b)) for e in network.edges}
    cut = {name for group in groups for name in group}
    main = [name for name in by_name if name not in cut]
    proposals = []
    for group in groups:
        best = None
        for a in group:
            for b in main:
                if frozenset((a, b)) in existing:
                    continue
                try:
                    mapping = mapper.map(by_name[b], by_name[a])
                except MappingError:
                    continue
                if best is None or mapping.score > best.score:
                    best = mapping
        if best is not None:
            proposals.append(best)
    return proposals
