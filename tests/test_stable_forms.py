"""The stable forms of issue 17 (compiler/stable.py): each loss written the way its library
documents it, compiled for NumPy, C and CUDA (emulated), against

- HIPS autograd of the naive formula and central differences, at ordinary inputs
  (float64, rtol 1e-7);
- closed forms (``scipy.special`` xlogy, kl_div, logsumexp, softmax; log-cosh as
  ``|r| + log1p(exp(-2|r|)) - log 2``), at ``|z| = 1000`` and with zero targets: the
  loss and every gradient finite and right;
- the float64 module, in float32.

And the rewrites themselves: what each form becomes, and that other forms stay as written.
"""

from __future__ import annotations

import shutil
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd.extend import defvjp, primitive
from scipy import special
from sympy.codegen.cfunctions import expm1, log1p

import symgen
from symgen.cli.commands import main
from symgen.compiler.scalar_functions import (
    log1mexp,
    logaddexp,
    logcosh,
    softplus,
    stop_gradient,
    xlogy,
)
from symgen.compiler.stable import stabilize
from tests.gradcheck import central_differences

a, b, c = sp.symbols("a b c")
x, t, y = sp.symbols("x t y")

A, B, C = 0.7, -0.4, 1.3  # the parameters' values
LN2 = np.log(2.0)


# -- closed forms, stable at any argument -------------------------------------------------
def _logcosh(r):
    r = np.abs(r)
    return r + np.log1p(np.exp(-2.0 * r)) - LN2


def _log1mexp(z):
    z = np.asarray(z, dtype=float)
    return np.where(z <= LN2, np.log(-np.expm1(-np.minimum(z, LN2))), np.log1p(-np.exp(-z)))


def _xdivy(u, v):
    return np.where(u == 0, 0.0, u / np.where(u == 0, 1.0, v))


def _softplus(z):
    return np.logaddexp(0.0, z)


# autograd's stop_gradient: the value, no gradient (JAX's lax.stop_gradient)
@primitive
def _stopped(value):
    return value


defvjp(_stopped, lambda ans, value: lambda g: 0.0 * g)


def _clip(z):
    return anp.minimum(anp.maximum(z, -1.0), 1.0)


@dataclass(frozen=True)
class Case:
    """A per-sample loss: how symgen is given it, its closed form (per-sample values and
    gradients) and its naive formula for autograd (valid at ordinary inputs)."""

    loss: sp.Expr
    params: tuple
    data: tuple
    value: Callable  # (params, data) -> per-sample values
    grads: Callable  # (params, data) -> per-sample gradients, one array per parameter
    naive: Callable  # autograd: (*params, *data) -> per-sample values
    ordinary: Callable  # rng -> data
    edge: Callable  # rng -> data at |z| = 1000 and with zero targets
    point: tuple = (A, B, C)
    central: bool = True  # central differences are the gradient (not with stop_gradient)


def _uniform(lo, hi, n=40):
    return lambda rng: rng.uniform(lo, hi, n)


def _lse_terms(p, d):
    return np.stack([p[0] * d["x"], p[1] * d["x"], p[2] * d["x"]])


def _lse2(p, d):
    """log(2*exp(a*x) + exp(b*y) + 3)."""
    terms = np.stack([p[0] * d["x"], p[1] * d["y"], 0 * d["x"]])
    return special.logsumexp(terms, b=np.array([[2], [1], [3]]), axis=0)


def _extreme_x(scale):
    """x spanning z = +-1000 for the largest coefficient ``scale``, and ordinary values."""
    return lambda rng: (
        np.concatenate(
            [[-1000.0, -999.0, 1000.0, 999.5], rng.uniform(-1000.0, 1000.0, 12), [0.0, 0.5]]
        )
        / abs(scale)
    )


def _binary(n):
    return lambda rng: (rng.random(n) < 0.5).astype(float)


def _with_zeros(values):
    """Targets with exact zeros (and ones) among ordinary values."""
    return np.concatenate([[0.0, 0.0, 1.0, 0.0], values])


LSE = sp.log(sp.exp(a * x) + sp.exp(b * x) + sp.exp(c * x))

