"""``fep report``: tables, plots and a self-contained HTML report from a run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from fep.cli._app import app, console, emit_json


@app.command("report")
def report(
    run_dir: Path = typer.Argument(..., help="Run directory written by `fep run` (edges/<A>~<B>/edge_result.json)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for results.csv, edges.csv, results.json, plots."),
    experimental: Path | None = typer.Option(
        None,
        "--experimental",
        "-e",
        help="CSV of experimental ΔG (ligand,dg_kcal_mol[,dg_err_kcal_mol] or Ki/IC50 columns); default: the "
        "ligands' experimental values in RUN_DIR/network.json.",
    ),
    n_bootstrap: int = typer.Option(1000, "--n-bootstrap", min=0, help="Bootstrap samples of the statistics' CIs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    json_out: bool = typer.Option(False, "--json", help="Print the ranked ligands, edges and file paths as JSON."),
) -> None:
    """Analyse a run directory: network ΔG, statistics vs experiment, plots and report.html."""
    from analysis.report import load_run_dir, write_report

    edges, network = load_run_dir(run_dir)
    exp_values = None
    if experimental is not None:
        from ligand_prep.experimental import read_experimental

        exp_values = read_experimental(experimental)
    out = console()
    with out.status("writing the report") as status:

        def progress(stage: str, fraction: float) -> None:
            status.update(f"report: {stage} {fraction:.0%}")

        paths = write_report(
            edges, network, output, experimental=exp_values, n_bootstrap=n_bootstrap, seed=seed, progress=progress
        )

    import csv

    with open(paths["results_csv"], newline="") as handle:
        ligands = list(csv.DictReader(handle))
    n_failed = sum(e.status != "done" for e in edges)
    from rich.table import Table

    table = Table(title=f"{len(edges)} edge(s), {n_failed} failed -> {paths['report_html']}")
    for column in ("rank", "ligand", "ΔG (kcal/mol)", "σ", "estimate", "expt ΔG"):
        table.add_column(column, justify="left" if column == "ligand" else "right")
    for row in ligands:
        table.add_row(
            row["rank"],
            row["ligand"],
            row["dg_kcal_mol"],
            row["dg_err_kcal_mol"],
            row["estimate"],
            row["exp_dg_kcal_mol"],
        )
    out.print(table)
    for edge in edges:
        if edge.status != "done":
            out.print(f"[red]failed edge[/red] {edge.key}: {edge.error}")
    if json_out:
        emit_json(
            {
                "ligands": ligands,
                "edges": [
                    {
                        "ligand_a": e.ligand_a,
                        "ligand_b": e.ligand_b,
                        "status": e.status,
                        "ddg_mm_kcal_mol": e.ddg_mm_kcal_mol if e.status == "done" else None,
                        "ddg_mm_err_kcal_mol": e.ddg_mm_err_kcal_mol if e.status == "done" else None,
                        "ddg_ml_kcal_mol": e.ddg_ml_kcal_mol,
                        "ddg_ml_err_kcal_mol": e.ddg_ml_err_kcal_mol,
                        "error": e.error,
                    }
                    for e in edges
                ],
                "files": {key: str(path) for key, path in paths.items()},
            }
        )
