"""``fep protein``: check a protein PDB against the force field (fast), optionally repair it first with pdbfixer.

Exit status 0 when the protein can be parametrized, 2 with one line naming the bad residue otherwise.
"""

from __future__ import annotations

from pathlib import Path

import typer

from fep.cli._app import app, console, emit_json


@app.command("protein")
def protein(
    pdb: Path = typer.Argument(..., help="Prepared protein PDB (hydrogens present; ACE/NME caps are fine)."),
    fix: Path | None = typer.Option(
        None, "--fix-protein", help="Repair with pdbfixer (missing atoms, short internal loops, H at pH 7) into FILE."
    ),
    extra_forcefield: list[Path] = typer.Option(
        [], "--extra-forcefield", help="Extra OpenMM ffxml file(s), e.g. templates for non-standard residues."
    ),
    drop_crystal_waters: bool = typer.Option(
        False, "--drop-crystal-waters", help="Remove the PDB's HOH residues (kept by default)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> int:
    """Check that every residue of PDB matches a force-field template; report atoms and net charge."""
    from fep.systems.forcefield import SystemSettings
    from fep.systems.protein import fix_protein, load_protein

    settings = SystemSettings(
        extra_forcefield_files=tuple(str(p) for p in extra_forcefield), keep_crystal_waters=not drop_crystal_waters
    )
    payload: dict = {"input": str(pdb)}
    if fix is not None:
        repair = fix_protein(pdb, fix)
        payload["repair"] = repair.model_dump()
        pdb = fix
    structure = load_protein(pdb, settings)
    residues = list(structure.topology.residues())
    payload.update(
        checked=str(pdb),
        n_atoms=structure.topology.getNumAtoms(),
        n_residues=len(residues),
        chains=sorted({r.chain.id for r in residues}),
        net_charge=structure.net_charge,
        crystal_waters_kept=structure.n_crystal_waters,
        crystal_waters_dropped=structure.n_waters_dropped,
    )
    if as_json:
        emit_json(payload)
    else:
        out = console()
        if fix is not None:
            rep = payload["repair"]
            out.print(
                f"repaired -> {fix}: {len(rep['added_atoms'])} heavy atoms, {len(rep['added_residues'])} loop(s), "
                f"{rep['added_hydrogens']} hydrogens added; {len(rep['skipped_gaps'])} gap(s) left alone"
            )
        out.print(
            f"{pdb}: OK, {payload['n_atoms']} atoms, {payload['n_residues']} residues, chains "
            f"{', '.join(payload['chains'])}, net charge {structure.net_charge:+d}, "
            f"{structure.n_crystal_waters} crystal waters kept, {structure.n_waters_dropped} dropped"
        )
    return 0
