"""Protein fixtures made from the shared targets: tyk2 with a phosphothreonine, extra ions, a HETATM cofactor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: A surface threonine of tyk2 (chain A), 17 Å from the ligands: its phosphate clashes with nothing.
TPO_RESIDUE = "1106"


def _xyz(line: str) -> np.ndarray:
    return np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])])


def _atom(serial: int, name: str, residue: str, chain: str, number: str, xyz: np.ndarray, element: str) -> str:
    label = f" {name:<3}" if len(name) < 4 else name
    return (
        f"HETATM{serial:5d} {label} {residue:>3} {chain}{number:>4}    {xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}"
        f"  1.00  0.00          {element:>2}"
    )


def phosphorylated_tyk2(bench: Path, out: Path) -> Path:
    """tyk2's protein.pdb with THR 1106 made a dianionic phosphothreonine (TPO): the hydroxyl H becomes P
    (1.61 Å from OG1), three O around it (1.52 Å, tetrahedral). Written to ``out``."""
    lines = (bench / "tyk2" / "protein.pdb").read_text().splitlines()
    mine = [k for k, line in enumerate(lines) if line.startswith("ATOM") and line[17:26] == f"THR A{TPO_RESIDUE}"]
    by_name = {lines[k][12:16].strip(): k for k in mine}
    og, hg = _xyz(lines[by_name["OG1"]]), _xyz(lines[by_name["HG1"]])
    u = (hg - og) / np.linalg.norm(hg - og)
    a = np.cross(u, [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(u, a)
    p = og + 1.61 * u
    tilt = np.radians(180.0 - 109.5)
    oxygens = [
        p + 1.52 * (np.cos(tilt) * u + np.sin(tilt) * (np.cos(phi) * a + np.sin(phi) * b))
        for phi in (0.0, 2 * np.pi / 3, 4 * np.pi / 3)
    ]
    new = [
        _atom(99990 + k, name, "TPO", "A", TPO_RESIDUE, xyz, name[0])
        for k, (name, xyz) in enumerate(zip(("P", "O1P", "O2P", "O3P"), [p, *oxygens], strict=True))
    ]
    out_lines = []
    for k, line in enumerate(lines):
        if k == by_name["HG1"]:
            out_lines += new
            continue
        if k in mine:
            line = line[:17] + "TPO" + line[20:]
        out_lines.append(line)
    out.write_text("\n".join(out_lines) + "\n")
    return out


def with_extra_atoms(pdb: Path, out: Path, atoms: list[tuple[str, str, str, np.ndarray]]) -> Path:
    """``pdb`` with HETATM records (name, residue name, element, xyz Å) appended, one residue each (chain X)."""
    lines = [line for line in pdb.read_text().splitlines() if not line.startswith(("END", "CONECT"))]
    conect = [line for line in pdb.read_text().splitlines() if line.startswith("CONECT")]
    extra = [
        _atom(99900 + k, name, residue, "X", str(900 + k), xyz, element)
        for k, (name, residue, element, xyz) in enumerate(atoms)
    ]
    out.write_text("\n".join([*lines, *extra, "TER", *conect, "END"]) + "\n")
    return out


def far_point(pdb: Path, distance: float = 8.0) -> np.ndarray:
    """A point ``distance`` Å beyond the protein's extent along x (clear of every atom)."""
    xyz = np.array([_xyz(line) for line in pdb.read_text().splitlines() if line.startswith(("ATOM", "HETATM"))])
    return np.array([xyz[:, 0].max() + distance, xyz[:, 1].mean(), xyz[:, 2].mean()])
