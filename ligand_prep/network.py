"""Perturbation network planning: which ligand pairs to compute, each with its atom mapping.

Planners (``network=``):

- ``"mst"``: minimal spanning tree on ``1 - score`` over every pair that maps;
- ``"redundant"``: the MST plus, for each ligand not yet on a cycle (tree leaves first), its best-scoring extra
  edge, so that every ligand lies on at least one cycle where the scores allow (cycle closure becomes possible);
- ``"star"``: every ligand against one reference (given, or the ligand with the best mean score);
- an explicit CSV with columns ``ligand_a,ligand_b`` (:func:`network_from_edges`): exactly those edges, in order.

Charge-changing edges are kept; their :class:`~ligand_prep.models.AtomMapping` carries ``charge_change != 0``
and a warning.
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ligand_prep.mapping import MappingSettings, MCSMapper
from ligand_prep.models import AtomMapping, Ligand, Network
from mlfep_core import InputError, MappingError

__all__ = ["PLANNERS", "network_from_edges", "plan_network"]

log = logging.getLogger(__name__)

PLANNERS = ("mst", "redundant", "star")

Progress = Callable[[int, int, str], None]
"""``progress(done, total, message)``: called after each ligand pair is mapped."""


def _check_ligands(ligands: Sequence[Ligand], mode: str) -> None:
    if mode not in ("binding", "hydration"):
        raise InputError(f"unknown mode '{mode}': use 'binding' or 'hydration'")
    if len(ligands) < 2:
        raise InputError(f"a network needs at least two ligands, got {len(ligands)}")
    seen: set[str] = set()
    for lig in ligands:
        if lig.name in seen:
            raise InputError(f"ligand name '{lig.name}' occurs twice: give every ligand a unique name")
        seen.add(lig.name)


def _all_pairs(
    ligands: Sequence[Ligand], mapper: MCSMapper, progress: Progress | None, pairs: list[tuple[int, int]] | None = None
) -> tuple[dict[tuple[int, int], AtomMapping], dict[tuple[int, int], str]]:
    """Map the given index pairs (default: all i < j); returns (mappings, failure reasons)."""
    pairs = pairs if pairs is not None else list(itertools.combinations(range(len(ligands)), 2))
    mapped: dict[tuple[int, int], AtomMapping] = {}
    failed: dict[tuple[int, int], str] = {}
    for n, (i, j) in enumerate(pairs, start=1):
        try:
            mapped[(i, j)] = mapper.map(ligands[i], ligands[j])
        except MappingError as err:
            failed[(i, j)] = str(err)
            log.info("%s", err)
        if progress is not None:
            progress(n, len(pairs), f"{ligands[i].name}~{ligands[j].name}")
    return mapped, failed


def _graph(ligands: Sequence[Ligand], mapped: dict[tuple[int, int], AtomMapping]):
    """Every mappable pair, weighted 1 − score; among equal scores the pair with fewer element changes, then with
    fewer unmapped atoms (hydrogens included), weighs less: benzene~toluene before toluene~phenol (C -> O), and
    methanol~methanethiol (O-H onto S-H) before ethane~methanol (two dummy hydrogens)."""
    import networkx as nx

    elements = [_elements(lig) for lig in ligands]
    graph = nx.Graph()
    graph.add_nodes_from(range(len(ligands)))
    for (i, j), m in mapped.items():
        changes = sum(elements[i][a] != elements[j][b] for a, b in m.mapping.items())
        unmapped = ligands[i].n_atoms + ligands[j].n_atoms - 2 * len(m.mapping)
        graph.add_edge(i, j, weight=1.0 - m.score + 1e-3 * changes + 1e-5 * unmapped, score=m.score)
    return graph


def _elements(ligand: Ligand) -> list[str]:
    """Element symbols in mol-block order (from the atom block)."""
    lines = ligand.molblock.splitlines()
    return [line[31:34].strip() for line in lines[4 : 4 + ligand.n_atoms]]


def _unconnectable(ligands: Sequence[Ligand], graph, failed: dict[tuple[int, int], str]) -> MappingError:
    import networkx as nx

    components = sorted(nx.connected_components(graph), key=len, reverse=True)
    lonely = sorted({ligands[i].name for comp in components[1:] for i in comp})
    example = next(
        (reason for (i, j), reason in failed.items() if ligands[i].name in lonely or ligands[j].name in lonely), ""
    )
    return MappingError(
        f"cannot connect ligand(s) {', '.join(lonely)} to the rest of the network: no acceptable atom mapping"
        + (f" (e.g. {example})" if example else "")
        + "; check their poses/alignment or add an intermediate ligand"
    )


def _on_cycle(graph) -> set[int]:
    import networkx as nx

    bridges = {frozenset(e) for e in nx.bridges(graph)}
    return {n for u, v in graph.edges() if frozenset((u, v)) not in bridges for n in (u, v)}


def _redundant(graph, tree) -> set[tuple[int, int]]:
    """MST edges plus, per ligand not on a cycle, its best extra edge."""
    import networkx as nx

    chosen = nx.Graph()
    chosen.add_nodes_from(tree.nodes())
    chosen.add_edges_from(tree.edges())
    for node in sorted(graph.nodes(), key=lambda n: (tree.degree(n), n)):  # leaves first
        if node in _on_cycle(chosen):
            continue
        extra = [
            (graph.edges[node, other]["score"], other)
            for other in graph.neighbors(node)
            if not chosen.has_edge(node, other)
        ]
        if not extra:
            continue
        _, other = max(extra)
        chosen.add_edge(node, other)
    return {tuple(sorted(e)) for e in chosen.edges()}


def plan_network(
    ligands: Sequence[Ligand],
    *,
    mode: str = "binding",
    network: str = "mst",
    reference: str | None = None,
    mapper: MCSMapper | None = None,
    protein: str | None = None,
    progress: Progress | None = None,
) -> Network:
    """Plan a perturbation network over ``ligands``.

    Parameters
    ----------
    ligands : sequence of Ligand
        Posed ligands in one frame, unique names.
    mode : {"binding", "hydration"}
        Stored on the network (which legs ``fep run`` computes).
    network : {"mst", "redundant", "star"} or path
        The planner; a path to a CSV with ``ligand_a,ligand_b`` columns maps exactly those edges.
    reference : str, optional
        Hub of the ``"star"`` planner (default: the ligand with the best mean score to all others).
    mapper : MCSMapper, optional
        Defaults to ``MCSMapper()``; pass one to share its cache or settings.
    protein : str, optional
        Path of the protein PDB, recorded on the network.
    progress : callable, optional
        ``progress(done, total, message)`` after each pair.

    Returns
    -------
    Network
        Edges in a stable order (by ligand input order), each with its atom mapping.

    Raises
    ------
    InputError
        Bad ligands, planner or reference name.
    MappingError
        If some ligands cannot be connected (names them).
    """
    _check_ligands(ligands, mode)
    mapper = mapper or MCSMapper(MappingSettings(use_poses=mode != "hydration"))  # hydration: on topology
    names = [lig.name for lig in ligands]
    if network not in PLANNERS:
        if str(network).lower().endswith(".csv") or Path(network).exists():
            return network_from_edges(ligands, network, mode=mode, mapper=mapper, protein=protein)
        raise InputError(f"unknown network '{network}': use mst, redundant, star or a CSV file of edges")

    if network == "star":
        if reference is not None and reference not in names:
            raise InputError(f"star reference '{reference}' is not one of the ligands ({', '.join(names)})")
        if reference is None:
            mapped, failed = _all_pairs(ligands, mapper, progress)
            means = []
            for k in range(len(ligands)):
                scores = [m.score for (i, j), m in mapped.items() if k in (i, j)]
                means.append(sum(scores) / (len(ligands) - 1) if scores else 0.0)
            hub = max(range(len(ligands)), key=lambda k: (means[k], -k))
        else:
            hub = names.index(reference)
            pairs = [(hub, k) for k in range(len(ligands)) if k != hub]
            mapped, failed = _all_pairs(ligands, mapper, progress, pairs)
        edges = []
        missing = []
        for k in range(len(ligands)):
            if k == hub:
                continue
            if (hub, k) in mapped:  # mapped in this direction already: the mapper is deterministic
                edges.append(mapped[(hub, k)])
                continue
            if (hub, k) in failed:
                missing.append(f"{names[k]} ({failed[(hub, k)]})")
                continue
            try:
                edges.append(mapper.map(ligands[hub], ligands[k]))
            except MappingError as err:
                missing.append(f"{names[k]} ({err})")
        if missing:
            raise MappingError(
                f"star around {names[hub]}: cannot map {len(missing)} ligand(s): {missing[0]}"
                + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                + "; use --network mst or another --star-reference"
            )
        return Network(
            mode=mode, ligands=tuple(ligands), edges=tuple(edges), planner=f"star:{names[hub]}", protein=protein
        )

    import networkx as nx

    mapped, failed = _all_pairs(ligands, mapper, progress)
    graph = _graph(ligands, mapped)
    if not nx.is_connected(graph):
        components = sorted(nx.connected_components(graph), key=min)
        if mode != "hydration" or any(len(c) == 1 for c in components):
            raise _unconnectable(ligands, graph, failed)
        # a hydration series of several scaffolds: one sub-network per scaffold family (their relative values are
        # meaningful within each; each is anchored on its own experimental mean)
        log.warning(
            "the series falls into %d groups that share no core; each is planned as its own network: %s",
            len(components),
            "; ".join(", ".join(names[i] for i in sorted(c)) for c in components),
        )
    tree = nx.minimum_spanning_tree(graph, weight="weight", algorithm="kruskal")  # a forest when disconnected
    if network == "mst":
        chosen = {tuple(sorted(e)) for e in tree.edges()}
    else:
        chosen = _redundant(graph, tree)
    chosen_edges = tuple(mapped[pair] for pair in sorted(chosen))
    return Network(mode=mode, ligands=tuple(ligands), edges=chosen_edges, planner=network, protein=protein)


def network_from_edges(
    ligands: Sequence[Ligand],
    edges_csv_path: str | os.PathLike[str],
    *,
    mode: str = "binding",
    mapper: MCSMapper | None = None,
    protein: str | None = None,
) -> Network:
    """Map exactly the edges listed in a CSV file (columns ``ligand_a,ligand_b``), in file order.

    Raises
    ------
    InputError
        Missing file or columns, an unknown ligand name or a self-edge (names the row).
    MappingError
        An edge that cannot be mapped (names the row and both ligands).
    """
    _check_ligands(ligands, mode)
    mapper = mapper or MCSMapper(MappingSettings(use_poses=mode != "hydration"))
    path = Path(edges_csv_path)
    by_name = {lig.name: lig for lig in ligands}
    try:
        text = path.read_text()
    except FileNotFoundError as err:
        raise InputError(f"{path}: edges file not found") from err
    except OSError as err:
        raise InputError(f"{path}: cannot read edges file ({err})") from err
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip() for f in reader.fieldnames or []]
    if "ligand_a" not in fields or "ligand_b" not in fields:
        raise InputError(f"{path}: needs the columns ligand_a,ligand_b (found: {', '.join(fields) or 'none'})")
    rows = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        a, b = row.get("ligand_a", ""), row.get("ligand_b", "")
        if not a and not b:
            continue
        for name in (a, b):
            if name not in by_name:
                raise InputError(
                    f"{path} row {line}: unknown ligand '{name}' in edge {a},{b} (not among the {len(ligands)} ligands read)"
                )
        if a == b:
            raise InputError(f"{path} row {line}: edge {a},{b} maps a ligand onto itself")
        rows.append((line, a, b))
    if not rows:
        raise InputError(f"{path}: no edges listed")
    edges = []
    for line, a, b in rows:
        try:
            edges.append(mapper.map(by_name[a], by_name[b]))
        except MappingError as err:
            raise MappingError(f"{path} row {line}: {err}") from err
    unused = sorted(set(by_name) - {n for _, a, b in rows for n in (a, b)})
    if unused:
        log.warning("%s: ligand(s) %s appear in no edge", path, ", ".join(unused))
    return Network(mode=mode, ligands=tuple(ligands), edges=tuple(edges), planner=f"file:{path}", protein=protein)
