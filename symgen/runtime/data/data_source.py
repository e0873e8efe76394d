"""``read_data``: the problem's data from a ``--data`` path, by the reader its kind takes:
``.npz``, ``.csv`` (per-sample problems), or lazily with Dask a Zarr store, a folder of
``NAME.npy`` files, or Parquet."""

from __future__ import annotations

from pathlib import Path

from symgen.compiler.problem import Problem
from symgen.errors import SpecError
from symgen.runtime.data.in_memory import read_csv, read_npz
from symgen.runtime.data.npy_folder import read_npy_folder
from symgen.runtime.data.parquet import parquet_files, read_parquet
from symgen.runtime.data.slots import Value, numeric, slots
from symgen.runtime.data.zarr_store import is_zarr, read_zarr


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
        values[slot.name] = numeric(slot, Value(arrays[slot.name], f"in {path}"))
    return values
