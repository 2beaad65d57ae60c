"""``fep protocol``: show the shipped protocol tiers, or check a protocol file."""

from __future__ import annotations

import typer

from fep.cli._app import app, console, emit_json

protocol_app = typer.Typer(
    help="Show or check protocols (smoke, fast, default, production, or a file).", no_args_is_help=True
)
app.add_typer(protocol_app, name="protocol")


@protocol_app.command("show")
def show(
    name: str = typer.Argument(..., help="smoke | fast | default | production | FILE.json/.yaml"),
    json_out: bool = typer.Option(False, "--json", help="Print the full protocol as JSON."),
) -> None:
    """Print every setting of a protocol (a tier, or a file validated against its base tier)."""
    from fep.protocol import load_protocol

    proto = load_protocol(name)
    if json_out:
        emit_json(proto.model_dump(mode="json"))
        return
    out = console()
    s = proto.sampler
    out.print(f"[bold]{proto.name}[/bold]: {proto.description}")
    out.print(
        f"  {len(proto.windows())} λ windows x {proto.ns_per_window():g} ns production "
        f"({s.n_iterations} iterations x {s.steps_per_iteration} steps x {s.timestep}), {proto.repeats} repeat(s)"
    )
    out.print(
        f"  equilibration {s.equilibration_nvt_steps} NVT + {s.equilibration_npt_steps} NPT steps per window; "
        f"T = {s.temperature}, P = {s.pressure}"
    )
    sys_ = proto.system
    out.print(
        f"  box {sys_.box_shape}, padding solvent {sys_.solvent_padding} / complex {sys_.complex_padding}, "
        f"{sys_.ionic_strength} NaCl, cutoff {sys_.nonbonded_cutoff}, H mass {sys_.hydrogen_mass}"
    )
    out.print(f"  ligands: {sys_.small_molecule_forcefield} with {proto.charge_method} charges")
    n = proto.nnp
    out.print(
        f"  ANI-2x correction (--nnp ani2x): λ {list(n.lambdas)}, {n.n_frames} MM frames, {n.steps_per_state} steps per λ"
    )
    if proto.rest2.enabled:
        out.print(f"  REST2: the ligand tempered up to {proto.rest2.max_temperature} in the middle window")
    place = proto.lambda_placement
    if place.enabled:
        out.print(
            f"  λ placement: {place.first_pass_iterations}-iteration first pass, up to {place.max_added_windows} "
            f"windows added where neighbouring overlap < {place.target_overlap:g}"
        )
    out.print("  (all fields: --json; override any of them in a file with 'base: <tier>')")
