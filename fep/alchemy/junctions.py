"""Dummy-atom junctions (Fleck, Wieder & Boresch, JCTC 17, 4403 (2021)): which valence terms keep a dummy group
attached at its dummy end, and which are switched off there.

At state A the unique atoms of B are dummies (and vice versa). Their valence terms come from system B. A term
that involves dummies only, or dummies and one physical atom, moves the dummies relative to each other and to
that atom only. A *mixed* term that also involves further physical atoms can couple the dummies' partition
function to the physical geometry (a second angle at the junction depends on the physical angle between the two
frame atoms, a second dihedral on the physical torsion between the two references): then the dummies bias the
end state, by up to about kT in Fleck's examples, and the bias does not cancel between legs.

The rule here makes the dummies' contribution a constant factor up to terms that cancel between environments:
place every dummy atom as in a Z-matrix, by one bond, one angle and one dihedral to atoms placed before it, with
the physical atoms restricted to one rigid frame per junction, and keep the other angles at the junction atom, so
that the dummy has one well and no free rotation at its end state (see the last point):

* **groups and anchors**: dummy groups are the connected components of the dummies; a group bonded to the physical
  part through several junction bonds (a ring that opens, a group on two anchors) keeps its *primary* junction
  (the bridge atom with the most physical neighbours, then the lowest index); every term that runs through a
  secondary junction bond is switched off at the dummy end.
* **the frame** of a bridge atom X: X, its physical neighbour p1 (heavy first, then best anchored, then lowest
  index) and a reference r for the rotation about X–p1: a physical neighbour q of p1 when X–p1 is not rotatable
  (in a ring or a multiple bond: the dihedral d–X–p1–q), else an improper term over {d, X, p1, p2} when the force
  field has one at X. Otherwise there is no reference, and no dihedral spans the rotatable bond X–p1: the group
  turns with X's other substituents (the angles below) or, where X has no other physical neighbour, freely (a
  constant factor 2π in its partition function).
* **kept mixed terms**: the primary junction bond; angles whose only physical atom is X, and every d–X–p; dihedrals
  whose only physical atom is X, d′–d–X–p1, and d–X–p1–q (or the improper over {d, X, p1, p2}) for the reference.
  Terms that join dummies of groups on different bridges are switched off as well.
* **one well**: a force-field reference term is n-fold (2-fold for a dihedral across an aromatic bond or an
  improper), so bond + angle d–X–p1 + reference leave the dummy n positions of equal energy; on an aromatic ring
  the second one lies on the bond to X's other ring neighbour. The dummy end allows it, the next λ window does not
  (the switched angle d–X–p2 is back at 10 %), so a replica that falls in there has no overlap with its neighbour
  (seen: a benzene -> toluene vacuum leg, ΔG 5 kcal/mol off with σ 9.5). Where the frame has a reference, every
  angle d–X–p to a physical neighbour p of X is therefore kept too. That couples the dummy to the physical angles
  at X, which in a rigid or planar frame are stiff: for an aromatic C-H the two angles act on the ring angle
  p1–X–p2 as one extra harmonic term of half an angle's force constant (~140 kJ/mol/rad² against the ring's own
  ~600 and the ring closure), a free-energy change of ~0.06 kcal/mol that is the same in every environment, so it
  cancels from ΔΔG to far below the statistical error. A freely rotating junction (no reference) keeps every
  d–X–p as well: with d–X–p1 alone the dummy turned freely about X–p1 at its end state, while at the next window
  the switched angles (10 %) held it near its tetrahedral site, and the last neighbour overlap was poor (seen:
  toluene -> ethylbenzene vacuum, overlap 0.018 between the last two windows, repeats 2.43 ± 0.41 and 0.48 ±
  1.01). The angles, all centred on X, leave the rotation about X–p1 to the physical rotor (the dummy turns
  with X's other substituents), so still no kept term spans a rotatable bond; their coupling to X's own stiff
  angles is the same in every environment, as for the aromatic case.

Switched-off terms are not lost: they scale with ``lambda_bonded`` (full at the end state where their atoms are
physical, zero at the dummy end), so each end state of the hybrid is exactly the plain system plus the kept dummy
terms, which is what ``fep check`` compares (:mod:`fep.alchemy.check` builds its reference from the same kept set).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Junction", "switched_dummy_terms"]

Term = tuple[tuple[int, ...], tuple]


@dataclass(frozen=True)
class Junction:
    """One dummy group's attachment: its atoms, primary junction, frame and the junction bonds it gives up."""

    dummies: tuple[int, ...]
    bridge: int
    frame: tuple[int, ...]  # (X, p1) or (X, p1, reference); (X,) when X has no physical neighbour
    secondary: tuple[tuple[int, int], ...]

    def describe(self, label: str) -> str:
        """e.g. 'B dummies 23,24 on bridge 5, frame 5-6-7, second anchors: 9-24'."""
        text = f"{label} dummies {','.join(map(str, self.dummies))} on bridge {self.bridge}, frame "
        text += "-".join(map(str, self.frame))
        if self.secondary:
            text += ", second anchors switched off: " + ", ".join(f"{a}-{b}" for a, b in self.secondary)
        return text


