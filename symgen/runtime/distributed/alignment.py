"""The data of a ``RowPlan`` laid out for chunks of rows: the names checked against the
module's, every row array a Dask array with the same row chunks (other axes whole), and
the data that is not split over rows computed whole."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def check_data_names(name: str, names: tuple[str, ...], data: Any) -> None:
    """``TypeError``/``ValueError`` unless ``data`` is a dict holding exactly ``names``."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{name}: data must be a dict of arrays by name ({', '.join(names)})")
    missing = [n for n in names if n not in data]
    extra = [str(n) for n in data if n not in names]
    if missing or extra:
        parts = [
            missing and f"missing data {', '.join(map(repr, missing))}",
            extra and f"unknown data {', '.join(map(repr, extra))}",
        ]
        raise ValueError(
            f"{name}: {'; '.join(p for p in parts if p)}; the module needs "
            f"{', '.join(names) or 'no data'}"
        )


def whole_value(value: Any, dask: Any) -> Any:
    """``value`` computed, if it is a Dask collection: data every chunk gets whole."""
    if dask.is_dask_collection(value):
        (value,) = dask.compute(value)
    return value


def aligned(name: str, arrays: dict[str, Any], da: Any) -> dict[str, Any]:
    """Every row array as a Dask array with the same row chunks, other axes whole."""
    converted = {}
    lengths = {}
    for key, value in arrays.items():
        if not isinstance(value, da.Array):
            value = np.asarray(value)
            value = da.from_array(value, chunks=value.shape or 1)
        if value.ndim == 0:
            raise ValueError(f"{name}: data {key!r} is a single number, not rows")
        converted[key] = value
        lengths[key] = value.shape[0]
    first = next(iter(converted))
    for key, n in lengths.items():
        if n != lengths[first]:
            raise ValueError(
                f"{name}: data {key!r} has {n} rows but {first!r} has "
                f"{lengths[first]}; the data are split along their rows (axis 0), so all "
                "need the same number"
            )
    rows = next((v.chunks[0] for v in converted.values() if v.numblocks[0] > 1), None)
    rows = rows or converted[first].chunks[0]
    out = {}
    for key, value in converted.items():
        target = {0: rows, **{axis: -1 for axis in range(1, value.ndim)}}
        if value.chunks[0] != rows or any(len(c) > 1 for c in value.chunks[1:]):
            value = value.rechunk(target)
        out[key] = value
    return out
