"""Runs page: every run under the runs folder with its state, creation time, protocol and progress."""

from __future__ import annotations

import time

import streamlit as st

from app import data, ui

st.title("Runs")
runs = ui.source().list_runs()
st.caption(f"Runs folder: `{ui.runs_root()}` · {len(runs)} run(s) · read {time.strftime('%H:%M:%S')}")
if st.button("Refresh", key="refresh_runs"):
    st.rerun()
done = st.session_state.get("runs_ctl_message")  # (run, what was done); a deleted run's is said here
if done and done[0] not in {r.name for r in runs}:
    st.success(done[1])
if not runs:
    st.info(f"No runs yet in {ui.runs_root()}. Start one on the **New run** page or with `fep run ... -o RUNS/NAME`.")
    st.stop()

rows = [
    {
        "run": r.name,
        "state": r.state,
        "created": data.created_text(r.created),
        "mode": r.mode,
        "protocol": r.protocol,
        "edges": r.n_edges,
        "done": r.counts.get("done", 0),
        "failed": r.counts.get("failed", 0),
        "progress": r.progress,
        "message": r.message,
    }
    for r in runs
]
st.dataframe(
    rows,
    hide_index=True,
    placeholder="",  # missing values as empty cells, not "None"
    key="runs_table",
    column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
    },
)
counts = {s: sum(r.state == s for r in runs) for s in ("running", "starting", "done", "partial", "failed")}
st.write(" · ".join(f"{n} {s}" for s, n in counts.items() if n) or "")

chosen = ui.pick_run(runs, "Open a run")
if chosen is not None:
    cols = st.columns(2)
    with cols[0]:
        ui.link("progress", f"Progress of {chosen.name}", chosen.name)
    with cols[1]:
        ui.link("results", f"Results of {chosen.name}", chosen.name)
    ui.run_controls(chosen, ui.source().run_dir(chosen.name), key="runs_ctl")
