"""``fit``'s arguments resolved and checked, once, before anything runs: the optimizer
(the module's baked one, else Adam), its learning rate and hyperparameters (or those
built into the module), the step budget, batch size, tolerance and progress options."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from symgen.runtime.training.optimizers import (
    DEFAULT_LR,
    OPTIMIZERS,
    baked_optimizer,
    baked_settings,
)

#: ``callback(step, loss, params)``; returning ``True`` stops the fit.
Callback = Callable[[int, float, tuple[Any, ...]], Any]


@dataclass(frozen=True)
class Settings:
    """What a fit runs with, checked. ``baked``: the hyperparameters built into the module's
    step function for ``optimizer`` (then ``lr`` is theirs and ``hyper`` is empty), or None."""

    optimizer: str
    steps: int
    lr: float
    hyper: dict[str, Any]
    baked: dict[str, float] | None
    batch_size: int | None
    tol: float | None
    seed: int
    callback: Callback | None
    progress: bool | None
    report_every: int | None


def resolve(
    module: Any,
    name: str,
    *,
    optimizer: str | None,
    steps: Any,
    lr: Any,
    batch_size: Any,
    callback: Any,
    tol: Any,
    seed: int,
    progress: Any,
    report_every: Any,
    hyper: dict[str, Any],
) -> Settings:
    """The settings of a fit of ``module`` (named ``name`` in messages), or the
    ``TypeError``/``ValueError`` of the first argument that is wrong."""
    if optimizer is None:
        optimizer = baked_optimizer(module) or "adam"
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    steps = _count("steps", steps, minimum=0)
    baked = baked_settings(module, name, optimizer, lr, hyper)
    if baked is not None:
        lr, hyper = baked["lr"], {}
    else:
        lr = DEFAULT_LR[optimizer] if lr is None else _positive("lr", lr)
    if batch_size is not None:
        batch_size = _count("batch_size", batch_size, minimum=1)
    tol, report_every = _loop_options(tol, report_every, callback, progress)
    return Settings(
        optimizer=optimizer,
        steps=steps,
        lr=lr,
        hyper=hyper,
        baked=baked,
        batch_size=batch_size,
        tol=tol,
        seed=seed,
        callback=callback,
        progress=progress,
        report_every=report_every,
    )


def _loop_options(
    tol: Any, report_every: Any, callback: Any, progress: Any
) -> tuple[float | None, int | None]:
    """``tol`` and ``report_every`` checked (with ``callback`` and ``progress``)."""
    if tol is not None:
        tol = _non_negative("tol", tol)
    if report_every is not None:
        report_every = _count("report_every", report_every, minimum=1)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if progress not in (None, True, False):
        raise TypeError(f"progress must be None, True or False, got {progress!r}")
    return tol, report_every


def _count(what: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return int(value)


def _positive(what: str, value: Any) -> float:
    number = _non_negative(what, value)
    if number == 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return number


def _non_negative(what: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return number


#: The optimizers that see all the data at every iteration and take no learning rate:
#: SciPy's L-BFGS-B (``symgen.minimize``), Levenberg-Marquardt on the residuals of a
#: least-squares loss (``symgen.least_squares``), and the module's ``newton_step``.
FULL_BATCH = ("lbfgs", "lm", "newton")

#: The ``tol`` of ``newton`` when none is given: a step that changed the loss by this or
#: less (relatively, a few roundings) found the minimum to rounding, and the parameters
#: ``fit`` returns are one Newton step further (quadratic convergence: the step budget,
#: 1000 by default, is not run out once there is nothing left to gain).
NEWTON_TOL = 1e-15


def resolve_full_batch(
    name: str,
    *,
    optimizer: str,
    lazy: bool,
    on_device: bool,
    steps: Any,
    lr: Any,
    batch_size: Any,
    callback: Any,
    tol: Any,
    progress: Any,
    report_every: Any,
    hyper: dict[str, Any],
) -> Settings:
    """The settings of a fit by one of ``FULL_BATCH`` (no learning rate, no batches; data in
    memory, NumPy or C modules), or the error of the first argument that does not apply."""
    if lr is not None or batch_size is not None:
        what = "lr" if lr is not None else "batch_size"
        raise TypeError(
            f"{name}: optimizer {optimizer!r} takes no {what}: it sees all the data at every "
            "iteration and chooses its own steps"
        )
    if lazy or on_device:
        where = "Dask arrays" if lazy else "a CUDA module"
        raise TypeError(
            f"{name}: optimizer {optimizer!r} runs on data in memory with a NumPy or C module, "
            f"not on {where}; use sgd, momentum, nesterov or adam"
        )
    if callback is not None and optimizer == "lm":
        raise TypeError(
            f"{name}: optimizer 'lm' (MINPACK, through SciPy) takes no callback; use lbfgs"
        )
    tol, report_every = _loop_options(tol, report_every, callback, progress)
    if tol is None and optimizer == "newton":
        tol = NEWTON_TOL
    return Settings(
        optimizer=optimizer,
        steps=_count("steps", steps, minimum=0),
        lr=math.nan,
        hyper=dict(hyper),
        baked=None,
        batch_size=None,
        tol=tol,
        seed=0,
        callback=callback,
        progress=progress,
        report_every=report_every,
    )
