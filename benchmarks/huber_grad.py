"""The Huber loss as a ``Piecewise`` against its best spelling without one (issue 17 item 8).

Before ``Piecewise``, the fastest way to write the Huber loss in symgen was with ``Min``
and ``Abs``: with ``m = Min(|r|, delta)``, ``m*(|r| - m/2)`` is ``r**2/2`` for
``|r| <= delta`` and ``delta*(|r| - delta/2)`` beyond. The issue's target: the textbook
``Piecewise`` (``examples/huber.py``) runs within 1.2x of that spelling, in each backend.
Workload keys ``huber-numpy-N`` and ``huber-c-N``: loss and both partials of the mean Huber
loss of a line over ``examples.huber.synthetic(N)`` (a tenth of the samples outliers, so
that both pieces are taken), at (a, b) = (1.5, 0.5). The timed statement sees the
parameters as ``p`` and the data as ``x`` and ``y``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

import symgen
from examples.huber import DELTA, a, b, huber, synthetic, x, y

from .correctness import check_against
from .frameworks import symgen_c_contender
from .timing import Contender

_r = y - (a * x + b)
_m = sp.Min(sp.Abs(_r), DELTA)
#: The same loss without a Piecewise: the best spelling before it.
huber_min_abs = symgen.Problem(
    _m * (sp.Abs(_r) - _m / 2), params=[a, b], data=[x, y], reduce="mean", name="huber_min_abs"
)

PARAMS = (1.5, 0.5)
CHECKS = [PARAMS, (2.0, -1.0), (0.0, 0.0)]
BACKENDS = {"numpy": "NumPy", "c": "C backend"}


def reference_name(backend: str) -> str:
    return f"symgen, Min/Abs spelling ({BACKENDS[backend]})"


def symgen_name(backend: str) -> str:
    return f"symgen, Piecewise ({BACKENDS[backend]})"


HAND = "hand-written NumPy (np.where)"


def title(backend: str, n: int) -> str:
    return f"Huber ({BACKENDS[backend]}) — Piecewise against Min/Abs, N = {n:,}"


def description(backend: str, n: int) -> str:
    return (
        "Loss and both partials of the mean Huber loss (delta = 1.35) of a line, over "
        f"`examples/huber.py`'s `synthetic({n})`, at (a, b) = {PARAMS}: `examples/huber.py`'s "
        "textbook `Piecewise` against the same loss spelled `m*(|r| - m/2)`, "
        f"`m = Min(|r|, delta)` (`benchmarks/huber_grad.py`), both by the {BACKENDS[backend]}. "
        f"Reference: {reference_name(backend)}; the target is 1.2× at most."
    )


def loss_and_grad_numpy(p, x, y):
    """An expert's NumPy: the residual and its magnitude once, one np.where per result."""
    d = float(DELTA)
    r = y - (p[0] * x + p[1])
    size = np.abs(r)
    small = size <= d
    n = r.shape[0]
    loss = np.where(small, 0.5 * r * r, d * (size - 0.5 * d)).sum() / n
    dz = np.where(small, -r, d * np.sign(-r))  # the derivative in the prediction a*x + b
    return float(loss), (float(np.dot(dz, x)) / n, float(dz.sum()) / n)


def contenders(backend: str, xs: np.ndarray, ys: np.ndarray) -> list[Contender]:
    if backend == "c":
        out = [
            symgen_c_contender(
                reference_name("c"),
                huber_min_abs,
                "benchmarks.huber_grad.huber_min_abs",
                "loss_and_grad(*p, x=x, y=y)",
                "one vectorised loop over the samples",
            ),
            symgen_c_contender(
                symgen_name("c"),
                huber,
                "examples.huber.huber",
                "loss_and_grad(*p, x=x, y=y)",
                "one vectorised loop over the samples, a conditional per sample",
            ),
        ]
    else:
        out = [
            Contender(
                reference_name("numpy"),
                "loss_and_grad(*p, x=x, y=y)",
                {"loss_and_grad": symgen.compile(huber_min_abs).loss_and_grad},
                note="reference; `symgen.compile(benchmarks.huber_grad.huber_min_abs)`",
            ),
            Contender(
                symgen_name("numpy"),
                "loss_and_grad(*p, x=x, y=y)",
                {"loss_and_grad": symgen.compile(huber).loss_and_grad},
                note="`symgen.compile(examples.huber.huber)`: one np.where per result",
            ),
        ]
    out.append(
        Contender(
            HAND,
            "loss_and_grad(p, x, y)",
            {"loss_and_grad": loss_and_grad_numpy},
            note="residual and |r| once, one np.where per result, np.dot sums",
        )
    )
    for c in out:
        c.namespace.update({"p": PARAMS, "x": xs, "y": ys})
    return out


def check(backend: str, contenders_: list[Contender], xs: np.ndarray, ys: np.ndarray) -> None:
    mine = next(c for c in contenders_ if c.name == symgen_name(backend))
    for params in CHECKS:
        check_against(
            mine,
            contenders_,
            {"p": params, "x": xs, "y": ys},
            where=f"(a, b) = {params}, N = {xs.shape[0]:,}",
            second="gradient",
        )


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    return synthetic(n)
