"""Time to solution: whole fits, each timed from its starting point to a stated accuracy.

- ``solve-w4``: the W4 curve fit at N = 10⁵ (``examples/curve_fit.py``'s ``synthetic()``
  data, from its ``START``) to within 1e-10 relative of the optimum in every parameter:
  ``symgen.least_squares`` (Levenberg-Marquardt on the generated residuals and exact
  Jacobian, C backend and NumPy module) against ``scipy.optimize.curve_fit`` (MINPACK's
  Levenberg-Marquardt with a finite-difference Jacobian; the reference), both at SciPy's
  default tolerances; and the README's Adam loop (3000 steps of ``examples/curve_fit.fit``),
  which does not reach that accuracy (its note says how close it gets).
- ``solve-w2``: W2 large (N = 10⁶, D = 16, ``examples/logistic.py``'s ``large()``), from
  w = 0 to a gradient of the mean loss of max-norm 1e-8: ``symgen.minimize`` L-BFGS-B on the
  generated ``loss_and_grad`` against scikit-learn's unpenalized ``LogisticRegression``
  (solvers ``lbfgs``, the reference, and ``newton-cholesky``; one thread) and the module's
  generated ``newton_step`` (when it has one: the place for symgen's second-order code).

The W4 optimum is found first, tightly, by two routes that must agree (symgen's Jacobian,
and one written out here);
every contender is then run once and must reach the stated accuracy before anything is
timed (a contender that does not stops the run, except the Adam loop, whose accuracy is
reported).
"""

from __future__ import annotations

import numpy as np

import symgen
from examples import curve_fit, logistic

from .correctness import CheckFailed
from .machine import version
from .timing import Contender

#: W4: samples, and the relative accuracy every parameter must reach.
W4_N = 100_000
W4_ACCURACY = 1e-10
#: W2 large: its size, and the max-norm of the mean loss's gradient to reach.
W2_N, W2_D = 1_000_000, 16
W2_GRADIENT = 1e-8

W4_REFERENCE = "SciPy `curve_fit` (finite-difference Jacobian)"
W4_SYMGEN = "symgen `least_squares` LM, C backend (generated residuals, Jacobian)"
W4_SYMGEN_NUMPY = "symgen `least_squares` LM, NumPy module"
W4_ADAM = "hand-written Adam loop of the README (3000 steps, NumPy module)"
W2_REFERENCE = "scikit-learn `LogisticRegression` lbfgs"
W2_SYMGEN = "symgen `minimize` L-BFGS-B, C backend"
W2_SYMGEN_NUMPY = "symgen `minimize` L-BFGS-B, NumPy module"
W2_NEWTON = "symgen `newton_step` loop, C backend"


def w4_title() -> str:
    return f"Time to solution, W4 curve fit — N = {W4_N:,}, to {W4_ACCURACY:g} of the optimum"


def w4_description() -> str:
    return (
        f"From `examples/curve_fit.py`'s START to every parameter within {W4_ACCURACY:g} "
        f"(relative) of the optimum, mean over N = {W4_N:,} samples of `synthetic()`; SciPy's "
        "default tolerances for both Levenberg-Marquardt fits; one call is one whole fit. "
        f"Reference: {W4_REFERENCE}."
    )


def w2_title() -> str:
    return f"Time to solution, W2 logistic — N = {W2_N:,}, D = {W2_D}, to gradient {W2_GRADIENT:g}"


def w2_description() -> str:
    return (
        f"From w = 0 until the gradient of the mean loss has max-norm ≤ {W2_GRADIENT:g} "
        f"(N = {W2_N:,}, D = {W2_D}, `examples/logistic.py`'s `large()`, no intercept, no "
        f"penalty, one thread); one call is one whole fit. Reference: {W2_REFERENCE}."
    )


def _model(t, a, b, c, d, e, g):
    return np.exp(-a * t) * np.sin(b * t + c) + d * t**2 + e * t + g


def _jacobian(t, a, b, c, d, e, g):
    """The model's Jacobian written out here (for the optimum, not timed)."""
    decay, phase = np.exp(-a * t), b * t + c
    wave, slope = decay * np.sin(phase), decay * np.cos(phase)
    return np.column_stack((-t * wave, t * slope, slope, t**2, t, np.ones_like(t)))


def _relative_error(params, optimum) -> float:
    return float(np.max(np.abs(np.asarray(params, dtype=float) - optimum) / np.abs(optimum)))


def w4_contenders() -> tuple[list[Contender], dict]:
    """The W4 contenders, and what ``check_w4`` needs: data and the optimum."""
    from scipy.optimize import curve_fit as scipy_curve_fit

    t, y = curve_fit.synthetic(W4_N)
    c_module = symgen.compile(curve_fit.curve_fit, "c")
    numpy_module = symgen.compile(curve_fit.curve_fit)
    data = {"t": t, "y": y}
    tight = {"ftol": 1e-15, "xtol": 1e-15, "gtol": 1e-15}
    mine = np.array(symgen.least_squares(c_module, curve_fit.START, data, **tight).params)
    theirs, _ = scipy_curve_fit(_model, t, y, p0=curve_fit.START, jac=_jacobian, **tight)
    if _relative_error(theirs, mine) > 1e-12:
        raise CheckFailed(f"W4: the two optima differ: {mine} and {theirs}")
    namespace = {
        "least_squares": symgen.least_squares,
        "curve_fit": scipy_curve_fit,
        "adam": curve_fit.fit,
        "model": _model,
        "start": curve_fit.START,
        "data": data,
        "t": t,
        "y": y,
    }
    scipy_version = f"SciPy {version('scipy')}"
    contenders = [
        Contender(
            W4_SYMGEN,
            "least_squares(c_module, start, data).params",
            {**namespace, "c_module": c_module},
            f"method 'lm': MINPACK lmder through `scipy.optimize.leastsq`, {scipy_version}",
        ),
        Contender(
            W4_SYMGEN_NUMPY,
            "least_squares(numpy_module, start, data).params",
            {**namespace, "numpy_module": numpy_module},
            "method 'lm'",
        ),
        Contender(
            W4_REFERENCE,
            "tuple(curve_fit(model, t, y, p0=start)[0])",
            namespace,
            f"MINPACK lmdif through lmder, forward differences, {scipy_version}",
        ),
        Contender(
            W4_ADAM,
            "adam(numpy_module, t, y)[0]",
            {**namespace, "numpy_module": numpy_module},
            "lr 0.02, all the data every step (`examples/curve_fit.fit`)",
        ),
    ]
    return contenders, {"optimum": mine}


