"""New run page: upload a protein and a ligand series, see per-ligand validation, the planned network (click an
edge for its mapping), edit it, choose the run's name and protocol, see the cost, and launch ``fep run``
(detached: it survives the browser).

What runs is what the page shows when Launch is pressed: the run name, protocol and ligand force field are read
at that moment (they sit outside the inputs form), and validating again with unchanged inputs keeps the edited
network.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from app import figures, launch, ui
from app.data import mol_image_uri
from mlfep_core import InputError, MlfepError

TIERS = ["smoke", "fast", "default", "production"]
#: A launch expected to take longer than this on this machine asks for confirmation first.
CONFIRM_ABOVE_H = 12.0

st.title("New run")
root = ui.runs_root()
state = st.session_state
if "staging_cleaned" not in state:  # once per session: upload folders of abandoned pages
    state["staging_cleaned"] = launch.clean_staging(root)
gpu = launch.has_gpu()


def _staging() -> Path:
    """This page's upload folder (created on first use)."""
    folder = state.get("staging")
    if not folder or not Path(folder).is_dir():
        root.mkdir(parents=True, exist_ok=True)
        folder = tempfile.mkdtemp(prefix=".upload-", dir=root)
        state["staging"] = folder
    return Path(folder)


def _say(err: Exception) -> str:
    """An error in the user's terms: their file names, no upload folder, no command-line options."""
    return launch.user_message(str(err), state.get("shown_names", {}), [state.get("staging") or "/nonexistent"])


def _save(kind: str, upload) -> Path | None:
    if upload is None:
        return None
    folder = _staging() / kind
    folder.mkdir(exist_ok=True)
    path = launch.save_upload(kind, upload.name, upload.getvalue(), folder)
    state.setdefault("shown_names", {})[str(path)] = upload.name
    return path


# ------------------------------------------------------------------------------------------ run settings
st.subheader("Run")
cols = st.columns(3)
with cols[0]:
    name = st.text_input("Run name", key="run_name", help="Folder name under the runs folder.")
    ligand_ff = st.selectbox(
        "Ligand force field",
        ["sage", "ani2x-torsions", "ani2x-endpoint"],
        key="ligand_ff",
        help="sage: plain OpenFF Sage (measured best so far, the default). ani2x-torsions: every rotatable torsion "
        "refitted to an ANI-2x scan, used in every window. ani2x-endpoint: an ANI-2x/MM correction per ligand, "
        "shown next to MM.",
    )
with cols[1]:
    tier = st.selectbox(
        "Protocol",
        TIERS,
        index=TIERS.index("default") if gpu else TIERS.index("smoke"),
        key="tier",
        help="smoke: proves the pipeline in minutes (numbers meaningless). fast: CPU-sized hydration free energies. "
        "default: GPU binding free energies (11-12 windows x 5 ns, 3 repeats). production: longer, more windows.",
    )
    protocol_file = st.file_uploader(
        "or a protocol file (JSON/YAML)", type=["json", "yaml", "yml"], key="protocol_file", max_upload_size=200
    )
with cols[2]:
    if not gpu:
        st.info(
            "No GPU on this machine: the **default** and **production** protocols are sized for a GPU and take "
            "days to years here (the cost below says how long). **smoke** runs in minutes."
        )

protocol = None
protocol_label = tier
try:
    from fep.protocol import load_protocol

    if protocol_file is not None:
        with tempfile.TemporaryDirectory(prefix="mlfep-protocol-") as tmp:
            checked = launch.save_upload("protocol", protocol_file.name, protocol_file.getvalue(), tmp)
            try:
                protocol = launch.check_protocol(checked)
            except MlfepError as err:
                raise InputError(launch.user_message(str(err), {str(checked): protocol_file.name}, [tmp])) from None
        protocol_label = f"{protocol.name} (from {protocol_file.name})"
    else:
        protocol = load_protocol(tier)
    st.caption(f"This run will use the protocol **{protocol_label}**.")
except MlfepError as err:
    st.error(_say(err))
if not gpu and protocol is not None and protocol_file is None and tier in ("default", "production"):
    st.warning(f"The **{tier}** protocol is meant for a GPU, and this machine has none: see the cost below.")