def _ring_bond(adjacency: Mapping[int, set[int]], i: int, j: int) -> bool:
    """Whether i–j lies in a ring: i reaches j without that bond."""
    seen, stack = {i}, [i]
    while stack:
        a = stack.pop()
        for b in adjacency[a]:
            if (a, b) in ((i, j), (j, i)) or b in seen:
                continue
            if b == j:
                return True
            seen.add(b)
            stack.append(b)
    return False


def _is_chain(atoms: Sequence[int], adjacency: Mapping[int, set[int]]) -> bool:
    return all(atoms[k + 1] in adjacency[atoms[k]] for k in range(len(atoms) - 1))


def switched_dummy_terms(
    terms: Mapping[str, Sequence[Term]],
    dummies: Iterable[int],
    core: Iterable[int],
    bonds: Iterable[tuple[int, int]],
    heavy: np.ndarray,
    bond_orders: Mapping[tuple[int, int], int] | None = None,
) -> tuple[set[tuple[str, tuple[int, ...]]], list[Junction]]:
    """The mixed dummy terms to switch off at the dummy end, and the junctions found.

    Parameters
    ----------
    terms : dict
        ``"bond"``, ``"angle"``, ``"torsion"`` -> [(hybrid atoms in canonical order, parameters)] of the system in
        which ``dummies`` are real atoms.
    dummies, core : iterable of int
        Hybrid indices of that system's unique atoms and of the mapped atoms.
    bonds : iterable of (int, int)
        That system's bonds between ligand atoms (constraints included), hybrid indices.
    heavy : ndarray of bool, shape (N_hybrid,)
        Whether each hybrid particle is a heavy atom.
    bond_orders : dict, optional
        (i, j) -> bond order (1 single, 2 double, ...); missing means single.

    Returns
    -------
    switched : set of (kind, atoms)
        Terms (all parameter sets of those atoms) that scale to zero at the dummy end.
    junctions : list of Junction
    """
    dummy_set, core_set = set(dummies), set(core)
    adjacency: dict[int, set[int]] = defaultdict(set)
    for i, j in bonds:
        adjacency[i].add(j)
        adjacency[j].add(i)
    orders = {tuple(sorted(k)): v for k, v in (bond_orders or {}).items()}

    # dummy groups (connected components) and their junction bonds
    group_of: dict[int, int] = {}
    groups: list[list[int]] = []
    for start in sorted(dummy_set):
        if start in group_of:
            continue
        members, stack = [], [start]
        group_of[start] = len(groups)
        while stack:
            a = stack.pop()
            members.append(a)
            for b in adjacency[a]:
                if b in dummy_set and b not in group_of:
                    group_of[b] = len(groups)
                    stack.append(b)
        groups.append(sorted(members))

    def physical_neighbours(x: int) -> list[int]:
        return sorted(n for n in adjacency[x] if n in core_set)

    impropers = [atoms for atoms, _ in terms.get("torsion", ()) if not _is_chain(atoms, adjacency)]
    frames: dict[int, tuple[int, ...]] = {}

    def frame_of(x: int) -> tuple[int, ...]:
        if x in frames:
            return frames[x]
        neighbours = physical_neighbours(x)
        if not neighbours:
            frames[x] = (x,)
            return frames[x]
        p1 = min(neighbours, key=lambda p: (not heavy[p], -len(physical_neighbours(p)), p))
        reference = None
        rotatable = orders.get((min(x, p1), max(x, p1)), 1) == 1 and not _ring_bond(adjacency, x, p1)
        candidates = [q for q in physical_neighbours(p1) if q != x]
        if candidates and not rotatable:  # a proper dihedral across a rigid bond (the stiffer reference)
            reference = min(candidates, key=lambda q: (not heavy[q], q))
        else:
            for atoms in impropers:  # an out-of-plane term at X over a dummy, p1 and a second neighbour
                others = set(atoms) - {x, p1}
                if x in atoms and p1 in atoms and len(others) == 2:
                    dummy_part, physical_part = others & dummy_set, others & set(neighbours)
                    if len(dummy_part) == 1 and len(physical_part) == 1 and next(iter(dummy_part)) in adjacency[x]:
                        reference = next(iter(physical_part))
                        break
        frames[x] = (x, p1) if reference is None else (x, p1, reference)
        return frames[x]

    bridge_of: dict[int, int] = {}
    secondary_bonds: set[tuple[int, int]] = set()
    junctions: list[Junction] = []
    for k, members in enumerate(groups):
        links = sorted((x, d) for d in members for x in adjacency[d] if x in core_set)
        if not links:
            continue
        x, d = min(links, key=lambda link: (-len(physical_neighbours(link[0])), link))
        bridge_of[k] = x
        secondary = tuple((xx, dd) for xx, dd in links if (xx, dd) != (x, d))
        secondary_bonds |= {tuple(sorted(link)) for link in secondary}  # type: ignore[misc]
        junctions.append(Junction(tuple(members), x, frame_of(x), secondary))

    switched: set[tuple[str, tuple[int, ...]]] = set()
    for kind, kind_terms in terms.items():
        for atoms, _ in kind_terms:
            mine = [a for a in atoms if a in dummy_set]
            physical = {a for a in atoms if a in core_set}
            if not mine or not physical:
                continue
            if _keeps(kind, atoms, mine, physical, group_of, bridge_of, secondary_bonds, frame_of, adjacency):
                continue
            switched.add((kind, atoms))
    return switched, junctions


