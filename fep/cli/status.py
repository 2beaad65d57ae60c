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
    from fep.execution.adaptive import read_adaptive

    info = collect_status(run_dir)
    adaptive = read_adaptive(run_dir)
    if adaptive is not None:
        info["adaptive"] = adaptive
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
    if adaptive is not None:
        _print_adaptive(out, adaptive)


def _print_adaptive(out, data: dict) -> None:
    """Where an adaptive run (``--target-sigma``) put its time."""
    settings = data.get("settings", {})
    spent = data.get("replica_ns_per_edge", {})
    total = data.get("replica_ns_total") or 0.0
    extended: dict[str, int] = {}
    for r in data.get("rounds", []):
        for key in r.get("extended", []):
            extended[key] = extended.get(key, 0) + 1
    sigma = data.get("max_sigma_kcal_mol")
    out.print(
        f"adaptive (--target-sigma {settings.get('target_sigma_kcal_mol')}): {len(data.get('rounds', []))} round(s), "
        f"max ligand σ {sigma:.3f} kcal/mol, {total:.3g} replica-ns of production"
        + (f"; stopped: {data['stop_reason']}" if data.get("stop_reason") else "; still going")
        if sigma is not None
        else "adaptive: no finished edge yet"
    )
    for key, ns in sorted(spent.items(), key=lambda kv: -kv[1]):
        share = 100.0 * ns / total if total else 0.0
        out.print(f"  {key}: {ns:.3g} replica-ns ({share:.0f} %), extended {extended.get(key, 0)} time(s)")
