"""REST2 solute tempering (fep.alchemy.rest): end states untouched, the ligand's interactions scaled exactly as
Wang, Friesner & Berne define them (s inside the region, √s to the environment), and a torsional barrier that
plain HREX does not cross and REST2 does."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")

from fep.alchemy.hybrid import FORCE_GROUPS, build_hybrid  # noqa: E402
from fep.alchemy.lambdas import LAMBDA_PARAMETERS, default_protocol  # noqa: E402
from fep.alchemy.rest import add_rest2, region_of, rest2_scales, rest2_states  # noqa: E402
from tests.tiny import TINY_PROTOCOL  # noqa: E402

SERIES = "name,smiles\nbenzene,c1ccccc1\ntoluene,Cc1ccccc1\nphenol,Oc1ccccc1\n"
GROUPS_BONDS_ANGLES = 30  # a spare force group for the unscaled bonds and angles


@pytest.fixture(scope="module")
def legs(tmp_path_factory, charge_cache):
    """Builder of (end states, hybrid) of a toluene -> phenol leg (an element change at the junction, dummies at
    both ends) in vacuum or solvent."""
    from fep.systems.endstates import build_end_states
    from fep.systems.forcefield import SystemSettings
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings, MCSMapper

    csv = tmp_path_factory.mktemp("rest2") / "series.csv"
    csv.write_text(SERIES)
    ligands = {lig.name: lig for lig in read_ligands(csv, align=False)}
    prepared = {n: assign_charges(lig, method="gasteiger", cache_dir=charge_cache) for n, lig in ligands.items()}
    mapping = MCSMapper(MappingSettings(use_poses=False)).map(ligands["toluene"], ligands["phenol"])
    built = {}

    def build(leg: str):
        if leg not in built:
            settings = SystemSettings(solvent_padding="0.9 nm", nonbonded_cutoff="0.9 nm")
            end_states = build_end_states(prepared["toluene"], prepared["phenol"], mapping, leg, settings=settings)
            built[leg] = (end_states, build_hybrid(end_states, mapping))
        return built[leg]

    return build


def _rest(hybrid):
    system = copy.deepcopy(hybrid.system)
    counts = add_rest2(system, region_of(hybrid.info), LAMBDA_PARAMETERS, FORCE_GROUPS["valence_lambda"])
    return system, counts


def _energy(system, positions, parameters, groups=None, box=None) -> float:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    if box is not None:
        context.setPeriodicBoxVectors(*(openmm.Vec3(*row) for row in box))
    context.setPositions(positions)
    for name, value in parameters.items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, **({} if groups is None else {"groups": groups}))
    return state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)


def _jiggled(hybrid, seed=3):
    rng = np.random.default_rng(seed)
    return hybrid.positions + rng.normal(0.0, 0.003, hybrid.positions.shape)


def _bonds_angles_apart(system) -> None:
    """Put bonds and angles (never scaled by REST2) in their own group."""
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce | openmm.HarmonicAngleForce | openmm.CustomBondForce):
            force.setForceGroup(GROUPS_BONDS_ANGLES)
        if isinstance(force, openmm.CustomAngleForce):
            force.setForceGroup(GROUPS_BONDS_ANGLES)


def test_scales_rise_from_one_at_the_ends():
    scales = rest2_scales(11, 298.15, 600.0)
    assert scales[0] == scales[-1] == 1.0
    assert scales[5] == pytest.approx(298.15 / 600.0)
    assert all(b <= a for a, b in itertools.pairwise(scales[:6]))
    assert rest2_scales(11, 298.15, 298.15) == (1.0,) * 11


@pytest.mark.parametrize("leg", ["vacuum", "solvent"])
def test_rest2_end_states_equal_the_plain_hybrid(legs, leg):
    """At both end windows (s = 1) and at every window with s forced to 1, the REST2 system's energy is the plain
    hybrid's to round-off: the end states are untouched."""
    _, hybrid = legs(leg)
    system, counts = _rest(hybrid)
    assert counts["particles"] == len(region_of(hybrid.info)) and counts["torsions"] > 0
    windows = default_protocol(5).windows
    states = rest2_states(windows, rest2_scales(5, 298.15, 600.0))
    plain_states = rest2_states(windows, [1.0] * 5)
    positions, box = _jiggled(hybrid), hybrid.box_vectors
    for k in (0, 4):
        reference = _energy(hybrid.system, positions, windows[k], box=box)
        assert _energy(system, positions, states[k], box=box) == pytest.approx(reference, abs=1e-6, rel=1e-10)
    for k in (1, 2):
        reference = _energy(hybrid.system, positions, windows[k], box=box)
        assert _energy(system, positions, plain_states[k], box=box) == pytest.approx(reference, abs=1e-6, rel=1e-10)
        assert abs(_energy(system, positions, states[k], box=box) - reference) > 1.0  # the middle is scaled


