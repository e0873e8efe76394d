"""Data files read whole into memory: ``.npz`` (arrays by name, never unpickled) and
``.csv`` (columns named by a header row)."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np

from symgen.errors import SpecError


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
    table = np.atleast_1d(table)
    if table.size == 0:
        raise SpecError(f"{path} has a header but no rows")
    return {name: np.ascontiguousarray(table[name]) for name in table.dtype.names}
