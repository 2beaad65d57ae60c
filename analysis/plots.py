"""Figures of the analysis stage (matplotlib, Agg canvas, no pyplot global state): overlap heat map,
forward/reverse convergence, replica mixing matrix, predicted vs experimental with 1 and 2 kcal/mol bands,
and the perturbation network coloured by |error|.

Every ``*_figure`` function returns a :class:`matplotlib.figure.Figure`; :func:`save_figure` writes it as PNG
and SVG atomically and :func:`figure_bytes` renders it in memory (for inlining in the HTML report).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.results import EdgeResult, LegResult, NetworkResult
from mlfep_core import atomic_write_bytes

__all__ = [
    "convergence_axes",
    "correlation_figure",
    "figure_bytes",
    "leg_diagnostics_figure",
    "mixing_axes",
    "network_figure",
    "overlap_axes",
    "save_figure",
    "save_rendered",
]


def _figure(width: float, height: float, **adjust: float):
    """A figure with fixed margins (constrained layout costs more than the drawing itself)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(**{"left": 0.12, "right": 0.95, "bottom": 0.12, "top": 0.9, **adjust})
    FigureCanvasAgg(fig)
    return fig


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """Render ``fig`` to PNG or SVG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110 if fmt == "png" else None)
    return buf.getvalue()


def save_figure(fig, stem: str | Path, formats: Sequence[str] = ("png", "svg")) -> dict[str, Path]:
    """Write ``fig`` as ``stem.png`` and ``stem.svg`` (atomically); returns format → path."""
    return save_rendered({fmt: figure_bytes(fig, fmt) for fmt in formats}, stem)


def save_rendered(rendered: Mapping[str, bytes], stem: str | Path) -> dict[str, Path]:
    """Write already rendered figures (format → bytes) as ``stem.<format>``; returns format → path."""
    stem = Path(stem)
    return {fmt: atomic_write_bytes(stem.with_suffix(f".{fmt}"), data) for fmt, data in rendered.items()}


# ------------------------------------------------------------------------------------------ leg plots
def _integer_ticks(ax, k: int) -> None:
    step = max(1, math.ceil(k / 12))
    ax.set_xticks(range(0, k, step))
    ax.set_yticks(range(0, k, step))


def overlap_axes(ax, overlap: Sequence[Sequence[float]], title: str = "MBAR overlap") -> None:
    """Heat map of the overlap matrix, shape (K, K), with values printed in each cell (K ≤ 16)."""
    from matplotlib.colors import LinearSegmentedColormap

    matrix = np.asarray(overlap, dtype=float)
    k = matrix.shape[0]
    cmap = LinearSegmentedColormap.from_list("overlap", ["#ffffff", "#4c72b0"])
    ax.imshow(matrix, cmap=cmap, vmin=0.0, vmax=1.0)
    if k <= 16:
        for i in range(k):
            for j in range(k):
                if matrix[i, j] >= 0.005:
                    low = abs(i - j) == 1 and matrix[i, j] < 0.03
                    ax.text(
                        j,
                        i,
                        f"{matrix[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="#c0392b" if low else "black",
                    )
    _integer_ticks(ax, k)
    ax.set_xlabel("state l")
    ax.set_ylabel("state k")
    ax.set_title(title, fontsize=9)


def mixing_axes(ax, mixing: Sequence[Sequence[float]] | None, round_trips: int | None = None) -> None:
    """Heat map of the replica state-transition matrix, shape (K, K)."""
    if mixing is None:
        ax.text(0.5, 0.5, "no replica mixing data", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    matrix = np.asarray(mixing, dtype=float)
    ax.imshow(matrix, cmap="Greens", vmin=0.0, vmax=max(0.1, float(matrix.max())))
    _integer_ticks(ax, matrix.shape[0])
    ax.set_xlabel("to state")
    ax.set_ylabel("from state")
    title = "replica mixing"
    if round_trips is not None:
        title += f" ({round_trips} round trips)"
    ax.set_title(title, fontsize=9)


def convergence_axes(ax, convergence: Mapping[str, Sequence[float]], dg: float | None = None) -> None:
    """ΔG (kcal/mol) vs fraction of the data, forward and reverse, with ±σ bands."""
    fractions = np.asarray(convergence.get("fraction", []), dtype=float)
    if fractions.size == 0:
        ax.text(0.5, 0.5, "no convergence data", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    for key, color, label in (("forward", "#4c72b0", "forward"), ("reverse", "#dd8452", "reverse")):
        values = np.asarray(convergence[f"{key}_dg"], dtype=float)
        errs = np.asarray(convergence[f"{key}_err"], dtype=float)
        ax.plot(fractions, values, "o-", color=color, label=label, markersize=3)
        ax.fill_between(fractions, values - errs, values + errs, color=color, alpha=0.2)
    if dg is not None:
        ax.axhline(dg, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("fraction of production data")
    ax.set_ylabel("ΔG (kcal/mol)")
    ax.set_title("forward / reverse convergence", fontsize=9)
    ax.legend(fontsize=7)


def leg_diagnostics_figure(leg: LegResult, title: str = ""):
    """One row of three panels for a leg: overlap, convergence, mixing."""
    fig = _figure(11.0, 3.4, left=0.06, right=0.98, bottom=0.15, top=0.83, wspace=0.3)
    axes = fig.subplots(1, 3)
    overlap_axes(axes[0], leg.overlap_matrix)
    convergence_axes(axes[1], leg.convergence, leg.dg_kcal_mol)
    mixing_axes(axes[2], leg.mixing_matrix, leg.round_trips)
    fig.suptitle(title or f"{leg.leg}: ΔG = {leg.dg_kcal_mol:.2f} ± {leg.dg_err_kcal_mol:.2f} kcal/mol", fontsize=10)
    return fig


# --------------------------------------------------------------------------------------- correlation
def correlation_figure(
    predicted: Sequence[float],
    experimental: Sequence[float],
    *,
    predicted_err: Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
    quantity: str = "ΔG",
    title: str = "",
):
    """Predicted vs experimental (kcal/mol) with the identity line and 1 and 2 kcal/mol bands."""
    fig = _figure(4.8, 4.6, left=0.15, bottom=0.11, top=0.93)
    ax = fig.add_subplot(1, 1, 1)
    x = np.asarray(experimental, dtype=float)
    y = np.asarray(predicted, dtype=float)
    if x.size:
        low = math.floor(min(x.min(), y.min()) - 1.0)
        high = math.ceil(max(x.max(), y.max()) + 1.0)
    else:
        low, high = -1.0, 1.0
    grid = np.array([low, high])
    ax.fill_between(grid, grid - 2, grid + 2, color="#dddddd", alpha=0.6, lw=0, label="±2 kcal/mol")
    ax.fill_between(grid, grid - 1, grid + 1, color="#bbbbbb", alpha=0.6, lw=0, label="±1 kcal/mol")
    ax.plot(grid, grid, color="black", lw=0.8)
    err = None if predicted_err is None else np.asarray(predicted_err, dtype=float)
    if x.size:
        ax.errorbar(x, y, yerr=err, fmt="o", color="#4c72b0", ecolor="#4c72b0", markersize=4, capsize=2, lw=0.8)
        if labels is not None and len(labels) <= 40:
            for xi, yi, text in zip(x, y, labels, strict=True):
                ax.annotate(text, (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel(f"experimental {quantity} (kcal/mol)")
    ax.set_ylabel(f"predicted {quantity} (kcal/mol)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return fig


# ------------------------------------------------------------------------------------------- network
def network_figure(
    edges: Sequence[EdgeResult],
    network: NetworkResult | None = None,
    experimental: Mapping[str, float] | None = None,
    *,
    seed: int = 0,
):
    """The perturbation network; nodes and edges coloured by |prediction − experiment| (kcal/mol).

    Without experimental data edges are coloured by their σ. Failed edges are drawn dashed red.
    """
    import networkx as nx
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    experimental = dict(experimental or {})
    graph = nx.Graph()
    for edge in edges:
        graph.add_edge(edge.ligand_a, edge.ligand_b)
    if network is not None:
        graph.add_nodes_from(network.ligands)
    fig = _figure(7.0, 6.0, left=0.02, right=0.98, bottom=0.02, top=0.94)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    if graph.number_of_nodes() == 0:
        return fig
    pos = nx.spring_layout(graph, seed=seed)
    cmap = colormaps["RdYlGn_r"]
    have_exp = bool(experimental)
    norm = Normalize(vmin=0.0, vmax=2.0 if have_exp else 1.0)

    node_dg = {}
    if network is not None:
        node_dg = network.dg_ml_kcal_mol or network.dg_mm_kcal_mol
    for edge in edges:
        (xa, ya), (xb, yb) = pos[edge.ligand_a], pos[edge.ligand_b]
        if edge.status != "done":
            ax.plot([xa, xb], [ya, yb], ls="--", color="#c0392b", lw=1.2, zorder=1)
            continue
        ddg, sigma, _ = edge.ddg_best
        if have_exp and edge.ligand_a in experimental and edge.ligand_b in experimental:
            value = abs(ddg - (experimental[edge.ligand_b] - experimental[edge.ligand_a]))
        elif have_exp:
            value = None
        else:
            value = sigma
        color = "#999999" if value is None else cmap(norm(value))
        ax.plot([xa, xb], [ya, yb], color=color, lw=2.5, zorder=1)
        ax.text(
            (xa + xb) / 2,
            (ya + yb) / 2,
            f"{ddg:+.1f}",
            fontsize=6,
            ha="center",
            va="center",
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
            zorder=2,
        )
    for name, (x, y) in pos.items():
        if have_exp and name in experimental and name in node_dg:
            color = cmap(norm(abs(node_dg[name] - experimental[name])))
        else:
            color = "#dddddd"
        ax.scatter([x], [y], s=260, color=color, edgecolors="black", linewidths=0.6, zorder=3)
        ax.text(x, y - 0.09, name, fontsize=7, ha="center", va="top", zorder=4)
    from matplotlib.cm import ScalarMappable

    mappable = ScalarMappable(norm=norm, cmap=cmap)
    label = "|predicted − experimental| (kcal/mol)" if have_exp else "edge σ (kcal/mol)"
    fig.colorbar(mappable, ax=ax, shrink=0.6, label=label)
    ax.set_title("perturbation network" + (" (dashed: failed edge)" if any(e.status != "done" for e in edges) else ""))
    return fig


def close(fig: Any) -> None:
    """Release a figure's memory (figures made here are not tracked by pyplot; this clears them)."""
    fig.clear()