def test_vacuum_scaling_is_s_times_every_ligand_interaction(legs):
    """In vacuum everything but bonds and angles is the region's own energy: E(λ, s) = E_bonds+angles(λ) +
    s·(E(λ) − E_bonds+angles(λ)) at any λ."""
    _, hybrid = legs("vacuum")
    plain = copy.deepcopy(hybrid.system)
    _bonds_angles_apart(plain)
    system, _ = _rest(hybrid)
    _bonds_angles_apart(system)
    positions = _jiggled(hybrid)
    everything_else = set(range(32)) - {GROUPS_BONDS_ANGLES}
    for window in default_protocol(5).windows[1:4]:
        for s in (0.3, 0.7):
            (state,) = rest2_states([window], [s])
            rest_part = _energy(system, positions, state, everything_else)
            plain_part = _energy(plain, positions, window, everything_else)
            assert rest_part == pytest.approx(s * plain_part, rel=1e-9, abs=1e-6)
            assert _energy(system, positions, state, {GROUPS_BONDS_ANGLES}) == pytest.approx(
                _energy(plain, positions, window, {GROUPS_BONDS_ANGLES}), rel=1e-12, abs=1e-9
            )


def _without_dispersion_correction(system) -> None:
    for index in reversed(range(system.getNumForces())):
        force = system.getForce(index)
        if isinstance(force, openmm.NonbondedForce):
            force.setUseDispersionCorrection(False)
        elif isinstance(force, openmm.CustomNonbondedForce) and force.getName() == "hybrid_dispersion_correction":
            system.removeForce(index)


def _zeroed(system, atoms) -> openmm.System:
    """A copy with the charges and LJ of ``atoms`` (and their offsets and exceptions) switched off."""
    system = copy.deepcopy(system)
    atoms = set(int(a) for a in atoms)
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            for i in atoms:
                _, sigma, _ = force.getParticleParameters(i)
                force.setParticleParameters(i, 0.0, sigma, 0.0)
            for n in range(force.getNumParticleParameterOffsets()):
                name, i, *_ = force.getParticleParameterOffset(n)
                if i in atoms:
                    force.setParticleParameterOffset(n, name, i, 0.0, 0.0, 0.0)
            for n in range(force.getNumExceptions()):
                i, j, _, sigma, _ = force.getExceptionParameters(n)
                if i in atoms or j in atoms:
                    force.setExceptionParameters(n, i, j, 0.0, sigma, 0.0)
            for n in range(force.getNumExceptionParameterOffsets()):
                name, idx, *_ = force.getExceptionParameterOffset(n)
                i, j, *_ = force.getExceptionParameters(idx)
                if i in atoms or j in atoms:
                    force.setExceptionParameterOffset(n, name, idx, 0.0, 0.0, 0.0)
        elif isinstance(force, openmm.CustomNonbondedForce) and force.getName() == "hybrid_softcore":
            names = [force.getPerParticleParameterName(k) for k in range(force.getNumPerParticleParameters())]
            for i in atoms:
                values = list(force.getParticleParameters(i))
                values[names.index("rea")] = values[names.index("reb")] = 0.0
                force.setParticleParameters(i, values)
    return system


