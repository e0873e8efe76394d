"""The task graph of one pass over the rows: one task per chunk (``dask.array.blockwise``
over the aligned row chunks, fused with reading them, so that a chunk is read and
reduced by the same worker), then a tree of sums, ``FAN_IN`` parts at a time."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from symgen.runtime.distributed.cluster import dask_modules
from symgen.runtime.distributed.workers import add_parts, chunk_part, unwrap

#: How many parts one addition task of the reduction tree adds up.
FAN_IN = 8


def pass_graph(
    function: str,
    params: tuple[Any, ...],
    *,
    text: str,
    key: str,
    name: str,
    whole: dict[str, Any],
    arrays: dict[str, Any],
    total: int,
    power: float,
    quiet: bool,
) -> Any:
    """The ``dask.delayed`` object of ``function`` (``"loss"`` or ``"loss_and_grad"``) of the
    module whose source is ``text`` (a graph key ``key``) at ``params``, over the row arrays
    ``arrays`` (aligned, by name) with ``whole`` given to every chunk; each chunk is weighted
    by its share of the ``total`` rows to the ``power`` (0: a sum over rows, 1: a mean)."""
    dask, da = dask_modules()
    token = uuid.uuid4().hex[:12]
    source = dask.delayed(text, name=key)
    inputs = dask.delayed((params, whole), name=f"symgen-params-{token}", traverse=False)
    row_names = tuple(arrays)
    blocks: list[Any] = []
    for k, array in enumerate(arrays.values()):
        blocks += [array, ("rows", *(f"axis{k}.{a}" for a in range(1, array.ndim)))]
    parts_array = da.blockwise(
        chunk_part,
        ("rows",),
        source, None, inputs, None, function, None, row_names, None,
        total, None, power, None, quiet, None,
        *blocks,
        dtype=object,
        adjust_chunks={"rows": 1},
        concatenate=True,
        name=f"symgen-{name}-{function}-{token}",
        meta=np.empty(0, dtype=object),
    )  # fmt: skip
    parts = list(parts_array.to_delayed(optimize_graph=True).reshape(-1))
    add = dask.delayed(add_parts, pure=False)
    level = 0
    while len(parts) > 1:
        parts = [
            add(
                *parts[i : i + FAN_IN],
                dask_key_name=f"symgen-{name}-sum-{token}-{level}-{i // FAN_IN}",
            )
            for i in range(0, len(parts), FAN_IN)
        ]
        level += 1
    return dask.delayed(unwrap, pure=False)(parts[0], dask_key_name=f"symgen-{name}-total-{token}")