CASES: dict[str, Case] = {
    # scalar log-sum-exp of explicit exponentials (max-shifted)
    "logsumexp3": Case(
        LSE,
        (a, b, c),
        (x,),
        value=lambda p, d: special.logsumexp(_lse_terms(p, d), axis=0),
        grads=lambda p, d: list(special.softmax(_lse_terms(p, d), axis=0) * d["x"]),
        naive=lambda a, b, c, x: anp.log(anp.exp(a * x) + anp.exp(b * x) + anp.exp(c * x)),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40)},
        edge=lambda rng: {"x": _extreme_x(C)(rng)},
    ),
    # with coefficients and a constant term
    "logsumexp_weighted": Case(
        sp.log(2 * sp.exp(a * x) + sp.exp(b * y) + 3),
        (a, b),
        (x, y),
        value=lambda p, d: _lse2(p, d),
        grads=lambda p, d: [
            2 * np.exp(p[0] * d["x"] - _lse2(p, d)) * d["x"],
            np.exp(p[1] * d["y"] - _lse2(p, d)) * d["y"],
        ],
        naive=lambda a, b, x, y: anp.log(2 * anp.exp(a * x) + anp.exp(b * y) + 3),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40), "y": rng.uniform(-2, 2, 40)},
        edge=lambda rng: {"x": _extreme_x(A)(rng), "y": _extreme_x(B)(rng)[::-1]},
        point=(A, B),
    ),
    # softmax cross-entropy of the first class, as -log(softmax)
    "softmax_ce3": Case(
        -sp.log(sp.exp(a * x) / (sp.exp(a * x) + sp.exp(b * x) + sp.exp(c * x))),
        (a, b, c),
        (x,),
        value=lambda p, d: special.logsumexp(_lse_terms(p, d), axis=0) - p[0] * d["x"],
        grads=lambda p, d: list(
            (special.softmax(_lse_terms(p, d), axis=0) - [[1], [0], [0]]) * d["x"]
        ),
        naive=lambda a, b, c, x: (
            -anp.log(anp.exp(a * x) / (anp.exp(a * x) + anp.exp(b * x) + anp.exp(c * x)))
        ),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40)},
        edge=lambda rng: {"x": _extreme_x(C)(rng)},
    ),
    "softmax_ce2": Case(
        -sp.log(sp.exp(a * x) / (sp.exp(a * x) + sp.exp(b * x))),
        (a, b),
        (x,),
        value=lambda p, d: np.logaddexp(p[0] * d["x"], p[1] * d["x"]) - p[0] * d["x"],
        grads=lambda p, d: [
            (special.expit((p[0] - p[1]) * d["x"]) - 1) * d["x"],
            special.expit((p[1] - p[0]) * d["x"]) * d["x"],
        ],
        naive=lambda a, b, x: -anp.log(anp.exp(a * x) / (anp.exp(a * x) + anp.exp(b * x))),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40)},
        edge=lambda rng: {"x": _extreme_x(A - B)(rng)},
        point=(A, B),
    ),
    # a softmax probability written out with exponentials (no log): exp(a - LSE)
    "softmax3": Case(
        sp.exp(a * x) / (sp.exp(a * x) + sp.exp(b * x) + sp.exp(c * x)),
        (a, b, c),
        (x,),
        value=lambda p, d: special.softmax(_lse_terms(p, d), axis=0)[0],
        grads=lambda p, d: list(
            special.softmax(_lse_terms(p, d), axis=0)[0]
            * ([[1], [0], [0]] - special.softmax(_lse_terms(p, d), axis=0))
            * d["x"]
        ),
        naive=lambda a, b, c, x: (
            anp.exp(a * x) / (anp.exp(a * x) + anp.exp(b * x) + anp.exp(c * x))
        ),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40)},
        edge=lambda rng: {"x": _extreme_x(C)(rng)},
    ),
    "softmax2": Case(
        sp.exp(a * x) / (sp.exp(a * x) + sp.exp(b * x)),
        (a, b),
        (x,),
        value=lambda p, d: special.expit((p[0] - p[1]) * d["x"]),
        grads=lambda p, d: [
            special.expit((p[0] - p[1]) * d["x"])
            * special.expit((p[1] - p[0]) * d["x"])
            * d["x"]
            * sign
            for sign in (1, -1)
        ],
        naive=lambda a, b, x: anp.exp(a * x) / (anp.exp(a * x) + anp.exp(b * x)),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40)},
        edge=lambda rng: {"x": _extreme_x(A - B)(rng)},
        point=(A, B),
    ),
    # the log-cosh loss
    "logcosh": Case(
        sp.log(sp.cosh(a * x + b - y)),
        (a, b),
        (x, y),
        value=lambda p, d: _logcosh(p[0] * d["x"] + p[1] - d["y"]),
        grads=lambda p, d: [
            np.tanh(p[0] * d["x"] + p[1] - d["y"]) * d["x"],
            np.tanh(p[0] * d["x"] + p[1] - d["y"]),
        ],
        naive=lambda a, b, x, y: anp.log(anp.cosh(a * x + b - y)),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40), "y": rng.uniform(-1, 1, 40)},
        edge=lambda rng: {"x": _extreme_x(A)(rng), "y": rng.uniform(-1, 1, 18)},
        point=(A, B),
    ),
    # log(1 - exp(-z)), z = a**2 x > 0: tiny and huge z
    "log1mexp": Case(
        sp.log(1 - sp.exp(-(a**2) * x)),
        (a,),
        (x,),
        value=lambda p, d: _log1mexp(p[0] ** 2 * d["x"]),
        grads=lambda p, d: [
            2 * p[0] * d["x"] * np.exp(-(p[0] ** 2) * d["x"]) / -np.expm1(-(p[0] ** 2) * d["x"])
        ],
        naive=lambda a, x: anp.log(1 - anp.exp(-(a**2) * x)),
        ordinary=lambda rng: {"x": rng.uniform(0.1, 3, 40)},
        edge=lambda rng: {"x": np.array([1e-12, 1e-6, 0.01, 1.0, 1000.0, 999.0]) / A**2},
        point=(A,),
    ),
    # log(exp(z) - 1), z = a x > 0
    "log_expm1": Case(
        sp.log(sp.exp(a * x) - 1),
        (a,),
        (x,),
        value=lambda p, d: p[0] * d["x"] + _log1mexp(p[0] * d["x"]),
        grads=lambda p, d: [d["x"] / -np.expm1(-p[0] * d["x"])],
        naive=lambda a, x: anp.log(anp.exp(a * x) - 1),
        ordinary=lambda rng: {"x": rng.uniform(0.1, 3, 40)},
        edge=lambda rng: {"x": np.array([1e-9, 0.5, 1000.0, 999.0, 700.0]) / A},
        point=(A,),
    ),
    # SymPy's own log1p (sympy.codegen.cfunctions), as numerically minded users write the
    # logistic loss: log1p(exp(z)) - y*z is softplus(z) - y*z
    "bce_log1p": Case(
        log1p(sp.exp(a * x + b)) - y * (a * x + b),
        (a, b),
        (x, y),
        value=lambda p, d: _softplus(p[0] * d["x"] + p[1]) - d["y"] * (p[0] * d["x"] + p[1]),
        grads=lambda p, d: [
            (special.expit(p[0] * d["x"] + p[1]) - d["y"]) * d["x"],
            special.expit(p[0] * d["x"] + p[1]) - d["y"],
        ],
        naive=lambda a, b, x, y: anp.log1p(anp.exp(a * x + b)) - y * (a * x + b),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40), "y": _binary(40)(rng)},
        edge=lambda rng: {"x": _extreme_x(A)(rng), "y": _binary(18)(rng)},
        point=(A, B),
    ),
    # and its expm1: a relative-error loss (exp(z) - 1 - y)**2, exact for small z
    "expm1": Case(
        (expm1(a * x) - y) ** 2,
        (a,),
        (x, y),
        value=lambda p, d: (np.expm1(p[0] * d["x"]) - d["y"]) ** 2,
        grads=lambda p, d: [
            2 * (np.expm1(p[0] * d["x"]) - d["y"]) * np.exp(p[0] * d["x"]) * d["x"]
        ],
        naive=lambda a, x, y: (anp.expm1(a * x) - y) ** 2,
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40), "y": rng.uniform(-1, 1, 40)},
        edge=lambda rng: {"x": np.array([1e-12, -1e-9, 0.5, -1000.0, 40.0]) / A, "y": np.zeros(5)},
        point=(A,),
    ),
    # binary cross-entropy with logits, written with sigmoid (labels not declared binary)
    "bce_sigmoid": Case(
        -(y * sp.log(symgen.sigmoid(a * x + b)) + (1 - y) * sp.log(1 - symgen.sigmoid(a * x + b))),
        (a, b),
        (x, y),
        value=lambda p, d: _softplus(p[0] * d["x"] + p[1]) - d["y"] * (p[0] * d["x"] + p[1]),
        grads=lambda p, d: [
            (special.expit(p[0] * d["x"] + p[1]) - d["y"]) * d["x"],
            special.expit(p[0] * d["x"] + p[1]) - d["y"],
        ],
        naive=lambda a, b, x, y: (
            -(
                y * anp.log(1 / (1 + anp.exp(-(a * x + b))))
                + (1 - y) * anp.log(1 - 1 / (1 + anp.exp(-(a * x + b))))
            )
        ),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40), "y": _binary(40)(rng)},
        edge=lambda rng: {"x": _extreme_x(A)(rng), "y": _binary(18)(rng)},
        point=(A, B),
    ),
    # the binary KL divergence from soft targets in [0, 1] (0 and 1 included) to sigmoid(z)
    "binary_kl": Case(
        t * sp.log(t / symgen.sigmoid(a * x + b))
        + (1 - t) * sp.log((1 - t) / (1 - symgen.sigmoid(a * x + b))),
        (a, b),
        (x, t),
        value=lambda p, d: (
            special.xlogy(d["t"], d["t"])
            + special.xlogy(1 - d["t"], 1 - d["t"])
            + d["t"] * _softplus(-(p[0] * d["x"] + p[1]))
            + (1 - d["t"]) * _softplus(p[0] * d["x"] + p[1])
        ),
        grads=lambda p, d: [
            (special.expit(p[0] * d["x"] + p[1]) - d["t"]) * d["x"],
            special.expit(p[0] * d["x"] + p[1]) - d["t"],
        ],
        naive=lambda a, b, x, t: (
            t * anp.log(t * (1 + anp.exp(-(a * x + b))))
            + (1 - t) * anp.log((1 - t) / (1 - 1 / (1 + anp.exp(-(a * x + b)))))
        ),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40), "t": rng.uniform(0.05, 0.95, 40)},
        edge=lambda rng: {"x": _extreme_x(A)(rng), "t": _with_zeros(rng.uniform(0, 1, 14))},
        point=(A, B),
    ),
    # the generalized KL divergence (scipy.special.kl_div) with zero targets, p = a**2 x
    "kl_div": Case(
        t * sp.log(t / (a**2 * x)) - t + a**2 * x,
        (a,),
        (x, t),
        value=lambda p, d: special.kl_div(d["t"], p[0] ** 2 * d["x"]),
        grads=lambda p, d: [(1 - _xdivy(d["t"], p[0] ** 2 * d["x"])) * 2 * p[0] * d["x"]],
        naive=lambda a, x, t: t * anp.log(t / (a**2 * x)) - t + a**2 * x,
        ordinary=lambda rng: {"x": rng.uniform(0.1, 3, 40), "t": rng.uniform(0.1, 3, 40)},
        # zero targets, with p = 0 (x = 0) where the target is 0 too (0*log(0/0) = 0)
        edge=lambda rng: {
            "x": np.array([0.0, 1.0, 1000.0, 0.0, 2.0, 1e-30, 3.0]),
            "t": np.array([0.0, 0.0, 0.0, 0.0, 2.0, 1.0, 1e-30]),
        },
        point=(A,),
    ),
    # scipy.special.xlogy written directly
    "xlogy": Case(
        symgen.xlogy(t, a**2 * x),
        (a,),
        (x, t),
        value=lambda p, d: special.xlogy(d["t"], p[0] ** 2 * d["x"]),
        grads=lambda p, d: [_xdivy(d["t"], p[0] ** 2 * d["x"]) * 2 * p[0] * d["x"]],
        naive=lambda a, x, t: t * anp.log(a**2 * x),
        ordinary=lambda rng: {"x": rng.uniform(0.1, 3, 40), "t": rng.uniform(-3, 3, 40)},
        edge=lambda rng: {
            "x": np.array([0.0, 1.0, 1000.0, 0.0, 2.0]),
            "t": np.array([0.0, 0.0, 2.0, 0.0, -1.0]),
        },
        point=(A,),
    ),
    # the Poisson deviance with a log link: mu = exp(z), zero counts, z down to -1000
    "poisson_deviance": Case(
        2 * (y * sp.log(y / sp.exp(a * x + b)) - y + sp.exp(a * x + b)),
        (a, b),
        (x, y),
        value=lambda p, d: (
            2
            * (
                special.xlogy(d["y"], d["y"])
                - d["y"] * (p[0] * d["x"] + p[1])
                - d["y"]
                + np.exp(p[0] * d["x"] + p[1])
            )
        ),
        grads=lambda p, d: [
            2 * (np.exp(p[0] * d["x"] + p[1]) - d["y"]) * d["x"],
            2 * (np.exp(p[0] * d["x"] + p[1]) - d["y"]),
        ],
        naive=lambda a, b, x, y: 2 * (y * anp.log(y / anp.exp(a * x + b)) - y + anp.exp(a * x + b)),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40), "y": rng.uniform(0.1, 5, 40)},
        edge=lambda rng: {
            "x": np.array([-1000.0, -1000.0, -999.0, 0.0, 2.0, -3.0]) / A,
            "y": np.array([0.0, 3.0, 1.0, 0.0, 4.0, 0.0]),
        },
        point=(A, B),
    ),
    # the full Poisson NLL (log_input; the constant y*log(y) - y, 0 for y = 0)
    "poisson_nll_full": Case(
        sp.exp(a * x + b) - y * sp.log(sp.exp(a * x + b)) + y * sp.log(y) - y,
        (a, b),
        (x, y),
        value=lambda p, d: (
            np.exp(p[0] * d["x"] + p[1])
            - d["y"] * (p[0] * d["x"] + p[1])
            + special.xlogy(d["y"], d["y"])
            - d["y"]
        ),
        grads=lambda p, d: [
            (np.exp(p[0] * d["x"] + p[1]) - d["y"]) * d["x"],
            np.exp(p[0] * d["x"] + p[1]) - d["y"],
        ],
        naive=lambda a, b, x, y: anp.exp(a * x + b) - y * (a * x + b) + y * anp.log(y) - y,
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40), "y": rng.uniform(0.1, 5, 40)},
        edge=lambda rng: {
            "x": np.array([-1000.0, -1000.0, 0.0, 1.0, 3.0]) / A,
            "y": np.array([0.0, 2.0, 0.0, 0.0, 7.0]),
        },
        point=(A, B),
    ),
    # the entropy of a Bernoulli with p = sigmoid(z): p*log(p) + (1-p)*log(1-p)
    "bernoulli_entropy": Case(
        -(
            symgen.sigmoid(a * x) * sp.log(symgen.sigmoid(a * x))
            + (1 - symgen.sigmoid(a * x)) * sp.log(1 - symgen.sigmoid(a * x))
        ),
        (a,),
        (x,),
        value=lambda p, d: _softplus(p[0] * d["x"]) - p[0] * d["x"] * special.expit(p[0] * d["x"]),
        grads=lambda p, d: [
            -p[0] * d["x"] * special.expit(p[0] * d["x"]) * special.expit(-p[0] * d["x"]) * d["x"]
        ],
        naive=lambda a, x: (
            -(
                1 / (1 + anp.exp(-a * x)) * anp.log(1 / (1 + anp.exp(-a * x)))
                + (1 - 1 / (1 + anp.exp(-a * x))) * anp.log(1 - 1 / (1 + anp.exp(-a * x)))
            )
        ),
        ordinary=lambda rng: {"x": rng.uniform(-2, 2, 40)},
        edge=lambda rng: {"x": _extreme_x(A)(rng)},
        point=(A,),
    ),
    # torch's straight-through clamp: x + (clamp(x) - x).detach()
    "straight_through": Case(
        (a * x + b + symgen.stop_gradient(sp.Min(sp.Max(a * x + b, -1), 1) - (a * x + b)) - y) ** 2,
        (a, b),
        (x, y),
        value=lambda p, d: (np.clip(p[0] * d["x"] + p[1], -1, 1) - d["y"]) ** 2,
        grads=lambda p, d: [
            2 * (np.clip(p[0] * d["x"] + p[1], -1, 1) - d["y"]) * d["x"],
            2 * (np.clip(p[0] * d["x"] + p[1], -1, 1) - d["y"]),
        ],
        naive=lambda a, b, x, y: (a * x + b + _stopped(_clip(a * x + b) - (a * x + b)) - y) ** 2,
        ordinary=lambda rng: {"x": rng.uniform(-3, 3, 40), "y": rng.uniform(-1, 1, 40)},
        edge=lambda rng: {"x": _extreme_x(A)(rng), "y": rng.uniform(-1, 1, 18)},
        point=(A, B),
        central=False,  # the loss's own derivative is the clamp's, not the straight-through
    ),
}


