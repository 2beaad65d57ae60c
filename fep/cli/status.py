"""``fep status``: what has finished, what is running and what failed in a run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from fep.cli._app import app, console, emit_json
from fep.execution.status import collect_status


@app.command("status")
def status(
    run_dir: Path = typer.Argument(..., help="Run directory of `fep run`."),
    json_out: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Show what has finished, what is running and what failed."""
    info = collect_status(run_dir)
    if json_out:
        emit_json(info)
        return
    from rich.table import Table

    out = console()
    counts = ", ".join(f"{n} {s}" for s, n in info["counts"].items() if n)
    table = Table(title=f"{run_dir} ({info['mode']}, protocol {info['protocol']}): {counts}")
    for column in ("edge", "state", "legs", "detail"):
        table.add_column(column)
    colours = {"done": "green", "running": "cyan", "interrupted": "yellow", "failed": "red", "pending": "white"}
    for e in info["edges"]:
        legs = []
        for leg in e["legs"]:
            text = f"{leg['leg']}:{leg['state']}"
            if leg["state"] in ("running", "interrupted") and leg.get("total"):
                text += f" {leg['phase']} {leg['done']}/{leg['total']}"
            if leg["state"] == "failed" and leg.get("error"):
                text += f" ({leg['attempts']} attempts: {leg['error']})"
            legs.append(text)
        detail = e["error"] or ""
        if e["state"] == "done" and e.get("ddg_mm_kcal_mol") is not None:
            detail = f"ΔΔG MM {e['ddg_mm_kcal_mol']:.2f}" + (
                f", ML {e['ddg_ml_kcal_mol']:.2f}" if e.get("ddg_ml_kcal_mol") is not None else ""
            )
        colour = colours[e["state"]]
        table.add_row(e["edge"], f"[{colour}]{e['state']}[/{colour}]", "  ".join(legs), detail)
    out.print(table)
