"""What the ligand stage produces: ligands, prepared (charged) ligands, atom mappings and networks.

All models are immutable and round-trip through JSON. Molecules travel as MDL mol blocks (explicit
hydrogens, 3D coordinates in Å); :meth:`Ligand.to_rdkit` and :meth:`PreparedLigand.to_openff` rebuild live
toolkit objects where a stage needs them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlfep_core import FrozenModel
from mlfep_core.names import name_problem

__all__ = ["AtomMapping", "BespokeTorsions", "ExperimentalValue", "Ligand", "Network", "PreparedLigand", "TorsionTerm"]


class ExperimentalValue(FrozenModel):
    """An experimental free energy, converted to ΔG at 298.15 K."""

    dg_kcal_mol: float = Field(description="Experimental ΔG in kcal/mol (binding or hydration).")
    dg_err_kcal_mol: float | None = Field(None, description="Its uncertainty in kcal/mol, if reported.")
    source: str = Field("", description="What it was converted from, e.g. 'Ki 12 nM' or 'dG kcal/mol'.")


class Ligand(FrozenModel):
    """A validated ligand with a 3D pose and explicit hydrogens."""

    name: str = Field(description="Unique name within the series (SDF title / CSV 'name').")
    molblock: str = Field(description="MDL mol block: explicit hydrogens, 3D coordinates in Å.")
    smiles: str = Field(description="Canonical isomeric SMILES (RDKit), hydrogens implicit.")
    formal_charge: int = Field(description="Net formal charge.")
    experimental: ExperimentalValue | None = Field(None, description="Experimental ΔG if given.")
    source: str = Field("", description="Where it came from, e.g. 'ligands.sdf record 3' or 'series.csv row 5'.")
    core_rmsd_angstrom: float | None = Field(
        None, description="RMSD (Å) of the MCS core to the reference pose, when the pose was generated."
    )

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("ligand name is empty")
        problem = name_problem(value)
        if problem is not None:  # names become file and folder names (edges/<A>~<B>/, pictures)
            raise ValueError(f"ligand name {problem}")
        return value

    def to_rdkit(self):
        """The ligand as an RDKit molecule with explicit H and one 3D conformer; ``_Name`` set."""
        from rdkit import Chem

        mol = Chem.MolFromMolBlock(self.molblock, removeHs=False)
        if mol is None:  # pragma: no cover - validated on construction by the readers
            raise ValueError(f"ligand {self.name}: stored mol block does not parse")
        mol.SetProp("_Name", self.name)
        return mol

    @property
    def n_atoms(self) -> int:
        """Number of atoms including hydrogens."""
        return int(self.molblock.splitlines()[3][:3])


class TorsionTerm(FrozenModel):
    """One periodic torsion term ``k (1 + cos(n φ - phase))`` on four atoms of a ligand (mol-block indices)."""

    atoms: tuple[int, int, int, int] = Field(description="Atom indices i, j, k, l (φ is the i-j-k-l dihedral).")
    periodicity: int = Field(ge=1, le=6, description="n.")
    phase_deg: float = Field(description="Phase in degrees (0 or 180 for the fitted terms).")
    k_kj_mol: float = Field(ge=0.0, description="Barrier parameter k in kJ/mol.")


class BespokeTorsions(FrozenModel):
    """Ligand torsions refitted to an ML potential: they replace the force field's torsions about ``bonds``.

    Every proper torsion term of the base force field whose central bond is one of ``bonds`` is switched off
    and ``terms`` are added, in every system the ligand is part of (end states, hybrids, vacuum reference).
    """

    method: str = Field(description="How the terms were made, e.g. 'ani2x-torsions/1 (24 x 15 deg, n=1..4)'.")
    key: str = Field(description="Content hash of the molecule, charges and fit settings (the cache key).")
    bonds: tuple[tuple[int, int], ...] = Field(description="Central bonds (j, k) whose torsions were refitted.")
    terms: tuple[TorsionTerm, ...] = Field(description="The fitted terms.")
    rmse_kcal_mol: dict[str, float] = Field(
        default_factory=dict, description="Per bond 'j-k': RMSE of the MM-relaxed profile vs the ML scan."
    )
    rmse_base_kcal_mol: dict[str, float] = Field(
        default_factory=dict, description="Per bond 'j-k': the same RMSE with the base force field's torsions."
    )
    wall_s: float | None = Field(None, description="Wall time (s) the scans and fits took when they were made.")
    warnings: tuple[str, ...] = Field(
        (), description="Qualitative MM vs ML disagreements of the minimised ligand (e.g. a planar vs pyramidal N)."
    )


class PreparedLigand(FrozenModel):
    """A ligand with partial charges, ready to be parametrized."""

    ligand: Ligand = Field(description="The ligand (pose, name).")
    partial_charges: tuple[float, ...] = Field(description="Partial charges in e, one per atom, mol-block order.")
    charge_method: str = Field("am1bcc", description="How the charges were computed.")
    forcefield: str = Field(
        "openff-2.2.1", description="Small-molecule force field: an OpenFF offxml name or 'gaff-2.11'."
    )
    torsions: BespokeTorsions | None = Field(
        None, description="Torsions refitted to an ML potential (replace the force field's about their bonds)."
    )

    @model_validator(mode="after")
    def _charges_match(self) -> PreparedLigand:
        if len(self.partial_charges) != self.ligand.n_atoms:
            raise ValueError(
                f"ligand {self.ligand.name}: {len(self.partial_charges)} charges for {self.ligand.n_atoms} atoms"
            )
        total = sum(self.partial_charges)
        if abs(total - self.ligand.formal_charge) > 1e-3:
            raise ValueError(
                f"ligand {self.ligand.name}: charges sum to {total:.4f}, formal charge is {self.ligand.formal_charge}"
            )
        return self

    @property
    def name(self) -> str:
        """The ligand's name."""
        return self.ligand.name


