"""Parquet data (a ``.parquet`` file, or a folder whose ``*.parquet`` files form one
dataset), read as lazy Dask arrays whose rows are samples.

The files of a folder are taken in name order, numbers in names compared as numbers
(``part.2.parquet`` before ``part.10.parquet``, as Dask's ``to_parquet`` names them;
names starting with ``.`` or ``_`` are skipped), and read one row group at a time
(consecutive row groups of a file merged up to about 64 MB), with row counts from the
Parquet metadata, so that chunk boundaries lie at file and row-group boundaries. Data
names map to columns:

- a per-sample data symbol ``t`` is the column ``t``;
- a matrix data symbol ``X`` of shape (N, D) is the columns ``X_0``, ..., ``X_{D-1}``
  (as ``pandas.DataFrame(x).add_prefix("X_")`` names them), or a fixed-size list
  column ``X`` (``pyarrow.list_(pyarrow.float64(), D)``); a plain column ``t``
  gives a matrix of shape (N, 1).

Integer and boolean columns are read as numbers; every array is read in the
problem's dtype (float64 or float32), nulls as NaN.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from symgen.compiler.problem import Problem
from symgen.errors import SpecError
from symgen.runtime.data.lazy import dask_array, pyarrow_modules
from symgen.runtime.data.npy_folder import NPY_CHUNK_BYTES
from symgen.runtime.data.parquet_columns import ParquetColumns, numeric_type
from symgen.runtime.data.slots import Slot, slots

#: Rows per chunk of Parquet data: consecutive row groups of a file merged up to about
#: this many bytes (of all the data columns read); a larger row group is one chunk.
PARQUET_CHUNK_BYTES = NPY_CHUNK_BYTES


def _natural(name: str) -> list[Any]:
    """A sort key comparing the numbers in a name as numbers: part.2 before part.10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files of ``path``: itself, or a folder's ``*.parquet`` files in order."""
    if not path.is_dir():
        return [path]
    files = [
        file
        for file in path.glob("*.parquet")
        if file.is_file() and not file.name.startswith((".", "_"))
    ]
    return sorted(files, key=lambda file: _natural(file.name))


class ColumnPlan(NamedTuple):
    """The columns one data array is read from: numeric columns (one per matrix column),
    or one fixed-size list column (``listed``); ``width`` is None for a 1-D array."""

    columns: tuple[str, ...]
    listed: bool
    width: int | None


def read_parquet(problem: Problem, path: str) -> dict[str, Any]:
    """The problem's data from a ``.parquet`` file or a folder of them, as lazy Dask arrays
    in row chunks at row-group boundaries (see the module docstring for the columns)."""
    da = dask_array()
    pa, pq = pyarrow_modules(path)
    files = parquet_files(Path(path))
    data_slots = [s for s in slots(problem) if s.role == "data"]
    pieces, stamps, schemas = _row_groups(pq, files)
    plans: dict[str, ColumnPlan] = {}
    missing = []
    for slot in data_slots:
        plan = _column_plan(pa, problem, slot, schemas[0], path)
        if isinstance(plan, str):
            missing.append((slot, plan))
        else:
            plans[slot.name] = plan
    if missing:
        shown = sorted(schemas[0].names, key=_natural)
        held = ", ".join(shown[:12]) + (f", ... ({len(shown)} in all)" if len(shown) > 12 else "")
        what = "; ".join(f"data {s.name!r} {s.shape_text} needs {cols}" for s, cols in missing)
        needs = ", ".join(f"{s.name} {s.shape_text}" for s in data_slots)
        raise SpecError(
            f"{what}: missing from {path} (Parquet columns: {held or 'none'}); "
            f"{problem.name} needs {needs}"
        )
    _check_same_columns(pa, path, files, schemas, plans)
    dtype = np.dtype(problem.dtype)
    row_chunks = _row_chunks(pieces, plans, dtype)
    arrays = {}
    for name, (columns, listed, width) in plans.items():
        source = ParquetColumns(tuple(pieces), columns, listed, width, dtype, tuple(stamps))
        shape_chunks = (row_chunks,) if width is None else (row_chunks, (width,))
        meta = np.empty((0,) * source.ndim, dtype=dtype)
        arrays[name] = da.from_array(source, chunks=shape_chunks, meta=meta)
    return arrays


def _row_groups(
    pq: Any, files: list[Path]
) -> tuple[list[tuple[str, int, int]], list[tuple[str, int]], list[Any]]:
    """The non-empty row groups of ``files`` as (file, row group, rows), in order; each
    file's (path, modification time); each file's Arrow schema."""
    pieces: list[tuple[str, int, int]] = []
    stamps, schemas = [], []
    for file in files:
        try:
            handle = pq.ParquetFile(str(file))
            meta = handle.metadata
            schemas.append(handle.schema_arrow)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds
            raise SpecError(f"cannot read {file} as a Parquet file: {exc}") from None
        name = os.path.abspath(file)
        stamps.append((name, os.stat(file).st_mtime_ns))
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            if rows:
                pieces.append((name, group, rows))
    return pieces, stamps, schemas


