"""mlfep's analysis stage: MBAR and BAR per leg, diagnostics, edge and network estimates (cycle closure,
maximum-likelihood ΔG), statistics against experiment, plots and reports.
"""
