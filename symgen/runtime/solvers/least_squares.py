"""``symgen.least_squares``: SciPy's Levenberg-Marquardt (MINPACK) and trust-region
least-squares solvers on the residuals and Jacobian that symgen generates for a
least-squares loss (``residuals``, ``jacobian``)."""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from symgen.runtime.solvers.layout import OUTSIDE_DOMAIN, data_arrays, layout, module_name
from symgen.runtime.solvers.optional import scipy_optimize
from symgen.runtime.solvers.supplied import refuse_supplied

#: The options of ``scipy.optimize.least_squares(method="lm")`` that ``leastsq`` also
#: takes (``max_nfev`` as ``maxfev``; ``x_scale`` only as ``"jac"``, its ``diag=None``): with
#: only these, method ``"lm"`` runs MINPACK's ``lmder`` through ``leastsq``.
_LEASTSQ_OPTIONS = frozenset({"ftol", "xtol", "gtol", "max_nfev", "x_scale"})
#: ``scipy.optimize.least_squares``'s defaults for method ``"lm"`` (SciPy 1.16 on):
#: tolerances, and evaluations per parameter element.
_LM_TOLERANCE = 1e-8
_LM_EVALUATIONS_PER_PARAMETER = 100
#: ``least_squares``'s ``status`` for each MINPACK ``info`` (SciPy's table, and the three it
#: guards against, "no further reduction possible" for a tolerance, as that tolerance met).
_STATUS = {0: -1, 1: 2, 2: 3, 3: 4, 4: 1, 5: 0, 6: 2, 7: 3, 8: 1}
#: SciPy's least-squares methods: Levenberg-Marquardt (MINPACK) and two trust-region ones.
METHODS = ("lm", "trf", "dogbox")
#: ``scipy.optimize.least_squares``'s arguments that symgen makes from the module and data.
SUPPLIED = ("fun", "jac", "args", "kwargs")


