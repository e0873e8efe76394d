"""The optimizers of ``fit`` that see all the data at every iteration (``FULL_BATCH``):
L-BFGS-B and Levenberg-Marquardt, run by SciPy (``symgen.minimize``,
``symgen.least_squares``), which drive their own iterations (``solve``); and Newton's
method by the module's generated ``newton_step``, which runs in ``fit``'s step loop like
the other step functions (``newton_steps``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from symgen.runtime.solvers.layout import OUTSIDE_DOMAIN
from symgen.runtime.solvers.least_squares import fills_residuals, least_squares
from symgen.runtime.solvers.minimize import minimize
from symgen.runtime.training.batches import Rows, batches
from symgen.runtime.training.loop import Steps
from symgen.runtime.training.progress import reporter
from symgen.runtime.training.result import FitResult
from symgen.runtime.training.settings import Settings


def newton_steps(module: Any, name: str, settings: Settings, arrays: dict[str, Any]) -> Steps:
    """The steps of a fit by the module's ``newton_step`` (its keywords: ``settings.hyper``)."""
    function = getattr(module, "newton_step", None)
    if function is None:
        raise TypeError(
            f"{name}: optimizer 'newton' runs the module's newton_step(), and it has none: "
            "regenerate it with a symgen that writes it, or use lbfgs (or lm for a "
            "least-squares loss)"
        )

    def advance(params: list[Any], batch: dict[str, Any]) -> tuple[float, tuple[Any, ...]]:
        before = [p.copy() if isinstance(p, np.ndarray) else p for p in params]
        loss, new = function(*params, **batch, **settings.hyper)[:2]
        return loss, _backtracked(module, batch, loss, before, list(new))

    batched, rows = batches(name, arrays, None, 0)
    return Steps(advance, batched, rows, lambda p: module.loss(*p, **arrays))


#: The shortest fraction of a Newton step ``fit`` tries before it keeps the point it had.
SHORTEST = 2.0**-30


def _backtracked(
    module: Any, batch: dict[str, Any], loss: float, before: list[Any], new: list[Any]
) -> tuple[Any, ...]:
    """The parameters after a Newton step from ``before`` (at ``loss``) to ``new``, halved
    until the loss does not rise. A full Newton step can raise the loss of a non-convex fit
    (the curve fit's rose to 1e124) or leave its domain (a scale below 0 under a ``log``:
    the generated scalar arithmetic raises), where ``newton_step`` damps only a Hessian
    that is not positive definite; its step is a descent direction (``H + lam*I`` positive
    definite), so a short enough part of it lowers the loss: the fraction 1, 1/2, 1/4, ...
    (one loss pass each; the first is one pass for a step that lowers the loss), down to
    ``SHORTEST``, below which the point before the step is kept (nothing left to gain in
    rounding). Arrays are moved in place, as the step moved them."""
    if _loss_at(module, new, batch) <= loss:
        return tuple(new)
    step = [b - n for b, n in zip(before, new, strict=True)]
    fraction = 0.5
    while fraction >= SHORTEST:
        _move(new, before, step, fraction)
        if _loss_at(module, new, batch) <= loss:
            return tuple(new)
        fraction /= 2.0
    _move(new, before, step, 0.0)
    return tuple(new)


def _loss_at(module: Any, params: list[Any], batch: dict[str, Any]) -> float:
    """The loss at ``params``; infinite outside its domain (where the module raises)."""
    try:
        return module.loss(*params, **batch)
    except OUTSIDE_DOMAIN:
        return math.inf


def _move(params: list[Any], before: list[Any], step: list[Any], fraction: float) -> None:
    """``params`` set to ``before - fraction * step``: arrays in place, floats anew."""
    for i, (b, d) in enumerate(zip(before, step, strict=True)):
        if isinstance(b, np.ndarray):
            np.subtract(b, fraction * d, out=params[i])
        else:
            params[i] = b - fraction * d


class _Progress:
    """The losses and times of a solver's iterations as ``fit`` records them, reported as
    its step loop reports them; ``last`` holds the parameters of the last one."""

    def __init__(self, name: str, settings: Settings, rows: Rows, params: tuple[Any, ...]):
        self.output = reporter(
            settings.progress, settings.steps, settings.report_every, name, settings.optimizer,
            False,
        )  # fmt: skip
        self.rows = rows
        self.history: list[float] = []
        self.times: list[float] = []
        self.last = params
        self.start = time.perf_counter()

    def record(self, loss: float, params: tuple[Any, ...]) -> None:
        elapsed = time.perf_counter() - self.start
        self.history.append(loss)
        self.times.append(elapsed)
        self.last = params
        self.rows += self.rows.total
        self.output.update(len(self.history), self.rows, loss, elapsed)

    def close(self) -> None:
        loss = self.history[-1] if self.history else None
        self.output.close(len(self.history), self.rows, loss, self.times[-1] if self.times else 0)


