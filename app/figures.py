"""Interactive charts of the dashboard (Altair / Vega-Lite, shipped with Streamlit) and matplotlib figures from
:mod:`analysis.plots` rendered to PNG bytes.

- :func:`network_chart`: planned network, edges coloured by mapping score; clicking an edge selects it
  (selection parameter ``edge`` with field ``key``).
- :func:`error_network_chart`: finished network, edges and nodes coloured by |prediction − experiment|
  (by σ when there is no experimental data).
- :func:`correlation_chart`: predicted vs experimental ΔG with ±1 kcal/mol band and error bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ESTIMATES",
    "FEW_POINTS",
    "STATISTIC_NAMES",
    "correlation_chart",
    "ddg_chart",
    "error_network_chart",
    "layout",
    "leg_png",
    "network_chart",
    "statistics_rows",
]


def layout(names: Sequence[str], pairs: Sequence[tuple[str, str]], seed: int = 0) -> dict[str, tuple[float, float]]:
    """2D node positions (spring layout, reproducible) for ligands ``names`` joined by ``pairs``."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(names)
    graph.add_edges_from(pairs)
    if graph.number_of_nodes() == 0:
        return {}
    pos = nx.spring_layout(graph, seed=seed)
    return {str(n): (float(x), float(y)) for n, (x, y) in pos.items()}


def _graph_chart(
    nodes: list[dict[str, Any]], edges: list[dict[str, Any]], color_field: str, title: str, scale, legend_title: str
):
    import altair as alt
    import pandas as pd

    axis = alt.Axis(labels=False, ticks=False, grid=False, domain=False, title=None)
    edge_df = pd.DataFrame(edges)
    node_df = pd.DataFrame(nodes)
    select = alt.selection_point(name="edge", fields=["key"], on="click", toggle=False)
    base_edges = alt.Chart(edge_df).encode(
        x=alt.X("x:Q", axis=axis),
        y=alt.Y("y:Q", axis=axis),
        x2="x2:Q",
        y2="y2:Q",
        tooltip=[alt.Tooltip(c) for c in edge_df.columns if c not in ("x", "y", "x2", "y2", "mx", "my")],
    )
    rules = base_edges.mark_rule(strokeWidth=5).encode(
        color=alt.Color(
            f"{color_field}:Q",
            scale=scale,
            legend=alt.Legend(title=legend_title, orient="right", gradientLength=200),
        ),
        opacity=alt.condition(select, alt.value(1.0), alt.value(0.45)),
        strokeDash=alt.StrokeDash(
            "dashed:N", legend=None, scale=alt.Scale(domain=[False, True], range=[[1, 0], [6, 4]])
        ),
    )
    handles = (
        alt.Chart(edge_df)
        .mark_circle(size=220, opacity=0.01)
        .encode(x="mx:Q", y="my:Q", tooltip=[alt.Tooltip("key:N", title="edge")])
        .add_params(select)
    )
    tips = [alt.Tooltip(c) for c in node_df.columns if c not in ("x", "y")]
    node_points = (  # every node, grey: also those without a value (and a network of one edge)
        alt.Chart(node_df)
        .mark_circle(size=380, stroke="black", strokeWidth=0.8, color="#dddddd", opacity=1.0)
        .encode(x="x:Q", y="y:Q", tooltip=tips)
    )
    layers = [rules.add_params(select), handles, node_points]
    if "node_value" in node_df and node_df["node_value"].notna().any():
        valued = node_df[node_df["node_value"].notna()]
        layers.append(
            alt.Chart(valued)
            .mark_circle(size=380, stroke="black", strokeWidth=0.8, opacity=1.0)
            .encode(x="x:Q", y="y:Q", color=alt.Color("node_value:Q", scale=scale, legend=None), tooltip=tips)
        )
    layers.append(alt.Chart(node_df).mark_text(dy=-18, fontSize=11).encode(x="x:Q", y="y:Q", text="name:N"))
    if "edge_label" in edge_df:
        layers.append(
            alt.Chart(edge_df)
            .mark_text(fontSize=12, dy=-10, color="#222222", fontWeight="bold")
            .encode(x="mx:Q", y="my:Q", text="edge_label:N")
        )
    return alt.layer(*layers).properties(title=title, height=420)


