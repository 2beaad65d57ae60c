"""``fep models``: where the ANI-2x weights are looked for, and ``fep models install FOLDER`` (offline clusters)."""

from __future__ import annotations

from pathlib import Path

import typer

from fep.cli._app import app, console, emit_json

models_app = typer.Typer(
    help="Neural-network potential weights: where they are looked for (default) or install them from a folder.",
    no_args_is_help=False,
    invoke_without_command=True,
)
app.add_typer(models_app, name="models")


def _human(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1e6:.1f} MB"


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    no_checksum: bool = typer.Option(False, "--no-checksum", help="Skip the sha256 of the weight files."),
) -> None:
    """Show where ANI-2x weights are looked for (TORCHANI_DATA_DIR, torchani's default), which exist, size, sha256."""
    if ctx.invoked_subcommand is not None:
        return
    from gpu_kernels.weights import describe_ani2x_weights

    rows = describe_ani2x_weights(checksum=not no_checksum)
    found = any(row["used"] for row in rows)
    if as_json:
        emit_json({"models": rows, "ani2x_available": found})
        return
    from rich.table import Table

    table = Table(title="ANI-2x weights (ani2x_state_dict.pt)")
    for col in ("source", "path", "exists", "size", "sha256", "used"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(
            row["source"],
            row["path"],
            "yes" if row["exists"] else "no",
            _human(row["size_bytes"]),
            (row["sha256"] or "-")[:16],
            "yes" if row["used"] else "",
        )
    out = console()
    out.print(table)
    if not found:
        out.print(
            "[yellow]ANI-2x weights are not installed: the ML correction will be skipped. Install them with "
            "'fep models install FOLDER' (mlfep never downloads).[/yellow]"
        )


@models_app.command("install")
def install(
    folder: Path = typer.Argument(..., help="Folder holding StateDicts/ani2x_state_dict.pt (or the file itself)."),
    to: Path | None = typer.Option(
        None, "--to", help="Destination torchani data folder (default: $TORCHANI_DATA_DIR or torchani's default)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Copy the ANI-2x weights from FOLDER into a torchani data folder (atomically) and say what to export."""
    from gpu_kernels.weights import install_ani2x_weights

    dest = install_ani2x_weights(folder, to)
    data_dir = dest.parent.parent
    export = f"export TORCHANI_DATA_DIR={data_dir}"
    if as_json:
        emit_json({"installed": str(dest), "data_dir": str(data_dir), "export": export})
        return
    out = console()
    out.print(f"installed ANI-2x weights at {dest}")
    out.print(f"add to your environment: {export}")
