"""Pictures of atom mappings and perturbation networks (PNG or SVG, chosen by the file suffix).

- :func:`depict_mapping`: A and B side by side in 2D, the mapped core laid out identically in both, the atoms
  unique to A and to B highlighted.
- :func:`depict_network`: ligands as nodes, edges labelled and coloured by score, charge-changing edges dashed.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from ligand_prep.models import AtomMapping, Ligand, Network
from mlfep_core import InputError, atomic_write_bytes, atomic_write_text

__all__ = ["depict_mapping", "depict_network"]

_UNIQUE_A = (0.98, 0.55, 0.55)
_UNIQUE_B = (0.45, 0.65, 0.98)
_ELEMENT_CHANGE = (0.98, 0.80, 0.25)  # mapped atoms whose element changes, in both panels


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise InputError(f"{path}: picture must end in .png or .svg")
    return suffix


def _heavy_copy(ligand: Ligand):
    """The ligand without hydrogens, plus a map from mol-block index to the index in that copy."""
    from rdkit import Chem

    mol = ligand.to_rdkit()
    for atom in mol.GetAtoms():
        atom.SetIntProp("orig", atom.GetIdx())
    heavy = Chem.RemoveAllHs(mol, sanitize=False)
    try:
        Chem.SanitizeMol(heavy)
    except Exception:
        heavy.UpdatePropertyCache(strict=False)
    index = {a.GetIntProp("orig"): a.GetIdx() for a in heavy.GetAtoms()}
    return heavy, index


def depict_mapping(
    mapping: AtomMapping, a: Ligand, b: Ligand, path: str | os.PathLike[str], *, size: tuple[int, int] = (400, 320)
) -> Path:
    """Draw ligands ``a`` and ``b`` side by side with the atoms unique to each highlighted (A red, B blue) and
    the mapped atoms whose element changes in amber in both panels.

    Parameters
    ----------
    mapping : AtomMapping
        The mapping from ``a`` to ``b`` (mol-block indices).
    a, b : Ligand
        The two ligands, in the mapping's direction.
    path : path-like
        ``.png`` or ``.svg``; written atomically.
    size : (int, int)
        Width and height of one panel in pixels.

    Returns
    -------
    Path
        The file written.
    """
    from rdkit.Chem import rdDepictor
    from rdkit.Chem.Draw import rdMolDraw2D
    from rdkit.Geometry import Point2D

    path = Path(path)
    suffix = _suffix(path)
    if (mapping.ligand_a, mapping.ligand_b) != (a.name, b.name):
        raise InputError(f"mapping {mapping.key} does not belong to ligands {a.name} and {b.name}")
    heavy_a, index_a = _heavy_copy(a)
    heavy_b, index_b = _heavy_copy(b)
    core = {index_a[i]: index_b[j] for i, j in mapping.mapping.items() if i in index_a and j in index_b}
    prefer_coordgen = rdDepictor.GetPreferCoordGen()  # a process-wide RDKit switch: restore it afterwards
    rdDepictor.SetPreferCoordGen(True)
    try:
        rdDepictor.Compute2DCoords(heavy_a)
        conf_a = heavy_a.GetConformer()
        coord_map = {j: Point2D(conf_a.GetAtomPosition(i).x, conf_a.GetAtomPosition(i).y) for i, j in core.items()}
        if coord_map:
            rdDepictor.Compute2DCoords(heavy_b, coordMap=coord_map)
        else:
            rdDepictor.Compute2DCoords(heavy_b)
    finally:
        rdDepictor.SetPreferCoordGen(prefer_coordgen)
    unique_a = [i for i in range(heavy_a.GetNumAtoms()) if i not in core]
    mapped_b = set(core.values())
    unique_b = [j for j in range(heavy_b.GetNumAtoms()) if j not in mapped_b]
    changed = {
        i: j
        for i, j in core.items()
        if heavy_a.GetAtomWithIdx(i).GetAtomicNum() != heavy_b.GetAtomWithIdx(j).GetAtomicNum()
    }
    width, height = size
    if suffix == ".svg":
        drawer = rdMolDraw2D.MolDraw2DSVG(2 * width, height, width, height)
    else:
        drawer = rdMolDraw2D.MolDraw2DCairo(2 * width, height, width, height)
    drawer.drawOptions().prepareMolsBeforeDrawing = True  # type: ignore[assignment]  # RDKit's stub is wrong
    changes = f", {len(changed)} element change(s)" if changed else ""
    legends = [
        f"{a.name} ({len(unique_a)} unique{changes})",
        f"{b.name} ({len(unique_b)} unique)  score {mapping.score:.2f}",
    ]
    colors_a = dict.fromkeys(unique_a, _UNIQUE_A) | dict.fromkeys(changed, _ELEMENT_CHANGE)
    colors_b = dict.fromkeys(unique_b, _UNIQUE_B) | dict.fromkeys(changed.values(), _ELEMENT_CHANGE)
    drawer.DrawMolecules(
        [heavy_a, heavy_b],
        highlightAtoms=[list(colors_a), list(colors_b)],
        highlightAtomColors=[colors_a, colors_b],
        highlightBonds=[[], []],
        legends=legends,
    )
    drawer.FinishDrawing()
    if suffix == ".svg":
        from xml.sax.saxutils import escape

        svg = drawer.GetDrawingText()
        start = svg.index(">", svg.index("<svg")) + 1  # a searchable title: RDKit draws legends as glyph paths
        title = f"<title>{escape(mapping.key)}: {escape(legends[0])}; {escape(legends[1])}</title>"
        return atomic_write_text(path, svg[:start] + title + svg[start:])
    png: bytes = drawer.GetDrawingText()  # type: ignore[assignment]  # bytes from the Cairo drawer
    return atomic_write_bytes(path, png)


def depict_network(network: Network, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Draw the network: nodes = ligands, edges coloured and labelled by score, charge-changing edges dashed.

    Parameters
    ----------
    network : Network
        The planned network.
    path : path-like
        ``.png`` or ``.svg``; written atomically.
    title : str, optional
        Figure title (default: planner and counts).

    Returns
    -------
    Path
        The file written.
    """
    import matplotlib
    import networkx as nx
    from matplotlib import cm, colors
    from matplotlib.figure import Figure

    path = Path(path)
    suffix = _suffix(path)
    graph = nx.Graph()
    graph.add_nodes_from(lig.name for lig in network.ligands)
    for edge in network.edges:
        graph.add_edge(edge.ligand_a, edge.ligand_b, score=edge.score, charged=edge.charge_change != 0)
    n = graph.number_of_nodes()
    side = max(6.0, min(16.0, 1.2 * n**0.5 * 2.5))
    fig = Figure(figsize=(side, side * 0.8))  # no pyplot: no global backend or figure state
    ax = fig.add_subplot()
    pos = nx.kamada_kawai_layout(graph) if nx.is_connected(graph) else nx.spring_layout(graph, seed=0)
    norm = colors.Normalize(vmin=0.0, vmax=1.0)
    cmap = matplotlib.colormaps["viridis"]
    for charged, style in ((False, "solid"), (True, "dashed")):
        edgelist = [(u, v) for u, v, d in graph.edges(data=True) if d["charged"] == charged]
        if not edgelist:
            continue
        nx.draw_networkx_edges(
            graph,
            pos,
            edgelist=edgelist,
            edge_color=[cmap(norm(graph.edges[e]["score"])) for e in edgelist],
            style=style,
            width=2.0,
            ax=ax,
        )
    nx.draw_networkx_nodes(graph, pos, node_color="#f0f0f0", edgecolors="#444444", node_size=600, ax=ax)
    nx.draw_networkx_labels(graph, pos, font_size=7, ax=ax)
    nx.draw_networkx_edge_labels(
        graph,
        pos,
        edge_labels={(u, v): f"{d['score']:.2f}" for u, v, d in graph.edges(data=True)},
        font_size=6,
        ax=ax,
    )
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.6, label="mapping score")
    n_charged = sum(1 for e in network.edges if e.charge_change)
    ax.set_title(
        title
        or f"{network.planner or 'network'}: {n} ligands, {len(network.edges)} edges"
        + (f" ({n_charged} charge-changing, dashed)" if n_charged else "")
    )
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=suffix[1:], dpi=150, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())
