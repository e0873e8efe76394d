"""The batches ``fit`` steps through, from data in memory: all of it every step, or
shuffled mini-batches of rows; and the count of rows seen, read as epochs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


class Rows:
    """Rows of data seen so far, as a count that reads as epochs."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.seen = 0

    def __iadd__(self, count: int) -> Rows:
        self.seen += count
        return self

    @property
    def epochs(self) -> float:
        return self.seen / self.total


def batches(
    name: str, arrays: dict[str, Any], batch_size: int | None, seed: int, xp: Any = np
) -> tuple[Iterator[tuple[dict[str, Any], int]], Rows]:
    """The batches (all the data, or shuffled rows of every array) and the row count.

    The shuffle is drawn on the host (``numpy.random.default_rng(seed)``) for every array
    library, so a CUDA module sees the rows a NumPy module would; the rows are taken on
    the device there (an index array of ``xp``)."""
    sliced = {k: v for k, v in arrays.items() if isinstance(v, xp.ndarray)}
    lengths = {k: v.shape[0] for k, v in sliced.items()}
    total = max(lengths.values(), default=1)
    if batch_size is None or batch_size >= total:
        if batch_size is not None and not sliced:
            raise ValueError(f"{name}: batch_size needs data arrays to cut; the module has none")

        def whole() -> Iterator[tuple[dict[str, Any], int]]:
            while True:
                yield arrays, total

        return whole(), Rows(total)
    if len(set(lengths.values())) > 1:
        first = next(iter(lengths))
        other = next(k for k, n in lengths.items() if n != lengths[first])
        raise ValueError(
            f"{name}: mini-batches take rows of every data array, but {first!r} has "
            f"{lengths[first]} rows and {other!r} has {lengths[other]}"
        )
    rng = np.random.default_rng(seed)

    def shuffled() -> Iterator[tuple[dict[str, Any], int]]:
        while True:
            order = rng.permutation(total)
            for begin in range(0, total, batch_size):
                rows = np.sort(order[begin : begin + batch_size])
                index = rows if xp is np else xp.asarray(rows)
                batch = dict(arrays)
                for key, array in sliced.items():
                    batch[key] = array[index]
                yield batch, len(rows)

    return shuffled(), Rows(total)
