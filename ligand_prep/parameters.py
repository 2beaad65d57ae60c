"""Force-field parameters for prepared ligands, as OpenMM-ready objects.

OpenFF Sage (``openff-2.2.1``, default) or GAFF2 (``gaff-2.11``) through openmmforcefields' template
generators, always with the ligand's own precomputed (cached) partial charges.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence

from ligand_prep.models import Ligand, PreparedLigand
from mlfep_core import ParametrizationError

__all__ = [
    "DEFAULT_FORCEFIELD",
    "apply_bespoke_torsions",
    "ligand_system",
    "openff_molecule_from_ligand",
    "template_generator",
    "to_openff_molecule",
]

DEFAULT_FORCEFIELD = "openff-2.2.1"


def openff_molecule_from_ligand(ligand: Ligand):
    """An OpenFF Molecule for ``ligand`` (same atom order, pose as conformer), without charges."""
    from openff.toolkit import Molecule

    try:
        offmol = Molecule.from_rdkit(ligand.to_rdkit(), allow_undefined_stereo=True, hydrogens_are_explicit=True)
    except Exception as err:
        raise ParametrizationError(f"ligand {ligand.name}: OpenFF cannot read this molecule ({err})") from err
    offmol.name = ligand.name
    return offmol


def to_openff_molecule(prepared: PreparedLigand):
    """An OpenFF Molecule with the pose as conformer and the prepared partial charges."""
    from openff.units import Quantity

    offmol = openff_molecule_from_ligand(prepared.ligand)
    offmol.partial_charges = Quantity(list(prepared.partial_charges), "elementary_charge")
    return offmol


def template_generator(prepared: Sequence[PreparedLigand], forcefield: str | None = None):
    """An openmmforcefields template generator for these ligands, to register on an ``openmm.app.ForceField``.

    Examples
    --------
    ``ff = openmm.app.ForceField("amber14-all.xml", "amber14/tip3p.xml")``
    ``ff.registerTemplateGenerator(template_generator(prepared).generator)``
    """
    if not prepared:
        raise ParametrizationError("no ligands given to parametrize")
    forcefield = forcefield or prepared[0].forcefield
    molecules = [to_openff_molecule(p) for p in prepared]
    try:
        if forcefield.startswith("gaff"):
            from openmmforcefields.generators import GAFFTemplateGenerator

            if not shutil.which("antechamber"):
                raise ParametrizationError(
                    f"force field '{forcefield}' needs AmberTools' antechamber, which is not on PATH: run through "
                    "the `fep` command, activate the environment (source .venv/bin/activate), or call "
                    "mlfep_core.runtime.configure_process() first"
                )

            return GAFFTemplateGenerator(molecules=molecules, forcefield=forcefield)
        from openmmforcefields.generators import SMIRNOFFTemplateGenerator

        return SMIRNOFFTemplateGenerator(molecules=molecules, forcefield=forcefield)
    except Exception as err:
        raise ParametrizationError(f"force field '{forcefield}' cannot be used: {err}") from err


def apply_bespoke_torsions(system, prepared: PreparedLigand, atom_indices: Sequence[int] | None = None) -> int:
    """Put the ligand's refitted torsions (``prepared.torsions``) into ``system``, in place.

    Every ``PeriodicTorsionForce`` term whose four atoms are all ligand atoms and whose central bond is one of
    the refitted bonds gets k = 0 (the term stays, so term counts do not change), and the fitted terms are
    added. ``atom_indices[i]`` is the system particle of the ligand's atom ``i`` (default: the identity, a
    ligand-only system). Returns the number of terms switched off; no-op (0) without bespoke torsions.
    """
    import openmm

    torsions = prepared.torsions
    if torsions is None:
        return 0
    n = prepared.ligand.n_atoms
    index = list(range(n)) if atom_indices is None else [int(i) for i in atom_indices]
    if len(index) != n:
        raise ParametrizationError(f"ligand {prepared.name}: {len(index)} system atoms given for {n} ligand atoms")
    to_ligand = {p: i for i, p in enumerate(index)}
    bonds = {frozenset(b) for b in torsions.bonds}
    forces = [f for f in system.getForces() if isinstance(f, openmm.PeriodicTorsionForce)]
    if not forces:
        raise ParametrizationError(f"ligand {prepared.name}: the system has no PeriodicTorsionForce to refit")
    switched = 0
    for force in forces:
        for t in range(force.getNumTorsions()):
            *atoms, per, phase, _k = force.getTorsionParameters(t)
            local = [to_ligand.get(a) for a in atoms]
            if None in local or frozenset(local[1:3]) not in bonds:
                continue
            force.setTorsionParameters(t, *atoms, per, phase, 0.0)
            switched += 1
    target = forces[0]
    for term in torsions.terms:
        i, j, k_, l_ = (index[a] for a in term.atoms)
        target.addTorsion(i, j, k_, l_, term.periodicity, math.radians(term.phase_deg), term.k_kj_mol)
    return switched


def ligand_system(prepared: PreparedLigand, forcefield: str | None = None):
    """The ligand alone in vacuum: ``(openmm.System, openmm.app.Topology, positions in nm)``.

    No cutoff, no constraints: the reference for intramolecular energies (e.g. the NNP correction). Refitted
    torsions (``prepared.torsions``) are applied.
    """
    import numpy as np
    import openmm.app as app
    import openmm.unit as u

    offmol = to_openff_molecule(prepared)
    topology = offmol.to_topology().to_openmm()
    ff = app.ForceField()
    ff.registerTemplateGenerator(template_generator([prepared], forcefield).generator)
    try:
        system = ff.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    except Exception as err:
        raise ParametrizationError(f"ligand {prepared.name}: force field could not parametrize it ({err})") from err
    apply_bespoke_torsions(system, prepared)
    positions = np.asarray(offmol.conformers[0].m_as("nanometer"))
    return system, topology, positions * u.nanometer