class AtomMapping(FrozenModel):
    """An atom mapping between ligand A and ligand B (indices into their mol blocks, hydrogens included)."""

    ligand_a: str = Field(description="Name of ligand A.")
    ligand_b: str = Field(description="Name of ligand B.")
    mapping: dict[int, int] = Field(description="Atom index in A -> atom index in B, for every mapped atom.")
    score: float = Field(ge=0.0, le=1.0, description="LOMAP-style score in 0..1 (1 = identical).")
    charge_change: int = Field(
        0, description="Formal charge of B minus that of A (non-zero needs the charge-changing protocol)."
    )
    warnings: tuple[str, ...] = Field((), description="Anything a user should know about this mapping.")

    @field_validator("mapping")
    @classmethod
    def _injective(cls, value: dict[int, int]) -> dict[int, int]:
        if len(set(value.values())) != len(value):
            raise ValueError("mapping is not one-to-one")
        return value

    @property
    def key(self) -> str:
        """``'A~B'``: the edge's identifier and folder name."""
        return f"{self.ligand_a}~{self.ligand_b}"


class Network(FrozenModel):
    """A perturbation network: ligands with poses and the edges between them."""

    mode: Literal["binding", "hydration"] = Field(
        "binding", description="Binding (complex + solvent legs) or hydration (solvent + vacuum)."
    )
    ligands: tuple[Ligand, ...] = Field(description="Every ligand of the network.")
    edges: tuple[AtomMapping, ...] = Field(description="The planned edges, each with its atom mapping.")
    planner: str = Field(
        "", description="How the edges were chosen: 'mst', 'redundant', 'star:<ref>' or 'file:<path>'."
    )
    protein: str | None = Field(None, description="Path of the protein PDB given at planning time, if any.")
    cofactors: tuple[str, ...] = Field((), description="Cofactor SDF files of the complex leg (binding mode).")

    @model_validator(mode="after")
    def _consistent(self) -> Network:
        names = [lig.name for lig in self.ligands]
        if len(set(names)) != len(names):
            raise ValueError("duplicate ligand names in network")
        known = set(names)
        for edge in self.edges:
            for name in (edge.ligand_a, edge.ligand_b):
                if name not in known:
                    raise ValueError(f"edge {edge.key} names unknown ligand {name}")
        return self

    def ligand(self, name: str) -> Ligand:
        """The ligand called ``name``."""
        for lig in self.ligands:
            if lig.name == name:
                return lig
        raise KeyError(name)