def check_w4(contenders: list[Contender], optimum: np.ndarray) -> None:
    """Every fit but the Adam loop reaches the optimum to ``W4_ACCURACY``; the Adam loop's
    distance from it goes into its note."""
    for c in contenders:
        error = _relative_error(c.evaluate(), optimum)
        if c.name == W4_ADAM:
            c.note += f"; reaches {error:.1e} of the optimum, not {W4_ACCURACY:g}"
        elif error > W4_ACCURACY:
            raise CheckFailed(f"{c.name} ends {error:.2e} from the optimum, not {W4_ACCURACY:g}")
        else:
            c.note += f"; ends {error:.1e} from the optimum"


def _mean_gradient(w, x, t) -> np.ndarray:
    """The gradient of the mean logistic loss, written out here."""
    z = x @ np.reshape(w, (-1, 1))
    return x.T @ (0.5 * (1 + np.tanh(z / 2)) - t) / x.shape[0]


def w2_contenders() -> tuple[list[Contender], dict]:
    """The W2 contenders, and what ``check_w2`` needs: the data."""
    x, t = logistic.large(W2_N, W2_D)
    c_module = symgen.compile(logistic.logistic, "c")
    numpy_module = symgen.compile(logistic.logistic)
    start = np.zeros((W2_D, 1))
    # L-BFGS-B on the summed loss: its gradient tolerance scaled to the mean's
    options = {"gtol": W2_GRADIENT * W2_N, "ftol": 0.0, "maxiter": 1000}
    namespace = {
        "minimize": symgen.minimize,
        "start": start,
        "data": {"X": x, "t": t},
        "options": options,
        "x": x,
        "t": t,
    }
    contenders = [
        Contender(
            W2_SYMGEN,
            "minimize(c_module, start, data, options=options).params[0]",
            {**namespace, "c_module": c_module},
            f"`gtol` {W2_GRADIENT:g} × N on the summed loss, `ftol` 0",
        ),
        Contender(
            W2_SYMGEN_NUMPY,
            "minimize(numpy_module, start, data, options=options).params[0]",
            {**namespace, "numpy_module": numpy_module},
            "as above",
        ),
    ]
    # The place of symgen's second-order code: the module's generated newton_step, run
    # until the gradient is small enough (timed once modules generate it).
    newton = Contender(
        W2_NEWTON,
        "newton_fit(c_module, start, x, t)",
        {"newton_fit": _newton_fit, "c_module": c_module, "start": start, "x": x, "t": t},
        "the module's `newton_step` from w = 0 until the gradient it hands back (at the "
        "point before its step) is ≤ the tolerance",
    )
    if not hasattr(c_module, "newton_step"):
        newton.missing = "not generated by this symgen (no `newton_step`)"
    contenders.append(newton)
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        for name in (W2_REFERENCE, "scikit-learn `LogisticRegression` newton-cholesky"):
            contenders.append(Contender(name, missing="not installed: scikit-learn"))
        return contenders, {"x": x, "t": t}
    sk = f"scikit-learn {version('scikit-learn')}"
    for solver in ("lbfgs", "newton-cholesky"):
        model = LogisticRegression(  # C = inf: no penalty
            C=np.inf, solver=solver, fit_intercept=False, tol=W2_GRADIENT, max_iter=1000
        )
        contenders.append(
            Contender(
                f"scikit-learn `LogisticRegression` {solver}",
                "model.fit(x, labels).coef_.ravel()",
                {"model": model, "x": x, "labels": t.ravel()},
                f"`C` inf (no penalty), no intercept, `tol` {W2_GRADIENT:g}, {sk}",
            )
        )
    return contenders, {"x": x, "t": t}


def _newton_fit(module, start, x, t):
    """The module's ``newton_step`` from ``start`` until the mean gradient is small enough:
    each step hands back the gradient its pass computed (``gradient=``, of the summed
    loss) at the point before it, so the loop stops after the first step taken where it
    is small enough (that step's update comes free: it only moves closer)."""
    w = start.copy()
    gradient = np.empty(w.size)
    for _ in range(100):
        _, (w,) = module.newton_step(w, x, t, gradient=gradient)
        if np.abs(gradient).max() <= W2_GRADIENT * x.shape[0]:
            break
    return w


def check_w2(contenders: list[Contender], x: np.ndarray, t: np.ndarray) -> None:
    """Every fit ends with a mean gradient of max-norm ``W2_GRADIENT`` at most."""
    for c in contenders:
        if c.missing is not None:
            continue
        gradient = np.abs(_mean_gradient(c.evaluate(), x, t)).max()
        if gradient > W2_GRADIENT:
            raise CheckFailed(f"{c.name} ends with gradient {gradient:.2e} > {W2_GRADIENT:g}")
        c.note += f"; ends at gradient {gradient:.1e}"
