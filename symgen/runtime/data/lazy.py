"""What reading data lazily needs, imported only then (``symgen[dask]``): ``dask.array``
and pyarrow; and whether some values were read lazily."""

from __future__ import annotations

from typing import Any

from symgen.errors import SpecError
from symgen.runtime.data.slots import Value


def dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError:
        raise SpecError(
            "reading data from a folder needs dask (and zarr for a Zarr store): "
            "pip install 'symgen[dask]'"
        ) from None
    return da


def pyarrow_modules(path: str) -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SpecError(
            f"reading the Parquet data {path} needs pyarrow: pip install 'symgen[dask]'"
        ) from None
    return pa, pq


def is_lazy(values: dict[str, Value]) -> bool:
    """Whether some of ``values`` are Dask arrays (read lazily from a folder)."""
    return any(hasattr(v.array, "dask") for v in values.values())
