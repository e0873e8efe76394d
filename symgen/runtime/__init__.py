"""What runs after generation: ``training`` (``symgen.fit``), ``training_data`` (data
files), ``distributed`` (Dask), ``lossplot``. Imports ``symgen.api`` and below, never
the CLI."""
