"""The force field of a leg's systems: :class:`SystemSettings` (box, ions, cutoffs, constraints, force-field
files), the ``openmm.app.ForceField`` with the ligand template generator, and ``createSystem`` with the checks that
each ligand carries exactly its prepared charges and its ANI-2x-refitted torsions (when it has them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ligand_prep.models import PreparedLigand
from mlfep_core import FrozenModel, InputError, ParametrizationError
from mlfep_core.models import Daltons, Molar, Nanometers

__all__ = [
    "LIGAND_RESIDUE_NAME",
    "SystemSettings",
    "create_ligand_system",
    "ion_templates",
    "ligand_topology",
    "make_forcefield",
]

log = logging.getLogger(__name__)

LIGAND_RESIDUE_NAME = "LIG"


class SystemSettings(FrozenModel):
    """How the end-state systems of a leg are built (box, ions, cutoffs, constraints, force fields)."""

    solvent_padding: Nanometers = Field(
        "1.2 nm",
        description="Solvent leg: box width = max(2 r + padding, 2 padding), OpenMM's addSolvent rule; at least "
        "what the cutoff needs.",
    )
    complex_padding: Nanometers = Field("1.0 nm", description="Complex leg: the same for protein + ligand.")
    box_shape: Literal["dodecahedron", "octahedron", "cube"] = Field(
        "dodecahedron", description="Periodic box shape (rhombic dodecahedron needs ~71 % of a cube's waters)."
    )
    ionic_strength: Molar = Field(
        "0.15 molar", description="NaCl concentration added on top of the neutralising counter-ions."
    )
    neutralize: bool = Field(True, description="Add Na+ or Cl- counter-ions to make the leg net-neutral.")
    nonbonded_cutoff: Nanometers = Field("0.9 nm", description="Real-space cutoff for PME and LJ.")
    lj_switch_width: Nanometers = Field(
        "0.1 nm",
        description="Lennard-Jones switching over this width below the cutoff, as Sage specifies (switch_width "
        "1 Å: 0.8 to 0.9 nm); 0 nm cuts LJ hard at the cutoff. Periodic legs only.",
    )
    ewald_error_tolerance: float = Field(5e-4, gt=0, lt=1, description="PME accuracy (OpenMM ewaldErrorTolerance).")
    dispersion_correction: bool = Field(
        True, description="Long-range isotropic dispersion correction on the NonbondedForce (periodic legs)."
    )
    hydrogen_mass: Daltons = Field(
        "3 dalton",
        description="Mass of every non-water hydrogen (HMR, mass taken from its heavy atom); 1.008 disables.",
    )
    constraints: Literal["HBonds", "none"] = Field("HBonds", description="Bond constraints.")
    rigid_water: bool = Field(True, description="Rigid (SETTLE) water.")
    remove_cm_motion: bool = Field(True, description="Add a CMMotionRemover to each system.")
    protein_forcefield: tuple[str, ...] = Field(
        ("amber14-all.xml",), description="OpenMM force-field files for the protein (and ions of amber14)."
    )
    water_model: Literal["tip3p"] = Field("tip3p", description="Water model (amber14/tip3p.xml).")
    extra_forcefield_files: tuple[str, ...] = Field(
        (), description="Extra OpenMM ffxml files, e.g. templates for non-standard residues (--extra-forcefield)."
    )
    keep_crystal_waters: bool = Field(
        True,
        description="Keep the HOH residues of the protein PDB (those displaced by a ligand are removed); metal sites "
        "need their coordinating waters.",
    )
    small_molecule_forcefield: str = Field(
        "openff-2.2.1", description="Ligand force field: an OpenFF offxml name or 'gaff-2.11' (charges as prepared)."
    )
    ion_min_distance: Nanometers = Field(
        "0.5 nm", description="Ions are placed at least this far from the solute and from each other."
    )
    water_clash_distance: Nanometers = Field(
        "0.24 nm",
        description="After solvation, one water of every pair with O–O closer than this (across the cell faces) "
        "is removed; 0 nm keeps OpenMM's box as is.",
    )
    random_seed: int = Field(0, description="Seed for choosing which waters become ions (reproducible boxes).")

    def padding_for(self, leg: str):
        """The padding (openff Quantity) of ``leg``."""
        return self.complex_padding if leg == "complex" else self.solvent_padding


# ------------------------------------------------------------------------------------------ force field
def make_forcefield(settings: SystemSettings, prepared: Sequence[PreparedLigand] = ()):
    """The ``openmm.app.ForceField`` for a leg: protein files, water, extra files, ligand template generator."""
    import openmm.app as app

    from ligand_prep.parameters import template_generator

    files = [*settings.protein_forcefield, f"amber14/{settings.water_model}.xml", *settings.extra_forcefield_files]
    try:
        forcefield = app.ForceField(*files)
    except Exception as err:
        raise InputError(f"cannot load force-field files {', '.join(files)}: {err}") from err
    if prepared:
        for prep in prepared:
            if prep.forcefield != settings.small_molecule_forcefield:
                log.warning(
                    "ligand %s was prepared for %s but is parametrized with %s (its charges are kept)",
                    prep.name,
                    prep.forcefield,
                    settings.small_molecule_forcefield,
                )
        generator = template_generator(list(prepared), settings.small_molecule_forcefield)
        forcefield.registerTemplateGenerator(generator.generator)
    return forcefield


def ligand_topology(prep: PreparedLigand, residue_name: str = LIGAND_RESIDUE_NAME):
    """OpenMM topology of one ligand (residue ``LIG``, or ``residue_name``; mol-block atom order)."""
    from ligand_prep.parameters import to_openff_molecule

    topology = to_openff_molecule(prep).to_topology().to_openmm()
    for residue in topology.residues():
        residue.name = residue_name
    return topology


def ion_templates(topology, forcefield) -> dict:
    """``residueTemplates`` for ``createSystem``: each monatomic residue whose name is a template of
    ``forcefield`` gets that template (FE is Fe3+, FE2 Fe2+: matching by element alone is ambiguous)."""
    templates = getattr(forcefield, "_templates", {})
    return {
        r: r.name
        for r in topology.residues()
        if len(r) == 1 and r.name in templates and len(templates[r.name].atoms) == 1
    }


def _create_system(forcefield, topology, settings: SystemSettings, periodic: bool, what: str):
    import openmm
    import openmm.app as app
    import openmm.unit as u

    h_mass = settings.hydrogen_mass.m_as("dalton")
    kwargs: dict[str, Any] = {
        "constraints": app.HBonds if settings.constraints == "HBonds" else None,
        "rigidWater": settings.rigid_water,
        "removeCMMotion": settings.remove_cm_motion,
        "hydrogenMass": None if abs(h_mass - 1.008) < 0.01 else h_mass * u.dalton,
    }
    if periodic:
        kwargs.update(
            nonbondedMethod=app.PME,
            nonbondedCutoff=settings.nonbonded_cutoff.m_as("nanometer") * u.nanometer,
            ewaldErrorTolerance=settings.ewald_error_tolerance,
        )
    else:
        kwargs["nonbondedMethod"] = app.NoCutoff
    kwargs["residueTemplates"] = ion_templates(topology, forcefield)
    try:
        system = forcefield.createSystem(topology, **kwargs)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ParametrizationError(f"{what}: the force field could not build the system ({first})") from err
    width = settings.lj_switch_width.m_as("nanometer")
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            force.setUseDispersionCorrection(bool(periodic and settings.dispersion_correction))
            if periodic and width > 0:  # the hybrid copies this switch into its alchemical LJ forces
                force.setUseSwitchingFunction(True)
                force.setSwitchingDistance(settings.nonbonded_cutoff.m_as("nanometer") - width)
    return system


def _ligand_charges_match(system, ligand_atoms: list[int], prep: PreparedLigand) -> float:
    """Largest deviation (e) of the ligand's charges in ``system`` from the prepared ones."""
    import openmm
    import openmm.unit as u

    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    charges = [nonbonded.getParticleParameters(i)[0].value_in_unit(u.elementary_charge) for i in ligand_atoms]
    return float(np.max(np.abs(np.asarray(charges) - np.asarray(prep.partial_charges))))


