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

import symgen
from examples.logistic import large, logistic

from . import frameworks
from .correctness import check_against
from .machine import version
from .timing import Contender

REFERENCE = "hand-written NumPy (expert)"
SYMGEN = "symgen `loss_and_grad` (generated)"
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


def contenders(X: np.ndarray, t: np.ndarray) -> list[Contender]:
    generated = symgen.compile(logistic)
    out = [
        Contender(
            SYMGEN,
            "loss_and_grad(w, X, t)",
            {"loss_and_grad": generated.loss_and_grad},
            note="`symgen.compile(examples.logistic.logistic)`",
        ),
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
    ]
    for c in out:
        c.namespace.update(bindings(weights(*CHECKS[0]), X, t))
    return out


def bindings(w: np.ndarray, X: np.ndarray, t: np.ndarray) -> dict:
    out = {"w": w, "X": X, "t": t}
    jax = frameworks.load_jax()
    if not isinstance(jax, str):  # the data live on JAX's side between calls, as in JAX code
        out.update(jw=jax.device_put(w), jX=jax.device_put(X), jt=jax.device_put(t))
    return out


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