# ---------------------------------------------------------------------------------------------- inputs
st.subheader("Inputs")
with st.form("inputs"):
    form_cols = st.columns(2)
    with form_cols[0]:
        mode = st.radio("Mode", ["binding", "hydration"], key="mode", horizontal=True)
    with form_cols[1]:
        planner = st.selectbox("Network", ["mst", "redundant", "star"], key="planner")
    limits = launch.UPLOAD_LIMITS
    ligand_file = st.file_uploader(
        f"Ligands: SDF (3D, explicit H) or CSV with columns name,smiles (up to {limits['ligands'] // 10**6} MB)",
        type=["sdf", "sd", "csv", "smi"],
        key="ligand_file",
        max_upload_size=200,  # larger files reach the page, which says what the limit is
    )
    pair = st.columns(2)
    with pair[0]:
        protein_file = st.file_uploader(
            f"Protein PDB (binding mode, up to {limits['protein'] // 10**6} MB)",
            type=["pdb"],
            key="protein_file",
            max_upload_size=200,
        )
    with pair[1]:
        reference_file = st.file_uploader(
            f"Reference pose SDF (for SMILES input, up to {limits['reference'] // 10**6} MB)",
            type=["sdf", "sd", "mol"],
            key="reference_file",
            max_upload_size=200,
        )
    cofactor_files = st.file_uploader(
        "Cofactors (binding mode, optional): one SDF per bound molecule that stays in the complex, e.g. ADP or a "
        "heme; 3D in the protein's frame, with all its hydrogens",
        type=["sdf", "sd", "mol"],
        key="cofactor_files",
        accept_multiple_files=True,
        max_upload_size=200,
    )
    submitted = st.form_submit_button("Validate and plan")


def _validate() -> None:
    """Check the uploads, validate every ligand and plan the network (or keep the edited one: same inputs)."""
    if ligand_file is None:
        raise InputError("upload a ligand file (SDF or CSV of SMILES) first")
    if mode == "binding" and protein_file is None:
        raise InputError("binding mode needs a protein PDB: upload one, or choose hydration")
    protein_upload = protein_file if mode == "binding" else None
    cofactor_uploads = list(cofactor_files or []) if mode == "binding" else []
    fingerprint = launch.inputs_fingerprint(
        mode,
        planner,
        *((f.name, f.getvalue()) if f is not None else None for f in (ligand_file, protein_upload, reference_file)),
        *((f.name, f.getvalue()) for f in cofactor_uploads),
    )
    if fingerprint == state.get("fingerprint") and state.get("network") is not None:
        state["kept"] = "The inputs are unchanged: the planned network and your edits are kept."
        return
    for key in ("network", "checks", "ligands", "launched", "fingerprint", "kept", "protein_checked", "cofactors"):
        state.pop(key, None)
    (_staging() / "ligands").mkdir(exist_ok=True)
    ligands_path = launch.save_upload("ligands", ligand_file.name, ligand_file.getvalue(), _staging() / "ligands")
    shown = state.setdefault("shown_names", {})
    shown[str(ligands_path)] = shown[str(ligands_path.parent / f"_validated{ligands_path.suffix}")] = ligand_file.name
    protein_path = _save("protein", protein_upload)
    reference_path = _save("reference", reference_file)
    state["protein_path"] = str(protein_path) if protein_path else None
    state["protein_name"] = protein_upload.name if protein_upload is not None else None
    if protein_path is not None and protein_upload is not None:
        with st.spinner(f"checking {protein_upload.name} against the force field ..."):
            launch.check_pdb(protein_path, display_name=protein_upload.name, protocol=protocol)
        state["protein_checked"] = protocol.system.model_dump_json() if protocol is not None else None
    with st.spinner(f"reading and validating the ligands of {ligand_file.name} ..."):
        ligands, checks = launch.read_series(
            ligands_path,
            reference=reference_path,
            protein=protein_path,
            display_name=ligand_file.name,
            align=mode == "binding",  # a hydration series is mapped on topology: no common frame needed
        )
    state["checks"], state["ligands"] = checks, ligands
    if len(ligands) < 2:
        return  # the validation section says why nothing was planned
    if cofactor_uploads:
        paths = []
        for k, upload in enumerate(cofactor_uploads):
            folder = _staging() / "cofactors" / str(k)
            folder.mkdir(parents=True, exist_ok=True)
            saved = launch.save_upload("cofactor", upload.name, upload.getvalue(), folder)
            path = saved.rename(folder / launch.safe_file_name(upload.name, f"cofactor{k}.sdf"))
            state.setdefault("shown_names", {})[str(path)] = upload.name
            paths.append(str(path))
        with st.spinner("checking the cofactors ..."):
            launch.check_cofactors(paths, ligands, state.get("shown_names"))
        state["cofactors"] = paths
    bar = st.empty()

    def _progress(done: int, total: int, message: str) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=message)

    try:
        network = launch.plan(
            ligands,
            mode=mode,
            planner=planner,
            protein=str(protein_path) if protein_path else None,
            progress=_progress,
        )
    finally:
        bar.empty()
    state["network"], state["fingerprint"] = network, fingerprint


if submitted:
    try:
        _validate()
    except MlfepError as err:
        st.error(_say(err))
        state.pop("network", None)
        state.pop("fingerprint", None)
if state.pop("kept", None):
    st.info("The inputs are unchanged: the planned network and your edits are kept.")

