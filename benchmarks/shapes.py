"""The shapes section: the Theano tutorial's logistic regression at D = 16, 128, 784 features
and N = 400, 20,000, 1,000,000 samples (N D at most ``LARGEST`` values), one thread.

The problem is the tutorial's, as a new user writes it: ``p = sigmoid(X w + b)``, the mean
cross-entropy of 0/1 labels plus ``0.01 |w|²``. symgen's C module (which chooses between
``X @ w``, ``X.T @ r`` inside its pass and BLAS from the size of X), its NumPy module and an
expert's NumPy are timed on ``loss_and_grad``, and on the tutorial's training step (``sgd_step``,
lr 0.1) at its own size, N = 400 and D = 784, where the per-call overhead shows.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

import symgen

from .correctness import check_against
from .timing import Contender, format_seconds, measure

SIZES_N = (400, 20_000, 1_000_000)
SIZES_D = (16, 128, 784)
#: Shapes with more values than this are left out (1e6 x 784 is 6.3 GB of float64).
LARGEST = 130_000_000
PLANS = {"quick": (1, 3, 20), "full": (8, 10, 300)}
C_MODULE, NUMPY_MODULE, EXPERT = "symgen C module", "symgen NumPy module", "hand-written NumPy"

_N, _D = sp.symbols("N D", integer=True, positive=True)
_X, _y = sp.MatrixSymbol("X", _N, _D), sp.MatrixSymbol("y", _N, 1)
_w, _b = sp.MatrixSymbol("w", _D, 1), sp.MatrixSymbol("b", 1, 1)


def problem() -> symgen.Problem:
    """The Theano tutorial's logistic regression (deeplearning.net, "A Real Example")."""
    p = symgen.sigmoid(_X * _w + sp.OneMatrix(_N, 1) * _b)
    xent = symgen.elementwise(lambda p, y: -y * sp.log(p) - (1 - y) * sp.log(1 - p), p, _y)
    return symgen.Problem(
        symgen.sum(xent) / _N + 0.01 * symgen.sum(symgen.square(_w)),
        params=[_w, _b],
        data=[_X, _y],
        binary=[_y],
        name="theano_logistic",
    )


def expert_loss_and_grad(w, b, X, y):
    """softplus(z) - y z by one ``logaddexp``, sigmoid by ``tanh`` in place."""
    n = X.shape[0]
    z = X @ w
    z += b
    loss = (float(np.logaddexp(0.0, z).sum()) - float(np.vdot(y, z))) / n + 0.01 * float(
        np.vdot(w, w)
    )
    r = np.multiply(z, 0.5)
    np.tanh(r, out=r)
    r *= 0.5
    r += 0.5
    r -= y
    r /= n
    gw = X.T @ r
    gw += 0.02 * w
    return loss, (gw, r.sum(axis=0, keepdims=True))


def expert_step(w, b, X, y, lr):
    loss, (gw, gb) = expert_loss_and_grad(w, b, X, y)
    w -= lr * gw
    b -= lr * gb
    return loss, (w, b)


def data(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.integers(0, 2, (n, 1)).astype(np.float64)
    w = rng.standard_normal((d, 1)) / np.sqrt(d)
    return w, np.zeros((1, 1)), X, y


def _contenders(modules, stmt: str, step: bool) -> list[Contender]:
    function = "sgd_step" if step else "loss_and_grad"
    expert = expert_step if step else expert_loss_and_grad
    return [
        Contender(C_MODULE, stmt, {"f": getattr(modules["c"], function)}, "`set_num_threads(1)`"),
        Contender(NUMPY_MODULE, stmt, {"f": getattr(modules["numpy"], function)}),
        Contender(EXPERT, stmt.replace("lr=", ""), {"f": expert}, "one `logaddexp`, `tanh`"),
    ]


def measure_all(quick: bool) -> dict:
    """Child process (one thread, pinned): every shape, then the tutorial's step."""
    modules = {"c": symgen.compile(problem(), "c"), "numpy": symgen.compile(problem())}
    modules["c"].set_num_threads(1)
    budget, low, high = PLANS["quick" if quick else "full"]
    rows = []
    cases = [(n, d, False) for n in SIZES_N for d in SIZES_D if n * d <= LARGEST]
    cases.append((400, 784, True))
    for n, d, step in cases:
        w, b, X, y = data(n, d)
        if step:
            contenders = _contenders(modules, "f(w, b, X, y, lr=0.0)", True)
            # lr 0: the parameters stay, every call does the same work
        else:
            contenders = _contenders(modules, "f(w, b, X, y)", False)
        for c in contenders:
            c.namespace.update({"w": w, "b": b, "X": X, "y": y})
        check_against(
            contenders[0], contenders, {"w": w, "b": b, "X": X, "y": y},
            where=f"N = {n:,}, D = {d}", second="new parameters" if step else "gradient",
        )  # fmt: skip
        label = f"{'sgd_step' if step else 'loss_and_grad'}, N = {n:,}, D = {d}"
        measured = measure(contenders, budget=budget, min_rounds=low, max_rounds=high, label=label)
        rows.append(
            {"n": n, "d": d, "step": step, **{m.contender.name: m.median for m in measured}}
        )
    return {"rows": rows}


def section(result: dict) -> tuple[str, list[str]]:
    lines = [
        "The Theano tutorial's logistic regression (`benchmarks/shapes.py`: sigmoid(X w + b), "
        "mean cross-entropy of 0/1 labels + 0.01 |w|²) at each shape, one thread, median "
        "time per call. The C module runs `X @ w` inside its pass when X has at most 64 KiB, "
        "else by BLAS (with both `X @ w` and `X.T @ r` in the pass, as in W2, also from 16 "
        "MiB: `backends/c/module.py`, `FUSED_AT_MOST`, `FUSED_AT_LEAST`; here `X.T @ r` "
        "stays in BLAS, since r is also summed for the bias).",
        "",
        f"| call | N | D | X | {C_MODULE} | {NUMPY_MODULE} | {EXPERT} | C / NumPy module | "
        "C / hand-written | NumPy module / hand-written |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        c, m, e = r[C_MODULE], r[NUMPY_MODULE], r[EXPERT]
        size = r["n"] * r["d"] * 8
        shown = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"
        lines.append(
            f"| {'`sgd_step`' if r['step'] else '`loss_and_grad`'} | {r['n']:,} | {r['d']} | "
            f"{shown} | {format_seconds(c)} | {format_seconds(m)} | {format_seconds(e)} | "
            f"{c / m:.2f}× | {c / e:.2f}× | {m / e:.2f}× |"
        )
    return "Shapes (one thread)", lines
