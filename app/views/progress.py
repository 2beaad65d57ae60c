"""Progress page: per edge and leg, phase, iterations, ETA; failed edges with their message; the run's log."""

from __future__ import annotations

import time

import streamlit as st

from app import data, ui

st.title("Progress")
source = ui.source()
run = ui.pick_run(source.list_runs())
if run is None:
    st.stop()
run_dir = source.run_dir(run.name)
auto = st.toggle("Refresh every 5 s while the run is active", value=True, key="auto_refresh")


def _table(info: dict) -> list[dict]:
    rows = []
    for edge in info["edges"]:
        for leg in edge["legs"]:
            total = leg.get("total") or 0
            done = leg.get("done") or 0
            state = leg["state"]
            fraction = 1.0 if state == "done" else (done / total if total else 0.0)
            rows.append(
                {
                    "edge": edge["edge"],
                    "edge state": edge["state"],
                    "leg": leg["leg"] + (f" r{leg['repeat']}" if leg.get("repeat") else ""),
                    "leg state": state,
                    "phase": leg.get("phase", "done" if state == "done" else ""),
                    "iterations": f"{done}/{total}" if total else "",
                    "progress": round(fraction, 4),
                    "ETA": data.age_text(leg.get("eta_s")) if state == "running" else "",
                    "attempts": leg.get("attempts"),
                    "worker": leg.get("worker") or "",
                    "leg error": leg.get("error") or "",
                }
            )
    return rows


def show() -> None:
    info = data.run_status(run_dir)
    summary = data.summarize_run(run_dir)
    st.caption(
        f"`{run_dir}` · {info['mode'] or '?'} · protocol {info['protocol'] or '?'} · state **{summary.state}** · "
        f"read {time.strftime('%H:%M:%S')}"
    )
    st.progress(summary.progress, text=f"overall {summary.progress:.0%}")
    counts = {k: v for k, v in info["counts"].items() if v}
    if counts:
        st.write(" · ".join(f"{n} {s}" for s, n in counts.items()))
    if summary.state == "starting":
        st.info("The run process is preparing (reading ligands, charges) before the first leg starts.")
    if summary.state == "failed" and not info["edges"]:
        st.error(f"The run stopped before simulating: {summary.message}")
    rows = _table(info)
    if rows:
        st.dataframe(
            rows,
            hide_index=True,
            key="progress_table",
            column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
        )
    failed = [e for e in info["edges"] if e["state"] == "failed"]
    if failed:
        st.subheader("Failures")
        for edge in failed:
            st.error(f"**{edge['edge']}**: {edge['error']}")
            trace = run_dir / "edges" / edge["edge"] / "error.txt"
            if trace.is_file():
                with st.expander(f"traceback of {edge['edge']}"):
                    st.code(trace.read_text(errors="replace")[-6000:], language="text")
    if info["log_tail"]:
        with st.expander("run log (last lines)", expanded=summary.state in ("failed", "starting")):
            st.code(info["log_tail"], language="text")
    if summary.state in ("done", "partial"):
        ui.link("results", "Open the results", summary.name)


active = run.state in ("running", "starting", "pending")
if auto and active:
    st.fragment(run_every=5)(show)()
else:
    show()
