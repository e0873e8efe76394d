"""``symgen.minimize``: ``scipy.optimize.minimize`` on a generated module, with the loss and
its gradient from one call of ``loss_and_grad`` (``jac=True``) and, for the methods that
use one, the module's Hessian (``hessian``) or Hessian-vector product (``hvp``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from symgen.runtime.solvers.layout import (
    OUTSIDE_DOMAIN,
    Layout,
    data_arrays,
    layout,
    module_name,
)
from symgen.runtime.solvers.optional import scipy_optimize
from symgen.runtime.solvers.supplied import refuse_supplied

#: The methods that take second derivatives, and which: SciPy's ``hess`` (the dense
#: Hessian, the module's ``hessian``) or ``hessp`` (products, the module's ``hvp``).
SECOND_ORDER = {
    "newton-cg": "hessp",
    "trust-ncg": "hessp",
    "trust-krylov": "hessp",
    "trust-constr": "hessp",
    "trust-exact": "hess",
    "dogleg": "hess",
}
#: The module's function behind each of SciPy's arguments.
FUNCTIONS = {"hess": "hessian", "hessp": "hvp"}
#: ``scipy.optimize.minimize``'s arguments that symgen makes from the module and the data.
SUPPLIED = ("fun", "jac", "hess", "hessp", "args")


def _second_order(
    module: Any, method: str | Callable[..., Any] | None, place: Layout, data: dict[str, Any]
) -> dict[str, Callable[..., np.ndarray]]:
    """SciPy's ``hess`` and ``hessp`` for ``method``, from the module's own functions. A
    named method gets the one it uses (nothing, for a method that uses none). None leaves
    the choice to SciPy, whose picks (BFGS; L-BFGS-B with bounds; SLSQP with constraints)
    use none. A custom method (a callable) gets both, those the module has: SciPy hands a
    custom method every ``hess`` and ``hessp`` it is given, and only the method knows
    which it uses."""
    if method is None:
        return {}
    if callable(method):
        return {
            kind: _hessian(kind, function, place, data)
            for kind, name in FUNCTIONS.items()
            if (function := getattr(module, name, None)) is not None
        }
    if not isinstance(method, str):
        raise TypeError(
            f"{module_name(module)}: method must be the name of one of SciPy's methods "
            f"('L-BFGS-B', 'trust-exact', ...), None for SciPy's own choice, or a callable "
            f"custom minimizer; got {type(method).__name__} {method!r}"
        )
    kind = SECOND_ORDER.get(method.lower())
    if kind is None:
        return {}
    function = getattr(module, FUNCTIONS[kind], None)
    if function is None:
        raise TypeError(
            f"{module_name(module)}: method {method!r} needs the Hessian "
            f"({'the dense matrix' if kind == 'hess' else 'products with it'}), and the module "
            f"has no {FUNCTIONS[kind]}(); regenerate it with a symgen that writes hessian() "
            "and hvp(), or choose a method that needs only the gradient (L-BFGS-B, BFGS, CG)"
        )
    return {kind: _hessian(kind, function, place, data)}


def _hessian(
    kind: str, function: Callable[..., Any], place: Layout, data: dict[str, Any]
) -> Callable[..., np.ndarray]:
    """SciPy's ``hess(x)`` (``kind`` "hess", from the module's ``hessian``) or
    ``hessp(x, p)`` ("hessp", from its ``hvp``) on the flat vector."""
    if kind == "hess":

        def hess(x: np.ndarray) -> np.ndarray:
            return np.asarray(function(*place.unflatten(x), **data), dtype=np.float64)

        return hess

    def hessp(x: np.ndarray, p: np.ndarray) -> np.ndarray:
        products = function(*place.unflatten(x), **data, v=tuple(place.unflatten(p)))
        return place.flatten(products)

    return hessp


def _with_params(optimize: Any, place: Layout, watch: Callable[[Any], Any]) -> Callable:
    """The caller's ``callback(intermediate_result)`` with the parameters as given in
    ``intermediate_result.params``. SciPy calls TNC's callback with the point alone, not an
    intermediate result: that point becomes one, so that every method's callback finds the
    same."""

    def callback(intermediate_result: Any) -> Any:
        if isinstance(intermediate_result, np.ndarray):
            intermediate_result = optimize.OptimizeResult(x=intermediate_result)
        intermediate_result.params = place.returned(place.unflatten(intermediate_result.x))
        return watch(intermediate_result)

    return callback


def minimize(
    module: Any,
    x0: Any,
    data: Any = None,
    method: str | Callable[..., Any] | None = "L-BFGS-B",
    **options: Any,
) -> Any:
    """Minimise the loss of a generated module with ``scipy.optimize.minimize``.

    ``x0``: the initial parameters, a dict by name or a tuple in ``module.PARAMS`` order
    (floats for scalar parameters, arrays for array ones; one array alone for a module of
    one parameter). ``data``: a dict by name or a tuple in ``module.DATA`` order (converted
    once to the module's dtype). ``method``: any of SciPy's names; the loss and gradient come
    from one ``loss_and_grad`` call (``jac=True``); ``trust-exact`` and ``dogleg`` get the
    module's ``hessian`` as ``hess``, ``Newton-CG``, ``trust-ncg``, ``trust-krylov`` and
    ``trust-constr`` its ``hvp`` as ``hessp`` (a ``TypeError`` when the module has none).
    ``method=None``: SciPy's own choice (BFGS, L-BFGS-B with ``bounds``, SLSQP with
    ``constraints``). A callable: SciPy's custom minimizer, given ``jac`` (as SciPy makes it
    from ``jac=True``) and, those the module has, ``hess`` and ``hessp``.
    ``options`` go to SciPy as they are (``tol``, ``bounds``, ``options={"maxiter": ...}``),
    except ``SUPPLIED``, which symgen makes (a ``TypeError``); a
    ``callback(intermediate_result)`` finds the parameters as given in its ``.params``.

    Returns SciPy's ``OptimizeResult`` (``x`` flat, float64) with ``params``: the solution
    as the parameters were given (a dict by name, or a tuple in ``PARAMS`` order, arrays
    shaped like ``x0``'s in the module's dtype) and ``loss``: the loss there.
    """
    refuse_supplied(module, "minimize", options, SUPPLIED)
    optimize = scipy_optimize("minimize")
    place, start = layout(module, x0)
    arrays = data_arrays(module, data)
    second = _second_order(module, method, place, arrays)  # the method is checked here
    loss_and_grad = module.loss_and_grad

    loss_and_grad(*place.unflatten(start), **arrays)  # argument errors raise here, at x0

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            loss, grads = loss_and_grad(*place.unflatten(x), **arrays)
        except OUTSIDE_DOMAIN:  # a trial point outside the loss's domain: infinite
            return math.inf, np.full(start.shape, math.nan)
        return float(loss), place.flatten(grads)

    watch = options.pop("callback", None)
    if watch is not None:
        options["callback"] = _with_params(optimize, place, watch)
    result = optimize.minimize(fun, start, jac=True, method=method, **second, **options)
    values = place.unflatten(result.x)
    result.params = place.returned(values)
    result.loss = float(module.loss(*values, **arrays))
    return result
