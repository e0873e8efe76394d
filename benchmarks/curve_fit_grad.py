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

from . import frameworks
from .correctness import check_against
from .machine import version
from .timing import Contender

REFERENCE = "hand-written NumPy (expert)"
SYMGEN = "symgen `loss_and_grad` (generated)"
SYMGEN_C = "symgen `loss_and_grad`, C backend (generated)"
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
    """NumPy names, and JAX (``jpa``, ``jt``, ``jy``) and PyTorch (``tp``, ``tt``, ``ty``) ones."""
    pa = np.array(params, dtype=np.float64)
    return {
        "p": tuple(params),
        "pa": pa,
        "t": t,
        "y": y,
        **frameworks.shared_arrays({"pa": pa}, cache=False),
        **frameworks.shared_arrays({"t": t, "y": y}),
    }


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


def contenders(t: np.ndarray, y: np.ndarray, only: int | None = None) -> list[Contender]:
    """Every contender (or only the ``only``-th of ``BUILDERS``), bound to START, t, y."""
    chosen = BUILDERS if only is None else [BUILDERS[only]]
    out = [build(t, y) for build in chosen]
    for c in out:
        c.namespace.update(bindings(START, t, y))
    return out


def _symgen(t, y) -> Contender:
    return Contender(
        SYMGEN,
        "loss_and_grad(*p, t=t, y=y)",
        {"loss_and_grad": symgen.compile(curve_fit).loss_and_grad},
        note="`symgen.compile(examples.curve_fit.curve_fit)`",
    )


def _symgen_c(t, y) -> Contender:
    return frameworks.symgen_c_contender(
        SYMGEN_C,
        curve_fit,
        "examples.curve_fit.curve_fit",
        "loss_and_grad(*p, t=t, y=y)",
        "one vectorised loop over the samples",
    )


def _reference(t, y) -> Contender:
    return Contender(
        REFERENCE,
        "loss_and_grad(p, t, y)",
        {"loss_and_grad": loss_and_grad_numpy},
        note="reference; exp/sin/cos/residual once, in place in 4 fresh arrays, `np.dot` sums",
    )


def _workspace(t, y) -> Contender:
    return Contender(
        "hand-written NumPy, buffers kept between calls",
        "loss_and_grad(p, t, y)",
        {"loss_and_grad": loss_and_grad_numpy_workspace},
        note="extra: the reference writing into 4 arrays allocated once (a stateful API)",
    )


def _autograd(t, y) -> Contender:
    name = "autograd `value_and_grad`"
    loaded = frameworks.load_autograd()
    if isinstance(loaded, str):
        return Contender(name, missing=loaded)
    autograd, anp = loaded

    def loss(p, t, y):
        return _loss(anp, p[0], p[1], p[2], p[3], p[4], p[5], t, y)

    return Contender(
        name,
        "value_and_grad(pa, t, y)",
        {"value_and_grad": autograd.value_and_grad(loss)},
        note="`autograd.numpy`, gradient over the 6-vector of parameters",
    )


def _loss(np_, a, b, c, d, e, g, t, y):
    r = np_.exp(-a * t) * np_.sin(b * t + c) + d * t**2 + e * t + g - y
    return np_.mean(r * r)


def _jax(t, y) -> Contender:
    name = "JAX `jit(value_and_grad)`, CPU"
    jax = frameworks.load_jax()
    if isinstance(jax, str):
        return Contender(name, missing=jax)
    import jax.numpy as jnp

    def loss(p, t, y):
        return _loss(jnp, p[0], p[1], p[2], p[3], p[4], p[5], t, y)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    b = bindings(START, t, y)
    frameworks.block(value_and_grad(b["jpa"], b["jt"], b["jy"]))  # compile now
    return Contender(
        name,
        "block(value_and_grad(jpa, jt, jy))",
        {"value_and_grad": value_and_grad, "block": frameworks.block},
        note=f"jax {version('jax')}, float64; data as JAX arrays, compiled before timing, "
        "`block_until_ready`",
    )


def _torch_loss(p, t, y):
    a, b, c, d, e, g = p.unbind()
    import torch

    return _loss(torch, a, b, c, d, e, g, t, y)


def _torch_loss_and_grad(loss):
    import torch

    def loss_and_grad(p, t, y):
        p = p.detach().requires_grad_()
        value = loss(p, t, y)
        return value.detach(), torch.autograd.grad(value, (p,))[0]

    return loss_and_grad


