"""ΔU between two Lennard-Jones cutoff schemes equals OpenMM's own energies of the two schemes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from fep.systems.cutoffs import LJScheme, LJSchemeChange, lj_scheme
from mlfep_core import InputError

from .test_systems import _mapping, _prepared

pytest.importorskip("openmm")

SINGLE = 0.02  # kJ/mol: the CPU platform's single-precision pair sums over ~10^5 pairs


@pytest.fixture(scope="module")
def solvated(tmp_path_factory):
    """Toluene in a rhombic dodecahedron, LJ switched 0.5-0.6 nm."""
    from fep.systems.endstates import SystemSettings, build_end_states

    tmp = tmp_path_factory.mktemp("charges")
    benzene = _prepared("benzene", "c1ccccc1", 1, tmp)
    toluene = _prepared("toluene", "Cc1ccccc1", 7, tmp)
    settings = SystemSettings(solvent_padding="1.4 nm", nonbonded_cutoff="0.6 nm", lj_switch_width="0.1 nm")
    end = build_end_states(benzene, toluene, _mapping(benzene, toluene), "solvent", settings=settings)
    return end.system_b, np.asarray(end.positions_b), np.asarray(end.box_vectors)


def _openmm_lj(system, positions, box, scheme: LJScheme, dispersion: bool = True) -> float:
    """OpenMM's NonbondedForce energy with every charge zeroed (LJ + exceptions [+ dispersion correction]).

    On the CPU platform: OpenMM 8.6.1's Reference platform misses pairs in this triclinic cell for cutoffs between
    about 0.62 and 0.98 nm (4.9 kJ/mol of LJ at 0.9 nm), where the CPU platform and a brute-force sum agree.
    """
    import openmm
    import openmm.unit as u

    probe = copy.deepcopy(system)
    for k in reversed(range(probe.getNumForces())):
        if not isinstance(probe.getForce(k), openmm.NonbondedForce):
            probe.removeForce(k)
    force = probe.getForce(0)
    force.setUseDispersionCorrection(dispersion)
    for i in range(force.getNumParticles()):
        _, s, e = force.getParticleParameters(i)
        force.setParticleParameters(i, 0.0, s, e)
    for k in range(force.getNumExceptions()):
        i, j, _, s, e = force.getExceptionParameters(k)
        force.setExceptionParameters(k, i, j, 0.0, s, e)
    force.setCutoffDistance(scheme.cutoff_nm)
    force.setUseSwitchingFunction(scheme.switch_nm is not None)
    if scheme.switch_nm is not None:
        force.setSwitchingDistance(scheme.switch_nm)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(probe, openmm.VerletIntegrator(0.001), platform, {"Threads": "1"})
    context.setPeriodicBoxVectors(*box)
    context.setPositions(positions * u.nanometer)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)


def test_scheme_change_matches_openmm_in_a_triclinic_box(solvated):
    system, positions, box = solvated
    old = lj_scheme(system)
    assert old == LJScheme(0.6, 0.5)
    new = LJScheme(0.75, 0.65)
    assert 2 * new.cutoff_nm <= box[2, 2], "the test box must let OpenMM itself use the new cutoff"
    change = LJSchemeChange(system, new)
    # Move some molecules' atoms by whole lattice vectors: the energy must not see it (minimum images).
    rng = np.random.default_rng(3)
    moved = positions + rng.integers(-1, 2, size=(len(positions), 3)) @ box
    expected = _openmm_lj(system, positions, box, new) - _openmm_lj(system, positions, box, old)
    got = change.energies(moved[None], box[None])[0]
    assert abs(expected) > 0.1, "the two schemes must differ measurably on this box"
    assert got == pytest.approx(expected, abs=SINGLE)
    # Scaling the box changes the dispersion correction as 1/V, exactly as OpenMM does.
    scaled_box, scaled = 1.02 * box, 1.02 * positions
    expected = _openmm_lj(system, scaled, scaled_box, new) - _openmm_lj(system, scaled, scaled_box, old)
    assert change.energies(scaled[None], scaled_box[None])[0] == pytest.approx(expected, abs=SINGLE)


def _supercell(system, positions, box):
    """The 2 x 2 x 2 supercell of a system (NonbondedForce only, charges zeroed), its positions and box."""
    import openmm

    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    n = system.getNumParticles()
    big = openmm.System()
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    shifts = [np.array(s) @ box for s in np.ndindex(2, 2, 2)]
    for _ in shifts:
        for i in range(n):
            big.addParticle(system.getParticleMass(i))
            _, s, e = force.getParticleParameters(i)
            nb.addParticle(0.0, s, e)
    for copy_index in range(len(shifts)):
        for k in range(force.getNumExceptions()):
            i, j, _, s, e = force.getExceptionParameters(k)
            nb.addException(i + copy_index * n, j + copy_index * n, 0.0, s, e)
    big.addForce(nb)
    big.setDefaultPeriodicBoxVectors(*(2 * box))
    return big, np.concatenate([positions + s for s in shifts]), 2 * box


def test_a_cutoff_beyond_what_openmm_takes_for_the_cell_is_the_lattice_energy(solvated):
    """Sage's 0.9 nm does not fit a fast-tier cell for OpenMM (half its height); the lattice sum is the supercell's."""
    system, positions, box = solvated
    new = LJScheme(1.2, 1.1)
    assert 2 * new.cutoff_nm > box[2, 2], "the new cutoff must be one OpenMM refuses for this cell"
    assert 2 * new.cutoff_nm <= 2 * box[2, 2]
    change = LJSchemeChange(system, new)
    big, big_positions, big_box = _supercell(system, positions, box)
    expected = _openmm_lj(big, big_positions, big_box, new, dispersion=False) / 8 - _openmm_lj(
        system, positions, box, change.old, dispersion=False
    )
    assert change.pair_energy(positions, box) == pytest.approx(expected, abs=SINGLE)


def test_a_cutoff_reaching_own_images_or_a_hybrid_is_refused(solvated):
    system, positions, box = solvated
    with pytest.raises(InputError, match="own periodic image"):
        LJSchemeChange(system, LJScheme(4.0, 3.9)).energies(positions[None], box[None])
    import openmm

    hybrid = copy.deepcopy(system)
    hybrid.addForce(openmm.CustomNonbondedForce("0"))
    with pytest.raises(InputError, match="CustomNonbondedForce"):
        LJSchemeChange(hybrid, LJScheme(0.8, 0.7))


def test_a_system_without_periodic_cutoff_has_no_scheme_to_change(solvated):
    import openmm

    system, _, _ = solvated
    vacuum = copy.deepcopy(system)
    next(f for f in vacuum.getForces() if isinstance(f, openmm.NonbondedForce)).setNonbondedMethod(
        openmm.NonbondedForce.NoCutoff
    )
    with pytest.raises(InputError, match="not periodic"):
        lj_scheme(vacuum)
    with pytest.raises(InputError, match="not periodic"):
        LJSchemeChange(vacuum, LJScheme(0.9, 0.8))
