"""W4: a curve fit with six parameters, many gradients from one pass over the data.

    symgen generate examples/curve_fit.py -o generated
    python examples/curve_fit.py

    symgen generate examples/curve_fit.py --backend c -o generated
    python examples/curve_fit.py c      # the same fit with the C backend's module

The per-sample loss is summed (here: averaged) over N samples (t, y); the
generated ``loss_and_grad`` computes the loss and all six partials in one pass.
The example fits synthetic data with Adam written in a few lines on top of it.
"""

import sympy as sp

import symgen

a, b, c, d, e, g, t, y = sp.symbols("a b c d e g t y")
model = sp.exp(-a * t) * sp.sin(b * t + c) + d * t**2 + e * t + g
curve_fit = symgen.Problem(
    (model - y) ** 2, params=[a, b, c, d, e, g], data=[t, y], reduce="mean", name="curve_fit"
)

TRUE = (0.7, 3.0, 0.5, 0.05, -0.3, 0.8)
START = (1.0, 2.7, 0.0, 0.0, 0.0, 0.0)


def synthetic(n=100_000, noise=0.01, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0.0, 4.0, n))
    a_, b_, c_, d_, e_, g_ = TRUE
    ys = np.exp(-a_ * ts) * np.sin(b_ * ts + c_) + d_ * ts**2 + e_ * ts + g_
    return ts, ys + noise * rng.standard_normal(n)


def fit(module, ts, ys, params=START, steps=3000, lr=0.02):
    """Adam on top of the generated loss_and_grad; returns (params, loss history)."""
    import numpy as np

    p = np.array(params, dtype=float)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    history = []
    for k in range(1, steps + 1):
        loss, grads = module.loss_and_grad(*p, t=ts, y=ys)
        history.append(loss)
        gr = np.array(grads)
        m = 0.9 * m + 0.1 * gr
        v = 0.999 * v + 0.001 * gr**2
        p -= lr * (m / (1 - 0.9**k)) / (np.sqrt(v / (1 - 0.999**k)) + 1e-8)
    return tuple(p), history


if __name__ == "__main__":
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    backend = sys.argv[1] if len(sys.argv) > 1 else "numpy"
    if backend not in ("numpy", "c"):
        sys.exit(f"usage: python {sys.argv[0]} [numpy|c]")
    module = importlib.import_module(f"generated.curve_fit_{backend}")

    ts, ys = synthetic()
    params, history = fit(module, ts, ys)
    print(f"loss: {history[0]:.6f} -> {history[-1]:.6f} after {len(history)} Adam steps")
    for name, got, true in zip(module.PARAMS, params, TRUE, strict=True):
        print(f"  {name} = {got:+.4f}   (true {true:+.4f})")
