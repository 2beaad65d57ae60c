"""Ligand torsions refitted to ANI-2x: which bonds are scanned, the fit against the scan, the cache, and the
hybrid's end states with refitted torsions."""

from __future__ import annotations

import math

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("torchani")

from ligand_prep.models import BespokeTorsions, PreparedLigand, TorsionTerm  # noqa: E402

KJ_PER_KCAL = 4.184


def _ligands(**smiles: str):
    """Ligands with 3D poses from SMILES (``name=SMILES``), read together the way a CSV series is."""
    import tempfile
    from pathlib import Path

    from ligand_prep.io import read_ligands

    path = Path(tempfile.mkdtemp()) / "series.csv"
    path.write_text("name,smiles\n" + "".join(f"{n},{s}\n" for n, s in smiles.items()))
    return read_ligands(path)


@pytest.fixture(scope="module")
def anisole_fit(tmp_path_factory, charge_cache):
    """Anisole (Gasteiger charges) with its C(ar)-O torsion refitted, and the scan it came from."""
    from fep.nnp.torsions import fit_bespoke_torsions
    from ligand_prep.charges import assign_charges

    prep = assign_charges(_ligands(anisole="COc1ccccc1")[0], method="gasteiger", cache_dir=charge_cache)
    cache = tmp_path_factory.mktemp("torsion-cache")
    scans: list = []
    fitted = fit_bespoke_torsions(prep, cache_dir=cache, scans=scans)
    return prep, fitted, scans, cache


@pytest.mark.parametrize(
    ("smiles", "bonds"),
    [
        ("Cc1ccccc1", 0),  # methyl rotor: left to the force field
        ("COc1ccccc1", 1),  # C(ar)-O; O-CH3 is a methyl rotor
        ("Oc1ccccc1", 1),  # hydroxyl
        ("N#Cc1ccccc1", 0),  # bond to a triple-bonded atom
        ("CCCc1ccccc1", 2),  # C(ar)-CH2, CH2-CH2
        ("c1ccc(Oc2ccccc2)cc1", 2),  # diphenyl ether
        ("CCOC(=O)c1ccccc1", 3),  # ethyl benzoate: C(ar)-C(=O), C(=O)-O, O-CH2
    ],
)
def test_rotatable_torsions(smiles, bonds):
    from rdkit import Chem

    from fep.nnp.torsions import rotatable_torsions

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    found = rotatable_torsions(mol)
    assert len(found) == bonds
    for i, j, k, l_ in found:
        assert mol.GetBondBetweenAtoms(i, j) and mol.GetBondBetweenAtoms(j, k) and mol.GetBondBetweenAtoms(k, l_)
        assert not mol.GetBondBetweenAtoms(j, k).IsInRing()


def test_fit_reproduces_the_ani_scan(anisole_fit):
    """The MM-relaxed profile with the refitted terms follows ANI-2x's within 0.5 kcal/mol over the scan,
    checked through the ligand's real vacuum system (apply_bespoke_torsions), not the fitter's own copy."""
    from ligand_prep.parameters import ligand_system

    _, fitted, scans, _ = anisole_fit
    assert fitted.torsions is not None and len(scans) == 1
    scan = scans[0]
    assert len(scan.phi) == 24
    assert scan.rmse_kcal_mol < 0.5
    assert fitted.torsions.rmse_kcal_mol[f"{scan.idx[1]}-{scan.idx[2]}"] == pytest.approx(scan.rmse_kcal_mol, abs=1e-3)
    # ANI-2x puts anisole's perpendicular conformer ~3 kcal/mol above the planar one
    e_ml = (scan.e_ml - scan.e_ml.min()) / KJ_PER_KCAL
    planar = np.abs(np.cos(scan.phi)) > 0.95
    perpendicular = np.abs(np.cos(scan.phi)) < 0.3
    assert e_ml[planar].max() < 0.5 and e_ml[perpendicular].min() > 2.0

    system, _, _ = ligand_system(fitted)
    restraint = openmm.CustomTorsionForce("0.5*4000*min(dt, 2*pi-dt)^2; dt=abs(theta-t0); pi=3.141592653589793")
    restraint.addPerTorsionParameter("t0")
    restraint.addTorsion(*scan.idx, [0.0])
    restraint.setForceGroup(5)
    system.addForce(restraint)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    e_mm = []
    for frame, phi in zip(scan.frames_ml, scan.phi, strict=True):
        restraint.setTorsionParameters(0, *scan.idx, [float(phi)])
        restraint.updateParametersInContext(ctx)
        ctx.setPositions(frame)
        openmm.LocalEnergyMinimizer.minimize(ctx, 1e-3, 2000)
        e_mm.append(ctx.getState(getEnergy=True, groups=0b11111).getPotentialEnergy()._value)
    diff = np.asarray(e_mm) - scan.e_ml
    rmse = math.sqrt(np.mean((diff - diff.mean()) ** 2)) / KJ_PER_KCAL
    assert rmse < 0.5
    assert rmse < scan.rmse_base_kcal_mol  # and the fit beats the force field's own torsions here


