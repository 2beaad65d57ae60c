"""3D views of a run, drawn by Mol* in the browser with no internet access.

The JavaScript is the Mol* viewer build that the ``ipymolstar`` package installs (``ipymolstar/static/
molviewspec.js``, Mol* with its MolViewSpec extension, MIT licence); it is located on disk, never imported as
Python, and sent to the page inline with the structures, so nothing is fetched from a CDN. A scene is a MolViewSpec
tree (https://molstar.org/mol-view-spec/) whose structures are blob URLs made in the page from the inlined text.

Scenes
------
- :func:`pocket_scene`: a ligand in the protein pocket (cartoon) with the residues within 5 Å as sticks;
- :func:`overlay_scene`: the two ligands of an edge overlaid, mapped atoms grey, unique atoms of A orange and of
  B purple;
- :func:`snapshot_scene`: the last saved configuration of one leg (end state 0 or K−1) from its sampler folder.
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mlfep_core import InputError

__all__ = [
    "last_snapshot_pdb",
    "ligand_pdb",
    "molstar_files",
    "overlay_scene",
    "pocket_scene",
    "snapshot_scene",
    "viewer_html",
]

UNIQUE_A, UNIQUE_B, MAPPED, LIGAND = "#f28e2b", "#9c5fb5", "#bbbbbb", "#59a14f"


def molstar_files() -> tuple[Path, Path]:
    """(JavaScript, CSS) of the installed Mol* build.

    Raises
    ------
    InputError
        ``ipymolstar`` is not installed (it comes with mlfep: ``pip install ipymolstar``).
    """
    spec = importlib.util.find_spec("ipymolstar")  # located, not imported (its Python side needs Jupyter)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the 3D viewer needs the ipymolstar package (Mol*): pip install ipymolstar")
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    js, css = static / "molviewspec.js", static / "molviewspec.css"
    if not js.is_file():
        raise InputError(f"the Mol* build is missing from {static}; reinstall ipymolstar")
    return js, css


# ------------------------------------------------------------------------------------------ structures
def ligand_pdb(molblock: str, chain: str = "L", resname: str = "LIG", first_serial: int = 1) -> str:
    """PDB HETATM records of a ligand pose (heavy atoms and hydrogens), serial numbers from ``first_serial``."""
    from rdkit import Chem

    mol = Chem.MolFromMolBlock(molblock, removeHs=False, sanitize=False)
    if mol is None:
        raise InputError("the ligand pose cannot be read")
    conf = mol.GetConformer()
    lines: list[str] = []
    counts: dict[str, int] = {}
    for atom in mol.GetAtoms():
        element = atom.GetSymbol()
        counts[element] = counts.get(element, 0) + 1
        name = f"{element}{counts[element]}"[:4]
        p = conf.GetAtomPosition(atom.GetIdx())
        serial = first_serial + atom.GetIdx()
        lines.append(
            f"HETATM{serial:5d} {name:<4} {resname:>3} {chain}{1:4d}    {p.x:8.3f}{p.y:8.3f}{p.z:8.3f}  1.00  0.00"
            f"          {element:>2}"
        )
    return "\n".join(lines) + "\n"


def _atom_records(pdb_text: str) -> list[str]:
    return [line for line in pdb_text.splitlines() if line.startswith(("ATOM  ", "HETATM"))]


def _near_residues(protein_lines: list[str], ligand_xyz: np.ndarray, cutoff: float) -> list[dict[str, Any]]:
    """(chain, residue number) of protein residues with an atom within ``cutoff`` Å of the ligand."""
    near: dict[tuple[str, int], None] = {}
    for line in protein_lines:
        try:
            xyz = np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])])
            key = (line[21].strip() or "A", int(line[22:26]))
        except ValueError:
            continue
        if np.min(np.linalg.norm(ligand_xyz - xyz, axis=1)) <= cutoff:
            near[key] = None
    return [{"auth_asym_id": chain, "auth_seq_id": number} for chain, number in near]


def _coords(pdb_lines: list[str]) -> np.ndarray:
    return np.array([[float(line[30:38]), float(line[38:46]), float(line[46:54])] for line in pdb_lines]).reshape(-1, 3)


# ----------------------------------------------------------------------------------------------- scenes
def _node(kind: str, params: dict | None = None, children: list | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"kind": kind}
    if params is not None:
        node["params"] = params
    if children:
        node["children"] = children
    return node


def _scene(structures: list[tuple[str, list[dict]]]) -> dict[str, Any]:
    """A MolViewSpec state: each (blob name, components) is downloaded from ``blob:NAME``, parsed as PDB."""
    children = [
        _node(
            "download",
            {"url": f"blob:{name}"},
            [_node("parse", {"format": "pdb"}, [_node("structure", {"type": "model"}, components)])],
        )
        for name, components in structures
    ]
    children.append(_node("canvas", {"background_color": "white"}))
    stamp = datetime.datetime.now(datetime.UTC).isoformat()
    return {"root": _node("root", None, children), "metadata": {"version": "1.4", "timestamp": stamp}}


def _sticks(
    selector: Any,
    color: str | None = None,
    colors: list[tuple[str, Any]] = (),  # type: ignore[assignment]
    focus: bool = False,
) -> dict[str, Any]:
    paint = [_node("color", {"color": color})] if color else []
    paint += [_node("color", {"color": c, "selector": s}) for c, s in colors]
    children = [_node("representation", {"type": "ball_and_stick"}, paint)]
    if focus:
        children.append(_node("focus", {}))
    return _node("component", {"selector": selector}, children)


def pocket_scene(protein_pdb: str | None, molblock: str, cutoff: float = 5.0) -> tuple[dict, dict[str, str]]:
    """The ligand in its pocket: protein cartoon, residues within ``cutoff`` Å as sticks, the ligand in green.
    Without a protein (a hydration run), the ligand alone. Returns (scene, {blob name: PDB text})."""
    ligand = ligand_pdb(molblock, chain="Z", first_serial=90000)
    ligand_lines = _atom_records(ligand)
    components = [_sticks("ligand", LIGAND, focus=True)]
    text = ligand
    if protein_pdb is not None:
        protein_lines = [line for line in _atom_records(protein_pdb) if line[17:20] not in ("HOH", "WAT")]
        near = _near_residues(protein_lines, _coords(ligand_lines), cutoff)
        text = "\n".join(protein_lines) + "\n" + ligand + "END\n"
        cartoon = _node("component", {"selector": "polymer"}, [_node("representation", {"type": "cartoon"}, [
            _node("color", {"color": "#dddddd"})])])  # fmt: skip
        components = [cartoon, *([_sticks(near)] if near else []), *components]
    return _scene([("pocket", components)]), {"pocket": text}


def overlay_scene(mapping, molblock_a: str, molblock_b: str) -> tuple[dict, dict[str, str]]:
    """Ligands A (chain A) and B (chain B) of an edge in their poses: mapped atoms grey, unique atoms of A
    orange and of B purple."""
    text_a = ligand_pdb(molblock_a, chain="A", resname="LGA", first_serial=1)
    n_a = len(_atom_records(text_a))
    text_b = ligand_pdb(molblock_b, chain="B", resname="LGB", first_serial=n_a + 1)
    n_b = len(_atom_records(text_b))
    mapped_a = {int(i) for i in mapping.mapping}
    mapped_b = {int(j) for j in mapping.mapping.values()}
    unique_a = [{"atom_id": 1 + i} for i in range(n_a) if i not in mapped_a]
    unique_b = [{"atom_id": n_a + 1 + j} for j in range(n_b) if j not in mapped_b]
    colors = [(UNIQUE_A, unique_a)] if unique_a else []
    colors += [(UNIQUE_B, unique_b)] if unique_b else []
    return _scene([("overlay", [_sticks("all", MAPPED, colors, focus=True)])]), {"overlay": text_a + text_b + "END\n"}


def last_snapshot_pdb(leg_dir: str | os.PathLike[str], state: str = "first") -> tuple[str, int]:
    """The last saved configuration of one leg as PDB text (the hybrid's ``topology.pdb`` with the coordinates of
    the last frame of end state 0, or K−1 for ``state='last'``) and its iteration.

    Raises
    ------
    InputError
        The leg has no saved configuration yet.
    """
    from mdtraj.formats import XTCTrajectoryFile

    leg_dir = Path(leg_dir)
    topology = leg_dir / "hybrid" / "topology.pdb"
    snapshots = sorted((leg_dir / "sampler" / "snapshots").glob("state*_*.xtc"))
    if not topology.is_file() or not snapshots:
        raise InputError(f"{leg_dir.parent.parent.name} {leg_dir.name}: no configuration saved yet")
    numbers = sorted({int(p.name[5:].split("_")[0]) for p in snapshots})
    wanted = numbers[0] if state == "first" else numbers[-1]
    files = sorted(p for p in snapshots if int(p.name[5:].split("_")[0]) == wanted)
    with XTCTrajectoryFile(str(files[-1])) as handle:
        xyz, _, step, _ = handle.read()
    if len(xyz) == 0:
        raise InputError(f"{files[-1].name}: no frame")
    frame = xyz[-1] * 10.0  # nm -> Å
    lines, k = [], 0
    for line in topology.read_text().splitlines():
        if line.startswith(("ATOM  ", "HETATM")) and k < len(frame):
            x, y, z = frame[k]
            line = f"{line[:30]}{x:8.3f}{y:8.3f}{z:8.3f}{line[54:]}"
            k += 1
        lines.append(line)
    return "\n".join(lines) + "\n", int(step[-1]) if len(step) else 0


def snapshot_scene(pdb_text: str) -> tuple[dict, dict[str, str]]:
    """A leg's configuration: protein cartoon (if any), the hybrid ligand in green, waters within reach hidden."""
    cartoon = _node("component", {"selector": "polymer"}, [_node("representation", {"type": "cartoon"}, [
        _node("color", {"color": "#dddddd"})])])  # fmt: skip
    return _scene([("snapshot", [cartoon, _sticks("ligand", LIGAND, focus=True)])]), {"snapshot": pdb_text}


