"""``fep check``: build one leg of an edge and check the hybrid's end-state energies against the plain systems.

Exit status 0 when every difference is within tolerance (Reference: 0.01 kJ/mol and 0.01 kJ/mol/nm; CPU:
single-precision noise, see :mod:`fep.alchemy.check`), 1 otherwise, 2 on an input error.
"""

from __future__ import annotations

from pathlib import Path

import typer

from fep.cli._app import app, console, emit_json


def _find(ligands, name: str, path: Path):
    from mlfep_core import InputError

    for lig in ligands:
        if lig.name == name:
            return lig
    names = ", ".join(lig.name for lig in ligands[:12])
    raise InputError(f"{path}: no ligand named '{name}' (found: {names}{', ...' if len(ligands) > 12 else ''})")


def _environment_facts(end_states, cofactors) -> dict:
    """What the leg's environment holds besides the solvent: cofactors, crystal waters, ions of the protein
    PDB, the net charge before counter-ions, the co-ion of a charge-changing edge."""
    first_ligand = list(end_states.topology_a.atoms())[end_states.ligand_atoms_a[0]].residue.index
    before = [r for r in end_states.topology_a.residues() if r.index < first_ligand]
    return {
        "cofactors": [c.name for c in cofactors],
        "crystal_waters": sum(r.name == "HOH" for r in before),
        "ions_in_protein": sorted({r.name for r in before if len(r) == 1 and r.name != "HOH"}),
        "net_charge_before_ions": end_states.net_charge,
        "coion": end_states.coion,
    }