def _keeps(kind, atoms, mine, physical, group_of, bridge_of, secondary_bonds, frame_of, adjacency) -> bool:
    """Whether a mixed term is one of the kept placement terms of its dummies (see the module docstring)."""
    if any(tuple(sorted(atoms[k : k + 2])) in secondary_bonds for k in range(len(atoms) - 1)):
        return False  # runs through a second anchor
    bridges = {bridge_of.get(group_of[d]) for d in mine}
    if len(bridges) != 1 or None in bridges:
        return False  # joins dummies hanging on different bridges
    x = bridges.pop()
    frame = frame_of(x)
    if physical == {x}:
        return True  # bonds to X (the primary junction bond), angles and dihedrals among dummies and X
    if len(frame) < 2:
        return False
    p1 = frame[1]
    if kind == "angle":
        if atoms[1] != x or len(physical) != 2:
            return False
        (p,) = physical - {x}
        # every d–X–p to a physical neighbour p of X: with a reference (a rigid bond or a planar X) the reference
        # term is n-fold (2-fold on an aromatic ring), and with one angle the dummy had n equal wells, one of them
        # folded onto a physical neighbour of X that the next λ window forbids; without one, d–X–p1 alone let the
        # dummy turn freely about X–p1 at the dummy end, a circle the last window's 10 % angles confine
        return p == p1 or p in adjacency[x]
    if not physical <= set(frame):
        return False
    chain = _is_chain(atoms, adjacency)
    ends = (atoms, tuple(reversed(atoms)))
    if kind != "torsion":
        return False
    if not chain:  # an improper: the reference of a bridge whose bond to p1 rotates
        return (
            len(frame) == 3 and frame[2] in adjacency[x] and len(mine) == 1 and set(atoms) == {mine[0], x, p1, frame[2]}
        )
    if physical == {x, p1}:
        return any(t[2] == x and t[3] == p1 for t in ends)  # d′–d–X–p1
    return len(frame) == 3 and frame[2] in adjacency[p1] and any(t[1:] == (x, p1, frame[2]) for t in ends)  # d–X–p1–q
