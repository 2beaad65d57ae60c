"""Hamiltonian replica exchange: engine, state mixing, storage, platforms."""
