"""Columns of a Parquet dataset as an array-like that Dask reads slice by slice, each
slice from the row groups that hold its rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from symgen.errors import SpecError
from symgen.runtime.data.lazy import pyarrow_modules


def read_row_groups(path: str, groups: list[int], columns: list[str]) -> Any:
    """Some row groups of one Parquet file, only ``columns``: a ``pyarrow.Table``."""
    _, pq = pyarrow_modules(path)
    return pq.ParquetFile(path).read_row_groups(groups, columns=columns, use_threads=False)


class ParquetColumns:
    """Some columns of a Parquet dataset as an array-like of shape (rows,) or (rows, width)
    that Dask reads slice by slice, each slice from the row groups that hold its rows.

    ``columns`` are numeric columns (one per matrix column), or one fixed-size list
    column (``listed``). It pickles as its file paths, so that each Dask worker
    opens the files itself: they must be at the same paths on every worker."""

    def __init__(
        self,
        pieces: tuple[tuple[str, int, int], ...],
        columns: tuple[str, ...],
        listed: bool,
        width: int | None,
        dtype: Any,
        stamps: tuple[tuple[str, int], ...],
    ) -> None:
        #: (file, row group, rows) in order.
        self.pieces = pieces
        self.starts = np.cumsum([0, *(rows for _, _, rows in pieces)]).tolist()
        self.columns = columns
        self.listed = listed
        self.width = width  # None: a 1-D array of one column
        self.dtype = np.dtype(dtype)
        self.shape = (self.starts[-1],) if width is None else (self.starts[-1], width)
        self.ndim = len(self.shape)
        self.stamps = stamps

    def __dask_tokenize__(self) -> tuple:
        return ("symgen-parquet", self.stamps, self.pieces, self.columns, self.listed,
                self.width, str(self.dtype))  # fmt: skip

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:at] + fill + key[at + 1 :]
        rows, rest = (key[0], key[1:]) if key else (slice(None), ())
        total = self.shape[0]
        if isinstance(rows, slice):
            span = range(*rows.indices(total))
            if not span:
                start, stop, local = 0, 0, slice(0, 0)
            else:
                start = min(span[0], span[-1])
                stop = max(span[0], span[-1]) + 1
                first, last = span[0] - start, span[-1] - start
                local = (
                    slice(first, last + 1, span.step)
                    if span.step > 0
                    else np.arange(first, last - 1, span.step)
                )
        elif isinstance(rows, int | np.integer):
            index = int(rows) + total if rows < 0 else int(rows)
            if not 0 <= index < total:
                raise IndexError(f"row {rows} out of range for {total} rows")
            start, stop, local = index, index + 1, 0
        else:
            picked = np.arange(total)[rows]
            start = int(picked.min()) if picked.size else 0
            stop = int(picked.max()) + 1 if picked.size else 0
            local = picked - start
        block = self._rows(start, stop)
        return block[(local, *rest)]

    def _rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop``, read from the row groups that hold them."""
        shape = (max(0, stop - start), *self.shape[1:])
        if stop <= start:
            return np.empty(shape, dtype=self.dtype)
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        last = int(np.searchsorted(self.starts, stop, side="left"))
        blocks, run = [], []
        for k in range(first, last):
            if run and self.pieces[run[0]][0] != self.pieces[k][0]:
                blocks.append(self._read(run))
                run = []
            run.append(k)
        blocks.append(self._read(run))
        out = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        offset = start - self.starts[first]
        return out[offset : offset + (stop - start)]

    def _read(self, run: list[int]) -> np.ndarray:
        """Consecutive pieces of one file as an array of ``self.dtype``."""
        path = self.pieces[run[0]][0]
        groups = [self.pieces[k][1] for k in run]
        try:
            table = read_row_groups(path, groups, list(self.columns))
        except (OSError, ValueError) as exc:  # pyarrow's ArrowIOError, ArrowInvalid
            raise SpecError(
                f"columns {', '.join(self.columns)} of {path}: row group(s) "
                f"{', '.join(map(str, groups))} cannot be read ({exc})"
            ) from None
        pa, _ = pyarrow_modules(path)
        target = pa.float32() if self.dtype == np.float32 else pa.float64()
        rows = table.num_rows
        if self.width is None:
            return table.column(0).cast(target, safe=False).to_numpy()
        if self.listed:
            column = table.column(0).combine_chunks()
            values = column.values.slice(column.offset * self.width, rows * self.width)
            out = values.cast(target, safe=False).to_numpy(zero_copy_only=False)
            out = out.reshape(rows, self.width)
            if column.null_count:
                out = out.copy()
                out[column.is_null().to_numpy(zero_copy_only=False)] = np.nan
            return out
        out = np.empty((rows, self.width), dtype=self.dtype)
        for j in range(self.width):
            out[:, j] = table.column(j).cast(target, safe=False).to_numpy()
        return out


def numeric_type(pa: Any, type_: Any) -> bool:
    return bool(pa.types.is_integer(type_) or pa.types.is_floating(type_)
                or pa.types.is_boolean(type_))  # fmt: skip
