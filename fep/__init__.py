"""mlfep's simulation stage: end-state systems, hybrid topology, lambda protocols, the replica-exchange
sampler, the NNP correction, edge/leg runners, executors, the results store and the CLI.

Importing ``fep`` loads neither openmm nor torch.
"""

__version__ = "0.1.0"