# ------------------------------------------------------------------------------------------------- html
_PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>%(css)s
html,body{margin:0;padding:0;background:white;} #viewer{position:relative;width:100%%;height:%(height)dpx;}</style>
</head><body><div id="viewer"></div>
<script id="mlfep-molstar" type="application/octet-stream">%(js)s</script>
<script id="mlfep-data" type="application/json">%(data)s</script>
<script type="module">
const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const js = bytes(document.getElementById("mlfep-molstar").textContent.trim());
const data = JSON.parse(document.getElementById("mlfep-data").textContent);
let scene = JSON.stringify(data.scene);
for (const [name, text] of Object.entries(data.files)) {
  const url = URL.createObjectURL(new Blob([text], {type: "chemical/x-pdb"}));
  scene = scene.split(JSON.stringify("blob:" + name)).join(JSON.stringify(url));
}
const values = {width: "100%%", height: "%(height)dpx", msvj_data: scene,
  viewer_options: {layoutIsExpanded: false, layoutShowControls: false, viewportShowExpand: false},
  mvs_load_options: {replaceExisting: true, sanityChecks: true}};
const model = {get: (key) => values[key], on: () => {}, off: () => {}};
const module = await import(URL.createObjectURL(new Blob([js], {type: "text/javascript"})));
module.default.render({model, el: document.getElementById("viewer")});
</script></body></html>"""


def viewer_html(scene: dict, files: dict[str, str], height: int = 480) -> str:
    """A self-contained HTML page that draws ``scene`` with the installed Mol* build (no network needed)."""
    js, css = molstar_files()
    return _PAGE % {
        "css": css.read_text(encoding="utf-8"),
        "js": base64.b64encode(js.read_bytes()).decode(),
        "data": json.dumps({"scene": scene, "files": files}).replace("</", "<\\/"),
        "height": height,
    }