BACKENDS = ["numpy", "c", "cuda"]


def _backend_available(backend: str) -> bool:
    if backend == "c":
        return any(shutil.which(cc) for cc in ("cc", "gcc", "clang"))
    if backend == "cuda":
        return shutil.which("g++") is not None
    return True


def _module(problem, backend):
    if not _backend_available(backend):
        pytest.skip(f"no compiler for the {backend} backend")
    if backend != "cuda":
        return symgen.compile(problem, backend)
    from symgen.testing import fakecupy

    source = symgen.generate(problem, "cuda")
    module = types.ModuleType(f"{problem.name}_cuda")
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = fakecupy
    try:
        exec(compile(source, f"<{problem.name}_cuda>", "exec"), module.__dict__)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
    return module


def _evaluate(module, backend, point, arrays, dtype="float64"):
    """(loss, gradients) of ``module`` as float64 numbers; no overflow, no invalid value."""
    arrays = [np.asarray(v, dtype=dtype) for v in arrays]
    if backend == "cuda":
        from symgen.testing import fakecupy

        arrays = [fakecupy.asarray(v) for v in arrays]
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        loss, grads = module.loss_and_grad(*point, *arrays)
    return float(loss), np.array([float(g) for g in grads])


def _problem(name, case, dtype="float64"):
    return symgen.Problem(
        case.loss, params=list(case.params), data=list(case.data), dtype=dtype, name=name
    )