@app.command("check")
def check(
    ligands: Path = typer.Option(..., "--ligands", help="Ligand series: SDF, CSV (name,smiles,...) or SMI."),
    edge: str = typer.Option(..., "--edge", help="The edge as 'A,B' (ligand names)."),
    protein: Path | None = typer.Option(None, "--protein", help="Prepared protein PDB (complex leg)."),
    cofactor: list[Path] = typer.Option(
        [], "--cofactor", help="Cofactor SDF (3D, hydrogens, protein frame), part of the complex leg; repeatable."
    ),
    drop_crystal_waters: bool = typer.Option(
        False, "--drop-crystal-waters", help="Remove the PDB's HOH residues (kept by default)."
    ),
    leg: str | None = typer.Option(
        None, "--leg", help="solvent, complex or vacuum (default: complex with --protein, else solvent)."
    ),
    platform: str = typer.Option("Reference", "--platform", help="OpenMM platform: Reference or CPU."),
    charge_method: str = typer.Option(
        "am1bcc", "--charge-method", help="am1bcc (default), nagl (conformer-independent) or gasteiger (quick)."
    ),
    ligand_ff: str = typer.Option(
        "sage", "--ligand-ff", help="sage, or ani2x-torsions (check the hybrid with the ligands' refitted torsions)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> int:
    """Check that the hybrid system of one leg reproduces the plain end states at λ = A and λ = B."""
    from mlfep_core import InputError

    names = [part.strip() for part in edge.split(",")]
    if len(names) != 2 or not all(names):
        raise InputError(f"--edge '{edge}': give two ligand names separated by a comma, e.g. --edge benzene,phenol")
    leg = leg or ("complex" if protein else "solvent")
    if leg not in ("solvent", "complex", "vacuum"):
        raise InputError(f"--leg '{leg}': choose solvent, complex or vacuum")
    if leg == "complex" and protein is None:
        raise InputError("--leg complex needs --protein P.pdb")
    if cofactor and leg != "complex":
        raise InputError(f"--cofactor belongs to the complex leg; drop it or use --leg complex (not {leg})")
    if platform not in ("Reference", "CPU"):
        raise InputError(f"--platform '{platform}': choose Reference or CPU")
    if ligand_ff not in ("sage", "ani2x-torsions", "ani2x-endpoint"):
        raise InputError(f"--ligand-ff '{ligand_ff}': choose sage or ani2x-torsions")

    from fep.alchemy.check import end_state_energy_check
    from fep.alchemy.hybrid import build_hybrid
    from fep.systems.cofactors import prepare_cofactors, read_cofactors
    from fep.systems.endstates import SystemSettings, build_end_states
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings, MCSMapper

    out = console()
    settings = SystemSettings(keep_crystal_waters=not drop_crystal_waters)
    read_cofactors(cofactor)  # a bad cofactor file fails before the ligands are posed and charged
    in_pocket = protein is not None  # without a protein: hydration-style, each ligand for itself, mapped on topology
    series = read_ligands(ligands, protein=protein, align=in_pocket)
    lig_a, lig_b = (_find(series, name, ligands) for name in names)
    mapping = MCSMapper(MappingSettings(use_poses=in_pocket)).map(lig_a, lig_b)
    prep_a = assign_charges(lig_a, method=charge_method)
    prep_b = assign_charges(lig_b, method=charge_method)
    if ligand_ff == "ani2x-torsions":
        from fep.nnp.torsions import fit_bespoke_torsions

        if not as_json:
            out.print("refitting the ligands' torsions to ANI-2x scans (cached after the first time)")
        prep_a, prep_b = fit_bespoke_torsions(prep_a), fit_bespoke_torsions(prep_b)
    if not as_json:
        out.print(f"building the {leg} leg of {lig_a.name}~{lig_b.name} ({len(mapping.mapping)} mapped atoms)")
    cofactors = prepare_cofactors(cofactor, charge_method, settings.small_molecule_forcefield)
    end_states = build_end_states(
        prep_a, prep_b, mapping, leg, settings=settings, protein_pdb=protein, cofactors=cofactors
    )
    hybrid = build_hybrid(end_states, mapping)
    result = end_state_energy_check(end_states, hybrid, platform=platform)
    result["n_atoms"] = hybrid.info.n_atoms
    result.update(_environment_facts(end_states, cofactors))
    result["unique_a"] = len(hybrid.info.unique_a)
    result["unique_b"] = len(hybrid.info.unique_b)
    result["warnings"] = list(hybrid.info.warnings)
    if as_json:
        emit_json(result)
    else:
        from rich.table import Table

        table = Table(title=f"{result['edge']} {leg}: hybrid − (plain + dummy valence), kJ/mol ({platform})")
        table.add_column("term")
        for label in ("A", "B"):
            table.add_column(f"λ={label}: hybrid", justify="right")
            table.add_column(f"λ={label}: difference", justify="right")
        for term in result["states"]["A"]["difference"]:
            row = [term]
            for label in ("A", "B"):
                state = result["states"][label]
                row += [f"{state['hybrid'][term]:.4f}", f"{state['difference'][term]:.2e}"]
            table.add_row(*row)
        table.add_row(
            "max |Δforce| (kJ/mol/nm)",
            "",
            f"{result['states']['A']['max_force_difference']:.2e}",
            "",
            f"{result['states']['B']['max_force_difference']:.2e}",
        )
        out.print(table)
        facts = [f"net charge {result['net_charge_before_ions']:+d} before counter-ions"]
        if result["cofactors"]:
            facts.append(f"cofactors {', '.join(result['cofactors'])}")
        if leg == "complex":
            facts.append(f"{result['crystal_waters']} crystal waters")
        if result["ions_in_protein"]:
            facts.append(f"ions {', '.join(result['ions_in_protein'])}")
        if result["coion"]:
            facts.append(f"co-ion {result['coion']} (charge-changing edge)")
        out.print("environment: " + "; ".join(facts))
        for message in result["warnings"]:
            out.print(f"[yellow]warning: {message}[/yellow]")
    tol = result["tolerance"]["A"]["energy_kj_mol"]
    if not result["passed"]:
        typer.echo(
            f"FAILED: {result['edge']} {leg}: largest energy difference {result['max_abs_energy_difference']:.3g} "
            f"kJ/mol, force difference {result['max_force_difference']:.3g} kJ/mol/nm (tolerance {tol:g} kJ/mol on "
            f"{platform})",
            err=True,
        )
        raise typer.Exit(1)
    if not as_json:
        out.print(f"[green]OK[/green]: every end-state difference is below {tol:g} kJ/mol on {platform}")
    return 0
