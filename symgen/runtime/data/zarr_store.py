"""Zarr stores (a ``*.zarr`` folder, one array per data name), read as lazy Dask arrays,
one Zarr chunk per Dask chunk, checked as they are read.

Zarr itself reads a chunk whose file is missing as the fill value (zeros), and a chunk
that does not decode as a long traceback from its codecs. Here a missing chunk is a
``SpecError`` naming the array and the chunk, before training starts (every chunk's
file is looked for) and again when it is read; a chunk that cannot be read is a
``SpecError`` naming the array, the chunk and what failed. (Zarr 3 leaves out chunks
that hold only the fill value unless the store is written with
``write_empty_chunks=True``: such a store is refused too, rather than guessed at.)
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from symgen.errors import SpecError
from symgen.runtime.data.lazy import dask_array


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a Zarr store: a ``*.zarr`` folder, or one with Zarr metadata."""
    return path.is_dir() and (
        path.suffix.lower() == ".zarr"
        or any((path / meta).is_file() for meta in ("zarr.json", ".zgroup", ".zarray"))
    )


def _zarr(path: str) -> Any:
    try:
        import zarr
    except ImportError:
        raise SpecError(
            f"reading the Zarr store {path} needs zarr: pip install 'symgen[dask]'"
        ) from None
    return zarr


def read_zarr(path: str) -> dict[str, Any]:
    """The arrays of a Zarr store (a group of arrays by name), as lazy Dask arrays whose
    chunks are the arrays' chunks (shards, for sharded arrays), each checked present."""
    da = dask_array()
    zarr = _zarr(path)
    try:
        group = zarr.open_group(path, mode="r")
        names = sorted(group.array_keys())
    except Exception as exc:  # noqa: BLE001 - zarr raises many kinds
        raise SpecError(f"cannot read {path} as a Zarr store of arrays by name: {exc}") from None
    arrays = {}
    for name in names:
        source = ZarrChunks(path, name)
        source.check_present()
        arrays[name] = da.from_array(source, chunks=source.grid, asarray=False)
    return arrays


class ZarrChunks:
    """One array of a Zarr store as an array-like that Dask reads chunk by chunk: a missing
    chunk file or a chunk that does not decode is a ``SpecError`` naming the array and the
    chunk. It pickles as the store's path and the array's name, so that each Dask worker
    opens the store itself (at the same path on every worker)."""

    def __init__(self, path: str, name: str) -> None:
        self.path = os.path.abspath(path)
        self.name = name
        array = self._open()
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        #: The shape of a stored chunk (of a shard, for sharded arrays).
        self.grid = tuple(getattr(array, "shards", None) or array.chunks)
        self._array = array

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["name"])

    def __dask_tokenize__(self) -> tuple:
        return ("symgen-zarr", self.path, self.name, self.shape, str(self.dtype))

    def _open(self) -> Any:
        try:
            return _zarr(self.path).open_array(self.path, path=self.name, mode="r")
        except Exception as exc:  # noqa: BLE001 - zarr raises many kinds
            raise SpecError(f"cannot open array {self.name!r} of {self.path}: {exc}") from None

    def _chunk_file(self, coords: tuple[int, ...]) -> Path:
        key = self._array.metadata.encode_chunk_key(coords)
        return Path(self.path, self.name, *key.split("/"))

    def _missing(self, coords: tuple[int, ...]) -> SpecError:
        rows = coords[0] * self.grid[0] if coords else 0
        span = f" (rows {rows} to {min(rows + self.grid[0], self.shape[0]) - 1})" if coords else ""
        return SpecError(
            f"array {self.name!r} of the Zarr store {self.path}: chunk "
            f"{'.'.join(map(str, coords)) or '0'}{span} is missing "
            f"({self._chunk_file(coords)}); refusing to train on its fill value"
        )

    def check_present(self) -> None:
        """``SpecError`` naming the first chunk of the array whose file is missing."""
        counts = [math.ceil(n / g) if g else 0 for n, g in zip(self.shape, self.grid, strict=True)]
        for coords in itertools.product(*(range(c) for c in counts)):
            if not self._chunk_file(coords).is_file():
                raise self._missing(coords)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        starts = [k.start or 0 if isinstance(k, slice) else int(k) for k in key]
        coords = tuple(s // g for s, g in zip(starts, self.grid, strict=False))
        coords += (0,) * (self.ndim - len(coords))
        if self.ndim and all(n for n in self.shape) and not self._chunk_file(coords).is_file():
            raise self._missing(coords)
        try:
            return np.asarray(self._array[key])
        except Exception as exc:  # noqa: BLE001 - codecs raise many kinds
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise SpecError(
                f"array {self.name!r} of the Zarr store {self.path}: chunk "
                f"{'.'.join(map(str, coords))} cannot be read ({type(exc).__name__}: "
                f"{message})"
            ) from None
