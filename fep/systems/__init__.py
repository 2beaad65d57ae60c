"""End states: settings, force field, protein, solvation."""
