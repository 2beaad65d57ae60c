"""The ``fep`` command line: thin wrappers that parse options, call the library and print.

Every command has ``--help`` and ``--json``; any :class:`~mlfep_core.MlfepError` ends the command with
one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from fep.cli._app import app

__all__ = ["app", "main"]

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

# a command module may share a name with this package's attributes (``fep/cli/app.py`` for `fep app`):
# importing it rebinds that attribute, so bind the Typer application again
from fep.cli._app import app  # noqa: E402, F811


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fep`` console script; returns the exit status."""
    from mlfep_core import MlfepError

    try:
        result = app(args=argv, prog_name="fep", standalone_mode=False)
    except MlfepError as err:
        click.echo(f"error: {err}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    return result if isinstance(result, int) else 0