validation: list | None = state.get("checks")
if validation:
    bad = [c for c in validation if not c.ok]
    n_good = len(validation) - len(bad)
    st.subheader("Ligand validation")
    if not bad:
        st.success(f"all {len(validation)} ligands are valid")
    elif n_good >= 2:
        st.warning(f"{len(bad)} of {len(validation)} ligand(s) were rejected; the other {n_good} are planned below.")
    else:
        st.error(
            f"{len(bad)} of {len(validation)} ligand(s) were rejected, leaving {n_good}: a network needs at least two "
            "valid ligands, so nothing was planned. Fix the records below and validate again."
        )
    for check in bad:
        st.error(_say(Exception(check.message)))
    by_name = {lig.name: lig for lig in state.get("ligands") or ()}
    with st.expander("every ligand"):
        st.dataframe(
            [
                {
                    "record": c.record,
                    "structure": mol_image_uri(by_name[c.ligand].smiles) if c.ligand in by_name else None,
                    "ligand": c.ligand,
                    "experimental ΔG (kcal/mol)": getattr(
                        getattr(by_name.get(c.ligand), "experimental", None), "dg_kcal_mol", None
                    ),
                    "valid": "yes" if c.ok else "no",
                    "message": "" if c.ok else _say(Exception(c.message)),
                }
                for c in validation
            ],
            hide_index=True,
            placeholder="",  # missing values as empty cells, not "None"
            key="checks_table",
            row_height=60,
            column_config={
                "structure": st.column_config.ImageColumn("structure"),
                "experimental ΔG (kcal/mol)": st.column_config.NumberColumn(format="%.2f"),
            },
        )

network = state.get("network")
if network is None:
    st.stop()

# ------------------------------------------------------------------------------------------- the network
st.subheader("Planned network")
st.caption(f"{len(network.ligands)} ligands, {len(network.edges)} edges, planner {network.planner}")
if state.get("cofactors"):
    shown_names = state.get("shown_names", {})
    st.caption(
        "Cofactors in the complex leg: " + ", ".join(shown_names.get(c, Path(c).name) for c in state["cofactors"])
    )
charged = [e for e in network.edges if e.charge_change]
if charged:
    st.info(
        f"{len(charged)} charge-changing edge(s) ({', '.join(e.key for e in charged[:4])}"
        f"{', ...' if len(charged) > 4 else ''}): each runs with an alchemical counter-ion, more λ windows and "
        "longer sampling, and without the ML correction. Changes of more than one charge cannot run: remove such "
        "edges or connect the ligands through an intermediate."
    )
keys = [e.key for e in network.edges]
event = st.altair_chart(figures.network_chart(network), key="plan_chart", on_select="rerun", selection_mode="edge")
clicked = [p.get("key") for p in (event.selection.get("edge", []) if event else []) if p.get("key") in keys]
if clicked and state.get("last_clicked_edge") != clicked[0]:  # a new click on the graph picks that edge
    state["edge_pick_plan"] = state["last_clicked_edge"] = clicked[0]
if "edge_pick_next" in state:  # set by an edit (the widget's own key cannot change after it is drawn)
    state["edge_pick_plan"] = state.pop("edge_pick_next")
if state.get("edge_pick_plan") not in keys:
    state["edge_pick_plan"] = keys[0]
edge_key = st.selectbox("Mapping of edge", keys, key="edge_pick_plan")
mapping = next(e for e in network.edges if e.key == edge_key)
with tempfile.TemporaryDirectory() as tmp:
    from ligand_prep.depict import depict_mapping

    try:
        png = depict_mapping(
            mapping, network.ligand(mapping.ligand_a), network.ligand(mapping.ligand_b), Path(tmp) / "m.png"
        ).read_bytes()
        st.image(png, caption=f"{mapping.key}: score {mapping.score:.2f}, {len(mapping.mapping)} mapped atoms")
    except MlfepError as err:
        st.error(_say(err))
for warning in mapping.warnings:
    st.warning(f"{mapping.key}: {warning}")

st.subheader("Edit the network")
edit_cols = st.columns(2)
with edit_cols[0]:
    remove = st.multiselect("Remove edges", keys, key="remove_edges")
    if st.button("Remove", key="remove_button", disabled=not remove):
        try:
            state["network"] = launch.remove_edges(network, remove)
            state.pop("remove_edges", None)
            st.rerun()
        except MlfepError as err:
            st.error(_say(err))
with edit_cols[1]:
    names = [lig.name for lig in network.ligands]
    pair = st.columns(2)
    a = pair[0].selectbox("Add edge from", names, key="add_a")
    b = pair[1].selectbox("to", names, index=min(1, len(names) - 1), key="add_b")
    if st.button("Add edge", key="add_button"):
        try:
            with st.spinner(f"mapping {a} → {b} ..."):
                state["network"] = launch.add_edge(network, a, b)
            state["edge_pick_next"] = state["network"].edges[-1].key  # show the new edge's mapping
            st.rerun()
        except MlfepError as err:
            st.error(_say(err))
