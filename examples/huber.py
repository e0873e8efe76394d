"""Robust regression: a line fitted with the Huber loss, written as a textbook writes it.

    symgen generate examples/huber.py -o generated
    symgen generate examples/huber.py --backend c -o generated
    symgen show examples/huber.py
    python examples/huber.py            # or: python examples/huber.py c

The Huber loss is quadratic for residuals up to ``DELTA`` and linear beyond, so that the
few outliers of the synthetic data (a tenth of the samples, off by 20 or so) pull the fit
far less than they pull least squares. It is a ``sympy.Piecewise``; the generated code
takes value and gradient from the piece that holds (the first whose condition holds, at
|r| = DELTA), with one ``np.where`` in NumPy and a conditional in C.
"""

import sympy as sp

import symgen

#: Residuals up to DELTA count quadratically (scikit-learn's HuberRegressor's epsilon).
DELTA = sp.Rational(27, 20)

a, b, x, y = sp.symbols("a b x y")
r = y - (a * x + b)
huber = symgen.Problem(
    sp.Piecewise((r**2 / 2, sp.Abs(r) <= DELTA), (DELTA * (sp.Abs(r) - DELTA / 2), True)),
    params=[a, b],
    data=[x, y],
    reduce="mean",
    name="huber",
)

TRUE = (2.0, -1.0)


def synthetic(n=10_000, outliers=0.1, seed=0):
    """Samples of y = 2 x - 1 with unit noise, a fraction of them moved up by about 20."""
    import numpy as np

    rng = np.random.default_rng(seed)
    xs = rng.uniform(-3.0, 3.0, n)
    ys = TRUE[0] * xs + TRUE[1] + rng.standard_normal(n)
    far = rng.random(n) < outliers
    ys[far] += rng.normal(20.0, 5.0, np.count_nonzero(far))
    return xs, ys


def fit(module, xs, ys, steps=2000, lr=0.05):
    """Adam steps of the generated module from (0, 0); returns (params, loss history)."""
    import numpy as np

    p = np.zeros(2)
    state = module.adam_state(*p)
    history = []
    for _ in range(steps):
        loss, p, state = module.adam_step(*p, xs, ys, state=state, lr=lr)
        history.append(loss)
    return tuple(p), history


if __name__ == "__main__":
    import importlib
    import sys
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    backend = sys.argv[1] if len(sys.argv) > 1 else "numpy"
    if backend not in ("numpy", "c"):
        sys.exit(f"usage: python {sys.argv[0]} [numpy|c]")
    module = importlib.import_module(f"generated.huber_{backend}")

    xs, ys = synthetic()
    params, history = fit(module, xs, ys)
    least_squares = np.polyfit(xs, ys, 1)
    print(f"loss: {history[0]:.4f} -> {history[-1]:.4f} after {len(history)} Adam steps")
    for name, got, ls, true in zip(module.PARAMS, params, least_squares, TRUE, strict=True):
        print(f"  {name} = {got:+.3f}   (least squares {ls:+.3f}, true {true:+.3f})")
