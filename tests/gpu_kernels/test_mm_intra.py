"""MMIntraKernel: batched torch energies and forces equal OpenMM's Reference platform frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_kernels.mm_intra import MMIntraKernel, openmm_reference_energies
from mlfep_core import ParametrizationError


def _prepared(smiles: str, name: str):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from ligand_prep.models import Ligand, PreparedLigand

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    AllChem.MMFFOptimizeMolecule(mol)
    AllChem.ComputeGasteigerCharges(mol)
    charges = [float(a.GetProp("_GasteigerCharge")) for a in mol.GetAtoms()]
    shift = sum(charges) / len(charges)
    ligand = Ligand(name=name, molblock=Chem.MolToMolBlock(mol), smiles=smiles, formal_charge=0)
    return PreparedLigand(ligand=ligand, partial_charges=tuple(q - shift for q in charges), charge_method="gasteiger")


@pytest.fixture(scope="module")
def cresol_system():
    import openmm

    from ligand_prep.parameters import ligand_system

    system, _, positions = ligand_system(_prepared("Cc1ccccc1O", "o-cresol"))
    # two torsions with non-trivial phases: catches a wrong dihedral sign convention
    for force in system.getForces():
        if isinstance(force, openmm.PeriodicTorsionForce):
            force.addTorsion(0, 1, 2, 3, 1, 0.7, 5.0)
            force.addTorsion(3, 2, 1, 6, 2, -1.1, 3.0)
    x0 = positions.value_in_unit(openmm.unit.nanometer)
    frames = x0 + np.random.default_rng(3).normal(0.0, 0.01, size=(12, *np.shape(x0)))
    return system, frames


def test_energies_match_openmm_reference(cresol_system):
    system, frames = cresol_system
    kernel = MMIntraKernel.from_system(system, range(system.getNumParticles()), device="cpu", chunk_size=5)
    batched = kernel.energies(frames)
    reference = openmm_reference_energies(system, frames)
    assert batched.shape == (12,)
    np.testing.assert_allclose(batched, reference, rtol=1e-4, atol=1e-6)
    # every term type is present in the kernel
    terms = kernel.terms
    assert len(terms.bonds) and len(terms.angles) and len(terms.torsions) and len(terms.pairs)


def test_forces_match_openmm_reference(cresol_system):
    import openmm

    system, frames = cresol_system
    kernel = MMIntraKernel.from_system(system, range(system.getNumParticles()), device="cpu")
    _, forces = kernel.energies_and_forces(frames[:2])
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    for frame, force in zip(frames[:2], forces, strict=True):
        context.setPositions(frame)
        ref = (
            context.getState(getForces=True)
            .getForces(asNumpy=True)
            .value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
        )
        np.testing.assert_allclose(force, ref, rtol=1e-4, atol=1e-3 * np.abs(ref).max())


def test_subset_of_a_larger_system_uses_only_intramolecular_terms(cresol_system):
    """The molecule embedded after a second copy: the kernel on its atoms equals the molecule alone."""
    import openmm

    system, frames = cresol_system
    n = system.getNumParticles()
    doubled = openmm.System()
    for _ in range(2):
        for i in range(n):
            doubled.addParticle(system.getParticleMass(i))
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            nb = openmm.NonbondedForce()
            for _ in range(2):
                for i in range(n):
                    nb.addParticle(*force.getParticleParameters(i))
            for copy in range(2):
                for k in range(force.getNumExceptions()):
                    i, j, qq, sig, eps = force.getExceptionParameters(k)
                    nb.addException(i + copy * n, j + copy * n, qq, sig, eps)
            doubled.addForce(nb)
        elif isinstance(force, openmm.HarmonicBondForce):
            hb = openmm.HarmonicBondForce()
            for copy in range(2):
                for k in range(force.getNumBonds()):
                    i, j, r0, kb = force.getBondParameters(k)
                    hb.addBond(i + copy * n, j + copy * n, r0, kb)
            doubled.addForce(hb)
    second = list(range(n, 2 * n))
    kernel = MMIntraKernel.from_system(doubled, second, device="cpu")
    # reference: nonbonded + bonds of the molecule alone
    ref_system = openmm.XmlSerializer.clone(system)
    for index in reversed(range(ref_system.getNumForces())):
        if not isinstance(ref_system.getForce(index), openmm.NonbondedForce | openmm.HarmonicBondForce):
            ref_system.removeForce(index)
    np.testing.assert_allclose(
        kernel.energies(frames[:3]), openmm_reference_energies(ref_system, frames[:3]), rtol=1e-6
    )


def test_unsupported_force_is_refused(cresol_system):
    import openmm

    system, _ = cresol_system
    custom = openmm.XmlSerializer.clone(system)
    custom.addForce(openmm.CustomExternalForce("x"))
    with pytest.raises(ParametrizationError, match="CustomExternalForce"):
        MMIntraKernel.from_system(custom, range(custom.getNumParticles()), device="cpu")
