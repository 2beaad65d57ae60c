"""Doctests of the packages (``--doctest-modules``): modules that must not be imported by collection are left out."""

collect_ignore = ["fep/__main__.py", "app", "benchmarks", "examples", "build", ".venv"]
