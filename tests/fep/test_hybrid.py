"""The hybrid (single-topology) system: end-state identities, continuity in λ, dummies, save/load."""

from __future__ import annotations

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")

from fep.alchemy.check import end_state_energy_check  # noqa: E402
from fep.alchemy.hybrid import FORCE_GROUPS, HybridError, HybridLeg, build_hybrid  # noqa: E402
from fep.alchemy.lambdas import LambdaProtocol  # noqa: E402

REFERENCE_TOL = 0.01  # kJ/mol, the brief's bar for the Reference platform


@pytest.fixture(scope="module")
def series(bench, charge_cache):
    """Benzene series ligands with Gasteiger charges (fast) and a mapper."""
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MCSMapper

    ligands = {lig.name: lig for lig in read_ligands(bench / "freesolv" / "rhfe_benzenes_ligands.csv")}
    prepared = {}

    def prep(name):
        if name not in prepared:
            prepared[name] = assign_charges(ligands[name], method="gasteiger", cache_dir=charge_cache)
        return prepared[name]

    return ligands, prep, MCSMapper()


@pytest.fixture(scope="module")
def leg_of(series):
    """Builder of (end_states, hybrid) for an edge and leg, cached per module."""
    from fep.systems.endstates import SystemSettings, build_end_states

    ligands, prep, mapper = series
    cache = {}
    # 0.7 nm cutoff: a smaller box than the 0.9 nm default, so that the Reference-platform checks stay fast
    settings = SystemSettings(nonbonded_cutoff="0.7 nm")

    def build(a, b, leg):
        key = (a, b, leg)
        if key not in cache:
            mapping = mapper.map(ligands[a], ligands[b])
            end_states = build_end_states(prep(a), prep(b), mapping, leg, settings=settings)
            cache[key] = (end_states, build_hybrid(end_states, mapping), mapping)
        return cache[key]

    return build


def _energy(context, values: dict[str, float], groups=-1) -> float:
    for name, value in values.items():
        context.setParameter(name, value)
    return context.getState(getEnergy=True, groups=groups).getPotentialEnergy()._value


