"""``fep run``: simulate one edge, a planned network, or a whole ligand series, resumably."""

from __future__ import annotations

from pathlib import Path

import typer

from fep.cli._app import app, console, emit_json


def _network_for(network_file, edge, ligands, reference, protein, mode, out):
    """The Network to run, from a network.json, an --edge of a ligand file, or a whole ligand file."""
    from ligand_prep.base import InputError
    from ligand_prep.models import Network

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
        ligs = read_ligands(ligands, reference=reference, protein=protein)
    if edge is not None:
        names = [n.strip() for n in edge.split(",")]
        if len(names) != 2 or not all(names):
            raise InputError(f"--edge '{edge}': give two ligand names separated by a comma, e.g. --edge A,B")
        by_name = {lig.name: lig for lig in ligs}
        for name in names:
            if name not in by_name:
                raise InputError(f"--edge: ligand '{name}' is not in {ligands} (it has: {', '.join(sorted(by_name))})")
        from ligand_prep.mapping import MCSMapper

        a, b = by_name[names[0]], by_name[names[1]]
        mapping = MCSMapper().map(a, b)
        return Network(
            mode=mode, ligands=(a, b), edges=(mapping,), planner="edge", protein=str(protein) if protein else None
        )
    from ligand_prep.network import plan_network

    with out.status("planning the network"):
        return plan_network(ligs, mode=mode, protein=str(protein) if protein else None)


@app.command("run")
def run(
    network_file: Path | None = typer.Argument(None, help="A network.json from `fep plan` (else use --ligands)."),
    output: Path = typer.Option(..., "--output", "-o", help="Run directory (created; see --resume)."),
    edge: str | None = typer.Option(None, "--edge", help="Run one edge: two ligand names, 'A,B'."),
    ligands: Path | None = typer.Option(None, "--ligands", "-l", help="Ligands (SDF, or CSV/SMI of SMILES)."),
    reference: Path | None = typer.Option(None, "--reference", help="Reference pose (SDF) for SMILES input."),
    protein: Path | None = typer.Option(None, "--protein", "-p", help="Protein PDB (binding mode)."),
    mode: str | None = typer.Option(
        None, "--mode", help="binding (complex + solvent) or hydration (solvent + vacuum); default from the inputs."
    ),
    protocol: str = typer.Option("default", "--protocol", help="smoke | fast | default | production | FILE."),
    nnp: str = typer.Option("none", "--nnp", help="ANI-2x endpoint correction: ani2x or none."),
    platform: str | None = typer.Option(None, "--platform", help="OpenMM platform (default: CUDA > OpenCL > CPU)."),
    executor: str = typer.Option("local", "--executor", help="Where legs run: local (this process)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in an existing run directory."),
    extend: float | None = typer.Option(None, "--extend", help="Add NS of production to every finished leg."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would run, then stop."),
    json_out: bool = typer.Option(False, "--json", help="Print the edge results as JSON."),
) -> None:
    """Run the legs of every edge (build, sample, analyse, correct) and print ΔΔG per edge."""
    from ligand_prep.base import InputError

    if mode not in (None, "binding", "hydration"):
        raise InputError(f"--mode '{mode}': choose binding or hydration")
    if nnp not in ("none", "ani2x"):
        raise InputError(f"--nnp '{nnp}': choose ani2x or none")
    if executor != "local":
        raise InputError(f"--executor '{executor}' is not available yet: use --executor local")
    if platform is not None and platform not in ("CUDA", "OpenCL", "CPU", "Reference"):
        raise InputError(f"--platform '{platform}': choose CUDA, OpenCL, CPU or Reference")
    if extend is not None and extend <= 0:
        raise InputError(f"--extend {extend}: give the ns of production to add (> 0)")
    for path, what in ((ligands, "--ligands"), (reference, "--reference"), (protein, "--protein")):
        if path is not None and not path.exists():
            raise InputError(f"{what} {path}: file not found")

    from fep.protocol import LEGS_FOR_MODE, load_protocol
    from fep.runner import RunSpec, open_run_dir, package_versions, run_network

    if (output / "run.json").exists() and not resume:
        raise InputError(f"{output} already holds a run: add --resume to continue it, or choose a new -o folder")
    out = console()
    proto = load_protocol(protocol)
    net = _network_for(network_file, edge, ligands, reference, protein, mode, out)
    if net.mode == "binding" and protein is None and net.protein is None:
        raise InputError("binding mode needs a protein: add --protein P.pdb (or use --mode hydration)")
    protein_path = str(protein) if protein else net.protein
    spec = RunSpec(mode=net.mode, protocol=proto, protein=protein_path, nnp=nnp == "ani2x", versions=package_versions())
    legs = LEGS_FOR_MODE[net.mode]
    n_windows = len(proto.windows())
    out.print(
        f"[bold]{len(net.edges)} edge(s)[/bold] x {len(legs)} legs ({', '.join(legs)}) x {proto.repeats} repeat(s); "
        f"{n_windows} windows x {proto.ns_per_window():g} ns; protocol '{proto.name}'; "
        f"NNP correction: {'ANI-2x' if spec.nnp else 'off'}"
    )
    for mapping in net.edges:
        flag = f"  [yellow]{'; '.join(mapping.warnings)}[/yellow]" if mapping.warnings else ""
        out.print(f"  {mapping.key}  score {mapping.score:.2f}  {len(mapping.mapping)} mapped atoms{flag}")
    if dry_run:
        if json_out:
            emit_json({"edges": [m.key for m in net.edges], "legs": list(legs), "windows": n_windows})
        return
    open_run_dir(output, spec, net, resume=resume)
    extend_iterations = 0
    if extend is not None:
        per_iteration = proto.sampler.steps_per_iteration * proto.sampler.timestep.m_as("ns")
        extend_iterations = max(1, round(extend / per_iteration))

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    tasks: dict[tuple, int] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=out,
        transient=False,
    ) as bars:

        def on_progress(p) -> None:
            leg_key = (p.edge, p.leg, p.repeat)
            key = (*leg_key, p.phase)
            label = f"{p.edge} {p.leg}" + (f" r{p.repeat}" if proto.repeats > 1 else "") + f" {p.phase}"
            if key not in tasks:
                for (*other_leg, _), task in tasks.items():  # a new phase closes the leg's earlier ones
                    if tuple(other_leg) == leg_key:
                        bars.update(task, completed=bars.tasks[task].total)
                        bars.stop_task(task)
                if p.phase == "done":
                    return
                tasks[key] = bars.add_task(label, total=max(p.total, 1))
            bars.update(tasks[key], completed=p.done, total=max(p.total, 1))

        results = run_network(
            net,
            spec,
            output,
            platform=platform,
            extend_iterations=extend_iterations,
            progress=on_progress,
            message=lambda text: bars.console.print(text),
        )

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
        table.add_row(res.key, f"{res.ddg_mm_kcal_mol:.2f}", f"{res.ddg_mm_err_kcal_mol:.2f}", ml, ml_err, status)
        if spec.nnp and res.ddg_ml_kcal_mol is None and res.ml_reason:
            out.print(f"  {res.key}: no ML value ({res.ml_reason})")
    out.print(table)
    if json_out:
        emit_json([r.model_dump(mode="json", exclude={"legs"}) for r in results])
    if any(r.status != "done" for r in results):
        raise typer.Exit(1)