def _cofactor_atoms(topology, n_cofactors: int) -> list[list[int]]:
    from fep.systems.cofactors import COFACTOR_RESIDUE_NAME

    found = [[a.index for a in r.atoms()] for r in topology.residues() if r.name == COFACTOR_RESIDUE_NAME]
    return found[:n_cofactors]


def create_ligand_system(
    forcefield,
    topology,
    settings,
    periodic,
    prep: PreparedLigand,
    ligand_atoms,
    what: str,
    cofactors: Sequence[PreparedLigand] = (),
):
    """``_create_system`` and a check that the ligand (and each cofactor) carries exactly its prepared charges.

    openmmforcefields matches residues to molecules by graph, so when A and B share a graph (stereoisomers) B
    would get A's template; that case is detected here and B is rebuilt with a force field of its own.
    """
    from ligand_prep.parameters import apply_bespoke_torsions

    system = _create_system(forcefield, topology, settings, periodic, what)
    deviation = _ligand_charges_match(system, ligand_atoms, prep)
    if deviation > 1e-5:
        log.info(
            "%s: charges differ from the prepared ones by %.2g e; rebuilding with its own template", what, deviation
        )
        system = _create_system(make_forcefield(settings, [prep, *cofactors]), topology, settings, periodic, what)
        deviation = _ligand_charges_match(system, ligand_atoms, prep)
        if deviation > 1e-5:
            raise ParametrizationError(
                f"{what}: the force field did not apply the prepared partial charges (off by up to {deviation:.3g} e); "
                "re-prepare the ligand (fep prep) and report this if it persists"
            )
    for cofactor, atoms in zip(cofactors, _cofactor_atoms(topology, len(cofactors)), strict=True):
        if _ligand_charges_match(system, atoms, cofactor) > 1e-5:
            raise ParametrizationError(
                f"{what}: cofactor {cofactor.name} did not get its prepared partial charges (its graph may equal a "
                "ligand's); report this"
            )
    apply_bespoke_torsions(system, prep, ligand_atoms)
    return system
