"""Small Streamlit helpers shared by the pages: the run source, the run picker (kept in the URL as ``?run=``),
links between pages and cached readers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from app import data

__all__ = [
    "PAGES",
    "cached_leg_png",
    "cached_ligand_table",
    "cached_results",
    "link",
    "pick_run",
    "runs_root",
    "source",
]

#: Page scripts (relative to app/main.py) and their URL paths.
PAGES = {
    "runs": "views/runs.py",
    "new": "views/new_run.py",
    "progress": "views/progress.py",
    "results": "views/results.py",
}


def source() -> data.RunSource:
    """The run source configured by ``fep app`` (environment), shown as an error on the page if unusable."""
    try:
        return data.open_source()
    except Exception as err:
        st.error(str(err))
        st.stop()
        raise  # pragma: no cover - st.stop() raises


def runs_root() -> Path:
    """The folder that holds the runs (``fep app --runs DIR``; default ./runs)."""
    return Path(os.environ.get(data.RUNS_ENV) or "runs").expanduser().resolve()


def pick_run(runs: list[data.RunSummary], label: str = "Run", key: str = "run_picker") -> data.RunSummary | None:
    """A run selector that starts at ``?run=NAME`` and writes the choice back to the URL."""
    if not runs:
        st.info(
            f"No runs yet in {runs_root()}. Start one on the **New run** page or with `fep run -o {runs_root()}/NAME`."
        )
        return None
    names = [r.name for r in runs]
    wanted = st.query_params.get("run")
    index = names.index(wanted) if wanted in names else 0
    name = st.selectbox(label, names, index=index, key=key, format_func=lambda n: _label(runs[names.index(n)]))
    if st.query_params.get("run") != name:
        st.query_params["run"] = name
    return runs[names.index(name)]


def _label(run: data.RunSummary) -> str:
    return f"{run.name}  ({run.state}, {run.mode or '?'}, {run.protocol or '?'})"


def link(page: str, label: str, run: str | None = None) -> None:
    """A link to another page (with ``?run=``); skipped when the page runs outside the navigation (tests)."""
    try:
        st.page_link(PAGES[page], label=label, query_params={"run": run} if run else None)
    except Exception:  # the page was opened alone (AppTest of one page): no navigation to link into
        pass


@st.cache_data(show_spinner="reading results ...", max_entries=16)
def cached_results(run_dir: str, signature: tuple) -> Any:
    """:func:`app.data.load_results`, recomputed only when a result file changes (``signature``)."""
    del signature  # part of the cache key only
    return data.load_results(run_dir)


@st.cache_data(max_entries=64)
def cached_ligand_table(run_dir: str, signature: tuple) -> list[dict[str, Any]]:
    """:func:`app.data.ligand_table` with structure images, cached like :func:`cached_results`."""
    return data.ligand_table(cached_results(run_dir, signature))


@st.cache_data(max_entries=64)
def cached_leg_png(run_dir: str, signature: tuple, edge: str, leg: str) -> bytes:
    """The diagnostics figure (overlap, convergence, mixing) of one leg as PNG, cached like the results."""
    from app.figures import leg_png

    result = next(e for e in cached_results(run_dir, signature).edges if e.key == edge)
    return leg_png(result.legs[leg], f"{edge} {leg}")