def _closed_form(case, data):
    values = case.value(case.point, data)
    return float(np.sum(values)), np.array([float(np.sum(g)) for g in case.grads(case.point, data)])


@pytest.fixture(scope="module")
def modules():
    """Each case's module per (backend, dtype), built once."""
    built = {}

    def get(name, backend, dtype="float64"):
        key = (name, backend, dtype)
        if key not in built:
            built[key] = _module(_problem(name, CASES[name], dtype), backend)
        return built[key]

    return get


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_ordinary_inputs_against_autograd_and_central_differences(name, backend, modules):
    case, rng = CASES[name], np.random.default_rng(17)
    data = case.ordinary(rng)
    arrays = [data[d.name] for d in case.data]
    module = modules(name, backend)
    loss, grads = _evaluate(module, backend, case.point, arrays)

    def total(*point):
        return anp.sum(case.naive(*point, *arrays))

    want = [float(autograd.grad(total, i)(*case.point)) for i in range(len(case.point))]
    assert loss == pytest.approx(float(total(*case.point)), rel=1e-7)
    np.testing.assert_allclose(grads, want, rtol=1e-7, atol=1e-12)
    ref_loss, ref_grads = _closed_form(case, data)  # the closed forms are the same function
    assert loss == pytest.approx(ref_loss, rel=1e-7)
    np.testing.assert_allclose(grads, ref_grads, rtol=1e-7, atol=1e-12)
    if case.central:
        fd = central_differences(lambda *p: _evaluate(module, backend, p, arrays)[0], case.point)
        np.testing.assert_allclose(grads, fd, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_at_z_1000_and_zero_targets_against_closed_forms(name, backend, modules):
    case = CASES[name]
    data = case.edge(np.random.default_rng(1000))
    loss, grads = _evaluate(
        modules(name, backend), backend, case.point, [data[d.name] for d in case.data]
    )
    ref_loss, ref_grads = _closed_form(case, data)
    assert np.isfinite(loss) and np.all(np.isfinite(grads)), (loss, grads)
    assert np.isfinite(ref_loss) and np.all(np.isfinite(ref_grads))
    assert loss == pytest.approx(ref_loss, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(grads, ref_grads, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_against_float64(name, backend, modules):
    case = CASES[name]
    for data in (case.ordinary(np.random.default_rng(3)), case.edge(np.random.default_rng(4))):
        arrays = [data[d.name] for d in case.data]
        want_loss, want = _evaluate(modules(name, backend), backend, case.point, arrays)
        loss, grads = _evaluate(
            modules(name, backend, "float32"), backend, case.point, arrays, "float32"
        )
        assert np.isfinite(loss) and np.all(np.isfinite(grads))
        scale = float(np.sum(np.abs(case.value(case.point, data)))) + 1.0
        assert loss == pytest.approx(want_loss, rel=1e-5, abs=1e-6 * scale)
        gscale = [float(np.sum(np.abs(g))) + 1.0 for g in case.grads(case.point, data)]
        for g, w, s in zip(grads, want, gscale, strict=True):
            assert g == pytest.approx(w, rel=1e-5, abs=1e-5 * s)


# -- the rewrites -------------------------------------------------------------------------
r, z, p, u, mu = sp.symbols("r z p u mu", real=True)
xr, tr, yr, ar, br, cr = sp.symbols("x t y a b c", real=True)
S = symgen.sigmoid


def _max_shift(*zs):
    """The max-shifted log-sum-exp of ``zs``, as stable.py writes it."""
    m = stop_gradient(sp.Max(*zs))
    return m + sp.log(sp.Add(*[sp.exp(v - m) for v in zs]))


REWRITES = [
    # 0*log(0) = 0
    (xr * sp.log(xr), xlogy(xr, xr)),
    (tr * sp.log(tr / p), xlogy(tr, tr) - xlogy(tr, p)),
    (tr * sp.log(tr) - tr * sp.log(p), xlogy(tr, tr) - tr * sp.log(p)),
    (tr * (sp.log(tr) - sp.log(p)), xlogy(tr, tr) - tr * sp.log(p)),
    (yr * sp.log(yr / sp.exp(z)), xlogy(yr, yr) - yr * z),
    (yr * sp.log(yr / mu), xlogy(yr, yr) - xlogy(yr, mu)),
    ((1 - tr) * sp.log((1 - tr) / (1 - p)), xlogy(1 - tr, 1 - tr) - xlogy(1 - tr, 1 - p)),
    (tr * sp.log(tr / S(z)), xlogy(tr, tr) + tr * softplus(-z)),
    (-ar * u * sp.log(ar * u), -xlogy(ar * u, ar * u)),
    (xlogy(tr, S(z)), -tr * softplus(-z)),
    # log-sum-exp
    (sp.log(sp.exp(ar) + sp.exp(br)), logaddexp(ar, br)),
    (sp.log(sp.exp(ar) + sp.exp(br) + sp.exp(cr)), _max_shift(ar, br, cr)),
    (-sp.log(sp.exp(ar) / (sp.exp(ar) + sp.exp(br))), logaddexp(ar, br) - ar),
    (-sp.log(sp.exp(ar) / (sp.exp(ar) + sp.exp(br) + sp.exp(cr))), _max_shift(ar, br, cr) - ar),
    (sp.log(1 + sp.exp(z)), softplus(z)),
    (sp.log(2 + sp.exp(z)), sp.log(2) + softplus(z - sp.log(2))),
    (sp.log(sp.exp(z) / (1 + sp.exp(z))), z - softplus(z)),
    # a ratio of exponentials (a softmax written out): exp(a - LSE)
    (sp.exp(ar) / (sp.exp(ar) + sp.exp(br)), sp.exp(ar - logaddexp(ar, br))),
    (sp.exp(ar) / (sp.exp(ar) + sp.exp(br) + sp.exp(cr)), sp.exp(ar - _max_shift(ar, br, cr))),
    (sp.exp(z) / (1 + sp.exp(z)), sp.exp(z - softplus(z))),
    (1 / (sp.exp(ar) + sp.exp(br)), sp.exp(-logaddexp(ar, br))),
    # log cosh, log1mexp, expm1, log1p
    (sp.log(sp.cosh(r)), logcosh(r)),
    (sp.log(3 * sp.cosh(r)), sp.log(3) + logcosh(r)),
    (sp.log(1 - sp.exp(-xr)), log1mexp(xr)),
    (sp.log(1 - sp.exp(xr)), log1mexp(-xr)),
    (sp.log(sp.exp(xr) - 1), xr + log1mexp(xr)),
    (sp.log(sp.exp(ar) - sp.exp(br)), ar + log1mexp(ar - br)),
    (sp.exp(xr) - 1, expm1(xr)),
    (sp.log(1 + xr**2), log1p(xr**2)),
    # the logistic forms, as before
    (sp.log(S(z)), -softplus(-z)),
    (sp.log(1 - S(z)), -softplus(z)),
    (-(yr * sp.log(S(z)) + (1 - yr) * sp.log(1 - S(z))), softplus(z) - yr * z),
    (-(S(z) * sp.log(S(z)) + (1 - S(z)) * sp.log(1 - S(z))), softplus(z) - z * S(z)),
]


@pytest.mark.parametrize(("written", "stable"), REWRITES, ids=[str(w) for w, _ in REWRITES])
def test_each_form_is_rewritten(written, stable):
    assert sp.expand(stabilize(written) - stable) == 0, stabilize(written)


def test_cross_entropy_keeps_its_argument_whole():
    """softplus(z) - t*z with z a sum (X w + b): t multiplies z itself, so z is computed once
    and the loss pass has one product, not t*x + t*b."""
    x, b = sp.symbols("x b", real=True)
    logit = x + b
    written = -(tr * sp.log(S(logit)) + (1 - tr) * sp.log(1 - S(logit)))
    stable = stabilize(written)
    assert sp.expand(stable - (softplus(logit) - tr * logit)) == 0
    assert sp.Mul(tr, logit, evaluate=False) in {-t for t in sp.Add.make_args(stable)}


UNCHANGED = [
    sp.log(xr),
    sp.log(xr + 2),
    sp.log(xr**2),
    sp.log(xr * yr),
    tr * sp.log(p),
    mu - yr * sp.log(mu),
    xr**2 * sp.log(yr),
    sp.exp(xr) + 1,
    sp.exp(xr) - 2,
    sp.log(sp.cosh(r) - 1),
    sp.log(-sp.exp(xr)),
    sp.sqrt(1 + xr**2),
    xlogy(tr, p),
    xlogy(tr, tr * S(z)),
    sp.exp(xr) / (xr + sp.exp(yr)),
    tr / (2 + sp.exp(xr)),
]


@pytest.mark.parametrize("written", UNCHANGED, ids=str)
def test_other_forms_stay_as_written(written):
    assert stabilize(written) == written


def test_stop_gradient_passes_the_value_and_stops_the_derivative():
    assert stop_gradient(2) == 2 and stop_gradient(stop_gradient(xr)) == stop_gradient(xr)
    assert sp.diff(xr + stop_gradient(xr**2 - xr), xr) == 1
    W = sp.MatrixSymbol("W", 3, 2)
    assert symgen.stop_gradient(W).shape == (3, 2)  # elementwise on a matrix


# -- scalar problems: the Python spellings ----------------------------------------------------
SCALAR = symgen.Problem(
    sp.log(sp.exp(a) + sp.exp(b) + sp.exp(c))
    + sp.log(sp.cosh(a - b))
    + sp.log(1 - sp.exp(-(c**2)))
    + sp.log(sp.exp(b**2) - 1),
    params=[a, b, c],
    name="scalar_forms",
)


def _scalar_closed_form(a, b, c):
    value = (
        special.logsumexp([a, b, c]) + _logcosh(a - b) + _log1mexp(c * c) + b * b + _log1mexp(b * b)
    )
    soft = special.softmax([a, b, c])
    grads = soft + np.tanh(a - b) * np.array([1.0, -1.0, 0.0])
    grads[2] += 2 * c * np.exp(-c * c) / -np.expm1(-c * c)
    grads[1] += 2 * b + 2 * b * np.exp(-b * b) / -np.expm1(-b * b)
    return float(value), grads


def test_scalar_problem_at_ordinary_points_and_at_1000():
    module = symgen.compile(SCALAR)

    def naive(a, b, c):
        return (
            anp.log(anp.exp(a) + anp.exp(b) + anp.exp(c))
            + anp.log(anp.cosh(a - b))
            + anp.log(1 - anp.exp(-(c**2)))
            + anp.log(anp.exp(b**2) - 1)
        )

    point = (0.3, -0.8, 1.2)
    loss, grads = module.loss_and_grad(*point)
    assert loss == pytest.approx(float(naive(*point)), rel=1e-12)
    want = [autograd.grad(naive, i)(*point) for i in range(3)]
    np.testing.assert_allclose(grads, want, rtol=1e-10)
    np.testing.assert_allclose(grads, central_differences(module.loss, point), rtol=1e-7)
    for point in [(1000.0, -1000.0, 0.5), (-1000.0, 999.0, 1e-5), (0.0, 30.0, 40.0)]:
        loss, grads = module.loss_and_grad(*point)
        want_loss, want = _scalar_closed_form(*point)
        assert np.isfinite(loss) and np.all(np.isfinite(grads))
        assert loss == pytest.approx(want_loss, rel=1e-12)
        np.testing.assert_allclose(grads, want, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scalar_softmax_written_out_at_1000(backend):
    """``exp(a)/(exp(a) + exp(b) + exp(c))`` over scalars: finite and exact at |z| = 1000
    (the naive form is inf/inf), against scipy's softmax and autograd."""
    if not _backend_available(backend):
        pytest.skip(f"no compiler for the {backend} backend")
    ratio = sp.exp(a) / (sp.exp(a) + sp.exp(b) + sp.exp(c))
    module = symgen.compile(symgen.Problem(ratio, [a, b, c], name="softmax_ratio"), backend)

    def naive(a, b, c):
        return anp.exp(a) / (anp.exp(a) + anp.exp(b) + anp.exp(c))

    point = (0.3, -0.8, 1.2)
    loss, grads = module.loss_and_grad(*point)
    assert loss == pytest.approx(float(naive(*point)), rel=1e-12)
    want = [autograd.grad(naive, i)(*point) for i in range(3)]
    np.testing.assert_allclose(grads, want, rtol=1e-10)
    np.testing.assert_allclose(grads, central_differences(module.loss, point), rtol=1e-7)
    for point in [(1000.0, -1000.0, 0.5), (-1000.0, 999.0, 1000.0), (1000.0, 1000.0, -3.0)]:
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            loss, grads = module.loss_and_grad(*point)
        soft = special.softmax(point)
        assert loss == pytest.approx(soft[0], rel=1e-12, abs=1e-300)
        np.testing.assert_allclose(grads, soft[0] * (np.eye(3)[0] - soft), rtol=1e-10, atol=1e-300)


def test_scalar_xlogy_and_stop_gradient():
    entropy = symgen.compile(
        symgen.Problem(a * sp.log(a) + b * sp.log(b / c), params=[a, b, c], name="scalar_xlogy")
    )
    assert entropy.loss(0.0, 0.0, 2.0) == 0.0  # 0*log(0) = 0; the gradient there is -inf
    point = (0.4, 1.7, 0.6)
    loss, grads = entropy.loss_and_grad(*point)
    assert loss == pytest.approx(float(special.xlogy(0.4, 0.4) + special.rel_entr(1.7, 0.6)))
    want = [np.log(0.4) + 1, np.log(1.7 / 0.6) + 1, -1.7 / 0.6]
    np.testing.assert_allclose(grads, want, rtol=1e-12)
    np.testing.assert_allclose(grads, central_differences(entropy.loss, point), rtol=1e-7)
    clamp = symgen.compile(
        symgen.Problem(
            (a + symgen.stop_gradient(sp.Min(sp.Max(a, -1), 1) - a) - 3) ** 2,
            params=[a],
            name="scalar_clamp",
        )
    )
    loss, (grad,) = clamp.loss_and_grad(5.0)
    assert (loss, grad) == (4.0, -4.0)  # the clamped value, the identity's gradient


# -- matrix problems: the forms inside elementwise expressions ---------------------------------
M, K, N = sp.symbols("M K N", integer=True, positive=True)
X, T = sp.MatrixSymbol("X", M, K), sp.MatrixSymbol("T", M, N)
W = sp.MatrixSymbol("W", K, N)
W1, W2, W3 = (sp.MatrixSymbol(f"W{i}", K, 1) for i in (1, 2, 3))


def _clip_matrix(m):
    return symgen.elementwise(lambda v: sp.Min(sp.Max(v, -1), 1), m)


@dataclass(frozen=True)
class MatrixCase:
    loss: sp.Expr
    params: tuple
    data: tuple
    value: Callable  # (params, data) -> loss
    grads: Callable  # (params, data) -> one array per parameter
    naive: Callable  # autograd: (*params, *data) -> loss, at ordinary inputs
    central: bool = True


def _rows(p, d):
    return [d["X"] @ w for w in p]


MATRIX_CASES = {
    "matrix_kl": MatrixCase(
        symgen.sum(
            symgen.elementwise(lambda s, q: s * sp.log(s / q) - s + q, T, symgen.square(X * W))
        ),
        (W,),
        (X, T),
        value=lambda p, d: np.sum(special.kl_div(d["T"], (d["X"] @ p[0]) ** 2)),
        grads=lambda p, d: [
            d["X"].T @ ((1 - _xdivy(d["T"], (d["X"] @ p[0]) ** 2)) * 2 * (d["X"] @ p[0]))
        ],
        naive=lambda w, x, s: anp.sum(s * anp.log(s / anp.dot(x, w) ** 2) - s + anp.dot(x, w) ** 2),
    ),
    "matrix_xlogy_sigmoid": MatrixCase(
        symgen.sum(symgen.elementwise(symgen.xlogy, T, symgen.sigmoid(X * W))),
        (W,),
        (X, T),
        value=lambda p, d: np.sum(-d["T"] * _softplus(-(d["X"] @ p[0]))),
        grads=lambda p, d: [d["X"].T @ (d["T"] * special.expit(-(d["X"] @ p[0])))],
        naive=lambda w, x, s: anp.sum(s * anp.log(1 / (1 + anp.exp(-anp.dot(x, w))))),
    ),
    "matrix_logcosh": MatrixCase(
        symgen.sum(symgen.log(symgen.elementwise(sp.cosh, X * W - T))),
        (W,),
        (X, T),
        value=lambda p, d: np.sum(_logcosh(d["X"] @ p[0] - d["T"])),
        grads=lambda p, d: [d["X"].T @ np.tanh(d["X"] @ p[0] - d["T"])],
        naive=lambda w, x, s: anp.sum(anp.log(anp.cosh(anp.dot(x, w) - s))),
    ),
    "matrix_logsumexp": MatrixCase(
        symgen.sum(
            symgen.elementwise(
                lambda u, v, q: sp.log(sp.exp(u) + sp.exp(v) + sp.exp(q)), X * W1, X * W2, X * W3
            )
        ),
        (W1, W2, W3),
        (X,),
        value=lambda p, d: np.sum(special.logsumexp(np.stack(_rows(p, d)), axis=0)),
        grads=lambda p, d: [d["X"].T @ s for s in special.softmax(np.stack(_rows(p, d)), axis=0)],
        naive=lambda w1, w2, w3, x: anp.sum(
            anp.log(anp.exp(anp.dot(x, w1)) + anp.exp(anp.dot(x, w2)) + anp.exp(anp.dot(x, w3)))
        ),
    ),
    "matrix_straight_through": MatrixCase(
        symgen.sum(symgen.square(X * W + symgen.stop_gradient(_clip_matrix(X * W) - X * W) - T)),
        (W,),
        (X, T),
        value=lambda p, d: np.sum((np.clip(d["X"] @ p[0], -1, 1) - d["T"]) ** 2),
        grads=lambda p, d: [d["X"].T @ (2 * (np.clip(d["X"] @ p[0], -1, 1) - d["T"]))],
        naive=lambda w, x, s: anp.sum(
            (anp.dot(x, w) + _stopped(_clip(anp.dot(x, w)) - anp.dot(x, w)) - s) ** 2
        ),
        central=False,
    ),
}


def _matrix_inputs(case, rng, edge):
    """Parameters and data; at the edge, products X*W of +-1000 and (KL) zero targets where
    a row of X is 0."""
    shapes = {"X": (9, 3), "T": (9, 2), "W": (3, 2), "W1": (3, 1), "W2": (3, 1), "W3": (3, 1)}
    params = [
        rng.uniform(0.2, 1.0, shapes[s.name]) * rng.choice([-1, 1], shapes[s.name])
        for s in case.params
    ]
    data = {"X": rng.uniform(-2, 2, shapes["X"]), "T": rng.uniform(0.1, 2, shapes["T"])}
    if edge:
        data["X"][:3] *= 1000.0 / np.abs(data["X"][:3] @ params[0]).max(axis=1, keepdims=True)
        data["X"][3] = 0.0
        data["T"][3:5] = 0.0
    return params, {s.name: data[s.name] for s in case.data}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(MATRIX_CASES))
def test_matrix_forms(name, backend):
    case = MATRIX_CASES[name]
    problem = symgen.Problem(case.loss, params=list(case.params), data=list(case.data), name=name)
    module = _module(problem, backend)
    rng = np.random.default_rng(11)
    params, data = _matrix_inputs(case, rng, edge=False)
    arrays = list(data.values())

    def run(ps, dtype="float64", mod=module):
        ps = [np.asarray(q, dtype=dtype) for q in ps]
        xs = [np.asarray(v, dtype=dtype) for v in arrays]
        if backend == "cuda":
            from symgen.testing import fakecupy

            ps, xs = [fakecupy.asarray(q) for q in ps], [fakecupy.asarray(v) for v in xs]
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            loss, grads = mod.loss_and_grad(*ps, *xs)
        return float(loss), [np.asarray(g.get() if hasattr(g, "get") else g) for g in grads]

    loss, grads = run(params)
    assert loss == pytest.approx(float(case.naive(*params, *arrays)), rel=1e-7)
    for i, g in enumerate(grads):
        want = autograd.grad(case.naive, i)(*params, *arrays)
        np.testing.assert_allclose(g, want, rtol=1e-7, atol=1e-12)
        if case.central:
            flat = params[i].ravel()

            def entry_loss(*entries, i=i):
                changed = list(params)
                changed[i] = np.array(entries).reshape(params[i].shape)
                return run(changed)[0]

            np.testing.assert_allclose(g.ravel(), central_differences(entry_loss, flat), rtol=1e-7)
    params, data = _matrix_inputs(case, rng, edge=True)
    arrays = list(data.values())
    loss, grads = run(params)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads)
    assert loss == pytest.approx(float(case.value(params, data)), rel=1e-9)
    for g, want in zip(grads, case.grads(params, data), strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-9)
    float32 = _module(
        symgen.Problem(
            case.loss, params=list(case.params), data=list(case.data), dtype="float32", name=name
        ),
        backend,
    )
    loss32, grads32 = run(params, "float32", float32)
    assert loss32 == pytest.approx(loss, rel=1e-5)
    for g32, g in zip(grads32, grads, strict=True):
        np.testing.assert_allclose(g32, g, rtol=1e-4, atol=1e-5 * np.abs(g).max())


# -- symgen show and symgen diff ----------------------------------------------------------------
def test_show_prints_stop_gradient(tmp_path, capsys):
    spec = tmp_path / "clamp.py"
    spec.write_text(
        "import sympy as sp\nimport symgen\n"
        'a, x, y = sp.symbols("a x y")\n'
        "z = a*x\n"
        "SPEC = symgen.Problem((z + symgen.stop_gradient(sp.Min(sp.Max(z, -1), 1) - z) - y)**2,"
        " params=[a], data=[x, y])\n"
    )
    assert main(["show", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "ℓ = (a*x - y + stop_gradient(-a*x + Min(1, Max(-1, a*x))))**2" in out
    assert "∂ℓ/∂a = 2*x*(a*x - y + stop_gradient(-a*x + Min(1, Max(-1, a*x))))" in out


@pytest.mark.parametrize(
    ("expr", "wrt", "at", "expected"),
    [
        # --at evaluates with mpmath's arbitrary precision: right at |z| = 1000
        ("log(exp(x) + exp(y) + exp(z))", "x", ["x=1000", "y=0", "z=999"], "0.7310585786300049"),
        ("log(cosh(x))", "x", ["x=-1000"], "-1"),
        ("log(1 - exp(-x))", "x", ["x=1000"], "0"),
        ("log(1 - exp(-x))", "x", ["x=1e-10"], "9999999999.5"),
        ("log(exp(x) - 1)", "x", ["x=1000"], "1"),
        # xlogy and the 0*log(0) convention
        ("xlogy(t, p)", "p", [], "xdivy(t, p)"),
        ("xlogy(t, p)", "p", ["t=0", "p=0"], "0"),
        ("t*log(t/p)", "p", ["t=0", "p=3"], "0"),
        ("stop_gradient(x**2) + x", "x", [], "1"),
    ],
)
def test_diff_of_the_stable_forms(capsys, expr, wrt, at, expected):
    argv = ["diff", expr, "--wrt", wrt] + [a for p in at for a in ("--at", p)]
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == expected
