"""Progress page: one overall bar and ETA that only move forward; per edge and leg, what it is doing; failed edges
with their message; Stop and Resume; the run's log."""

from __future__ import annotations

import time

import streamlit as st

from app import control, data, ui

st.title("Progress")
source = ui.source()
run = ui.pick_run(source.list_runs())
if run is None:
    st.stop()
    raise SystemExit  # pragma: no cover - st.stop() raises
RUN = run.name
run_dir = source.run_dir(RUN)
auto = st.toggle("Refresh every 5 s while the run is active", value=True, key="auto_refresh")
ACTIVE = ("running", "starting", "pending")


def _forward(key: tuple, value: float) -> float:
    """``value``, never below what this page already showed for ``key`` (a leg's or the run's progress)."""
    shown = st.session_state.setdefault("progress_shown", {})
    shown[key] = max(shown.get(key, 0.0), value)
    return shown[key]


def _step(leg: dict) -> str:
    phase = leg.get("phase") or ("done" if leg["state"] == "done" else leg["state"])
    words = data.PHASES.get(phase, phase)
    total, done = leg.get("total") or 0, leg.get("done") or 0
    if phase == "production" and total:
        return f"{words}: iteration {done} of {total}"
    if phase.startswith("equilibration") and total:
        return f"{words}: window {done} of {total}"
    return words


def _table(info: dict) -> list[dict]:
    rows = []
    for edge in info["edges"]:
        for leg in edge["legs"]:
            name = leg["leg"] + (f" (repeat {leg['repeat'] + 1})" if leg.get("repeat") else "")
            rows.append(
                {
                    "edge": edge["edge"],
                    "edge state": edge["state"],
                    "leg": name,
                    "leg state": leg["state"],
                    "step": _step(leg) if leg["state"] not in ("pending", "done") else "",
                    "progress": round(_forward((RUN, edge["edge"], name), leg.get("fraction", 0.0)), 4),
                    "attempts": leg.get("attempts"),
                    "worker": leg.get("worker") or "",
                    "leg error": leg.get("error") or "",
                }
            )
    return rows


def show() -> None:
    info = data.run_status(run_dir)
    summary = data.summarize_run(run_dir)
    overall = _forward((RUN, "overall"), info["progress"])
    # a finished run's process may still be writing its report: keep refreshing until it has ended too
    active = summary.state in ACTIVE or control.run_process(run_dir) is not None
    st.caption(
        f"`{run_dir}` · {info['mode'] or '?'} · protocol {info['protocol'] or '?'} · state **{summary.state}** · "
        f"read {time.strftime('%H:%M:%S')}"
    )
    if summary.state in ACTIVE:
        eta = info["eta_s"]
        left = f"about {data.age_text(eta)} left" if eta is not None else "estimating the time left ..."
    else:
        left = summary.state
    st.progress(overall, text=f"overall {overall:.0%} · {left}")
    counts = {k: v for k, v in info["counts"].items() if v}
    if counts:
        st.write(" · ".join(f"{n} edge(s) {s}" for s, n in counts.items()))
    if summary.state == "starting":
        st.info("The run process is preparing (reading ligands, charges) before the first leg starts.")
    if summary.state == "failed" and not info["edges"]:
        st.error(f"The run stopped before simulating: {summary.message}")
    if summary.state == "interrupted":
        st.warning("The run was stopped or interrupted; every leg keeps its last checkpoint. Resume continues it.")
    rows = _table(info)
    if rows:
        st.dataframe(
            rows,
            hide_index=True,
            placeholder="",  # missing values as empty cells, not "None"
            key="progress_table",
            column_config={
                "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent")
            },
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
        plain, technical = data.split_log(info["log_tail"])
        with st.expander("run log (last lines)", expanded=summary.state in ("failed", "starting")):
            st.code(plain or "(nothing yet)", language="text")
            if technical:
                st.caption("Warnings from the libraries the run uses (for the developers):")
                st.code(technical, language="text")
    if summary.state in ("done", "partial"):
        ui.link("results", "Open the results", summary.name)
    if st.session_state.get("progress_active") and not active:  # it just ended: the picker and buttons follow
        st.session_state["progress_active"] = False
        st.rerun(scope="app")
    st.session_state["progress_active"] = active


ui.run_controls(run, run_dir)
if auto and (run.state in ACTIVE or control.run_process(run_dir) is not None):
    st.session_state["progress_active"] = True
    st.fragment(run_every=5)(show)()
else:
    show()
