"""Reading what ``symgen train`` trains on: data arrays and initial parameters.

Data come from an ``.npz`` file (arrays by name) or, for per-sample problems,
a ``.csv`` file with a header row naming its columns; data larger than memory
from a Zarr store (a ``*.zarr`` folder, one array per data name), a folder
of ``NAME.npy`` files, or Parquet (a ``.parquet`` file, or a folder whose
``*.parquet`` files form one dataset), read lazily as Dask arrays (chunk by chunk,
never whole: ``symgen[dask]``) and trained on with ``symgen.distributed``. Initial
parameters come from ``--init FILE.npz`` and/or ``--init NAME=VALUE`` for scalar
parameters. Every array is checked against the problem's symbolic shapes before training.

Modules: ``data_source`` (``read_data``: which reader a ``--data`` path takes),
``initial_values`` (``read_init``), ``shapes`` (``check_shapes``), ``slots`` (what each
parameter and data array must be), ``in_memory`` (.npz, .csv), ``zarr_store``,
``npy_folder``, ``parquet`` (how Parquet columns map to data names) over
``parquet_columns`` (reading them), ``lazy`` (Dask and pyarrow, imported when used).
"""
