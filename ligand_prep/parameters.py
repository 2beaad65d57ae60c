"""Force-field parameters for prepared ligands, as OpenMM-ready objects.

OpenFF Sage (``openff-2.2.1``, default) or GAFF2 (``gaff-2.11``) through openmmforcefields' template
generators, always with the ligand's own precomputed (cached) partial charges.
"""

from __future__ import annotations

from collections.abc import Sequence

from ligand_prep.base import ParametrizationError
from ligand_prep.models import Ligand, PreparedLigand

__all__ = [
    "DEFAULT_FORCEFIELD",
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

            return GAFFTemplateGenerator(molecules=molecules, forcefield=forcefield)
        from openmmforcefields.generators import SMIRNOFFTemplateGenerator

        return SMIRNOFFTemplateGenerator(molecules=molecules, forcefield=forcefield)
    except Exception as err:
        raise ParametrizationError(f"force field '{forcefield}' cannot be used: {err}") from err


def ligand_system(prepared: PreparedLigand, forcefield: str | None = None):
    """The ligand alone in vacuum: ``(openmm.System, openmm.app.Topology, positions in nm)``.

    No cutoff, no constraints: the reference for intramolecular energies (e.g. the NNP correction).
    """
    import numpy as np
    import openmm.app as app
    import openmm.unit as u

    from ligand_prep.charges import ensure_ambertools_on_path

    ensure_ambertools_on_path()
    offmol = to_openff_molecule(prepared)
    topology = offmol.to_topology().to_openmm()
    ff = app.ForceField()
    ff.registerTemplateGenerator(template_generator([prepared], forcefield).generator)
    try:
        system = ff.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    except Exception as err:
        raise ParametrizationError(f"ligand {prepared.name}: force field could not parametrize it ({err})") from err
    positions = np.asarray(offmol.conformers[0].m_as("nanometer"))
    return system, topology, positions * u.nanometer