def network_chart(network) -> Any:
    """The planned network as an Altair chart: edges coloured by mapping score (red 0 → green 1), dashed when
    charge-changing; click an edge (or its midpoint) to select it (selection ``edge``, field ``key``)."""
    import altair as alt

    names = [lig.name for lig in network.ligands]
    pos = layout(names, [(e.ligand_a, e.ligand_b) for e in network.edges])
    edges = []
    for e in network.edges:
        (xa, ya), (xb, yb) = pos[e.ligand_a], pos[e.ligand_b]
        edges.append(
            {
                "key": e.key,
                "x": xa,
                "y": ya,
                "x2": xb,
                "y2": yb,
                "mx": (xa + xb) / 2,
                "my": (ya + yb) / 2,
                "score": round(e.score, 3),
                "mapped_atoms": len(e.mapping),
                "dashed": e.charge_change != 0,
                "warnings": "; ".join(e.warnings),
            }
        )
    nodes = [{"name": n, "x": pos[n][0], "y": pos[n][1]} for n in names]
    scale = alt.Scale(domain=[0.0, 1.0], scheme="redyellowgreen")
    title = "planned network (click an edge to see its mapping)"
    return _graph_chart(nodes, edges, "score", title, scale, "mapping score")


def error_network_chart(results) -> Any:
    """The finished network: edges and nodes coloured by |predicted − experimental| in kcal/mol (0 green →
    2 red), or by σ without experimental data; failed edges dashed."""
    import altair as alt

    exp = results.experimental
    names = [lig.name for lig in results.network.ligands] if results.network is not None else []
    for e in results.edges:
        names.extend(n for n in (e.ligand_a, e.ligand_b) if n not in names)
    pos = layout(names, [(e.ligand_a, e.ligand_b) for e in results.edges])
    have_exp = bool(exp)
    field = "abs_error_kcal_mol" if have_exp else "sigma_kcal_mol"
    edges = []
    for e in results.edges:
        (xa, ya), (xb, yb) = pos[e.ligand_a], pos[e.ligand_b]
        row: dict[str, Any] = {"key": e.key, "x": xa, "y": ya, "x2": xb, "y2": yb, "mx": (xa + xb) / 2}
        row["my"] = (ya + yb) / 2
        row["dashed"] = e.status != "done"
        row["status"] = e.status
        row["edge_label"] = "failed"
        value = None
        if e.status == "done":
            ddg, sigma, which = e.ddg_best
            row["ddg_kcal_mol"] = round(ddg, 2)
            row["estimate"] = which.upper()
            row["edge_label"] = f"{ddg:+.1f}"
            if have_exp and e.ligand_a in exp and e.ligand_b in exp:
                value = abs(ddg - (exp[e.ligand_b] - exp[e.ligand_a]))
            elif not have_exp:
                value = sigma
        row[field] = None if value is None else round(value, 2)
        edges.append(row)
    net = results.net
    node_dg = (net.dg_ml_kcal_mol or net.dg_mm_kcal_mol) if net is not None else {}
    nodes = []
    for n in names:
        node: dict[str, Any] = {"name": n, "x": pos[n][0], "y": pos[n][1]}
        node["dg_kcal_mol"] = round(node_dg[n], 2) if n in node_dg else None
        node["node_value"] = round(abs(node_dg[n] - exp[n]), 2) if n in node_dg and n in exp else None
        nodes.append(node)
    scale = alt.Scale(domain=[0.0, 2.0 if have_exp else 1.0], scheme="redyellowgreen", reverse=True)
    title = "network coloured by |predicted − experimental| (kcal/mol)" if have_exp else "network coloured by edge σ"
    legend = "|error| (kcal/mol)" if have_exp else "σ (kcal/mol)"
    return _graph_chart(nodes, edges, field, title + "; edge labels: predicted ΔΔG", scale, legend)


