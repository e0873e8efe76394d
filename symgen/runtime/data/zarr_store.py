"""Zarr stores (a ``*.zarr`` folder, one array per data name), read as lazy Dask arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from symgen.errors import SpecError
from symgen.runtime.data.lazy import dask_array


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a Zarr store: a ``*.zarr`` folder, or one with Zarr metadata."""
    return path.is_dir() and (
        path.suffix.lower() == ".zarr"
        or any((path / meta).is_file() for meta in ("zarr.json", ".zgroup", ".zarray"))
    )


def read_zarr(path: str) -> dict[str, Any]:
    """The arrays of a Zarr store (a group of arrays by name), as lazy Dask arrays."""
    da = dask_array()
    try:
        import zarr
    except ImportError:
        raise SpecError(
            f"reading the Zarr store {path} needs zarr: pip install 'symgen[dask]'"
        ) from None
    try:
        group = zarr.open_group(path, mode="r")
        names = sorted(group.array_keys())
    except Exception as exc:  # noqa: BLE001 - zarr raises many kinds
        raise SpecError(f"cannot read {path} as a Zarr store of arrays by name: {exc}") from None
    return {name: da.from_zarr(path, component=name) for name in names}
