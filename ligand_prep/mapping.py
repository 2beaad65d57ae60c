"""Atom mapping between two posed ligands: a heavy-atom MCS, cleaned up for single-topology FEP.

The mapper runs RDKit's FMCS on the heavy atoms (ring bonds only to ring bonds, valences ignored, a short
timeout, atoms paired only when at most ``max_distance_angstrom`` apart in the given poses; complete rings are
enforced by rule 4 because FMCS stalls when ``CompleteRingsOnly`` is combined with ``MaxDistance``; if that
core is too small, a second FMCS with ``CompleteRingsOnly`` and no distance limit is tried). It then tries the
symmetry-equivalent correspondences of the core and keeps the one that survives these rules best (most mapped
heavy atoms, then fewest element changes, fewest ring changes, most hydrogens):

1. elements: heavy atoms may change element (aromatic C -> N, ...) unless ``allow_element_change`` is off;
   a hydrogen is never mapped to a heavy atom;
2. 3D: every mapped pair lies within ``max_distance_angstrom`` in the two poses (they share one frame);
3. bonds: two mapped atoms are bonded in A exactly when their partners are bonded in B;
4. rings: a ring atom stays mapped only if a whole ring containing it maps onto a whole ring of the other
   ligand (no partial rings; ring-size changes and ring breaking become dummy-atom transformations);
5. connectivity: only the largest connected component of the mapped heavy atoms is kept;
6. hydrogens: hydrogens on a mapped heavy pair with the same element are paired by 3D proximity;
7. chirality: a mapped tetrahedral centre whose mapped neighbours would turn with the opposite handedness
   in B is unmapped (and with rule 5, what hangs only on it).

Rules 3-7 repeat until nothing changes. The score is LOMAP-like (see :func:`lomap_score`). A mapping needs at
least ``min_anchor_atoms`` (3) mapped atoms that are not collinear, hydrogens included, so a two-heavy-atom core
(ethane -> chloroethane) maps.

Hydration series need no common frame: with ``use_poses`` off (``fep plan --mode hydration`` without a reference),
the MCS is on topology alone (complete rings), every symmetry-equivalent correspondence is fitted for itself (B
superposed on A over the mapped heavy atoms) before rule 2 is skipped and rules 3-7 run on the fitted B, and the
hydrogens of mapped heavy pairs are paired by proximity in that fit. Substituents at the same ring position then
map onto each other (toluene's methyl carbon onto phenol's oxygen) whatever the ligands' poses.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pydantic import Field

from ligand_prep.models import AtomMapping, Ligand
from mlfep_core import FrozenModel, MappingError

__all__ = ["LOW_SCORE", "MCSMapper", "MappingSettings", "lomap_score"]

#: Edges below this LOMAP-style score carry a warning (0.1: about 23 heavy atoms unmapped on the two sides together).
LOW_SCORE = 0.1

log = logging.getLogger(__name__)


class MappingSettings(FrozenModel):
    """How :class:`MCSMapper` builds atom mappings."""

    timeout_s: float = Field(2.0, gt=0, description="Time limit of one heavy-atom MCS search, in seconds.")
    max_distance_angstrom: float = Field(
        1.0, gt=0, description="Mapped atoms must be at most this far apart (Å) in the two given poses."
    )
    allow_element_change: bool = Field(True, description="Allow heavy atoms to change element (e.g. aromatic C→N).")
    map_hydrogens: bool = Field(True, description="Map hydrogens on mapped heavy atoms with the same element.")
    min_mapped_heavy_atoms: int = Field(
        1, ge=1, description="Refuse a mapping (MappingError) with fewer mapped heavy atoms than this."
    )
    min_anchor_atoms: int = Field(
        3, ge=1, description="Refuse a mapping with fewer mapped atoms than this (hydrogens count), or collinear ones."
    )
    use_poses: bool = Field(
        True,
        description="Map in the given poses (they share one frame: rule 2 applies). Off: map on topology and fit "
        "each candidate correspondence for itself (hydration series of unaligned ligands).",
    )
    element_change_penalty: float = Field(
        0.1, ge=0, description="Score factor exp(-penalty) per heavy atom that changes element."
    )
    ring_change_penalty: float = Field(
        0.5,
        ge=0,
        description="Score factor exp(-penalty) per ring that is only partly mapped (ring break/size change).",
    )
    max_matches: int = Field(1000, ge=1, description="At most this many symmetry-equivalent core matches per ligand.")


def lomap_score(
    n_heavy_a: int,
    n_heavy_b: int,
    n_mapped_heavy: int,
    *,
    n_element_changes: int = 0,
    n_ring_changes: int = 0,
    element_change_penalty: float = 0.1,
    ring_change_penalty: float = 0.5,
) -> float:
    """LOMAP-style similarity score of a mapping, in 0..1 (1.0 for identical molecules).

    ``score = exp(-0.1 * (n_heavy_a + n_heavy_b - 2 * n_mapped_heavy))
    * exp(-element_change_penalty * n_element_changes) * exp(-ring_change_penalty * n_ring_changes)``

    Parameters
    ----------
    n_heavy_a, n_heavy_b : int
        Heavy atoms of ligand A and ligand B.
    n_mapped_heavy : int
        Mapped heavy atoms (pairs).
    n_element_changes : int
        Mapped heavy-atom pairs whose elements differ.
    n_ring_changes : int
        Rings of A or B cut by the MCS: ring breaking/forming or a ring-size change (see ``_ring_changes``).
    element_change_penalty, ring_change_penalty : float
        Exponents of the penalty factors.

    Examples
    --------
    >>> lomap_score(6, 6, 6)
    1.0
    >>> round(lomap_score(6, 7, 6), 4)
    0.9048
    """
    n_unique = n_heavy_a + n_heavy_b - 2 * n_mapped_heavy
    exponent = 0.1 * n_unique + element_change_penalty * n_element_changes + ring_change_penalty * n_ring_changes
    return float(min(1.0, max(0.0, math.exp(-exponent))))


# ------------------------------------------------------------------------------------------- internals
@dataclass
class _Mol:
    """One ligand, pre-digested for mapping (indices are mol-block indices)."""

    name: str
    mol: Any  # rdkit Mol with H
    heavy: Any  # rdkit Mol without H (same conformer), atom prop "orig" = mol-block index
    heavy_to_full: list[int]
    coords: np.ndarray  # shape (n_atoms, 3), Å
    elements: list[int]
    neighbors: list[set[int]]
    hydrogens: dict[int, list[int]]  # heavy atom -> its hydrogens
    rings: list[frozenset[int]]
    ring_atoms: set[int]
    n_heavy: int
    formal_charge: int


@dataclass
class _Result:
    """A mapping A -> B with what the score and warnings need (direction-free via :meth:`inverted`)."""

    mapping: dict[int, int]
    n_mapped_heavy: int
    n_element_changes: int
    n_ring_changes: int
    score: float
    notes: list[str] = field(default_factory=list)

    def inverted(self) -> _Result:
        return _Result(
            {v: k for k, v in self.mapping.items()},
            self.n_mapped_heavy,
            self.n_element_changes,
            self.n_ring_changes,
            self.score,
            list(self.notes),
        )


def _digest(ligand: Ligand) -> _Mol:
    import numpy as np
    from rdkit import Chem

    mol = ligand.to_rdkit()
    if mol.GetNumConformers() == 0:
        raise MappingError(f"ligand {ligand.name}: no 3D pose; mapping needs posed ligands sharing one frame")
    for atom in mol.GetAtoms():
        atom.SetIntProp("orig", atom.GetIdx())
    heavy = Chem.RemoveAllHs(mol, sanitize=False)
    try:
        Chem.SanitizeMol(heavy)
    except Exception:  # partial sanitization is enough for the MCS
        heavy.UpdatePropertyCache(strict=False)
        Chem.FastFindRings(heavy)
    heavy_to_full = [a.GetIntProp("orig") for a in heavy.GetAtoms()]
    coords = np.asarray(mol.GetConformer().GetPositions(), dtype=float)
    neighbors = [{n.GetIdx() for n in a.GetNeighbors()} for a in mol.GetAtoms()]
    elements = [a.GetAtomicNum() for a in mol.GetAtoms()]
    hydrogens = {i: sorted(n for n in neighbors[i] if elements[n] == 1) for i in heavy_to_full}
    rings = [frozenset(r) for r in mol.GetRingInfo().AtomRings()]
    return _Mol(
        name=ligand.name,
        mol=mol,
        heavy=heavy,
        heavy_to_full=heavy_to_full,
        coords=coords,
        elements=elements,
        neighbors=neighbors,
        hydrogens=hydrogens,
        rings=rings,
        ring_atoms=set().union(*rings) if rings else set(),
        n_heavy=len(heavy_to_full),
        formal_charge=Chem.GetFormalCharge(mol),
    )


def _ligand_key(ligand: Ligand) -> str:
    return hashlib.sha1(f"{ligand.name}\n{ligand.molblock}".encode()).hexdigest()


def _largest_component(core: dict[int, int], ma: _Mol) -> dict[int, int]:
    if not core:
        return core
    seen: set[int] = set()
    best: set[int] = set()
    for start in core:
        if start in seen:
            continue
        comp = {start}
        stack = [start]
        while stack:
            atom = stack.pop()
            for nbr in ma.neighbors[atom]:
                if nbr in core and nbr not in comp:
                    comp.add(nbr)
                    stack.append(nbr)
        seen |= comp
        if len(comp) > len(best) or (len(comp) == len(best) and min(comp) < min(best)):
            best = comp
    return {a: core[a] for a in sorted(best)}


def _bond_consistent(core: dict[int, int], ma: _Mol, mb: _Mol) -> dict[int, int]:
    bad: set[int] = set()
    for a1, b1 in core.items():
        for a2, b2 in core.items():
            if a1 < a2 and ((a2 in ma.neighbors[a1]) != (b2 in mb.neighbors[b1])):
                bad |= {a1, a2}
    return {a: b for a, b in core.items() if a not in bad}


def _whole_rings(core: dict[int, int], ma: _Mol, mb: _Mol) -> dict[int, int]:
    """Keep a ring atom only if a whole ring through it maps onto a whole ring of the other ligand."""
    while True:
        inverse = {b: a for a, b in core.items()}
        ok_a: set[int] = set()
        for ring in ma.rings:
            if ring <= core.keys() and frozenset(core[x] for x in ring) in mb.rings:
                ok_a |= ring
        ok_b: set[int] = set()
        for ring in mb.rings:
            if ring <= inverse.keys() and frozenset(inverse[x] for x in ring) in ma.rings:
                ok_b |= ring
        kept = {
            a: b
            for a, b in core.items()
            if (a not in ma.ring_atoms or a in ok_a) and (b not in mb.ring_atoms or b in ok_b)
        }
        if len(kept) == len(core):
            return kept
        core = kept


def _map_hydrogens(core: dict[int, int], ma: _Mol, mb: _Mol, max_dist: float) -> dict[int, int]:
    import numpy as np

    pairs: dict[int, int] = {}
    for a, b in core.items():
        if ma.elements[a] != mb.elements[b]:
            continue
        ha, hb = ma.hydrogens[a], mb.hydrogens[b]
        if not ha or not hb:
            continue
        dist = np.linalg.norm(ma.coords[ha][:, None, :] - mb.coords[hb][None, :, :], axis=-1)
        order = np.argsort(dist, axis=None)
        used_a: set[int] = set()
        used_b: set[int] = set()
        for flat in order:
            i, j = divmod(int(flat), len(hb))
            if dist[i, j] > max_dist:
                break
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            pairs[ha[i]] = hb[j]
    return pairs


def _inverted_centres(full: dict[int, int], core: dict[int, int], ma: _Mol, mb: _Mol) -> list[int]:
    """Mapped tetrahedral centres (A indices) whose mapped neighbours have opposite handedness in B."""
    import numpy as np

    bad = []
    for a, b in core.items():
        if len(ma.neighbors[a]) != 4 or len(mb.neighbors[b]) != 4:
            continue
        nbrs = [(n, full[n]) for n in sorted(ma.neighbors[a]) if n in full and full[n] in mb.neighbors[b]]
        if len(nbrs) < 3:
            continue
        va = np.array([ma.coords[n] - ma.coords[a] for n, _ in nbrs[:3]])
        vb = np.array([mb.coords[m] - mb.coords[b] for _, m in nbrs[:3]])
        da, db = float(np.linalg.det(va)), float(np.linalg.det(vb))
        if abs(da) > 0.05 and abs(db) > 0.05 and (da > 0) != (db > 0):
            bad.append(a)
    return bad


def _swap_hydrogens(bad: list[int], core: dict[int, int], hydrogens: dict[int, int], ma: _Mol, mb: _Mol) -> list[int]:
    """For each inverted centre, swap the B partners of two of its mapped hydrogens when that fixes the
    handedness (``hydrogens`` is changed in place); returns the centres still inverted."""
    still = []
    for centre in bad:
        mapped_h = [h for h in ma.hydrogens.get(centre, []) if h in hydrogens]
        fixed = False
        for i in range(len(mapped_h)):
            for j in range(i + 1, len(mapped_h)):
                h1, h2 = mapped_h[i], mapped_h[j]
                hydrogens[h1], hydrogens[h2] = hydrogens[h2], hydrogens[h1]
                if centre not in _inverted_centres({**core, **hydrogens}, {centre: core[centre]}, ma, mb):
                    fixed = True
                    break
                hydrogens[h1], hydrogens[h2] = hydrogens[h2], hydrogens[h1]
            if fixed:
                break
        if not fixed:
            still.append(centre)
    return still


def _anchor_problem(full: dict[int, int], ma: _Mol, minimum: int) -> str:
    """Why the mapped atoms cannot anchor B's dummy atoms (fewer than ``minimum``, or all on one line), or ''."""
    if len(full) < minimum:
        return f"{len(full)} mapped atom(s), hydrogens included; need {minimum} not on one line"
    xyz = ma.coords[np.fromiter(full.keys(), dtype=int)]
    spread = np.linalg.svd(xyz - xyz.mean(axis=0), compute_uv=False)
    if minimum >= 3 and (len(spread) < 2 or spread[1] < 0.1):
        return f"the {len(full)} mapped atoms lie on one line; need {minimum} not on one line"
    return ""


