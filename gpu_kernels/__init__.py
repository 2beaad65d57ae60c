"""Batched tensor kernels (NNP energies over many frames, reduced-potential matrices): CUDA when present,
with a CPU reference path and equivalence tests.
"""
