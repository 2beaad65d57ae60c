"""Results page: ranked ligands (structures, ΔG ± σ, ML vs MM, experimental), ΔΔG per edge with verdicts,
predicted vs experimental, the network coloured by error, per-edge diagnostics and downloads."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import data, figures, ui
from mlfep_core import InputError, MlfepError

st.title("Results")
source = ui.source()
every_run = source.list_runs()
runs = [r for r in every_run if r.counts.get("done") or r.counts.get("failed")]
run = ui.pick_run(runs, "Run with results", others=every_run, missing="has no results yet: no edge has finished")
if run is None:
    st.stop()
run_dir = source.run_dir(run.name)
signature = data.run_signature(run_dir)
try:
    results = ui.cached_results(str(run_dir), signature)
except Exception as err:
    st.error(f"{run.name}: results cannot be read: {err}")
    st.stop()
quantity = "ΔG_bind" if results.mode == "binding" else "ΔG_hyd"
n_failed = sum(e.status != "done" for e in results.edges)
ligand_ff = "; ".join(sorted({e.ligand_ff for e in results.edges if e.ligand_ff})) or "not recorded"
st.caption(
    f"`{run_dir}` · {results.mode} · {len(results.edges)} edge(s), {n_failed} failed · ligand force field: "
    f"**{ligand_ff}** · state **{run.state}**"
    + (" (more results will appear as edges finish)" if run.state == "running" else "")
)
if results.net is not None:
    ref = results.net.reference
    st.write(
        f"Predicted {quantity} in kcal/mol relative to "
        + ("the mean of the experimental values" if ref == "experimental mean" else f"**{ref}**")
        + "; ML-corrected where available, else MM; ± one standard error of the network estimate."
    )

with st.expander("Experimental data" + ("" if results.experimental else " (none yet: add them here)")):
    st.caption(
        "A CSV with a `name` (or `ligand`) column and one of `dg_kcal_mol`, `ki_nm`, `kd_nm`, `ic50_nm`, `pic50` "
        "(optional error column, e.g. `dg_err_kcal_mol`). The values replace those the ligands came with."
    )
    exp_upload = st.file_uploader("Experimental values (CSV)", type=["csv"], key="exp_upload", max_upload_size=200)
    if exp_upload is not None and st.button("Use these values", key="exp_use"):
        try:
            found = data.save_experimental(run_dir, exp_upload.name, exp_upload.getvalue())
            st.session_state["exp_message"] = f"{len(found)} experimental value(s) from {exp_upload.name} are used."
            st.rerun()
        except MlfepError as err:
            st.error(str(err))
    if "exp_message" in st.session_state:
        st.success(st.session_state.pop("exp_message"))

has_ml = any(e.ddg_ml_kcal_mol is not None for e in results.edges)
choice = st.radio(
    "Predictions shown in the table and plots",
    ["best", "MM", "ML"] if has_ml else ["best", "MM"],
    key="estimate_choice",
    horizontal=True,
    format_func=lambda c: {"best": "best (ML where available, else MM)", "MM": "MM only", "ML": "ML only"}[c],
    help="MM: the force field alone. ML: with the machine-learning correction (where the run computed one).",
)
value_key, error_key = figures.ESTIMATES[choice]

# ------------------------------------------------------------------------------------- ranked table
st.header("Ranked ligands")
all_rows = ui.cached_ligand_table(str(run_dir), signature)
if choice == "best":
    rows = all_rows
else:  # ranked by the chosen estimate; ligands without it last
    rows = sorted(all_rows, key=lambda r: (r[value_key] is None, r[value_key] if r[value_key] is not None else 0.0))
    rows = [
        {
            **r,
            "rank": i + 1 if r[value_key] is not None else None,
            "dg_kcal_mol": r[value_key],
            "dg_err_kcal_mol": r[error_key],
            "estimate": choice if r[value_key] is not None else "",
            "abs_error_kcal_mol": None
            if r[value_key] is None or r["exp_dg_kcal_mol"] is None
            else round(abs(r[value_key] - r["exp_dg_kcal_mol"]), 2),
        }
        for i, r in enumerate(rows)
    ]
filters = st.columns([2, 2, 1])
with filters[0]:
    text = st.text_input("Filter by name", key="name_filter").strip().lower()
with filters[1]:
    values = [r["dg_kcal_mol"] for r in rows if r["dg_kcal_mol"] is not None]
    if len(values) >= 2 and min(values) < max(values):
        low, high = float(min(values)), float(max(values))
        window: tuple[float, float] | None = st.slider(
            f"{quantity} range (kcal/mol)", low, high, (low, high), key="dg_range"
        )
    else:
        window = None
with filters[2]:
    only_exp = st.checkbox("only with experiment", key="only_exp")
shown = [
    r
    for r in rows
    if (not text or text in r["ligand"].lower())
    and (window is None or (r["dg_kcal_mol"] is not None and window[0] - 1e-9 <= r["dg_kcal_mol"] <= window[1] + 1e-9))
    and (not only_exp or r["exp_dg_kcal_mol"] is not None)
]
number = st.column_config.NumberColumn
st.dataframe(
    data.blank_missing(shown),
    hide_index=True,
    placeholder="",  # missing values as empty cells, not "None"
    key="ligand_table",
    row_height=70,
    height=min(max(len(shown), 1), 10) * 70 + 40,
    column_order=[
        "rank",
        "structure",
        "ligand",
        "dg_kcal_mol",
        "dg_err_kcal_mol",
        "estimate",
        "dg_mm_kcal_mol",
        "dg_ml_kcal_mol",
        "exp_dg_kcal_mol",
        "abs_error_kcal_mol",
    ],
    column_config={
        "rank": number("rank", format="%d"),
        "structure": st.column_config.ImageColumn("structure", width="medium"),
        "dg_kcal_mol": number(f"{quantity}", format="%.2f"),
        "dg_err_kcal_mol": number("σ", format="%.2f"),
        "dg_mm_kcal_mol": number("MM", format="%.2f"),
        "dg_ml_kcal_mol": number("ML", format="%.2f"),
        "exp_dg_kcal_mol": number("experimental", format="%.2f"),
        "abs_error_kcal_mol": number("|error|", format="%.2f"),
    },
)
st.caption(f"{len(shown)} of {len(rows)} ligands shown; click a column header to sort.")

# --------------------------------------------------------------------------------------- downloads
downloads = st.columns(3)
with downloads[0]:
    st.download_button(
        "results CSV", data.results_csv(results), file_name=f"{run.name}_results.csv", mime="text/csv", key="dl_csv"
    )
with downloads[1]:
    if results.network is not None:
        st.download_button(
            "SDF with predictions",
            data.predictions_sdf(results),
            file_name=f"{run.name}_predictions.sdf",
            mime="chemical/x-mdl-sdfile",
            key="dl_sdf",
        )
with downloads[2]:
    report = run_dir / "report" / "report.html"
    fresh = report.is_file() and report.stat().st_mtime_ns >= max((m for _, m in signature), default=0)
    if fresh:
        st.download_button(
            "report.html", report.read_bytes(), file_name=f"{run.name}_report.html", mime="text/html", key="dl_html"
        )
    elif st.button("Build report.html", key="build_report"):
        with st.spinner("writing the report (plots for every leg) ..."):
            data.report_html(run_dir)
        st.rerun()

# ------------------------------------------------------------------------------------------- plots
tabs = st.tabs(["Predicted vs experimental", "Network", "Edges", "Edge diagnostics", "3D"])
with tabs[0]:
    if results.experimental:
        st.altair_chart(figures.correlation_chart(rows, quantity, choice), key="correlation_chart", width="content")
        st.caption(
            "Equal axes: the black line is predicted = experimental, the grey band ±1 kcal/mol. Bars: ± one "
            "standard error of the prediction (vertical) and the experimental uncertainty (horizontal)."
        )
        statistics = results.net.statistics if results.net is not None else ()
        stat_rows = figures.statistics_rows(statistics, choice)
        if stat_rows:
            st.subheader("Statistics vs experiment")
            st.dataframe(stat_rows, hide_index=True, placeholder="", key="stats_table")
            st.caption("Value [bootstrap 95 % confidence interval]; MUE and RMSE in kcal/mol.")
            few = sorted({r["n"] for r in stat_rows if r["n"] < figures.FEW_POINTS})
            if few:
                st.warning(
                    f"Only {', '.join(map(str, few))} data point(s): with fewer than {figures.FEW_POINTS} the "
                    "statistics say little (their confidence intervals are wide); do not rank methods by them."
                )
    else:
        st.info("No experimental values for this run yet: add them under **Experimental data** above.")
with tabs[1]:
    st.altair_chart(figures.error_network_chart(results), key="error_network")
    if results.net is not None:
        for verdict in results.net.verdicts:
            (st.warning if verdict.status != "pass" else st.write)(f"{verdict.name}: {verdict.message}")
with tabs[2]:
    edge_rows = data.edge_table(results)
    st.altair_chart(figures.ddg_chart(edge_rows, quantity, choice), key="ddg_chart")
    st.dataframe(
        data.blank_missing(edge_rows),
        hide_index=True,
        placeholder="",  # missing values as empty cells, not "None"
        key="edge_table",
        column_config={
            "ddg_mm_kcal_mol": number(f"Δ{quantity} MM", format="%.2f"),
            "ddg_mm_err_kcal_mol": number("σ MM", format="%.2f"),
            "ddg_ml_kcal_mol": number(f"Δ{quantity} ML", format="%.2f"),
            "ddg_ml_err_kcal_mol": number("σ ML", format="%.2f"),
            "exp_ddg_kcal_mol": number("experimental", format="%.2f"),
            "abs_error_kcal_mol": number("|error|", format="%.2f"),
        },
    )
with tabs[3]:
    keys = [e.key for e in results.edges]
    key = st.selectbox("Edge", keys, key="edge_pick")
    edge = next(e for e in results.edges if e.key == key)
    if edge.status != "done":
        st.error(f"{edge.key} failed: {edge.error}")
    else:
        best, best_err, which = edge.ddg_best
        st.write(f"Δ{quantity} = **{best:.2f} ± {best_err:.2f}** kcal/mol ({which.upper()})")
        if edge.ml_reason:
            st.caption(edge.ml_reason)
        for verdict in edge.verdicts:
            (st.error if verdict.status == "fail" else st.warning if verdict.status == "warn" else st.success)(
                f"{verdict.name}: {verdict.message}"
            )
        for name, leg in edge.legs.items():
            st.subheader(f"{name} leg: ΔG = {leg.dg_kcal_mol:.2f} ± {leg.dg_err_kcal_mol:.2f} kcal/mol")
            st.image(
                ui.cached_leg_png(str(run_dir), signature, edge.key, name),
                caption=f"{edge.key} {name}: overlap, convergence, mixing",
            )
with tabs[4]:
    from app import viewer3d

    view = st.radio(
        "View",
        ["ligand in the pocket", "edge overlay (mapped / unique atoms)", "last snapshot of a leg"],
        key="view3d",
        horizontal=True,
    )
    try:
        if results.network is None:
            raise InputError("this run has no network.json, so no poses to show")
        if view.startswith("ligand"):
            names = [lig.name for lig in results.network.ligands]
            chosen = st.selectbox("Ligand", names, key="view3d_ligand")
            protein_path = data.run_protein(run_dir, results.network)
            protein_text = Path(protein_path).read_text(errors="replace") if protein_path else None
            scene, files = viewer3d.pocket_scene(protein_text, results.network.ligand(chosen).molblock)
            st.caption(
                f"{chosen} in green"
                + (", in the pocket of the protein (cartoon), residues within 5 Å as sticks" if protein_text else "")
            )
        elif view.startswith("edge"):
            edge_key = st.selectbox("Edge", [e.key for e in results.network.edges], key="view3d_edge")
            mapping = next(e for e in results.network.edges if e.key == edge_key)
            scene, files = viewer3d.overlay_scene(
                mapping,
                results.network.ligand(mapping.ligand_a).molblock,
                results.network.ligand(mapping.ligand_b).molblock,
            )
            st.caption(
                f"{mapping.ligand_a} and {mapping.ligand_b} in their poses: mapped atoms grey, atoms only in "
                f"{mapping.ligand_a} orange, only in {mapping.ligand_b} purple ({len(mapping.mapping)} mapped)."
            )
        else:
            legs = data.leg_dirs(run_dir)
            if not legs:
                raise InputError("no leg has saved a configuration yet")
            leg_name = st.selectbox("Leg", list(legs), key="view3d_leg")
            end = st.radio("End state", ["first", "last"], key="view3d_end", horizontal=True,
                           format_func=lambda e: "A (λ = 0)" if e == "first" else "B (λ = 1)")  # fmt: skip
            pdb_text, step = viewer3d.last_snapshot_pdb(legs[leg_name], end)
            scene, files = viewer3d.snapshot_scene(pdb_text)
            st.caption(f"{leg_name}: the last saved configuration of end state {'A' if end == 'first' else 'B'}.")
        import streamlit.components.v1 as components

        components.html(viewer3d.viewer_html(scene, files, height=480), height=490)
    except MlfepError as err:
        st.info(str(err))
