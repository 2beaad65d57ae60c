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
    "run_controls",
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


def pick_run(
    runs: list[data.RunSummary],
    label: str = "Run",
    key: str = "run_picker",
    *,
    others: list[data.RunSummary] = (),  # type: ignore[assignment]
    missing: str = "",
) -> data.RunSummary | None:
    """A run selector that starts at ``?run=NAME`` and writes the choice back to the URL.

    When ``?run=`` names a run that is not among ``runs``, the page says so (``missing``: why such a run is not
    offered, for the runs in ``others``) and nothing is selected: another run is never shown in its place.
    """
    if not runs:
        st.info(
            f"No runs yet in {runs_root()}. Start one on the **New run** page or with `fep run -o {runs_root()}/NAME`."
            if not others
            else f"No run has results yet in {runs_root()}; follow the running ones on the **Progress** page."
        )
        return None
    names = [r.name for r in runs]
    wanted = st.query_params.get("run")
    index: int | None = names.index(wanted) if wanted in names else 0
    if wanted and wanted not in names:
        other = next((r for r in others if r.name == wanted), None)
        if other is not None:
            st.warning(f"Run **{wanted}** ({other.state}) {missing or 'is not offered here'}.")
            link("progress", f"Progress of {wanted}", wanted)
        else:
            st.error(f"There is no run called **{wanted}** in {runs_root()}. Choose one below.")
        index = None
    import zlib

    labels = "\n".join(_label(r) for r in runs)
    name = st.selectbox(
        label,
        names,
        index=index,
        # the browser keeps a selectbox's shown text while its key stays: a key that follows the labels makes a run
        # that has finished since read "done" (the choice itself lives in ?run=)
        key=f"{key}-{zlib.crc32(labels.encode()):08x}",
        format_func=lambda n: _label(runs[names.index(n)]),
        placeholder="choose a run",
    )
    if name is None:
        return None
    if st.query_params.get("run") != name:
        st.query_params["run"] = name
    return runs[names.index(name)]


def _label(run: data.RunSummary) -> str:
    return f"{run.name}  ({run.state}, {run.mode or '?'}, {run.protocol or '?'})"


def run_controls(run: data.RunSummary, run_dir: Path, key: str = "ctl") -> None:
    """Stop, Resume and Delete buttons for one run (Delete asks for confirmation).

    What the last action did stays on the page, for that run, until the next action: the page reruns itself while
    a run ends (the progress fragment, the picker), and a message shown only once would be wiped by that rerun.
    """
    from app import control
    from mlfep_core import MlfepError

    state = st.session_state
    process = control.run_process(run_dir)
    resumable = process is None and (run_dir / "run.json").is_file() and run.state not in ("done",)
    cols = st.columns([1, 1, 1, 4])
    try:
        if cols[0].button(
            "Stop", key=f"{key}_stop", disabled=process is None, help="End the run; legs keep their checkpoints."
        ):
            with st.spinner(f"stopping {run.name} (the legs write their checkpoints) ..."):
                state[f"{key}_message"] = (run.name, control.stop_run(run_dir))
            st.rerun()
        if cols[1].button(
            "Resume", key=f"{key}_resume", disabled=not resumable, help="Continue from the last checkpoints."
        ):
            record = control.resume_run(run_dir)
            state[f"{key}_message"] = (run.name, f"{run.name} resumed (process {record['pid']})")
            st.rerun()
        if cols[2].button("Delete", key=f"{key}_delete", disabled=process is not None, help="Remove the run folder."):
            state[f"{key}_confirm"] = run.name
        if state.get(f"{key}_confirm") == run.name:
            st.warning(f"Delete **{run.name}** and every file in `{run_dir}`? This cannot be undone.")
            yes, no = st.columns([1, 6])
            if yes.button(f"Yes, delete {run.name}", key=f"{key}_delete_yes", type="primary"):
                control.delete_run(runs_root(), run.name)
                state.pop(f"{key}_confirm", None)
                state[f"{key}_message"] = (run.name, f"{run.name} deleted")
                st.query_params.pop("run", None)
                st.rerun()
            if no.button("Cancel", key=f"{key}_delete_no"):
                state.pop(f"{key}_confirm", None)
                st.rerun()
    except MlfepError as err:
        st.error(str(err))
    message = state.get(f"{key}_message")
    if message and message[0] == run.name:
        st.success(message[1])


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
