"""The ``fep`` command line: thin wrappers that parse options, call the library and print.

Every command has ``--help`` and ``--json``; any :class:`~mlfep_core.MlfepError` ends the command with
one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Any

import click

from fep.cli._app import app

__all__ = ["app", "main"]

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

# a command module may share a name with this package's attributes (``fep/cli/app.py`` for `fep app`):
# importing it rebinds that attribute, so bind the Typer application again
from fep.cli._app import app  # noqa: E402, F811


def _click_exceptions() -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(usage errors, other click errors) of click and of the click copy newer typer versions carry."""
    usage: list[Any] = [click.UsageError]
    other: list[Any] = [click.ClickException]
    try:
        from typer._click import exceptions as typer_click  # typer >= 0.20 vendors its own click

        usage.append(typer_click.UsageError)
        other.append(typer_click.ClickException)
    except ImportError:  # pragma: no cover - older typer uses click itself
        pass
    return tuple(usage), tuple(other)


_USAGE_ERRORS, _CLICK_ERRORS = _click_exceptions()


def _os_error_line(err: OSError) -> str:
    """One line for a failed file operation: which file, what the system said, what to do."""
    where = err.filename if err.filename is not None else ""
    if isinstance(err, IsADirectoryError):
        return f"{where}: is a folder; give a file name"
    if isinstance(err, PermissionError):
        return f"{where}: permission denied; choose a folder you can write to"
    if isinstance(err, FileNotFoundError):
        return f"{where}: no such file or folder"
    reason = err.strerror or str(err)
    return f"{where}: {reason}" if where else reason


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fep`` console script; returns the exit status.

    A mistake of the user's (an :class:`~mlfep_core.MlfepError`, a file that cannot be read or written, a value a
    model refuses) is one line on stderr and exit status 2. Anything else is a bug: one line saying so, and the
    traceback in a file to report (``MLFEP_DEBUG=1`` shows it instead).
    """
    import os

    from pydantic import ValidationError

    from mlfep_core import MlfepError
    from mlfep_core.models import first_validation_error

    try:
        result = app(args=argv, prog_name="fep", standalone_mode=False)
    except MlfepError as err:
        click.echo(f"error: {err}", err=True)
        return 2
    except OSError as err:
        click.echo(f"error: {_os_error_line(err)}", err=True)
        return 2
    except UnicodeDecodeError as err:
        click.echo(f"error: a file is not text ({err.reason} at byte {err.start}); give the right file", err=True)
        return 2
    except ValidationError as err:
        where, msg = first_validation_error(err)
        click.echo(f"error: {err.title}: {where + ': ' if where else ''}{msg}", err=True)
        return 2
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    except _USAGE_ERRORS as err:  # a wrong option or argument: one line, and where the help is
        ctx = getattr(err, "ctx", None)
        command = ctx.command_path if ctx is not None else "fep"
        click.echo(f"error: {err.format_message()} (see `{command} --help`)", err=True)
        return int(getattr(err, "exit_code", 2))
    except _CLICK_ERRORS as err:
        err.show()
        return int(getattr(err, "exit_code", 1))
    except click.exceptions.Exit as err:
        return err.exit_code
    except Exception as err:
        if os.environ.get("MLFEP_DEBUG") == "1":
            raise
        click.echo(f"internal error: {type(err).__name__}: {err} ({_save_traceback()}); please report it", err=True)
        return 1
    return result if isinstance(result, int) else 0


def _save_traceback() -> str:
    import tempfile
    import traceback

    try:
        fd, path = tempfile.mkstemp(prefix="mlfep-error-", suffix=".txt")
        with os.fdopen(fd, "w") as handle:
            handle.write(traceback.format_exc())
        return f"traceback in {path}"
    except OSError:
        return "the traceback could not be saved"
