"""docs/results.md is exactly what benchmarks/results_page.py makes of the committed benchmark outputs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _module():
    if str(REPO / "benchmarks") not in sys.path:  # as when the script runs: its folder first (benchmarks/tables.py)
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("results_page", REPO / "benchmarks" / "results_page.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_page_is_up_to_date():
    assert _module().main(["--check"]) == 0, "run: python benchmarks/results_page.py"


def test_every_rhfe_statistic_on_the_page_comes_from_the_json(bench):
    data = json.loads((REPO / "benchmarks" / "results" / "rhfe_benzenes_sage.json").read_text())
    text = (REPO / "docs" / "results.md").read_text()
    with open(bench / "freesolv" / "rhfe_benzenes_edges.csv") as handle:
        n_series_edges = sum(1 for _ in handle) - 1
    # the committed result covers every edge of the series, and the table lists each one once
    assert data["edges_done"] == data["edges_total"] == n_series_edges == len({e["edge"] for e in data["edges"]})
    for key in ("edges_mm", "edges_ml", "edges_gaff", "nodes_mm", "nodes_ml"):
        if key not in data["statistics"]:  # the ML rows exist only for a run with the endpoint correction
            continue
        rmse = data["statistics"][key]["metrics"]["rmse"]
        assert f"{rmse['value']:.2f} [{rmse['ci_low']:.2f}, {rmse['ci_high']:.2f}]" in text


def test_missing_outputs_say_how_to_make_them(tmp_path):
    text = _module().page(tmp_path)
    assert "Not run yet" in text and "benchmarks/rhfe.py" in text and "Not measured yet" in text
