"""What runs on the Dask workers: one chunk's loss (and gradients), weighted by its share
of the rows, and the sums of the reduction tree. Dask ships these functions by their
module path, so they stay top-level functions of this module."""

from __future__ import annotations

from typing import Any

import numpy as np

from symgen.runtime.distributed.loading import load_module


def chunk_part(
    source: str,
    inputs: tuple[tuple[Any, ...], dict[str, Any]],
    function: str,
    names: tuple[str, ...],
    total: int,
    power: float,
    quiet: bool,
    *blocks: np.ndarray,
) -> np.ndarray:
    """The loss (and gradients) of one chunk of rows in float64, weighted by the chunk's
    share of the rows to the ``power``, as a 1-element object array (one "block")."""
    module = load_module(source)
    params, whole = inputs
    data = dict(zip(names, blocks, strict=True))
    data.update(whole)
    rows = len(blocks[0])
    weight = 1.0 if power == 0 else (rows / total) ** power
    with np.errstate(**({"all": "ignore"} if quiet else {})):
        if function == "loss":
            part: tuple[float, tuple[Any, ...]] = (weight * float(module.loss(*params, **data)), ())
        else:
            value, grads = module.loss_and_grad(*params, **data)
            part = (weight * float(value), tuple(scaled(g, weight) for g in grads))
    out = np.empty(1, dtype=object)
    out[0] = part
    return out


def scaled(value: Any, weight: float) -> Any:
    if isinstance(value, np.ndarray):
        out = value.astype(np.float64, copy=True)
        if weight != 1.0:
            out *= weight
        return out
    return weight * float(value)


def unwrap(part: Any) -> tuple[float, tuple[Any, ...]]:
    """A chunk's ``(loss, gradients)`` out of its 1-element block, or a sum as it is."""
    return part[0] if isinstance(part, np.ndarray) else part


def add_parts(*parts: Any) -> tuple[float, tuple[Any, ...]]:
    """The sum of some chunks' (loss, gradients)."""
    parts = tuple(unwrap(p) for p in parts)
    total = parts[0][0]
    grads = [g.copy() if isinstance(g, np.ndarray) else g for g in parts[0][1]]
    for value, more in parts[1:]:
        total += value
        for i, g in enumerate(more):
            if isinstance(grads[i], np.ndarray):
                grads[i] += g
            else:
                grads[i] = grads[i] + g
    return total, tuple(grads)