def _torch(t, y) -> Contender:
    name = "PyTorch eager, `autograd.grad`"
    torch = frameworks.load_torch()
    if isinstance(torch, str):
        return Contender(name, missing=torch)
    return Contender(
        name,
        "loss_and_grad(tpa, tt, ty)",
        {"loss_and_grad": _torch_loss_and_grad(_torch_loss)},
        note=f"torch {version('torch')}, 1 thread; a 6-vector of parameters, tensors sharing "
        "the NumPy arrays' memory",
    )


def _torch_compile(t, y) -> Contender:
    name = "PyTorch `torch.compile`, `autograd.grad`"
    torch = frameworks.load_torch()
    if isinstance(torch, str):
        return Contender(name, missing=torch)
    b = bindings(START, t, y)
    built = frameworks.torch_compile(
        _torch_loss, lambda fn: _torch_loss_and_grad(fn)(b["tpa"], b["tt"], b["ty"])
    )
    if isinstance(built, str):
        return Contender(name, missing=built)
    compiled, note = built
    return Contender(
        name,
        "loss_and_grad(tpa, tt, ty)",
        {"loss_and_grad": _torch_loss_and_grad(compiled)},
        note=f"{note}; the loss compiled, its backward by AOTAutograd",
    )


def _pytensor(mode):
    def build(t, y) -> Contender:
        name = frameworks.PYTENSOR_MODES[mode]
        pytensor = frameworks.load_pytensor()
        if isinstance(pytensor, str):
            return Contender(name, missing=pytensor)
        import pytensor.tensor as pt

        params = pt.dscalars("a", "b", "c", "d", "e", "g")
        tv, yv = pt.dvector("t"), pt.dvector("y")
        loss = _loss(pt, *params, tv, yv)
        built = frameworks.pytensor_function(
            [*params, tv, yv], [loss, *pytensor.grad(loss, params)], mode
        )
        if isinstance(built, str):
            return Contender(name, missing=built)
        fn, note = built

        def loss_and_grad(p, t, y):
            loss, *grads = fn(*p, t, y)
            return loss, grads

        return Contender(
            name,
            "loss_and_grad(p, t, y)",
            {"loss_and_grad": loss_and_grad},
            note=f"{note}; `function([a..g, t, y], [loss, *grad(loss, [a..g])])`",
        )

    return build


def _lambdify_parts():
    params, data = curve_fit.params, curve_fit.data
    per_sample = curve_fit.loss
    diffs = [sp.diff(per_sample, s) for s in params]
    return (*params, *data), per_sample, diffs


def _lambdify_naive(t, y) -> Contender:
    args, per_sample, diffs = _lambdify_parts()
    separate = [sp.lambdify(args, expr, modules="numpy") for expr in (per_sample, *diffs)]

    def naive(p, t, y):
        loss, *grads = [np.mean(f(*p, t, y)) for f in separate]
        return loss, grads

    return Contender(
        "SymPy `lambdify`, loss and 6 diffs separately",
        "loss_and_grad(p, t, y)",
        {"loss_and_grad": naive},
        note="seven per-sample functions, each averaged with `np.mean`; no shared work",
    )


def _lambdify_cse(t, y) -> Contender:
    args, per_sample, diffs = _lambdify_parts()
    together = sp.lambdify(args, [per_sample, *diffs], modules="numpy", cse=True)

    def with_cse(p, t, y):
        loss, *grads = [np.mean(v) for v in together(*p, t, y)]
        return loss, grads

    return Contender(
        "SymPy `lambdify(cse=True)` of the 7 expressions",
        "loss_and_grad(p, t, y)",
        {"loss_and_grad": with_cse},
        note="one function, SymPy's CSE; each output averaged with `np.mean`",
    )


#: How to build each contender from (t, y); the memory benchmark builds one per process.
BUILDERS = [
    _symgen,
    _symgen_c,
    _reference,
    _workspace,
    _autograd,
    _jax,
    _torch,
    _torch_compile,
    _pytensor(None),
    _pytensor("CVM"),
    _lambdify_naive,
    _lambdify_cse,
]


#: Above this N only START is checked (the other points are checked at the smaller sizes):
#: the slowest contenders take seconds per call there.
CHECK_ALL_UP_TO = 1_000_000


def check(contenders: list[Contender], t: np.ndarray, y: np.ndarray) -> None:
    symgen_contender = next(c for c in contenders if c.name == SYMGEN)
    for params in CHECKS if t.shape[0] <= CHECK_ALL_UP_TO else CHECKS[:1]:
        check_against(
            symgen_contender,
            contenders,
            bindings(params, t, y),
            where=f"(a, b, c, d, e, g) = {params}, N = {t.shape[0]:,}",
            second="gradient",
        )


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    return synthetic(n)
