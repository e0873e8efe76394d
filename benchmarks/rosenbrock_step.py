"""W1: one gradient-descent step on Rosenbrock, f(x, y) = (1 - x)**2 + 100*(y - x**2)**2.

A step is the loss, its gradient and the update, at learning rate 0.001 from (2, 2).
Every contender returns ``(loss before the step, new parameters)``. The timed statement
sees the state under the names ``x``, ``y`` (floats), ``p`` (``np.array([x, y])``) and
``lr``; each contender uses the ones its style calls for.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

import symgen
from examples.rosenbrock import rosenbrock

from . import frameworks
from .correctness import check_against
from .machine import version
from .timing import Contender

TITLE = "W1 — Rosenbrock step"
START = (2.0, 2.0)
LR = 0.001
#: Points (and learning rates) where all contenders must agree before timing.
CHECKS = [((2.0, 2.0), LR), ((-1.2, 1.0), LR), ((0.3, -0.7), 1.0), ((1.0, 1.0), LR)]
REFERENCE = "hand-written, Python floats"
SYMGEN = "symgen `sgd_step` (generated)"


def state(x: float, y: float, lr: float = LR) -> dict:
    return {"x": x, "y": y, "p": np.array([x, y]), "lr": lr}


def step_floats(x, y, lr):
    """An expert's step on Python floats: shared subexpressions by hand, nothing else."""
    u = 1.0 - x
    v = y - x * x
    w = 200.0 * v  # dL/dy
    loss = u * u + 0.5 * w * v
    gx = -2.0 * (u + x * w)  # dL/dx = -2(1 - x) - 400 x (y - x^2)
    return loss, (x - lr * gx, y - lr * w)


def step_numpy(p, lr):
    """The usual NumPy step: the point is ``np.array([x, y])``, the gradient a new array."""
    x, y = p[0], p[1]
    v = y - x**2
    loss = (1 - x) ** 2 + 100 * v**2
    g = np.array([-2 * (1 - x) - 400 * x * v, 200 * v])
    return loss, p - lr * g


def contenders() -> list[Contender]:
    generated = symgen.compile(rosenbrock)
    out = [
        Contender(
            SYMGEN,
            "sgd_step(x, y, lr=lr)",
            {"sgd_step": generated.sgd_step},
            note="`symgen.compile(examples.rosenbrock.rosenbrock)`; floats in, floats out",
        ),
        Contender(
            REFERENCE,
            "step(x, y, lr)",
            {"step": step_floats},
            note="reference; common subexpressions shared by hand",
        ),
        Contender(
            "hand-written NumPy, `np.array([x, y])`",
            "step(p, lr)",
            {"step": step_numpy},
            note="scalars indexed out of a 2-array, gradient built with `np.array`",
        ),
        _autograd(),
        _jax(),
        _torch(),
        _torch_compile(),
        _pytensor(None),
        _pytensor("CVM"),
    ]
    out += _lambdify()
    for c in out:
        c.namespace.update(state(*START))
    return out


def _autograd() -> Contender:
    name = "autograd `value_and_grad`"
    try:
        import autograd
    except ImportError as exc:
        return Contender(name, missing=f"not installed ({exc})")

    def rosen(p):
        return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2

    value_and_grad = autograd.value_and_grad(rosen)

    def step(p, lr):
        loss, g = value_and_grad(p)
        return loss, p - lr * g

    return Contender(
        name,
        "step(p, lr)",
        {"step": step},
        note="on a float64 array of 2; loss and gradient from one trace",
    )


def _rosen(x, y):
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


def _jax() -> Contender:
    name = "JAX `jit` of the step, CPU"
    jax = frameworks.load_jax()
    if isinstance(jax, str):
        return Contender(name, missing=jax)

    value_and_grad = jax.value_and_grad(_rosen, argnums=(0, 1))

    @jax.jit
    def step(x, y, lr):
        loss, (gx, gy) = value_and_grad(x, y)
        return loss, (x - lr * gx, y - lr * gy)

    frameworks.block(step(*START, LR))  # compile now, not when timed
    return Contender(
        name,
        "block(step(x, y, lr))",
        {"step": step, "block": frameworks.block},
        note=f"jax {version('jax')}; `jit` of value_and_grad and the update, Python floats "
        "in, 0-d float64 arrays out, `block_until_ready`",
    )


