"""Data files read into memory: ``.npz`` (arrays by name, never unpickled, each read
only when it is used) and ``.csv`` (columns named by a header row)."""

from __future__ import annotations

import math
import os
import sys
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from symgen.errors import SpecError


def read_npz(path: str) -> NpzArrays:
    """The arrays of an ``.npz`` file by name, each read when it is looked up (never
    unpickling anything)."""
    if not Path(path).is_file():
        raise SpecError(f"file not found: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise SpecError(f"cannot read {path} as an .npz file: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise SpecError(f"{path} holds a single array (.npy); save arrays by name with np.savez")
    with archive:
        return NpzArrays(path, tuple(archive.files))


class NpzArrays(Mapping[str, np.ndarray]):
    """The arrays of an ``.npz`` file by name, read one at a time when looked up: an array
    that is not used is never read. Before an array is read its header is checked
    against the zip entry: a shape that the entry cannot hold (a corrupt file) or that
    does not fit in this machine's memory (a compressed "bomb") is a ``SpecError``
    naming the array, before anything is allocated."""

    def __init__(self, path: str, names: tuple[str, ...]) -> None:
        self.path = path
        self.names = names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        self._check_size(name)
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                return archive[name]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise SpecError(f"cannot read array {name!r} from {self.path}: {exc}") from None

    def _check_size(self, name: str) -> None:
        """``SpecError`` when the header of array ``name`` declares more bytes than its zip
        entry holds or than this machine's memory."""
        try:
            with zipfile.ZipFile(self.path) as archive:
                entry = archive.getinfo(f"{name}.npy")
                with archive.open(entry) as member:
                    version = np.lib.format.read_magic(member)
                    header_of = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = header_of(member)
                    header = member.tell()
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise SpecError(f"cannot read array {name!r} from {self.path}: {exc}") from None
        if dtype.hasobject:  # a pickle: never loaded (it runs code), and not numbers anyway
            raise SpecError(
                f"array {name!r} in {self.path} holds Python objects (dtype object, stored as"
                " a pickle), not numbers: save it as an array of numbers"
            )
        declared = math.prod(shape) * dtype.itemsize
        if declared > entry.file_size - header:
            raise SpecError(
                f"array {name!r} in {self.path} is corrupt: its header says {shape} "
                f"{dtype} ({declared} bytes), its entry holds {entry.file_size - header}"
            )
        if declared > _memory_bytes():
            raise SpecError(
                f"array {name!r} in {self.path} holds {declared / 2**30:.3g} GiB, more than "
                "this machine's memory; store it as a Zarr store or a folder of .npy files, "
                "which are read lazily"
            )


def _memory_bytes() -> int:
    """This machine's physical memory in bytes (unbounded where it cannot be read)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return sys.maxsize


def read_csv(path: str) -> dict[str, np.ndarray]:
    """The columns of a ``.csv`` file with a header row, by header name (UTF-8, with or
    without a byte-order mark)."""
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
                encoding="utf-8-sig",  # a byte-order mark before the header is not a name
            )
        except IndexError:  # numpy's genfromtxt on a file without a line
            raise SpecError(f"{path} is empty: expected a header row naming its columns") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpecError(f"cannot read {path} as .csv: {exc}") from None
    if table.dtype.names is None:
        raise SpecError(f"{path} has no header row naming its columns")
    _refuse_repeated_columns(path)
    table = np.atleast_1d(table)
    if table.size == 0:
        raise SpecError(f"{path} has a header but no rows")
    return {name: np.ascontiguousarray(table[name]) for name in table.dtype.names}


def _refuse_repeated_columns(path: str) -> None:
    """``SpecError`` when a name appears twice in the header row (NumPy would rename the
    second ``y_1`` and the first would be used, silently)."""
    with open(path, encoding="utf-8-sig") as handle:
        names = [name.strip() for name in handle.readline().split(",")]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SpecError(f"{path}: the header names column(s) {', '.join(repeated)} more than once")