def _ring_changes(raw: dict[int, int], core: dict[int, int], ma: _Mol, mb: _Mol) -> int:
    """Rings of A that the MCS cuts chemically: ring breaking/forming or a ring-size change.

    A ring of A counts when it is not fully mapped, the raw MCS matched some of its atoms, and those atoms do not
    sit in a same-size ring of B that corresponds to it (B ring atoms matched from elsewhere in A, or another ring
    size). A ring that is identical in both ligands but unmapped only because the poses differ does not count.
    """
    inverse = {b: a for a, b in raw.items()}
    count = 0
    for ring in ma.rings:
        matched = ring & raw.keys()
        if not matched or ring <= core.keys():
            continue
        images = {raw[a] for a in matched}
        same_ring = any(
            len(other) == len(ring) and images <= other and all(inverse[y] in ring for y in other & inverse.keys())
            for other in mb.rings
        )
        count += not same_ring
    return count


class MCSMapper:
    """Maps atoms of two posed ligands (heavy-atom MCS + the rules in the module docstring).

    Results are cached per ordered pair of ligands (and reused, inverted, for the reverse pair), so planning
    a network over all pairs maps each pair once.

    Parameters
    ----------
    settings : MappingSettings, optional
        Defaults to ``MappingSettings()``.

    Examples
    --------
    ``mapping = MCSMapper().map(lig_a, lig_b)``; ``mapping.mapping[0]`` is the B index of A's atom 0.
    """

    def __init__(self, settings: MappingSettings | None = None) -> None:
        self.settings = settings or MappingSettings()
        self._mols: dict[str, _Mol] = {}
        self._cache: dict[tuple[str, str], _Result] = {}
        self._failures: dict[tuple[str, str], str] = {}

    # -------------------------------------------------------------------------------------- public
    def map(self, a: Ligand, b: Ligand) -> AtomMapping:
        """Map ligand ``a`` onto ligand ``b``.

        Returns
        -------
        AtomMapping
            Mol-block indices of A -> B over all atoms (hydrogens included), score, charge change, warnings.

        Raises
        ------
        MappingError
            If no core of at least ``min_mapped_heavy_atoms`` heavy atoms survives; the message names both ligands
            and the reason.
        """
        ka, kb = _ligand_key(a), _ligand_key(b)
        if (ka, kb) in self._cache:
            result = self._cache[(ka, kb)]
        elif (kb, ka) in self._cache:
            result = self._cache[(kb, ka)].inverted()
        elif (ka, kb) in self._failures:
            raise MappingError(self._failures[(ka, kb)])
        else:
            try:
                result = self._compute(self._mol(a, ka), self._mol(b, kb))
            except MappingError as err:
                self._failures[(ka, kb)] = str(err)
                raise
            self._cache[(ka, kb)] = result
        charge_change = int(b.formal_charge - a.formal_charge)
        warnings = list(result.notes)
        if charge_change:
            warnings.insert(
                0,
                f"charge-changing edge ({charge_change:+d} e): run with an alchemical co-ion and the protocol's extra "
                "windows and time (charge_change)"
                if abs(charge_change) == 1
                else f"charge-changing edge ({charge_change:+d} e): only changes of ±1 can run; connect these ligands "
                "through an intermediate",
            )
        if result.score < LOW_SCORE:
            warnings.append(
                f"low similarity (score {result.score:.3f} < {LOW_SCORE}): {a.name} and {b.name} share little; "
                "this edge will converge slowly, if at all: add intermediate ligands or leave one out"
            )
        return AtomMapping(
            ligand_a=a.name,
            ligand_b=b.name,
            mapping=dict(sorted(result.mapping.items())),
            score=result.score,
            charge_change=charge_change,
            warnings=tuple(warnings),
        )

    # ------------------------------------------------------------------------------------ internals
    def _mol(self, ligand: Ligand, key: str) -> _Mol:
        if key not in self._mols:
            self._mols[key] = _digest(ligand)
        return self._mols[key]

    def _fail(self, ma: _Mol, mb: _Mol, reason: str) -> MappingError:
        return MappingError(f"cannot map {ma.name} -> {mb.name}: {reason}")

    def _candidates(self, ma: _Mol, mb: _Mol, *, in_3d: bool = True, limit: int = 8) -> list[dict[int, int]]:
        """Heavy-atom correspondences (mol-block indices) of the MCS, best 3D agreement first.

        With ``in_3d`` the MCS itself only pairs atoms within ``max_distance_angstrom`` (fast on posed series);
        RDKit's FMCS stalls when that is combined with ``CompleteRingsOnly``, so complete rings are then enforced
        by :func:`_whole_rings` afterwards. Without ``in_3d`` (the fallback) FMCS runs with complete rings only.
        """
        import numpy as np
        from rdkit import Chem
        from rdkit.Chem import rdFMCS

        s = self.settings
        params = rdFMCS.MCSParameters()
        params.AtomTyper = (
            rdFMCS.AtomCompare.CompareAny if s.allow_element_change else rdFMCS.AtomCompare.CompareElements
        )
        # on topology (hydration), exact bond orders: an aromatic ring is another scaffold than a saturated one
        params.BondTyper = rdFMCS.BondCompare.CompareOrder if s.use_poses else rdFMCS.BondCompare.CompareOrderExact
        params.AtomCompareParameters.RingMatchesRingOnly = True
        params.AtomCompareParameters.CompleteRingsOnly = not in_3d
        params.AtomCompareParameters.MatchValences = False
        params.AtomCompareParameters.MatchChiralTag = False
        params.BondCompareParameters.RingMatchesRingOnly = True
        params.BondCompareParameters.CompleteRingsOnly = not in_3d
        if in_3d:
            params.AtomCompareParameters.MaxDistance = s.max_distance_angstrom
        params.Timeout = max(1, math.ceil(s.timeout_s))  # type: ignore[assignment]  # RDKit's stub is wrong
        result = rdFMCS.FindMCS([ma.heavy, mb.heavy], params)
        if result.canceled:
            log.info("MCS %s -> %s hit the %.0f s timeout; using the best core found", ma.name, mb.name, s.timeout_s)
        if result.numAtoms == 0:
            return []
        query = Chem.MolFromSmarts(result.smartsString)
        if query is None:  # pragma: no cover - RDKit always writes valid SMARTS
            return []
        matches_a = ma.heavy.GetSubstructMatches(
            query, uniquify=True, useChirality=False, maxMatches=min(s.max_matches, 50)
        )
        matches_b = mb.heavy.GetSubstructMatches(query, uniquify=False, useChirality=False, maxMatches=s.max_matches)
        if not matches_a or not matches_b:
            return []
        ranked = []
        h2f_a, h2f_b = np.asarray(ma.heavy_to_full), np.asarray(mb.heavy_to_full)
        elem_a, elem_b = np.asarray(ma.elements), np.asarray(mb.elements)
        for m_a in matches_a:
            ia = h2f_a[list(m_a)]
            for m_b in matches_b:
                ib = h2f_b[list(m_b)]
                dist = np.linalg.norm(ma.coords[ia] - mb.coords[ib], axis=1)
                close = dist <= s.max_distance_angstrom
                n_close = int(close.sum())
                n_elem = int((elem_a[ia][close] != elem_b[ib][close]).sum())
                ranked.append((-n_close, n_elem, float((dist[close] ** 2).sum()), ia, ib))
        ranked.sort(key=lambda r: r[:3])
        out = []
        seen = set()
        for _, _, _, ia, ib in ranked:
            cand = dict(zip(ia.tolist(), ib.tolist(), strict=True))
            key = tuple(sorted(cand.items()))
            if key not in seen:
                seen.add(key)
                out.append(cand)
            if len(out) >= limit:
                break
        return out

    def _clean(self, raw: dict[int, int], ma: _Mol, mb: _Mol) -> tuple[dict[int, int], dict[int, int], list[str]]:
        """Apply the rules to one heavy-atom correspondence; returns (heavy core, hydrogen pairs, notes)."""
        import numpy as np

        s = self.settings
        notes: list[str] = []
        far = s.max_distance_angstrom if s.use_poses else math.inf  # on topology: no distance rule
        core = {
            a: b
            for a, b in raw.items()
            if (s.allow_element_change or ma.elements[a] == mb.elements[b])
            and ma.elements[a] > 1
            and mb.elements[b] > 1
            and float(np.linalg.norm(ma.coords[a] - mb.coords[b])) <= far
        }
        n_far = len(raw) - len(core)
        if n_far:
            notes.append(
                f"{n_far} MCS atom(s) left unmapped: farther than {s.max_distance_angstrom} Å apart in the poses"
            )
        dropped_centres: list[int] = []
        hydrogens: dict[int, int] = {}
        while True:  # terminates: every pass that does not break removes at least one atom
            core = _bond_consistent(core, ma, mb)
            core = _whole_rings(core, ma, mb)
            core = _largest_component(core, ma)
            hydrogens = _map_hydrogens(core, ma, mb, far) if s.map_hydrogens else {}
            bad = _inverted_centres({**core, **hydrogens}, core, ma, mb)
            if bad and not s.use_poses:  # a fit is not a shared frame: try the other pairing of two hydrogens
                bad = _swap_hydrogens(bad, core, hydrogens, ma, mb)
            if not bad:
                break
            dropped_centres += bad
            core = {a: b for a, b in core.items() if a not in bad}
        if dropped_centres:
            notes.append(
                "tetrahedral centre(s) "
                + ", ".join(f"{ma.name}:{_symbol(ma.elements[a])}{a}" for a in sorted(set(dropped_centres)))
                + " not mapped: their mapped neighbours would invert handedness (chirality)"
            )
        return core, hydrogens, notes

    def _best(self, candidates: list[dict[int, int]], ma: _Mol, mb: _Mol):
        best = None
        for raw in candidates:
            core, hydrogens, notes = self._clean(raw, ma, mb)
            n_elem = sum(ma.elements[a] != mb.elements[b] for a, b in core.items())
            ring_changes = _ring_changes(raw, core, ma, mb) + _ring_changes(
                {b: a for a, b in raw.items()}, {b: a for a, b in core.items()}, mb, ma
            )
            rank = (len(core), -n_elem, -ring_changes, len(hydrogens))
            if best is None or rank > best[0]:
                best = (rank, core, hydrogens, notes, n_elem, ring_changes)
        return best

    def _best_fitted(self, candidates: list[dict[int, int]], ma: _Mol, mb: _Mol):
        """:meth:`_best` over correspondences each scored in its own fit of B onto A (no shared frame)."""
        from mlfep_core.geometry import kabsch

        best, best_key = None, None
        for raw in candidates:
            heavy = [(a, b) for a, b in raw.items() if ma.elements[a] > 1 and mb.elements[b] > 1]
            if not heavy:
                continue
            ia, ib = (np.array(x, dtype=int) for x in zip(*heavy, strict=True))
            r, t = kabsch(mb.coords[ib], ma.coords[ia])
            fitted = replace(mb, coords=mb.coords @ r.T + t)
            found = self._best([raw], ma, fitted)
            if found is None:
                continue
            rmsd = float(np.sqrt(np.mean(np.sum((fitted.coords[ib] - ma.coords[ia]) ** 2, axis=1))))
            key = (*found[0], -rmsd)
            if best_key is None or key > best_key:
                best, best_key = found, key
        return best

    def _compute(self, ma: _Mol, mb: _Mol) -> _Result:
        s = self.settings
        if not s.use_poses:
            best = self._best_fitted(self._candidates(ma, mb, in_3d=False, limit=64), ma, mb)
        else:
            best = self._best(self._candidates(ma, mb, in_3d=True), ma, mb)
            if best is None or len(best[1]) < s.min_mapped_heavy_atoms:
                fallback = self._best(self._candidates(ma, mb, in_3d=False), ma, mb)
                if fallback is not None and (best is None or fallback[0] > best[0]):
                    best = fallback
        if best is None:
            reason = (
                f"no common heavy-atom core within {s.max_distance_angstrom} Å in the given poses "
                "(are the ligands aligned in one frame?)"
                if s.use_poses
                else "no common heavy-atom core (ring atoms map only within whole rings, bonds by order)"
            )
            raise self._fail(ma, mb, reason)
        _, core, hydrogens, notes, n_elem, ring_changes = best
        anchors = _anchor_problem({**core, **hydrogens}, ma, s.min_anchor_atoms)
        if len(core) < s.min_mapped_heavy_atoms or anchors:
            raise self._fail(
                ma,
                mb,
                f"only {len(core)} heavy atom(s) remain mapped after removing partial rings, stereo inversions "
                + (f"and atoms farther than {s.max_distance_angstrom} Å " if s.use_poses else "")
                + f"({anchors or f'need {s.min_mapped_heavy_atoms}'}); plan this pair through an intermediate ligand",
            )
        if n_elem:
            changes = ", ".join(
                f"{ma.name}:{_symbol(ma.elements[a])}{a}<->{mb.name}:{_symbol(mb.elements[b])}{b}"
                for a, b in core.items()
                if ma.elements[a] != mb.elements[b]
            )
            notes.append(f"element change: {changes}")
        if ring_changes:
            notes.append(f"{ring_changes} ring(s) broken, formed or resized: their atoms are dummies, not mapped")
        score = lomap_score(
            ma.n_heavy,
            mb.n_heavy,
            len(core),
            n_element_changes=n_elem,
            n_ring_changes=ring_changes,
            element_change_penalty=s.element_change_penalty,
            ring_change_penalty=s.ring_change_penalty,
        )
        return _Result({**core, **hydrogens}, len(core), n_elem, ring_changes, score, notes)


def _symbol(atomic_number: int) -> str:
    from rdkit import Chem

    return Chem.GetPeriodicTable().GetElementSymbol(atomic_number)