#: Which prediction a table or plot shows: the best (ML where available, else MM), MM only, or ML only.
ESTIMATES = {"best": ("dg_kcal_mol", "dg_err_kcal_mol"), "MM": ("dg_mm_kcal_mol", "dg_mm_err_kcal_mol"),
             "ML": ("dg_ml_kcal_mol", "dg_ml_err_kcal_mol")}  # fmt: skip
#: Human names of the statistics of :mod:`analysis.stats`, in the order they are shown.
STATISTIC_NAMES = {"mue": "MUE", "rmse": "RMSE", "pearson_r": "Pearson r", "kendall_tau": "Kendall τ", "r2": "R²"}
#: Below this many points the statistics are too uncertain to rank methods (the page says so).
FEW_POINTS = 5


def correlation_chart(rows: Sequence[dict[str, Any]], quantity: str = "ΔG", estimate: str = "best") -> Any:
    """Predicted vs experimental scatter (rows of :func:`app.data.ligand_table` with both values): square, equal
    axes with the 1:1 line at 45° and a ±1 kcal/mol band, error bars on both values, each point labelled."""
    import altair as alt
    import pandas as pd

    value, error = ESTIMATES[estimate]
    data = [r for r in rows if r.get(value) is not None and r.get("exp_dg_kcal_mol") is not None]
    df = pd.DataFrame(
        [
            {
                "ligand": r["ligand"],
                "experimental": r["exp_dg_kcal_mol"],
                "exp_low": r["exp_dg_kcal_mol"] - (r.get("exp_dg_err_kcal_mol") or 0.0),
                "exp_high": r["exp_dg_kcal_mol"] + (r.get("exp_dg_err_kcal_mol") or 0.0),
                "predicted": r[value],
                "low": r[value] - (r.get(error) or 0.0),
                "high": r[value] + (r.get(error) or 0.0),
                "estimate": r.get("estimate", "") if estimate == "best" else estimate,
            }
            for r in data
        ]
    )
    if df.empty:
        lo, hi = -1.0, 1.0
    else:
        lo = float(min(df["exp_low"].min(), df["low"].min())) - 0.5
        hi = float(max(df["exp_high"].max(), df["high"].max())) + 0.5
    band = pd.DataFrame({"x": [lo, hi], "lo1": [lo - 1, hi - 1], "hi1": [lo + 1, hi + 1]})
    scale = alt.Scale(domain=[lo, hi], nice=False)
    x_title, y_title = f"experimental {quantity} (kcal/mol)", f"predicted {quantity} (kcal/mol)"
    area = (
        alt.Chart(band)
        .mark_area(opacity=0.2, color="#999999", clip=True)
        .encode(x=alt.X("x:Q", scale=scale, title=x_title), y=alt.Y("lo1:Q", scale=scale, title=y_title), y2="hi1:Q")
    )
    identity = alt.Chart(band).mark_line(color="black", strokeWidth=1, clip=True).encode(x="x:Q", y="x:Q")
    layers = [area, identity]
    if not df.empty:
        color = "#4c72b0"
        y_bars = alt.Chart(df).mark_rule(color=color).encode(x="experimental:Q", y="low:Q", y2="high:Q")
        x_bars = alt.Chart(df).mark_rule(color=color).encode(y="predicted:Q", x="exp_low:Q", x2="exp_high:Q")
        points = (
            alt.Chart(df)
            .mark_circle(size=70, color=color, opacity=1.0)
            .encode(
                x="experimental:Q",
                y="predicted:Q",
                tooltip=["ligand", "predicted", "low", "high", "experimental", "estimate"],
            )
        )
        labels = (
            alt.Chart(df)
            .mark_text(align="left", dx=7, dy=-7, fontSize=10, color="#333333")
            .encode(x="experimental:Q", y="predicted:Q", text="ligand:N")
        )
        layers += [y_bars, x_bars, points, labels]
    side = 460  # equal width and height with equal domains: the 1:1 line is at 45°
    title = (
        f"predicted ({estimate}) vs experimental {quantity}"
        if estimate != "best"
        else f"predicted vs experimental {quantity}"
    )
    return alt.layer(*layers).properties(title=title, width=side, height=side)


