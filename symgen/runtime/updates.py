"""Optimizer updates applied to gradients computed elsewhere.

A generated module's ``sgd_step``, ``momentum_step`` and ``adam_step`` compute
their own gradient from in-memory data. When the gradient comes from
somewhere else (``symgen.distributed`` adds it up over chunks of rows on a
Dask cluster), ``fit`` applies the update here instead. Each rule is the
generated code's, operation for operation (``symgen/backends/numpy.py``,
``_updates``): array parameters and their state are updated in place, scalar
ones are new floats, and the defaults are read from the module's own step
function, so that a step here gives the numbers the module's step gives.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

#: The step function of each optimizer, whose keyword defaults are used here.
STEP_FUNCTIONS = {"sgd": "sgd_step", "momentum": "momentum_step", "adam": "adam_step"}

Update = Callable[[list[Any], tuple[Any, ...]], tuple[Any, ...]]


def updater(module: Any, optimizer: str, options: dict[str, Any], params: list[Any]) -> Update:
    """``update(params, grads) -> new params`` for ``optimizer`` ("sgd", "momentum", "adam")
    with ``options`` (``lr`` and the step function's keywords), keeping the optimizer's
    state. ``grads`` are consumed: array gradients are used as scratch, as in the
    generated code."""
    function = getattr(module, STEP_FUNCTIONS[optimizer])
    settings = {
        p.name: p.default
        for p in inspect.signature(function).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
    }
    settings.update(options)
    if optimizer == "sgd":
        return _sgd(settings["lr"])
    if optimizer == "momentum":
        return _momentum(settings, params)
    return _adam(settings, params)


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray)


def _sgd(lr: float) -> Update:
    def update(params: list[Any], grads: tuple[Any, ...]) -> tuple[Any, ...]:
        out = []
        for p, g in zip(params, grads, strict=True):
            if _is_array(p):
                p -= lr * g
            else:
                p = p - lr * g
            out.append(p)
        return tuple(out)

    return update


def _momentum(settings: dict[str, Any], params: list[Any]) -> Update:
    lr, momentum, nesterov = settings["lr"], settings["momentum"], settings["nesterov"]
    velocities = [np.zeros_like(p) if _is_array(p) else 0.0 for p in params]

    def update(params: list[Any], grads: tuple[Any, ...]) -> tuple[Any, ...]:
        out = []
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            v = velocities[i]
            if _is_array(p):
                v *= momentum
                v -= lr * g
                if nesterov:
                    g *= -lr
                    g += momentum * v
                    p += g
                else:
                    p += v
            else:
                v = momentum * v - lr * g
                p = p + (momentum * v - lr * g if nesterov else v)
                velocities[i] = v
            out.append(p)
        return tuple(out)

    return update


def _adam(settings: dict[str, Any], params: list[Any]) -> Update:
    lr, beta1, beta2, eps = (settings[k] for k in ("lr", "beta1", "beta2", "eps"))
    firsts = [np.zeros_like(p) if _is_array(p) else 0.0 for p in params]
    seconds = [np.zeros_like(p) if _is_array(p) else 0.0 for p in params]
    step = 0

    def update(params: list[Any], grads: tuple[Any, ...]) -> tuple[Any, ...]:
        nonlocal step
        step += 1
        c1 = lr / (1.0 - beta1**step)
        c2 = 1.0 / (1.0 - beta2**step)
        out = []
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m, s = firsts[i], seconds[i]
            if _is_array(p):
                m *= beta1
                m += (1.0 - beta1) * g
                np.multiply(g, g, out=g)
                s *= beta2
                s += (1.0 - beta2) * g
                np.multiply(s, c2, out=g)
                np.sqrt(g, out=g)
                g += eps
                np.divide(m, g, out=g)
                g *= c1
                p -= g
            else:
                m = beta1 * m + (1.0 - beta1) * g
                s = beta2 * s + (1.0 - beta2) * g * g
                p = p - c1 * m / (math.sqrt(c2 * s) + eps)
                firsts[i], seconds[i] = m, s
            out.append(p)
        return tuple(out)

    return update
