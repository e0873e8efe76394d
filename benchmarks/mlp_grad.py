"""W3: a two-layer ReLU network in float32, the loss and both weight gradients in one call.

The problem is ``examples/mlp.py``'s ``mlp``: sum((relu(X W1) W2 - Y)²) / (M N_O), with
data drawn by its ``seed_data`` (``np.random.seed(1)``; X, Y, W1, W2 standard normal).
Two sizes: the tutorial's (M = 64, N_I = 1000, N_H = 100, N_O = 10) and a large one
(M = 4096, N_I = 1024, N_H = 1024, N_O = 10). Every contender returns
``(loss, (dW1, dW2))``; the SGD-step variant returns ``(loss, (W1, W2))`` after updating
W1 and W2 in place. The timed statement sees ``W1``, ``W2``, ``X``, ``Y`` as NumPy arrays,
``lr``, and the same arrays for JAX (``jW1`` ...) and PyTorch (``tW1`` ...).
"""

from __future__ import annotations

import numpy as np

import symgen
from examples.mlp import mlp, seed_data

from . import frameworks
from .correctness import RTOL_FLOAT32, check_against
from .machine import version
from .timing import Contender

REFERENCE = "hand-written NumPy backprop (tutorial)"
SYMGEN = "symgen `loss_and_grad` (generated)"
STEP_REFERENCE = "hand-written NumPy SGD step (tutorial backprop)"
STEP_SYMGEN = "symgen `sgd_step` (generated)"
SYMGEN_C = "symgen `loss_and_grad`, C backend (generated)"
STEP_SYMGEN_C = "symgen `sgd_step`, C backend (generated)"
SIZES = {
    "seed": (64, 1000, 100, 10),
    "large": (4096, 1024, 1024, 10),
}
#: The learning rate in the timed SGD steps: small enough that the thousands of timed
#: steps leave the weights near where they started (the work per step does not depend on it).
TIMED_LR = 1e-7
CHECK_LR = 1e-4


def title(size: str, step: bool = False) -> str:
    m, n_i, n_h, n_o = SIZES[size]
    what = "SGD step" if step else "loss and gradients"
    return f"W3 {size} — two-layer ReLU net, {what}, M = {m:,}, N_I = {n_i:,}, N_H = {n_h:,}"


def description(size: str, step: bool = False) -> str:
    m, n_i, n_h, n_o = SIZES[size]
    dims = f"M = {m}, N_I = {n_i}, N_H = {n_h}, N_O = {n_o}, float32"
    if step:
        return (
            f"One SGD step, loss and gradients then W1 and W2 updated in place (`sgd_step(W1, "
            f"W2, X, Y, lr=...)`, lr {TIMED_LR:g}), for `examples/mlp.py`'s "
            f"sum((relu(X W1) W2 - Y)²) / (M N_O) on its `seed_data({m}, {n_i}, {n_h}, {n_o})` "
            f"({dims}). Reference: {STEP_REFERENCE}."
        )
    return (
        f"Loss and both weight gradients in one call, `loss_and_grad(W1, W2, X, Y)`, for "
        f"`examples/mlp.py`'s sum((relu(X W1) W2 - Y)²) / (M N_O) on its "
        f"`seed_data({m}, {n_i}, {n_h}, {n_o})` ({dims}). Reference: {REFERENCE}."
    )


