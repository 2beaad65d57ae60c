"""The report of a run: results.csv (ranked ligands), edges.csv, results.json (everything, schema-versioned),
plots (PNG + SVG) and one self-contained report.html (images inlined, no external assets) to email.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from analysis.network import analyse_network, experimental_dg
from analysis.results import EdgeResult, NetworkResult, worst_status
from mlfep_core import InputError, atomic_write_text

__all__ = ["REPORT_SCHEMA_VERSION", "experimental_from_network", "load_run_dir", "write_report"]

logger = logging.getLogger(__name__)

#: Version of the results.json layout.
REPORT_SCHEMA_VERSION = 1

_STATUS_COLOUR = {"pass": "#2e7d32", "warn": "#e69500", "fail": "#c0392b", "done": "#2e7d32", "failed": "#c0392b"}


def experimental_from_network(network: Any) -> dict[str, Any]:
    """name → ExperimentalValue for the network's ligands that carry one."""
    if network is None:
        return {}
    return {lig.name: lig.experimental for lig in network.ligands if getattr(lig, "experimental", None) is not None}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _exp_err(values: Mapping[str, Any], name: str) -> float | None:
    return getattr(values.get(name), "dg_err_kcal_mol", None)


# ------------------------------------------------------------------------------------------- tables
def _ligand_rows(net: NetworkResult | None, exp_values: Mapping[str, Any], all_ligands: Sequence[str]) -> list[list]:
    exp = experimental_dg(exp_values)
    rows: list[list] = []
    if net is not None:
        for rank, name in enumerate(net.ranking, start=1):
            mm, mm_err = net.dg_mm_kcal_mol[name], net.dg_mm_err_kcal_mol[name]
            ml = None if net.dg_ml_kcal_mol is None else net.dg_ml_kcal_mol.get(name)
            ml_err = None if net.dg_ml_err_kcal_mol is None else net.dg_ml_err_kcal_mol.get(name)
            best, best_err, which = (ml, ml_err, "ml") if ml is not None else (mm, mm_err, "mm")
            rows.append(
                [
                    rank,
                    name,
                    _fmt(best),
                    _fmt(best_err),
                    which,
                    _fmt(mm),
                    _fmt(mm_err),
                    _fmt(ml),
                    _fmt(ml_err),
                    _fmt(exp.get(name)),
                    _fmt(_exp_err(exp_values, name)),
                ]
            )
    listed = {row[1] for row in rows}
    for name in all_ligands:
        if name not in listed:
            rows.append(["", name, "", "", "", "", "", "", "", _fmt(exp.get(name)), _fmt(_exp_err(exp_values, name))])
    return rows


LIGAND_HEADER = [
    "rank",
    "ligand",
    "dg_kcal_mol",
    "dg_err_kcal_mol",
    "estimate",
    "dg_mm_kcal_mol",
    "dg_mm_err_kcal_mol",
    "dg_ml_kcal_mol",
    "dg_ml_err_kcal_mol",
    "exp_dg_kcal_mol",
    "exp_dg_err_kcal_mol",
]
EDGE_HEADER = [
    "ligand_a",
    "ligand_b",
    "mode",
    "status",
    "ddg_mm_kcal_mol",
    "ddg_mm_err_kcal_mol",
    "ddg_ml_kcal_mol",
    "ddg_ml_err_kcal_mol",
    "exp_ddg_kcal_mol",
    "repeats",
    "charge_change",
    "verdict",
    "verdicts",
    "ml_reason",
    "error",
]


#: Column titles of the HTML tables (the CSV files keep the machine names above).
LIGAND_LABELS = ["rank", "ligand", "ΔG", "σ", "from", "ΔG MM", "σ MM", "ΔG ML", "σ ML", "ΔG exp", "σ exp"]
EDGE_LABELS = [
    "A",
    "B",
    "mode",
    "status",
    "ΔΔG MM",
    "σ MM",
    "ΔΔG ML",
    "σ ML",
    "ΔΔG exp",
    "repeats",
    "Δq (co-ion)",
    "verdict",
    "checks",
    "why no ML",
    "error",
]


def _sampling_rows(edges: Sequence[EdgeResult]) -> list[list]:
    """Per finished edge: states × iterations of each leg and its share of all production (replica-iterations)."""
    work = {e.key: sum(leg.n_states * leg.n_iterations for leg in e.legs.values()) for e in edges if e.legs}
    total = sum(work.values())
    if not total:
        return []
    rows = []
    for e in edges:
        if e.key in work:
            legs = ", ".join(f"{name} {leg.n_states} × {leg.n_iterations}" for name, leg in e.legs.items())
            rows.append([e.key, legs, f"{100.0 * work[e.key] / total:.0f} %"])
    return rows


