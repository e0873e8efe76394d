"""``fit`` on Dask arrays split by rows (``symgen.distributed``).

Full batches: each step adds the gradient up over the chunks of rows on the cluster,
then applies the optimizer's update here, as the module's step function would
(``gradient_update``). Mini-batches: chunks are read into memory one at a time and cut
into batches for the module's own step function."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from symgen.codegen.optimizers import Updater, updater
from symgen.runtime.distributed.row_plan import RowPlan
from symgen.runtime.training.batches import Rows
from symgen.runtime.training.loop import Steps
from symgen.runtime.training.optimizers import step_function, stepper
from symgen.runtime.training.settings import Settings


def dask_steps(
    source: Any,
    module: Any,
    name: str,
    settings: Settings,
    params: list[Any],
    arrays: dict[str, Any],
) -> Steps:
    """The steps of a fit of ``module`` (``source``: it, or its ``Problem``) on ``arrays``."""
    plan = RowPlan(source, params, arrays, quiet=True)
    rows = Rows(plan.total)
    batch_size = settings.batch_size
    if batch_size is not None and batch_size < plan.total:
        advance = stepper(
            module, name, settings.optimizer, settings.lr, settings.hyper, params, settings.baked
        )
        return Steps(advance, plan.batches(batch_size, settings.seed), rows, plan.loss)
    update = gradient_update(module, name, settings, params)

    def advance_whole(p: list[Any], batch: Any) -> tuple[float, tuple[Any, ...]]:
        loss, grads = plan.loss_and_grad(p)
        return loss, update(p, grads)

    def whole() -> Iterator[tuple[Any, int]]:
        while True:
            yield None, plan.total

    return Steps(advance_whole, whole(), rows, plan.loss)


def gradient_update(module: Any, name: str, settings: Settings, params: list[Any]) -> Updater:
    """``update(params, grads) -> new params``: the optimizer's update of ``module``'s step
    function (its keywords, or the values baked into it), applied to gradients computed
    elsewhere, keeping the optimizer's state."""
    _, _, _, options = step_function(
        module, name, settings.optimizer, settings.lr, settings.hyper, settings.baked
    )
    return updater(settings.optimizer, options, params)