def test_fitted_torsions_round_trip_through_the_cache(anisole_fit, monkeypatch):
    from fep.nnp import torsions

    prep, fitted, _, cache = anisole_fit
    monkeypatch.setattr(torsions, "scan_bond", lambda *a, **k: pytest.fail("the cache was not used"))
    again = torsions.fit_bespoke_torsions(prep, cache_dir=cache)
    assert again.torsions == fitted.torsions
    # and through the prepared ligand's JSON, the way run directories store it
    assert PreparedLigand.model_validate_json(fitted.model_dump_json()) == fitted
    # another charge set is another molecule for the fit: a new key
    other = prep.model_copy(update={"partial_charges": tuple(q * 0.9 for q in prep.partial_charges)})
    assert torsions.torsion_key(other) != torsions.torsion_key(prep)


def test_apply_switches_off_the_force_field_terms_about_the_bond(anisole_fit):
    from ligand_prep.parameters import apply_bespoke_torsions, ligand_system

    prep, fitted, _, _ = anisole_fit
    plain, _, _ = ligand_system(prep)
    j, k = fitted.torsions.bonds[0]
    force = next(f for f in plain.getForces() if isinstance(f, openmm.PeriodicTorsionForce))
    about = [t for t in range(force.getNumTorsions()) if {*force.getTorsionParameters(t)[1:3]} == {j, k}]
    n_before = force.getNumTorsions()
    switched = apply_bespoke_torsions(plain, fitted)
    assert switched == len(about) > 0
    assert all(force.getTorsionParameters(t)[6]._value == 0.0 for t in about)
    assert force.getNumTorsions() == n_before + len(fitted.torsions.terms)


def _with_torsions(prep: PreparedLigand, bond_atoms: tuple[int, int, int, int], ks: tuple[float, ...]):
    terms = tuple(
        TorsionTerm(atoms=bond_atoms, periodicity=n, phase_deg=0.0, k_kj_mol=k) for n, k in enumerate(ks, start=1)
    )
    record = BespokeTorsions(method="test", key="test", bonds=(bond_atoms[1:3],), terms=terms)
    return prep.model_copy(update={"torsions": record})


