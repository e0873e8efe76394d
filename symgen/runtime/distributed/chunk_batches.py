"""Mini-batches of Dask arrays read chunk by chunk: each epoch visits the chunks in a
fresh random order, reads one into memory while the next ``PREFETCH`` are read, and cuts
it into shuffled batches (a batch never spans two chunks)."""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from symgen.runtime.distributed.cluster import dask_modules

#: Chunks read ahead while a fit steps through the batches of the current one.
PREFETCH = 2


def chunk_batches(
    blocks: Sequence[tuple[Any, ...]],
    row_names: tuple[str, ...],
    whole: dict[str, Any],
    batch_size: int,
    seed: int,
) -> Iterator[tuple[dict[str, Any], int]]:
    """``(batch, rows)`` forever from the chunks ``blocks`` (per chunk, the delayed blocks
    of the ``row_names`` arrays): batches of ``batch_size`` rows (the last one of a chunk
    holds what is left), drawn with ``numpy.random.default_rng(seed)``, with ``whole``
    added to every batch."""
    dask, _ = dask_modules()
    rng = np.random.default_rng(seed)
    pool = concurrent.futures.ThreadPoolExecutor(PREFETCH, thread_name_prefix="symgen-chunks")
    order: collections.deque[int] = collections.deque()
    pending: collections.deque[concurrent.futures.Future] = collections.deque()

    def read_ahead() -> None:
        while len(pending) < PREFETCH:
            if not order:
                order.extend(int(j) for j in rng.permutation(len(blocks)))
            pending.append(pool.submit(dask.compute, *blocks[order.popleft()]))

    try:
        while True:
            read_ahead()
            chunk = dict(zip(row_names, pending.popleft().result(), strict=True))
            read_ahead()
            rows = len(next(iter(chunk.values())))
            shuffled = rng.permutation(rows)
            for begin in range(0, rows, batch_size):
                pick = np.sort(shuffled[begin : begin + batch_size])
                batch = {n: a[pick] for n, a in chunk.items()}
                batch.update(whole)
                yield batch, len(pick)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
