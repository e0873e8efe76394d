"""W4: the curve-fit loss and its six partials in one call, over N float64 samples.

Per-sample loss (exp(-a t) sin(b t + c) + d t² + e t + g - y)², averaged over samples;
problem and data are ``examples/curve_fit.py``'s ``curve_fit`` and ``synthetic()``.
Every contender returns ``(loss, six partials)``. The timed statement sees the
parameters as ``p`` (a tuple of floats) and ``pa`` (a float64 array), the data as ``t``
and ``y``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

import symgen
from examples.curve_fit import START, TRUE, curve_fit, synthetic

from .correctness import check_against
from .timing import Contender

REFERENCE = "hand-written NumPy (expert)"
SYMGEN = "symgen `loss_and_grad` (generated)"
#: Parameter vectors where all contenders must agree before timing (START is timed).
CHECKS = [START, TRUE, (0.2, 1.0, -1.0, 0.3, 0.1, -0.5)]


def title(n: int) -> str:
    return f"W4 — curve fit, N = {n:,}"


def description(n: int) -> str:
    return (
        f"Loss and all six partials in one call, mean over N = {n:,} float64 samples of "
        "(exp(-a t) sin(b t + c) + d t² + e t + g - y)², at `examples/curve_fit.py`'s "
        f"START with its `synthetic({n})` data. Reference: {REFERENCE}."
    )


def bindings(params, t, y) -> dict:
    return {"p": tuple(params), "pa": np.array(params, dtype=np.float64), "t": t, "y": y}


def loss_and_grad_numpy(p, t, y):
    """An expert's NumPy: exp, sin, cos and the residual once each, in place; sums by np.dot."""
    return _loss_and_grad(p, t, y, *(np.empty_like(t) for _ in range(4)))


_WORKSPACES: dict[int, np.ndarray] = {}


def loss_and_grad_numpy_workspace(p, t, y):
    """The same, writing into four buffers kept between calls (not thread-safe)."""
    n = t.shape[0]
    if n not in _WORKSPACES:
        _WORKSPACES[n] = np.empty((4, n))
    return _loss_and_grad(p, t, y, *_WORKSPACES[n])


def _loss_and_grad(p, t, y, decay, phase, dsin, r):
    a, b, c, d, e, g = p
    n = t.shape[0]
    np.multiply(t, -a, out=decay)
    np.exp(decay, out=decay)  # exp(-a t)
    np.multiply(t, b, out=phase)
    phase += c
    np.sin(phase, out=dsin)
    dcos = np.cos(phase, out=phase)
    dsin *= decay  # exp(-a t) sin(b t + c)
    dcos *= decay  # exp(-a t) cos(b t + c)
    np.multiply(t, d, out=r)  # residual: (d t + e) t + g + exp(-a t) sin(b t + c) - y
    r += e
    r *= t
    r += g
    r += dsin
    r -= y
    rt = np.multiply(r, t, out=decay)
    k = 2.0 / n
    return float(np.dot(r, r)) / n, (
        -k * float(np.dot(rt, dsin)),
        k * float(np.dot(rt, dcos)),
        k * float(np.dot(r, dcos)),
        k * float(np.dot(rt, t)),
        k * float(np.dot(r, t)),
        k * float(r.sum()),
    )


def contenders(t: np.ndarray, y: np.ndarray) -> list[Contender]:
    generated = symgen.compile(curve_fit)
    out = [
        Contender(
            SYMGEN,
            "loss_and_grad(*p, t=t, y=y)",
            {"loss_and_grad": generated.loss_and_grad},
            note="`symgen.compile(examples.curve_fit.curve_fit)`",
        ),
        Contender(
            REFERENCE,
            "loss_and_grad(p, t, y)",
            {"loss_and_grad": loss_and_grad_numpy},
            note="reference; exp/sin/cos/residual once, in place in 4 fresh arrays, `np.dot` sums",
        ),
        Contender(
            "hand-written NumPy, buffers kept between calls",
            "loss_and_grad(p, t, y)",
            {"loss_and_grad": loss_and_grad_numpy_workspace},
            note="extra: the reference writing into 4 arrays allocated once (a stateful API)",
        ),
        _autograd(),
    ]
    out += _lambdify()
    for c in out:
        c.namespace.update(bindings(START, t, y))
    return out


def _autograd() -> Contender:
    name = "autograd `value_and_grad`"
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError as exc:
        return Contender(name, missing=f"not installed ({exc})")

    def loss(p, t, y):
        a, b, c, d, e, g = p[0], p[1], p[2], p[3], p[4], p[5]
        r = anp.exp(-a * t) * anp.sin(b * t + c) + d * t**2 + e * t + g - y
        return anp.mean(r**2)

    return Contender(
        name,
        "value_and_grad(pa, t, y)",
        {"value_and_grad": autograd.value_and_grad(loss)},
        note="`autograd.numpy`, gradient over the 6-vector of parameters",
    )


def _lambdify() -> list[Contender]:
    params, data = curve_fit.params, curve_fit.data
    per_sample = curve_fit.loss
    diffs = [sp.diff(per_sample, s) for s in params]
    args = (*params, *data)
    separate = [sp.lambdify(args, expr, modules="numpy") for expr in (per_sample, *diffs)]

    def naive(p, t, y):
        loss, *grads = [np.mean(f(*p, t, y)) for f in separate]
        return loss, grads

    together = sp.lambdify(args, [per_sample, *diffs], modules="numpy", cse=True)

    def with_cse(p, t, y):
        loss, *grads = [np.mean(v) for v in together(*p, t, y)]
        return loss, grads

    return [
        Contender(
            "SymPy `lambdify`, loss and 6 diffs separately",
            "loss_and_grad(p, t, y)",
            {"loss_and_grad": naive},
            note="seven per-sample functions, each averaged with `np.mean`; no shared work",
        ),
        Contender(
            "SymPy `lambdify(cse=True)` of the 7 expressions",
            "loss_and_grad(p, t, y)",
            {"loss_and_grad": with_cse},
            note="one function, SymPy's CSE; each output averaged with `np.mean`",
        ),
    ]


def check(contenders: list[Contender], t: np.ndarray, y: np.ndarray) -> None:
    symgen_contender = next(c for c in contenders if c.name == SYMGEN)
    for params in CHECKS:
        check_against(
            symgen_contender,
            contenders,
            bindings(params, t, y),
            where=f"(a, b, c, d, e, g) = {params}, N = {t.shape[0]:,}",
            second="gradient",
        )


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    return synthetic(n)