class _Recorded:
    """``module`` with the loss at every ``residuals`` call recorded: Levenberg-Marquardt
    evaluates trial points (and rejects some) and has no callback."""

    def __init__(self, module: Any, record: Callable[[float, tuple[Any, ...]], None]) -> None:
        self.module = module
        self.record = record
        self.count = len(module.PARAMS)
        if not fills_residuals(module):  # its jacobian alone, as the module has it
            self.jacobian = module.jacobian  # type: ignore[method-assign]

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.module, attr)

    def residuals(self, *args: Any, **data: Any) -> np.ndarray:
        r = self.module.residuals(*args, **data)
        self._record(r, args)
        return r

    def jacobian(self, *args: Any, residuals: Any = None, **data: Any) -> np.ndarray:
        """The Jacobian; when it fills ``residuals`` (``least_squares`` asks for both at
        once), those residuals are an evaluation too."""
        if residuals is None:
            return self.module.jacobian(*args, **data)
        jac = self.module.jacobian(*args, **data, residuals=residuals)
        self._record(residuals, args)
        return jac

    def _record(self, r: np.ndarray, args: tuple[Any, ...]) -> None:
        squares = float(np.dot(r, r))
        if self.module.RESIDUAL_REDUCE == "mean":
            squares /= max(r.size, 1)
        self.record(self.module.RESIDUAL_SCALE * squares, tuple(args[: self.count]))


def solve(
    module: Any, name: str, settings: Settings, params: list[Any], arrays: dict[str, Any]
) -> FitResult:
    """A fit by SciPy's L-BFGS-B (``lbfgs``: ``steps`` iterations at most, ``tol`` its
    ``ftol``, ``hyper`` its options) or Levenberg-Marquardt (``lm``: ``steps`` evaluations
    of the residuals at most, ``tol`` its ``ftol``, ``hyper`` its keywords, among them
    ``method="trf"`` or ``"dogbox"`` for SciPy's trust-region methods). ``history``
    holds the loss before each iteration, as for the step functions (``lm``: at each
    evaluation, the first at the initial parameters)."""
    _, rows = batches(name, arrays, None, 0)
    start = tuple(params)
    if settings.steps == 0:
        return FitResult(params=start, loss=float(module.loss(*start, **arrays)))
    progress = _Progress(name, settings, rows, start)
    stopped = None
    try:
        if settings.optimizer == "lbfgs":
            called_off = False
            before = float(module.loss(*start, **arrays))

            def callback(intermediate_result: Any) -> None:
                nonlocal called_off, before
                progress.record(before, intermediate_result.params)  # as fit's steps do
                before = float(intermediate_result.fun)
                if settings.callback is not None:
                    verdict = settings.callback(
                        len(progress.history), progress.history[-1], intermediate_result.params
                    )
                    if isinstance(verdict, (bool, np.bool_)) and verdict:
                        called_off = True
                        raise StopIteration

            options = {"maxiter": settings.steps, **settings.hyper}
            if settings.tol is not None:
                options["ftol"] = settings.tol
            result = minimize(
                module, start, arrays, method="L-BFGS-B", options=options, callback=callback
            )
            stopped = "callback" if called_off else "tolerance" if result.success else "steps"
        else:
            solver = _Recorded(module, progress.record) if hasattr(module, "residuals") else module
            keywords = {"method": "lm", "max_nfev": settings.steps, **settings.hyper}
            if settings.tol is not None:
                keywords["ftol"] = settings.tol
            result = least_squares(solver, start, arrays, **keywords)
            stopped = "tolerance" if result.status > 0 else "steps"
    except KeyboardInterrupt:
        found = progress.last
        return FitResult(
            params=found,
            history=progress.history,
            times=progress.times,
            steps=len(progress.history),
            stopped="interrupted",
            epochs=rows.epochs,
            loss=float(module.loss(*found, **arrays)),
        )
    finally:
        progress.close()
    return FitResult(
        params=tuple(result.params),
        history=progress.history,
        times=progress.times,
        steps=len(progress.history),
        stopped=stopped,
        epochs=rows.epochs,
        loss=result.loss,
    )
