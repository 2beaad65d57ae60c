"""mlfep's first stage: read and validate ligands (SDF, CSV of SMILES), generate poses from a reference,
assign charges and parameters, map atoms between pairs and plan a perturbation network.
"""

from ligand_prep.models import AtomMapping, ExperimentalValue, Ligand, Network, PreparedLigand
from mlfep_core import MlfepError

__all__ = ["AtomMapping", "ExperimentalValue", "Ligand", "MlfepError", "Network", "PreparedLigand"]