def _context(leg: HybridLeg, platform: str = "Reference"):
    context = openmm.Context(leg.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    if leg.box_vectors is not None:
        context.setPeriodicBoxVectors(*leg.box_vectors)
    context.setPositions(leg.positions)
    return context


def _assert_check(result, tol=REFERENCE_TOL, force_tol=0.01):
    for label in ("A", "B"):
        state = result["states"][label]
        for term, diff in state["difference"].items():
            assert abs(diff) < tol, f"state {label} {term}: hybrid - (plain + dummy) = {diff:.6f} kJ/mol"
        assert state["max_force_difference"] < force_tol, (
            f"state {label} forces differ by {state['max_force_difference']}"
        )
    assert result["passed"]


# ---------------------------------------------------------------------------------------------- end states
@pytest.mark.parametrize(
    "a,b",
    [
        ("benzene", "toluene"),  # substituent growth (ring H -> methyl)
        ("benzene", "phenol"),  # ring H -> OH
        ("chlorobenzene", "fluorobenzene"),  # element change Cl -> F: λ-dependent bond terms
        ("phenol", "aniline"),  # element change O -> N with unique hydrogens on both sides
        ("benzonitrile", "benzaldehyde"),  # unique atoms on both sides of a mapped substituent
        ("toluene", "benzene"),  # the reverse direction: the methyl group disappears
    ],
)
def test_end_states_vacuum_reference(leg_of, a, b):
    end_states, hybrid, _ = leg_of(a, b, "vacuum")
    assert hybrid.info.unique_a or hybrid.info.unique_b or sum(hybrid.info.n_lambda_valence_terms.values())
    _assert_check(end_state_energy_check(end_states, hybrid, platform="Reference"))


@pytest.mark.parametrize("a,b", [("benzene", "toluene"), ("benzene", "phenol"), ("chlorobenzene", "fluorobenzene")])
def test_end_states_solvent_reference(leg_of, a, b):
    end_states, hybrid, _ = leg_of(a, b, "solvent")
    info = hybrid.info
    assert info.periodic and info.n_atoms == info.n_atoms_a + len(info.unique_b)
    # the dispersion correction differs between A and B: the λ-dependent correction force carries it
    assert info.dispersion_coefficients["a"] != info.dispersion_coefficients["b"]
    _assert_check(end_state_energy_check(end_states, hybrid, platform="Reference"))


def test_end_states_solvent_cpu_real_box(leg_of):
    """On CPU the check uses the real (triclinic) box and the hybrid exactly as built."""
    end_states, hybrid, _ = leg_of("benzene", "phenol", "solvent")
    result = end_state_energy_check(end_states, hybrid, platform="CPU")
    assert result["passed"], result["states"]["B"]["difference"]
    assert result["max_abs_energy_difference"] < 0.05


def test_hybrid_layout(leg_of):
    end_states, hybrid, mapping = leg_of("benzene", "toluene", "solvent")
    info = hybrid.info
    n_a = end_states.system_a.getNumParticles()
    assert info.n_atoms_a == n_a and hybrid.system.getNumParticles() == info.n_atoms
    assert info.atoms_a == tuple(end_states.ligand_atoms_a)
    # mapped B atoms are A atoms, unique B atoms are appended after all of A
    for ia, ib in mapping.mapping.items():
        assert info.atoms_b[ib] == info.atoms_a[ia]
    assert all(h >= n_a for h in info.unique_b) and len(info.unique_b) == 4  # methyl C + 3 H
    assert len(info.unique_a) == 1  # benzene's H where the methyl goes
    np.testing.assert_allclose(hybrid.positions[list(info.atoms_b)], end_states.positions_b[end_states.ligand_atoms_b])
    assert hybrid.topology.getNumAtoms() == info.n_atoms
    # the groups the info claims are the groups the forces are in, and the λ-independent one is λ-independent
    from fep.alchemy.lambdas import LAMBDA_PARAMETERS
    from fep.sampling.engine import uses_parameter

    by_name = {f.getName(): f.getForceGroup() for f in hybrid.system.getForces()}
    assert by_name["hybrid_nonbonded"] == info.force_groups["nonbonded"]
    assert by_name["hybrid_softcore"] == info.force_groups["softcore"]
    assert {f.getForceGroup() for f in hybrid.system.getForces()} <= set(info.force_groups.values())
    for force in hybrid.system.getForces():
        independent = force.getForceGroup() in info.lambda_independent_groups
        assert independent != uses_parameter(force, set(LAMBDA_PARAMETERS)), force.getName()
    # every λ parameter the protocol sets is a global parameter of the hybrid, and the hybrid has no other λ
    context = _context(hybrid)
    assert {p for p in context.getParameters() if p.startswith("lambda_")} == set(LAMBDA_PARAMETERS)


def test_charge_change_without_coion_refused(leg_of):
    end_states, _, mapping = leg_of("benzene", "toluene", "solvent")
    charged = mapping.model_copy(update={"charge_change": 1})
    with pytest.raises(HybridError, match=r"changes by \+1 and the end states have no co-ion"):
        build_hybrid(end_states, charged)


def _net_charge(nonbonded, values: dict[str, float]) -> float:
    """Sum of the hybrid NonbondedForce's particle charges at the λ ``values`` (base plus offsets)."""
    total = sum(nonbonded.getParticleParameters(i)[0]._value for i in range(nonbonded.getNumParticles()))
    for k in range(nonbonded.getNumParticleParameterOffsets()):
        name, _, dq, _, _ = nonbonded.getParticleParameterOffset(k)
        total += dq * values[name]
    return total


@pytest.fixture(scope="module")
def charge_changing(tmp_path_factory, charge_cache):
    """Benzoic acid (0) -> benzoate (-1), posed freely and mapped on topology, solvent and vacuum legs."""
    from fep.systems.endstates import SystemSettings, build_end_states
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings, MCSMapper

    csv = tmp_path_factory.mktemp("acid") / "acid.csv"
    csv.write_text("name,smiles\nbenzoic_acid,OC(=O)c1ccccc1\nbenzoate,[O-]C(=O)c1ccccc1\n")
    acid, base = (assign_charges(x, method="gasteiger", cache_dir=charge_cache) for x in read_ligands(csv, align=False))
    mapping = MCSMapper(MappingSettings(use_poses=False)).map(acid.ligand, base.ligand)
    settings = SystemSettings(nonbonded_cutoff="0.7 nm")
    legs = {leg: build_end_states(acid, base, mapping, leg, settings=settings) for leg in ("solvent", "vacuum")}
    return legs, mapping


def test_charge_changing_edge_has_a_neutralising_coion(charge_changing):
    """A -1 edge in solvent: one far water becomes Na+ in B, the end states are exact, and the box is neutral at
    every λ window (not only at the ends)."""
    from fep.protocol import tier

    legs, mapping = charge_changing
    assert mapping.charge_change == -1
    solvent = legs["solvent"]
    assert solvent.coion == "Na+" and len(solvent.coion_atoms) == 3
    oxygen = solvent.coion_atoms[0]
    atom = list(solvent.topology_a.atoms())[oxygen]
    assert atom.residue.name == "HOH" and atom.element.symbol == "O"
    # far from the ligand and from the other ions
    lig = solvent.positions_a[solvent.ligand_atoms_a]
    from fep.systems.solvation import periodic_images

    images = periodic_images(lig, solvent.box_vectors)
    assert np.min(np.linalg.norm(images - solvent.positions_a[oxygen], axis=1)) > 0.7
    hybrid = build_hybrid(solvent, mapping)
    assert hybrid.info.coion == "Na+" and hybrid.info.coion_atoms == solvent.coion_atoms
    assert hybrid.info.charge_change == -1
    _assert_check(end_state_energy_check(solvent, hybrid, platform="Reference"))
    nonbonded = next(f for f in hybrid.system.getForces() if isinstance(f, openmm.NonbondedForce))
    windows = tier("fast").windows()
    for values in windows:
        assert _net_charge(nonbonded, values) == pytest.approx(0.0, abs=1e-6), values
    # the same holds on an arbitrary point off the schedule (each λ parameter on its own)
    for name in hybrid.info.lambda_parameters:
        values = dict.fromkeys(hybrid.info.lambda_parameters, 0.0) | {name: 0.37}
        assert _net_charge(nonbonded, values) == pytest.approx(0.0, abs=1e-6), name


def test_charge_changing_edge_in_vacuum_needs_no_coion(charge_changing):
    legs, mapping = charge_changing
    vacuum = legs["vacuum"]
    assert vacuum.coion is None and vacuum.coion_atoms == ()
    _assert_check(end_state_energy_check(vacuum, build_hybrid(vacuum, mapping), platform="Reference"))


# ------------------------------------------------------------------------------------------------ λ path
def test_lambda_independent_group_does_not_depend_on_lambda(leg_of):
    _, hybrid, _ = leg_of("chlorobenzene", "fluorobenzene", "solvent")
    context = _context(hybrid, "CPU")
    group = {FORCE_GROUPS["valence"]}
    values = [_energy(context, hybrid.lambda_values(x), groups=group) for x in (0.0, 0.37, 1.0)]
    assert max(values) - min(values) < 1e-6
    # ... while the λ-dependent valence group does (Cl -> F changes the C-X bond)
    lam = {FORCE_GROUPS["valence_lambda"]}
    assert (
        abs(_energy(context, hybrid.lambda_values(0.0), lam) - _energy(context, hybrid.lambda_values(1.0), lam)) > 1e-3
    )


def test_energy_continuous_along_default_path(leg_of):
    """No jumps: along the default staging the largest step in energy halves when the step in λ halves."""
    _, hybrid, _ = leg_of("benzene", "phenol", "solvent")
    context = _context(hybrid, "CPU")
    from fep.alchemy.lambdas import _STAGING, _ramp

    def path(n):
        energies = []
        for t in np.linspace(0.0, 1.0, n):
            energies.append(_energy(context, {k: _ramp(t, *_STAGING[k]) for k in hybrid.info.lambda_parameters}))
        return np.asarray(energies)

    coarse, fine = path(101), path(201)
    assert np.all(np.isfinite(fine))
    step_coarse, step_fine = np.abs(np.diff(coarse)).max(), np.abs(np.diff(fine)).max()
    assert step_fine < 0.7 * step_coarse  # Lipschitz-like: halves (up to curvature), a jump would not shrink
    assert step_coarse < 20.0  # kJ/mol per 1 % of the path
    np.testing.assert_allclose(coarse[[0, -1]], fine[[0, -1]], atol=1e-3)


def test_protocol_windows_run_on_hybrid(leg_of):
    """Every λ parameter of the protocol exists in the hybrid context."""
    _, hybrid, _ = leg_of("benzene", "toluene", "vacuum")
    context = _context(hybrid)
    protocol = LambdaProtocol.windows_for("smoke")
    assert set(protocol.parameter_names) == set(hybrid.info.lambda_parameters)
    energies = [_energy(context, window) for window in protocol.windows]
    assert np.all(np.isfinite(energies))


# ---------------------------------------------------------------------------------------------- dummies
def _nonbonded_groups():
    return {FORCE_GROUPS[k] for k in ("nonbonded", "softcore", "dispersion")}


@pytest.mark.parametrize("state", ["A", "B"])
def test_dummies_do_not_interact_at_their_dummy_end(leg_of, state):
    """Move a dummy atom onto a water: only its valence energy changes (nonbonded groups unchanged)."""
    _, hybrid, _ = leg_of("benzene", "toluene", "solvent")
    info = hybrid.info
    dummy = info.unique_b[0] if state == "A" else info.unique_a[0]
    water_o = next(a.index for a in hybrid.topology.atoms() if a.residue.name == "HOH" and a.element.symbol == "O")
    context = _context(hybrid, "Reference")
    values = hybrid.lambda_values(state)
    before = _energy(context, values, _nonbonded_groups())
    moved = hybrid.positions.copy()
    moved[dummy] = moved[water_o] + np.array([0.12, 0.0, 0.0])
    context.setPositions(moved)
    after = _energy(context, values, _nonbonded_groups())
    assert abs(after - before) < 1e-6
    # at the other end the same move is a clash: the test can fail
    other = hybrid.lambda_values("B" if state == "A" else "A")
    clash = _energy(context, other, _nonbonded_groups())
    context.setPositions(hybrid.positions)
    assert clash - _energy(context, other, _nonbonded_groups()) > 50.0


# --------------------------------------------------------------------------------------------- save/load
def test_save_load_round_trip(leg_of, tmp_path):
    _, hybrid, _ = leg_of("benzene", "phenol", "solvent")
    hybrid.save(tmp_path / "leg")
    loaded = HybridLeg.load(tmp_path / "leg")
    assert loaded.info == hybrid.info
    assert loaded.topology.getNumAtoms() == hybrid.topology.getNumAtoms()
    np.testing.assert_array_equal(loaded.positions, hybrid.positions)
    np.testing.assert_array_equal(loaded.box_vectors, hybrid.box_vectors)
    c1, c2 = _context(hybrid), _context(loaded)
    for x in (0.0, 0.5, 1.0):
        assert _energy(c1, hybrid.lambda_values(x)) == pytest.approx(_energy(c2, loaded.lambda_values(x)), abs=1e-9)


def test_dispersion_coefficient_matches_openmm(leg_of):
    """Our closed form of OpenMM's dispersion coefficient equals OpenMM's own (evaluated on a sparse lattice)."""
    from fep.alchemy.nonbonded import dispersion_coefficient, dispersion_coefficient_openmm

    end_states, hybrid, _ = leg_of("benzene", "toluene", "solvent")
    for system in (end_states.system_a, end_states.system_b, hybrid.system):
        nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
        assert dispersion_coefficient(nb) == pytest.approx(dispersion_coefficient_openmm(nb), rel=1e-10)
    coefficients = hybrid.info.dispersion_coefficients
    assert coefficients["a"] < 0 and coefficients["b"] < coefficients["a"]  # toluene adds attraction


# ------------------------------------------------------------------------------------------------ tyk2
@pytest.fixture(scope="module")
def tyk2_edge(bench, charge_cache):
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MCSMapper

    ligands = {lig.name: lig for lig in read_ligands(bench / "tyk2" / "ligands.sdf")}
    a, b = ligands["lig_ejm_31"], ligands["lig_ejm_42"]
    prep_a = assign_charges(a, method="gasteiger", cache_dir=charge_cache)
    prep_b = assign_charges(b, method="gasteiger", cache_dir=charge_cache)
    return prep_a, prep_b, MCSMapper().map(a, b)


def test_tyk2_solvent_end_states(tyk2_edge):
    from fep.systems.endstates import build_end_states

    prep_a, prep_b, mapping = tyk2_edge
    end_states = build_end_states(prep_a, prep_b, mapping, "solvent")
    hybrid = build_hybrid(end_states, mapping)
    assert len(hybrid.info.unique_a) >= 1 and len(hybrid.info.unique_b) >= 1
    _assert_check(end_state_energy_check(end_states, hybrid, platform="Reference"))


@pytest.mark.slow
def test_tyk2_complex_end_states(tyk2_edge, bench, tmp_path):
    """The complex leg (35k atoms) of tyk2 with a phosphothreonine (phosaa14SB) and its crystal waters: 2-5
    minutes (Reference + CPU checks) on 2 busy cores."""
    from fep.systems.endstates import build_end_states
    from tests.fep.structures import TPO_RESIDUE, phosphorylated_tyk2

    prep_a, prep_b, mapping = tyk2_edge
    pdb = phosphorylated_tyk2(bench, tmp_path / "tyk2_tpo.pdb")
    end_states = build_end_states(prep_a, prep_b, mapping, "complex", protein_pdb=pdb)
    residues = list(end_states.topology_a.residues())
    assert any(r.name == "TPO" and r.id == TPO_RESIDUE for r in residues)
    assert end_states.net_charge == -4 and sum(r.name == "HOH" for r in residues) > end_states.n_waters
    hybrid = build_hybrid(end_states, mapping)
    _assert_check(end_state_energy_check(end_states, hybrid, platform="Reference"))
    # the CPU platform, in the real (triclinic) box, agrees within single-precision noise
    assert end_state_energy_check(end_states, hybrid, platform="CPU")["passed"]


def test_inconsistent_inputs_refused(leg_of):
    """A net-charge change of a periodic box hidden in the systems (no co-ion), or a force the hybrid does not
    know, is a clear MlfepError."""
    import dataclasses

    from mlfep_core import MlfepError

    end_states, _, mapping = leg_of("benzene", "toluene", "solvent")
    system_b = openmm.XmlSerializer.clone(end_states.system_b)
    nb = next(f for f in system_b.getForces() if isinstance(f, openmm.NonbondedForce))
    q, s, e = nb.getParticleParameters(end_states.ligand_atoms_b[0])
    nb.setParticleParameters(end_states.ligand_atoms_b[0], q + 1.0 * q.unit, s, e)
    with pytest.raises(MlfepError, match="net charge"):
        build_hybrid(dataclasses.replace(end_states, system_b=system_b), mapping)
    system_a = openmm.XmlSerializer.clone(end_states.system_a)
    system_a.addForce(openmm.CustomExternalForce("x"))
    with pytest.raises(HybridError, match="CustomExternalForce"):
        build_hybrid(dataclasses.replace(end_states, system_a=system_a), mapping)


def test_ring_size_change_vacuum(tmp_path, charge_cache):
    """Cyclopentyl -> cyclohexyl: the partly mapped ring becomes dummy atoms on both sides; end states exact."""
    from fep.systems.endstates import build_end_states
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MCSMapper

    csv = tmp_path / "rings.csv"
    csv.write_text("name,smiles\ncyclopentylbenzene,C1CCC(C1)c1ccccc1\ncyclohexylbenzene,C1CCC(CC1)c1ccccc1\n")
    a, b = read_ligands(csv)
    mapping = MCSMapper().map(a, b)
    prep_a = assign_charges(a, method="gasteiger", cache_dir=charge_cache)
    prep_b = assign_charges(b, method="gasteiger", cache_dir=charge_cache)
    end_states = build_end_states(prep_a, prep_b, mapping, "vacuum")
    hybrid = build_hybrid(end_states, mapping)
    assert len(hybrid.info.unique_a) >= 3 and len(hybrid.info.unique_b) >= 3
    _assert_check(end_state_energy_check(end_states, hybrid, platform="Reference"))


def test_build_leg_vacuum(series):
    from fep.alchemy.hybrid import build_leg

    ligands, prep, mapper = series
    mapping = mapper.map(ligands["benzene"], ligands["fluorobenzene"])
    leg = build_leg(prep("benzene"), prep("fluorobenzene"), mapping, "vacuum")
    assert leg.info.leg == "vacuum" and not leg.info.periodic and leg.box_vectors is None
    assert leg.info.ligand_a == "benzene" and leg.info.ligand_b == "fluorobenzene"
    assert leg.positions.shape == (leg.info.n_atoms, 3)
