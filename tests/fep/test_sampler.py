"""HREXSampler on exactly solvable problems: particles in 3-D harmonic wells whose force constant is the state.

For n independent particles in a well 0.5·k·r², the reduced energy at state k is Gamma(3n/2)-distributed:
<u> = 1.5 n and var(u) = 1.5 n, whatever k; the exact swap acceptance between two states follows from that.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
app = pytest.importorskip("openmm.app")

from fep.sampling.hrex import HREXSampler, SamplerSettings, SamplerSummary, load_samples  # noqa: E402
from fep.sampling.mixing import gibbs_swaps  # noqa: E402
from mlfep_core import InputError, SamplerError  # noqa: E402

N_PARTICLES = 10
FORCE_CONSTANTS = (1000.0, 1250.0, 1560.0, 1950.0)  # kJ/mol/nm²


def harmonic_system(n: int = N_PARTICLES, mass: float = 12.0, static_extra: bool = False):
    """n particles in a harmonic well with global force constant ``k`` (force group 1)."""
    system = openmm.System()
    well = openmm.CustomExternalForce("0.5*k*(x^2+y^2+z^2)")
    well.addGlobalParameter("k", FORCE_CONSTANTS[0])
    for i in range(n):
        system.addParticle(mass)
        well.addParticle(i, [])
    well.setForceGroup(1)
    system.addForce(well)
    if static_extra:  # a state-independent force in group 0
        extra = openmm.CustomExternalForce("0.5*200*(x-0.1)^2")
        for i in range(n):
            extra.addParticle(i, [])
        system.addForce(extra)
    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(n):
        residue = topology.addResidue("TOY", chain)
        topology.addAtom("C", app.Element.getBySymbol("C"), residue)
    positions = np.full((n, 3), 0.01)
    return system, topology, positions


def toy_settings(**overrides) -> SamplerSettings:
    values = dict(
        pressure=None,
        steps_per_iteration=25,
        n_iterations=50,
        minimization_max_iterations=0,
        equilibration_nvt_steps=500,
        equilibration_npt_steps=0,
        collision_rate="10 / ps",
        platform="Reference",
        checkpoint_interval_s=1.0,
        snapshot_interval=10,
    )
    values.update(overrides)
    return SamplerSettings(**values)


def block_se(x: np.ndarray, n_blocks: int = 20) -> float:
    """Standard error of the mean of a correlated series from block averages."""
    blocks = np.array([b.mean() for b in np.array_split(x, n_blocks)])
    return float(blocks.std(ddof=1) / np.sqrt(n_blocks))


# ------------------------------------------------------------------------------------------- swaps
def test_gibbs_swaps_sample_the_boltzmann_distribution_of_permutations():
    """With fixed energies the chain of swaps visits each assignment with probability ∝ exp(-Σ u)."""
    rng = np.random.default_rng(1)
    u_kl = rng.normal(0.0, 1.0, size=(3, 3))
    perms = list(itertools.permutations(range(3)))
    weights = np.array([np.exp(-sum(u_kl[r, s] for r, s in enumerate(p))) for p in perms])
    exact = weights / weights.sum()
    states = np.arange(3)
    counts = dict.fromkeys(perms, 0)
    for _ in range(20000):
        states, acc, prop = gibbs_swaps(u_kl, states, rng, n_attempts=1)
        counts[tuple(int(s) for s in states)] += 1
        assert prop.sum() == 2 and (acc <= prop).all() and (acc == acc.T).all()
    observed = np.array([counts[p] for p in perms]) / 20000
    assert np.allclose(observed, exact, atol=0.02), (observed, exact)


def test_gibbs_swaps_never_accept_nan_and_count_pairs():
    u_kl = np.zeros((4, 4))
    u_kl[0, 1:] = np.nan  # replica 0 cannot leave state 0
    rng = np.random.default_rng(0)
    states, accepted, proposed = gibbs_swaps(u_kl, np.arange(4), rng, n_attempts=64)
    assert proposed.sum() == 2 * 64 and (proposed == proposed.T).all()
    assert states[0] == 0 and accepted[0].sum() == 0 and proposed[0].sum() > 0
    assert (accepted[1:, 1:] == proposed[1:, 1:]).all()  # flat energies: always accepted


# ---------------------------------------------------------------------------------- detailed balance
@pytest.fixture(scope="module")
def harmonic_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hrex-harmonic")
    system, topology, positions = harmonic_system()
    states = [{"k": k} for k in FORCE_CONSTANTS]
    sampler = HREXSampler(
        system, topology, positions, None, states, toy_settings(n_iterations=2000), folder, static_force_groups={0}
    )
    summary = sampler.run()
    return summary, load_samples(folder)


def test_energies_match_boltzmann_expectation(harmonic_run):
    summary, data = harmonic_run
    assert summary.n_iterations == 2000 and data.energies.shape == (2000, 4, 4)
    u_kln = data.u_kln()
    for k in range(4):
        u = u_kln[k, k, 200:]
        expected = 1.5 * N_PARTICLES
        assert abs(u.mean() - expected) < 4 * block_se(u) + 0.1, (k, u.mean())
        assert abs(u.var() / expected - 1.0) < 0.25, (k, u.var())
        # the same configuration evaluated at state l: u_l = (k_l / k_k) u_k exactly
        for other in range(4):
            ratio = FORCE_CONSTANTS[other] / FORCE_CONSTANTS[k]
            assert np.allclose(u_kln[k, other], u_kln[k, k] * ratio, rtol=1e-9)


def test_swap_acceptance_matches_exact_value(harmonic_run):
    _, data = harmonic_run
    assert (data.accepted == data.accepted.T).all() and (data.proposed == data.proposed.T).all()
    assert data.proposed.sum() == 2 * 2000 * 64  # K³ attempts per iteration, each counted for both states
    rng = np.random.default_rng(5)
    g = rng.gamma(1.5 * N_PARTICLES, size=(2, 400000))
    for i in range(3):
        ratio = FORCE_CONSTANTS[i + 1] / FORCE_CONSTANTS[i]
        delta = (ratio - 1.0) * g[0] + (1.0 / ratio - 1.0) * g[1]
        exact = np.minimum(1.0, np.exp(-delta)).mean()
        observed = data.accepted[i, i + 1] / data.proposed[i, i + 1]
        assert abs(observed - exact) < 0.04, (i, observed, exact)


def test_every_replica_visits_every_state_evenly(harmonic_run):
    _, data = harmonic_run
    fractions = np.array([[np.mean(data.replica_states[:, r] == s) for s in range(4)] for r in range(4)])
    assert np.allclose(fractions.sum(axis=1), 1.0)
    assert np.abs(fractions - 0.25).max() < 0.12, fractions
    assert (np.sort(data.replica_states, axis=1) == np.arange(4)).all()  # a permutation at every iteration


def test_storage_layout_and_end_state_frames(harmonic_run):
    summary, data = harmonic_run
    assert (data.iterations == np.arange(2000)).all()
    assert data.states == tuple({"k": k} for k in FORCE_CONSTANTS) and data.temperature_k == pytest.approx(298.15)
    positions, box = data.end_state_frames(0)
    assert positions.shape == (200, N_PARTICLES, 3) and box is None
    assert (data.end_state_iterations(-1) == np.arange(9, 2000, 10)).all()
    # frames of state 0 are configurations that were in state 0: their energy there matches the stored one
    it = data.end_state_iterations(0)
    replica = np.argmax(data.replica_states[it] == 0, axis=1)
    stored = data.energies[it, replica, 0]
    recomputed = 0.5 * FORCE_CONSTANTS[0] * (positions**2).sum(axis=(1, 2)) / (0.0083144626181532 * 298.15)
    assert np.allclose(recomputed, stored, atol=0.05 * N_PARTICLES)
    with pytest.raises(InputError):
        data.end_state_frames(1)
    assert summary.storage_bytes > 0 and SamplerSummary.model_validate_json(summary.model_dump_json()) == summary


# ------------------------------------------------------------------------------------ extend, NaN
def test_extend_adds_exactly_n_iterations(tmp_path):
    system, topology, positions = harmonic_system(n=2)
    states = [{"k": k} for k in FORCE_CONSTANTS[:2]]
    sampler = HREXSampler(system, topology, positions, None, states, toy_settings(n_iterations=20), tmp_path)
    reports = []
    assert sampler.run(progress=reports.append).n_iterations == 20
    assert [r.phase for r in reports[:2]] == ["equilibration_nvt"] * 2 and reports[1].iteration == 2
    production = [r for r in reports if r.phase == "production"]
    assert [r.iteration for r in production] == list(range(1, 21)) and production[-1].eta_s == 0.0
    assert production[-1].ns_done == pytest.approx(20 * 25 * 4e-6) == production[0].ns_total
    summary = sampler.extend(7)
    assert summary.n_iterations == 27 and summary.iterations_this_call == 7 and summary.resumed_from_iteration == 20
    data = load_samples(tmp_path)
    assert (data.iterations == np.arange(27)).all() and data.energies.shape == (27, 2, 2)
    # running again with the original settings does not add or repeat anything
    again = HREXSampler(system, topology, positions, None, states, toy_settings(n_iterations=20), tmp_path).run()
    assert again.iterations_this_call == 0 and load_samples(tmp_path).n_iterations == 27


def _two_checkpoints(tmp_path):
    """A run with checkpoints at iterations 10 and 20 (chunks [0, 10) and [10, 20)); returns what remakes it."""
    system, topology, positions = harmonic_system(n=2)
    states = [{"k": k} for k in FORCE_CONSTANTS[:2]]

    def sampler(n):
        return HREXSampler(system, topology, positions, None, states, toy_settings(n_iterations=n), tmp_path)

    sampler(10).run()
    sampler(10).extend(10)
    return sampler


def test_a_damaged_last_chunk_is_named_and_the_run_resumes_from_the_previous_checkpoint(tmp_path, caplog):
    sampler = _two_checkpoints(tmp_path)
    reference = load_samples(tmp_path).energies.copy()
    chunk = tmp_path / "data" / "iter_000000010_000000020.npz"
    chunk.write_bytes(chunk.read_bytes()[:50])  # a disk that filled up, a copy cut short
    with caplog.at_level("WARNING"):
        summary = sampler(20).run()
    warned = [r.getMessage() for r in caplog.records if "previous checkpoint" in r.getMessage()]
    assert len(warned) == 1 and chunk.name in warned[0] and "BadZipFile" in warned[0] and "iteration 10" in warned[0]
    assert summary.resumed_from_iteration == 10 and summary.iterations_this_call == 10
    # the redone iterations equal the lost ones: the resume reseeds from the checkpoint alone
    np.testing.assert_array_equal(load_samples(tmp_path).energies, reference)


def test_a_damaged_checkpoint_file_falls_back_to_the_previous_one(tmp_path):
    sampler = _two_checkpoints(tmp_path)
    (tmp_path / "checkpoint.json").write_text('{"format": 1, "iter')  # cut short
    assert sampler(20).run().resumed_from_iteration == 10
    assert load_samples(tmp_path).n_iterations == 20


def test_a_chunk_both_checkpoints_need_is_named_and_nothing_is_sampled(tmp_path):
    sampler = _two_checkpoints(tmp_path)
    chunk = tmp_path / "data" / "iter_000000000_000000010.npz"
    chunk.write_bytes(chunk.read_bytes()[:50])
    checkpoint = (tmp_path / "checkpoint.json").read_text()
    with pytest.raises(InputError, match=rf"{chunk.name}: damaged \(BadZipFile.*delete .* to rerun this leg"):
        sampler(30).run()
    assert (tmp_path / "checkpoint.json").read_text() == checkpoint  # nothing sampled, nothing rewritten
    with pytest.raises(InputError, match=chunk.name):
        load_samples(tmp_path)


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint_and_says_what_to_do(tmp_path, monkeypatch):
    import errno

    from fep.sampling import storage
    from mlfep_core import DiskFullError

    sampler = _two_checkpoints(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("checkpoint*.json")}
    real = storage.atomic_write_bytes

    def full(path, data):
        if "state" in str(path):  # the chunk is written, the replica state no longer fits
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(storage, "atomic_write_bytes", full)
    with pytest.raises(DiskFullError, match=r"no space left on the device .* iteration 30; the last good checkpoint "
                       r"\(iteration 20\) is kept: free disk space, then resume"):  # fmt: skip
        sampler(10).extend(10)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("checkpoint*.json")} == before
    assert load_samples(tmp_path).n_iterations == 20
    monkeypatch.setattr(storage, "atomic_write_bytes", real)  # space freed: the resume goes on from iteration 20
    assert sampler(30).run().resumed_from_iteration == 20 and load_samples(tmp_path).n_iterations == 30


def test_a_box_that_shrinks_below_the_cutoff_is_not_retried_with_smaller_steps():
    """A smaller step cannot help a box the barostat shrank below 2 x cutoff: one clear error, no retries."""
    from fep.sampling.engine import EnergyEngine

    class Shrinking:
        def step(self, n):
            raise openmm.OpenMMException("The periodic box size has decreased to less than twice the nonbonded cutoff.")

    system, _, _ = harmonic_system(n=2)
    engine = EnergyEngine(system, [{"k": 1.0}], toy_settings(), openmm.Platform.getPlatformByName("Reference"),
                          {0}, {1}, "run/solvent")  # fmt: skip
    engine._integrator = Shrinking()
    with pytest.raises(SamplerError, match=r"run/solvent: the periodic box shrank below twice the nonbonded cutoff"):
        engine.step(10, 0, 0, np.zeros((2, 3)), None)


def test_blow_up_rolls_back_and_retries_with_smaller_timestep(tmp_path):
    """k = 6.75e6 kJ/mol/nm² with 12 amu: ω·dt = 3 at 4 fs (unstable), 1.5 at 2 fs (stable)."""
    system, topology, positions = harmonic_system(n=2)
    states = [{"k": 1000.0}, {"k": 6.75e6}]
    settings = toy_settings(n_iterations=10, equilibration_nvt_steps=0, timestep="4 fs")
    summary = HREXSampler(system, topology, positions, None, states, settings, tmp_path).run()
    assert summary.nan_recoveries == 1 and summary.timestep_fs == pytest.approx(2.0)
    data = load_samples(tmp_path)
    assert (data.iterations == np.arange(10)).all() and np.isfinite(data.energies).all()
    assert data.timestep_fs == pytest.approx(2.0)


def test_blow_up_that_persists_raises_sampler_error_and_saves_frame(tmp_path):
    system, topology, positions = harmonic_system(n=2)
    states = [{"k": 1000.0}, {"k": 1.0e10}]  # unstable even at 0.5 fs
    settings = toy_settings(n_iterations=10, equilibration_nvt_steps=0, max_nan_retries=3)
    with pytest.raises(SamplerError, match="after 3 retries") as info:
        HREXSampler(system, topology, positions, None, states, settings, tmp_path).run()
    pdbs = list(tmp_path.glob("failed_*.pdb")) + list(tmp_path.glob("failed_*.cif"))
    assert len(pdbs) == 1 and str(pdbs[0]) in str(info.value)
    assert pdbs[0].stat().st_size > 0
    checkpoint = json.loads((tmp_path / "checkpoint.json").read_text())
    assert checkpoint["iteration"] == 0  # nothing after the post-equilibration checkpoint was kept


def test_blow_up_during_equilibration_raises_after_retries(tmp_path):
    system, topology, positions = harmonic_system(n=2)
    settings = toy_settings(n_iterations=10, equilibration_nvt_steps=200, max_nan_retries=1)
    with pytest.raises(SamplerError, match="equilibration"):
        HREXSampler(system, topology, positions, None, [{"k": 1.0e10}], settings, tmp_path).run()
    assert list(tmp_path.glob("failed_*.pdb"))


# ------------------------------------------------------------------------------------------- inputs
def test_input_errors(tmp_path):
    system, topology, positions = harmonic_system(n=2)
    settings = toy_settings()
    with pytest.raises(InputError, match="state 1"):
        HREXSampler(system, topology, positions, None, [{"k": 1.0}, {"q": 1.0}], settings, tmp_path)
    with pytest.raises(InputError, match="static force group 1"):
        HREXSampler(system, topology, positions, None, [{"k": 1.0}], settings, tmp_path, static_force_groups={1})
    with pytest.raises(InputError, match="non-periodic"):
        HREXSampler(system, topology, positions, None, [{"k": 1.0}], toy_settings(pressure="1 bar"), tmp_path)
    with pytest.raises(InputError, match="shape"):
        HREXSampler(system, topology, positions[:1], None, [{"k": 1.0}], settings, tmp_path)
    with pytest.raises(InputError, match="not global parameters"):
        HREXSampler(system, topology, positions, None, [{"lam": 1.0}], settings, tmp_path / "x").run()
    with pytest.raises(ValueError, match="bare number"):
        SamplerSettings(timestep=4)
    HREXSampler(system, topology, positions, None, [{"k": 1.0}], toy_settings(n_iterations=2), tmp_path / "y").run()
    with pytest.raises(InputError, match="different timestep"):
        HREXSampler(
            system, topology, positions, None, [{"k": 1.0}], toy_settings(timestep="2 fs"), tmp_path / "y"
        ).run()


# -------------------------------------------------------------------------------------- NPT, water
def test_npt_water_box_energy_matrix_includes_pv_and_static_groups(tmp_path):
    """Stored u = β(U_l + pV) of every replica, checked against a fresh context; volumes fluctuate."""
    import openmm.unit as u

    forcefield = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(forcefield, boxSize=openmm.Vec3(1.9, 1.9, 1.9) * u.nanometer)
    system = forcefield.createSystem(
        modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.8 * u.nanometer, constraints=app.HBonds
    )
    restraint = openmm.CustomExternalForce("lam*500*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
    restraint.addGlobalParameter("lam", 0.0)
    for name in ("x0", "y0", "z0"):
        restraint.addPerParticleParameter(name)
    start = modeller.positions[0].value_in_unit(u.nanometer)
    restraint.addParticle(0, list(start))
    restraint.setForceGroup(1)
    system.addForce(restraint)
    states = [{"lam": lam} for lam in (0.0, 0.5, 1.0)]
    settings = SamplerSettings(
        pressure="1 bar",
        timestep="2 fs",
        steps_per_iteration=50,
        n_iterations=6,
        minimization_max_iterations=50,
        equilibration_nvt_steps=50,
        equilibration_npt_steps=100,
        barostat_frequency=5,
        snapshot_interval=1,
        platform="CPU",
    )
    box = np.array(modeller.topology.getPeriodicBoxVectors().value_in_unit(u.nanometer))
    sampler = HREXSampler(
        system, modeller.topology, modeller.positions, box, states, settings, tmp_path, static_force_groups={0}
    )
    summary = sampler.run()
    assert summary.platform == "CPU" and summary.n_iterations == 6
    data = load_samples(tmp_path)
    assert data.pressure_bar == pytest.approx(1.0)
    frames, boxes = data.end_state_frames(0)
    assert frames.shape == (6, system.getNumParticles(), 3) and boxes.shape == (6, 3, 3)
    volumes = np.prod(np.diagonal(boxes, axis1=1, axis2=2), axis=1)
    assert np.ptp(volumes) > 0  # the barostat moved the box

    final = np.load(tmp_path / data.checkpoint["state_file"])  # replica configurations of the last iteration
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    beta = 1.0 / (0.0083144626181532 * 298.15)
    for replica in range(3):
        context.setPeriodicBoxVectors(*final["boxes"][replica])
        context.setPositions(final["positions"][replica])
        volume = np.prod(np.diag(final["boxes"][replica]))
        for state, params in enumerate(states):
            context.setParameter("lam", params["lam"])
            energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
            pv = beta * 1.0 * volume * 0.0602214076
            assert data.energies[-1, replica, state] - beta * energy == pytest.approx(pv, abs=0.02)


def test_a_folder_in_use_by_another_run_is_refused(tmp_path):
    from fep.sampling.storage import SamplerStore

    system, topology, positions = harmonic_system(n=2)
    held = SamplerStore(tmp_path).lock()
    try:
        with pytest.raises(SamplerError, match="another process"):
            HREXSampler(system, topology, positions, None, [{"k": 1.0}], toy_settings(), tmp_path).run()
    finally:
        held.close()
    assert (
        HREXSampler(system, topology, positions, None, [{"k": 1.0}], toy_settings(), tmp_path).run().n_iterations == 50
    )


def test_resume_accepts_the_same_settings_written_differently(tmp_path):
    system, topology, positions = harmonic_system(n=2)
    HREXSampler(system, topology, positions, None, [{"k": 1.0}], toy_settings(n_iterations=2), tmp_path).run()
    same = toy_settings(n_iterations=4, timestep="0.004 ps", collision_rate="0.01 / fs")
    summary = HREXSampler(system, topology, positions, None, [{"k": 1.0}], same, tmp_path).run()
    assert summary.resumed_from_iteration == 2 and summary.n_iterations == 4


def test_select_platform():
    from fep.sampling.platforms import PlatformError, platform_properties, select_platform

    assert select_platform("auto").getName() in ("CUDA", "OpenCL", "CPU")  # never Reference unless asked
    assert select_platform("Reference").getName() == "Reference"
    assert platform_properties("CUDA", "mixed") == {"Precision": "mixed"} and platform_properties("CPU") == {}
    with pytest.raises(InputError, match="not one of"):
        select_platform("Metal")
    names = {openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())}
    if "CUDA" not in names:
        with pytest.raises(PlatformError, match="CUDA"):
            select_platform("CUDA")


@pytest.mark.slow
def test_hybrid_vacuum_leg_runs_and_mixes(bench, charge_cache, tmp_path):
    """benzene → toluene vacuum leg of fep.alchemy.hybrid through the sampler: finite energies, end states match A/B."""
    from fep.alchemy.hybrid import build_leg
    from fep.alchemy.lambdas import LambdaProtocol
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MCSMapper

    ligands = {lig.name: lig for lig in read_ligands(bench / "freesolv" / "rhfe_benzenes_ligands.csv")}
    prep = {n: assign_charges(ligands[n], method="gasteiger", cache_dir=charge_cache) for n in ("benzene", "toluene")}
    mapping = MCSMapper().map(ligands["benzene"], ligands["toluene"])
    leg = build_leg(prep["benzene"], prep["toluene"], mapping, "vacuum")
    windows = LambdaProtocol.default_protocol(5).windows
    settings = toy_settings(
        n_iterations=30, steps_per_iteration=250, minimization_max_iterations=100, platform="CPU", collision_rate="1/ps"
    )
    summary = HREXSampler(
        leg.system, leg.topology, leg.positions, leg.box_vectors, windows, settings, tmp_path,
        static_force_groups=leg.info.lambda_independent_groups,
    ).run()  # fmt: skip
    data = load_samples(tmp_path)
    assert summary.n_iterations == 30 and np.isfinite(data.energies).all()
    assert summary.mean_neighbor_acceptance > 0.2
    frames, box = data.end_state_frames(-1)
    assert frames.shape == (3, leg.system.getNumParticles(), 3) and box is None
