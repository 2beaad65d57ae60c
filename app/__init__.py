"""The Streamlit dashboard. Reads the results store and result files only; never imports openmm or torch."""
