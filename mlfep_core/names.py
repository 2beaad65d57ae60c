"""One naming rule for everything mlfep turns into a file or folder name: ligands, edges, runs.

A name is 1-64 characters: letters, digits and ``. _ - + ( )``, starting with a letter or digit. So no path
separators, no spaces, no leading dot: ``edges/<A>~<B>/``, picture files and run folders built from names always
stay inside their folder. :func:`inside` checks a path against its folder before anything is written there.

>>> check_name("lig_ejm_31")
'lig_ejm_31'
>>> name_problem("../../evil")
"'../../evil' is not a valid name: use 1-64 letters, digits, '.', '_', '-', '+', '(' or ')', starting with a letter or digit"
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mlfep_core.errors import InputError

__all__ = ["NAME_PATTERN", "NAME_RULE", "check_name", "inside", "name_problem"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+()\-]{0,63}")
NAME_RULE = "1-64 letters, digits, '.', '_', '-', '+', '(' or ')', starting with a letter or digit"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be used (None when it can)."""
    if NAME_PATTERN.fullmatch(name):
        return None
    return f"{name!r} is not a valid name: use {NAME_RULE}"


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it follows the rule, else an :class:`InputError` starting with ``what`` (e.g. the row)."""
    problem = name_problem(name)
    if problem is not None:
        raise InputError(f"{what}: {problem}")
    return name


def inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """``path`` if it lies inside ``folder`` (after resolving ``..`` and links), else an :class:`InputError`."""
    resolved, root = Path(path).resolve(), Path(folder).resolve()
    if resolved != root and root not in resolved.parents:
        raise InputError(f"{path}: would be written outside {folder}; refusing")
    return Path(path)
