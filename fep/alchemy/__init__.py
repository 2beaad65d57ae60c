"""The alchemical stage: hybrid topology, nonbonded and valence terms, λ schedule, end-state check."""
