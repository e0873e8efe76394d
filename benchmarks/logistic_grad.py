"""W2: logistic regression, loss and gradient in one call, N samples of D float64 features.

The problem is ``examples/logistic.py``'s ``logistic``: the loss written naively as
``-sum(log(p t + (1 - p)(1 - t)))`` with ``p = sigmoid(X w)``, which symgen evaluates in a
stable form. For 0/1 targets that equals the cross-entropy
``sum(softplus(-z) t + softplus(z) (1 - t))`` with ``z = X w``, which every other contender
computes stably; its gradient is ``X.T (sigmoid(z) - t)``. Every contender returns
``(loss, (gradient,))``; the timed statement sees ``w``, ``X``, ``t`` (NumPy), and the same
as JAX arrays ``jw``, ``jX``, ``jt``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

import symgen
from examples.logistic import large, logistic

from . import frameworks
from .correctness import check_against
from .machine import version
from .timing import Contender

REFERENCE = "hand-written NumPy (expert)"
SYMGEN = "symgen `loss_and_grad` (generated)"
SYMGEN_CE = "symgen `loss_and_grad`, cross-entropy spelling"
SYMGEN_C = "symgen `loss_and_grad`, C backend (generated)"
N, D = 1_000_000, 16


def title() -> str:
    return f"W2 — logistic regression, N = {N:,}, D = {D}"


def description() -> str:
    return (
        f"Loss and gradient in one call, `loss_and_grad(w, X, t)`, for `examples/logistic.py`'s "
        f"naive loss -Σ log(p t + (1 - p)(1 - t)), p = sigmoid(X w), on its `large()` data "
        f"(N = {N:,} samples, D = {D} features, float64, 0/1 targets), at a fixed w with "
        f"standard deviation 0.25 (z = X w has standard deviation about 1). Reference: "
        f"{REFERENCE}."
    )


def data() -> tuple[np.ndarray, np.ndarray]:
    return large(N, D)


def weights(scale: float, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((D, 1)) * scale


#: Weights where all contenders must agree before timing (the first is timed): z = X w
#: with standard deviation about 1, 0 (w = 0) and about 4 (moderate: no overflow anywhere).
CHECKS = [(0.25, 1), (0.0, 1), (1.0, 2)]


def loss_and_grad_numpy(w, X, t):
    """An expert's NumPy: z once, the loss as Σ softplus(z) - t·z, sigmoid via tanh in place.

    softplus(-z) t + softplus(z) (1 - t) = softplus(z) - t z, so one ``logaddexp`` suffices;
    sigmoid(z) = (1 + tanh(z / 2)) / 2 never overflows.
    """
    z = X @ w
    loss = float(np.logaddexp(0.0, z).sum()) - float(np.vdot(t, z))
    r = np.multiply(z, 0.5)
    np.tanh(r, out=r)
    r *= 0.5
    r += 0.5
    r -= t  # sigmoid(z) - t
    return loss, (X.T @ r,)


def loss_and_grad_numpy_literal(w, X, t):
    """The cross-entropy as the brief writes it: two ``logaddexp``, then the tanh sigmoid."""
    z = X @ w
    loss = float(np.sum(np.logaddexp(0.0, -z) * t + np.logaddexp(0.0, z) * (1.0 - t)))
    r = 0.5 * np.tanh(0.5 * z) + 0.5 - t
    return loss, (X.T @ r,)


def cross_entropy_problem() -> symgen.Problem:
    """The same loss spelled as the cross-entropy, t log p + (1 - t) log(1 - p)."""
    from examples.logistic import X as Xs
    from examples.logistic import t as ts
    from examples.logistic import w as ws

    p = symgen.sigmoid(Xs * ws)
    per_sample = symgen.elementwise(lambda p, t: t * sp.log(p) + (1 - t) * sp.log(1 - p), p, ts)
    return symgen.Problem(
        -symgen.sum(per_sample), params=[ws], data=[Xs, ts], name="logistic_cross_entropy"
    )


def _symgen_c() -> Contender:
    return frameworks.symgen_c_contender(
        SYMGEN_C,
        logistic,
        "examples.logistic.logistic",
        "loss_and_grad(w, X, t)",
        "the example's spelling; X @ w and X.T @ r inside the pass over the rows of X",
    )


def contenders(X: np.ndarray, t: np.ndarray) -> list[Contender]:
    generated = symgen.compile(logistic)
    out = [
        Contender(
            SYMGEN,
            "loss_and_grad(w, X, t)",
            {"loss_and_grad": generated.loss_and_grad},
            note="`symgen.compile(examples.logistic.logistic)`: the example's mixture spelling "
            "log(p t + (1 - p)(1 - t))",
        ),
        Contender(
            SYMGEN_CE,
            "loss_and_grad(w, X, t)",
            {"loss_and_grad": symgen.compile(cross_entropy_problem()).loss_and_grad},
            note="`symgen.Problem` of -Σ t log p + (1 - t) log(1 - p), same data; equal to "
            "the mixture for 0/1 targets",
        ),
        _symgen_c(),
        Contender(
            REFERENCE,
            "loss_and_grad(w, X, t)",
            {"loss_and_grad": loss_and_grad_numpy},
            note="reference; Σ softplus(z) - t·z (one `logaddexp`), sigmoid(z) - t by "
            "`tanh` in place, `X.T @ r`",
        ),
        Contender(
            "hand-written NumPy, two `logaddexp`",
            "loss_and_grad(w, X, t)",
            {"loss_and_grad": loss_and_grad_numpy_literal},
            note="extra: Σ softplus(-z) t + softplus(z)(1 - t) literally, new arrays throughout",
        ),
        _autograd(),
        _jax(X, t),
        _torch(),
        _torch_compile(X, t),
        _pytensor(None),
        _pytensor("CVM"),
        *frameworks.lambdify_not_applicable(logistic, logistic.params[0]),
    ]
    for c in out:
        c.namespace.update(bindings(weights(*CHECKS[0]), X, t))
    return out


def bindings(w: np.ndarray, X: np.ndarray, t: np.ndarray) -> dict:
    """NumPy names, and the JAX (``jw`` ...) and PyTorch (``tw`` ...) ones."""
    return {
        "w": w,
        "X": X,
        "t": t,
        **frameworks.shared_arrays({"w": w}, cache=False),
        **frameworks.shared_arrays({"X": X, "t": t}),
    }


def _stable_loss(np_, w, X, t):
    z = np_.dot(X, w)
    return np_.sum(np_.logaddexp(0.0, -z) * t + np_.logaddexp(0.0, z) * (1.0 - t))


def _autograd() -> Contender:
    name = "autograd `value_and_grad`"
    loaded = frameworks.load_autograd()
    if isinstance(loaded, str):
        return Contender(name, missing=loaded)
    autograd, anp = loaded

    def loss(w, X, t):
        return _stable_loss(anp, w, X, t)

    return Contender(
        name,
        "value_and_grad(w, X, t)",
        {"value_and_grad": autograd.value_and_grad(loss, argnum=(0,))},
        note="`autograd.numpy`; Σ logaddexp(0, -z) t + logaddexp(0, z)(1 - t)",
    )


def _jax(X: np.ndarray, t: np.ndarray) -> Contender:
    name = "JAX `jit(value_and_grad)`, CPU"
    jax = frameworks.load_jax()
    if isinstance(jax, str):
        return Contender(name, missing=jax)
    import jax.numpy as jnp

    def loss(w, X, t):
        return _stable_loss(jnp, w, X, t)

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0,)))
    b = bindings(weights(*CHECKS[0]), X, t)
    frameworks.block(value_and_grad(b["jw"], b["jX"], b["jt"]))  # compile now, not when timed
    return Contender(
        name,
        "block(value_and_grad(jw, jX, jt))",
        {"value_and_grad": value_and_grad, "block": frameworks.block},
        note=f"jax {version('jax')}, float64, same formula; data as JAX arrays, "
        "compiled before timing, `block_until_ready`",
    )


def _torch_loss(w, X, t):
    import torch

    z = X @ w
    zero = z.new_zeros(())
    return torch.sum(torch.logaddexp(zero, -z) * t + torch.logaddexp(zero, z) * (1.0 - t))


def _torch_loss_and_grad(loss):
    import torch

    def loss_and_grad(w, X, t):
        w = w.detach().requires_grad_()
        value = loss(w, X, t)
        return value.detach(), torch.autograd.grad(value, (w,))

    return loss_and_grad


def _torch() -> Contender:
    name = "PyTorch eager, `autograd.grad`"
    torch = frameworks.load_torch()
    if isinstance(torch, str):
        return Contender(name, missing=torch)
    return Contender(
        name,
        "loss_and_grad(tw, tX, tt)",
        {"loss_and_grad": _torch_loss_and_grad(_torch_loss)},
        note=f"torch {version('torch')}, 1 thread, same formula (`torch.logaddexp`); tensors "
        "sharing the NumPy arrays' memory",
    )


def _torch_compile(X: np.ndarray, t: np.ndarray) -> Contender:
    name = "PyTorch `torch.compile`, `autograd.grad`"
    torch = frameworks.load_torch()
    if isinstance(torch, str):
        return Contender(name, missing=torch)
    b = bindings(weights(*CHECKS[0]), X, t)
    built = frameworks.torch_compile(
        _torch_loss, lambda fn: _torch_loss_and_grad(fn)(b["tw"], b["tX"], b["tt"])
    )
    if isinstance(built, str):
        return Contender(name, missing=built)
    compiled, note = built
    return Contender(
        name,
        "loss_and_grad(tw, tX, tt)",
        {"loss_and_grad": _torch_loss_and_grad(compiled)},
        note=f"{note}; the loss compiled, its backward by AOTAutograd",
    )


def _pytensor(mode) -> Contender:
    name = frameworks.PYTENSOR_MODES[mode]
    pytensor = frameworks.load_pytensor()
    if isinstance(pytensor, str):
        return Contender(name, missing=pytensor)
    import pytensor.tensor as pt

    w, X, t = pt.dmatrix("w"), pt.dmatrix("X"), pt.dmatrix("t")
    z = X @ w
    loss = pt.sum(pt.softplus(-z) * t + pt.softplus(z) * (1.0 - t))
    built = frameworks.pytensor_function([w, X, t], [loss, pytensor.grad(loss, w)], mode)
    if isinstance(built, str):
        return Contender(name, missing=built)
    fn, note = built

    def loss_and_grad(w, X, t):
        loss, grad = fn(w, X, t)
        return loss, (grad,)

    return Contender(
        name,
        "loss_and_grad(w, X, t)",
        {"loss_and_grad": loss_and_grad},
        note=f"{note}; Σ softplus(-z) t + softplus(z)(1 - t), `function(..., [loss, grad])`",
    )


def check(contenders: list[Contender], X: np.ndarray, t: np.ndarray) -> None:
    symgen_contender = next(c for c in contenders if c.name == SYMGEN)
    for scale, seed in CHECKS:
        check_against(
            symgen_contender,
            contenders,
            bindings(weights(scale, seed), X, t),
            where=f"w = {scale} × standard normal (seed {seed}), N = {X.shape[0]:,}",
            second="gradient",
        )
