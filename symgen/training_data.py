"""Reading what ``symgen train`` trains on: data arrays and initial parameters.

Data come from an ``.npz`` file (arrays by name) or, for per-sample problems,
a ``.csv`` file with a header row naming its columns; data larger than memory
from a Zarr store (a ``*.zarr`` folder, one array per data name) or a folder
of ``NAME.npy`` files, read lazily as Dask arrays (chunk by chunk, never whole:
``symgen[dask]``) and trained on with ``symgen.distributed``. Initial parameters come
from ``--init FILE.npz`` and/or ``--init NAME=VALUE`` for scalar parameters
(parsed without ``eval``: ``0.5``, ``pi/2``, ``exp(-1)``).

Every array is checked against the problem's symbolic shapes before training,
and a mismatch is a ``SpecError`` naming the array, its shape and the shape it
should have, with the dimensions already fixed by other arrays, e.g.
``data 'X' in data.npz has shape (3, 4); expected (M, N_I) with N_I = 5 from W1``.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions import MatrixExpr

from .errors import SpecError
from .exprparse import parse_assignment
from .problem import Problem

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


def read_data(problem: Problem, path: str | None) -> dict[str, Value]:
    """The problem's data arrays from ``path``: .npz, .csv for per-sample problems, or a
    folder (a Zarr store or ``NAME.npy`` files) read lazily with Dask."""
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
        if not any(Path(path).glob("*.npy")):
            raise SpecError(
                f"--data {path}: a folder must be a Zarr store (*.zarr) or hold one NAME.npy "
                f"file per data array ({needs})"
            )
        arrays = read_npy_folder(path)
        holds = ".npy files"
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
    elif suffix == ".zarr" or not Path(path).exists():
        raise SpecError(f"file not found: {path}")
    else:
        raise SpecError(
            f"--data {path}: give an .npz file of arrays by name"
            + (", a .csv file with a header row" if problem.kind == "per_sample" else "")
            + ", a Zarr store (*.zarr) or a folder of NAME.npy files"
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