def test_end_states_stay_exact_with_refitted_torsions(bench, charge_cache):
    """anisole ~ ethoxybenzene with different refitted C(ar)-O terms at each end: the hybrid reproduces both
    plain end states (which carry the refitted terms) on the Reference platform."""
    from fep.alchemy.check import end_state_energy_check
    from fep.alchemy.hybrid import build_hybrid
    from fep.nnp.torsions import rotatable_torsions
    from fep.systems.endstates import SystemSettings, build_end_states
    from ligand_prep.charges import assign_charges
    from ligand_prep.mapping import MCSMapper

    ligands = _ligands(anisole="COc1ccccc1", ethoxybenzene="CCOc1ccccc1")
    a, b = (assign_charges(lig, method="gasteiger", cache_dir=charge_cache) for lig in ligands)
    ring_o = {}
    for name, prep in (("a", a), ("b", b)):
        mol = prep.ligand.to_rdkit()
        ring_o[name] = next(
            t
            for t in rotatable_torsions(mol)
            if {mol.GetAtomWithIdx(t[1]).GetSymbol(), mol.GetAtomWithIdx(t[2]).GetSymbol()} == {"C", "O"}
            and (mol.GetAtomWithIdx(t[1]).GetIsAromatic() or mol.GetAtomWithIdx(t[2]).GetIsAromatic())
        )
    a_fit = _with_torsions(a, ring_o["a"], (0.5, 14.0, 0.3))
    b_fit = _with_torsions(b, ring_o["b"], (0.2, 9.0, 0.1, 1.0))
    mapping = MCSMapper().map(a.ligand, b.ligand)
    settings = SystemSettings(nonbonded_cutoff="0.7 nm")
    end_states = build_end_states(a_fit, b_fit, mapping, "vacuum", settings=settings)
    result = end_state_energy_check(end_states, build_hybrid(end_states, mapping))
    assert result["passed"], result["max_abs_energy_difference"]
    # the refitted terms really are in the end states: A's torsion energy differs from plain Sage's
    plain = build_end_states(a, b, mapping, "vacuum", settings=settings)

    def torsion_energy(system, positions):
        for force in system.getForces():
            force.setForceGroup(1 if isinstance(force, openmm.PeriodicTorsionForce) else 0)
        ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        ctx.setPositions(positions)
        return ctx.getState(getEnergy=True, groups=0b10).getPotentialEnergy()._value

    assert (
        abs(
            torsion_energy(end_states.system_a, end_states.positions_a)
            - torsion_energy(plain.system_a, plain.positions_a)
        )
        > 0.1
    )


def test_aniline_nitrogen_is_flagged_planar_in_sage_and_pyramidal_in_ani(charge_cache):
    from fep.nnp.geometry import minimum_disagreements
    from ligand_prep.charges import assign_charges

    aniline, toluene = _ligands(aniline="Nc1ccccc1", toluene="Cc1ccccc1")
    found = minimum_disagreements(assign_charges(aniline, method="gasteiger", cache_dir=charge_cache))
    assert len(found) == 1 and "planar with openff-2.2.1 but pyramidal with ANI-2x" in found[0]
    assert minimum_disagreements(assign_charges(toluene, method="gasteiger", cache_dir=charge_cache)) == []


@pytest.mark.slow
def test_refitted_torsions_reproduce_ani_conformer_energies_out_of_sample(charge_cache, tmp_path):
    """Butylbenzene's three rotors refitted together: on ANI-2x minima from another seed than the fit's, MM's
    relative conformer energies (rotors held at the ANI-2x values) follow ANI-2x's within 0.5 kcal/mol RMSE and
    closer than with Sage's own torsions."""
    from fep.nnp.conformers import ani_conformers, check_conformers
    from fep.nnp.torsions import fit_bespoke_torsions, rotatable_torsions
    from ligand_prep.charges import assign_charges

    prep = assign_charges(_ligands(butylbenzene="CCCCc1ccccc1")[0], method="gasteiger", cache_dir=charge_cache)
    fitted = fit_bespoke_torsions(prep, cache_dir=tmp_path)
    ani = ani_conformers(prep, n=16, seed=7)
    hold = rotatable_torsions(prep.ligand.to_rdkit())
    sage, refit = check_conformers(prep, ani, hold=hold), check_conformers(fitted, ani, hold=hold)
    assert refit.n_conformers >= 3
    assert refit.rmse_kcal_mol < 0.5 and refit.rmse_kcal_mol < sage.rmse_kcal_mol