def _torch_step(loss):
    import torch

    def step(x, y, lr):
        x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        y = torch.tensor(y, dtype=torch.float64, requires_grad=True)
        value = loss(x, y)
        gx, gy = torch.autograd.grad(value, (x, y))
        with torch.no_grad():
            return value.detach(), (x - lr * gx, y - lr * gy)

    return step


def _torch() -> Contender:
    name = "PyTorch eager, `autograd.grad`"
    torch = frameworks.load_torch()
    if isinstance(torch, str):
        return Contender(name, missing=torch)
    return Contender(
        name,
        "step(x, y, lr)",
        {"step": _torch_step(_rosen)},
        note=f"torch {version('torch')}; floats to 0-d float64 tensors, loss, `autograd.grad`, "
        "the update under `no_grad`",
    )


def _torch_compile() -> Contender:
    name = "PyTorch `torch.compile`, `autograd.grad`"
    torch = frameworks.load_torch()
    if isinstance(torch, str):
        return Contender(name, missing=torch)
    built = frameworks.torch_compile(_rosen, lambda fn: _torch_step(fn)(*START, LR))
    if isinstance(built, str):
        return Contender(name, missing=built)
    compiled, note = built
    return Contender(
        name,
        "step(x, y, lr)",
        {"step": _torch_step(compiled)},
        note=f"{note}; the loss compiled, its backward by AOTAutograd; the rest as eager",
    )


def _pytensor(mode) -> Contender:
    name = frameworks.PYTENSOR_MODES[mode]
    pytensor = frameworks.load_pytensor()
    if isinstance(pytensor, str):
        return Contender(name, missing=pytensor)
    import pytensor.tensor as pt

    x, y, lr = pt.dscalars("x", "y", "lr")
    loss = _rosen(x, y)
    gx, gy = pytensor.grad(loss, [x, y])
    built = frameworks.pytensor_function([x, y, lr], [loss, x - lr * gx, y - lr * gy], mode)
    if isinstance(built, str):
        return Contender(name, missing=built)
    fn, note = built

    def step(x, y, lr):
        loss, x, y = fn(x, y, lr)
        return loss, (x, y)

    return Contender(
        name,
        "step(x, y, lr)",
        {"step": step},
        note=f"{note}; `function([x, y, lr], [loss, x - lr*gx, y - lr*gy])`, floats in, "
        "0-d arrays out",
    )


def _lambdify() -> list[Contender]:
    x, y = rosenbrock.params
    loss = rosenbrock.loss
    dx, dy = sp.diff(loss, x), sp.diff(loss, y)
    f = sp.lambdify((x, y), loss, modules="numpy")
    fx = sp.lambdify((x, y), dx, modules="numpy")
    fy = sp.lambdify((x, y), dy, modules="numpy")

    def step_naive(x, y, lr):
        return f(x, y), (x - lr * fx(x, y), y - lr * fy(x, y))

    together = sp.lambdify((x, y), [loss, dx, dy], modules="numpy", cse=True)

    def step_cse(x, y, lr):
        loss, gx, gy = together(x, y)
        return loss, (x - lr * gx, y - lr * gy)

    return [
        Contender(
            "SymPy `lambdify`, loss and 2 diffs separately",
            "step(x, y, lr)",
            {"step": step_naive},
            note="three functions, no shared work",
        ),
        Contender(
            "SymPy `lambdify(cse=True)` of [loss, ∂x, ∂y]",
            "step(x, y, lr)",
            {"step": step_cse},
            note="one function, SymPy's CSE",
        ),
    ]


def check(contenders: list[Contender]) -> None:
    symgen_contender = next(c for c in contenders if c.name == SYMGEN)
    for (x, y), lr in CHECKS:
        check_against(
            symgen_contender,
            contenders,
            state(x, y, lr),
            where=f"(x, y) = ({x}, {y}), lr = {lr}",
            second="new parameters",
        )


DESCRIPTION = (
    "One gradient-descent step (loss, gradient, update) on "
    "f(x, y) = (1 - x)² + 100 (y - x²)², lr 0.001, from (2, 2). "
    f"Reference: {REFERENCE}."
)
