"""``symgen.least_squares``: ``scipy.optimize.least_squares`` on the residuals and Jacobian
that symgen generates for a least-squares loss (``residuals``, ``jacobian``)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from symgen.runtime.solvers.layout import OUTSIDE_DOMAIN, data_arrays, layout, module_name
from symgen.runtime.solvers.optional import scipy_optimize


def least_squares(
    module: Any,
    x0: Any,
    data: Any = None,
    method: str = "lm",
    **options: Any,
) -> Any:
    """Fit a generated module whose loss is a least-squares loss with
    ``scipy.optimize.least_squares``, given its residuals and their exact Jacobian.

    ``x0`` and ``data`` as for ``symgen.minimize``. ``method``: ``"lm"`` (Levenberg-Marquardt,
    MINPACK; needs at least as many residuals as parameter elements) or ``"trf"`` (trust
    region, takes ``bounds``) or ``"dogbox"``; ``options`` go to SciPy as they are (``ftol``,
    ``xtol``, ``gtol``, ``max_nfev``, ``x_scale``, ...). The module must have ``residuals``
    and ``jacobian``: symgen writes them when the loss is a sum (or mean) of squares it
    recognises (a ``TypeError`` otherwise).

    Returns SciPy's ``OptimizeResult`` with ``params`` (the solution as the parameters were
    given: a dict by name or a tuple in ``PARAMS`` order) and ``loss``: the module's loss
    there, ``RESIDUAL_SCALE * sum`` (or ``mean``) of the squared residuals (SciPy's ``cost``
    is half their sum).
    """
    missing = [f for f in ("residuals", "jacobian") if not hasattr(module, f)]
    if missing:
        raise TypeError(
            f"{module_name(module)}: least_squares needs the module's residuals() and "
            "jacobian(), which symgen writes when the loss is a sum or mean of squares "
            "(k*(model - y)**2 per sample, symgen.sum(symgen.square(R)), ...); this module "
            "has none: its loss has another form, or it was generated before symgen wrote "
            "them. symgen.minimize fits any loss"
        )
    optimize = scipy_optimize("least_squares")
    place, start = layout(module, x0)
    arrays = data_arrays(module, data)
    fun, jac = _evaluations(module, place, arrays)
    result = optimize.least_squares(fun, start, jac=jac, method=method, **options)
    result.params = place.returned(place.unflatten(result.x))
    squares = float(np.dot(result.fun, result.fun))
    if module.RESIDUAL_REDUCE == "mean":
        squares /= max(result.fun.size, 1)
    result.loss = module.RESIDUAL_SCALE * squares
    return result


def fills_residuals(module: Any) -> bool:
    """Whether ``module.jacobian`` takes the keyword-only ``residuals=``: not when a
    parameter or data array has that name (the keyword is then ``residuals_``), nor when
    the module was generated before symgen wrote it (its functions are then called apart)."""
    if "residuals" in (*module.PARAMS, *getattr(module, "DATA", ())):
        return False
    try:
        found = inspect.signature(module.jacobian).parameters.get("residuals")
    except (TypeError, ValueError):  # no signature to read
        return False
    return found is not None and found.kind is inspect.Parameter.KEYWORD_ONLY


def _evaluations(module: Any, place: Any, arrays: dict) -> tuple[Callable, Callable]:
    """SciPy's ``fun`` and ``jac`` on the module. SciPy asks for the Jacobian at the points
    whose residuals it keeps, right after their residuals; so, once the number of residuals
    is known (the first point: ``residuals`` alone), ``fun`` evaluates both in the one pass
    of ``jacobian(..., residuals=r)`` and keeps the Jacobian for that point only, keyed by
    the bytes of x; ``jac`` at exactly that point takes it (once), anywhere else computes
    it. A point SciPy rejects costs a Jacobian it does not use."""
    latest: list = []  # [x.tobytes(), its Jacobian] after fun, until jac takes it
    residual: list[np.ndarray] = []  # one array of the residuals' shape and dtype

    together = fills_residuals(module)

    def fun(x: np.ndarray) -> np.ndarray:
        latest.clear()
        if not residual:  # x0: its errors are raised as they are
            r = np.asarray(module.residuals(*place.unflatten(x), **arrays))
            residual.append(np.empty_like(r))
            return np.asarray(r, dtype=np.float64)
        try:
            if not together:
                return np.asarray(module.residuals(*place.unflatten(x), **arrays), np.float64)
            r = np.empty_like(residual[0])
            jacobian = module.jacobian(*place.unflatten(x), **arrays, residuals=r)
        except OUTSIDE_DOMAIN:  # a trial point outside the domain: infinite residuals
            return np.full(residual[0].shape, math.inf)
        latest.extend((x.tobytes(), jacobian))
        return np.asarray(r, dtype=np.float64)

    def jac(x: np.ndarray) -> np.ndarray:
        if latest and latest[0] == x.tobytes():
            jacobian = latest.pop()
            latest.clear()
        else:
            jacobian = module.jacobian(*place.unflatten(x), **arrays)
        return np.asarray(jacobian, dtype=np.float64)

    return fun, jac
