"""Dummy-atom junctions (Fleck's rules, fep.alchemy.junctions): which terms stay, exact end states, and a
vacuum edge whose forward and reverse free energies agree."""

from __future__ import annotations

import pytest

openmm = pytest.importorskip("openmm")

from fep.alchemy.check import end_state_energy_check  # noqa: E402
from fep.alchemy.hybrid import build_hybrid  # noqa: E402
from fep.alchemy.valence import ROLE_CORE, ROLE_UNIQUE_A, ROLE_UNIQUE_B  # noqa: E402

SERIES = (
    "name,smiles\nbenzene,c1ccccc1\nnaphthalene,c1ccc2ccccc2c1\ntoluene,Cc1ccccc1\nphenol,Oc1ccccc1\n"
    "anisole,COc1ccccc1\nethylbenzene,CCc1ccccc1\n"
)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, charge_cache):
    """Builder of (end states, hybrid, mapping) of a vacuum edge, hydration-style (each ligand posed for itself)."""
    from fep.systems.endstates import build_end_states
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings, MCSMapper

    csv = tmp_path_factory.mktemp("junctions") / "series.csv"
    csv.write_text(SERIES)
    ligands = {lig.name: lig for lig in read_ligands(csv, align=False)}
    prepared = {n: assign_charges(lig, method="gasteiger", cache_dir=charge_cache) for n, lig in ligands.items()}
    mapper = MCSMapper(MappingSettings(use_poses=False))

    def build(a, b):
        mapping = mapper.map(ligands[a], ligands[b])
        end_states = build_end_states(prepared[a], prepared[b], mapping, "vacuum")
        return end_states, build_hybrid(end_states, mapping), mapping

    build.prepared = prepared  # type: ignore[attr-defined]
    build.mapper = mapper  # type: ignore[attr-defined]
    build.ligands = ligands  # type: ignore[attr-defined]
    return build


def _roles(hybrid):
    import numpy as np

    role = np.zeros(hybrid.info.n_atoms, dtype=int)
    role[list(hybrid.info.core)] = ROLE_CORE
    role[list(hybrid.info.unique_a)] = ROLE_UNIQUE_A
    role[list(hybrid.info.unique_b)] = ROLE_UNIQUE_B
    return role


def _static_terms(hybrid):
    """(kind, atoms) of every term in the λ-independent valence forces."""
    out = []
    for force in hybrid.system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            out += [("bond", tuple(force.getBondParameters(n)[:2])) for n in range(force.getNumBonds())]
        elif isinstance(force, openmm.HarmonicAngleForce):
            out += [("angle", tuple(force.getAngleParameters(n)[:3])) for n in range(force.getNumAngles())]
        elif isinstance(force, openmm.PeriodicTorsionForce):
            out += [("torsion", tuple(force.getTorsionParameters(n)[:4])) for n in range(force.getNumTorsions())]
    return out


def _assert_placement_terms_only(hybrid):
    """Every dummy atom at a junction keeps at most one dihedral atom set that reaches two or more physical
    atoms, and only angles centred on its junction atom (one per physical neighbour at most): no dihedral across
    a second bond, no angle beyond the junction."""
    role = _roles(hybrid)
    for unique_role in (ROLE_UNIQUE_A, ROLE_UNIQUE_B):
        per_dummy: dict[tuple[int, str], set] = {}
        for kind, atoms in _static_terms(hybrid):
            dummies = [a for a in atoms if role[a] == unique_role]
            physical = [a for a in atoms if role[a] == ROLE_CORE]
            if kind == "bond" or not dummies or len(physical) < 2:
                continue
            # the dummy this term places: the chain's dummy end (an improper has one dummy)
            placed = atoms[0] if role[atoms[0]] == unique_role else atoms[-1]
            assert role[placed] == unique_role or len(dummies) == 1, (kind, atoms)
            placed = placed if role[placed] == unique_role else dummies[0]
            per_dummy.setdefault((placed, kind), set()).add(frozenset(atoms))
        for (dummy, kind), sets in per_dummy.items():
            if kind == "angle":  # d–X–p: all centred on one junction atom X, each to another physical neighbour
                centres = {next(iter(a & set(_neighbours(hybrid, dummy)))) for a in sets}
                assert len(centres) == 1 and all(len(a) == 3 for a in sets), (dummy, sets)
                continue
            assert len(sets) == 1, f"dummy {dummy}: {len(sets)} {kind} terms reach the physical part: {sets}"


