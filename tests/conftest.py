"""Shared fixtures and the opt-in markers (slow, gpu, browser)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlfep_core.runtime import configure_process, filter_known_warnings

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLFEP_SHARED", REPO.parent / "shared"))
BENCH = SHARED / "benchmarks"

os.environ.setdefault("TORCHANI_DATA_DIR", str(SHARED / "models" / "torchani"))

configure_process()  # what the CLI and every worker do: logging, the known third-party warnings, AmberTools on PATH

_OPT_IN = {"slow": "MLFEP_RUN_SLOW", "gpu": "MLFEP_RUN_GPU", "browser": "MLFEP_RUN_BROWSER"}


def pytest_addoption(parser: pytest.Parser) -> None:
    for marker in _OPT_IN:
        parser.addoption(f"--run-{marker}", action="store_true", help=f"run tests marked {marker}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, env in _OPT_IN.items():
        if config.getoption(f"--run-{marker}") or os.environ.get(env) == "1":
            continue
        skip = pytest.mark.skip(reason=f"{marker} test: enable with --run-{marker} or {env}=1")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """pytest resets the warning filters around each test; put the targeted third-party filters back before its
    fixtures run (anything else, and every DeprecationWarning raised from mlfep's own modules, still shows or
    fails: see pyproject.toml)."""
    filter_known_warnings()


@pytest.fixture(scope="session")
def bench() -> Path:
    """The shared benchmark data folder (../shared/benchmarks)."""
    if not BENCH.is_dir():
        pytest.skip(f"shared benchmark data not found at {BENCH}")
    return BENCH


@pytest.fixture(scope="session")
def charge_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One AM1-BCC charge cache for the whole test session (charges are slow to compute)."""
    return tmp_path_factory.mktemp("charge-cache")