def _edge_rows(edges: Sequence[EdgeResult], exp: Mapping[str, float]) -> list[list]:
    rows = []
    for e in edges:
        done = e.status == "done"
        exp_ddg = exp[e.ligand_b] - exp[e.ligand_a] if e.ligand_a in exp and e.ligand_b in exp else None
        verdicts = "; ".join(f"{v.name}={v.status}" for v in e.verdicts)
        rows.append(
            [
                e.ligand_a,
                e.ligand_b,
                e.mode,
                e.status,
                _fmt(e.ddg_mm_kcal_mol) if done else "",
                _fmt(e.ddg_mm_err_kcal_mol) if done else "",
                _fmt(e.ddg_ml_kcal_mol),
                _fmt(e.ddg_ml_err_kcal_mol),
                _fmt(exp_ddg),
                e.repeats,
                f"{e.charge_change:+d}" if e.charge_change else "",
                worst_status(e.verdicts),
                verdicts,
                e.ml_reason,
                e.error or "",
            ]
        )
    return rows


# ------------------------------------------------------------------------------------------------ html
def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            text = html.escape(str(cell))
            colour = _STATUS_COLOUR.get(str(cell))
            cells.append(f'<td style="color:{colour};font-weight:bold">{text}</td>' if colour else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
td:nth-child(-n+2){text-align:left}img{max-width:100%;height:auto}
.note{color:#555;font-size:.9em}.scroll{overflow-x:auto;max-width:100%}
.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.figs img{max-width:560px}details{margin:.4em 0}summary{cursor:pointer;font-weight:bold}
"""


def _ligand_ff(edges: Sequence[EdgeResult]) -> str:
    """The ligand force field(s) the edges were run with ('not recorded' for older results)."""
    labels = sorted({e.ligand_ff for e in edges if e.ligand_ff})
    return "; ".join(labels) if labels else "not recorded"


def _html(
    edges: Sequence[EdgeResult],
    net: NetworkResult | None,
    ligand_rows: list[list],
    edge_rows: list[list],
    images: Mapping[str, bytes],
    leg_images: Mapping[str, bytes],
    title: str,
) -> str:
    mode = edges[0].mode if edges else "binding"
    quantity = "ΔG_bind" if mode == "binding" else "ΔG_hyd"
    n_failed = sum(e.status != "done" for e in edges)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">mode: {mode} · {len(edges)} edge(s), {n_failed} failed · '
        f"ligand force field: {html.escape(_ligand_ff(edges))} · generated "
        f"{_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} by mlfep</p>",
    ]
    if net is not None:
        ref = "the mean of the experimental values" if net.reference == "experimental mean" else net.reference
        parts.append(
            f"<h2>Ranked ligands</h2><p class='note'>Predicted {quantity} in kcal/mol, relative to {html.escape(ref)} "
            "(ML-corrected where available, else MM), ± one standard error from the network estimate.</p>"
        )
    else:
        parts.append("<h2>Ranked ligands</h2><p class='note'>No network estimate: no edge finished.</p>")
    parts.append(_table(LIGAND_LABELS, ligand_rows, "ligands"))
    figures = [
        _img(images[key], caption)
        for key, caption in (("nodes", "Predicted vs experimental ΔG"), ("network", "Network"))
        if key in images
    ]
    if figures:
        parts.append(f'<div class="figs">{"".join(figures)}</div>')
    if net is not None and net.statistics:
        metrics = (
            ("rmse", "RMSE"),
            ("mue", "MUE"),
            ("r2", "R²"),
            ("pearson_r", "Pearson r"),
            ("kendall_tau", "Kendall τ"),
        )
        stat_rows = []
        for s in net.statistics:
            cells = []
            for key, _ in metrics:
                m = s.metrics.get(key)
                cells.append("" if m is None else f"{_fmt(m.value)} [{_fmt(m.ci_low)}, {_fmt(m.ci_high)}]")
            label = "ΔΔG (edges)" if s.kind == "edges" else "ΔG (ligands, centred)"
            stat_rows.append([label, s.estimate.upper(), s.n, *cells])
        parts.append("<h2>Statistics vs experiment</h2>")
        parts.append("<p class='note'>Value [bootstrap 95 % confidence interval]; errors in kcal/mol.</p>")
        parts.append(_table(["data", "estimate", "n", *(label for _, label in metrics)], stat_rows, "stats"))
    parts.append("<h2>Edges</h2>")
    parts.append(_table(EDGE_LABELS, edge_rows, "edges"))
    if "edges" in images:
        parts.append(f"<h3>Predicted vs experimental ΔΔG</h3>{_img(images['edges'], 'edges')}")
    sampling = _sampling_rows(edges)
    if sampling:
        parts.append("<h2>Sampling per edge</h2>")
        parts.append(
            "<p class='note'>Production per edge: states × iterations of each leg (first repeat), and the edge's "
            "share of the run's production; with <code>fep run --target-sigma</code> the edges that carried the "
            "ligands' uncertainty got more.</p>"
        )
        parts.append(_table(["edge", "legs (states × iterations)", "share of production"], sampling, "sampling"))
    if net is not None and net.cycle_closures:
        rows = [
            [" → ".join(c.cycle), c.estimate, _fmt(c.closure_kcal_mol), _fmt(c.closure_err_kcal_mol)]
            for c in net.cycle_closures
        ]
        parts.append("<h2>Cycle closures</h2>")
        parts.append(_table(["cycle", "estimate", "closure (kcal/mol)", "σ"], rows, "cycles"))
    if net is not None and net.verdicts:
        parts.append("<h2>Network checks</h2>")
        parts.append(_table(["check", "status", "message"], [[v.name, v.status, v.message] for v in net.verdicts]))
    parts.append("<h2>Edge details</h2>")
    for e in edges:
        summary = f"{e.key} — {e.status}" + (
            f" (charge change {e.charge_change:+d}, co-ion)" if e.charge_change else ""
        )
        if e.status == "done":
            best, err, which = e.ddg_best
            summary += f", ΔΔG = {best:.2f} ± {err:.2f} kcal/mol ({which.upper()})"
        body = []
        if e.error:
            body.append(f"<p><b>error:</b> {html.escape(e.error)}</p>")
        if e.ml_reason:
            body.append(f"<p class='note'>{html.escape(e.ml_reason)}</p>")
        if e.verdicts:
            body.append(_table(["check", "status", "message"], [[v.name, v.status, v.message] for v in e.verdicts]))
        for name, leg in e.legs.items():
            body.append(f"<h4>{html.escape(name)} leg</h4>")
            body.append(
                _table(
                    ["ΔG MBAR", "σ", "ΔG BAR", "states", "iterations", "equilibration", "g", "N_eff", "round trips"],
                    [
                        [
                            _fmt(leg.dg_kcal_mol),
                            _fmt(leg.dg_err_kcal_mol),
                            _fmt(leg.dg_bar_kcal_mol),
                            leg.n_states,
                            leg.n_iterations,
                            leg.n_equilibration,
                            _fmt(leg.statistical_inefficiency, 1),
                            _fmt(leg.n_effective, 0),
                            "" if leg.round_trips is None else leg.round_trips,
                        ]
                    ],
                )
            )
            body.append(_table(["check", "status", "message"], [[v.name, v.status, v.message] for v in leg.verdicts]))
            png = leg_images.get(f"{e.key}/{name}")
            if png is not None:
                body.append(_img(png, f"{e.key} {name} diagnostics"))
        parts.append(f"<details><summary>{html.escape(summary)}</summary>{''.join(body)}</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- write
def write_report(
    edges: Sequence[EdgeResult],
    network: Any | None,
    out_dir: str | Path,
    experimental: Mapping[str, Any] | None = None,
    *,
    title: str = "mlfep free energy report",
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, Path]:
    """Write results.csv, edges.csv, results.json, plots/ and a self-contained report.html.

    Parameters
    ----------
    edges : sequence of EdgeResult
        Every edge of the run, failed ones included (they are listed with their error).
    network : ligand_prep.models.Network or None
        The planned network (all ligands, experimental values); None for a single-edge run.
    out_dir : path
        Output folder (created).
    experimental : mapping of str to ExperimentalValue or float, optional
        Experimental ΔG per ligand; default: the ligands' ``experimental`` fields in ``network``.
    title : str
        Heading of the HTML report.
    n_bootstrap, seed : int
        Bootstrap of the statistics' confidence intervals.
    progress : callable(stage: str, fraction: float), optional

    Returns
    -------
    dict of str to Path
        'results_csv', 'edges_csv', 'results_json', 'report_html' and one entry per plot file
        ('plot_network_png', ...).

    Raises
    ------
    InputError
        No edges given.
    """
    from analysis import plots

    if not edges:
        raise InputError("report: no edge results to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exp_values: dict[str, Any] = dict(experimental) if experimental is not None else experimental_from_network(network)
    exp = experimental_dg(exp_values)
    all_ligands: list[str] = [lig.name for lig in network.ligands] if network is not None else []
    for e in edges:
        for name in (e.ligand_a, e.ligand_b):
            if name not in all_ligands:
                all_ligands.append(name)

    net: NetworkResult | None = None
    if any(e.status == "done" for e in edges):
        net = analyse_network(edges, ligands=all_ligands, experimental=exp, n_bootstrap=n_bootstrap, seed=seed)
    if progress is not None:
        progress("network", 1.0)

    paths: dict[str, Path] = {}
    ligand_rows = _ligand_rows(net, exp_values, all_ligands)
    edge_rows = _edge_rows(edges, exp)
    paths["results_csv"] = atomic_write_text(out / "results.csv", _csv_text(LIGAND_HEADER, ligand_rows))
    paths["edges_csv"] = atomic_write_text(out / "edges.csv", _csv_text(EDGE_HEADER, edge_rows))

    payload = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "mlfep_version": _version(),
        "mode": edges[0].mode,
        "experimental": {
            name: (v.model_dump(mode="json") if hasattr(v, "model_dump") else {"dg_kcal_mol": float(v)})
            for name, v in exp_values.items()
        },
        "network": None if net is None else net.model_dump(mode="json"),
        "edges": [e.model_dump(mode="json") for e in edges],
    }
    paths["results_json"] = atomic_write_text(out / "results.json", json.dumps(payload, indent=2) + "\n")

    # plots
    images: dict[str, bytes] = {}
    plot_dir = out / "plots"

    def render(fig, key: str, stem: Path) -> bytes:
        rendered = {"png": plots.figure_bytes(fig, "png"), "svg": plots.figure_bytes(fig, "svg")}
        paths.update({f"plot_{key}_{k}": v for k, v in plots.save_rendered(rendered, stem).items()})
        plots.close(fig)
        return rendered["png"]

    images["network"] = render(plots.network_figure(edges, net, exp), "network", plot_dir / "network")
    quantity = "ΔG_bind" if edges[0].mode == "binding" else "ΔG_hyd"
    if net is not None and exp:
        best = net.dg_ml_kcal_mol or net.dg_mm_kcal_mol
        best_err = net.dg_ml_err_kcal_mol or net.dg_mm_err_kcal_mol
        names = [n for n in net.ligands if n in exp]
        if names:
            fig = plots.correlation_figure(
                [best[n] for n in names],
                [exp[n] for n in names],
                predicted_err=[best_err[n] for n in names],
                labels=names,
                quantity=quantity,
                title="ligands (MLE)",
            )
            images["nodes"] = render(fig, "nodes", plot_dir / "correlation_nodes")
        done = [e for e in edges if e.status == "done" and e.ligand_a in exp and e.ligand_b in exp]
        if done:
            fig = plots.correlation_figure(
                [e.ddg_best[0] for e in done],
                [exp[e.ligand_b] - exp[e.ligand_a] for e in done],
                predicted_err=[e.ddg_best[1] for e in done],
                labels=[e.key for e in done],
                quantity="Δ" + quantity,
                title="edges",
            )
            images["edges"] = render(fig, "edges", plot_dir / "correlation_edges")
    leg_images: dict[str, bytes] = {}
    n_legs = max(1, sum(len(e.legs) for e in edges))
    done_legs = 0
    for e in edges:
        for name, leg in e.legs.items():
            fig = plots.leg_diagnostics_figure(
                leg, f"{e.key} {name}: ΔG = {leg.dg_kcal_mol:.2f} ± {leg.dg_err_kcal_mol:.2f}"
            )
            leg_images[f"{e.key}/{name}"] = render(fig, f"{e.key}_{name}", plot_dir / _safe(e.key) / name)
            done_legs += 1
            if progress is not None:
                progress("plots", done_legs / n_legs)

    text = _html(edges, net, ligand_rows, edge_rows, images, leg_images, title)
    paths["report_html"] = atomic_write_text(out / "report.html", text)
    return paths


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.~" else "_" for ch in name)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("mlfep")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


def load_run_dir(run_dir: str | Path) -> tuple[list[EdgeResult], Any | None]:
    """Edge results and the network of a run directory.

    Layout (contract with the runner): ``RUN_DIR/network.json`` (ligand_prep.models.Network, optional) and
    ``RUN_DIR/edges/<A>~<B>/edge_result.json`` (EdgeResult) per finished or failed edge.

    Raises
    ------
    InputError
        RUN_DIR does not exist or holds no edge_result.json, or a file is unreadable.
    """
    from ligand_prep.models import Network

    root = Path(run_dir)
    if not root.is_dir():
        raise InputError(f"{root}: run directory not found")
    files = sorted((root / "edges").glob("*/edge_result.json"))
    if not files:
        raise InputError(
            f"{root}: no edges/<A>~<B>/edge_result.json found; is this the -o folder of `fep run`, and has an edge finished?"
        )
    edges = [EdgeResult.from_json_file(path) for path in files]
    network = Network.from_json_file(root / "network.json") if (root / "network.json").is_file() else None
    if network is not None:  # follow the planned edge order
        order = {edge.key: i for i, edge in enumerate(network.edges)}
        edges.sort(key=lambda e: (order.get(e.key, len(order)), e.key))
    return edges, network
