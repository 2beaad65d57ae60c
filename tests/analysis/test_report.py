"""write_report: files, ranking, a self-contained HTML that parses, failed edges listed."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from analysis.mbar import analyse_leg
from analysis.report import load_run_dir, write_report
from analysis.results import EdgeResult, EndpointCorrection, combine_edge
from ligand_prep.models import ExperimentalValue
from mlfep_core import InputError

TRUE = {"lig1": -9.0, "lig2": -10.0, "lig3": -8.5, "lig4": -11.0}


def oscillator_leg(name: str, dg_kt: float, seed: int):
    """A real LegResult: 3 harmonic states whose ΔG(0 → 2) is dg_kt (in kT)."""
    rng = np.random.default_rng(seed)
    springs = np.array([1.0, np.exp(dg_kt), np.exp(2 * dg_kt)])  # ΔG = 0.5 ln(k2/k0) = dg_kt
    n = 150
    states = np.array([rng.permutation(3) for _ in range(n)])
    x = rng.normal(0.0, 1.0 / np.sqrt(springs[states]))
    energies = 0.5 * springs[None, None, :] * x[:, :, None] ** 2
    return analyse_leg(energies, states, 298.15, leg=name, n_fractions=4)


def make_edges() -> list[EdgeResult]:
    edges = []
    kt = 1.98720426e-3 * 298.15
    for i, (a, b) in enumerate([("lig1", "lig2"), ("lig2", "lig3"), ("lig1", "lig3")]):
        ddg = TRUE[b] - TRUE[a]
        complex_leg = oscillator_leg("complex", ddg / kt, seed=i)
        solvent_leg = oscillator_leg("solvent", 0.0, seed=10 + i)
        corrections = [
            EndpointCorrection(
                leg=leg,
                state=state,
                ligand=a if state == "A" else b,
                dg_kcal_mol=0.1,
                dg_err_kcal_mol=0.02,
                status="pass",
            )
            for leg in ("complex", "solvent")
            for state in ("A", "B")
        ]
        edge = combine_edge(a, b, "binding", {"complex": complex_leg, "solvent": solvent_leg}, corrections)
        # only the first edge keeps its legs: leg figures are the slow part of a report
        edges.append(edge if i == 0 else edge.model_copy(update={"legs": {}}))
    edges.append(EdgeResult.failed("lig3", "lig4", "binding", "sampler: NaN energies in complex leg"))
    return edges


@pytest.fixture(scope="module")
def edges() -> list[EdgeResult]:
    return make_edges()


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith("data:") and not value.startswith("#"):
                self.external.append(value)

    def handle_data(self, data):
        self.text.append(data)


def test_write_report_files_and_ranking(edges, tmp_path):
    exp = {name: ExperimentalValue(dg_kcal_mol=value, dg_err_kcal_mol=0.2) for name, value in TRUE.items()}
    paths = write_report(edges, None, tmp_path / "out", experimental=exp, n_bootstrap=100)
    for key in (
        "results_csv",
        "edges_csv",
        "results_json",
        "report_html",
        "plot_network_png",
        "plot_network_svg",
        "plot_nodes_png",
        "plot_edges_svg",
        "plot_lig1~lig2_complex_png",
    ):
        assert paths[key].is_file() and paths[key].stat().st_size > 0, key

    rows = list(csv.DictReader(paths["results_csv"].open()))
    ranked = [r["ligand"] for r in rows if r["rank"]]
    assert ranked == ["lig2", "lig1", "lig3"]  # lig4 only in a failed edge: listed without a prediction
    assert rows[-1]["ligand"] == "lig4" and rows[-1]["dg_kcal_mol"] == "" and rows[-1]["exp_dg_kcal_mol"] == "-11.00"
    assert all(r["estimate"] == "ml" for r in rows[:3])
    dg = {r["ligand"]: float(r["dg_kcal_mol"]) for r in rows[:3]}
    assert dg["lig2"] - dg["lig1"] == pytest.approx(-1.0, abs=0.2)

    edge_rows = list(csv.DictReader(paths["edges_csv"].open()))
    assert [r["status"] for r in edge_rows] == ["done", "done", "done", "failed"]
    assert "NaN energies" in edge_rows[-1]["error"]
    assert edge_rows[0]["exp_ddg_kcal_mol"] == "-1.00"

    data = json.loads(paths["results_json"].read_text())
    assert data["schema_version"] == 1
    assert len(data["edges"]) == 4 and data["network"]["reference"] == "experimental mean"
    assert EdgeResult.model_validate(data["edges"][0]) == edges[0]

    parser = _Collector()
    text = paths["report_html"].read_text()
    parser.feed(text)
    assert "table" in parser.tags
    assert len(parser.images) == 3 + 2  # network, nodes, edges + one per leg of the first edge
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert parser.external == []  # self-contained
    body = " ".join(parser.text)
    assert "lig2" in body and "sampler: NaN energies in complex leg" in body and "Cycle closures" in body


def test_write_report_without_experiment_and_all_failed(tmp_path):
    only_failed = [EdgeResult.failed("a", "b", "hydration", "boom")]
    paths = write_report(only_failed, None, tmp_path / "failed")
    rows = list(csv.DictReader(paths["results_csv"].open()))
    assert [r["ligand"] for r in rows] == ["a", "b"] and rows[0]["rank"] == ""
    assert "boom" in paths["report_html"].read_text()
    with pytest.raises(InputError):
        write_report([], None, tmp_path / "none")


def test_load_run_dir(edges, tmp_path):
    with pytest.raises(InputError, match=r"edge_result\.json"):
        load_run_dir(tmp_path)
    for edge in edges:
        edge.to_json_file(tmp_path / "edges" / edge.key / "edge_result.json")
    loaded, network = load_run_dir(tmp_path)
    assert network is None
    assert sorted(e.key for e in loaded) == sorted(e.key for e in edges)


@pytest.mark.browser
def test_report_renders_in_a_browser_with_every_edge_and_picture(edges, tmp_path):
    """The report opened by Chromium (through Playwright, as the dashboard tests): every edge is a row of the
    edge table and every picture decodes (the images are embedded: nothing is fetched)."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium (make browser-deps)")
    from playwright.sync_api import sync_playwright

    paths = write_report(edges, None, tmp_path / "out", n_bootstrap=10)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(paths["report_html"].as_uri())
            text = page.inner_text("body")
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        finally:
            browser.close()
    assert all(edge.key in text for edge in edges)
    assert sizes and all(complete and width > 0 for complete, width in sizes)
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
