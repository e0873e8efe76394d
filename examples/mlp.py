"""W3: a two-layer ReLU network (float32), trained with the generated ``sgd_step``.

    symgen generate examples/mlp.py -o generated
    python examples/mlp.py

The generated backprop is the one a person writes by hand: two BLAS products
forward, the ReLU mask fused into one elementwise pass, two products back.
"""

import sympy as sp

import symgen

M, N_I, N_H, N_O = sp.symbols("M N_I N_H N_O", integer=True, positive=True)
X, Y = sp.MatrixSymbol("X", M, N_I), sp.MatrixSymbol("Y", M, N_O)
W1, W2 = sp.MatrixSymbol("W1", N_I, N_H), sp.MatrixSymbol("W2", N_H, N_O)

mlp = symgen.Problem(
    symgen.sum(symgen.square(symgen.relu(X * W1) * W2 - Y)) / (M * N_O),
    params=[W1, W2],
    data=[X, Y],
    dtype="float32",
    name="mlp",
)


def seed_data(m=64, n_i=1000, n_h=100, n_o=10):
    """The tutorial's data: np.random.seed(1), then X, Y, W1, W2 drawn in that order."""
    import numpy as np

    np.random.seed(1)
    x = np.random.randn(m, n_i).astype(np.float32)
    y = np.random.randn(m, n_o).astype(np.float32)
    w1 = np.random.randn(n_i, n_h).astype(np.float32)
    w2 = np.random.randn(n_h, n_o).astype(np.float32)
    return x, y, w1, w2


def train(module, epochs=300, lr=1e-4):
    """SGD on the seed data; returns the loss before each epoch's step."""
    x, y, w1, w2 = seed_data()
    history = []
    for _ in range(epochs):
        loss, _ = module.sgd_step(w1, w2, x, y, lr=lr)  # w1, w2 updated in place
        history.append(loss)
    return history


if __name__ == "__main__":
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from generated import mlp_numpy as module

    history = train(module)
    for epoch in (1, 100, 300):
        print(f"epoch {epoch:3d}: loss {history[epoch - 1]:.3f}")
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'symgen[plot]')")
    else:
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.semilogy(range(1, len(history) + 1), history)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title("Two-layer ReLU network, SGD lr 1e-4")
        out = root / "examples" / "out"
        out.mkdir(exist_ok=True)
        fig.savefig(out / "mlp_loss.png", dpi=100, bbox_inches="tight")
        print(f"saved {out / 'mlp_loss.png'}")