def least_squares(
    module: Any,
    x0: Any,
    data: Any = None,
    method: str = "lm",
    **options: Any,
) -> Any:
    """Fit a generated module whose loss is a least-squares loss with SciPy's
    Levenberg-Marquardt (MINPACK) or trust-region solvers, given its residuals and their
    exact Jacobian.

    ``x0`` and ``data`` as for ``symgen.minimize``. ``method``: ``"lm"`` (Levenberg-Marquardt,
    MINPACK's ``lmder``; needs at least as many residuals as parameter elements) or ``"trf"``
    (trust region, takes ``bounds``) or ``"dogbox"``; ``options`` as
    ``scipy.optimize.least_squares`` takes them (``ftol``, ``xtol``, ``gtol``, ``max_nfev``,
    ``x_scale``, ...), except ``SUPPLIED``, which symgen makes (a ``TypeError``). ``"lm"``
    with no options beyond ``ftol``, ``xtol``, ``gtol``, ``max_nfev`` and ``x_scale="jac"``
    calls MINPACK through ``scipy.optimize.leastsq`` (as ``curve_fit`` does), which copies
    less than ``least_squares``; everything else calls ``scipy.optimize.least_squares``.
    The module must have ``residuals`` and ``jacobian``: symgen writes them when the loss is
    a sum (or mean) of squares it recognises (a ``TypeError`` otherwise).

    Returns SciPy's ``OptimizeResult`` with ``least_squares``'s fields (``x``, ``cost``,
    ``fun``, ``jac``, ``grad``, ``optimality``, ``active_mask``, ``nfev``, ``njev``,
    ``status``, ``message``, ``success``), ``params`` (the solution as the parameters were
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
    refuse_supplied(module, "least_squares", options, SUPPLIED)
    optimize = scipy_optimize("least_squares")
    place, start = layout(module, x0)
    arrays = data_arrays(module, data)
    fun, jac = _evaluations(module, place, arrays)
    keywords = _leastsq_keywords(method, options, start.size)
    if keywords is not None and _lmder_starts(fun(start), start.size):
        result = _through_leastsq(optimize, fun, jac, start, keywords)
    else:  # SciPy checks the options and the residuals and says what is wrong
        result = optimize.least_squares(fun, start, jac=jac, method=method, **options)
    result.params = place.returned(place.unflatten(result.x))
    squares = float(np.dot(result.fun, result.fun))
    if module.RESIDUAL_REDUCE == "mean":
        squares /= max(result.fun.size, 1)
    result.loss = module.RESIDUAL_SCALE * squares
    return result


def _leastsq_keywords(method: str, options: dict, size: int) -> dict | None:
    """``scipy.optimize.leastsq``'s keywords for method ``"lm"`` with these options, or None
    when ``least_squares`` must take them: another method, an option ``leastsq`` has not, a
    tolerance ``least_squares`` refuses for ``"lm"`` (below machine epsilon), a count of
    evaluations that is not a positive integer, a scaling other than ``"jac"``."""
    if method != "lm" or not set(options) <= _LEASTSQ_OPTIONS:
        return None
    if not _scaled_by_jacobian(options.get("x_scale")):
        return None
    keywords = {"diag": None}
    for name in ("ftol", "xtol", "gtol"):
        tolerance = options.get(name, _LM_TOLERANCE)
        if not _number(tolerance, numbers.Real) or not tolerance >= np.finfo(np.float64).eps:
            return None
        keywords[name] = float(tolerance)
    evaluations = options.get("max_nfev")
    if evaluations is None:
        evaluations = _LM_EVALUATIONS_PER_PARAMETER * size
    if not _number(evaluations, numbers.Integral) or evaluations < 1:
        return None
    keywords["maxfev"] = int(evaluations)
    return keywords


def _scaled_by_jacobian(x_scale: Any) -> bool:
    """Whether ``x_scale`` is ``"jac"`` (or None, ``"lm"``'s default: the same), MINPACK's
    own scaling (``diag=None``). Asked by type first: an array of scales (SciPy takes one)
    compared with a string is an array, whose truth is ambiguous; such scales go to
    ``least_squares``, which checks them."""
    return x_scale is None or (isinstance(x_scale, str) and x_scale == "jac")


def _number(value: Any, kind: type) -> bool:
    """Whether ``value`` is a number of ``kind`` (a ``numbers`` ABC), a bool not counting."""
    return isinstance(value, kind) and not isinstance(value, bool)


def _lmder_starts(residuals: np.ndarray, size: int) -> bool:
    """Whether MINPACK can start from these residuals: a vector of finite values, at least
    one per parameter element (``least_squares`` raises otherwise, and says why)."""
    return residuals.ndim == 1 and residuals.size >= size and bool(np.isfinite(residuals).all())


def _through_leastsq(
    optimize: Any, fun: Callable, jac: Callable, start: np.ndarray, keywords: dict
) -> Any:
    """MINPACK's ``lmder`` through ``scipy.optimize.leastsq``, its result in
    ``least_squares``'s form (``status`` by SciPy's table; ``message`` MINPACK's)."""
    x, _, info, message, code = optimize.leastsq(fun, start, Dfun=jac, full_output=True, **keywords)
    residuals = info["fvec"]
    jacobian = jac(x)
    grad = jacobian.T @ residuals
    status = _STATUS[code]
    return optimize.OptimizeResult(
        x=x,
        cost=0.5 * float(np.dot(residuals, residuals)),
        fun=residuals,
        jac=jacobian,
        grad=grad,
        optimality=float(np.max(np.abs(grad), initial=0.0)),
        active_mask=np.zeros(x.size, dtype=int),
        nfev=info["nfev"],
        njev=info["njev"],
        status=status,
        message=message,
        success=status > 0,
    )


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
    whose residuals it keeps, right after their residuals, and MINPACK asks again at the
    solution; so, once the number of residuals is known (the first point: ``residuals``
    alone), every point is one pass of ``jacobian(..., residuals=r)``. The latest point's
    residuals and Jacobian, and the Jacobian of the latest point ``jac`` was asked at, are
    kept (keyed by the bytes of x) for SciPy's next questions about them. A point SciPy
    rejects costs a Jacobian it does not use. Residuals are handed out as copies: MINPACK
    writes into the ones it is given."""
    latest: dict = {}  # the latest point evaluated: "x" (bytes), "r", "J" (or None)
    asked: dict = {}  # the latest point jac was asked at: "x", "J"
    residual: list[np.ndarray] = []  # one array of the residuals' shape and dtype

    together = fills_residuals(module)

    def evaluate(x: np.ndarray, key: bytes) -> None:
        """One pass at x into ``latest``: its residuals, and its Jacobian when the module
        makes both at once and the residuals' shape is known."""
        latest.clear()
        jacobian = None
        if not residual:  # x0: its errors are raised as they are
            r = np.asarray(module.residuals(*place.unflatten(x), **arrays))
            residual.append(np.empty_like(r))
        elif together:
            r = np.empty_like(residual[0])
            jacobian = module.jacobian(*place.unflatten(x), **arrays, residuals=r)
        else:
            r = module.residuals(*place.unflatten(x), **arrays)
        latest.update(x=key, r=np.asarray(r, dtype=np.float64), J=jacobian)

    def fun(x: np.ndarray) -> np.ndarray:
        key = x.tobytes()
        if latest.get("x") != key:
            try:
                evaluate(x, key)
            except OUTSIDE_DOMAIN:  # a trial point outside the domain: infinite residuals
                if not residual:
                    raise
                return np.full(residual[0].shape, math.inf)
        return latest["r"].copy()

    def jac(x: np.ndarray) -> np.ndarray:
        key = x.tobytes()
        if asked.get("x") != key:
            if latest.get("x") != key:
                evaluate(x, key)
            if latest["J"] is None:
                latest["J"] = module.jacobian(*place.unflatten(x), **arrays)
            asked.update(x=key, J=np.asarray(latest["J"], dtype=np.float64))
        return asked["J"]

    return fun, jac