cut = launch.disconnected(network)
if cut:
    st.warning(f"not connected to the rest of the network (no ΔG for them): {', '.join(cut)}")

# ------------------------------------------------------------------------------------------------- cost
st.subheader("Cost")
if protocol is None:
    st.error("Choose a protocol above (the uploaded protocol file cannot be used).")
    st.stop()
cost = launch.cost_estimate(network, protocol, protein=state.get("protein_path"))
st.write(
    f"{cost['edges']} edges × {cost['legs']} legs × {cost['repeats']} repeat(s) × {cost['windows']} windows × "
    f"{cost['ns_per_window']:g} ns = **{cost['total_ns']:.3g} ns** of sampling (protocol **{protocol.name}**)"
)
estimate = cost["estimate"]
hours = None
if estimate is not None:
    hours = launch.wall_hours(estimate, gpu)
    where = "on this machine's GPU" if gpu else f"on this machine's {launch.cpu_cores()} CPU cores"
    st.write(
        f"Estimated **{launch.readable_number(estimate.gpu_hours)} GPU-hours** or "
        f"**{launch.readable_number(estimate.cpu_core_hours)} CPU core-hours**: about "
        f"**{launch.readable_duration(hours)}** {where} if the run has them to itself. This counts the MD of "
        "equilibration and production: building the systems, ligand charges and the analysis come on top (minutes "
        "per ligand and leg), so short protocols such as smoke take longer than this."
    )
    with st.expander("per edge and leg"):
        st.dataframe(
            [
                {
                    "edge": e.edge,
                    "leg": leg.leg,
                    "atoms": leg.n_atoms,
                    "GPU h": round(leg.gpu_hours, 3),
                    "CPU core-h": round(leg.cpu_core_hours, 3),
                }
                for e in estimate.edges
                for leg in e.legs
            ],
            hide_index=True,
            placeholder="",  # missing values as empty cells, not "None"
            key="cost_table",
        )
        st.caption(estimate.model)

# ----------------------------------------------------------------------------------------------- launch
st.subheader("Launch")
launched = state.get("launched")
if launched:
    st.success(
        f"run **{launched['name']}** started with protocol **{launched['protocol']}** (process {launched['pid']}); "
        "it keeps running if you close the browser."
    )
    ui.link("progress", f"Follow {launched['name']} on the Progress page", launched["name"])
    st.stop()
big = hours is not None and hours > CONFIRM_ABOVE_H
confirmed = True
if big:
    confirmed = st.checkbox(
        f"I understand that this run takes about {launch.readable_duration(hours or 0.0)} on this machine",
        key="confirm_big",
    )
st.caption(f"Launches **{name.strip() or '(no name yet)'}** with protocol **{protocol_label}**, ligand force field "
           f"**{ligand_ff}**, {len(network.edges)} edge(s).")  # fmt: skip
if st.button("Launch run", type="primary", key="launch_button", disabled=not confirmed):
    try:
        protein = state.get("protein_path")
        if protein and state.get("protein_checked") != protocol.system.model_dump_json():  # protocol changed since
            launch.check_pdb(protein, display_name=state.get("protein_name"), protocol=protocol)
        run_dir = launch.new_run_dir(root, name or "")
        inputs = run_dir / "inputs"
        inputs.mkdir()
        if protein:
            kept = inputs / launch.safe_file_name(state.get("protein_name") or "protein.pdb", "protein.pdb")
            protein = str(shutil.copy(protein, kept))
            network = network.model_copy(update={"protein": protein})
        if state.get("cofactors"):  # fep run takes them from the network (and run.json keeps them for a resume)
            copies = [str(shutil.copy(path, inputs / Path(path).name)) for path in state["cofactors"]]
            network = network.model_copy(update={"cofactors": tuple(copies)})
        protocol_arg = tier
        if protocol_file is not None:
            kept = inputs / launch.safe_file_name(protocol_file.name, "protocol.json")
            protocol_arg = str(launch.save_upload("protocol", protocol_file.name, protocol_file.getvalue(), inputs))
            protocol_arg = str(Path(protocol_arg).rename(kept))
        record = launch.launch_run(run_dir, network, protocol=protocol_arg, protein=protein, ligand_ff=ligand_ff)
        state["launched"] = {"name": run_dir.name, "pid": record["pid"], "protocol": record["protocol"]}
        staging = state.pop("staging", None)
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        for key in ("protein_path", "fingerprint"):
            state.pop(key, None)
        st.rerun()
    except MlfepError as err:
        st.error(_say(err))
