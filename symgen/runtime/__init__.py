"""What runs after generation: ``training`` (``symgen.fit``), ``data`` (what ``symgen
train`` reads: data files and initial parameters), ``distributed`` (passes over Dask
arrays split by rows; ``symgen.distributed``), ``lossplot``. Imports
``symgen.api`` and below, never the CLI."""
