"""End states: settings, force field, protein, solvation, and the LJ cutoff schemes of a plain system."""