def test_solvent_scaling_is_s_inside_and_root_s_to_the_water(legs):
    """With PME and water: the nonbonded energy is E_ww + √s·E_lw + s·E_ll, the three parts taken from the plain
    hybrid with the ligand's (or the water's) charges and LJ switched off."""
    _, hybrid = legs("solvent")
    plain = copy.deepcopy(hybrid.system)
    _without_dispersion_correction(plain)
    system, _ = _rest(hybrid)
    _without_dispersion_correction(system)
    ligand = region_of(hybrid.info)
    water = sorted(set(range(hybrid.info.n_atoms)) - set(ligand.tolist()))
    groups = {FORCE_GROUPS["nonbonded"], FORCE_GROUPS["softcore"]}
    positions, box = _jiggled(hybrid), hybrid.box_vectors
    window = default_protocol(5).windows[2]
    total = _energy(plain, positions, window, groups, box)
    e_ww = _energy(_zeroed(plain, ligand), positions, window, groups, box)
    e_ll = _energy(_zeroed(plain, water), positions, window, groups, box)
    e_lw = total - e_ww - e_ll
    assert abs(e_lw) > 1.0 and abs(e_ll) > 1.0
    for s in (0.25, 0.6):
        (state,) = rest2_states([window], [s])
        expected = e_ww + math.sqrt(s) * e_lw + s * e_ll
        assert _energy(system, positions, state, groups, box) == pytest.approx(expected, rel=1e-7, abs=1e-4)


def test_static_torsions_of_the_region_leave_the_static_group(legs):
    """The sampler evaluates the λ-independent group once per replica: a REST2-scaled torsion must not be in it."""
    _, hybrid = legs("vacuum")
    system, _ = _rest(hybrid)
    region = set(region_of(hybrid.info).tolist())
    static = FORCE_GROUPS["valence"]
    for force in system.getForces():
        if isinstance(force, openmm.PeriodicTorsionForce) and force.getForceGroup() == static:
            for n in range(force.getNumTorsions()):
                *atoms, _, _, k = force.getTorsionParameters(n)
                assert not (set(atoms) & region) or k.value_in_unit(openmm.unit.kilojoule_per_mole) == 0.0


BARRIER_KJ = 40.0  # 9.6 kcal/mol (16 kT at 298 K) between the two twisted basins of the inter-ring torsion


