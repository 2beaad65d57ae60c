"""``fep run``: simulate one edge, a planned network, or a whole ligand series, resumably.

Before any simulation it prints the plan and the cost estimate (:mod:`fep.execution.cost`; ``--dry-run`` stops there). Legs
run as jobs on a local process pool or a Dask cluster (:mod:`fep.execution.executors`), their state goes to the results
store (:mod:`fep.execution.store`), and the report is written to ``RUN_DIR/report/``.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from pathlib import Path

import typer

from fep.cli._app import app, console, emit_json
from fep.protocol import LIGAND_FF_CHOICES, ligand_ff_label


def _network_for(network_file, edge, ligands, reference, protein, mode, out):
    """The Network to run, from a network.json, an --edge of a ligand file, or a whole ligand file."""
    from ligand_prep.models import Network
    from mlfep_core import InputError

    if network_file is not None:
        if edge is not None or ligands is not None:
            raise InputError("give either NETWORK.json or --ligands (with or without --edge), not both")
        net = Network.from_json_file(network_file)
        return net if mode is None or mode == net.mode else net.model_copy(update={"mode": mode})
    if ligands is None:
        raise InputError("nothing to run: give NETWORK.json, or --ligands FILE (optionally with --edge A,B)")
    from ligand_prep.io import read_ligands

    mode = mode or ("binding" if protein else "hydration")
    with out.status(f"reading {ligands}"):
        ligs = read_ligands(ligands, reference=reference, protein=protein, align=mode != "hydration")
    if edge is not None:
        names = [n.strip() for n in edge.split(",")]
        if len(names) != 2 or not all(names):
            raise InputError(f"--edge '{edge}': give two ligand names separated by a comma, e.g. --edge A,B")
        if names[0] == names[1]:
            raise InputError(f"--edge '{edge}': an edge joins two different ligands")
        by_name = {lig.name: lig for lig in ligs}
        for name in names:
            if name not in by_name:
                raise InputError(f"--edge: ligand '{name}' is not in {ligands} (it has: {', '.join(sorted(by_name))})")
        from ligand_prep.mapping import MappingSettings, MCSMapper

        a, b = by_name[names[0]], by_name[names[1]]
        mapping = MCSMapper(MappingSettings(use_poses=mode != "hydration")).map(a, b)
        return Network(
            mode=mode, ligands=(a, b), edges=(mapping,), planner="edge", protein=str(protein) if protein else None
        )
    from ligand_prep.network import plan_network

    with out.status("planning the network"):
        return plan_network(ligs, mode=mode, protein=str(protein) if protein else None)


def _hours(value: float) -> str:
    """Hours with sensible precision: 0.0042, 3.14, 1,234."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _print_cost(out, cost) -> None:
    """Per edge and leg: atoms, windows x ns x repeats, GPU-hours and CPU core-hours; then the totals."""
    from rich.table import Table

    table = Table(title=f"estimated cost (protocol '{cost.protocol}')")
    for column in ("edge", "leg", "atoms", "waters", "win x ns x rep", "GPU-h", "CPU core-h"):
        if column == "edge":
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, justify="left" if column == "leg" else "right", no_wrap=True)
    for edge in cost.edges:
        for leg in edge.legs:
            table.add_row(
                edge.edge,
                leg.leg,
                f"{leg.n_atoms:,}",
                f"{leg.n_waters:,}",
                f"{leg.windows} x {leg.ns_per_window:g} x {leg.repeats}",
                _hours(leg.gpu_hours),
                _hours(leg.cpu_core_hours),
            )
    out.print(table)
    out.print(
        f"[bold]total: {_hours(cost.gpu_hours)} GPU-hours or {_hours(cost.cpu_core_hours)} CPU core-hours, "
        f"about {cost.disk_bytes / 1e6:,.0f} MB on disk[/bold]  [dim]({cost.model})[/dim]"
    )


