"""app.figures: the charts' geometry and content (Vega-Lite specs), on the synthetic tyk2 run."""

from __future__ import annotations

import pytest

from app import data, figures


@pytest.fixture(scope="module")
def results(runs_root):
    return data.load_results(runs_root / "tyk2-done", n_bootstrap=20)


def _layers(chart) -> list[dict]:
    return chart.to_dict()["layer"]


def test_correlation_chart_is_square_with_equal_axes_labels_and_both_error_bars(results):
    rows = data.ligand_table(results, images=False)
    spec = figures.correlation_chart(rows, "ΔG_bind").to_dict()
    assert spec["width"] == spec["height"]
    layers = spec["layer"]
    scales = [enc["scale"]["domain"] for layer in layers for enc in layer.get("encoding", {}).values()
              if isinstance(enc, dict) and "scale" in enc]  # fmt: skip
    assert len(scales) == 2 and scales[0] == scales[1]  # x and y share one domain: the 1:1 line is at 45°
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers]
    assert marks.count("rule") == 2 and "text" in marks  # vertical and horizontal error bars, point labels
    text = next(
        layer for layer in layers if (layer["mark"].get("type") if isinstance(layer["mark"], dict) else "") == "text"
    )
    assert text["encoding"]["text"]["field"] == "ligand"


def test_statistics_rows_have_human_names_and_the_estimate_filter(results):
    rows = figures.statistics_rows(results.net.statistics)
    assert rows and {"MUE", "RMSE", "Pearson r", "Kendall τ", "R²"} <= set(rows[0])
    assert {r["estimate"] for r in figures.statistics_rows(results.net.statistics, "MM")} == {"MM"}
    assert figures.statistics_rows(results.net.statistics, "ML") == []  # no ML correction in this run


def test_ddg_chart_has_a_row_per_finished_edge_with_experiment(results):
    rows = data.edge_table(results)
    chart = figures.ddg_chart(rows, "ΔG_bind")
    spec = chart.to_dict()
    values = next(d for d in spec["datasets"].values() if d and "kind" in d[0])
    done = [r for r in rows if r["status"] == "done"]
    assert {v["edge"] for v in values} == {r["edge"] for r in done}
    assert sum(v["kind"] == "experimental" for v in values) == sum(r["exp_ddg_kcal_mol"] is not None for r in done)


def test_error_network_draws_every_node_labels_edges_and_has_a_legend(results):
    from dataclasses import replace

    one = replace(results, edges=results.edges[:1], network=results.network.model_copy(
        update={"edges": results.network.edges[:1], "ligands": results.network.ligands[:2]}))  # fmt: skip
    one = replace(one, network=one.network.model_copy(update={"ligands": tuple(
        lig for lig in results.network.ligands if lig.name in (one.edges[0].ligand_a, one.edges[0].ligand_b))}))  # fmt: skip
    spec = figures.error_network_chart(one).to_dict()
    datasets = list(spec["datasets"].values())
    nodes = next(d for d in datasets if d and "name" in d[0])
    assert {n["name"] for n in nodes} == {one.edges[0].ligand_a, one.edges[0].ligand_b}
    edges = next(d for d in datasets if d and "edge_label" in d[0])
    assert edges[0]["edge_label"].startswith(("+", "-"))
    legends = [layer["encoding"]["color"].get("legend") for layer in spec["layer"]
               if "color" in layer.get("encoding", {}) and "field" in layer["encoding"]["color"]]  # fmt: skip
    assert any(legend and legend.get("title") for legend in legends)