def ddg_chart(edge_rows: Sequence[dict[str, Any]], quantity: str = "ΔG", estimate: str = "best") -> Any:
    """ΔΔG per edge (rows of :func:`app.data.edge_table`): the prediction ± σ and the experimental ΔΔG, one line
    per finished edge."""
    import altair as alt
    import pandas as pd

    records = []
    for r in edge_rows:
        if r["status"] != "done":
            continue
        mm, ml = (r["ddg_mm_kcal_mol"], r["ddg_mm_err_kcal_mol"]), (r["ddg_ml_kcal_mol"], r["ddg_ml_err_kcal_mol"])
        value, sigma = {"MM": mm, "ML": ml}.get(estimate, ml if ml[0] is not None else mm)
        if value is None:
            continue
        sigma = sigma or 0.0
        records.append(
            {"edge": r["edge"], "kind": "predicted", "ddg": value, "low": value - sigma, "high": value + sigma}
        )
        if r.get("exp_ddg_kcal_mol") is not None:
            e = r["exp_ddg_kcal_mol"]
            records.append({"edge": r["edge"], "kind": "experimental", "ddg": e, "low": e, "high": e})
    df = pd.DataFrame(records, columns=["edge", "kind", "ddg", "low", "high"])
    x = alt.X("ddg:Q", title=f"Δ{quantity} (kcal/mol)")
    y = alt.Y("edge:N", sort=None, title=None)
    color = alt.Color(
        "kind:N",
        scale=alt.Scale(domain=["predicted", "experimental"], range=["#4c72b0", "#dd8452"]),
        legend=alt.Legend(title=None, orient="top"),
    )
    bars = alt.Chart(df).mark_rule(strokeWidth=2).encode(x="low:Q", x2="high:Q", y=y, color=color)
    points = (
        alt.Chart(df)
        .mark_point(filled=True, size=70)
        .encode(
            x=x,
            y=y,
            color=color,
            shape=alt.Shape("kind:N", legend=None),
            tooltip=["edge", "kind", "ddg", "low", "high"],
        )
    )
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#999999").encode(x="x:Q")
    n_edges = max(df["edge"].nunique(), 1)
    return alt.layer(zero, bars, points).properties(
        title=f"Δ{quantity} per edge ({estimate}, ± σ)", height=max(160, 26 * n_edges), width=520
    )


def statistics_rows(statistics, estimate: str = "best") -> list[dict[str, Any]]:
    """The statistics vs experiment as table rows with human names and 95 % confidence intervals."""
    wanted = {"MM": {"mm"}, "ML": {"ml"}}.get(estimate, {"mm", "ml"})
    rows = []
    for stat in statistics:
        if stat.estimate not in wanted:
            continue
        row: dict[str, Any] = {
            "data": "ΔΔG (edges)" if stat.kind == "edges" else "ΔG (ligands, centred)",
            "estimate": stat.estimate.upper(),
            "n": stat.n,
        }
        for key, name in STATISTIC_NAMES.items():
            m = stat.metrics.get(key)
            row[name] = "" if m is None else f"{m.value:.2f} [{m.ci_low:.2f}, {m.ci_high:.2f}]"
        rows.append(row)
    return rows


def leg_png(leg, title: str = "") -> bytes:
    """Overlap matrix, forward/reverse convergence and replica mixing of one leg (PNG bytes)."""
    from analysis import plots

    fig = plots.leg_diagnostics_figure(leg, title)
    try:
        return plots.figure_bytes(fig, "png")
    finally:
        plots.close(fig)