def _make_executor(executor, workers, scheduler, cluster_config):
    from fep.execution.executors import DaskExecutor, LocalExecutor

    if executor == "local":
        return LocalExecutor(workers)
    return DaskExecutor(scheduler, cluster_config=str(cluster_config) if cluster_config else None)


class _Bars:
    """Rich progress: one overall bar (production iterations of every leg, with ETA) and one bar per running leg."""

    def __init__(self, progress, legs_total: int, iterations_per_leg: int, edges: set[str]) -> None:
        self.progress = progress
        self.edges = edges
        self.per_leg = max(iterations_per_leg, 1)
        self.overall = progress.add_task("all legs", total=legs_total * self.per_leg)
        self.tasks: dict[tuple, int] = {}

    def __call__(self, rows) -> None:
        done_iterations = 0
        for row in rows:
            if row["edge"] not in self.edges:
                continue
            key = (row["edge"], row["leg"], row["repeat"])
            if row["state"] == "done":
                done_iterations += self.per_leg
            elif row["phase"] == "production":
                done_iterations += min(row["done"], self.per_leg)
            running = row["state"] == "running"
            if running and key not in self.tasks:
                label = f"{row['edge']} {row['leg']}" + (f" r{row['repeat']}" if row["repeat"] else "")
                self.tasks[key] = self.progress.add_task(label, total=max(row["total"], 1))
            if key in self.tasks:
                task = self.tasks[key]
                label = f"{row['edge']} {row['leg']}" + (f" r{row['repeat']}" if row["repeat"] else "")
                self.progress.update(
                    task,
                    description=f"  {label} {row['phase']}",
                    completed=row["done"],
                    total=max(row["total"], 1),
                )
                if not running:
                    self.progress.remove_task(task)
                    del self.tasks[key]
        self.progress.update(self.overall, completed=done_iterations)


def _result_table(out, results, output, nnp: bool) -> None:
    from rich.table import Table

    table = Table(title=f"ΔΔG per edge (kcal/mol) -> {output}")
    for column in ("edge", "ΔΔG MM", "σ", "ΔΔG ML", "σ ML", "status"):
        table.add_column(column, justify="left" if column in ("edge", "status") else "right")
    for res in results:
        if res.status != "done":
            table.add_row(res.key, "", "", "", "", f"failed: {res.error}")
            continue
        ml = "" if res.ddg_ml_kcal_mol is None else f"{res.ddg_ml_kcal_mol:.2f}"
        ml_err = "" if res.ddg_ml_err_kcal_mol is None else f"{res.ddg_ml_err_kcal_mol:.2f}"
        verdict = {v.status for v in res.verdicts}
        status = "fail" if "fail" in verdict else "warn" if "warn" in verdict else "ok"
        if res.charge_change:
            status += f" (Δq {res.charge_change:+d}, co-ion)"
        table.add_row(res.key, f"{res.ddg_mm_kcal_mol:.2f}", f"{res.ddg_mm_err_kcal_mol:.2f}", ml, ml_err, status)
        if nnp and res.ddg_ml_kcal_mol is None and res.ml_reason:
            out.print(f"  {res.key}: no ML value ({res.ml_reason})")
    out.print(table)


def _write_report(out, results, net, output: Path) -> Path | None:
    import logging

    from analysis.report import write_report

    try:
        with out.status("writing the report"):
            paths = write_report(results, net, output / "report")
    except Exception as err:  # the run's results stand even when a plot fails
        logging.getLogger(__name__).warning("report not written: %s", err)
        out.print(f"[yellow]report not written: {err}[/yellow] (try `fep report {output}`)")
        return None
    out.print(f"report: {paths['report_html']}")
    return paths["report_html"]


