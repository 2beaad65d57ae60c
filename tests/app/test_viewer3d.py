"""app.viewer3d: the MolViewSpec scenes and the self-contained viewer page (the browser test draws them)."""

from __future__ import annotations

import json
import re

from app import viewer3d


def _nodes(node):
    yield node
    for child in node.get("children", []):
        yield from _nodes(child)


def test_pocket_scene_shows_the_residues_near_the_ligand(bench):
    from ligand_prep.io import read_ligands

    ligand = read_ligands(bench / "tyk2" / "ligands.sdf")[0]
    protein = (bench / "tyk2" / "protein.pdb").read_text()
    scene, files = viewer3d.pocket_scene(protein, ligand.molblock)
    selectors = [n["params"]["selector"] for n in _nodes(scene["root"]) if n["kind"] == "component"]
    near = next(s for s in selectors if isinstance(s, list))
    assert 8 <= len(near) <= 60  # a pocket, not the protein
    assert {"polymer", "ligand"} <= {s for s in selectors if isinstance(s, str)}
    assert any(n["kind"] == "focus" for n in _nodes(scene["root"]))
    assert "LIG" in files["pocket"] and files["pocket"].rstrip().endswith("END")


def test_overlay_marks_exactly_the_unique_atoms(bench):
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings, MCSMapper

    a, b = read_ligands(bench / "tyk2" / "ligands.sdf")[:2]
    mapping = MCSMapper(MappingSettings()).map(a, b)
    scene, files = viewer3d.overlay_scene(mapping, a.molblock, b.molblock)
    colors = {n["params"]["color"]: n["params"]["selector"] for n in _nodes(scene["root"]) if n["kind"] == "color"
              and "selector" in n["params"]}  # fmt: skip
    n_a = files["overlay"].count(" LGA ")
    n_b = files["overlay"].count(" LGB ")
    assert len(colors.get(viewer3d.UNIQUE_A, [])) == n_a - len(mapping.mapping)
    assert len(colors.get(viewer3d.UNIQUE_B, [])) == n_b - len(mapping.mapping)


def test_viewer_page_carries_its_javascript_and_fetches_nothing():
    scene = {"root": {"kind": "root"}, "metadata": {"version": "1.4"}}
    html = viewer3d.viewer_html(scene, {"x": "ATOM  </script>"})
    js, _ = viewer3d.molstar_files()
    assert len(html) > js.stat().st_size  # the Mol* build is inside the page (base64)
    assert not re.search(r"<script[^>]+src=", html) and "cdn." not in html.split("mlfep-molstar")[0]
    data = html.split('<script id="mlfep-data" type="application/json">')[1].split("</script>")[0]
    assert json.loads(data.replace("<\\/", "</"))["files"]["x"] == "ATOM  </script>"  # escaped, not cut short
