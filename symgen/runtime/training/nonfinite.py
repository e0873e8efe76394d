"""What ``fit`` does about NaN and infinity: a step whose loss or new parameters are not
finite (or whose arithmetic fails) is undone, the array parameters put back from a copy
taken before it, and ``NonFiniteError`` says which step and which parameter."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgen.runtime.training.arrays import all_finite, copy_into
from symgen.runtime.training.optimizers import Advance
from symgen.runtime.training.result import FitResult, NonFiniteError


class Backups:
    """Copies of the array parameters taken before a step (the generated step functions
    update arrays in place), to put back when the step goes non-finite."""

    def __init__(self, params: Sequence[Any], xp: Any) -> None:
        self.xp = xp
        self.copies = [xp.empty_like(p) if isinstance(p, xp.ndarray) else None for p in params]

    def save(self, params: Sequence[Any]) -> None:
        for backup, p in zip(self.copies, params, strict=True):
            if backup is not None:
                copy_into(self.xp, backup, p)

    def restore(self, params: Sequence[Any]) -> None:
        for backup, p in zip(self.copies, params, strict=True):
            if backup is not None:
                copy_into(self.xp, p, backup)


def checked_step(
    advance: Advance, params: list[Any], batch: Any, step: int, names: tuple[str, ...], xp: Any
) -> tuple[float, tuple[Any, ...] | None, str | None]:
    """``(loss, new params, None)`` of step ``step``, or ``(loss, ..., what failed)`` when
    the loss or a new parameter is not finite or computing them failed."""
    try:
        loss, new = advance(params, batch)
    except (OverflowError, ZeroDivisionError, FloatingPointError) as exc:
        return (
            math.nan,
            None,
            (f"computing the loss and its gradient failed ({type(exc).__name__}: {exc})"),
        )
    except ValueError as exc:
        if "math domain error" not in str(exc):
            raise
        return math.nan, None, f"computing the loss and its gradient failed (ValueError: {exc})"
    if not math.isfinite(loss):
        return loss, new, f"the loss is {loss} at the {after(step - 1)}"
    return loss, new, non_finite_param(names, new, xp)


def non_finite_error(
    name: str, result: FitResult, steps: int, failure: str, lr: float, optimizer: str
) -> NonFiniteError:
    """The error of a fit of at most ``steps`` steps that stopped on ``failure``."""
    return NonFiniteError(
        f"{name}: fit stopped at step {result.steps + 1} of {steps}: {failure}; "
        f"kept the {after(result.steps)}, the last finite ones (in .result); "
        + (
            f"try a smaller lr than {lr:g} ({optimizer})"
            if math.isfinite(lr)
            else f"{optimizer} takes no lr: try a larger damping, or another optimizer"
        ),
        result,
        step=result.steps + 1,
        reason=failure,
    )


def non_finite_param(names: tuple[str, ...], values: Sequence[Any], xp: Any = np) -> str | None:
    for pname, value in zip(names, values, strict=True):
        if xp is not np and isinstance(value, xp.ndarray):
            if all_finite(xp, value):
                continue
            value = value.get()  # a bad entry: find it on the host
        if isinstance(value, np.ndarray):
            finite = np.isfinite(value)
            if finite.all():
                continue
            bad = np.argwhere(~finite)
            where = tuple(int(i) for i in bad[0])
            return (
                f"parameter {pname!r} became non-finite ({len(bad)} of {value.size} entries; "
                f"{pname}[{', '.join(map(str, where))}] = {value[where]})"
            )
        if not math.isfinite(value):
            return f"parameter {pname!r} became {float(value)}"
    return None


def full_loss(loss: Callable[[tuple[Any, ...]], float], params: tuple[Any, ...]) -> float:
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return float(loss(params))
    except (OverflowError, ZeroDivisionError, FloatingPointError):
        return math.inf


def after(step: int) -> str:
    return "initial parameters" if step == 0 else f"parameters after step {step}"