def _biphenyl_with_a_barrier(charge_cache, tmp_path):
    """Vacuum biphenyl -> 4-methylbiphenyl whose inter-ring torsion C-C1-C1'-C gets an extra
    k·(1 + cos 2φ) term (both end states): minima at φ = ±90°, a 40 kJ/mol barrier at 0° and 180°. The labelled
    dihedral then sits in the +90° or the −90° basin, and only a ring flip over the barrier changes it."""
    from rdkit import Chem

    from fep.systems.endstates import build_end_states
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings, MCSMapper

    csv = tmp_path / "biphenyls.csv"
    csv.write_text("name,smiles\nbiphenyl,c1ccc(cc1)-c1ccccc1\nmethylbiphenyl,Cc1ccc(cc1)-c1ccccc1\n")
    ligands = {lig.name: lig for lig in read_ligands(csv, align=False)}
    prepared = {n: assign_charges(lig, method="gasteiger", cache_dir=charge_cache) for n, lig in ligands.items()}
    mapping = MCSMapper(MappingSettings(use_poses=False)).map(ligands["biphenyl"], ligands["methylbiphenyl"])
    mol = ligands["biphenyl"].to_rdkit()
    bridge = next(b for b in mol.GetBonds() if not b.IsInRing() and b.GetBondType() == Chem.BondType.SINGLE
                  and b.GetBeginAtom().GetAtomicNum() == b.GetEndAtom().GetAtomicNum() == 6)  # fmt: skip
    j, k = bridge.GetBeginAtomIdx(), bridge.GetEndAtomIdx()
    i = next(a.GetIdx() for a in mol.GetAtomWithIdx(j).GetNeighbors() if a.GetIdx() != k and a.GetAtomicNum() == 6)
    m = next(a.GetIdx() for a in mol.GetAtomWithIdx(k).GetNeighbors() if a.GetIdx() != j and a.GetAtomicNum() == 6)
    dihedral_a = (i, j, k, m)
    assert all(x in mapping.mapping for x in dihedral_a)
    end_states = build_end_states(prepared["biphenyl"], prepared["methylbiphenyl"], mapping, "vacuum")
    for system, atoms, to_sys in (
        (end_states.system_a, dihedral_a, end_states.ligand_atoms_a),
        (end_states.system_b, tuple(mapping.mapping[x] for x in dihedral_a), end_states.ligand_atoms_b),
    ):
        extra = openmm.PeriodicTorsionForce()
        extra.addTorsion(*(int(to_sys[x]) for x in atoms), 2, 0.0, BARRIER_KJ / 2.0)
        system.addForce(extra)
    hybrid = build_hybrid(end_states, mapping)
    return hybrid, tuple(int(end_states.ligand_atoms_a[x]) for x in dihedral_a)


def _dihedral_deg(frames, atoms):
    p0, p1, p2, p3 = (frames[:, a] for a in atoms)
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 /= np.linalg.norm(b1, axis=1, keepdims=True)
    v = b0 - np.sum(b0 * b1, axis=1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, axis=1, keepdims=True) * b1
    x = np.sum(v * w, axis=1)
    y = np.sum(np.cross(b1, v) * w, axis=1)
    return np.degrees(np.arctan2(y, x))


@pytest.mark.slow
def test_rest2_crosses_a_torsion_barrier_that_plain_hrex_does_not(charge_cache, tmp_path):
    """Same edge, same seeds, same length: plain HREX keeps state A's labelled inter-ring dihedral in the basin it
    started in; with REST2 (ligand at 1200 K in the middle window, the barrier ×¼ there) state A visits both
    basins; ΔG(A→B) agrees within error (the barrier is far from the perturbed para position)."""
    from analysis.mbar import analyse_leg
    from fep.sampling.hrex import HREXSampler
    from fep.sampling.settings import SamplerSettings
    from fep.sampling.storage import load_samples

    hybrid, dihedral = _biphenyl_with_a_barrier(charge_cache, tmp_path)
    windows = default_protocol(7).windows
    settings = SamplerSettings(
        pressure=None, steps_per_iteration=250, n_iterations=400, minimization_max_iterations=100,
        equilibration_nvt_steps=2500, equilibration_npt_steps=0, snapshot_interval=1, platform="CPU",
        checkpoint_interval_s=3600,
    )  # fmt: skip
    results, basins = {}, {}
    for label in ("plain", "rest2"):
        system, states = hybrid.system, windows
        if label == "rest2":
            system, _ = _rest(hybrid)
            states = rest2_states(windows, rest2_scales(len(windows), 298.15, 1200.0))
        folder = tmp_path / label
        HREXSampler(system, hybrid.topology, hybrid.positions, None, states, settings, folder,
                    static_force_groups={FORCE_GROUPS["valence"]}).run()  # fmt: skip
        data = load_samples(folder)
        frames, _ = data.end_state_frames(0)
        phi = _dihedral_deg(frames, dihedral)
        basins[label] = float(np.mean(phi > 0.0))
        results[label] = analyse_leg(data.energies, data.replica_states, data.temperature_k, leg="vacuum")
    assert basins["plain"] in (0.0, 1.0), basins  # never crossed
    assert 0.05 < basins["rest2"] < 0.95, basins  # both basins sampled (0.14 of the frames in the second, measured)
    sigma = math.hypot(results["plain"].dg_err_kcal_mol, results["rest2"].dg_err_kcal_mol)
    assert abs(results["plain"].dg_kcal_mol - results["rest2"].dg_kcal_mol) < 4 * sigma + 0.05, results


