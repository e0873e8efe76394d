"""W2: logistic regression (no bias), written the naive way users write it.

    symgen generate examples/logistic.py -o generated
    python examples/logistic.py

``log(p*t + (1-p)*(1-t))`` with ``p = sigmoid(X w)`` overflows for large
``|X w|`` when evaluated literally; symgen rewrites it to a stable form
(``softplus(X w) - t*(X w)`` for 0/1 labels), so the loss and its gradient
stay finite for |X w| up to 1e3 and beyond.
"""

import sympy as sp

import symgen

N, D = sp.symbols("N D", integer=True, positive=True)
X, t = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("t", N, 1)
w = sp.MatrixSymbol("w", D, 1)

p = symgen.sigmoid(X * w)
logistic = symgen.Problem(
    -symgen.sum(symgen.elementwise(lambda p, t: sp.log(p * t + (1 - p) * (1 - t)), p, t)),
    params=[w],
    data=[X, t],
    name="logistic",
    # The targets are labels, 0 or 1: the likelihood is then the cross-entropy, whose stable
    # form needs one softplus (without this the same formula holds for soft targets, at about
    # twice the cost: a log-sum-exp of log t and log(1 - t)). The module checks the labels.
    binary=[t],
)

TINY_X = [[0.52, 1.12, 0.77], [0.88, -1.08, 0.15], [0.52, 0.06, -1.30], [0.74, -2.49, 1.39]]
TINY_T = [[1.0], [1.0], [0.0], [1.0]]


def train_tiny(module, steps=100, lr=0.01):
    """Plain gradient descent from w = 0; returns (initial loss, final loss, w)."""
    import numpy as np

    x, targets = np.array(TINY_X), np.array(TINY_T)
    weights = np.zeros((3, 1))
    first = module.loss(weights, x, targets)
    for _ in range(steps):
        module.sgd_step(weights, x, targets, lr=lr)  # updates weights in place
    return first, module.loss(weights, x, targets), weights.ravel()


def large(n=1_000_000, d=16, seed=0):
    """Synthetic data for speed: N = 1e6 samples, D = 16 features."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    true_w = rng.standard_normal((d, 1))
    targets = (rng.random((n, 1)) < 1 / (1 + np.exp(-x @ true_w))).astype(float)
    return x, targets


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from generated import logistic_numpy as module

    first, last, weights = train_tiny(module)
    print(f"initial loss {first:.11f}, after 100 steps {last:.11f}")
    print(f"w = {weights.round(5)}")
