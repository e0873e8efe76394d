"""Reading what ``symgen train`` trains on: data arrays and initial parameters.

Data come from an ``.npz`` file (arrays by name) or, for per-sample problems,
a ``.csv`` file with a header row naming its columns; data larger than memory
from a Zarr store (a ``*.zarr`` folder, one array per data name), a folder
of ``NAME.npy`` files, or Parquet (a ``.parquet`` file, or a folder whose
``*.parquet`` files form one dataset), read lazily as Dask arrays (chunk by chunk,
never whole: ``symgen[dask]``) and trained on with ``symgen.distributed``. Initial
parameters come from ``--init FILE.npz`` and/or ``--init NAME=VALUE`` for scalar
parameters (parsed without ``eval``: ``0.5``, ``pi/2``, ``exp(-1)``).

Parquet rows are samples. The files of a folder are taken in name order, numbers
in names compared as numbers (``part.2.parquet`` before ``part.10.parquet``, as
Dask's ``to_parquet`` names them; names starting with ``.`` or ``_`` are
skipped), and read one row group at a time (consecutive row groups of a file
merged up to about 64 MB), with row counts from the Parquet metadata, so that
chunk boundaries lie at file and row-group boundaries. Data names map to columns:

- a per-sample data symbol ``t`` is the column ``t``;
- a matrix data symbol ``X`` of shape (N, D) is the columns ``X_0``, ..., ``X_{D-1}``
  (as ``pandas.DataFrame(x).add_prefix("X_")`` names them), or a fixed-size list
  column ``X`` (``pyarrow.list_(pyarrow.float64(), D)``); a plain column ``t``
  gives a matrix of shape (N, 1).

Integer and boolean columns are read as numbers; every array is read in the
problem's dtype (float64 or float32), nulls as NaN.

Every array is checked against the problem's symbolic shapes before training,
and a mismatch is a ``SpecError`` naming the array, its shape and the shape it
should have, with the dimensions already fixed by other arrays, e.g.
``data 'X' in data.npz has shape (3, 4); expected (M, N_I) with N_I = 5 from W1``.
"""

from __future__ import annotations

import math
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions import MatrixExpr

from symgen.compiler.exprparse import parse_assignment
from symgen.compiler.problem import Problem
from symgen.errors import SpecError

#: The sample count of per-sample problems, as it is written in messages.
SAMPLES = sp.Symbol("N", integer=True, positive=True)


@dataclass(frozen=True)
class Slot:
    """One parameter or data array of a problem and the shape it must have."""

    name: str
    role: str  # "param" or "data"
    #: Symbolic dimensions; () for a single number.
    shape: tuple[sp.Expr, ...]

    @property
    def shape_text(self) -> str:
        if not self.shape:
            return "a single number"
        inner = ", ".join(str(d) for d in self.shape)
        return f"({inner},)" if len(self.shape) == 1 else f"({inner})"


@dataclass(frozen=True)
class Value:
    """An array read for a slot, and where it came from (for messages)."""

    #: A NumPy array, or a Dask array for data read lazily from a folder.
    array: Any
    source: str  # e.g. "in data.npz", "from --init a=0.5"


#: Rows per chunk of a ``.npy`` file read lazily: about this many bytes per chunk.
NPY_CHUNK_BYTES = 64 * 2**20


def slots(problem: Problem) -> tuple[Slot, ...]:
    """The problem's parameters, then its data, each with its expected shape."""
    out = []
    for role, symbols in (("param", problem.params), ("data", problem.data)):
        for symbol in symbols:
            if isinstance(symbol, MatrixExpr):
                shape = tuple(sp.sympify(d) for d in symbol.shape)
            elif role == "data" and problem.kind == "per_sample":
                shape = (SAMPLES,)
            else:
                shape = ()
            out.append(Slot(symbol.name, role, shape))
    return tuple(out)


# --- files -------------------------------------------------------------------


def read_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file by name (never unpickling anything)."""
    if not Path(path).is_file():
        raise SpecError(f"file not found: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise SpecError(f"cannot read {path} as an .npz file: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise SpecError(f"{path} holds a single array (.npy); save arrays by name with np.savez")
    arrays = {}
    with archive:
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except ValueError as exc:
                raise SpecError(f"cannot read array {name!r} from {path}: {exc}") from None
    return arrays


def read_csv(path: str) -> dict[str, np.ndarray]:
    """The columns of a ``.csv`` file with a header row, by header name."""
    if not Path(path).is_file():
        raise SpecError(f"file not found: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            table = np.genfromtxt(
                path,
                delimiter=",",
                names=True,
                dtype=float,
                deletechars="",
                autostrip=True,
                encoding="utf-8",
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpecError(f"cannot read {path} as .csv: {exc}") from None
    if table.dtype.names is None:
        raise SpecError(f"{path} has no header row naming its columns")
    table = np.atleast_1d(table)
    if table.size == 0:
        raise SpecError(f"{path} has a header but no rows")
    return {name: np.ascontiguousarray(table[name]) for name in table.dtype.names}


def _dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError:
        raise SpecError(
            "reading data from a folder needs dask (and zarr for a Zarr store): "
            "pip install 'symgen[dask]'"
        ) from None
    return da


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a Zarr store: a ``*.zarr`` folder, or one with Zarr metadata."""
    return path.is_dir() and (
        path.suffix.lower() == ".zarr"
        or any((path / meta).is_file() for meta in ("zarr.json", ".zgroup", ".zarray"))
    )