def test_protocol_states_carry_rest2_and_a_leg_runs_with_it(tmp_path, charge_cache):
    """``rest2.enabled`` in a protocol: the sampler's states carry the scaling (1 at both end windows), a leg
    runs with them, and a protocol whose tempering would cool the ligand is refused."""
    import json

    from fep.execution.runner import run_leg
    from fep.protocol import load_protocol
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings, MCSMapper
    from mlfep_core import InputError

    base = load_protocol("smoke")
    protocol = base.model_copy(
        update={
            "rest2": base.rest2.model_copy(update={"enabled": True}),
            "sampler": base.sampler.model_copy(update={**TINY_PROTOCOL["sampler"], "n_iterations": 8}),
        }
    )
    states = protocol.states()
    assert [s["rest_e"] for s in (states[0], states[-1])] == [0.0, 0.0]
    assert min(s["rest_e"] for s in states) == pytest.approx(298.15 / 600.0 - 1.0)
    assert base.states() == base.windows()
    csv = tmp_path / "series.csv"
    csv.write_text(SERIES)
    ligands = {lig.name: lig for lig in read_ligands(csv, align=False)}
    prepared = {n: assign_charges(lig, method="gasteiger", cache_dir=charge_cache) for n, lig in ligands.items()}
    mapping = MCSMapper(MappingSettings(use_poses=False)).map(ligands["benzene"], ligands["toluene"])
    result = run_leg(prepared["benzene"], prepared["toluene"], mapping, "vacuum", protocol, tmp_path / "leg")
    assert math.isfinite(result.dg_kcal_mol)
    recorded = json.loads((tmp_path / "leg" / "sampler" / "sampler.json").read_text())["states"]
    assert recorded == [dict(s) for s in states]
    with pytest.raises(InputError, match="max_temperature"):
        load_protocol_with(tmp_path, "base: smoke\nrest2: {enabled: true, max_temperature: 250 K}\n")


def load_protocol_with(tmp_path, text: str):
    from fep.protocol import load_protocol

    path = tmp_path / "cool.yaml"
    path.write_text(text)
    return load_protocol(str(path))


def test_the_leg_key_holds_rest2_and_placement_only_when_enabled(tmp_path, charge_cache):
    """A protocol with both options off keys its legs as before the options existed (runs started then still
    resume); enabling one changes the key and names the field."""
    from fep.execution.legkey import key_changes, leg_key
    from fep.execution.rundir import RunSpec
    from fep.protocol import load_protocol
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings, MCSMapper

    csv = tmp_path / "series.csv"
    csv.write_text(SERIES)
    a, b = read_ligands(csv, align=False)[:2]
    mapping = MCSMapper(MappingSettings(use_poses=False)).map(a, b)
    prep_a, prep_b = (assign_charges(x, method="gasteiger", cache_dir=charge_cache) for x in (a, b))
    base = load_protocol("smoke")
    plain = leg_key(RunSpec(mode="hydration", protocol=base), prep_a, prep_b, mapping, "solvent", 0, {})
    assert not any(k.startswith(("rest2.", "lambda_placement.")) for k in plain.protocol)
    hot = base.model_copy(update={"rest2": base.rest2.model_copy(update={"enabled": True})})
    tempered = leg_key(RunSpec(mode="hydration", protocol=hot), prep_a, prep_b, mapping, "solvent", 0, {})
    assert tempered.key != plain.key
    assert any("protocol.rest2.enabled: None -> True" in text for _, text in key_changes(plain, tempered))
