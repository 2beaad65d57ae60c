"""mlfep's simulation stage: end-state systems, hybrid topology, lambda protocols, the replica-exchange
sampler, the NNP correction, edge/leg runners, executors, the results store and the CLI.

Importing ``fep`` loads neither openmm nor torch.
"""

from mlfep_core import __version__

__all__ = ["__version__"]