def _neighbours(hybrid, atom: int) -> list[int]:
    """Atoms bonded (or constrained) to ``atom`` in the hybrid."""
    out = []
    for force in hybrid.system.getForces():
        if isinstance(force, (openmm.HarmonicBondForce, openmm.CustomBondForce)):
            for n in range(force.getNumBonds()):
                i, j = force.getBondParameters(n)[:2]
                out += [j] if i == atom else [i] if j == atom else []
    for n in range(hybrid.system.getNumConstraints()):
        i, j, _ = hybrid.system.getConstraintParameters(n)
        out += [j] if i == atom else [i] if j == atom else []
    return out


def _energy_at_b_end(hybrid):
    """The hybrid's potential energy (kJ/mol) at λ = 1 (every λ parameter 1) of positions in nm, on Reference."""
    ctx = openmm.Context(hybrid.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    for name in ctx.getParameters():
        if name.startswith("lambda"):
            ctx.setParameter(name, 1.0)

    def energy(positions) -> float:
        ctx.setPositions(positions)
        return ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)

    return energy


def test_aromatic_junction_dummy_has_one_well(edge):
    """benzene -> toluene: at B's end, A's hydrogen on the substituted carbon is a dummy. Bond, angle d–X–p1 and
    the 2-fold ring dihedral alone give it a second well of exactly the same energy, folded onto the bond to X's
    other ring neighbour (a rotation by 180° about X–p1). With every angle at X kept, that position costs more
    than 40 kT, and the end states stay exact."""
    import numpy as np

    end_states, hybrid, _ = edge("benzene", "toluene")
    role = _roles(hybrid)
    energy = _energy_at_b_end(hybrid)
    x = np.asarray(hybrid.positions, dtype=float)  # nm
    dummies = [a for a in range(len(role)) if role[a] == ROLE_UNIQUE_A]
    moved = []
    for d in dummies:
        bridge = next(a for a in _neighbours(hybrid, d) if role[a] == ROLE_CORE)
        p1 = next(a for a in _neighbours(hybrid, bridge) if role[a] == ROLE_CORE and a != d)
        axis = (x[p1] - x[bridge]) / np.linalg.norm(x[p1] - x[bridge])
        rel = x[d] - x[bridge]
        folded = x.copy()
        folded[d] = x[bridge] + 2 * np.dot(rel, axis) * axis - rel  # 180° about X–p1
        moved.append(energy(folded) - energy(x))
    assert dummies and min(moved) > 40 * 2.479
    result = end_state_energy_check(end_states, hybrid, platform="Reference")
    assert result["passed"], result["max_abs_energy_difference"]


def test_rotatable_junction_dummy_turns_with_its_rotor(edge):
    """toluene -> ethylbenzene: at B's end, toluene's third methyl hydrogen is a dummy on the CH2 carbon, whose
    bond to the ring rotates. With d–X–p1 alone it turned freely about X–p1 (no energy at all), so the last λ
    window (its other angles at 10 %) overlapped poorly with the end state; with every angle at X kept, turning
    it by 60° about X–p1 away from the other substituents costs more than 10 kT, no kept term spans the rotatable
    bond, and the end states stay exact."""
    import numpy as np

    end_states, hybrid, _ = edge("toluene", "ethylbenzene")
    role = _roles(hybrid)
    energy = _energy_at_b_end(hybrid)
    x = np.asarray(hybrid.positions, dtype=float)
    (d,) = [a for a in range(len(role)) if role[a] == ROLE_UNIQUE_A]
    bridge = next(a for a in _neighbours(hybrid, d) if role[a] == ROLE_CORE)
    heavy = {a for a in range(len(role)) if hybrid.system.getParticleMass(a).value_in_unit(openmm.unit.dalton) > 4}
    p1 = next(a for a in _neighbours(hybrid, bridge) if a in heavy and role[a] == ROLE_CORE and a != d)
    axis = (x[p1] - x[bridge]) / np.linalg.norm(x[p1] - x[bridge])
    rel = x[d] - x[bridge]
    par = np.dot(rel, axis) * axis
    perp = rel - par
    turned = x.copy()
    c, s_ = np.cos(np.pi / 3), np.sin(np.pi / 3)
    turned[d] = x[bridge] + par + c * perp + s_ * np.cross(axis, perp)  # 60° about X–p1 (Rodrigues)
    assert energy(turned) - energy(x) > 10 * 2.479
    kept_angles = [a for k, a in _static_terms(hybrid) if k == "angle" and d in a]
    assert {a[1] for a in kept_angles} == {bridge} and len(kept_angles) == 3  # to p1 and X's two other hydrogens
    _assert_placement_terms_only(hybrid)
    result = end_state_energy_check(end_states, hybrid, platform="Reference")
    assert result["passed"], result["max_abs_energy_difference"]


