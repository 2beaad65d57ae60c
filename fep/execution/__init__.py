"""Running edges: runner, executors (process pool, Dask), store, cost, status."""