def data(size: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(W1, W2, X, Y)``."""
    x, y, w1, w2 = seed_data(*SIZES[size])
    return w1, w2, x, y


def loss_and_grad_numpy(W1, W2, X, Y, relu_mask="assign"):
    """The tutorial's backprop, in float32 throughout.

    ``relu_mask`` "assign" zeroes the masked gradient as the tutorial does
    (``gh[h < 0] = 0``); "multiply" does ``gh *= h > 0`` (one elementwise pass).
    """
    m, n_o = Y.shape
    h = X @ W1
    hr = np.maximum(h, 0)
    yp = hr @ W2
    d = yp - Y
    loss = float((d**2).sum()) / (m * n_o)
    gy = 2 * d / (m * n_o)
    gW2 = hr.T @ gy
    gh = gy @ W2.T
    if relu_mask == "assign":
        gh[h < 0] = 0
    else:
        gh *= h > 0
    gW1 = X.T @ gh
    return loss, (gW1, gW2)


def loss_and_grad_numpy_multiply(W1, W2, X, Y):
    return loss_and_grad_numpy(W1, W2, X, Y, relu_mask="multiply")


def sgd_step_numpy(W1, W2, X, Y, lr, relu_mask="assign"):
    """The tutorial's step: backprop as above, then ``W -= lr * gW`` in place."""
    loss, (gW1, gW2) = loss_and_grad_numpy(W1, W2, X, Y, relu_mask)
    W1 -= lr * gW1
    W2 -= lr * gW2
    return loss, (W1, W2)


def sgd_step_numpy_multiply(W1, W2, X, Y, lr):
    return sgd_step_numpy(W1, W2, X, Y, lr, relu_mask="multiply")


def _loss(W1, W2, X, Y, relu):
    m, n_o = Y.shape
    d = relu(X @ W1) @ W2 - Y
    return (d * d).sum() / (m * n_o)


def bindings(W1, W2, X, Y, lr=TIMED_LR, *, copy=False) -> dict:
    """The names the timed statements see. ``copy``: fresh weights (the steps update them)."""
    if copy:
        W1, W2 = W1.copy(), W2.copy()
    return {
        "W1": W1,
        "W2": W2,
        "X": X,
        "Y": Y,
        "lr": lr,
        **frameworks.shared_arrays({"W1": W1, "W2": W2}, cache=not copy),
        **frameworks.shared_arrays({"X": X, "Y": Y}),
    }


def _symgen_c(name: str, stmt: str) -> Contender:
    return frameworks.symgen_c_contender(
        name, mlp, "examples.mlp.mlp", stmt, "products by NumPy's `@`"
    )


def contenders(arrays) -> list[Contender]:
    generated = symgen.compile(mlp)
    out = [
        Contender(
            SYMGEN,
            "loss_and_grad(W1, W2, X, Y)",
            {"loss_and_grad": generated.loss_and_grad},
            note="`symgen.compile(examples.mlp.mlp)`",
        ),
        _symgen_c(SYMGEN_C, "loss_and_grad(W1, W2, X, Y)"),
        Contender(
            REFERENCE,
            "loss_and_grad(W1, W2, X, Y)",
            {"loss_and_grad": loss_and_grad_numpy},
            note="reference; h = X@W1, max(h, 0), @W2, then back: gy@W2.T, `gh[h < 0] = 0`, X.T@gh",
        ),
        Contender(
            "hand-written NumPy, `gh *= h > 0`",
            "loss_and_grad(W1, W2, X, Y)",
            {"loss_and_grad": loss_and_grad_numpy_multiply},
            note="extra: the reference with the ReLU mask applied by one in-place multiply",
        ),
        _autograd(),
        _jax(arrays),
        _torch(),
        _torch_compile(arrays),
        _pytensor(None),
        _pytensor("CVM"),
        *frameworks.lambdify_not_applicable(mlp, mlp.params[0]),
    ]
    for c in out:
        c.namespace.update(bindings(*arrays))
    return out


def step_contenders(arrays) -> list[Contender]:
    generated = symgen.compile(mlp)
    out = [
        Contender(
            STEP_SYMGEN,
            "sgd_step(W1, W2, X, Y, lr=lr)",
            {"sgd_step": generated.sgd_step},
            note="`symgen.compile(examples.mlp.mlp)`; updates W1, W2 in place",
        ),
        _symgen_c(STEP_SYMGEN_C, "sgd_step(W1, W2, X, Y, lr=lr)"),
        Contender(
            STEP_REFERENCE,
            "sgd_step(W1, W2, X, Y, lr)",
            {"sgd_step": sgd_step_numpy},
            note="reference; the backprop above, then `W1 -= lr * gW1`, `W2 -= lr * gW2`",
        ),
        Contender(
            "hand-written NumPy SGD step, `gh *= h > 0`",
            "sgd_step(W1, W2, X, Y, lr)",
            {"sgd_step": sgd_step_numpy_multiply},
            note="extra: the same with the in-place ReLU mask",
        ),
        _autograd_step(),
        _jax_step(arrays),
        _torch_step(),
        _torch_compile_step(arrays),
        _pytensor_step(None),
        _pytensor_step("CVM"),
        *frameworks.lambdify_not_applicable(mlp, mlp.params[0]),
    ]
    for c in out:  # each contender updates its own copy of the weights
        c.namespace.update(bindings(*arrays, copy=True))
    return out


def _autograd_step() -> Contender:
    name = "autograd `value_and_grad`, `-=`"
    loaded = frameworks.load_autograd()
    if isinstance(loaded, str):
        return Contender(name, missing=loaded)
    autograd, anp = loaded

    def loss(W1, W2, X, Y):
        return _loss(W1, W2, X, Y, lambda h: anp.maximum(h, 0.0))

    value_and_grad = autograd.value_and_grad(loss, argnum=(0, 1))

    def sgd_step(W1, W2, X, Y, lr):
        value, (g1, g2) = value_and_grad(W1, W2, X, Y)
        W1 -= lr * g1
        W2 -= lr * g2
        return value, (W1, W2)

    return Contender(
        name,
        "sgd_step(W1, W2, X, Y, lr)",
        {"sgd_step": sgd_step},
        note="`autograd.numpy`, then `W -= lr * g` in place",
    )


def _jax_step(arrays) -> Contender:
    name = "JAX `jit` of the step, CPU"
    jax = frameworks.load_jax()
    if isinstance(jax, str):
        return Contender(name, missing=jax)

    value_and_grad = jax.value_and_grad(
        lambda W1, W2, X, Y: _loss(W1, W2, X, Y, jax.nn.relu), argnums=(0, 1)
    )

    @jax.jit
    def sgd_step(W1, W2, X, Y, lr):
        value, (g1, g2) = value_and_grad(W1, W2, X, Y)
        return value, (W1 - lr * g1, W2 - lr * g2)

    b = bindings(*arrays)
    frameworks.block(sgd_step(b["jW1"], b["jW2"], b["jX"], b["jY"], TIMED_LR))  # compile now
    return Contender(
        name,
        "block(sgd_step(jW1, jW2, jX, jY, lr))",
        {"sgd_step": sgd_step, "block": frameworks.block},
        note=f"jax {version('jax')}, float32; returns new weights (JAX arrays are immutable), "
        "compiled before timing, `block_until_ready`",
    )


def _autograd() -> Contender:
    name = "autograd `value_and_grad`"
    loaded = frameworks.load_autograd()
    if isinstance(loaded, str):
        return Contender(name, missing=loaded)
    autograd, anp = loaded

    def loss(W1, W2, X, Y):
        return _loss(W1, W2, X, Y, lambda h: anp.maximum(h, 0.0))

    return Contender(
        name,
        "value_and_grad(W1, W2, X, Y)",
        {"value_and_grad": autograd.value_and_grad(loss, argnum=(0, 1))},
        note="`autograd.numpy`, relu as `maximum(h, 0)`",
    )


def _jax(arrays) -> Contender:
    name = "JAX `jit(value_and_grad)`, CPU"
    jax = frameworks.load_jax()
    if isinstance(jax, str):
        return Contender(name, missing=jax)

    def loss(W1, W2, X, Y):
        return _loss(W1, W2, X, Y, jax.nn.relu)

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    b = bindings(*arrays)
    frameworks.block(value_and_grad(b["jW1"], b["jW2"], b["jX"], b["jY"]))  # compile now
    return Contender(
        name,
        "block(value_and_grad(jW1, jW2, jX, jY))",
        {"value_and_grad": value_and_grad, "block": frameworks.block},
        note=f"jax {version('jax')}, float32, `jax.nn.relu`; data as JAX arrays, compiled "
        "before timing, `block_until_ready`",
    )


def _torch_loss(W1, W2, X, Y):
    import torch

    return _loss(W1, W2, X, Y, torch.relu)


def _torch_loss_and_grad(loss):
    import torch

    def loss_and_grad(W1, W2, X, Y):
        W1 = W1.detach().requires_grad_()
        W2 = W2.detach().requires_grad_()
        value = loss(W1, W2, X, Y)
        return value.detach(), torch.autograd.grad(value, (W1, W2))

    return loss_and_grad


def _torch_sgd_step(loss):
    """Loss and gradients as above, then ``W -= lr * g`` in place (the NumPy arrays too)."""
    import torch

    loss_and_grad = _torch_loss_and_grad(loss)

    def sgd_step(W1, W2, X, Y, lr):
        value, (g1, g2) = loss_and_grad(W1, W2, X, Y)
        with torch.no_grad():
            W1.sub_(g1, alpha=lr)
            W2.sub_(g2, alpha=lr)
        return value, (W1, W2)

    return sgd_step


def _torch() -> Contender:
    name = "PyTorch eager, `autograd.grad`"
    torch = frameworks.load_torch()
    if isinstance(torch, str):
        return Contender(name, missing=torch)
    return Contender(
        name,
        "loss_and_grad(tW1, tW2, tX, tY)",
        {"loss_and_grad": _torch_loss_and_grad(_torch_loss)},
        note=f"torch {version('torch')}, 1 thread, tensors sharing the NumPy arrays' memory",
    )


def _torch_step() -> Contender:
    name = "PyTorch eager, `autograd.grad`, `sub_`"
    torch = frameworks.load_torch()
    if isinstance(torch, str):
        return Contender(name, missing=torch)
    return Contender(
        name,
        "sgd_step(tW1, tW2, tX, tY, lr)",
        {"sgd_step": _torch_sgd_step(_torch_loss)},
        note=f"torch {version('torch')}, 1 thread; weights updated in place with `sub_(g, "
        "alpha=lr)` (tensors sharing the NumPy arrays' memory)",
    )


def _torch_compiled(arrays):
    """``(compiled loss, note)`` or a reason it is missing."""
    torch = frameworks.load_torch()
    if isinstance(torch, str):
        return torch
    b = bindings(*arrays)
    return frameworks.torch_compile(
        _torch_loss, lambda fn: _torch_loss_and_grad(fn)(b["tW1"], b["tW2"], b["tX"], b["tY"])
    )


def _torch_compile(arrays) -> Contender:
    name = "PyTorch `torch.compile`, `autograd.grad`"
    built = _torch_compiled(arrays)
    if isinstance(built, str):
        return Contender(name, missing=built)
    compiled, note = built
    return Contender(
        name,
        "loss_and_grad(tW1, tW2, tX, tY)",
        {"loss_and_grad": _torch_loss_and_grad(compiled)},
        note=f"{note}; the loss compiled, its backward by AOTAutograd",
    )


def _torch_compile_step(arrays) -> Contender:
    name = "PyTorch `torch.compile`, `autograd.grad`, `sub_`"
    built = _torch_compiled(arrays)
    if isinstance(built, str):
        return Contender(name, missing=built)
    compiled, note = built
    return Contender(
        name,
        "sgd_step(tW1, tW2, tX, tY, lr)",
        {"sgd_step": _torch_sgd_step(compiled)},
        note=f"{note}; the loss compiled, its backward by AOTAutograd; `sub_` updates as eager",
    )


def _pytensor_graph(W1=None, W2=None):
    """``((W1, W2, X, Y), loss)``; W1 and W2 new float32 matrices unless given."""
    import pytensor.tensor as pt

    W1 = pt.fmatrix("W1") if W1 is None else W1
    W2 = pt.fmatrix("W2") if W2 is None else W2
    X, Y = pt.fmatrix("X"), pt.fmatrix("Y")
    return (W1, W2, X, Y), _loss(W1, W2, X, Y, lambda h: pt.maximum(h, 0.0))


def _pytensor(mode) -> Contender:
    name = frameworks.PYTENSOR_MODES[mode]
    pytensor = frameworks.load_pytensor()
    if isinstance(pytensor, str):
        return Contender(name, missing=pytensor)
    (W1, W2, X, Y), loss = _pytensor_graph()
    built = frameworks.pytensor_function(
        [W1, W2, X, Y], [loss, *pytensor.grad(loss, [W1, W2])], mode
    )
    if isinstance(built, str):
        return Contender(name, missing=built)
    fn, note = built

    def loss_and_grad(W1, W2, X, Y):
        loss, g1, g2 = fn(W1, W2, X, Y)
        return loss, (g1, g2)

    return Contender(
        name,
        "loss_and_grad(W1, W2, X, Y)",
        {"loss_and_grad": loss_and_grad},
        note=f"{note}; float32, relu as `maximum(h, 0)`, `function(..., [loss, *grads])`",
    )


def _pytensor_step(mode) -> Contender:
    """W1 and W2 as shared variables holding the caller's arrays, updated by ``updates=``."""
    name = frameworks.PYTENSOR_MODES[mode] + ", `updates=`"
    pytensor = frameworks.load_pytensor()
    if isinstance(pytensor, str):
        return Contender(name, missing=pytensor)
    import pytensor.tensor as pt

    shared = [pytensor.shared(np.zeros((1, 1), np.float32), name=n) for n in ("W1", "W2")]
    (_, _, X, Y), loss = _pytensor_graph(*shared)
    lr = pt.fscalar("lr")
    updates = [(s, s - lr * g) for s, g in zip(shared, pytensor.grad(loss, shared), strict=True)]
    built = frameworks.pytensor_function([X, Y, lr], loss, mode, updates=updates)
    if isinstance(built, str):
        return Contender(name, missing=built)
    fn, note = built

    def sgd_step(W1, W2, X, Y, lr):
        for s, w in zip(shared, (W1, W2), strict=True):
            if s.get_value(borrow=True, return_internal_type=True) is not w:
                s.set_value(w, borrow=True)  # the caller's arrays (once: see below)
        loss = fn(X, Y, np.float32(lr))
        return loss, tuple(s.get_value(borrow=True, return_internal_type=True) for s in shared)

    return Contender(
        name,
        "sgd_step(W1, W2, X, Y, lr)",
        {"sgd_step": sgd_step},
        note=f"{note}; `function([X, Y, lr], loss, updates=...)` on shared W1, W2 (set with "
        "`borrow=True` whenever they are not the arrays passed in)",
    )


def check(contenders: list[Contender], arrays, *, step: bool = False) -> None:
    """Compare at the timed point and at two other weight scales (W1, W2 times 0.1 and -1)."""
    symgen_contender = next(c for c in contenders if c.name in (SYMGEN, STEP_SYMGEN))
    W1, W2, X, Y = arrays
    for factor in (1.0, 0.1, -1.0):
        w1, w2 = (W1 * np.float32(factor), W2 * np.float32(factor))
        check_against(
            symgen_contender,
            contenders,
            lambda w1=w1, w2=w2: bindings(w1, w2, X, Y, CHECK_LR, copy=True),
            where=f"W1, W2 = {factor:g} × seed weights, M = {X.shape[0]:,}"
            + (f", lr {CHECK_LR:g}" if step else ""),
            second="new parameters" if step else "gradient",
            rtol=RTOL_FLOAT32,
            scale="max",
        )