def read_zarr(path: str) -> dict[str, Any]:
    """The arrays of a Zarr store (a group of arrays by name), as lazy Dask arrays."""
    da = _dask_array()
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
    da = _dask_array()
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


#: Rows per chunk of Parquet data: consecutive row groups of a file merged up to about
#: this many bytes (of all the data columns read); a larger row group is one chunk.
PARQUET_CHUNK_BYTES = NPY_CHUNK_BYTES


def _pyarrow(path: str) -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SpecError(
            f"reading the Parquet data {path} needs pyarrow: pip install 'symgen[dask]'"
        ) from None
    return pa, pq


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


def _read_row_groups(path: str, groups: list[int], columns: list[str]) -> Any:
    """Some row groups of one Parquet file, only ``columns``: a ``pyarrow.Table``."""
    _, pq = _pyarrow(path)
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
        table = _read_row_groups(path, [self.pieces[k][1] for k in run], list(self.columns))
        pa, _ = _pyarrow(path)
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


def _numeric_type(pa: Any, type_: Any) -> bool:
    return bool(pa.types.is_integer(type_) or pa.types.is_floating(type_)
                or pa.types.is_boolean(type_))  # fmt: skip


def read_parquet(problem: Problem, path: str) -> dict[str, Any]:
    """The problem's data from a ``.parquet`` file or a folder of them, as lazy Dask arrays
    in row chunks at row-group boundaries (see the module docstring for the columns)."""
    da = _dask_array()
    pa, pq = _pyarrow(path)
    files = parquet_files(Path(path))
    data_slots = [s for s in slots(problem) if s.role == "data"]
    needs = ", ".join(f"{s.name} {s.shape_text}" for s in data_slots)
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
    schema = schemas[0]
    names = set(schema.names)

    # Which columns each data array is read from, and its width.
    plans: dict[str, tuple[tuple[str, ...], bool, int | None]] = {}
    missing = []
    for slot in data_slots:
        where = f"{slot.name!r} in {path}"
        if not slot.shape or (problem.kind != "per_sample" and len(slot.shape) != 2):
            raise SpecError(
                f"data {slot.name!r} is {slot.shape_text}, but Parquet columns hold one value "
                f"per row; give {slot.name} in an .npz file"
            )
        field = schema.field(slot.name) if slot.name in names else None
        if len(slot.shape) == 1:
            if field is None:
                missing.append((slot, f"column {slot.name}"))
                continue
            if not _numeric_type(pa, field.type):
                raise SpecError(f"column {where} is {field.type}, not numbers")
            plans[slot.name] = ((slot.name,), False, None)
            continue
        if field is not None:
            if _numeric_type(pa, field.type):
                plans[slot.name] = ((slot.name,), False, 1)
            elif pa.types.is_fixed_size_list(field.type) and _numeric_type(
                pa, field.type.value_type
            ):
                plans[slot.name] = ((slot.name,), True, field.type.list_size)
            else:
                raise SpecError(
                    f"column {where} is {field.type}; a matrix {slot.name} {slot.shape_text} "
                    f"is read from columns {slot.name}_0, {slot.name}_1, ... or a fixed-size "
                    f"list column {slot.name} of numbers"
                )
            continue
        pattern = re.compile(re.escape(slot.name) + r"_(0|[1-9][0-9]*)")
        found = {int(m.group(1)): n for n in schema.names if (m := pattern.fullmatch(n))}
        if not found:
            width = slot.shape[1]
            last = int(width) - 1 if width.is_Integer else f"{{{width}-1}}"
            missing.append(
                (slot, f"column {slot.name} (or {slot.name}_0)")
                if width == 1
                else (
                    slot,
                    f"columns {slot.name}_0, ..., {slot.name}_{last} "
                    f"(or a fixed-size list column {slot.name})",
                )
            )
            continue
        gaps = [f"{slot.name}_{j}" for j in range(max(found) + 1) if j not in found]
        if gaps:
            raise SpecError(
                f"data {slot.name!r} {slot.shape_text} in {path}: columns "
                f"{slot.name}_0..{slot.name}_{max(found)} lack {', '.join(gaps)}"
            )
        for j in sorted(found):
            column = schema.field(found[j])
            if not _numeric_type(pa, column.type):
                raise SpecError(f"column {found[j]!r} in {path} is {column.type}, not numbers")
        plans[slot.name] = (tuple(found[j] for j in sorted(found)), False, len(found))
    if missing:
        shown = sorted(names, key=_natural)
        held = ", ".join(shown[:12]) + (f", ... ({len(shown)} in all)" if len(shown) > 12 else "")
        what = "; ".join(f"data {s.name!r} {s.shape_text} needs {cols}" for s, cols in missing)
        raise SpecError(
            f"{what}: missing from {path} (Parquet columns: {held or 'none'}); "
            f"{problem.name} needs {needs}"
        )

    # The other files must hold the same columns, of numbers (or lists of as many).
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
                    and _numeric_type(pa, kind.value_type)
                    if listed
                    else _numeric_type(pa, kind)
                )
                if not fits:
                    first = schema.field(column).type
                    raise SpecError(
                        f"column {column!r} is {kind} in {file} but {first} in {files[0]}"
                    )

    # Row chunks: consecutive row groups of a file, up to PARQUET_CHUNK_BYTES of all columns.
    dtype = np.dtype(problem.dtype)
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
    row_chunks = tuple(chunks) or (0,)
    arrays = {}
    for name, (columns, listed, width) in plans.items():
        source = ParquetColumns(tuple(pieces), columns, listed, width, dtype, tuple(stamps))
        shape_chunks = (row_chunks,) if width is None else (row_chunks, (width,))
        meta = np.empty((0,) * source.ndim, dtype=dtype)
        arrays[name] = da.from_array(source, chunks=shape_chunks, meta=meta)
    return arrays


