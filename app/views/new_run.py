"""New run page: upload a protein and a ligand series, see per-ligand validation, the planned network (click an
edge for its mapping), edit it, see the cost, and launch ``fep run`` (detached: it survives the browser)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from app import figures, launch, ui
from mlfep_core import InputError, MlfepError

st.title("New run")
root = ui.runs_root()
state = st.session_state
if "staging_cleaned" not in state:  # once per session: upload folders of abandoned pages
    state["staging_cleaned"] = launch.clean_staging(root)

with st.form("inputs"):
    cols = st.columns(3)
    with cols[0]:
        name = st.text_input("Run name", key="run_name", help="Folder name under the runs folder.")
        mode = st.radio("Mode", ["binding", "hydration"], key="mode", horizontal=True)
    with cols[1]:
        tier = st.selectbox("Protocol", ["smoke", "fast", "default", "production"], index=2, key="tier")
        protocol_file = st.file_uploader(
            "or a protocol file (JSON/YAML)", type=["json", "yaml", "yml"], key="protocol_file", max_upload_size=1
        )
    with cols[2]:
        planner = st.selectbox("Network", ["mst", "redundant", "star"], key="planner")
        ligand_ff = st.selectbox(
            "Ligand force field",
            ["sage", "ani2x-torsions", "ani2x-endpoint"],
            key="ligand_ff",
            help="sage: plain OpenFF Sage (measured best so far, the default). ani2x-torsions: every rotatable torsion "
            "refitted to an ANI-2x scan, used in every window. ani2x-endpoint: an ANI-2x/MM correction per ligand, "
            "shown next to MM.",
        )
    ligand_file = st.file_uploader(
        "Ligands: SDF (3D, explicit H) or CSV with columns name,smiles",
        type=["sdf", "sd", "csv", "smi"],
        key="ligand_file",
        max_upload_size=20,
    )
    pair = st.columns(2)
    with pair[0]:
        protein_file = st.file_uploader(
            "Protein PDB (binding mode)", type=["pdb"], key="protein_file", max_upload_size=50
        )
    with pair[1]:
        reference_file = st.file_uploader(
            "Reference pose SDF (for SMILES input)", type=["sdf", "sd", "mol"], key="reference_file", max_upload_size=2
        )
    submitted = st.form_submit_button("Validate and plan")


def _show_progress(bar, done: int, total: int, message: str) -> None:
    bar.progress(min(1.0, done / max(total, 1)), text=message)


def _save(kind: str, upload, folder: Path) -> Path | None:
    if upload is None:
        return None
    return launch.save_upload(kind, upload.name, upload.getvalue(), folder)


if submitted:
    old = state.get("staging")
    if old:
        shutil.rmtree(old, ignore_errors=True)
    for key in ("network", "checks", "staging", "launched"):
        state.pop(key, None)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=root))
    state["staging"] = str(staging)
    try:
        if ligand_file is None:
            raise InputError("upload a ligand file (SDF or CSV of SMILES) first")
        if mode == "binding" and protein_file is None:
            raise InputError("binding mode needs a protein PDB: upload one, or choose hydration")
        ligands_path = launch.save_upload("ligands", ligand_file.name, ligand_file.getvalue(), staging)
        protein_path = _save("protein", protein_file, staging) if mode == "binding" else None
        reference_path = _save("reference", reference_file, staging)
        protocol_path = _save("protocol", protocol_file, staging)
        chosen = launch.check_protocol(protocol_path) if protocol_path is not None else None
        if protein_path is not None and protein_file is not None:
            with st.spinner("checking the protein against the force field ..."):
                launch.check_pdb(protein_path, display_name=protein_file.name, protocol=chosen)
        state["protocol_arg"] = str(protocol_path) if protocol_path else tier
        state["protein_path"] = str(protein_path) if protein_path else None
        with st.spinner("reading and validating the ligands ..."):
            ligands, checks = launch.read_series(
                ligands_path,
                reference=reference_path,
                protein=protein_path,
                display_name=ligand_file.name,
                align=mode == "binding",  # a hydration series is mapped on topology: no common frame needed
            )
        state["checks"] = checks
        bar = st.progress(0.0, text="mapping ligand pairs ...")
        network = launch.plan(
            ligands,
            mode=mode,
            planner=planner,
            protein=str(protein_path) if protein_path else None,
            progress=lambda done, total, msg: _show_progress(bar, done, total, msg),
        )
        bar.empty()
        state["network"] = network
    except MlfepError as err:
        st.error(str(err))
        shutil.rmtree(staging, ignore_errors=True)
        state.pop("staging", None)

validation: list | None = state.get("checks")
if validation:
    bad = [c for c in validation if not c.ok]
    st.subheader("Ligand validation")
    if bad:
        st.warning(f"{len(bad)} of {len(validation)} ligand(s) were rejected; the others are planned below.")
        for check in bad:
            st.error(check.message)
    else:
        st.success(f"all {len(validation)} ligands are valid")
    with st.expander("every ligand"):
        st.dataframe([vars(c) for c in validation], hide_index=True, key="checks_table")

network = state.get("network")
if network is None:
    st.stop()

st.subheader("Planned network")
st.caption(f"{len(network.ligands)} ligands, {len(network.edges)} edges, planner {network.planner}")
keys = [e.key for e in network.edges]
event = st.altair_chart(figures.network_chart(network), key="plan_chart", on_select="rerun", selection_mode="edge")
clicked = [p.get("key") for p in (event.selection.get("edge", []) if event else []) if p.get("key") in keys]
if clicked and state.get("last_clicked_edge") != clicked[0]:  # a new click on the graph picks that edge
    state["edge_pick_plan"] = state["last_clicked_edge"] = clicked[0]
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
        st.error(str(err))
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
            st.error(str(err))
with edit_cols[1]:
    names = [lig.name for lig in network.ligands]
    pair = st.columns(2)
    a = pair[0].selectbox("Add edge from", names, key="add_a")
    b = pair[1].selectbox("to", names, index=min(1, len(names) - 1), key="add_b")
    if st.button("Add edge", key="add_button"):
        try:
            with st.spinner(f"mapping {a} → {b} ..."):
                state["network"] = launch.add_edge(network, a, b)
            st.rerun()
        except MlfepError as err:
            st.error(str(err))
cut = launch.disconnected(network)
if cut:
    st.warning(f"not connected to the rest of the network (no ΔG for them): {', '.join(cut)}")

st.subheader("Cost")
try:
    from fep.protocol import load_protocol

    protocol = load_protocol(state.get("protocol_arg", tier))
    cost = launch.cost_estimate(network, protocol, protein=state.get("protein_path"))
    st.write(
        f"{cost['edges']} edges × {cost['legs']} legs × {cost['repeats']} repeat(s) × {cost['windows']} windows × "
        f"{cost['ns_per_window']:g} ns = **{cost['total_ns']:.3g} ns** of sampling (protocol '{protocol.name}')"
    )
    estimate = cost["estimate"]
    if estimate is not None:
        st.write(
            f"Estimated **{estimate.gpu_hours:.3g} GPU-hours** or **{estimate.cpu_core_hours:.3g} CPU core-hours**"
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
                key="cost_table",
            )
            st.caption(estimate.model)
except MlfepError as err:
    st.error(str(err))
    st.stop()

st.subheader("Launch")
launched = state.get("launched")
if launched:
    st.success(
        f"run **{launched['name']}** started (pid {launched['pid']}); it keeps running if you close the browser."
    )
    ui.link("progress", f"Follow {launched['name']} on the Progress page", launched["name"])
    st.stop()
if st.button("Launch run", type="primary", key="launch_button"):
    try:
        run_dir = launch.new_run_dir(root, name or "")
        inputs = run_dir / "inputs"
        inputs.mkdir()
        protein = state.get("protein_path")
        if protein:
            protein = str(shutil.copy(protein, inputs / "protein.pdb"))
            network = network.model_copy(update={"protein": protein})
        protocol_arg = state.get("protocol_arg", tier)
        if Path(protocol_arg).is_file():
            protocol_arg = str(shutil.copy(protocol_arg, inputs / Path(protocol_arg).name))
        record = launch.launch_run(run_dir, network, protocol=protocol_arg, protein=protein, ligand_ff=ligand_ff)
        state["launched"] = {"name": run_dir.name, "pid": record["pid"]}
        state["protocol_arg"], state["protein_path"] = protocol_arg, protein  # the staging copies go next
        staging = state.pop("staging", None)
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        st.rerun()
    except MlfepError as err:
        st.error(str(err))
