"""``symgen.distributed.loss`` and ``loss_and_grad``: one pass of a generated module over
Dask arrays split by rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from symgen.runtime.distributed.row_plan import RowPlan


def loss_and_grad(
    module_or_problem: Any,
    params: Sequence[Any] | Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    retries: int | None = None,
) -> tuple[float, tuple[Any, ...]]:
    """``(loss, gradients)`` over Dask arrays split by rows; gradients in ``PARAMS`` order.

    ``module_or_problem``: a generated module (``symgen.compile`` or ``generated/*.py``)
    or a ``symgen.Problem``. ``params``: values in ``PARAMS`` order, or a dict by
    name. ``data``: the data arrays by name, ``dask.array`` arrays chunked along axis 0
    (NumPy arrays are taken as one chunk; single numbers go whole to every chunk).
    ``retries``: times Dask reruns a chunk whose task failed (workers that die are
    replaced and their work redone by ``dask.distributed`` anyway).
    """
    plan = RowPlan(module_or_problem, params, data, retries=retries)
    return plan.loss_and_grad(plan.params(params))


def loss(
    module_or_problem: Any,
    params: Sequence[Any] | Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    retries: int | None = None,
) -> float:
    """The loss over Dask arrays split by rows (see ``loss_and_grad``)."""
    plan = RowPlan(module_or_problem, params, data, retries=retries)
    return plan.loss(plan.params(params))