def read_data(problem: Problem, path: str | None) -> dict[str, Value]:
    """The problem's data arrays from ``path``: .npz, .csv for per-sample problems, or read
    lazily with Dask: a Zarr store, a folder of ``NAME.npy`` files, or Parquet."""
    data_slots = [s for s in slots(problem) if s.role == "data"]
    if not data_slots:
        if path is not None:
            raise SpecError(f"{problem.name} takes no data; drop --data {path}")
        return {}
    needs = ", ".join(f"{s.name} {s.shape_text}" for s in data_slots)
    if path is None:
        raise SpecError(f"{problem.name} needs data {needs}: give --data FILE.npz")
    suffix = Path(path).suffix.lower()
    if is_zarr(Path(path)):
        arrays = read_zarr(path)
        holds = "arrays"
    elif Path(path).is_dir():
        npy, parquet = any(Path(path).glob("*.npy")), parquet_files(Path(path))
        if npy and parquet:
            raise SpecError(
                f"--data {path}: the folder holds both .npy and .parquet files; "
                "keep one kind of data in it"
            )
        if parquet:
            arrays = read_parquet(problem, path)
            holds = "Parquet columns"
        elif npy:
            arrays = read_npy_folder(path)
            holds = ".npy files"
        else:
            raise SpecError(
                f"--data {path}: a folder must be a Zarr store (*.zarr) or hold one NAME.npy "
                f"file per data array ({needs}) or *.parquet files with a column per data name"
            )
    elif suffix == ".parquet" and Path(path).is_file():
        arrays = read_parquet(problem, path)
        holds = "Parquet columns"
    elif suffix == ".csv":
        if problem.kind != "per_sample":
            raise SpecError(
                f"--data {path}: a .csv holds 1-D columns, but {problem.name} needs "
                f"matrices ({needs}); save them with np.savez"
            )
        arrays = read_csv(path)
        holds = "columns"
    elif suffix == ".npz":
        arrays = read_npz(path)
        holds = "arrays"
    elif suffix in (".zarr", ".parquet") or not Path(path).exists():
        raise SpecError(f"file not found: {path}")
    else:
        raise SpecError(
            f"--data {path}: give an .npz file of arrays by name"
            + (", a .csv file with a header row" if problem.kind == "per_sample" else "")
            + ", a Zarr store (*.zarr), a folder of NAME.npy files, or a .parquet file or "
            "folder of them"
        )
    values = {}
    for slot in data_slots:
        if slot.name not in arrays:
            held = ", ".join(sorted(arrays)) or "nothing"
            raise SpecError(
                f"data {slot.name!r} {slot.shape_text} is missing from {path} "
                f"({holds}: {held}); {problem.name} needs {needs}"
            )
        values[slot.name] = _numeric(slot, Value(arrays[slot.name], f"in {path}"))
    return values


