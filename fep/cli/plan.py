"""``fep plan``: read a ligand series, map atoms between pairs and plan the perturbation network."""

from __future__ import annotations

from pathlib import Path

import typer

from fep.cli._app import app, console, emit_json


@app.command("plan")
def plan(
    ligands: Path = typer.Argument(
        ..., help="Ligand file: .sdf (3D, explicit H, one frame), .csv (name,smiles) or .smi."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Network JSON to write."),
    reference: Path | None = typer.Option(
        None, "--reference", "-r", help="Reference ligand SDF: SMILES ligands are posed on it."
    ),
    protein: Path | None = typer.Option(None, "--protein", "-p", help="Protein PDB (recorded; used for posing)."),
    cofactor: list[Path] = typer.Option(
        [], "--cofactor", help="Cofactor SDF (3D, hydrogens, protein frame) of the complex leg; recorded; repeatable."
    ),
    mode: str = typer.Option(
        "binding", "--mode", help="binding (complex + solvent legs) or hydration (solvent + vacuum)."
    ),
    network: str = typer.Option(
        "mst",
        "--network",
        "-n",
        help="mst, redundant (every ligand on a cycle), star, or a CSV of edges ligand_a,ligand_b.",
    ),
    star_reference: str | None = typer.Option(
        None, "--star-reference", help="Hub ligand of --network star (default: the best mean mapping score)."
    ),
    images: Path | None = typer.Option(
        None, "--images", help="Folder for pictures: one PNG per edge (A~B.png) and network.png."
    ),
    max_distance: float = typer.Option(
        1.0, "--max-distance", min=0.01, help="Mapped atoms must lie within this many Å in the two poses."
    ),
    no_element_change: bool = typer.Option(
        False, "--no-element-change", help="Do not map heavy atoms whose element changes."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the planned edges as JSON on stdout."),
) -> None:
    """Plan a perturbation network over LIGANDS and write it as JSON (atom mappings included).

    Edges are chosen from LOMAP-style scores of 3D-checked maximum-common-substructure mappings; charge-changing
    edges are kept and flagged.
    """
    from rich.table import Table

    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings, MCSMapper
    from ligand_prep.network import PLANNERS, plan_network
    from mlfep_core import InputError
    from mlfep_core.names import inside

    if mode not in ("binding", "hydration"):
        raise InputError(f"--mode {mode}: use binding or hydration")
    if network not in PLANNERS and not Path(network).is_file():
        raise InputError(f"--network {network}: not mst, redundant or star, and no such edges file")
    if star_reference is not None and network != "star":
        raise InputError("--star-reference needs --network star")

    if cofactor and (mode != "binding" or protein is None):
        raise InputError("--cofactor belongs to the complex leg: it needs --protein and binding mode")
    out = console()
    from fep.systems.cofactors import read_cofactors

    cofactors = read_cofactors(cofactor)
    if protein is not None:  # a protein the complex leg cannot build fails now, not when the first leg is built
        from fep.systems.protein import load_protein

        with out.status(f"checking {protein} against the force field"):
            load_protein(protein)
    with out.status("reading ligands") as status:

        def posing(done: int, total: int, name: str) -> None:
            status.update(f"posing ligands: {done}/{total} ({name})")

        ligs = read_ligands(ligands, reference=reference, protein=protein, progress=posing, align=mode != "hydration")
        if len(ligs) < 2:
            raise InputError(f"{ligands}: {len(ligs)} ligand; a network needs at least two")
        mapper = MCSMapper(
            MappingSettings(
                max_distance_angstrom=max_distance,
                allow_element_change=not no_element_change,
                use_poses=mode != "hydration",  # hydration: no common frame needed, each pair is fitted
            )
        )

        def mapping(done: int, total: int, pair: str) -> None:
            status.update(f"mapping pairs: {done}/{total} ({pair})")

        status.update("mapping pairs")
        result = plan_network(
            ligs,
            mode=mode,
            network=network,
            reference=star_reference,
            mapper=mapper,
            protein=str(protein) if protein is not None else None,
            progress=mapping,
        )
    if cofactors:
        from fep.systems.cofactors import check_cofactor_placement, posed

        check_cofactor_placement(posed(cofactors), posed(result.ligands))
        result = result.model_copy(update={"cofactors": tuple(str(c) for c in cofactor)})
    path = result.to_json_file(output)

    by_name = {lig.name: lig for lig in result.ligands}
    ligand_of_edge = {}
    for edge in result.edges:
        a, b = by_name[edge.ligand_a], by_name[edge.ligand_b]
        ligand_of_edge[edge.key] = (a, b)

    table = Table(title=f"{result.planner}: {len(result.ligands)} ligands, {len(result.edges)} edges -> {path}")
    for column in ("A", "B", "mapped atoms", "score", "flags"):
        table.add_column(column, justify="right" if column in ("mapped atoms", "score") else "left")
    for edge in result.edges:
        flags = []
        if edge.charge_change:
            flags.append(f"charge {edge.charge_change:+d}")
        flags += [w for w in edge.warnings if not w.startswith("charge-changing")]
        table.add_row(edge.ligand_a, edge.ligand_b, str(len(edge.mapping)), f"{edge.score:.3f}", "; ".join(flags))
    out.print(table)

    if images is not None:
        from ligand_prep.depict import depict_mapping, depict_network

        with out.status("drawing") as status:
            for index, edge in enumerate(result.edges, start=1):
                status.update(f"drawing edges: {index}/{len(result.edges)}")
                a, b = ligand_of_edge[edge.key]
                depict_mapping(edge, a, b, inside(Path(images) / f"{edge.key}.png", images))
            depict_network(result, Path(images) / "network.png")

    connected = _connected(result)
    n_charged = sum(1 for e in result.edges if e.charge_change)
    out.print(
        f"{len(result.edges)} edges over {len(result.ligands)} ligands ({result.planner}), "
        f"{'connected' if connected else 'NOT connected'}, "
        f"min score {min(e.score for e in result.edges):.2f}, {n_charged} charge-changing -> {path}"
    )
    if json_out:
        emit_json(
            {
                "network": str(path),
                "planner": result.planner,
                "mode": result.mode,
                "ligands": [lig.name for lig in result.ligands],
                "edges": [
                    {
                        "ligand_a": e.ligand_a,
                        "ligand_b": e.ligand_b,
                        "score": e.score,
                        "n_mapped": len(e.mapping),
                        "charge_change": e.charge_change,
                        "warnings": list(e.warnings),
                    }
                    for e in result.edges
                ],
                "connected": connected,
            }
        )


def _connected(network) -> bool:
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(lig.name for lig in network.ligands)
    graph.add_edges_from((e.ligand_a, e.ligand_b) for e in network.edges)
    return nx.is_connected(graph)