def _column_plan(pa: Any, problem: Problem, slot: Slot, schema: Any, path: str) -> ColumnPlan | str:
    """The columns of ``schema`` that the data ``slot`` is read from, or, when they are
    missing, the columns it needs (a ``SpecError`` for columns that are not numbers)."""
    where = f"{slot.name!r} in {path}"
    if not slot.shape or (problem.kind != "per_sample" and len(slot.shape) != 2):
        raise SpecError(
            f"data {slot.name!r} is {slot.shape_text}, but Parquet columns hold one value "
            f"per row; give {slot.name} in an .npz file"
        )
    field = schema.field(slot.name) if slot.name in set(schema.names) else None
    if len(slot.shape) == 1:
        if field is None:
            return f"column {slot.name}"
        if not numeric_type(pa, field.type):
            raise SpecError(f"column {where} is {field.type}, not numbers")
        return ColumnPlan((slot.name,), False, None)
    if field is not None:
        if numeric_type(pa, field.type):
            return ColumnPlan((slot.name,), False, 1)
        if pa.types.is_fixed_size_list(field.type) and numeric_type(pa, field.type.value_type):
            return ColumnPlan((slot.name,), True, field.type.list_size)
        raise SpecError(
            f"column {where} is {field.type}; a matrix {slot.name} {slot.shape_text} "
            f"is read from columns {slot.name}_0, {slot.name}_1, ... or a fixed-size "
            f"list column {slot.name} of numbers"
        )
    pattern = re.compile(re.escape(slot.name) + r"_(0|[1-9][0-9]*)")
    found = {int(m.group(1)): n for n in schema.names if (m := pattern.fullmatch(n))}
    if not found:
        width = slot.shape[1]
        last = int(width) - 1 if width.is_Integer else f"{{{width}-1}}"
        if width == 1:
            return f"column {slot.name} (or {slot.name}_0)"
        return (
            f"columns {slot.name}_0, ..., {slot.name}_{last} "
            f"(or a fixed-size list column {slot.name})"
        )
    gaps = [f"{slot.name}_{j}" for j in range(max(found) + 1) if j not in found]
    if gaps:
        raise SpecError(
            f"data {slot.name!r} {slot.shape_text} in {path}: columns "
            f"{slot.name}_0..{slot.name}_{max(found)} lack {', '.join(gaps)}"
        )
    for j in sorted(found):
        column = schema.field(found[j])
        if not numeric_type(pa, column.type):
            raise SpecError(f"column {found[j]!r} in {path} is {column.type}, not numbers")
    return ColumnPlan(tuple(found[j] for j in sorted(found)), False, len(found))


def _check_same_columns(
    pa: Any, path: str, files: list[Path], schemas: list[Any], plans: dict[str, ColumnPlan]
) -> None:
    """``SpecError`` unless the other files hold the same columns as the first, of numbers
    (or lists of as many)."""
    for file, other in zip(files[1:], schemas[1:], strict=True):
        for columns, listed, width in plans.values():
            for column in columns:
                if other.get_field_index(column) < 0:
                    raise SpecError(
                        f"column {column!r} is in {files[0]} but missing from {file}; "
                        f"the files of {path} must hold the same columns"
                    )
                kind = other.field(column).type
                fits = (
                    pa.types.is_fixed_size_list(kind)
                    and kind.list_size == width
                    and numeric_type(pa, kind.value_type)
                    if listed
                    else numeric_type(pa, kind)
                )
                if not fits:
                    first = schemas[0].field(column).type
                    raise SpecError(
                        f"column {column!r} is {kind} in {file} but {first} in {files[0]}"
                    )


def _row_chunks(
    pieces: list[tuple[str, int, int]], plans: dict[str, ColumnPlan], dtype: np.dtype
) -> tuple[int, ...]:
    """Rows per chunk: consecutive row groups of a file, up to ``PARQUET_CHUNK_BYTES`` of
    all the columns read."""
    row_bytes = dtype.itemsize * sum(1 if w is None else w for _, _, w in plans.values())
    chunks: list[int] = []
    chunk_file, chunk_bytes = None, 0
    for file, _, rows in pieces:
        size = rows * row_bytes
        if chunks and file == chunk_file and chunk_bytes + size <= PARQUET_CHUNK_BYTES:
            chunks[-1] += rows
            chunk_bytes += size
        else:
            chunks.append(rows)
            chunk_file, chunk_bytes = file, size
    return tuple(chunks) or (0,)