def read_init(problem: Problem, items: list[str]) -> dict[str, Value]:
    """Initial parameters from ``--init`` items: ``FILE.npz`` or ``NAME=VALUE``.

    A later item overrides an earlier one for the same parameter.
    """
    param_slots = {s.name: s for s in slots(problem) if s.role == "param"}
    names = ", ".join(param_slots)
    values: dict[str, Value] = {}
    files = []
    for item in items:
        if _is_assignment(item):
            name, expr = parse_assignment(item)
            slot = param_slots.get(name)
            if slot is None:
                raise SpecError(
                    f"--init {item}: {problem.name} has no parameter {name!r}; "
                    f"its parameters are {names}"
                )
            if slot.shape:
                raise SpecError(
                    f"--init {item}: {name!r} is an array of shape {slot.shape_text}; "
                    "give it in an --init FILE.npz"
                )
            try:
                number = float(expr)
            except (TypeError, ValueError):
                raise SpecError(f"--init {item}: {expr} is not a real number") from None
            if not math.isfinite(number):
                raise SpecError(f"--init {item}: the value is {number}")
            values[name] = Value(np.asarray(number), f"from --init {item}")
        else:
            files.append(item)
            for name, array in read_npz(item).items():
                if name in param_slots:
                    values[name] = _numeric(param_slots[name], Value(array, f"in {item}"))
    for name, slot in param_slots.items():
        if name not in values:
            where = f"not in {', '.join(files)}; " if files else ""
            how = (
                f"give --init {name}=VALUE or an --init FILE.npz holding it"
                if not slot.shape
                else "give an --init FILE.npz holding it"
            )
            shape = f" {slot.shape_text}" if slot.shape else ""
            raise SpecError(f"no initial value for parameter {name!r}{shape}: {where}{how}")
    return values


def _is_assignment(item: str) -> bool:
    return "=" in item and not item.lower().endswith(".npz") and not Path(item).exists()


def is_lazy(values: dict[str, Value]) -> bool:
    """Whether some of ``values`` are Dask arrays (read lazily from a folder)."""
    return any(hasattr(v.array, "dask") for v in values.values())


def _numeric(slot: Slot, value: Value) -> Value:
    array = value.array
    label = f"{slot.role} {slot.name!r} {value.source}"
    if not isinstance(array, np.ndarray) and not hasattr(array, "dask"):
        array = np.asarray(array)
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        array = array.astype(float)
    if not np.issubdtype(array.dtype, np.floating):
        raise SpecError(f"{label} is not an array of real numbers (dtype {array.dtype})")
    if hasattr(array, "dask"):
        # Read lazily: scanning for non-finite values would read it all; a NaN shows up
        # as a non-finite loss instead.
        return Value(array, value.source)
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"[{', '.join(map(str, first))}]" if first else ""
        raise SpecError(
            f"{label} has {int(bad.sum())} missing, non-numeric or non-finite value(s) "
            f"(first: {slot.name}{where} = {array[first]})"
        )
    return Value(array, value.source)


# --- shapes ------------------------------------------------------------------


def check_shapes(problem: Problem, values: dict[str, Value]) -> None:
    """Raise ``SpecError`` unless every array has its slot's shape, dimensions agreeing.

    Dimensions are fixed in order, parameters first, by the first array that
    has them; a later array that disagrees is the one reported.
    """
    bound: dict[str, tuple[int, str]] = {}
    for slot in slots(problem):
        value = values[slot.name]
        shape = tuple(value.array.shape)
        label = f"{slot.role} {slot.name!r} {value.source} has shape {shape}"
        if not slot.shape:
            if shape:
                raise SpecError(f"{label}; expected a single number")
            continue
        if len(shape) != len(slot.shape):
            raise SpecError(f"{label}; expected a {len(slot.shape)}-D array {slot.shape_text}")
        conflicts, fresh = [], {}
        for dim, size in zip(slot.shape, shape, strict=True):
            if size == 0:
                raise SpecError(f"{label}; expected {slot.shape_text} with {dim} >= 1")
            if dim.is_Integer:
                if size != int(dim):
                    conflicts.append(None)
                continue
            key = str(dim)
            known = bound.get(key) or fresh.get(key)
            if known is None:
                fresh[key] = (size, slot.name)
            elif known[0] != size:
                origin = "" if known[1] == slot.name else f" from {known[1]}"
                conflicts.append(f"{key} = {known[0]}{origin}")
        if conflicts:
            told = [c for c in conflicts if c is not None]
            raise SpecError(
                f"{label}; expected {slot.shape_text}"
                + (f" with {', '.join(told)}" if told else "")
            )
        bound.update(fresh)