def test_dual_junction_keeps_one_anchor(edge):
    """benzene -> naphthalene: B's four extra ring carbons hang on two benzene carbons; the second anchor bond
    (and every term through it) is switched off at the dummy end, the first keeps the group attached."""
    end_states, hybrid, _ = edge("benzene", "naphthalene")
    groups = [j for j in hybrid.info.dummy_junctions if j.startswith("B dummies")]
    assert len(groups) == 1 and "second anchors switched off" in groups[0]
    second = groups[0].split("second anchors switched off: ")[1]
    x, d = (int(v) for v in second.split("-"))
    static = {(k, tuple(sorted(a))) for k, a in _static_terms(hybrid)}
    assert ("bond", tuple(sorted((x, d)))) not in static
    assert ("bond", tuple(sorted((x, d)))) in {(k, tuple(sorted(a))) for k, a in hybrid.info.switched_dummy_terms["B"]}
    _assert_placement_terms_only(hybrid)
    result = end_state_energy_check(end_states, hybrid, platform="Reference")
    assert result["passed"], result["max_abs_energy_difference"]


def test_junction_with_an_element_change(edge):
    """toluene -> phenol maps the methyl C onto O: the dummy hydrogens on that junction atom (three in A, one in
    B) keep only their placement terms, and the end states stay exact."""
    end_states, hybrid, _ = edge("toluene", "phenol")
    assert any("element change" in w for w in hybrid.info.warnings)
    assert hybrid.info.switched_dummy_terms["A"] and hybrid.info.dummy_junctions
    _assert_placement_terms_only(hybrid)
    result = end_state_energy_check(end_states, hybrid, platform="Reference")
    assert result["passed"], result["max_abs_energy_difference"]
    # at the end where they are real atoms, the switched terms are back at full strength: plain A exactly
    assert abs(result["states"]["A"]["difference"]["total"]) < 1e-6


@pytest.mark.slow
def test_vacuum_edge_forward_equals_minus_reverse(edge, tmp_path):
    """ΔG(A→B) = −ΔG(B→A) within error in vacuum (toluene ~ anisole: dummies at both ends, a rotatable
    junction): the dummies add no direction-dependent bias."""
    import math

    from fep.execution.runner import run_leg
    from fep.protocol import load_protocol

    protocol = load_protocol("smoke")
    protocol = protocol.model_copy(update={"sampler": protocol.sampler.model_copy(update={"n_iterations": 60})})
    prepared, mapper, ligands = edge.prepared, edge.mapper, edge.ligands
    forward = run_leg(
        prepared["toluene"], prepared["anisole"], mapper.map(ligands["toluene"], ligands["anisole"]), "vacuum",
        protocol, tmp_path / "fwd",
    )  # fmt: skip
    reverse = run_leg(
        prepared["anisole"], prepared["toluene"], mapper.map(ligands["anisole"], ligands["toluene"]), "vacuum",
        protocol, tmp_path / "rev",
    )  # fmt: skip
    sigma = math.hypot(forward.dg_err_kcal_mol, reverse.dg_err_kcal_mol)
    assert abs(forward.dg_kcal_mol + reverse.dg_kcal_mol) < 4 * sigma + 0.05, (forward.dg_kcal_mol, reverse.dg_kcal_mol)
