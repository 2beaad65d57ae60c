"""The ``fep`` Typer application and the helpers every command shares.

Command modules in this package register themselves on :data:`app` when imported; keep heavy imports
(openmm, torch, rdkit) inside the command functions so that ``fep --help`` stays instant.
"""

from __future__ import annotations

import json
from typing import Any

import typer

app = typer.Typer(
    name="fep",
    help="mlfep: relative binding and hydration free energies with ML-corrected FEP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show progress messages from the library."),
) -> None:
    """mlfep: relative binding and hydration free energies with ML-corrected FEP."""
    from mlfep_core.runtime import configure_process

    configure_process(verbose)


def emit_json(payload: Any) -> None:
    """Print ``payload`` as JSON on stdout (the ``--json`` machine output of every command)."""
    typer.echo(json.dumps(payload, indent=2, default=str))


def console():
    """A rich console on stderr for human-facing progress and tables (stdout stays clean for --json)."""
    from rich.console import Console

    return Console(stderr=True)