@app.command("run")
def run(
    network_file: Path | None = typer.Argument(None, help="A network.json from `fep plan` (else use --ligands)."),
    output: Path = typer.Option(..., "--output", "-o", help="Run directory (created; see --resume)."),
    edge: str | None = typer.Option(None, "--edge", help="Run one edge: two ligand names, 'A,B'."),
    ligands: Path | None = typer.Option(None, "--ligands", "-l", help="Ligands (SDF, or CSV/SMI of SMILES)."),
    reference: Path | None = typer.Option(None, "--reference", help="Reference pose (SDF) for SMILES input."),
    protein: Path | None = typer.Option(None, "--protein", "-p", help="Protein PDB (binding mode)."),
    cofactor: list[Path] = typer.Option(
        [],
        "--cofactor",
        help="Cofactor SDF (3D, hydrogens, protein frame), part of the complex leg; repeatable (default: those "
        "recorded by fep plan).",
    ),
    drop_crystal_waters: bool = typer.Option(
        False, "--drop-crystal-waters", help="Remove the protein PDB's HOH residues (kept by default)."
    ),
    mode: str | None = typer.Option(
        None, "--mode", help="binding (complex + solvent) or hydration (solvent + vacuum); default from the inputs."
    ),
    protocol: str = typer.Option("default", "--protocol", help="smoke | fast | default | production | FILE."),
    ligand_ff: str = typer.Option(
        "sage",
        "--ligand-ff",
        help="Ligand force field: sage (plain), ani2x-torsions (torsions refitted to ANI-2x scans, used in every "
        "window) or ani2x-endpoint (MM -> ANI-2x/MM endpoint correction).",
    ),
    charge_method: str | None = typer.Option(
        None, "--charge-method", help="Ligand charges: am1bcc or nagl (conformer-independent); default: the protocol's."
    ),
    nnp: str = typer.Option("none", "--nnp", help="Same as --ligand-ff ani2x-endpoint when 'ani2x' (older name)."),
    platform: str | None = typer.Option(None, "--platform", help="OpenMM platform (default: CUDA > OpenCL > CPU)."),
    executor: str = typer.Option("local", "--executor", help="Where legs run: local (process pool) or dask."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Local worker processes (default: number of GPUs, else max(1, cores // 2))."
    ),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. tcp://host:8786."),
    cluster_config: Path | None = typer.Option(
        None, "--cluster-config", help="YAML of a dask-jobqueue SLURM/PBS cluster (needs: pip install dask-jobqueue)."
    ),
    max_attempts: int = typer.Option(2, "--max-attempts", min=1, help="Attempts per leg before it counts as failed."),
    store: str | None = typer.Option(
        None, "--store", help="Results store: SQLAlchemy URL (default: sqlite RUN_DIR/mlfep.sqlite)."
    ),
    repair: bool = typer.Option(
        False, "--repair", help="When failed edges cut ligands off, run the replacement edges the planner proposes."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in an existing run directory."),
    extend: float | None = typer.Option(None, "--extend", help="Add NS of production to every finished leg."),
    target_sigma: float | None = typer.Option(
        None,
        "--target-sigma",
        help="Adaptive: after the first block, extend the edges that carry most of the ligands' ΔG uncertainty "
        "until every ligand's σ is at most S kcal/mol (or --max-ns is spent).",
    ),
    max_ns: float | None = typer.Option(
        None, "--max-ns", help="With --target-sigma: stop before the run's production replica-ns exceed this."
    ),
    block_ns: float | None = typer.Option(
        None,
        "--block-ns",
        help="With --target-sigma: ns per window one extension adds (default: half the protocol's production).",
    ),
    allow_changed: list[str] = typer.Option(
        [],
        "--allow-changed",
        help="With --resume: accept a change of FIELD since the legs were run (versions, protein, cofactors; "
        "repeatable). Legs run before keep their numbers.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would run and its estimated cost, then stop."),
    json_out: bool = typer.Option(False, "--json", help="Print the edge results as JSON."),
) -> None:
    """Run the legs of every edge (build, sample, analyse, correct), print ΔΔG per edge and write the report."""
    from fep.execution.cost import estimate_cost
    from fep.execution.rundir import RunSpec, check_disk_space, check_run_dir, open_run_dir, package_versions
    from fep.execution.status import live_driver_here
    from ligand_prep.models import Network
    from mlfep_core import DiskFullError, InputError
    from mlfep_core.constants import LEGS_FOR_MODE

    endpoint = _check_options(mode, nnp, ligand_ff, executor, scheduler, cluster_config, platform, extend)
    _check_adaptive(target_sigma, max_ns, block_ns, extend)
    if endpoint or ligand_ff == "ani2x-torsions":  # pre-flight: fail now, not after the MM sampling
        from gpu_kernels.weights import find_ani2x_weights

        find_ani2x_weights()
    for path, what in (
        (ligands, "--ligands"), (reference, "--reference"), (protein, "--protein"), *((c, "--cofactor") for c in cofactor)
    ):  # fmt: skip
        if path is not None and not path.exists():
            raise InputError(f"{what} {path}: file not found")
    out = console()
    proto = _protocol_for(protocol, ligand_ff, charge_method)
    if drop_crystal_waters:
        proto = proto.model_copy(update={"system": proto.system.model_copy(update={"keep_crystal_waters": False})})
    net = _network_for(network_file, edge, ligands, reference, protein, mode, out)
    if net.mode == "binding" and protein is None and net.protein is None:
        raise InputError("binding mode needs a protein: add --protein P.pdb (or use --mode hydration)")
    protein_path = str(protein) if protein else net.protein
    cofactors = tuple(str(c) for c in cofactor) or net.cofactors
    if cofactors and net.mode != "binding":
        raise InputError("--cofactor belongs to the complex leg of binding mode; drop it for a hydration run")
    spec = RunSpec(
        mode=net.mode,
        protocol=proto,
        protein=protein_path,
        cofactors=cofactors,
        nnp=endpoint,
        versions=package_versions(),
    )
    _check_allow_changed(allow_changed, resume)
    check_run_dir(output, spec, resume=resume, allow_changed=allow_changed)
    driver = live_driver_here(output) if resume else None
    if driver is not None:
        raise InputError(
            f"{output}: another `fep run` (pid {driver}) is still driving this run; wait for it, or stop it "
            f"(Ctrl-C, or kill {driver}) and resume then"
        )
    cost = estimate_cost(net, proto, net.mode, protein_path)
    extend_iterations = 0
    if extend is not None:
        per_iteration = proto.sampler.steps_per_iteration * proto.sampler.timestep.m_as("ns")
        extend_iterations = max(1, round(extend / per_iteration))
    if not dry_run:
        check_disk_space(output, _disk_needed(cost, proto, extend_iterations))
    if resume:
        _check_sampled_legs(output, spec, allow_changed)
        if extend is not None or target_sigma is not None:
            _check_extendable(output)
    if "complex" in LEGS_FOR_MODE[net.mode] and protein_path is not None:  # fail now, not when a leg is built
        from fep.systems.protein import load_protein

        with out.status(f"checking {protein_path} against the force field"):
            load_protein(protein_path, proto.system)
        if cofactors:
            from fep.systems.cofactors import check_cofactor_placement, posed, prepare_cofactors

            with out.status(f"{proto.charge_method} charges for the cofactors (cached)"):
                prepared = prepare_cofactors(cofactors, proto.charge_method, proto.system.small_molecule_forcefield)
            check_cofactor_placement(posed([p.ligand for p in prepared]), posed(net.ligands))
    _print_plan(out, net, spec)
    _print_cost(out, cost)
    if dry_run:
        if json_out:
            emit_json(_dry_run_json(net, spec, cost))
        return
    open_run_dir(output, spec, net, resume=resume, allow_changed=allow_changed)
    net = Network.from_json_file(output / "network.json")  # on --resume: every edge of the run (repairs too)

    from fep.execution.store import Store, store_url

    db = Store(store_url(store or output))
    pool = _make_executor(executor, workers, scheduler, cluster_config)
    stopped = False
    try:
        with _sigterm_as_interrupt():
            execute = functools.partial(
                _execute, out, spec=spec, output=output, pool=pool, db=db, max_attempts=max_attempts,
                platform=platform, extend_iterations=extend_iterations, allow_changed=tuple(allow_changed),
            )  # fmt: skip
            results = execute(net)
            net, results = _repair_cut_off_ligands(out, net, spec, output, results, execute, run_repairs=repair)
            if target_sigma is not None:
                results = _adaptive(
                    out, net, results, execute, spec, output, target_sigma, max_ns, block_ns, pool.workers
                )
    except KeyboardInterrupt:
        stopped = True
    except DiskFullError:  # the other legs would fail the same way: stop them (their checkpoints stay), say why
        stopped = True
        raise
    finally:
        pool.close(stop=stopped)
        db.close()
    if stopped:
        again = "the same command" if resume else "the same command with --resume"
        out.print(
            f"[yellow]interrupted: the workers are stopped and every leg keeps its last checkpoint; {again} goes on "
            f"where it stopped (run directory {output})[/yellow]"
        )
        raise typer.Exit(130)
    _result_table(out, results, output, spec.nnp)
    _write_report(out, results, net, output)
    if json_out:
        emit_json([r.model_dump(mode="json", exclude={"legs"}) for r in results])
    if any(r.status != "done" for r in results):
        raise typer.Exit(1)


def _check_adaptive(target_sigma, max_ns, block_ns, extend) -> None:
    from mlfep_core import InputError

    if target_sigma is None:
        if max_ns is not None or block_ns is not None:
            raise InputError("--max-ns and --block-ns go with --target-sigma S (the adaptive run they bound)")
        return
    if not target_sigma > 0:
        raise InputError(f"--target-sigma {target_sigma}: give the σ wanted for every ligand, in kcal/mol (> 0)")
    for name, value in (("--max-ns", max_ns), ("--block-ns", block_ns)):
        if value is not None and not value > 0:
            raise InputError(f"{name} {value}: give a positive number of ns")
    if extend is not None:
        raise InputError("--extend and --target-sigma do not go together: --target-sigma chooses what to extend")


def _adaptive(out, net, results, execute, spec, output, target, max_ns, block_ns, workers, max_rounds: int = 200):
    """Extend, one block at a time, the edges that lower the ligands' σ most per replica-ns
    (:mod:`fep.execution.adaptive`) until every ligand is at ``target``, nothing helps, or ``max_ns`` is spent."""
    from fep.execution.adaptive import block_replica_ns, choose_extensions, edge_replica_ns, record_round

    proto = spec.protocol
    ns_per_iteration = proto.sampler.steps_per_iteration * proto.sampler.timestep.m_as("ns")
    block_ns = block_ns if block_ns is not None else 0.5 * proto.ns_per_window()
    block = max(1, round(block_ns / ns_per_iteration))
    settings = {"target_sigma_kcal_mol": target, "max_ns": max_ns, "block_iterations": block,
                "block_ns_per_window": block * ns_per_iteration}  # fmt: skip
    by_key = {r.key: r for r in results}
    reason = None
    for _ in range(max_rounds):
        current = [by_key[m.key] for m in net.edges if m.key in by_key]
        chosen, record = choose_extensions(current, target, block, ns_per_iteration, workers, proto.repeats)
        spent_ns = sum(edge_replica_ns(r, ns_per_iteration, proto.repeats) for r in current if r.status == "done")
        if record["max_sigma_kcal_mol"] is not None and record["max_sigma_kcal_mol"] <= target:
            reason = f"every ligand's σ is at most {target:g} kcal/mol"
            break
        if not chosen:
            reason = "no extension lowers the ligands' σ further (failed edges or a disconnected network?)"
            break
        cost = sum(block_replica_ns(by_key[k], block, ns_per_iteration, proto.repeats) for k in chosen)
        if max_ns is not None and spent_ns + cost > max_ns:
            reason = f"--max-ns {max_ns:g} would be exceeded ({spent_ns:.3g} replica-ns spent)"
            break
        out.print(
            f"adaptive: max ligand σ {record['max_sigma_kcal_mol']:.3f} kcal/mol > {target:g}; extending "
            f"{', '.join(chosen)} by {block} iterations"
        )
        record_round(output, settings, record, current, ns_per_iteration, proto.repeats)
        sub = net.model_copy(update={"edges": tuple(m for m in net.edges if m.key in chosen)})
        for r in execute(sub, extend_iterations=block):
            by_key[r.key] = r
    else:
        reason = f"{max_rounds} rounds"
    final = [by_key[m.key] for m in net.edges if m.key in by_key]
    data = record_round(output, settings, None, final, ns_per_iteration, proto.repeats, stop_reason=reason)
    out.print(
        f"adaptive: stopped, {reason}; max ligand σ {data['max_sigma_kcal_mol']:.3f} kcal/mol, "
        f"{data['replica_ns_total']:.3g} replica-ns of production ({output / 'adaptive.json'})"
    )
    return final


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler's kill, `kill PID`) stops the run like Ctrl-C: workers stopped, checkpoints kept."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. called from a library): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_sampled_legs(output: Path, spec, allow_changed: list[str]) -> None:
    """Before anything is printed or run: the content key of every leg the run directory holds against the one it
    would get now (the driver checks again, and writes the keys, before it submits any leg)."""
    from fep.execution.legkey import check_leg_keys
    from fep.execution.rundir import package_versions
    from fep.execution.runner import prepare_ligands
    from ligand_prep.models import Network

    held = Network.from_json_file(output / "network.json")
    started = held.model_copy(update={"edges": tuple(m for m in held.edges if (output / "edges" / m.key).is_dir())})
    if not started.edges:
        return
    names = {n for m in started.edges for n in (m.ligand_a, m.ligand_b)}
    prepared = prepare_ligands([lig for lig in held.ligands if lig.name in names], spec.protocol)  # cached
    check_leg_keys(output, started, spec, prepared, package_versions(), allow_changed=allow_changed, write=False)


#: what extending a sampled leg reads besides its checkpoint: the hybrid, the replicas' state and every sample so far
EXTEND_NEEDS = ("hybrid/system.xml", "hybrid/positions.npy", "sampler/state", "sampler/data")


def _check_extendable(output: Path) -> None:
    """Before --extend or --target-sigma samples anything: every sampled leg still holds what extending it needs
    (an archive of finished legs, e.g. ``benchmarks/rhfe.py --archive`` of a plain run, leaves those files out)."""
    from mlfep_core import InputError

    for checkpoint in sorted((output / "edges").glob("*/repeat_*/*/sampler/checkpoint.json")):
        leg_dir = checkpoint.parent.parent
        missing = [need for need in EXTEND_NEEDS if not (leg_dir / need).exists()]
        if missing:
            edge, repeat, leg = leg_dir.parts[-3], leg_dir.parts[-2].removeprefix("repeat_"), leg_dir.name
            raise InputError(
                f"leg {edge} repeat {repeat} {leg} cannot be extended: {leg_dir} has no {', '.join(missing)} (an "
                "archive that left a finished leg's samples out?); delete that folder to sample the leg again "
                "on --resume, or extend a run directory that still holds them"
            )


def _check_allow_changed(fields: list[str], resume: bool) -> None:
    from fep.execution.legkey import ALLOWABLE
    from mlfep_core import InputError

    for field in fields:
        if field not in ALLOWABLE:
            raise InputError(
                f"--allow-changed {field}: only {', '.join(ALLOWABLE)} can change under a run; a change of the "
                "molecules, mapping, force field, charges, NNP or protocol needs a new -o folder"
            )
    if fields and not resume:
        raise InputError("--allow-changed goes with --resume (it accepts a change under a run that exists)")


def _check_options(mode, nnp, ligand_ff, executor, scheduler, cluster_config, platform, extend) -> bool:
    """Refuse option values and combinations that cannot work; returns whether the endpoint correction is on."""
    from mlfep_core import InputError

    if mode not in (None, "binding", "hydration"):
        raise InputError(f"--mode '{mode}': choose binding or hydration")
    if nnp not in ("none", "ani2x"):
        raise InputError(f"--nnp '{nnp}': choose ani2x or none")
    if ligand_ff not in LIGAND_FF_CHOICES:
        raise InputError(f"--ligand-ff '{ligand_ff}': choose {', '.join(LIGAND_FF_CHOICES)}")
    if nnp == "ani2x" and ligand_ff == "ani2x-torsions":
        raise InputError("--nnp ani2x is the endpoint correction: use it or --ligand-ff ani2x-torsions, not both")
    if executor not in ("local", "dask"):
        raise InputError(f"--executor '{executor}': choose local or dask")
    if executor == "local" and (scheduler is not None or cluster_config is not None):
        raise InputError("--scheduler/--cluster-config need --executor dask")
    if executor == "dask" and (scheduler is None) == (cluster_config is None):
        raise InputError("--executor dask: add either --scheduler tcp://host:8786 or --cluster-config FILE.yaml")
    if cluster_config is not None and not cluster_config.exists():
        raise InputError(f"--cluster-config {cluster_config}: file not found")
    if platform is not None and platform not in ("CUDA", "OpenCL", "CPU", "Reference"):
        raise InputError(f"--platform '{platform}': choose CUDA, OpenCL, CPU or Reference")
    if extend is not None and extend <= 0:
        raise InputError(f"--extend {extend}: give the ns of production to add (> 0)")
    return nnp == "ani2x" or ligand_ff == "ani2x-endpoint"


def _protocol_for(protocol: str, ligand_ff: str, charge_method: str | None):
    """The protocol tier or file, with the ligand force-field and charge options applied."""
    from fep.protocol import load_protocol
    from mlfep_core import InputError

    proto = load_protocol(protocol)
    if ligand_ff == "ani2x-torsions":
        proto = proto.model_copy(update={"ligand_torsions": "ani2x"})
    if charge_method is not None:
        if charge_method not in ("am1bcc", "nagl", "gasteiger", "mmff94"):
            raise InputError(f"--charge-method '{charge_method}': choose am1bcc or nagl (gasteiger, mmff94 for tests)")
        proto = proto.model_copy(update={"charge_method": charge_method})
    return proto


def _print_plan(out, net, spec) -> None:
    from mlfep_core.constants import LEGS_FOR_MODE

    legs, proto = LEGS_FOR_MODE[net.mode], spec.protocol
    out.print(
        f"[bold]{len(net.edges)} edge(s)[/bold] x {len(legs)} legs ({', '.join(legs)}) x {proto.repeats} repeat(s); "
        f"{len(proto.windows())} windows x {proto.ns_per_window():g} ns; protocol '{proto.name}'; "
        f"ligand force field: {ligand_ff_label(proto, spec.nnp)}"
    )
    if any(m.charge_change for m in net.edges):
        out.print(
            f"charge-changing edges: {len(proto.windows(charge_change=True))} windows x "
            f"{proto.ns_per_window(charge_change=True):g} ns, with an alchemical co-ion, no ANI-2x correction"
        )
    for mapping in net.edges:
        flag = f"  [yellow]{'; '.join(mapping.warnings)}[/yellow]" if mapping.warnings else ""
        out.print(f"  {mapping.key}  score {mapping.score:.2f}  {len(mapping.mapping)} mapped atoms{flag}")


def _disk_needed(cost, protocol, extend_iterations: int) -> int:
    """Bytes the finished run takes, with ``extend_iterations`` more iterations on every leg (the cost model's
    :func:`~fep.execution.cost.disk_bytes`, leg by leg)."""
    from fep.execution.cost import disk_bytes

    if not extend_iterations:
        return cost.disk_bytes
    extra = 0
    for edge in cost.edges:
        for leg in edge.legs:
            sampler = protocol.sampler_for(leg.leg)
            n, snap = sampler.n_iterations, sampler.snapshot_interval
            more = disk_bytes(leg.n_atoms, leg.windows, n + extend_iterations, snap)
            extra += leg.repeats * (more - disk_bytes(leg.n_atoms, leg.windows, n, snap))
    return cost.disk_bytes + extra


def _dry_run_json(net, spec, cost) -> dict:
    from mlfep_core.constants import LEGS_FOR_MODE

    return {
        "edges": [m.key for m in net.edges],
        "legs": list(LEGS_FOR_MODE[net.mode]),
        "windows": len(spec.protocol.windows()),
        "cost": cost.model_dump(mode="json"),
    }


def _repair_cut_off_ligands(out, net, spec, output, results, execute, *, run_repairs: bool):
    """When failed edges cut ligands off the network, propose replacement edges and (``--repair``) run them.

    Returns the network and the results of all its edges (replacements included when they ran).
    """
    from fep.execution.executors import cut_off_ligands, propose_repairs
    from fep.execution.rundir import open_run_dir
    from ligand_prep.models import Network

    failed = [r.key for r in results if r.status != "done"]
    cut = cut_off_ligands(net, failed) if failed else []
    if not cut:
        return net, results
    names = ", ".join(n for group in cut for n in group)
    out.print(f"[red]failed edges cut off ligand(s) {names} from the network[/red]")
    proposals = propose_repairs(net, failed)
    for m in proposals:
        out.print(f"  replacement edge {m.key} (score {m.score:.2f}, {len(m.mapping)} mapped atoms)")
    if not proposals:
        return net, results
    if not run_repairs:
        out.print("  re-run with --resume --repair to run them")
        return net, results
    repaired = Network(
        mode=net.mode, ligands=net.ligands, edges=(*net.edges, *proposals), planner=net.planner, protein=net.protein
    )
    open_run_dir(output, spec, repaired, resume=True)
    repaired = Network.from_json_file(output / "network.json")
    new_keys = {m.key for m in proposals}
    only_new = repaired.model_copy(update={"edges": tuple(m for m in repaired.edges if m.key in new_keys)})
    out.print(f"running {len(only_new.edges)} replacement edge(s)")
    by_key = {r.key: r for r in (*results, *execute(only_new))}
    return repaired, [by_key[m.key] for m in repaired.edges if m.key in by_key]


def _execute(out, net, *, spec, output, pool, db, max_attempts, platform, extend_iterations, allow_changed):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from fep.execution.executors import execute_network
    from mlfep_core.constants import LEGS_FOR_MODE

    n_legs = len(net.edges) * len(LEGS_FOR_MODE[spec.mode]) * spec.protocol.repeats
    per_leg = spec.protocol.sampler.n_iterations + extend_iterations
    out.print(f"{n_legs} leg job(s) on {pool.name} executor with {pool.workers} worker(s); store {db.url}")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=out,
        transient=False,
    ) as progress:
        bars = _Bars(progress, n_legs, per_leg, {m.key for m in net.edges})
        return execute_network(
            net,
            spec,
            output,
            pool,
            db,
            max_attempts=max_attempts,
            platform=platform,
            extend_iterations=extend_iterations,
            allow_changed=allow_changed,
            on_poll=bars,
            message=lambda text: progress.console.print(text),
        )
