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

__all__ = ["correlation_chart", "error_network_chart", "layout", "leg_png", "network_chart"]


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


def _graph_chart(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], color_field: str, title: str, scale):
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
        color=alt.Color(f"{color_field}:Q", scale=scale, title=color_field.replace("_", " ")),
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
    node_points = (
        alt.Chart(node_df)
        .mark_circle(size=380, stroke="black", strokeWidth=0.8)
        .encode(
            x="x:Q",
            y="y:Q",
            color=alt.value("#dddddd")
            if "node_value" not in node_df
            else alt.Color("node_value:Q", scale=scale, legend=None),
            tooltip=[alt.Tooltip(c) for c in node_df.columns if c not in ("x", "y")],
        )
    )
    labels = alt.Chart(node_df).mark_text(dy=-16, fontSize=11).encode(x="x:Q", y="y:Q", text="name:N")
    return (rules.add_params(select) + handles + node_points + labels).properties(title=title, height=420)


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
    return _graph_chart(nodes, edges, "score", "planned network (click an edge to see its mapping)", scale)


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
        value = None
        if e.status == "done":
            ddg, sigma, which = e.ddg_best
            row["ddg_kcal_mol"] = round(ddg, 2)
            row["estimate"] = which.upper()
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
    return _graph_chart(nodes, edges, field, title, scale)


def correlation_chart(rows: Sequence[dict[str, Any]], quantity: str = "ΔG") -> Any:
    """Predicted vs experimental scatter (rows of :func:`app.data.ligand_table` with both values)."""
    import altair as alt
    import pandas as pd

    data = [r for r in rows if r.get("dg_kcal_mol") is not None and r.get("exp_dg_kcal_mol") is not None]
    df = pd.DataFrame(
        [
            {
                "ligand": r["ligand"],
                "experimental": r["exp_dg_kcal_mol"],
                "predicted": r["dg_kcal_mol"],
                "low": r["dg_kcal_mol"] - (r.get("dg_err_kcal_mol") or 0.0),
                "high": r["dg_kcal_mol"] + (r.get("dg_err_kcal_mol") or 0.0),
                "estimate": r.get("estimate", ""),
            }
            for r in data
        ]
    )
    if df.empty:
        lo, hi = -1.0, 1.0
    else:
        lo = float(min(df["experimental"].min(), df["low"].min())) - 0.5
        hi = float(max(df["experimental"].max(), df["high"].max())) + 0.5
    band = pd.DataFrame({"x": [lo, hi], "lo1": [lo - 1, hi - 1], "hi1": [lo + 1, hi + 1]})
    scale = alt.Scale(domain=[lo, hi], nice=False)
    x_title, y_title = f"experimental {quantity} (kcal/mol)", f"predicted {quantity} (kcal/mol)"
    area = (
        alt.Chart(band)
        .mark_area(opacity=0.25, color="#999999", clip=True)
        .encode(x=alt.X("x:Q", scale=scale, title=x_title), y=alt.Y("lo1:Q", scale=scale, title=y_title), y2="hi1:Q")
    )
    identity = alt.Chart(band).mark_line(color="black", strokeWidth=1, clip=True).encode(x="x:Q", y="x:Q")
    layers = [area, identity]
    if not df.empty:
        bars = alt.Chart(df).mark_rule(color="#4c72b0").encode(x="experimental:Q", y="low:Q", y2="high:Q")
        points = (
            alt.Chart(df)
            .mark_circle(size=70, color="#4c72b0")
            .encode(x="experimental:Q", y="predicted:Q", tooltip=["ligand", "predicted", "experimental", "estimate"])
        )
        layers += [bars, points]
    return alt.layer(*layers).properties(title=f"predicted vs experimental {quantity}", height=380)


def leg_png(leg, title: str = "") -> bytes:
    """Overlap matrix, forward/reverse convergence and replica mixing of one leg (PNG bytes)."""
    from analysis import plots

    fig = plots.leg_diagnostics_figure(leg, title)
    try:
        return plots.figure_bytes(fig, "png")
    finally:
        plots.close(fig)
