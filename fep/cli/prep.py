"""``fep prep``: read, validate and pose a ligand series, write it as an SDF ready for ``fep plan``."""

from __future__ import annotations

from pathlib import Path

import typer

from fep.cli._app import app, console, emit_json


@app.command("prep")
def prep(
    ligands: Path = typer.Argument(..., help="Ligand file: .sdf/.sd (3D, explicit H), .csv (name,smiles) or .smi."),
    output: Path = typer.Option(..., "--output", "-o", help="Prepared SDF to write."),
    reference: Path | None = typer.Option(
        None, "--reference", "-r", help="Reference ligand SDF (first record): SMILES ligands are posed on it."
    ),
    protein: Path | None = typer.Option(
        None, "--protein", "-p", help="Protein PDB: poses clashing with its heavy atoms are avoided."
    ),
    protonate: bool = typer.Option(
        False, "--protonate", help="Add missing hydrogens to neutral SDF records instead of refusing them."
    ),
    charges: bool = typer.Option(
        False,
        "--charges/--no-charges",
        help="Also compute AM1-BCC partial charges (sqm; seconds to a minute per ligand, cached) and write them as "
        "the 'mlfep_partial_charges' property. Off by default: `fep run` computes (and caches) them anyway.",
    ),
    n_conformers: int = typer.Option(10, "--n-conformers", min=1, help="Conformers tried per generated pose."),
    seed: int = typer.Option(42, "--seed", help="Random seed of pose generation."),
    name_property: str | None = typer.Option(
        None, "--name-property", help="SD property holding ligand names (default: the title line)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list of the prepared ligands on stdout."),
) -> None:
    """Read and validate LIGANDS, generate 3D poses for SMILES input, and write a prepared SDF.

    The SDF has the ligand name as title and the SD properties mlfep_smiles, mlfep_formal_charge,
    mlfep_core_rmsd_A (generated poses), mlfep_expt_dg_kcal_mol (if known) and, with --charges,
    mlfep_partial_charges (e, space separated, mol-block atom order).
    """
    from ligand_prep.io import read_ligands, write_sdf
    from ligand_prep.validate import series_warnings

    out = console()
    with out.status("reading and validating ligands") as status:

        def progress(done: int, total: int, name: str) -> None:
            status.update(f"posing ligands: {done}/{total} ({name})")

        prepared = read_ligands(
            ligands,
            reference=reference,
            protein=protein,
            protonate=protonate,
            n_conformers=n_conformers,
            seed=seed,
            name_property=name_property,
            progress=progress,
        )
    extra: dict[str, dict[str, str]] = {}
    charge_values: dict[str, list[float]] = {}
    if charges:
        from ligand_prep.charges import assign_charges

        with out.status("AM1-BCC charges") as status:
            for index, lig in enumerate(prepared, start=1):
                status.update(f"AM1-BCC charges: {index}/{len(prepared)} ({lig.name})")
                charged = assign_charges(lig)
                charge_values[lig.name] = list(charged.partial_charges)
                extra[lig.name] = {"mlfep_partial_charges": " ".join(f"{q:.6f}" for q in charged.partial_charges)}
    path = write_sdf(prepared, output, properties=extra)

    from rich.table import Table

    table = Table(title=f"{len(prepared)} ligands -> {path}")
    for column in ("name", "atoms", "charge", "core RMSD (Å)", "expt ΔG (kcal/mol)"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for lig in prepared:
        table.add_row(
            lig.name,
            str(lig.n_atoms),
            f"{lig.formal_charge:+d}" if lig.formal_charge else "0",
            "—" if lig.core_rmsd_angstrom is None else f"{lig.core_rmsd_angstrom:.2f}",
            "—" if lig.experimental is None else f"{lig.experimental.dg_kcal_mol:.2f}",
        )
    out.print(table)
    for warning in series_warnings(prepared):
        out.print(f"[yellow]warning:[/yellow] {warning}")

    if json_out:
        emit_json(
            [
                {
                    "name": lig.name,
                    "smiles": lig.smiles,
                    "n_atoms": lig.n_atoms,
                    "formal_charge": lig.formal_charge,
                    "core_rmsd_angstrom": lig.core_rmsd_angstrom,
                    "experimental_dg_kcal_mol": None if lig.experimental is None else lig.experimental.dg_kcal_mol,
                    "source": lig.source,
                    **({"partial_charges": charge_values[lig.name]} if lig.name in charge_values else {}),
                }
                for lig in prepared
            ]
        )
