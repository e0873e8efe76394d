"""A folder of ``NAME.npy`` files, read as lazy Dask arrays in row chunks (memory-mapped,
slice by slice)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from symgen.errors import SpecError
from symgen.runtime.data.lazy import dask_array

#: Rows per chunk of a ``.npy`` file read lazily: about this many bytes per chunk.
NPY_CHUNK_BYTES = 64 * 2**20


class NpyFile:
    """A ``.npy`` file as an array-like that Dask reads slice by slice (memory-mapped).

    It pickles as its path, so that each Dask worker opens the file itself: the
    file must be at the same path on every worker (a shared file system)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        header = np.load(self.path, mmap_mode="r", allow_pickle=False)
        self.shape = tuple(header.shape)
        self.dtype = header.dtype
        self.ndim = header.ndim
        self.stamp = os.stat(self.path).st_mtime_ns

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.array(np.load(self.path, mmap_mode="r", allow_pickle=False)[key])

    def __dask_tokenize__(self) -> tuple:
        return ("symgen-npy", self.path, self.stamp, self.shape, str(self.dtype))


def read_npy_folder(path: str) -> dict[str, Any]:
    """The ``NAME.npy`` files of a folder by ``NAME``, as lazy Dask arrays in row chunks."""
    da = dask_array()
    arrays = {}
    for file in sorted(Path(path).glob("*.npy")):
        try:
            source = NpyFile(str(file))
        except (ValueError, OSError) as exc:
            raise SpecError(f"cannot read {file} as a .npy file: {exc}") from None
        if source.ndim == 0:
            arrays[file.stem] = source[()]
            continue
        row_bytes = max(1, source.dtype.itemsize * math.prod(source.shape[1:]))
        rows = max(1, min(source.shape[0], NPY_CHUNK_BYTES // row_bytes))
        chunks = (rows, *source.shape[1:])
        arrays[file.stem] = da.from_array(source, chunks=chunks)
    return arrays
