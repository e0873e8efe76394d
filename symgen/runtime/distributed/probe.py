"""Checks on the first rows of the data, before any distributed work: that the module
runs on them, and for a bare module (no ``Problem`` to analyse), whether its loss is a
sum over rows, a mean, or neither (``SpecError``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from symgen.compiler.separable import RowSplit
from symgen.errors import SpecError

#: Rows of the data used to check a bare module's loss splits over rows.
PROBE_ROWS = 12


def head_rows(head: dict[str, np.ndarray], rows: Any) -> dict[str, np.ndarray]:
    """Rows ``rows`` (a slice or an index) of every array of ``head``."""
    return {n: a[rows] for n, a in head.items()}


def _call(module: Any, name: str, params: tuple[Any, ...], data: dict[str, Any]) -> np.ndarray:
    """The loss and gradients at ``params`` on ``data``, flattened into one float64 vector."""
    with np.errstate(all="ignore"):
        value, grads = module.loss_and_grad(*params, **data)
    return np.concatenate([[float(value)], *(np.ravel(np.asarray(g, float)) for g in grads)])


def check_call(
    module: Any, name: str, params: tuple[Any, ...], head: dict[str, Any], whole: dict[str, Any]
) -> np.ndarray:
    """``_call`` on the first rows, its failure reworded to say so."""
    try:
        return _call(module, name, params, {**head, **whole})
    except (ValueError, TypeError) as exc:
        rows = len(next(iter(head.values())))
        raise type(exc)(
            f"{name}: evaluating the loss on the first {rows} row(s) of the data failed, before "
            f"any distributed work: {exc}"
        ) from None


def probe(
    module: Any,
    name: str,
    params: tuple[Any, ...],
    head: dict[str, np.ndarray],
    whole: dict[str, Any],
    total: int,
) -> RowSplit:
    """Decide from the data's first rows whether a bare module's loss is a sum over rows
    (``p = 0``) or a mean (``p = 1``), or neither (``SpecError``)."""
    rows = tuple(head)
    n = len(next(iter(head.values())))
    sized = [
        (pname, np.shape(p))
        for pname, p in zip(module.PARAMS, params, strict=True)
        if total > 1 and total in np.shape(p)
    ]
    try:
        full = check_call(module, name, params, head, whole)
    except (ValueError, TypeError) as exc:
        if not sized:
            raise
        raise SpecError(
            f"{name}: parameter {sized[0][0]!r} has shape {sized[0][1]}, "
            f"one entry per row of the data ({total} rows): it cannot be split over chunks of "
            f"rows ({exc})"
        ) from None
    split = RowSplit(sp.Symbol("rows"), sp.S.Zero, rows, tuple(whole))
    if n < 2 or total < 2:
        return split  # a single row is a single chunk: nothing to combine
    k = max(1, n // 3)
    try:
        first = _call(module, name, params, {**head_rows(head, slice(0, k)), **whole})
        rest = _call(module, name, params, {**head_rows(head, slice(k, n)), **whole})
        twice = _call(
            module, name, params, {**{r: np.concatenate([a, a]) for r, a in head.items()}, **whole}
        )
    except (ValueError, TypeError) as exc:
        raise SpecError(
            f"{name}: the loss cannot be evaluated on part of the rows ({exc}); a parameter "
            "with one entry per row cannot be split over chunks of rows"
        ) from None
    rtol = 1e-4 if np.dtype(module.DTYPE) == np.float32 else 1e-8
    fits = []
    for p in (0, 1):
        a, b = (k / n) ** p * first, ((n - k) / n) ** p * rest
        combined = _close(full, a + b, a, b, rtol)
        doubled = _close(twice, 2.0 ** (1 - p) * full, full, full, rtol)
        if combined and doubled:
            fits.append(p)
    finite = np.isfinite(full).all() and np.isfinite(first).all() and np.isfinite(rest).all()
    if len(fits) == 1 and finite:
        return RowSplit(sp.Symbol("rows"), sp.Integer(fits[0]), rows, tuple(whole))
    if len(fits) == 2 and finite:
        raise SpecError(
            f"{name}: cannot tell from the first {n} rows of the data whether the loss sums or "
            "averages over rows (it and its gradients are 0 there); pass the symgen.Problem "
            "instead of the module"
        )
    if not finite:
        raise SpecError(
            f"{name}: the loss or a gradient is not finite on the first {n} rows of the data, "
            "so whether it splits over rows cannot be checked; pass the symgen.Problem instead"
        )
    raise SpecError(
        f"{name}: the loss does not split over rows: on the first {n} rows of the data it is "
        f"neither the sum nor the row-weighted mean of its values on rows 0..{k - 1} and "
        f"{k}..{n - 1} (as with a logsumexp or max across rows, or a parameter sized by the rows); "
        "chunks of rows cannot be evaluated apart and added"
    )


def _close(
    value: np.ndarray, expected: np.ndarray, a: np.ndarray, b: np.ndarray, rtol: float
) -> bool:
    scale = np.abs(a) + np.abs(b) + np.abs(expected)
    return bool(np.all(np.abs(value - expected) <= rtol * scale + 1e-300))
