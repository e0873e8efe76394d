"""Multiclass softmax regression with a row-wise logsumexp.

    symgen generate examples/softmax.py -o generated
    python examples/softmax.py

``Z - logsumexp(Z, axis=1)`` broadcasts the N x 1 column of row-wise
log-normalizers over the N x K scores; symgen evaluates logsumexp stably
(shifted by the row maximum).
"""

import sympy as sp

import symgen

N, D, K = sp.symbols("N D K", integer=True, positive=True)
X, Y = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("Y", N, K)
W, b = sp.MatrixSymbol("W", D, K), sp.MatrixSymbol("b", 1, K)

Z = X * W + symgen.ones(N) * b  # the bias row added to each of the N rows
softmax = symgen.Problem(
    -symgen.sum(sp.HadamardProduct(Y, Z - symgen.logsumexp(Z, axis=1))) / N,
    params=[W, b],
    data=[X, Y],
    name="softmax",
)


def blobs(n=3000, d=2, k=3, seed=0):
    """k Gaussian blobs in d dimensions, with one-hot labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centers = 3 * rng.standard_normal((k, d))
    labels = rng.integers(0, k, n)
    x = centers[labels] + rng.standard_normal((n, d))
    return x, np.eye(k)[labels], labels


def train(module, x, y, steps=500, lr=0.5):
    import numpy as np

    w = np.zeros((x.shape[1], y.shape[1]))
    bias = np.zeros((1, y.shape[1]))
    history = [module.sgd_step(w, bias, x, y, lr=lr)[0] for _ in range(steps)]
    return w, bias, history


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from generated import softmax_numpy as module

    x, y, labels = blobs()
    w, bias, history = train(module, x, y)
    accuracy = ((x @ w + bias).argmax(axis=1) == labels).mean()
    print(f"loss {history[0]:.4f} -> {history[-1]:.4f}; training accuracy {accuracy:.3f}")
